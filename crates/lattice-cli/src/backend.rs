//! `--backend` on the command line, onto the library's choice.

use clap::{Args, ValueEnum};
use lattice_sim::{BackendChoice, GpuRequest};

use crate::ranks::Ranks;

/// Where to run: gpu fails if no adapter exists; auto falls back to the CPU with a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Auto,
    Gpu,
    Cpu,
}

impl From<BackendArg> for BackendChoice {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Auto => Self::Auto,
            BackendArg::Gpu => Self::Gpu,
            BackendArg::Cpu => Self::Cpu,
        }
    }
}

/// Which GPU a process opens.
#[derive(Debug, Clone, Args)]
pub struct GpuArgs {
    /// The GPU to use, numbered as `lattice info` lists the usable ones (also `LATTICE_GPU`);
    /// default: under MPI the node-local rank's, else the first.
    #[arg(long, global = true, value_name = "N")]
    pub gpu: Option<usize>,
    /// Also use an adapter whose API the kernels are not validated on (OpenGL), once it has
    /// passed a self-check against the CPU path.
    #[arg(long, global = true)]
    pub allow_untrusted_gpu: bool,
}

impl GpuArgs {
    /// The request: `--gpu` over `LATTICE_GPU`, the node-local rank, `CUDA_VISIBLE_DEVICES`.
    ///
    /// # Errors
    /// `LATTICE_GPU` that is not a number.
    pub fn request(&self, ranks: &Ranks) -> anyhow::Result<GpuRequest> {
        let mut req = GpuRequest::from_env().map_err(anyhow::Error::msg)?;
        req.device = self.gpu.or(req.device);
        req.local_rank = ranks.local_rank();
        req.allow_untrusted = self.allow_untrusted_gpu;
        Ok(req)
    }
}
