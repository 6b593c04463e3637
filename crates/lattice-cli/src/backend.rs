//! `--backend` on the command line, onto the library's choice.

use clap::ValueEnum;
use lattice_sim::BackendChoice;

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
