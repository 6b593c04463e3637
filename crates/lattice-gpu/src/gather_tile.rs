//! The MoE gather kernel's workgroup layout (`moe_gather.wgsl`): how many cells a workgroup
//! owns, how many neighbors each invocation takes per chunk, and whether the functional
//! expert's per-pair weights are staged in workgroup memory. The WGSL declares its workgroup
//! arrays from these numbers (through the header), and [`GatherTile::bytes`] counts them.

use lattice_core::moe::MoeShape;
use lattice_core::moe::net::WORKGROUP_BUDGET_BYTES;

use crate::shaders::MOE_GATHER;

/// Invocations per gather workgroup.
const WORKGROUP: u32 = MOE_GATHER.workgroup;
/// Cells per workgroup at most.
const MAX_CELLS: u32 = 8;
/// (cell, channel) pairs of the state per workgroup at most: each invocation keeps five sums per
/// pair it owns in registers, so this caps them at 5 × 512 / 64 = 40 floats.
const MAX_STATE_PAIRS: u32 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherTile {
    /// Consecutive rows (cells) one workgroup owns: a power of two dividing the workgroup.
    pub cells: u32,
    /// Neighbors per invocation in a chunk (sharing every weight load).
    pub pairs: u32,
    /// Whether message2, attention1's message columns and attention2 are copied into
    /// workgroup memory once per workgroup (else read from the weight buffer).
    pub stage_weights: bool,
}

impl GatherTile {
    /// The largest layout that fits [`WORKGROUP_BUDGET_BYTES`]: as many cells as the register
    /// cap allows, then two neighbors per invocation with staged weights, one with staged
    /// weights, two without, one without; then fewer cells. Sizes far past the presets' may
    /// fit nothing (the smallest layout is returned; compiling checks it against the adapter).
    pub fn new(sh: &MoeShape) -> Self {
        let mut cells = MAX_CELLS;
        while cells > 1 && cells * sh.s > MAX_STATE_PAIRS {
            cells /= 2;
        }
        let mut smallest = None;
        while cells >= 1 {
            for (pairs, stage_weights) in [(2, true), (1, true), (2, false), (1, false)] {
                let tile = Self {
                    cells,
                    pairs,
                    stage_weights,
                };
                if tile.bytes(sh) <= WORKGROUP_BUDGET_BYTES {
                    return tile;
                }
                smallest = Some(tile);
            }
            cells /= 2;
        }
        smallest.expect("at least one layout was tried")
    }

    /// Floats of staged weights (`WSTAGE` in the WGSL: at least 1, an array cannot be empty).
    pub fn staged_floats(&self, sh: &MoeShape) -> u32 {
        if self.stage_weights {
            sh.func_msg * (sh.func_hidden + sh.func_msg + 1)
        } else {
            1
        }
    }

    /// Neighbor entries of one chunk, all cells together (`CHUNK`).
    pub fn chunk(&self) -> u32 {
        WORKGROUP * self.pairs
    }

    /// Workgroup memory of the kernel: staged weights; qx and ax per cell; per chunk entry its
    /// index, score and message; per cell its range (2 words), softmax maximum, flag and
    /// rescale, two denominators and three counts; the chunk count.
    pub fn bytes(&self, sh: &MoeShape) -> u32 {
        let per_cell = sh.func_hidden + sh.func_msg + 2 + 3 + 2 + 3;
        4 * (self.staged_floats(sh) + self.cells * per_cell + self.chunk() * (2 + sh.func_msg) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presets_get_the_largest_layout_that_fits() {
        let layouts = [MoeShape::DEBUG, MoeShape::EXPERIMENT, MoeShape::OPTIMIZED]
            .map(|sh| (GatherTile::new(&sh), sh));
        let expect = [(8, 2, true), (8, 2, true), (4, 1, false)];
        for ((tile, sh), (cells, pairs, stage_weights)) in layouts.iter().zip(expect) {
            let want = GatherTile {
                cells,
                pairs,
                stage_weights,
            };
            assert_eq!(*tile, want, "{sh:?}");
            assert!(tile.bytes(sh) <= WORKGROUP_BUDGET_BYTES);
            assert_eq!(WORKGROUP % tile.cells, 0);
        }
    }

    #[test]
    fn bytes_count_every_workgroup_array_by_hand_for_debug() {
        // DEBUG: FH 12, FM 8; 8 cells, 2 pairs, staged weights.
        let tile = GatherTile::new(&MoeShape::DEBUG);
        let staged = 8 * 12 + 8 * 8 + 8;
        let per_cell = 12 + 8 + 10;
        let chunk = 128 * (2 + 8);
        assert_eq!(
            tile.bytes(&MoeShape::DEBUG),
            4 * (staged + 8 * per_cell + chunk + 1)
        );
    }
}
