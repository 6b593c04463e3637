//! Choosing the GPU or the CPU path.

use lattice_gpu::GpuContext;

use crate::error::{Error, Result};

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
    /// Opens the chosen backend. `Auto` takes a hardware GPU, and runs a software adapter
    /// (lavapipe) or no adapter on the CPU path instead, with a log line saying why.
    ///
    /// # Errors
    /// [`Error::Gpu`] when `Gpu` is chosen and no device can be opened.
    pub fn select(choice: BackendChoice) -> Result<Self> {
        Self::select_gpu(choice, None)
    }

    /// [`Self::select`] with the `index`-th GPU of the machine (counting around) rather than
    /// the high-performance one: one GPU per process when several share a machine.
    ///
    /// # Errors
    /// As [`Self::select`].
    pub fn select_gpu(choice: BackendChoice, index: Option<usize>) -> Result<Self> {
        let open = || match index {
            Some(k) => GpuContext::nth(k),
            None => GpuContext::new(),
        };
        match choice {
            BackendChoice::Cpu => Ok(Self::Cpu),
            BackendChoice::Gpu => Ok(Self::Gpu(Box::new(
                open().map_err(Error::gpu("opening the GPU"))?,
            ))),
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
                Ok(ctx) => Self::Gpu(Box::new(ctx)),
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
