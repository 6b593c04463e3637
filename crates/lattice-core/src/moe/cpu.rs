//! The CPU path of one synchronous MoE step over `[items, N, S]` states (rayon over cells).

use rayon::prelude::*;

use super::domain::Planes;
use super::gather::Gather;
use super::net::{MoeNet, Update};
use crate::neighbors::{NeighborCache, NeighborClass};

/// Writes the next states of every item into `next` from the pre-step snapshot `states`.
/// Masked-off cells keep their state.
pub fn step(
    net: &MoeNet<'_>,
    cache: &NeighborCache,
    states: &[f32],
    next: &mut [f32],
    items: usize,
) {
    step_planes(
        net,
        cache,
        states,
        next,
        items,
        &Planes::whole(cache.dims()),
    );
}

/// [`step`] for the cells of `planes.owned` only, reading the states of the owned and halo
/// planes (the rest of `states` is not read, the rest of `next` not written): a rank's slab.
pub fn step_planes(
    net: &MoeNet<'_>,
    cache: &NeighborCache,
    states: &[f32],
    next: &mut [f32],
    items: usize,
    planes: &Planes,
) {
    let n = cache.dims().cells_usize();
    let plane = (cache.dims().w() * cache.dims().h()) as usize;
    let s = net.sh.s as usize;
    let hid = net.sh.func_hidden as usize;
    assert_eq!(states.len(), items * n * s, "states are [items, N, S]");
    assert_eq!(next.len(), states.len());
    let mut prep = vec![0.0f32; n * hid];
    let owned = planes.owned.start as usize * plane..planes.owned.end as usize * plane;
    for b in 0..items {
        let item = &states[b * n * s..(b + 1) * n * s];
        prep.par_chunks_mut(hid)
            .zip(item.par_chunks(s))
            .enumerate()
            .filter(|(i, _)| planes.reads((i / plane) as u32))
            .for_each(|(_, (p, x))| net.prep(x, p));
        next[b * n * s + owned.start * s..b * n * s + owned.end * s]
            .par_chunks_mut(s)
            .enumerate()
            .for_each_init(
                || (Gather::new(&net.sh), Update::new(&net.sh)),
                |(g, u), (k, out)| {
                    let i = owned.start + k;
                    let x = &item[i * s..(i + 1) * s];
                    if !cache.is_active(i as u32) {
                        out.copy_from_slice(x);
                        return;
                    }
                    gather_cell(net, cache, item, &prep, i as u32, g);
                    net.update(x, &g.record, g.counts, u, out);
                },
            );
    }
}

/// Stage 2 for one cell: walks its neighbors once, in class order.
pub fn gather_cell(
    net: &MoeNet<'_>,
    cache: &NeighborCache,
    item: &[f32],
    prep: &[f32],
    i: u32,
    g: &mut Gather,
) {
    let s = net.sh.s as usize;
    let x = &item[i as usize * s..(i as usize + 1) * s];
    g.begin(net, x);
    cache.for_each_neighbor(i, |j, class, _| {
        let j = j as usize;
        let nj = &item[j * s..(j + 1) * s];
        match class {
            NeighborClass::Local => g.local(x, nj),
            NeighborClass::Functional => g.functional(nj, j as u32),
            NeighborClass::Distant => g.distant(nj),
        }
    });
    g.finish(net, prep);
}

/// The first non-finite value as (item, cell, channel), scanning in memory order.
pub fn find_non_finite(states: &[f32], n: usize, s: usize) -> Option<(usize, usize, usize)> {
    let k = states.par_iter().position_first(|v| !v.is_finite())?;
    Some((k / (n * s), (k / s) % n, k % s))
}
