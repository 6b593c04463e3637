//! Every WGSL kernel is parsed and validated by naga, so a shader error fails `cargo test`
//! on a machine without a GPU. Every file under shaders/ must belong to some kernel.

use std::collections::BTreeSet;
use std::path::Path;

use lattice_core::config::{self, Simulation};
use lattice_core::flows::{FlowLayout, FlowShape};
use lattice_core::moe::{MoeShape, ParamLayout};
use lattice_gpu::shaders::{FILES, GATHER};

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
}

#[test]
fn gather_kernel_validates_with_naga() {
    validate("gather", GATHER);
}

/// The MoE kernels, specialised for every shipped preset.
#[test]
fn moe_kernels_validate_with_naga_for_every_preset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for preset in [
        "debug.ron",
        "experiment.ron",
        "optimized.ron",
        "periodic.ron",
    ] {
        let loaded = config::load(&root.join(preset)).unwrap();
        let Simulation::Moe(moe) = &loaded.config.simulation else {
            panic!("{preset} is a Moe preset");
        };
        let layout = ParamLayout::new(MoeShape::from_config(moe));
        for (name, source) in lattice_gpu::moe::sources(&layout, moe.ode_steps) {
            validate(&format!("{name} ({preset})"), &source);
        }
    }
}

/// The flow kernels, specialised for every shipped flows preset.
#[test]
fn flow_kernels_validate_with_naga_for_every_preset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for preset in [
        "flows_debug.ron",
        "flows_experiment.ron",
        "flows_optimized.ron",
    ] {
        let loaded = config::load(&root.join(preset)).unwrap();
        let Simulation::Flows(f) = &loaded.config.simulation else {
            panic!("{preset} is a Flows preset");
        };
        let layout = FlowLayout::new(FlowShape::from_config(f));
        for (name, source) in lattice_gpu::flows::sources(&layout, f.capacity()) {
            validate(&format!("{name} ({preset})"), &source);
        }
    }
}

#[test]
fn every_shader_file_is_part_of_a_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders");
    let mut on_disk = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "wgsl") {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                on_disk.insert(rel);
            }
        }
    }
    let used: BTreeSet<String> = FILES
        .iter()
        .flat_map(|(_, files)| files.iter().map(|f| f.to_string()))
        .collect();
    assert_eq!(
        on_disk, used,
        "shaders/ and lattice_gpu::shaders::FILES disagree"
    );
}
