//! Weights of one network: seeded initialisation (ChaCha8, one stream per tensor) and
//! safetensors I/O that checks every name, shape and dtype against the layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use super::{Layout, TensorSpec, init};
use crate::io::write_atomic;
use crate::seeds::derive_seed;

/// Tensors by name: `name → (shape, values)` (a safetensors file's, a Python dict's).
pub type NamedTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// All tensors of a network, packed in layout order.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<L> {
    pub layout: L,
    pub data: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Layout {
        path: PathBuf,
        #[source]
        source: crate::formats::FormatMismatch,
    },
    #[error("{path}: tensor `{name}` is missing (expected shape {shape:?}, f32)")]
    Missing {
        path: PathBuf,
        name: String,
        shape: Vec<u32>,
    },
    #[error("{path}: tensor `{name}` is not part of the {network}; remove it or check the config")]
    Extra {
        path: PathBuf,
        name: String,
        network: String,
    },
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {want:?}")]
    Shape {
        path: PathBuf,
        name: String,
        got: Vec<usize>,
        want: Vec<u32>,
    },
    #[error("{path}: tensor `{name}` has dtype {got:?}, expected F32")]
    DType {
        path: PathBuf,
        name: String,
        got: Dtype,
    },
    #[error("cannot write weights: {0}")]
    Write(#[from] crate::io::IoError),
}

impl<L: Layout> Weights<L> {
    /// Every tensor drawn from its own ChaCha8 stream, seeded by hashing (seed, tensor name), so
    /// adding a tensor never changes the others (and tensors can be filled in parallel).
    pub fn seeded(layout: L, seed: u64) -> Self {
        let mut data = vec![0.0f32; layout.tensors().total() as usize];
        let mut slices: Vec<(&TensorSpec, &mut [f32])> = Vec::new();
        let mut rest = data.as_mut_slice();
        for t in &layout.tensors().tensors {
            let (head, tail) = rest.split_at_mut(t.len() as usize);
            slices.push((t, head));
            rest = tail;
        }
        slices.into_par_iter().for_each(|(t, dst)| {
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &["weights", &t.name]));
            init::fill(t, &mut rng, dst);
        });
        Self { layout, data }
    }

    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        let t = self.layout.tensors().get(name)?;
        Some(&self.data[t.range()])
    }

    /// Saves every tensor as F32 with its PyTorch-style shape, atomically.
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        let bytes: &[u8] = bytemuck::cast_slice(&self.data);
        let views: Vec<(String, TensorView<'_>)> = self
            .layout
            .tensors()
            .tensors
            .iter()
            .map(|t| {
                let shape = t.shape.iter().map(|&d| d as usize).collect();
                let r = t.range();
                let view = TensorView::new(Dtype::F32, shape, &bytes[r.start * 4..r.end * 4])
                    .expect("layout shapes match their byte ranges");
                (t.name.clone(), view)
            })
            .collect();
        let meta = Some(crate::formats::metadata());
        let blob = safetensors::serialize(views, meta).map_err(|e| WeightsError::Format {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_atomic(path, |w| std::io::Write::write_all(w, &blob))?;
        Ok(())
    }

    /// Loads a file that must hold exactly the layout's tensors, with its shapes, as F32.
    pub fn load(layout: L, path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Read {
            path: path.into(),
            source,
        })?;
        let format = |message: String| WeightsError::Format {
            path: path.into(),
            message,
        };
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
        crate::formats::check_metadata(meta.metadata().as_ref()).map_err(|source| {
            WeightsError::Layout {
                path: path.into(),
                source,
            }
        })?;
        let file =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
        let mut named = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(WeightsError::DType {
                    path: path.into(),
                    name,
                    got: view.dtype(),
                });
            }
            let data = (view.data().chunks_exact(4))
                .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk")))
                .collect();
            named.insert(name, (view.shape().to_vec(), data));
        }
        Self::from_named(layout, path, named)
    }

    /// Weights from named tensors (`name → (shape, values)`), checked as a file is: exactly
    /// the layout's tensors, each with its shape. `origin` names where they came from in
    /// errors (a file, a Python dict).
    pub fn from_named(layout: L, origin: &Path, named: NamedTensors) -> Result<Self, WeightsError> {
        let tl = layout.tensors();
        if let Some(extra) = named.keys().find(|n| tl.get(n).is_none()) {
            return Err(WeightsError::Extra {
                path: origin.into(),
                name: extra.clone(),
                network: tl.label.clone(),
            });
        }
        let mut data = vec![0.0f32; tl.total() as usize];
        for t in &tl.tensors {
            let (shape, values) = named.get(&t.name).ok_or_else(|| WeightsError::Missing {
                path: origin.into(),
                name: t.name.clone(),
                shape: t.shape.clone(),
            })?;
            let want: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            if *shape != want || values.len() != t.len() as usize {
                return Err(WeightsError::Shape {
                    path: origin.into(),
                    name: t.name.clone(),
                    got: shape.clone(),
                    want: t.shape.clone(),
                });
            }
            data[t.range()].copy_from_slice(values);
        }
        Ok(Self { layout, data })
    }

    /// Every tensor as `(name, shape, values)`, in layout order.
    pub fn named(&self) -> impl Iterator<Item = (&str, &[u32], &[f32])> {
        (self.layout.tensors().tensors.iter())
            .map(|t| (t.name.as_str(), t.shape.as_slice(), &self.data[t.range()]))
    }
}
