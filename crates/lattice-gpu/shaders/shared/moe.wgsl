// Structs shared by the MoE kernels; Rust twins in lattice-gpu/src/moe.rs (MoeParams) and the
// generated header's cnf_functional() / cnf_distant() (Cnf).

// Rows are (item, cell) pairs, item-major; a dispatch covers rows first_row .. first_row + rows.
struct MoeParams {
    items: u32,
    cells: u32,
    first_row: u32,
    rows: u32,
    // 1: x' = x + sum w o (Residual); 0: x' = sum w o (Replace). A runtime value, not a baked
    // const: lavapipe hung on the pipeline specialised with the const false.
    residual: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// Offsets of one CNF block's tensors in the weight buffer.
struct Cnf {
    norm_in_w: u32,
    norm_in_b: u32,
    mlp1_w: u32,
    mlp1_b: u32,
    mlp2_w: u32,
    mlp2_b: u32,
    mlp3_w: u32,
    mlp3_b: u32,
    time_w: u32,
    norm_out_w: u32,
    norm_out_b: u32,
    lambda: u32,
}
