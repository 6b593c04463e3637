//! Structure-of-arrays flow storage for one batch, slot for slot the layout of the GPU
//! buffers (lattice-gpu/src/flows.rs), so the GPU state reads back into this type and the
//! two backends compare field by field.
//!
//! Item b owns slots `b·C .. (b+1)·C` (C = capacity per item). Its W·H roots take the first
//! slots, in surface order (y, then x); children are appended after `used[b]`. Slots are
//! never reused: a completed flow keeps its slot until the surface is aggregated.

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

/// What one step did to one item (WGSL `ItemCounts`, 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ItemCounts {
    /// Flows moving after the step (the next step's live list).
    pub moving: u32,
    pub spawned: u32,
    /// Children that found no free slot.
    pub dropped: u32,
    pub front: u32,
    pub back: u32,
    pub reflected: u32,
    /// Slots used so far.
    pub used: u32,
    pub pad: u32,
}
const _: () = assert!(std::mem::size_of::<ItemCounts>() == 32);

impl ItemCounts {
    pub fn add(&mut self, o: &Self) {
        self.moving += o.moving;
        self.spawned += o.spawned;
        self.dropped += o.dropped;
        self.front += o.front;
        self.back += o.back;
        self.reflected += o.reflected;
        self.used += o.used;
    }
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
    /// Per slot: the parent's item-local slot, or −1 for a root.
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
}

impl FlowState {
    /// Roots of every item on the middle plane z = D/2 with their initial energies
    /// (`energies[b·W·H + y·W + x]`), hidden states zero.
    pub fn place(shape: &FlowShape, capacity: u32, energies: &[f32]) -> Self {
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
        let mut s = Self {
            items,
            capacity,
            hidden_len,
            pos: vec![[0.0; 4]; slots],
            prev: vec![[0.0; 4]; slots],
            hidden: vec![0.0; slots * hidden_len as usize],
            parent: vec![-1; slots],
            steps: vec![0; slots],
            status: vec![status::FREE; slots],
            event: vec![0; slots],
            spawn: vec![0; slots],
            live: vec![0; slots],
            counts: vec![ItemCounts::default(); items as usize],
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
                    s.live[slot] = local;
                }
            }
            s.counts[b as usize] = ItemCounts {
                moving: wh,
                used: wh,
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

    pub fn hidden_of(&self, slot: usize) -> &[f32] {
        let n = self.hidden_len as usize;
        &self.hidden[slot * n..(slot + 1) * n]
    }
}
