// Activations. Twin of lattice-core/src/moe/math.rs (erf, gelu, sigmoid): same constants,
// same order of operations.

// erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7); WGSL has no erf.
fn erf_as(x: f32) -> f32 {
    let ax = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * ax);
    let poly = ((((1.0614054 * t + -1.4531521) * t + 1.4214138) * t + -0.28449672) * t + 0.2548296) * t;
    let y = 1.0 - poly * exp(-ax * ax);
    return select(y, -y, x < 0.0);
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_as(x * 0.70710677));
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}
