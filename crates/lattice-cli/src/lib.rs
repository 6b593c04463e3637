//! The `lattice` command line: run, validate and inspect lattice simulations from RON configs.
//! The binary (root package, `src/main.rs`) only calls [`main`]; everything a program needs is
//! in the `lattice-sim` library, re-exported by the root `lattice` crate.

mod backend;
mod cmd;
mod cost;
mod figures;
mod images;
mod progress;
mod ranks;
mod summary;
mod test_hooks;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use backend::BackendArg;

#[derive(Parser)]
#[command(
    name = "lattice",
    version,
    about = "3D cellular lattice simulation engine (wgpu + rayon)"
)]
struct Cli {
    /// Where to run: gpu fails if no adapter exists; auto falls back to the CPU with a note.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto, global = true)]
    backend: BackendArg,
    #[command(flatten)]
    gpu: backend::GpuArgs,
    /// Only errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every GPU adapter found and whether a run may use it (and why not), the one chosen,
    /// its limits and features.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Parse and check a config, build and validate its neighbor cache, and summarize.
    Validate {
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Look inside a config's lattice.
    Inspect {
        #[command(subcommand)]
        what: cmd::inspect::Inspect,
    },
    /// Run the simulation a config describes.
    Run(Box<cmd::run::RunArgs>),
    /// Embed texts with a local sentence encoder: `.npy` [texts, dim] of unit vectors, and a
    /// JSON report beside it (ids, tokens, per-batch time and memory).
    Embed(cmd::embed::EmbedArgs),
    /// Write the inputs a run would generate (MoE initial states, flows embeddings seeded or
    /// of texts) as numbered batch files with a manifest (batches.json), for `inputs:` in the
    /// config or --init-states/--embeddings DIR.
    Prepare(cmd::prepare::PrepareArgs),
    /// Benchmark matrix (neighbor cache, MoE presets) on the available backends: JSON on
    /// stdout, a table on stderr. With --backend auto every available backend is measured.
    Bench(cmd::bench::BenchArgs),
}

/// Colours only on a terminal, and never with `NO_COLOR` set (no-color.org): a log file or a
/// CI log holds plain text.
fn colour_logs() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Parses the command line, runs the command, prints errors; the process exit code.
pub fn main() -> ExitCode {
    // Behave like other Unix tools when stdout is closed early (`lattice ... | head`):
    // end quietly instead of panicking on a failed print.
    #[cfg(unix)]
    // SAFETY: called once at start-up before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let ranks = ranks::Ranks::init();
    let cli = Cli::parse();
    let default = if cli.quiet { "error" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_logs())
        .with_target(false)
        .init();
    let result = cli.gpu.request(&ranks).and_then(|gpu| match cli.command {
        Command::Info { json } => cmd::info::run(json, &ranks, &gpu),
        Command::Validate { config, json } => cmd::validate::run(&config, json),
        Command::Inspect { what } => cmd::inspect::run(what),
        Command::Run(args) => cmd::run::run(*args, (cli.backend.into(), &gpu), cli.quiet, &ranks),
        Command::Bench(args) => cmd::bench::run(args, cli.backend.into(), &gpu),
        Command::Embed(args) => cmd::embed::run(&args, cli.quiet),
        Command::Prepare(args) => cmd::prepare::run(&args, cli.quiet),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, &ranks);
            if ranks.size() > 1 {
                // One rank's failure ends the job: the others never wait on it. The pause
                // lets the launcher forward this rank's message before the job is torn down.
                std::thread::sleep(std::time::Duration::from_millis(300));
                ranks.abort(2);
            }
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on stderr in one write (under MPI a launcher that tears the job
/// down may cut a message written piece by piece), naming the rank in a job of several.
fn report(e: &anyhow::Error, ranks: &ranks::Ranks) {
    let top = e.to_string();
    let mut text = match ranks.size() {
        1 => format!("error: {top}\n"),
        p => format!("error: rank {} of {p}: {top}\n", ranks.rank()),
    };
    // Wrapper errors often repeat their cause in their own message: print each once.
    for cause in e.chain().skip(1).map(|c| c.to_string()) {
        if !top.contains(&cause) {
            text.push_str(&format!("  caused by: {cause}\n"));
        }
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
