//! The MoE step against an independent float64 oracle written from docs/model.md A3, A6
//! and A7 with its decisions (combine Residual or Replace, gating activity = mean of
//! all neighbor states, fixed-step Euler dt = 1/ode_steps with t = k/ode_steps, eval-mode
//! dropout), sharing no code with the engine's math: its own neighbor search, LayerNorm, GELU
//! (float64 erf), softmax and GRU-style update. Seeded non-zero weights, so a swapped gate
//! (z ↔ 1 − z) or a wrong activation changes the result. Measured on DEBUG and the periodic
//! preset: CPU and lavapipe both within 3e-7 of the oracle; the CPU must agree to 1e-5, the GPU
//! to 1e-4 (a hardware GPU may contract to FMA and use approximate exp/tanh).

mod oracle;

use lattice_core::config::{self, Combine, MoeConfig, Simulation};
use lattice_core::moe::{CpuMoe, MoeEngine, MoeNet, MoeShape, MoeWeights, ParamLayout};
use lattice_core::{Boundary, NeighborCache};
use oracle::{Tensors, concat, gelu, gelu_all, sigmoid, softmax};

/// A cell's neighbors by class (local, functional, distant), as indices, from the definition:
/// every j ≠ i with 0 < d ≤ 0.99R; local d < 0.4R, functional 0.4R ≤ d ≤ 0.8R, distant above.
fn neighbors_of(cfg: &MoeConfig, i: usize) -> [Vec<usize>; 3] {
    let (w, h, d) = cfg.lattice.dims;
    let (w, h, d) = (w as i64, h as i64, d as i64);
    let l = &cfg.lattice;
    let r = (w.max(h).max(d) as f64 * l.radius_ratio).clamp(l.radius_min, l.radius_max);
    let periodic = l.boundary == Boundary::Periodic;
    let coord = |k: i64| (k % w, (k / w) % h, k / (w * h));
    let (xi, yi, zi) = coord(i as i64);
    let wrap = |delta: i64, n: i64| {
        if periodic {
            // Minimum image.
            let m = delta.rem_euclid(n);
            if m > n / 2 { m - n } else { m }
        } else {
            delta
        }
    };
    let mut out: [Vec<usize>; 3] = Default::default();
    for j in 0..w * h * d {
        if j == i as i64 {
            continue;
        }
        let (xj, yj, zj) = coord(j);
        let (dx, dy, dz) = (wrap(xj - xi, w), wrap(yj - yi, h), wrap(zj - zi, d));
        let dist = ((dx * dx + dy * dy + dz * dz) as f64).sqrt();
        if dist == 0.0 || dist > 0.99 * r {
            continue;
        }
        let class = if dist < 0.4 * r {
            0
        } else if dist <= 0.8 * r {
            1
        } else {
            2
        };
        out[class].push(j as usize);
    }
    out
}

fn mean(rows: &[&[f64]], s: usize) -> Vec<f64> {
    let mut m = vec![0.0; s];
    for r in rows {
        for c in 0..s {
            m[c] += r[c] / rows.len() as f64;
        }
    }
    m
}

/// Local expert (A6): softmax attention by unscaled dot product (K > 1), the neighbor (K = 1),
/// or LN(x) alone (K = 0); then the aggregate and processor MLPs and α·x + β·p.
fn local(t: &Tensors, x: &[f64], nb: &[&[f64]]) -> Vec<f64> {
    let s = x.len();
    if nb.is_empty() {
        return t.layer_norm("local.norm", x);
    }
    let agg = if nb.len() == 1 {
        nb[0].to_vec()
    } else {
        let scores: Vec<f64> = nb
            .iter()
            .map(|n| (0..s).map(|c| n[c] * x[c]).sum())
            .collect();
        let a = softmax(&scores);
        (0..s)
            .map(|c| (0..nb.len()).map(|j| a[j] * nb[j][c]).sum())
            .collect()
    };
    let f = t.linear("local.agg2", &gelu_all(&t.linear("local.agg1", &agg)));
    let p = gelu_all(&t.linear("local.proc1", &concat(&[x, &f])));
    let p = t.layer_norm("local.norm", &t.linear("local.proc2", &p));
    let (alpha, beta) = (t.scalar("local.alpha"), t.scalar("local.beta"));
    (0..s).map(|c| alpha * x[c] + beta * p[c]).collect()
}

/// A CNF block (A6, engine: fixed dt): x ← x + dt·f(t, x) for t = k·dt, with
/// f = LN_out(MLP(LN_in([x, n̄])) + pad(W_t·t)) − |λ|·x.
fn cnf(t: &Tensors, p: &str, x: &[f64], nbar: &[f64], steps: u32) -> Vec<f64> {
    let s = x.len();
    let lambda = t.scalar(&format!("{p}.lambda")).abs();
    let dt = 1.0 / f64::from(steps);
    let mut y = x.to_vec();
    for k in 0..steps {
        let time = f64::from(k) * dt;
        let u = t.layer_norm(&format!("{p}.norm_in"), &concat(&[&y, nbar]));
        let a = gelu_all(&t.linear(&format!("{p}.mlp1"), &u));
        let b = gelu_all(&t.linear(&format!("{p}.mlp2"), &a));
        let mut f = t.linear(&format!("{p}.mlp3"), &b);
        let tw = format!("{p}.time.weight");
        if t.has(&tw) {
            for (c, w) in t.get(&tw).iter().enumerate() {
                f[c] += w * time;
            }
        }
        let f = t.layer_norm(&format!("{p}.norm_out"), &f);
        for c in 0..s {
            y[c] += dt * (f[c] - lambda * y[c]);
        }
    }
    y
}

/// Functional expert (A6): gate from [x, mean |n_j|]; GNN messages, attention and the
/// GRU-style update (gnn = (1 − z)⊙x + z⊙c); its own CNF; GELU(LN(out([(1−g)·gnn, g·cnf]))).
fn functional(t: &Tensors, x: &[f64], nb: &[&[f64]], ode_steps: u32) -> Vec<f64> {
    let s = x.len();
    let abs_rows: Vec<Vec<f64>> = nb
        .iter()
        .map(|n| n.iter().map(|v| v.abs()).collect())
        .collect();
    let act = mean(&abs_rows.iter().map(Vec::as_slice).collect::<Vec<_>>(), s);
    let g_hidden = gelu_all(&t.linear("functional.gate1", &concat(&[x, &act])));
    let g = sigmoid(t.linear("functional.gate2", &g_hidden)[0]);
    let messages: Vec<Vec<f64>> = nb
        .iter()
        .map(|n| {
            let h = gelu_all(&t.linear("functional.gnn.message1", &concat(&[n, x])));
            t.linear("functional.gnn.message2", &h)
        })
        .collect();
    let scores: Vec<f64> = messages
        .iter()
        .map(|m| {
            let a = t.linear("functional.gnn.attention1", &concat(&[m, x]));
            let a: Vec<f64> = a.iter().map(|v| v.tanh()).collect();
            t.linear("functional.gnn.attention2", &a)[0]
        })
        .collect();
    let att = softmax(&scores);
    let fm = messages[0].len();
    let big_m: Vec<f64> = (0..fm)
        .map(|c| (0..nb.len()).map(|j| att[j] * messages[j][c]).sum())
        .collect();
    let ext = [0.0; 16];
    let u = concat(&[x, &big_m, &ext]);
    let z: Vec<f64> = t
        .linear("functional.gnn.update_gate", &u)
        .iter()
        .map(|&v| sigmoid(v))
        .collect();
    let r: Vec<f64> = t
        .linear("functional.gnn.reset_gate", &u)
        .iter()
        .map(|&v| sigmoid(v))
        .collect();
    let rx: Vec<f64> = (0..s).map(|c| r[c] * x[c]).collect();
    let cand = t.linear("functional.gnn.candidate", &concat(&[&rx, &big_m, &ext]));
    let gnn: Vec<f64> = (0..s)
        .map(|c| (1.0 - z[c]) * x[c] + z[c] * cand[c].tanh())
        .collect();
    let nbar = mean(nb, s);
    let cnf_out = cnf(t, "functional.cnf", x, &nbar, ode_steps);
    let mixed: Vec<f64> = (0..s)
        .map(|c| (1.0 - g) * gnn[c])
        .chain((0..s).map(|c| g * cnf_out[c]))
        .collect();
    let o = t.layer_norm("functional.out_norm", &t.linear("functional.out", &mixed));
    gelu_all(&o)
}

/// One cell's next state (A7 with the decided combine and gating activity).
fn next_state(cfg: &MoeConfig, t: &Tensors, states: &[f64], i: usize) -> Vec<f64> {
    let s = cfg.state_size as usize;
    let row = |j: usize| &states[j * s..(j + 1) * s];
    let x = row(i);
    let classes = neighbors_of(cfg, i);
    let rows: Vec<Vec<&[f64]>> = classes
        .iter()
        .map(|c| c.iter().map(|&j| row(j)).collect())
        .collect();
    let o_l = local(t, x, &rows[0]);
    let o_f = if rows[1].is_empty() {
        vec![0.0; s]
    } else {
        functional(t, x, &rows[1], cfg.ode_steps)
    };
    let o_d = if rows[2].is_empty() {
        vec![0.0; s]
    } else {
        cnf(t, "distant", x, &mean(&rows[2], s), cfg.ode_steps)
    };
    let all: Vec<&[f64]> = rows.iter().flatten().copied().collect();
    let act = mean(&all, s);
    let xn = t.layer_norm("gating.norm", x);
    let hid = gelu_all(&t.linear("gating.fc1", &concat(&[&xn, &act])));
    let w = softmax(&t.linear("gating.fc2", &hid));
    (0..s)
        .map(|c| {
            let mix = w[0] * o_l[c] + w[1] * o_f[c] + w[2] * o_d[c];
            match cfg.combine {
                Combine::Residual => x[c] + mix,
                Combine::Replace => mix,
            }
        })
        .collect()
}

fn preset(name: &str) -> MoeConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    let Simulation::Moe(m) = config::load(&path).unwrap().config.simulation else {
        panic!("{name} is a Moe preset")
    };
    m
}

/// States with a spread wide enough that attention and gating are far from uniform.
fn states(n: usize, s: usize) -> Vec<f32> {
    lattice_core::moe::initial_states(11, 0, n, s, 0.8)
}

/// Cells to check: corners and edges (fewer neighbors, empty classes on small lattices),
/// an interior cell, and a few spread through the lattice.
fn probe_cells(cfg: &MoeConfig) -> Vec<usize> {
    let (w, h, d) = cfg.lattice.dims;
    let n = (w * h * d) as usize;
    let idx = |x: u32, y: u32, z: u32| (x + y * w + z * w * h) as usize;
    let mut cells = vec![
        0,
        idx(w - 1, 0, 0),
        idx(w / 2, h / 2, d / 2),
        idx(0, h - 1, d - 1),
        n - 1,
    ];
    cells.extend((1..5).map(|k| k * n / 5 + 3));
    cells
}

fn cache_of(cfg: &MoeConfig) -> NeighborCache {
    NeighborCache::build(
        cfg.lattice.dims(),
        cfg.lattice.boundary,
        cfg.lattice.radius(),
        None,
    )
    .unwrap()
}

/// The engine's next states of one item (`run` steps it once).
fn check(
    cfg: &MoeConfig,
    engine: &str,
    tol: f64,
    run: impl Fn(&NeighborCache, &MoeWeights, &[f32]) -> Vec<f32>,
) {
    let cache = cache_of(cfg);
    let weights = MoeWeights::seeded(ParamLayout::new(MoeShape::from_config(cfg)), 5);
    let t = Tensors::new(&weights.layout.tensors, &weights.data);
    let (n, s) = (cache.dims().cells_usize(), cfg.state_size as usize);
    let x0 = states(n, s);
    let got = run(&cache, &weights, &x0);
    let x64: Vec<f64> = x0.iter().map(|&v| f64::from(v)).collect();
    let mut worst = 0.0f64;
    let cells = probe_cells(cfg);
    for &i in &cells {
        let classes = neighbors_of(cfg, i);
        let counts = [0, 1, 2].map(|k| classes[k].len() as u32);
        assert_eq!(
            cache.class_counts(i as u32),
            counts,
            "cell {i}: neighbors per class"
        );
        let want = next_state(cfg, &t, &x64, i);
        let what = format!("{engine} {:?} cell {i}", cfg.combine);
        // Values are O(1); f32 rounding over ~10 layers and sums of up to a few hundred
        // neighbors stays near 1e-6, far below what a wrong formula gives (≥ 1e-2).
        worst = worst.max(oracle::assert_close(
            &what,
            &got[i * s..(i + 1) * s],
            &want,
            tol,
            1.0,
        ));
    }
    eprintln!(
        "{engine}: {} cells, worst relative difference {worst:e}",
        cells.len()
    );
}

fn cpu_step(cfg: &MoeConfig) -> impl Fn(&NeighborCache, &MoeWeights, &[f32]) -> Vec<f32> {
    move |cache, w, x0| {
        let net = MoeNet::new(&w.layout, &w.data, cfg.combine, cfg.ode_steps);
        let mut engine = CpuMoe::new(net, cache, x0.to_vec(), 1);
        engine.step().unwrap_or_else(|e| match e {});
        engine.states().unwrap_or_else(|e| match e {})
    }
}

#[test]
fn cpu_moe_step_matches_the_oracle_on_debug_and_periodic_with_both_combines() {
    for name in ["debug.ron", "periodic.ron"] {
        for combine in [Combine::Residual, Combine::Replace] {
            let cfg = MoeConfig {
                combine,
                ..preset(name)
            };
            check(&cfg, "cpu", 1e-5, cpu_step(&cfg));
        }
    }
}

#[test]
fn gpu_moe_step_matches_the_oracle() {
    let Some(ctx) = lattice_gpu::test_context() else {
        return;
    };
    for name in ["debug.ron", "periodic.ron"] {
        let cfg = MoeConfig {
            combine: Combine::Residual,
            ..preset(name)
        };
        check(&cfg, "gpu", 2e-5, |cache, w, x0| {
            let neighbors = lattice_gpu::gather::GpuNeighbors::upload(&ctx, cache).unwrap();
            let kernels =
                lattice_gpu::moe::MoeKernels::new(&ctx, &w.layout, cfg.ode_steps).unwrap();
            let moe = lattice_gpu::moe::GpuMoe::new(
                &ctx,
                cache,
                &neighbors,
                &kernels,
                &w.data,
                cfg.combine,
                x0,
                1,
            )
            .unwrap();
            let mut engine = lattice_gpu::moe::GpuMoeEngine::new(&ctx, moe);
            engine.step().unwrap();
            engine.states().unwrap()
        });
    }
}

#[test]
fn the_oracle_is_not_the_identity() {
    // Guards the comparison itself: the step moves every probed cell well beyond the tolerance.
    let cfg = preset("debug.ron");
    let weights = MoeWeights::seeded(ParamLayout::new(MoeShape::from_config(&cfg)), 5);
    let t = Tensors::new(&weights.layout.tensors, &weights.data);
    let s = cfg.state_size as usize;
    let x0: Vec<f64> = states(15 * 15 * 15, s)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    for i in probe_cells(&cfg) {
        let next = next_state(&cfg, &t, &x0, i);
        let moved = (0..s)
            .map(|c| (next[c] - x0[i * s + c]).abs())
            .fold(0.0, f64::max);
        assert!(moved > 1e-2, "cell {i} moved only {moved}");
    }
    // And the GELU is the exact one: GELU(1) = 0.8413447460685429.
    approx::assert_relative_eq!(gelu(1.0), 0.841_344_746_068_542_9, max_relative = 1e-15);
}
