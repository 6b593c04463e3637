//! MoE step on the CPU path: batch invariance, determinism, weights round trip and the named
//! errors for bad weight files.

use lattice_core::config::Combine;
use lattice_core::moe::{
    MoeNet, MoeShape, MoeWeights, ParamLayout, WeightsError, cpu, initial_states,
};
use lattice_core::{Boundary, Dims, NeighborCache, Radius};

fn shape() -> MoeShape {
    MoeShape::DEBUG
}

fn cache() -> NeighborCache {
    NeighborCache::build(
        Dims::new(9, 8, 7).unwrap(),
        Boundary::Bounded,
        Radius::from_r(3.2),
        None,
    )
    .unwrap()
}

fn run(cache: &NeighborCache, w: &MoeWeights, items: &[u64], steps: u32) -> Vec<f32> {
    let n = cache.dims().cells_usize();
    let mut a: Vec<f32> = items
        .iter()
        .flat_map(|&id| initial_states(5, id, n, 24, 0.1))
        .collect();
    let mut b = vec![0.0; a.len()];
    let net = MoeNet::new(&w.layout, &w.data, Combine::Residual, 3);
    for _ in 0..steps {
        cpu::step(&net, cache, &a, &mut b, items.len());
        std::mem::swap(&mut a, &mut b);
    }
    a
}

#[test]
fn item_in_a_batch_of_8_equals_the_item_alone() {
    let cache = cache();
    let w = MoeWeights::seeded(ParamLayout::new(shape()), 11);
    let n = cache.dims().cells_usize() * 24;
    let batch = run(&cache, &w, &[0, 1, 2, 3, 4, 5, 6, 7], 2);
    for id in [0u64, 5, 7] {
        let alone = run(&cache, &w, &[id], 2);
        let k = id as usize;
        assert!(
            batch[k * n..(k + 1) * n]
                .iter()
                .zip(&alone)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "item {id} differs between batch and alone"
        );
    }
}

#[test]
fn two_runs_are_bit_identical() {
    let cache = cache();
    let w = MoeWeights::seeded(ParamLayout::new(shape()), 11);
    let a = run(&cache, &w, &[3, 9], 3);
    let b = run(&cache, &w, &[3, 9], 3);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    // And the seeds matter: other weights give other states.
    let other = run(
        &cache,
        &MoeWeights::seeded(ParamLayout::new(shape()), 12),
        &[3, 9],
        3,
    );
    assert_ne!(a, other);
}

#[test]
fn weights_round_trip_gives_an_identical_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let w = MoeWeights::seeded(ParamLayout::new(shape()), 21);
    w.save(&path).unwrap();
    let loaded = MoeWeights::load(ParamLayout::new(shape()), &path).unwrap();
    assert_eq!(w, loaded);
    let cache = cache();
    assert_eq!(run(&cache, &w, &[1], 1), run(&cache, &loaded, &[1], 1));
}

/// A weights file records the engine's format version and cell-index scheme; one that names
/// others is refused, and one that names none (a PyTorch state_dict saved with safetensors)
/// loads.
#[test]
fn weights_files_carry_their_format_and_another_is_refused() {
    use lattice_core::formats;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let save = || {
        MoeWeights::seeded(ParamLayout::new(shape()), 21)
            .save(&path)
            .unwrap();
        std::fs::read(&path).unwrap()
    };
    let bytes = save();
    // The same weights give the same bytes (one metadata entry: no hash order).
    assert!(bytes == save());
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref(), Some(&formats::metadata()));
    let layout = || ParamLayout::new(shape());
    write_file(&path, &full_spec());
    assert!(
        MoeWeights::load(layout(), &path).is_ok(),
        "no metadata: loads"
    );
    for (version, cells, says) in [
        ("2", formats::CELL_INDEX, "format version 2"),
        ("1", "z + y*D + x*D*H", "numbered z + y*D + x*D*H"),
    ] {
        let value = formats::metadata_value(version, cells);
        let meta = std::collections::HashMap::from([(formats::METADATA_KEY.to_string(), value)]);
        write_file_with(&path, &full_spec(), Some(meta));
        let e = MoeWeights::load(layout(), &path).unwrap_err();
        assert!(matches!(e, WeightsError::Layout { .. }), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

/// Writes a safetensors file from (name, shape, dtype) triples filled with zeros.
fn write_file(path: &std::path::Path, tensors: &[(String, Vec<usize>, safetensors::Dtype)]) {
    write_file_with(path, tensors, None);
}

fn write_file_with(
    path: &std::path::Path,
    tensors: &[(String, Vec<usize>, safetensors::Dtype)],
    meta: Option<std::collections::HashMap<String, String>>,
) {
    let bufs: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape, dtype)| vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bufs)
        .map(|((name, shape, dtype), buf)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), buf).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

fn full_spec() -> Vec<(String, Vec<usize>, safetensors::Dtype)> {
    ParamLayout::new(shape())
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.iter().map(|&d| d as usize).collect(),
                safetensors::Dtype::F32,
            )
        })
        .collect()
}

#[test]
fn bad_weight_files_name_the_tensor_and_the_expected_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let layout = || ParamLayout::new(shape());

    let mut missing = full_spec();
    missing.retain(|(n, _, _)| n != "gating.fc2.weight");
    write_file(&path, &missing);
    let e = MoeWeights::load(layout(), &path).unwrap_err();
    assert!(matches!(e, WeightsError::Missing { .. }), "{e}");
    assert!(
        e.to_string().contains("gating.fc2.weight") && e.to_string().contains("[3, 24]"),
        "{e}"
    );

    let mut extra = full_spec();
    extra.push((
        "local.agg3.weight".into(),
        vec![2, 2],
        safetensors::Dtype::F32,
    ));
    write_file(&path, &extra);
    let e = MoeWeights::load(layout(), &path).unwrap_err();
    assert!(
        matches!(e, WeightsError::Extra { .. }) && e.to_string().contains("local.agg3.weight"),
        "{e}"
    );

    let mut misshaped = full_spec();
    misshaped
        .iter_mut()
        .find(|(n, _, _)| n == "local.agg1.weight")
        .unwrap()
        .1 = vec![24, 12];
    write_file(&path, &misshaped);
    let e = MoeWeights::load(layout(), &path).unwrap_err();
    assert!(matches!(e, WeightsError::Shape { .. }), "{e}");
    assert!(
        e.to_string().contains("[24, 12]") && e.to_string().contains("[12, 24]"),
        "{e}"
    );

    let mut f16 = full_spec();
    f16.iter_mut()
        .find(|(n, _, _)| n == "distant.lambda")
        .unwrap()
        .2 = safetensors::Dtype::F16;
    write_file(&path, &f16);
    let e = MoeWeights::load(layout(), &path).unwrap_err();
    assert!(
        matches!(e, WeightsError::DType { .. }) && e.to_string().contains("distant.lambda"),
        "{e}"
    );

    std::fs::write(&path, b"not safetensors").unwrap();
    assert!(matches!(
        MoeWeights::load(layout(), &path),
        Err(WeightsError::Format { .. })
    ));
    assert!(matches!(
        MoeWeights::load(layout(), &dir.path().join("none")),
        Err(WeightsError::Read { .. })
    ));
}
