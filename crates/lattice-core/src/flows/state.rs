//! Structure-of-arrays flow storage for one batch, slot for slot the layout of the GPU
//! buffers (lattice-gpu/src/flows.rs), so the GPU state reads back into this type and the
//! two backends compare field by field.
//!
//! Item b owns slots `b·C .. (b+1)·C` (C = capacity per item), so C caps its **live** flows.
//! Its W·H roots take the first slots, in surface order (y, then x). A flow that completes is
//! written to the item's completion records (what aggregation reads) and frees its slot; each
//! step's children take the lowest free slots, in the order of their parents in the live list,
//! so the same flows get the same slots on every run and on both backends.
//!
//! Flows are named by an item-local id: roots `y·W + x`, children numbered on from W·H in the
//! order they are created. A slot holds different flows over a run; an id names one flow.

use bytemuck::{Pod, Zeroable};

use super::coords::{normalize_xy, normalize_z};
use super::params::FlowShape;

/// Flow status codes (`status` buffer).
pub mod status {
    pub const FREE: u32 = 0;
    pub const MOVING: u32 = 1;
    /// Completed on the front plane (z = −1, lattice plane 0).
    pub const FRONT: u32 = 2;
    /// Completed on the back plane (z = +1, lattice plane D).
    pub const BACK: u32 = 3;
}

/// Per-step event bits (`event` buffer), set for the flows that moved this step.
pub mod event {
    pub const REFLECTED: u32 = 1;
    pub const TERMINATED: u32 = 2;
}

/// What one step did to one item (WGSL `ItemCounts`, 40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct ItemCounts {
    /// Flows moving after the step (the next step's live list).
    pub moving: u32,
    pub spawned: u32,
    /// Children that found no free slot (each counted once, in the step that asked for it).
    pub dropped: u32,
    pub front: u32,
    pub back: u32,
    pub reflected: u32,
    /// Flow ids issued so far (roots and children): the next child's id.
    pub created: u32,
    /// Completion records written so far.
    pub done: u32,
    /// Σ Δz over the flows that moved this step (Δz = z after the move − z before it, in
    /// normalized units); a GPU sums in another order, so it agrees to rounding.
    pub z_moved: f32,
    /// Σ Δz² over the same flows.
    pub z_moved_sq: f32,
}
const _: () = assert!(std::mem::size_of::<ItemCounts>() == 40);

/// A flow that completed on a plane (or was projected onto one at the end): what aggregation
/// and the trace need once its slot is reused (WGSL `DoneFlow`, 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct DoneFlow {
    /// Normalized x, y, z (±1) and the energy.
    pub pos: [f32; 4],
    pub id: u32,
    pub steps: u32,
    /// [`status::FRONT`] or [`status::BACK`].
    pub plane: u32,
    /// The [`event`] bits of the step it completed in (0 when projected).
    pub event: u32,
}
const _: () = assert!(std::mem::size_of::<DoneFlow>() == 32);

/// Completion records one item may need over `steps` steps with `capacity` slots: each step
/// completes at most the `capacity` live flows, and the end may project as many again.
pub fn done_capacity(capacity: u32, steps: u32) -> u32 {
    capacity.saturating_mul(steps.saturating_add(1))
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowState {
    pub items: u32,
    /// Slots per item.
    pub capacity: u32,
    /// Floats of hidden state per slot (L·Hc).
    pub hidden_len: u32,
    /// Per slot: normalized x, y, z and the energy.
    pub pos: Vec<[f32; 4]>,
    /// Per slot: position before this step's move and energy after it (what a child inherits).
    pub prev: Vec<[f32; 4]>,
    /// Per slot: `[L, Hc]` GRU hidden state.
    pub hidden: Vec<f32>,
    /// Per slot: the flow's item-local id.
    pub id: Vec<u32>,
    /// Per slot: the parent's id, or −1 for a root.
    pub parent: Vec<i32>,
    /// Per slot: steps moved (age); once per step, children start at 0.
    pub steps: Vec<u32>,
    pub status: Vec<u32>,
    pub event: Vec<u32>,
    /// Per slot: children requested this step.
    pub spawn: Vec<u32>,
    /// Per item: its live (moving) flows' item-local slots in ascending order of creation,
    /// `live[b·C .. b·C + counts[b].moving]`.
    pub live: Vec<u32>,
    pub counts: Vec<ItemCounts>,
    /// Completion records per item.
    pub done_capacity: u32,
    /// Item b's records are `done[b·done_capacity .. b·done_capacity + counts[b].done]`, in
    /// the order the flows completed (step, then live-list order).
    pub done: Vec<DoneFlow>,
}

impl FlowState {
    /// Roots of every item on the middle plane z = D/2 with their initial energies
    /// (`energies[b·W·H + y·W + x]`), hidden states zero; room for `steps` steps of
    /// completions ([`done_capacity`]).
    pub fn place(shape: &FlowShape, capacity: u32, steps: u32, energies: &[f32]) -> Self {
        let wh = shape.surface();
        let items = (energies.len() / wh as usize) as u32;
        assert_eq!(
            energies.len(),
            (items * wh) as usize,
            "energies are [items, W·H]"
        );
        assert!(
            capacity >= wh,
            "capacity holds the roots (checked by config validation)"
        );
        let slots = (items * capacity) as usize;
        let hidden_len = shape.hidden_len();
        let done_capacity = done_capacity(capacity, steps);
        let mut s = Self {
            items,
            capacity,
            hidden_len,
            pos: vec![[0.0; 4]; slots],
            prev: vec![[0.0; 4]; slots],
            hidden: vec![0.0; slots * hidden_len as usize],
            id: vec![0; slots],
            parent: vec![-1; slots],
            steps: vec![0; slots],
            status: vec![status::FREE; slots],
            event: vec![0; slots],
            spawn: vec![0; slots],
            live: vec![0; slots],
            counts: vec![ItemCounts::default(); items as usize],
            done_capacity,
            done: vec![DoneFlow::default(); items as usize * done_capacity as usize],
        };
        let z = normalize_z(shape.d / 2, shape.d);
        for b in 0..items {
            for y in 0..shape.h {
                for x in 0..shape.w {
                    let local = y * shape.w + x;
                    let slot = (b * capacity + local) as usize;
                    let e = energies[(b * wh + local) as usize];
                    s.pos[slot] = [normalize_xy(x, shape.w), normalize_xy(y, shape.h), z, e];
                    s.status[slot] = status::MOVING;
                    s.id[slot] = local;
                    s.live[slot] = local;
                }
            }
            s.counts[b as usize] = ItemCounts {
                moving: wh,
                created: wh,
                ..Default::default()
            };
        }
        s
    }

    pub fn slot(&self, item: u32, local: u32) -> usize {
        (item * self.capacity + local) as usize
    }

    /// Live flows of all items.
    pub fn live_total(&self) -> u32 {
        self.counts.iter().map(|c| c.moving).sum()
    }

    /// The global slots of the live flows, item by item, in list order (the GPU's `g` order).
    pub fn live_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.items).flat_map(move |b| {
            let base = self.slot(b, 0);
            let n = self.counts[b as usize].moving as usize;
            self.live[base..base + n]
                .iter()
                .map(move |&l| base + l as usize)
        })
    }

    /// Item b's completion records so far.
    pub fn done_of(&self, b: u32) -> &[DoneFlow] {
        let base = b as usize * self.done_capacity as usize;
        &self.done[base..base + self.counts[b as usize].done as usize]
    }

    /// Appends a completion record to item b.
    pub fn push_done(&mut self, b: u32, record: DoneFlow) {
        let c = &mut self.counts[b as usize];
        assert!(
            c.done < self.done_capacity,
            "done_capacity bounds the completions of a run"
        );
        self.done[b as usize * self.done_capacity as usize + c.done as usize] = record;
        c.done += 1;
    }

    /// The record of the flow in `slot` completing on `plane`.
    pub fn done_record(&self, slot: usize, plane: u32) -> DoneFlow {
        DoneFlow {
            pos: self.pos[slot],
            id: self.id[slot],
            steps: self.steps[slot],
            plane,
            event: self.event[slot],
        }
    }

    pub fn hidden_of(&self, slot: usize) -> &[f32] {
        let n = self.hidden_len as usize;
        &self.hidden[slot * n..(slot + 1) * n]
    }
}
