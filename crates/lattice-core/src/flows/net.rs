//! The per-flow networks on the CPU: SimpleNeuron, the GRU carrier and its two heads, and the
//! move rule (noise, reflection, termination, spawn request). The kernels
//! `lattice-gpu/shaders/flow_*.wgsl` compute the same values with the same constants and the same summation order.

use super::coords::reflect;
use super::noise::gauss;
use super::params::{DISP_HIDDEN, FlowLayout, FlowShape};
use super::state::{event, status};
use crate::math::{gelu, layer_norm, linear, linear_t, sigmoid, tanh};

/// Carrier inputs and hidden states are cleaned like this before the GRU (NaN → 0, ±10).
#[inline]
pub fn sane(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-10.0, 10.0)
    }
}

/// Settings of one step that every flow shares.
#[derive(Debug, Clone, Copy)]
pub struct MoveRule {
    pub displacement_scale: f32,
    pub noise: f32,
    pub reflection: bool,
    /// Spawn threshold τ (0 = spawn off) and the cap per step.
    pub spawn_threshold: f32,
    pub spawn_max: u32,
    pub step: u32,
    /// The early-stop rule, for an engine that applies it itself
    /// (`FlowEngine::decides_stops`).
    pub stop: Option<super::convergence::StopRule>,
}

/// What one step does to one flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    pub pos: [f32; 4],
    pub prev: [f32; 4],
    pub status: u32,
    pub event: u32,
    pub spawn: u32,
}

struct Lin {
    w: usize,
    b: usize,
}

/// Weights of the flow networks, with the transposed copies the CPU uses for the wide layers.
pub struct FlowNet<'a> {
    pub sh: FlowShape,
    w: &'a [f32],
    coord: Lin,
    fc1: Lin,
    norm1: Lin,
    fc2: Lin,
    norm2: Lin,
    fc3: Lin,
    /// Per layer: (W_ihᵀ [in, 3Hc], W_hhᵀ [Hc, 3Hc], b_ih, b_hh offsets).
    gru: Vec<(Vec<f32>, Vec<f32>, usize, usize)>,
    energy1_t: Vec<f32>,
    energy1_b: usize,
    energy2: Lin,
    disp1_t: Vec<f32>,
    disp1_b: usize,
    disp2: Lin,
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

impl<'a> FlowNet<'a> {
    pub fn new(layout: &FlowLayout, w: &'a [f32]) -> Self {
        assert_eq!(w.len(), layout.total() as usize, "weights match the layout");
        let sh = layout.shape;
        let lin = |p: &str| Lin {
            w: layout.offset(&format!("{p}.weight")) as usize,
            b: layout.offset(&format!("{p}.bias")) as usize,
        };
        let hc = sh.hidden as usize;
        let mat = |name: &str, rows: usize, cols: usize| {
            let o = layout.offset(name) as usize;
            transpose(&w[o..o + rows * cols], rows, cols)
        };
        let gru = (0..sh.layers)
            .map(|l| {
                let input = sh.layer_in(l) as usize;
                (
                    mat(&format!("carrier.gru.weight_ih_l{l}"), 3 * hc, input),
                    mat(&format!("carrier.gru.weight_hh_l{l}"), 3 * hc, hc),
                    layout.offset(&format!("carrier.gru.bias_ih_l{l}")) as usize,
                    layout.offset(&format!("carrier.gru.bias_hh_l{l}")) as usize,
                )
            })
            .collect();
        Self {
            sh,
            w,
            coord: lin("neuron.coord"),
            fc1: lin("neuron.fc1"),
            norm1: lin("neuron.norm1"),
            fc2: lin("neuron.fc2"),
            norm2: lin("neuron.norm2"),
            fc3: lin("neuron.fc3"),
            gru,
            energy1_t: mat("carrier.energy1.weight", hc / 2, hc),
            energy1_b: layout.offset("carrier.energy1.bias") as usize,
            energy2: lin("carrier.energy2"),
            disp1_t: mat("carrier.disp1.weight", DISP_HIDDEN as usize, hc),
            disp1_b: layout.offset("carrier.disp1.bias") as usize,
            disp2: lin("carrier.disp2"),
        }
    }

    fn at(&self, o: usize, n: usize) -> &[f32] {
        &self.w[o..o + n]
    }

    /// SimpleNeuron on the normalized position (used as it is, not re-normalized) and energy;
    /// writes the carrier input `[neuron(64), energy]`, cleaned.
    pub fn neuron(&self, p: [f32; 4], x: &mut [f32]) {
        let nh = self.sh.neuron_hidden as usize;
        let no = self.sh.neuron_out as usize;
        let mut u = [0.0f32; 4];
        // Only the first 3 of the coordinate encoder's 12 outputs are used.
        linear(
            self.at(self.coord.w, 9),
            self.at(self.coord.b, 3),
            3,
            &[&p[..3]],
            &mut u[..3],
        );
        u[3] = p[3];
        let mut a = vec![0.0f32; nh];
        linear(
            self.at(self.fc1.w, nh * 4),
            self.at(self.fc1.b, nh),
            4,
            &[&u],
            &mut a,
        );
        layer_norm_gelu(&mut a, self.at(self.norm1.w, nh), self.at(self.norm1.b, nh));
        let mut c = vec![0.0f32; nh];
        linear(
            self.at(self.fc2.w, nh * nh),
            self.at(self.fc2.b, nh),
            nh,
            &[&a],
            &mut c,
        );
        layer_norm_gelu(&mut c, self.at(self.norm2.w, nh), self.at(self.norm2.b, nh));
        linear(
            self.at(self.fc3.w, no * nh),
            self.at(self.fc3.b, no),
            nh,
            &[&c],
            &mut x[..no],
        );
        x[no] = p[3];
        for v in x.iter_mut() {
            *v = sane(*v);
        }
    }

    /// All GRU layers on one flow; `hidden` (`[L, Hc]`) is cleaned, updated in place, and the
    /// new top layer is left in `top`.
    pub fn gru(&self, x: &[f32], hidden: &mut [f32], top: &mut [f32]) {
        let hc = self.sh.hidden as usize;
        let mut gi = vec![0.0f32; 3 * hc];
        let mut gh = vec![0.0f32; 3 * hc];
        let mut input = x.to_vec();
        for (l, (wih, whh, bih, bhh)) in self.gru.iter().enumerate() {
            let h = &mut hidden[l * hc..(l + 1) * hc];
            for v in h.iter_mut() {
                *v = sane(*v);
            }
            linear_t(wih, self.at(*bih, 3 * hc), &[&input], &mut gi);
            linear_t(whh, self.at(*bhh, 3 * hc), &[h], &mut gh);
            for u in 0..hc {
                let r = sigmoid(gi[u] + gh[u]);
                let z = sigmoid(gi[hc + u] + gh[hc + u]);
                let n = tanh(gi[2 * hc + u] + r * gh[2 * hc + u]);
                h[u] = ((1.0 - z) * n + z * h[u]).clamp(-10.0, 10.0);
            }
            input.clear();
            input.extend_from_slice(h);
        }
        top.copy_from_slice(&input);
    }

    /// Energy and raw (pre-clamp, unscaled) displacement from the top hidden layer.
    pub fn heads(&self, top: &[f32]) -> (f32, [f32; 3]) {
        let hc = self.sh.hidden as usize;
        let mut e1 = vec![0.0f32; hc / 2];
        linear_t(
            &self.energy1_t,
            self.at(self.energy1_b, hc / 2),
            &[top],
            &mut e1,
        );
        let mut acc = 0.0f32;
        for (o, v) in e1.iter().enumerate() {
            acc += self.w[self.energy2.w + o] * gelu(*v);
        }
        let energy = tanh(acc + self.w[self.energy2.b]);
        let dh = DISP_HIDDEN as usize;
        let mut d1 = vec![0.0f32; dh];
        linear_t(&self.disp1_t, self.at(self.disp1_b, dh), &[top], &mut d1);
        let mut d = [0.0f32; 3];
        for (o, v) in d1.iter().enumerate() {
            let g = gelu(*v);
            for (a, da) in d.iter_mut().enumerate() {
                *da += self.w[self.disp2.w + a * dh + o] * g;
            }
        }
        for (a, da) in d.iter_mut().enumerate() {
            *da += self.w[self.disp2.b + a];
        }
        (energy, d)
    }

    /// One step of one live flow: networks, then the move rule. `flow` is the flow's
    /// item-local id and `seed` its item's noise seed: a flow's noise follows the flow, not
    /// the slot it happens to occupy.
    pub fn advance(
        &self,
        rule: &MoveRule,
        p: [f32; 4],
        hidden: &mut [f32],
        flow: u32,
        seed: [u32; 2],
    ) -> Move {
        let mut x = vec![0.0f32; self.sh.carrier_in() as usize];
        self.neuron(p, &mut x);
        let mut top = vec![0.0f32; self.sh.hidden as usize];
        self.gru(&x, hidden, &mut top);
        let (energy, d) = self.heads(&top);
        apply_move(rule, p, energy, d, flow, seed)
    }
}

/// LayerNorm then GELU, in place.
fn layer_norm_gelu(v: &mut [f32], w: &[f32], b: &[f32]) {
    layer_norm(v, w, b);
    for x in v.iter_mut() {
        *x = gelu(*x);
    }
}

/// The move rule on a flow at `p` given the heads' energy and raw displacement `d`.
pub fn apply_move(
    rule: &MoveRule,
    p: [f32; 4],
    energy: f32,
    d: [f32; 3],
    flow: u32,
    seed: [u32; 2],
) -> Move {
    let mut raw = [0.0f32; 3];
    for a in 0..3 {
        let mut v = p[a] + (d[a] * rule.displacement_scale).clamp(-0.5, 0.5);
        if rule.noise > 0.0 {
            v += rule.noise * gauss(seed, flow, rule.step, a as u32);
        }
        raw[a] = v;
    }
    let mut ev = 0;
    let outside = |v: f32| !(-1.0..=1.0).contains(&v);
    let (x, y) = if rule.reflection {
        if outside(raw[0]) || outside(raw[1]) {
            ev |= event::REFLECTED;
        }
        (reflect(raw[0]), reflect(raw[1]))
    } else {
        (raw[0].clamp(-1.0, 1.0), raw[1].clamp(-1.0, 1.0))
    };
    let z = raw[2].clamp(-1.0, 1.0);
    let st = if z <= -1.0 {
        status::FRONT
    } else if z >= 1.0 {
        status::BACK
    } else {
        status::MOVING
    };
    let mut spawn = 0;
    if st == status::MOVING && rule.spawn_threshold > 0.0 {
        spawn = spawn_count(rule, p, raw);
    } else if st != status::MOVING {
        ev |= event::TERMINATED;
    }
    Move {
        pos: [x, y, z, energy],
        prev: [p[0], p[1], p[2], energy],
        status: st,
        event: ev,
        spawn,
    }
}

/// Children a moving flow asks for (docs/model.md B7): `L = ‖next − p‖` with `next` the
/// move clamped to the lattice, measured before any reflection, so a move pushed past a side
/// wall counts only its part inside; `min(⌊L/τ⌋ − 1, cap)` when `L > τ`.
pub fn spawn_count(rule: &MoveRule, p: [f32; 4], raw: [f32; 3]) -> u32 {
    let d = |a: usize| raw[a].clamp(-1.0, 1.0) - p[a];
    let (dx, dy, dz) = (d(0), d(1), d(2));
    let len = (dx * dx + dy * dy + dz * dz).sqrt();
    if len > rule.spawn_threshold {
        let n = (len / rule.spawn_threshold).floor() as u32;
        n.saturating_sub(1).min(rule.spawn_max)
    } else {
        0
    }
}
