//! The `lattice` binary; everything lives in the `lattice-cli` crate.

fn main() -> std::process::ExitCode {
    lattice_cli::main()
}
