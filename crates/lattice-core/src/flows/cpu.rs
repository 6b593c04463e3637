//! The CPU reference step on a [`FlowState`]: every live flow advances (rayon), then each
//! item plans its next live list and spawns children (`plan`, the twin of
//! shaders/flow_plan.wgsl).

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
        let pos = &state.pos;
        work.into_par_iter()
            .map(|(s, h)| {
                let item = s as u32 / cap;
                let local = s as u32 % cap;
                (s, net.advance(rule, pos[s], h, local, seeds[item as usize]))
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

/// Item `b`'s bookkeeping after its flows moved: the counts of this step, the survivors in
/// list order, then children in the order of their parents in the list, each child taking the
/// next free slot until the capacity is reached (the rest are dropped and counted).
pub fn plan(state: &mut FlowState, b: u32) {
    let cap = state.capacity as usize;
    let base = b as usize * cap;
    let old = state.counts[b as usize];
    let entries: Vec<u32> = state.live[base..base + old.moving as usize].to_vec();
    let mut counts = ItemCounts {
        used: old.used,
        ..Default::default()
    };
    let mut next = Vec::with_capacity(entries.len());
    for &e in &entries {
        let s = base + e as usize;
        match state.status[s] {
            status::MOVING => next.push(e),
            status::FRONT => counts.front += 1,
            status::BACK => counts.back += 1,
            _ => {}
        }
        if state.event[s] & event::REFLECTED != 0 {
            counts.reflected += 1;
        }
    }
    let hl = state.hidden_len as usize;
    for &e in &entries {
        let parent = base + e as usize;
        if state.status[parent] != status::MOVING {
            continue;
        }
        for _ in 0..state.spawn[parent] {
            if counts.used as usize >= cap {
                counts.dropped += 1;
                continue;
            }
            let local = counts.used;
            let child = base + local as usize;
            counts.used += 1;
            counts.spawned += 1;
            state.pos[child] = state.prev[parent];
            state.prev[child] = state.prev[parent];
            state.parent[child] = e as i32;
            state.steps[child] = 0;
            state.status[child] = status::MOVING;
            state.event[child] = 0;
            state.spawn[child] = 0;
            state
                .hidden
                .copy_within(parent * hl..(parent + 1) * hl, child * hl);
            next.push(local);
        }
    }
    counts.moving = next.len() as u32;
    state.live[base..base + next.len()].copy_from_slice(&next);
    state.counts[b as usize] = counts;
}
