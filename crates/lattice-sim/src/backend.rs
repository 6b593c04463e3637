//! Choosing the GPU or the CPU path.

use lattice_gpu::{GpuContext, GpuError, GpuRequest};

use crate::error::{Error, Result};
use crate::self_check::self_check;

/// Where a caller asks a run to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// A hardware GPU if there is one, else the CPU (said in one log line).
    #[default]
    Auto,
    /// The GPU, or an error saying how to get one.
    Gpu,
    /// The rayon CPU path.
    Cpu,
}

/// The backend a run ended up on.
pub enum Backend {
    /// A wgpu device.
    Gpu(Box<GpuContext>),
    /// The rayon CPU path.
    Cpu,
}

impl Backend {
    /// Opens the chosen backend on the first usable GPU, or the one `LATTICE_GPU` names (and
    /// among those `CUDA_VISIBLE_DEVICES` lists). `Auto` takes a hardware GPU, and runs on the
    /// CPU path when there is only a software adapter (lavapipe) or none, with a log line
    /// saying why. Only the APIs the kernels are validated on are used.
    ///
    /// # Errors
    /// [`Error::Gpu`] when `Gpu` is chosen and no device can be opened, or `LATTICE_GPU` is
    /// not a GPU index.
    pub fn select(choice: BackendChoice) -> Result<Self> {
        if choice == BackendChoice::Cpu {
            return Ok(Self::Cpu);
        }
        let req = GpuRequest::from_env().map_err(|m| Error::Gpu {
            context: "choosing the GPU",
            source: GpuError::Request(m),
        })?;
        Self::select_with(choice, &req)
    }

    /// [`Self::select`] with the GPU `req` asks for: an explicit one, the node-local rank's
    /// (one GPU per process when several share a machine), or an adapter of an API the kernels
    /// are not validated on, which must first pass a self-check against the CPU path.
    ///
    /// # Errors
    /// As [`Self::select`]; with `Gpu`, [`Error::SelfCheck`] when an untrusted adapter
    /// disagrees with the CPU (`Auto` then runs on the CPU path, with a warning).
    pub fn select_with(choice: BackendChoice, req: &GpuRequest) -> Result<Self> {
        let open = || GpuContext::open_requested(req).map_err(Error::gpu("opening the GPU"));
        // An untrusted adapter is checked only once a run is to use it.
        let checked = |ctx: GpuContext| {
            if ctx.trusted {
                Ok(ctx)
            } else {
                self_check(ctx)
            }
        };
        match choice {
            BackendChoice::Cpu => Ok(Self::Cpu),
            BackendChoice::Gpu => Ok(Self::Gpu(Box::new(checked(open()?)?))),
            BackendChoice::Auto => Ok(match open() {
                // A software rasterizer (lavapipe/llvmpipe) shares the CPU with rayon and is
                // far slower than the CPU path: it is for testing the shaders, not for runs.
                Ok(ctx) if ctx.adapter.device_type == "Cpu" => {
                    tracing::info!(
                        "only a software GPU adapter ({}) was found; running on the faster CPU \
                         path (use --backend gpu to run the shaders on it anyway)",
                        ctx.adapter.name
                    );
                    Self::Cpu
                }
                Ok(ctx) => match checked(ctx) {
                    Ok(ctx) => Self::Gpu(Box::new(ctx)),
                    Err(e) => {
                        tracing::warn!("{e}; running on the CPU path");
                        Self::Cpu
                    }
                },
                Err(e) => {
                    tracing::warn!("no usable GPU, running on the CPU path: {e}");
                    Self::Cpu
                }
            }),
        }
    }

    /// "gpu (adapter, API)" or "cpu (rayon, N threads)".
    pub fn name(&self) -> String {
        match self {
            Self::Gpu(ctx) => format!("gpu ({}, {})", ctx.adapter.name, ctx.adapter.backend),
            Self::Cpu => format!("cpu (rayon, {} threads)", rayon_threads()),
        }
    }
}

/// Threads the CPU path runs on.
pub fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
