//! Energy flows (docs/model.md part B): embeddings mapped to a W×H surface of energies,
//! one flow per item and surface cell starting on the middle plane, moved by a SimpleNeuron +
//! GRU carrier until they reach the front or back plane, spawning children when they move far,
//! then aggregated back onto the surface per plane.
//!
//! The carrier is a pure predictor (energy, displacement, hidden state, [`net`]); the move
//! rule, spawning and bookkeeping belong to the step ([`cpu`], and its WGSL twin in
//! lattice-gpu); [`run`] drives either backend through the [`FlowEngine`] trait.

pub mod aggregate;
pub mod convergence;
pub mod coords;
pub mod cpu;
pub mod mapper;
pub mod net;
pub mod noise;
pub mod params;
pub mod run;
pub mod state;
pub mod trace;

pub use net::{FlowNet, MoveRule};
pub use params::{FlowLayout, FlowShape};
pub use run::{FlowEngine, run_batch};
pub use state::{FlowState, ItemCounts};

use crate::tensors::Weights;

/// All flow-network tensors, packed in [`FlowLayout`] order.
pub type FlowWeights = Weights<FlowLayout>;

/// The CPU backend: the reference step on a host [`FlowState`].
pub struct CpuFlows<'a> {
    pub net: FlowNet<'a>,
    pub state: FlowState,
    pub seeds: Vec<[u32; 2]>,
}

impl FlowEngine for CpuFlows<'_> {
    type Error = std::convert::Infallible;

    fn step(&mut self, rule: &MoveRule) -> Result<Vec<ItemCounts>, Self::Error> {
        cpu::step(&self.net, rule, &mut self.state, &self.seeds);
        Ok(self.state.counts.clone())
    }

    fn freeze(&mut self, items: &[u32]) -> Result<(), Self::Error> {
        for &b in items {
            self.state.counts[b as usize].moving = 0;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<FlowState, Self::Error> {
        Ok(self.state.clone())
    }
}

#[cfg(test)]
mod tests;
