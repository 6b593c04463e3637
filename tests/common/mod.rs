//! Helpers shared by the integration tests (and included by benches/moe.rs). Not every binary
//! that includes this module uses every helper.
#![allow(dead_code)]

use std::path::Path;

use lattice_core::{Boundary, Dims, NeighborCache, Radius};

/// The validated cache of a bounded n³ lattice with the reference radius rule
/// (R = clamp(n · ratio, 1, 100)).
pub fn cube(n: u32, ratio: f64) -> NeighborCache {
    let dims = Dims::new(n, n, n).unwrap();
    NeighborCache::build(
        dims,
        Boundary::Bounded,
        Radius::adaptive(n, ratio, 1.0, 100.0),
        None,
    )
    .unwrap()
}

/// The DEBUG preset's lattice: 15³, ratio 0.3.
pub fn debug_cache() -> NeighborCache {
    cube(15, 0.3)
}

/// Writes a C-order `.npy` of `shape` (test inputs, masks, batches).
pub fn write_npy<T: npyz::Serialize + npyz::AutoSerialize>(
    path: &Path,
    shape: &[u64],
    values: impl IntoIterator<Item = T>,
) {
    use npyz::WriterBuilder;
    let mut f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut f)
        .begin_nd()
        .unwrap();
    w.extend(values).unwrap();
    w.finish().unwrap();
}

/// What a `lattice` command printed and how it ended.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `lattice` binary in `dir` with `args` and extra environment `env`; a panic
/// message on stderr fails the test whatever the exit status.
pub fn lattice_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = assert_cmd::Command::cargo_bin("lattice").unwrap();
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ran {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
    }
}

/// The f32 values of a `.npy` file.
pub fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
}

/// A JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}
