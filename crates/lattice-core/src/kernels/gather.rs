//! Per-class mean of neighbor states: the CPU twin of `lattice-gpu/shaders/gather.wgsl`.

use rayon::prelude::*;

use crate::neighbors::NeighborCache;

/// For `items` lattices of `channels` floats per cell (`states` is `[items, N, channels]`),
/// returns `[items, N, 3, channels]`: each cell's mean neighbor state per class
/// (LOCAL, FUNCTIONAL, DISTANT), zeros for an empty class or a masked-off cell.
///
/// Order matches the shader: neighbors summed one by one in the cache's walk order, then
/// divided by the count.
pub fn class_means(
    cache: &NeighborCache,
    states: &[f32],
    items: usize,
    channels: usize,
) -> Vec<f32> {
    let n = cache.dims().cells_usize();
    assert_eq!(
        states.len(),
        items * n * channels,
        "states are [items, N, channels]"
    );
    let mut out = vec![0.0f32; items * n * 3 * channels];
    out.par_chunks_mut(3 * channels)
        .enumerate()
        .for_each(|(row, dst)| {
            let (b, i) = (row / n, (row % n) as u32);
            if !cache.is_active(i) {
                return;
            }
            let item = &states[b * n * channels..(b + 1) * n * channels];
            let mut count = [0u32; 3];
            cache.for_each_neighbor(i, |j, class, _| {
                let c = class.index();
                count[c] += 1;
                let src = &item[j as usize * channels..(j as usize + 1) * channels];
                for (acc, v) in dst[c * channels..(c + 1) * channels].iter_mut().zip(src) {
                    *acc += v;
                }
            });
            for c in 0..3 {
                if count[c] > 0 {
                    for acc in &mut dst[c * channels..(c + 1) * channels] {
                        *acc /= count[c] as f32;
                    }
                }
            }
        });
    out
}
