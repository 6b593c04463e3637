//! The flow networks' tensors (mapper, SimpleNeuron, GRU carrier, collector): names, shapes
//! and initialisation, in one flat buffer that the CPU step and the WGSL header both index.
//! docs/weights.md lists them; this file is the source of truth it is checked against.

use crate::config::FlowsConfig;
use crate::tensors::{Init, Layout, TensorLayout};

/// Sizes of the flow networks, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowShape {
    pub w: u32,
    pub h: u32,
    pub d: u32,
    /// Embedding width E (768).
    pub embed: u32,
    /// GRU hidden size Hc.
    pub hidden: u32,
    /// GRU layers L.
    pub layers: u32,
    pub neuron_hidden: u32,
    pub neuron_out: u32,
    /// Whether the output collector's tensors exist.
    pub collector: bool,
}

/// Width of the SimpleNeuron's coordinate encoder; only its first 3 outputs are used (the
/// reference system discards the other 9, which stay in the file for import compatibility).
pub const COORD_OUT: u32 = 12;
/// Hidden width of the displacement head.
pub const DISP_HIDDEN: u32 = 64;

impl FlowShape {
    pub fn from_config(c: &FlowsConfig) -> Self {
        Self {
            w: c.dims.0,
            h: c.dims.1,
            d: c.dims.2,
            embed: c.embedding_dim,
            hidden: c.carrier.hidden,
            layers: c.carrier.layers,
            neuron_hidden: c.neuron.hidden,
            neuron_out: c.neuron.output,
            collector: c.collector,
        }
    }
    pub fn surface(&self) -> u32 {
        self.w * self.h
    }
    /// The mapper's and collector's inner width, `max(E/2, 2·W·H)`.
    pub fn inner(&self) -> u32 {
        (self.embed / 2).max(2 * self.surface())
    }
    /// Carrier input: the neuron's output and the energy.
    pub fn carrier_in(&self) -> u32 {
        self.neuron_out + 1
    }
    /// Input width of GRU layer `l`.
    pub fn layer_in(&self, l: u32) -> u32 {
        if l == 0 {
            self.carrier_in()
        } else {
            self.hidden
        }
    }
    /// Floats of hidden state per flow (all layers).
    pub fn hidden_len(&self) -> u32 {
        self.layers * self.hidden
    }
}

/// Every tensor of the flow networks and the sizes they come from. Derefs to its
/// [`TensorLayout`] for lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowLayout {
    pub shape: FlowShape,
    pub net: TensorLayout,
}

impl std::ops::Deref for FlowLayout {
    type Target = TensorLayout;
    fn deref(&self) -> &TensorLayout {
        &self.net
    }
}

impl Layout for FlowLayout {
    fn tensors(&self) -> &TensorLayout {
        &self.net
    }
}

impl FlowLayout {
    pub fn new(shape: FlowShape) -> Self {
        let sh = shape;
        let (wh, e, i) = (sh.surface(), sh.embed, sh.inner());
        let mut b = TensorLayout::builder(format!(
            "flow networks ({}×{} surface, GRU {}×{}{})",
            sh.w,
            sh.h,
            sh.hidden,
            sh.layers,
            if sh.collector { ", collector" } else { "" }
        ));
        push_mapper(&mut b, &sh);
        push_neuron(&mut b, &sh);
        push_carrier(&mut b, &sh);
        if sh.collector {
            b.linear("collector.fc1", wh, 2 * wh);
            b.norm("collector.norm1", 2 * wh);
            b.linear("collector.fc2", 2 * wh, i);
            b.norm("collector.norm2", i);
            b.linear("collector.fc3", i, e);
        }
        Self {
            shape,
            net: b.build(),
        }
    }
}

/// The mapper: embedding → W·H energies (three layers, a learned scale and positional bias).
fn push_mapper(b: &mut crate::tensors::LayoutBuilder, sh: &FlowShape) {
    let (wh, e, i) = (sh.surface(), sh.embed, sh.inner());
    b.linear("mapper.fc1", e, i);
    b.norm("mapper.norm1", i);
    b.linear("mapper.fc2", i, 2 * wh);
    b.norm("mapper.norm2", 2 * wh);
    b.linear("mapper.fc3", 2 * wh, wh);
    b.scalar("mapper.energy_scale", 1.0);
    b.scalar("mapper.energy_bias", 0.0);
    b.push(
        "mapper.positional".into(),
        vec![sh.h, sh.w],
        Init::Normal { std: 0.02 },
    );
}

/// The SimpleNeuron: position and energy → the carrier's input.
fn push_neuron(b: &mut crate::tensors::LayoutBuilder, sh: &FlowShape) {
    // kaiming_normal(fan_out, relu): std = √(2 / fan_out); biases 0.
    let kaiming = |b: &mut crate::tensors::LayoutBuilder, p: &str, input: u32, out: u32| {
        let std = (2.0 / out as f32).sqrt();
        b.linear_with(p, input, out, Init::Normal { std }, Init::Const(0.0));
    };
    let nh = sh.neuron_hidden;
    kaiming(b, "neuron.coord", 3, COORD_OUT);
    kaiming(b, "neuron.fc1", 4, nh);
    b.norm("neuron.norm1", nh);
    kaiming(b, "neuron.fc2", nh, nh);
    b.norm("neuron.norm2", nh);
    kaiming(b, "neuron.fc3", nh, sh.neuron_out);
}

/// The GRU carrier and its energy and displacement heads.
fn push_carrier(b: &mut crate::tensors::LayoutBuilder, sh: &FlowShape) {
    let hc = sh.hidden;
    for l in 0..sh.layers {
        let input = sh.layer_in(l);
        b.push(
            format!("carrier.gru.weight_ih_l{l}"),
            vec![3 * hc, input],
            Init::XavierUniform {
                fan_in: input,
                fan_out: 3 * hc,
            },
        );
        b.push(
            format!("carrier.gru.weight_hh_l{l}"),
            vec![3 * hc, hc],
            Init::Orthogonal,
        );
        // Gate order r, z, n as PyTorch; the update gate's bias starts at 1.
        let update = Init::ConstRange {
            from: hc,
            to: 2 * hc,
            value: 1.0,
        };
        b.push(format!("carrier.gru.bias_ih_l{l}"), vec![3 * hc], update);
        b.push(format!("carrier.gru.bias_hh_l{l}"), vec![3 * hc], update);
    }
    // Heads: xavier_uniform weights and zero biases, so the displacement's direction comes
    // from the flow's own state rather than from a shared bias.
    let xavier = |b: &mut crate::tensors::LayoutBuilder, p: &str, input: u32, out: u32| {
        let w = Init::XavierUniform {
            fan_in: input,
            fan_out: out,
        };
        b.linear_with(p, input, out, w, Init::Const(0.0));
    };
    xavier(b, "carrier.energy1", hc, hc / 2);
    xavier(b, "carrier.energy2", hc / 2, 1);
    xavier(b, "carrier.disp1", hc, DISP_HIDDEN);
    xavier(b, "carrier.disp2", DISP_HIDDEN, 3);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn debug_shape() -> FlowShape {
        FlowShape {
            w: 20,
            h: 20,
            d: 10,
            embed: 768,
            hidden: 256,
            layers: 2,
            neuron_hidden: 32,
            neuron_out: 64,
            collector: true,
        }
    }

    #[test]
    fn parameter_counts_match_the_reference_system() {
        let l = FlowLayout::new(debug_shape());
        // docs/model.md B5: SimpleNeuron 3504 parameters.
        assert_eq!(l.count("neuron."), 3504);
        // B3: the 28×28 mapper has ≈ 4.90 M parameters.
        let l28 = FlowLayout::new(FlowShape {
            w: 28,
            h: 28,
            ..debug_shape()
        });
        let m = l28.count("mapper.");
        assert!((4_890_000..4_910_000).contains(&m), "{m}");
        // PyTorch GRU(65 → 256, 2 layers): 3·256·(65 + 256 + 2) + 3·256·(256 + 256 + 2).
        assert_eq!(
            l.count("carrier.gru."),
            3 * 256 * (65 + 256 + 2 + 256 + 256 + 2)
        );
    }
}
