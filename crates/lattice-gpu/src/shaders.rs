//! WGSL sources. A kernel is one file from `shaders/` composed after snippets from
//! `shaders/shared/`; MoE kernels are also preceded by a generated header of sizes and tensor
//! offsets (`crate::moe::header`). [`FILES`] lists which files make each kernel; a plain test
//! validates every kernel with naga, for every preset's header.

pub const LATTICE: &str = include_str!("../../../shaders/shared/lattice.wgsl");
pub const ACT: &str = include_str!("../../../shaders/shared/act.wgsl");
pub const NN: &str = include_str!("../../../shaders/shared/nn.wgsl");
pub const MOE: &str = include_str!("../../../shaders/shared/moe.wgsl");

pub const FLOW: &str = include_str!("../../../shaders/shared/flow.wgsl");

pub const FLOW_NEURON: &str = include_str!("../../../shaders/flow_neuron.wgsl");
pub const FLOW_GRU: &str = include_str!("../../../shaders/flow_gru.wgsl");
pub const FLOW_HEADS: &str = include_str!("../../../shaders/flow_heads.wgsl");
pub const FLOW_COMMIT: &str = include_str!("../../../shaders/flow_commit.wgsl");
pub const FLOW_PLAN: &str = include_str!("../../../shaders/flow_plan.wgsl");
pub const FLOW_COPY: &str = include_str!("../../../shaders/flow_copy.wgsl");

pub const MOE_PREP: &str = include_str!("../../../shaders/moe_prep.wgsl");
pub const MOE_GATHER: &str = include_str!("../../../shaders/moe_gather.wgsl");
pub const MOE_UPDATE: &str = include_str!("../../../shaders/moe_update.wgsl");

/// The neighbor-gather kernel, complete (it needs no generated header).
pub const GATHER: &str = concat!(
    include_str!("../../../shaders/shared/lattice.wgsl"),
    include_str!("../../../shaders/gather.wgsl"),
);

/// (kernel, the shader files it is made of).
pub const FILES: &[(&str, &[&str])] = &[
    ("gather", &["shared/lattice.wgsl", "gather.wgsl"]),
    (
        "moe_prep",
        &["shared/lattice.wgsl", "shared/moe.wgsl", "moe_prep.wgsl"],
    ),
    (
        "moe_gather",
        &[
            "shared/lattice.wgsl",
            "shared/moe.wgsl",
            "shared/act.wgsl",
            "moe_gather.wgsl",
        ],
    ),
    (
        "moe_update",
        &[
            "shared/lattice.wgsl",
            "shared/moe.wgsl",
            "shared/act.wgsl",
            "shared/nn.wgsl",
            "moe_update.wgsl",
        ],
    ),
    (
        "flow_neuron",
        &[
            "shared/lattice.wgsl",
            "shared/act.wgsl",
            "shared/flow.wgsl",
            "flow_neuron.wgsl",
        ],
    ),
    (
        "flow_gru",
        &[
            "shared/lattice.wgsl",
            "shared/act.wgsl",
            "shared/flow.wgsl",
            "flow_gru.wgsl",
        ],
    ),
    (
        "flow_heads",
        &[
            "shared/lattice.wgsl",
            "shared/act.wgsl",
            "shared/flow.wgsl",
            "flow_heads.wgsl",
        ],
    ),
    (
        "flow_commit",
        &[
            "shared/lattice.wgsl",
            "shared/act.wgsl",
            "shared/flow.wgsl",
            "flow_commit.wgsl",
        ],
    ),
    (
        "flow_plan",
        &[
            "shared/lattice.wgsl",
            "shared/act.wgsl",
            "shared/flow.wgsl",
            "flow_plan.wgsl",
        ],
    ),
    (
        "flow_copy",
        &[
            "shared/lattice.wgsl",
            "shared/act.wgsl",
            "shared/flow.wgsl",
            "flow_copy.wgsl",
        ],
    ),
];
