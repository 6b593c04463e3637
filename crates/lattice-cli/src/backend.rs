//! Choosing the GPU or the CPU path.

use clap::ValueEnum;
use lattice_gpu::GpuContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Auto,
    Gpu,
    Cpu,
}

/// The backend a run ended up on.
pub enum Backend {
    Gpu(Box<GpuContext>),
    Cpu,
}

impl Backend {
    pub fn select(choice: BackendChoice) -> anyhow::Result<Self> {
        match choice {
            BackendChoice::Cpu => Ok(Self::Cpu),
            BackendChoice::Gpu => Ok(Self::Gpu(Box::new(GpuContext::new()?))),
            BackendChoice::Auto => match GpuContext::new() {
                // A software rasterizer (lavapipe/llvmpipe) shares the CPU with rayon and is
                // far slower than the CPU path: it is for testing the shaders, not for runs.
                Ok(ctx) if ctx.adapter.device_type == "Cpu" => {
                    tracing::info!(
                        "only a software GPU adapter ({}) was found; running on the faster CPU \
                         path (use --backend gpu to run the shaders on it anyway)",
                        ctx.adapter.name
                    );
                    Ok(Self::Cpu)
                }
                Ok(ctx) => Ok(Self::Gpu(Box::new(ctx))),
                Err(e) => {
                    tracing::warn!("no usable GPU, running on the CPU path: {e}");
                    Ok(Self::Cpu)
                }
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Gpu(ctx) => format!("gpu ({}, {})", ctx.adapter.name, ctx.adapter.backend),
            Self::Cpu => format!("cpu (rayon, {} threads)", rayon_threads()),
        }
    }
}

pub fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
