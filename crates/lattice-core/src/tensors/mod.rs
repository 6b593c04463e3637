//! Named f32 tensors packed in one flat buffer: the layout (names, shapes, initialisation,
//! offsets) that CPU kernels and generated WGSL headers both index, and the weights that fill
//! it (seeded or loaded from safetensors). Each network (MoE, flows) builds its own layout.

mod init;
mod weights;

use std::collections::BTreeMap;

pub use weights::{NamedTensors, Weights, WeightsError};

/// How a tensor is initialised from the seed (documented per tensor in docs/weights.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in): PyTorch's default for Linear weights and biases.
    Uniform {
        fan_in: u32,
    },
    Const(f32),
    /// N(0, std²).
    Normal {
        std: f32,
    },
    /// Xavier (Glorot) uniform: U(±√(6 / (fan_in + fan_out))).
    XavierUniform {
        fan_in: u32,
        fan_out: u32,
    },
    /// Orthonormal columns of a `[rows, cols]` matrix (rows ≥ cols), from a Gaussian matrix by
    /// Gram–Schmidt, as `torch.nn.init.orthogonal_`.
    Orthogonal,
    /// Zeros except elements `[from, to)`, which are `value` (the GRU's update-gate bias).
    ConstRange {
        from: u32,
        to: u32,
        value: f32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<u32>,
    pub init: Init,
    /// Offset of the first element in the flat buffer.
    pub offset: u32,
}

impl TensorSpec {
    pub fn len(&self) -> u32 {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.len()) as usize
    }
}

/// Every tensor of one network, in buffer order.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorLayout {
    /// What the network is, for error messages ("MoE network, S = 24").
    pub label: String,
    pub tensors: Vec<TensorSpec>,
    index: BTreeMap<String, usize>,
}

impl TensorLayout {
    pub fn builder(label: impl Into<String>) -> LayoutBuilder {
        LayoutBuilder {
            label: label.into(),
            tensors: Vec::new(),
            next: 0,
        }
    }

    pub fn total(&self) -> u32 {
        self.tensors.iter().map(TensorSpec::len).sum()
    }

    pub fn get(&self, name: &str) -> Option<&TensorSpec> {
        self.index.get(name).map(|&k| &self.tensors[k])
    }

    /// Offset of a tensor that the layout always has.
    pub fn offset(&self, name: &str) -> u32 {
        self.get(name)
            .unwrap_or_else(|| panic!("tensor {name} is part of every {} layout", self.label))
            .offset
    }

    /// Parameter count of the tensors whose names start with `prefix`.
    pub fn count(&self, prefix: &str) -> u32 {
        self.tensors
            .iter()
            .filter(|t| t.name.starts_with(prefix))
            .map(TensorSpec::len)
            .sum()
    }
}

/// Appends tensors at consecutive offsets.
pub struct LayoutBuilder {
    label: String,
    tensors: Vec<TensorSpec>,
    next: u32,
}

impl LayoutBuilder {
    pub fn push(&mut self, name: String, shape: Vec<u32>, init: Init) {
        let spec = TensorSpec {
            name,
            shape,
            init,
            offset: self.next,
        };
        self.next += spec.len();
        self.tensors.push(spec);
    }

    /// `{p}.weight [out, in]` and `{p}.bias [out]`, stored as PyTorch stores them, with
    /// PyTorch's default initialisation.
    pub fn linear(&mut self, p: &str, input: u32, out: u32) {
        let init = Init::Uniform { fan_in: input };
        self.linear_with(p, input, out, init, init);
    }

    pub fn linear_with(&mut self, p: &str, input: u32, out: u32, weight: Init, bias: Init) {
        self.push(format!("{p}.weight"), vec![out, input], weight);
        self.push(format!("{p}.bias"), vec![out], bias);
    }

    /// LayerNorm affine parameters: weight 1, bias 0.
    pub fn norm(&mut self, p: &str, width: u32) {
        self.push(format!("{p}.weight"), vec![width], Init::Const(1.0));
        self.push(format!("{p}.bias"), vec![width], Init::Const(0.0));
    }

    pub fn scalar(&mut self, name: &str, v: f32) {
        self.push(name.into(), vec![1], Init::Const(v));
    }

    pub fn build(self) -> TensorLayout {
        let index = self
            .tensors
            .iter()
            .enumerate()
            .map(|(k, t)| (t.name.clone(), k))
            .collect();
        TensorLayout {
            label: self.label,
            tensors: self.tensors,
            index,
        }
    }
}

/// A network layout: the tensor list plus whatever sizes the network needs.
pub trait Layout: Clone {
    fn tensors(&self) -> &TensorLayout;
}

impl Layout for TensorLayout {
    fn tensors(&self) -> &TensorLayout {
        self
    }
}
