//! The `lattice` binary: the command line lives in the `lattice-cli` crate, over the library.

fn main() -> std::process::ExitCode {
    lattice_cli::main()
}
