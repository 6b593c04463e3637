//! Hand-checked cases of the experts: weights are set so that each output has a closed form.

use super::gather::{Gather, record_width};
use super::math::{gelu, layer_norm};
use super::net::{MoeNet, Update};
use super::params::{MoeShape, ParamLayout};
use crate::config::Combine;
use crate::tensors::Init;

const S: usize = 4;

fn shape() -> MoeShape {
    MoeShape {
        s: 4,
        local_h1: 3,
        local_h2: 2,
        local_ph: 5,
        func_hidden: 3,
        func_msg: 2,
        ode_hidden: 8,
        gate_hidden: 3,
    }
}

/// Linear layers zero, LayerNorms identity (1, 0), α = 0.1, β = 0.9, λ = 0.1.
fn plain_weights(layout: &ParamLayout) -> Vec<f32> {
    let mut w = vec![0.0; layout.total() as usize];
    for t in &layout.tensors {
        if let Init::Const(v) = t.init {
            w[t.offset as usize..(t.offset + t.len()) as usize].fill(v);
        }
    }
    w
}

fn ln(x: &[f32]) -> Vec<f32> {
    let mut v = x.to_vec();
    layer_norm(&mut v, &[1.0; S], &[0.0; S]);
    v
}

fn run(
    w: &[f32],
    layout: &ParamLayout,
    combine: Combine,
    record: &[f32],
    counts: [u32; 3],
    x: &[f32],
) -> Vec<f32> {
    let net = MoeNet::new(layout, w, combine, 3);
    let mut out = vec![0.0; S];
    net.update(x, record, counts, &mut Update::new(&layout.shape), &mut out);
    out
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        approx::assert_abs_diff_eq!(*x, *y, epsilon = 1e-5);
    }
}

const X: [f32; S] = [1.0, 2.0, 3.0, 4.0];

#[test]
fn no_local_neighbors_gives_ln_x_and_empty_classes_give_zero() {
    // Gating weights zero → w = (1/3, 1/3, 1/3); functional and distant classes empty → 0.
    let layout = ParamLayout::new(shape());
    let w = plain_weights(&layout);
    let record = vec![0.0; record_width(&layout.shape)];
    let lnx = ln(&X);
    let residual = run(&w, &layout, Combine::Residual, &record, [0, 0, 0], &X);
    close(&residual, &[0, 1, 2, 3].map(|c| X[c] + lnx[c] / 3.0));
    let replace = run(&w, &layout, Combine::Replace, &record, [0, 0, 0], &X);
    close(&replace, &[0, 1, 2, 3].map(|c| lnx[c] / 3.0));
}

#[test]
fn distant_cnf_with_zero_network_decays_by_lambda() {
    // f(t, x) = LN(0) − 0.1·x = −0.1·x; three Euler steps of 1/3: x·(1 − 0.1/3)³.
    let layout = ParamLayout::new(shape());
    let w = plain_weights(&layout);
    let mut record = vec![0.0; record_width(&layout.shape)];
    record[4 * S..5 * S].copy_from_slice(&[5.0, -1.0, 0.5, 2.0]);
    let out = run(&w, &layout, Combine::Replace, &record, [0, 0, 2], &X);
    let decay = (1.0f32 - 0.1 / 3.0).powi(3);
    let lnx = ln(&X);
    close(&out, &[0, 1, 2, 3].map(|c| (lnx[c] + X[c] * decay) / 3.0));
}

#[test]
fn functional_expert_blends_gnn_and_cnf() {
    // Zero network: gate g = σ(0) = ½, z = r = ½, candidate tanh(0) = 0 → gnn = x/2;
    // CNF = x·(29/30)³. With functional.out = [I, I], the expert gives
    // GELU(LN(½·gnn + ½·cnf)).
    let layout = ParamLayout::new(shape());
    let mut w = plain_weights(&layout);
    let out_w = layout.get("functional.out.weight").unwrap().offset as usize;
    for c in 0..S {
        w[out_w + c * 2 * S + c] = 1.0;
        w[out_w + c * 2 * S + S + c] = 1.0;
    }
    let record = vec![0.0; record_width(&layout.shape)];
    let out = run(&w, &layout, Combine::Replace, &record, [0, 3, 0], &X);
    let decay = (1.0f32 - 0.1 / 3.0).powi(3);
    let blend: Vec<f32> = X.iter().map(|x| 0.25 * x + 0.5 * x * decay).collect();
    let o_f: Vec<f32> = ln(&blend).into_iter().map(gelu).collect();
    let lnx = ln(&X);
    close(&out, &[0, 1, 2, 3].map(|c| (lnx[c] + o_f[c]) / 3.0));
}

#[test]
fn local_attention_one_and_many_neighbors() {
    let layout = ParamLayout::new(shape());
    let w = plain_weights(&layout);
    let net = MoeNet::new(&layout, &w, Combine::Residual, 3);
    let mut g = Gather::new(&layout.shape);
    let x = [0.5, -1.0, 0.0, 1.0];
    let n1 = [1.0, 1.0, 1.0, 1.0];
    // One neighbor: the aggregate is that neighbor (mean of one).
    g.begin(&net, &x);
    g.local(&x, &n1);
    g.finish(&net, &[]);
    close(&g.record[..S], &n1);
    // Three: softmax over the unscaled dot products n_j·x.
    let ns = [
        [1.0, 1.0, 1.0, 1.0],
        [2.0, 0.0, 0.0, 1.0],
        [0.0, -1.0, 3.0, 0.0],
    ];
    g.begin(&net, &x);
    for n in &ns {
        g.local(&x, n);
    }
    g.finish(&net, &[]);
    let scores: Vec<f32> = ns
        .iter()
        .map(|n| n.iter().zip(&x).map(|(a, b)| a * b).sum())
        .collect();
    let z: f32 = scores.iter().map(|s| s.exp()).sum();
    let want: Vec<f32> = (0..S)
        .map(|c| {
            ns.iter()
                .zip(&scores)
                .map(|(n, s)| s.exp() / z * n[c])
                .sum()
        })
        .collect();
    close(&g.record[..S], &want);
    // Class sums and counts.
    close(&g.record[S..2 * S], &[3.0, 0.0, 4.0, 2.0]);
    assert_eq!(g.counts, [3, 0, 0]);
}

#[test]
fn local_expert_mixes_alpha_x_and_beta_processed() {
    // Zero network with proc2.bias = b: p = LN(b), o_L = 0.1·x + 0.9·LN(b).
    let layout = ParamLayout::new(shape());
    let mut w = plain_weights(&layout);
    let b = layout.get("local.proc2.bias").unwrap().offset as usize;
    w[b..b + S].copy_from_slice(&[1.0, 0.0, -1.0, 2.0]);
    let mut record = vec![0.0; record_width(&layout.shape)];
    record[..S].copy_from_slice(&[0.3, 0.3, 0.3, 0.3]);
    let out = run(&w, &layout, Combine::Replace, &record, [2, 0, 0], &X);
    let lnb = ln(&[1.0, 0.0, -1.0, 2.0]);
    close(
        &out,
        &[0, 1, 2, 3].map(|c| (0.1 * X[c] + 0.9 * lnb[c]) / 3.0),
    );
}

/// The GPU update kernel's tile: the presets fit WebGPU's default 16 KiB of workgroup memory,
/// with more rows per workgroup the smaller the network; the row holds x, the record, three
/// outputs and the widest phase's temporaries (the functional expert's at these sizes).
#[test]
fn the_update_tile_fits_the_presets_in_16_kib() {
    use super::net::{UpdateTile, WORKGROUP_BUDGET_BYTES};
    let rows: Vec<[u32; 2]> = [MoeShape::DEBUG, MoeShape::EXPERIMENT, MoeShape::OPTIMIZED]
        .iter()
        .map(|sh| {
            let tile = UpdateTile::new(sh);
            let s = sh.s;
            let functional = 8 * s + s / 2 + 1 + 3 * s + sh.ode_hidden + sh.ode_hidden / 2;
            assert_eq!(tile.temps, functional);
            assert_eq!(tile.row, 9 * s + sh.func_msg + functional);
            assert!(tile.bytes() <= WORKGROUP_BUDGET_BYTES);
            assert!(tile.rows * tile.ln_lanes <= 64);
            [tile.rows, tile.ln_lanes]
        })
        .collect();
    // DEBUG's 7 rows leave 200 bytes: 7 partial sums per row.
    assert_eq!(rows, [[7, 7], [2, 32], [1, 64]]);
}
