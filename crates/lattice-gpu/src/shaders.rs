//! WGSL sources, each composed from `shaders/shared/` snippets and one kernel file.
//! [`ALL`] lists every composed shader; a plain test validates each with naga.

/// Lattice addressing shared by every neighbor-walking kernel.
pub const LATTICE: &str = include_str!("../../../shaders/shared/lattice.wgsl");

pub const GATHER: &str = concat!(
    include_str!("../../../shaders/shared/lattice.wgsl"),
    include_str!("../../../shaders/gather.wgsl"),
);

/// (name, composed source, the files it is made of) for every kernel.
pub const ALL: &[(&str, &str, &[&str])] =
    &[("gather", GATHER, &["shared/lattice.wgsl", "gather.wgsl"])];
