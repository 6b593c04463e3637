//! The CPU reference step on a [`FlowState`]: every live flow advances (rayon), then each
//! item plans its next live list and spawns children (`plan`, the twin of
//! lattice-gpu/shaders/flow_plan.wgsl).

use rayon::prelude::*;

use super::net::{FlowNet, Move, MoveRule};
use super::state::{FlowState, ItemCounts, event, status};

/// One step of every live flow of every item. `seeds[b]` is item b's noise seed.
pub fn step(net: &FlowNet<'_>, rule: &MoveRule, state: &mut FlowState, seeds: &[[u32; 2]]) {
    let cap = state.capacity;
    let hl = state.hidden_len as usize;
    let slots: Vec<usize> = state.live_slots().collect();
    // Each live flow owns its hidden slice; advance them in parallel.
    let moves: Vec<(usize, Move)> = {
        let mut hidden_of: Vec<Option<&mut [f32]>> =
            state.hidden.chunks_mut(hl).map(Some).collect();
        let work: Vec<(usize, &mut [f32])> = slots
            .iter()
            .map(|&s| (s, hidden_of[s].take().expect("live slots are distinct")))
            .collect();
        let (pos, id) = (&state.pos, &state.id);
        work.into_par_iter()
            .map(|(s, h)| {
                let item = s as u32 / cap;
                (s, net.advance(rule, pos[s], h, id[s], seeds[item as usize]))
            })
            .collect()
    };
    for (s, m) in moves {
        state.pos[s] = m.pos;
        state.prev[s] = m.prev;
        state.status[s] = m.status;
        state.event[s] = m.event;
        state.spawn[s] = m.spawn;
        state.steps[s] += 1;
    }
    for b in 0..state.items {
        plan(state, b);
    }
}

/// Item `b`'s bookkeeping after its flows moved (the twin of lattice-gpu/shaders/flow_plan.wgsl):
/// 1. survivors keep their slots, in list order; completed flows are recorded and free theirs;
/// 2. children, in the order of their parents in the list, take the lowest free slots until
///    the capacity holds only live flows; the rest are dropped and counted once.
///
/// An item without live flows is left exactly as it is, counts included, so steps that run
/// after every flow of an item finished (or it was frozen) change nothing.
pub fn plan(state: &mut FlowState, b: u32) {
    let base = state.slot(b, 0);
    let old = state.counts[b as usize];
    if old.moving == 0 {
        return;
    }
    let entries: Vec<u32> = state.live[base..base + old.moving as usize].to_vec();
    let mut next = Vec::with_capacity(entries.len());
    let mut step = ItemCounts::default();
    for &e in &entries {
        let s = base + e as usize;
        let dz = state.pos[s][2] - state.prev[s][2];
        step.z_moved += dz;
        step.z_moved_sq += dz * dz;
        if state.event[s] & event::REFLECTED != 0 {
            step.reflected += 1;
        }
        match state.status[s] {
            status::MOVING => next.push(e),
            plane @ (status::FRONT | status::BACK) => {
                if plane == status::FRONT {
                    step.front += 1;
                } else {
                    step.back += 1;
                }
                let record = state.done_record(s, plane);
                state.push_done(b, record);
                state.status[s] = status::FREE;
            }
            _ => {}
        }
    }
    let survivors = next.len();
    let requested: usize = next[..survivors]
        .iter()
        .map(|&e| state.spawn[base + e as usize] as usize)
        .sum();
    let free = free_slots(state, b, requested);
    let mut created = state.counts[b as usize].created;
    let mut free_iter = free.iter();
    for i in 0..survivors {
        let parent = base + next[i] as usize;
        for _ in 0..state.spawn[parent] {
            let Some(&local) = free_iter.next() else {
                break;
            };
            spawn_child(state, parent, base + local as usize, created);
            created += 1;
            next.push(local);
        }
    }
    let c = &mut state.counts[b as usize];
    c.moving = next.len() as u32;
    c.spawned = free.len() as u32;
    c.dropped = (requested - free.len()) as u32;
    c.front = step.front;
    c.back = step.back;
    c.reflected = step.reflected;
    c.z_moved = step.z_moved;
    c.z_moved_sq = step.z_moved_sq;
    c.created = created;
    state.live[base..base + next.len()].copy_from_slice(&next);
}

/// Item b's lowest free slots (item-local), at most `n`.
fn free_slots(state: &FlowState, b: u32, n: usize) -> Vec<u32> {
    let base = state.slot(b, 0);
    (0..state.capacity)
        .filter(|&l| state.status[base + l as usize] == status::FREE)
        .take(n)
        .collect()
}

/// A child of the flow in slot `parent`, with id `id`, in the free slot `child`: it starts at
/// the parent's position before this step's move, with the parent's new energy and hidden state.
fn spawn_child(state: &mut FlowState, parent: usize, child: usize, id: u32) {
    let hl = state.hidden_len as usize;
    state.pos[child] = state.prev[parent];
    state.prev[child] = state.prev[parent];
    state.id[child] = id;
    state.parent[child] = state.id[parent] as i32;
    state.steps[child] = 0;
    state.status[child] = status::MOVING;
    state.event[child] = 0;
    state.spawn[child] = 0;
    state
        .hidden
        .copy_within(parent * hl..(parent + 1) * hl, child * hl);
}
