//! What is baked into each MoE kernel: the uniform parameters, the generated header of sizes
//! and tensor offsets, the kernel list and the composed sources.

use super::*;

/// WGSL `MoeParams` (uniform, 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct MoeParams {
    pub items: u32,
    pub cells: u32,
    pub first_row: u32,
    pub rows: u32,
    /// 1 for `Combine::Residual`, 0 for `Combine::Replace`.
    pub residual: u32,
    pub pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<MoeParams>() == 32);
const _: () = assert!(std::mem::offset_of!(MoeParams, residual) == 16);

/// The WGSL `const` header for one network: sizes, step settings, the update kernel's tile
/// layout and every tensor offset (`W_<NAME>`, the name upper-cased with `.` → `_`).
pub fn header(layout: &ParamLayout, ode_steps: u32) -> String {
    let sh = layout.shape;
    let tile = UpdateTile::new(&sh);
    let gather = GatherTile::new(&sh);
    let mut h = Header::new("lattice-gpu/src/moe.rs")
        .u32s([
            ("S", sh.s),
            ("H1", sh.local_h1),
            ("H2", sh.local_h2),
            ("PH", sh.local_ph),
            ("FH", sh.func_hidden),
            ("FM", sh.func_msg),
            ("OH", sh.ode_hidden),
            ("OH2", sh.ode_hidden / 2),
            ("GH", sh.gate_hidden),
            ("TW", sh.time_width()),
            ("EXT", EXTERNAL_INPUT),
            ("ODE_STEPS", ode_steps),
            ("REC", record_width(&sh) as u32),
            ("GCELLS", gather.cells),
            ("PAIRS", gather.pairs),
            ("WSTAGE", gather.staged_floats(&sh)),
            ("TILE", tile.rows),
            ("LN_LANES", tile.ln_lanes),
            ("ROW", tile.row),
            ("TEMPS", tile.temps),
        ])
        .bool("HAS_TIME", sh.has_time())
        .bool("STAGE", gather.stage_weights)
        .tensor_offsets(&layout.tensors, 0);
    for (func, p) in [
        ("cnf_functional", "functional.cnf"),
        ("cnf_distant", "distant"),
    ] {
        let o = |n: &str| layout.get(&format!("{p}.{n}")).map_or(0, |t| t.offset);
        let names = [
            "norm_in.weight",
            "norm_in.bias",
            "mlp1.weight",
            "mlp1.bias",
            "mlp2.weight",
            "mlp2.bias",
            "mlp3.weight",
            "mlp3.bias",
            "time.weight",
            "norm_out.weight",
            "norm_out.bias",
            "lambda",
        ];
        let args: Vec<String> = names.iter().map(|n| format!("{}u", o(n))).collect();
        h = h.line(&format!(
            "fn {func}() -> Cnf {{ return Cnf({}); }}",
            args.join(", ")
        ));
    }
    h.finish()
}

/// The MoE kernels, in the order [`MoeKernels`] holds them.
pub const KERNELS: [&KernelSpec; 3] = [
    &shaders::MOE_PREP,
    &shaders::MOE_GATHER,
    &shaders::MOE_UPDATE,
];

/// The composed sources of the three MoE kernels for one network.
pub fn sources(layout: &ParamLayout, ode_steps: u32) -> [(&'static str, String); 3] {
    let h = header(layout, ode_steps);
    KERNELS.map(|k| (k.name, shaders::compose(k, &h)))
}
