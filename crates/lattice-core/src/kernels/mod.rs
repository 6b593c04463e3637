//! CPU reference kernels (rayon). Each mirrors one WGSL shader: same constants, same
//! summation order, same byte layout, so GPU results can be compared with a tight tolerance.

pub mod gather;
