//! Failures the project's own tests cause on purpose (a batch that cannot allocate, a run cut
//! after its first checkpoint, a rank that fails, …), each switched on by an environment
//! variable. They exist only with the `test-support` feature, which the tests enable as a
//! dev-dependency: a release build reads none of these variables and holds none of their names.

#[cfg(feature = "test-support")]
mod switches {
    /// The first batch fails as if it could not allocate.
    pub const FAIL_FIRST_BATCH: &str = "LATTICE_FAIL_FIRST_BATCH";
    /// The first batch fails so on the rank named here only.
    pub const FAIL_FIRST_BATCH_RANK: &str = "LATTICE_FAIL_FIRST_BATCH_RANK";
    /// The run stops (as if killed) right after its first checkpoint.
    pub const STOP_AFTER_CHECKPOINT: &str = "LATTICE_STOP_AFTER_CHECKPOINT";
    /// A lower limit on the flow weights copied into the output folder, in bytes.
    pub const MAX_WEIGHTS_COPY: &str = "LATTICE_MAX_WEIGHTS_COPY_BYTES";
    /// The rank named here fails before step 1.
    pub const FAIL_RANK: &str = "LATTICE_FAIL_RANK";
    /// The size of the pieces an MPI part is sent in, so a part is cut in many pieces.
    #[cfg(feature = "mpi")]
    pub const MPI_PIECE_BYTES: &str = "LATTICE_MPI_PIECE_BYTES";

    pub fn is_rank(var: &str, rank: usize) -> bool {
        std::env::var(var).is_ok_and(|r| r == rank.to_string())
    }

    pub fn number<T: std::str::FromStr>(var: &str) -> Option<T> {
        std::env::var(var).ok().and_then(|v| v.parse().ok())
    }
}

/// Whether this rank's first batch fails as if it could not allocate.
#[cfg(feature = "test-support")]
pub fn fail_first_batch(rank: usize) -> bool {
    std::env::var_os(switches::FAIL_FIRST_BATCH).is_some()
        || switches::is_rank(switches::FAIL_FIRST_BATCH_RANK, rank)
}

/// Why the run stops after a checkpoint, if a test asks it to.
#[cfg(feature = "test-support")]
pub fn stop_after_checkpoint() -> Option<String> {
    let var = switches::STOP_AFTER_CHECKPOINT;
    std::env::var_os(var).map(|_| format!("as {var} asks"))
}

/// A lower limit on the flow weights copied into the output folder.
#[cfg(feature = "test-support")]
pub fn max_weights_copy() -> Option<u64> {
    switches::number(switches::MAX_WEIGHTS_COPY)
}

/// Why this rank fails before step 1, if a test asks it to.
#[cfg(feature = "test-support")]
pub fn fail_rank(rank: usize) -> Option<String> {
    let var = switches::FAIL_RANK;
    switches::is_rank(var, rank).then(|| format!("failing as {var} asks"))
}

/// The size of the pieces an MPI part is sent in.
#[cfg(all(feature = "test-support", feature = "mpi"))]
pub fn mpi_piece_bytes() -> Option<usize> {
    switches::number(switches::MPI_PIECE_BYTES)
}

#[cfg(not(feature = "test-support"))]
pub fn stop_after_checkpoint() -> Option<String> {
    None
}

#[cfg(not(feature = "test-support"))]
pub fn max_weights_copy() -> Option<u64> {
    None
}

#[cfg(not(feature = "test-support"))]
pub fn fail_rank(_rank: usize) -> Option<String> {
    None
}

#[cfg(all(not(feature = "test-support"), feature = "mpi"))]
pub fn mpi_piece_bytes() -> Option<usize> {
    None
}
