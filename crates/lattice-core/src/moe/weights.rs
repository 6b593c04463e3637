//! MoE weights: seeded initialisation (ChaCha8, one stream per tensor) and safetensors I/O.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};

use super::params::{Init, ParamLayout};
use crate::io::write_atomic;
use crate::seeds::derive_seed;

/// All MoE tensors, packed in [`ParamLayout`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeWeights {
    pub layout: ParamLayout,
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
    #[error("{path}: tensor `{name}` is missing (expected shape {shape:?}, f32)")]
    Missing {
        path: PathBuf,
        name: String,
        shape: Vec<u32>,
    },
    #[error(
        "{path}: tensor `{name}` is not part of this network (config sizes: S = {s}); remove it or check the config"
    )]
    Extra { path: PathBuf, name: String, s: u32 },
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

impl MoeWeights {
    /// Every tensor drawn from its own ChaCha8 stream, seeded by hashing (seed, tensor name), so
    /// adding a tensor never changes the others.
    pub fn seeded(layout: ParamLayout, seed: u64) -> Self {
        let mut data = vec![0.0f32; layout.total() as usize];
        for t in &layout.tensors {
            let dst = &mut data[t.offset as usize..(t.offset + t.len()) as usize];
            match t.init {
                Init::Const(v) => dst.fill(v),
                Init::Uniform { fan_in } => {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    let mut rng =
                        ChaCha8Rng::seed_from_u64(derive_seed(seed, &["weights", &t.name]));
                    for v in dst {
                        *v = rng.random_range(-bound..bound);
                    }
                }
            }
        }
        Self { layout, data }
    }

    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        let t = self.layout.get(name)?;
        Some(&self.data[t.offset as usize..(t.offset + t.len()) as usize])
    }

    /// Saves every tensor as F32 with its PyTorch-style shape, atomically.
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        let bytes: &[u8] = bytemuck::cast_slice(&self.data);
        let views: Vec<(String, TensorView<'_>)> = self
            .layout
            .tensors
            .iter()
            .map(|t| {
                let shape = t.shape.iter().map(|&d| d as usize).collect();
                let range = t.offset as usize * 4..(t.offset + t.len()) as usize * 4;
                let view = TensorView::new(Dtype::F32, shape, &bytes[range])
                    .expect("layout shapes match their byte ranges");
                (t.name.clone(), view)
            })
            .collect();
        let blob = safetensors::serialize(views, None).map_err(|e| WeightsError::Format {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_atomic(path, |w| std::io::Write::write_all(w, &blob))?;
        Ok(())
    }

    /// Loads a file that must hold exactly the layout's tensors, with its shapes, as F32.
    pub fn load(layout: ParamLayout, path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Read {
            path: path.into(),
            source,
        })?;
        let file =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
                path: path.into(),
                message: e.to_string(),
            })?;
        let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
        names.sort();
        if let Some(extra) = names.iter().find(|n| layout.get(n).is_none()) {
            return Err(WeightsError::Extra {
                path: path.into(),
                name: extra.clone(),
                s: layout.shape.s,
            });
        }
        let mut data = vec![0.0f32; layout.total() as usize];
        for t in &layout.tensors {
            let view = file.tensor(&t.name).map_err(|_| WeightsError::Missing {
                path: path.into(),
                name: t.name.clone(),
                shape: t.shape.clone(),
            })?;
            if view.dtype() != Dtype::F32 {
                return Err(WeightsError::DType {
                    path: path.into(),
                    name: t.name.clone(),
                    got: view.dtype(),
                });
            }
            let want: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            if view.shape() != want.as_slice() {
                return Err(WeightsError::Shape {
                    path: path.into(),
                    name: t.name.clone(),
                    got: view.shape().to_vec(),
                    want: t.shape.clone(),
                });
            }
            let dst = &mut data[t.offset as usize..(t.offset + t.len()) as usize];
            for (v, chunk) in dst.iter_mut().zip(view.data().chunks_exact(4)) {
                *v = f32::from_le_bytes(chunk.try_into().expect("4-byte chunk"));
            }
        }
        Ok(Self { layout, data })
    }
}
