//! The kernel table: every compute kernel declared once, with the WGSL parts it is composed
//! of (shared snippets from `shaders/shared/`, then its own file), its entry point, workgroup
//! size, bindings (in binding order) and the generated header it is specialised with. The
//! table builds the sources ([`compose`]), creates the pipelines (`crate::kernel::Kernel`) and
//! drives the naga test (tests/shaders_validate.rs), which checks the entry point, the
//! workgroup size and every binding's name and order against the WGSL.

/// The generated `const` header a kernel is specialised with (`crate::header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specialised {
    /// Complete as written.
    No,
    /// Sizes and tensor offsets of one MoE network (`crate::moe::header`).
    Moe,
    /// Sizes and tensor offsets of one flow network (`crate::flows::header`).
    Flow,
}

/// One compute kernel.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    pub name: &'static str,
    /// Paths under `shaders/`, concatenated in this order after the header.
    pub parts: &'static [&'static str],
    pub entry: &'static str,
    /// `@workgroup_size(workgroup)` (one-dimensional).
    pub workgroup: u32,
    /// The names of group 0's bindings 0, 1, 2, …
    pub bindings: &'static [&'static str],
    pub header: Specialised,
    /// The Rust function or type that computes the same values on the CPU.
    pub cpu_twin: &'static str,
    /// The test (a path from the repository's root) that runs this kernel against its twin.
    pub gpu_test: &'static str,
}

const fn kernel(
    name: &'static str,
    parts: &'static [&'static str],
    workgroup: u32,
    bindings: &'static [&'static str],
    header: Specialised,
) -> KernelSpec {
    KernelSpec {
        name,
        parts,
        entry: "main",
        workgroup,
        bindings,
        header,
        cpu_twin: "",
        gpu_test: "",
    }
}

impl KernelSpec {
    /// The kernel with its CPU twin and the test that compares them.
    const fn twin(self, cpu_twin: &'static str, gpu_test: &'static str) -> Self {
        KernelSpec {
            cpu_twin,
            gpu_test,
            ..self
        }
    }
}

/// Per-class neighbor means (tests only: the MoE step gathers inside `moe_gather`).
pub const GATHER: KernelSpec = kernel(
    "gather",
    &["shared/lattice.wgsl", "gather.wgsl"],
    64,
    &[
        "params",
        "stencil",
        "class_ptr",
        "col_idx",
        "states",
        "means",
    ],
    Specialised::No,
)
.twin(
    "lattice_core::kernels::gather::class_means",
    "tests/gpu_gather.rs",
);
pub const MOE_PREP: KernelSpec = kernel(
    "moe_prep",
    &["shared/lattice.wgsl", "shared/moe.wgsl", "moe_prep.wgsl"],
    64,
    &["mp", "wts", "states", "prep"],
    Specialised::Moe,
)
.twin("lattice_core::moe::net::MoeNet::prep", "tests/gpu_moe.rs");
pub const MOE_GATHER: KernelSpec = kernel(
    "moe_gather",
    &[
        "shared/lattice.wgsl",
        "shared/moe.wgsl",
        "shared/act.wgsl",
        "moe_gather.wgsl",
    ],
    64,
    &[
        "params",
        "mp",
        "stencil",
        "class_ptr",
        "col_idx",
        "wts",
        "states",
        "prep",
        "records",
        "counts",
    ],
    Specialised::Moe,
)
.twin("lattice_core::moe::gather::Gather", "tests/gpu_moe.rs");
pub const MOE_UPDATE: KernelSpec = kernel(
    "moe_update",
    &[
        "shared/lattice.wgsl",
        "shared/moe.wgsl",
        "shared/act.wgsl",
        "shared/nn.wgsl",
        "moe_update.wgsl",
    ],
    64,
    &["mp", "wts", "states", "records", "counts", "next", "bad"],
    Specialised::Moe,
)
.twin("lattice_core::moe::net::MoeNet::update", "tests/gpu_moe.rs");
/// One workgroup for the batch: the stop rule per item, then the live lists' offsets, which
/// need every item's count.
pub const FLOW_LIVE: KernelSpec = kernel(
    "flow_live",
    &[
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/flow.wgsl",
        "shared/scan.wgsl",
        "flow_live.wgsl",
    ],
    256,
    &["params", "counts", "live_off", "args", "stops"],
    Specialised::Flow,
)
.twin(
    "crate::flows::LiveDispatch::plan",
    "crates/lattice-gpu/tests/stop_rule.rs",
);
pub const FLOW_NEURON: KernelSpec = kernel(
    "flow_neuron",
    &[
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/flow.wgsl",
        "flow_neuron.wgsl",
    ],
    64,
    &["params", "wts", "pos", "live", "live_off", "gslot", "xin"],
    Specialised::Flow,
)
.twin(
    "lattice_core::flows::net::FlowNet::neuron",
    "tests/gpu_flows.rs",
);
pub const FLOW_GRU: KernelSpec = kernel(
    "flow_gru",
    &[
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/flow.wgsl",
        "flow_gru.wgsl",
    ],
    256,
    &[
        "params", "lp", "wts", "gru_t", "gslot", "xin", "hidden", "hnext", "live_off",
    ],
    Specialised::Flow,
)
.twin(
    "lattice_core::flows::net::FlowNet::gru",
    "tests/gpu_flows.rs",
);
pub const FLOW_HEADS: KernelSpec = kernel(
    "flow_heads",
    &[
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/flow.wgsl",
        "flow_heads.wgsl",
    ],
    64,
    &[
        "params",
        "wts",
        "gslot",
        "hnext",
        "seeds",
        "pos",
        "prev",
        "status",
        "event",
        "spawn",
        "steps",
        "ids",
        "hidden_at",
        "live_off",
    ],
    Specialised::Flow,
)
.twin(
    "lattice_core::flows::net::FlowNet::heads",
    "tests/gpu_flows.rs",
);
/// One workgroup per item: the prefix scans need the whole item in one group.
pub const FLOW_PLAN: KernelSpec = kernel(
    "flow_plan",
    &[
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/flow.wgsl",
        "shared/scan.wgsl",
        "flow_plan.wgsl",
    ],
    256,
    &[
        "params",
        "live_in",
        "live_out",
        "counts",
        "status",
        "event",
        "spawn",
        "pos",
        "prev",
        "ids",
        "parent",
        "steps",
        "done",
        "free",
        "pairs",
        "pair_count",
    ],
    Specialised::Flow,
)
.twin("lattice_core::flows::cpu::plan", "tests/gpu_flows.rs");
pub const FLOW_COPY: KernelSpec = kernel(
    "flow_copy",
    &[
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/flow.wgsl",
        "flow_copy.wgsl",
    ],
    64,
    &["pairs", "pair_count", "hidden", "hidden_at"],
    Specialised::Flow,
)
.twin(
    "lattice_core::flows::cpu::spawn_child",
    "tests/gpu_flows.rs",
);

/// Every kernel.
pub const KERNELS: &[KernelSpec] = &[
    GATHER,
    MOE_PREP,
    MOE_GATHER,
    MOE_UPDATE,
    FLOW_LIVE,
    FLOW_NEURON,
    FLOW_GRU,
    FLOW_HEADS,
    FLOW_PLAN,
    FLOW_COPY,
];

/// The text of a file under `shaders/`.
///
/// # Panics
/// On a path no kernel lists (a table error, caught by the naga test).
pub fn file(path: &str) -> &'static str {
    macro_rules! files {
        ($($p:literal),* $(,)?) => {
            match path {
                $($p => include_str!(concat!("../shaders/", $p)),)*
                other => panic!("shaders/{other} is not a known shader file"),
            }
        };
    }
    files!(
        "shared/lattice.wgsl",
        "shared/act.wgsl",
        "shared/nn.wgsl",
        "shared/moe.wgsl",
        "shared/flow.wgsl",
        "shared/scan.wgsl",
        "gather.wgsl",
        "moe_prep.wgsl",
        "moe_gather.wgsl",
        "moe_update.wgsl",
        "flow_live.wgsl",
        "flow_neuron.wgsl",
        "flow_gru.wgsl",
        "flow_heads.wgsl",
        "flow_plan.wgsl",
        "flow_copy.wgsl",
    )
}

/// A kernel's full source: `header` (empty for [`Specialised::No`]) then its parts.
pub fn compose(spec: &KernelSpec, header: &str) -> String {
    let mut source = String::from(header);
    for part in spec.parts {
        source.push_str(file(part));
    }
    source
}
