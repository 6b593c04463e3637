//! Neighbor cache benchmarks: stencil build + full validation at 15³, 40³, 100³ (ratio 0.2),
//! and the explicit (CSR) table at 40³ with every cell active (1.06·10⁸ entries).

use criterion::{Criterion, criterion_group, criterion_main};
use lattice_core::neighbors::{Csr, Stencil};
use lattice_core::{Boundary, Dims, NeighborCache, Radius};

fn cube(n: u32) -> (Dims, Radius) {
    (
        Dims::new(n, n, n).unwrap(),
        Radius::adaptive(n, 0.2, 1.0, 100.0),
    )
}

fn stencil_build_and_validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("stencil_build_validate");
    g.sample_size(10);
    for n in [15, 40, 100] {
        let (dims, radius) = cube(n);
        g.bench_function(format!("{n}^3"), |b| {
            b.iter(|| NeighborCache::build(dims, Boundary::Bounded, radius, None).unwrap())
        });
    }
    g.finish();
}

fn csr_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("csr");
    g.sample_size(10);
    let (dims, radius) = cube(40);
    let stencil = Stencil::build(dims, Boundary::Bounded, radius);
    let mask = vec![true; dims.cells_usize()];
    g.bench_function("build_40^3", |b| {
        b.iter(|| Csr::build(&stencil, mask.clone()).unwrap())
    });
    g.bench_function("build_validate_40^3", |b| {
        b.iter(|| {
            NeighborCache::build(dims, Boundary::Bounded, radius, Some(mask.clone())).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, stencil_build_and_validate, csr_build);
criterion_main!(benches);
