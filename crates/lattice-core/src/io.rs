//! `.npy` input and output, and atomic file writes (temp file in the same folder, then rename),
//! so a failed run never leaves a truncated file behind.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::geometry::Dims;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a readable .npy file: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds dtype {got}, expected {want}")]
    DType {
        path: PathBuf,
        got: String,
        want: &'static str,
    },
    #[error("{path} has shape {got:?}, expected {want} ({what})")]
    Shape {
        path: PathBuf,
        got: Vec<u64>,
        want: String,
        what: &'static str,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn open_npy(path: &Path) -> Result<npyz::NpyFile<BufReader<std::fs::File>>, IoError> {
    let file = std::fs::File::open(path).map_err(|source| IoError::Open {
        path: path.into(),
        source,
    })?;
    npyz::NpyFile::new(BufReader::new(file)).map_err(|source| IoError::Format {
        path: path.into(),
        source,
    })
}

fn type_str(npy: &npyz::NpyFile<BufReader<std::fs::File>>) -> Option<String> {
    match npy.dtype() {
        npyz::DType::Plain(t) => Some(t.to_string()),
        _ => None,
    }
}

/// Reads a little-endian f32 array and checks its shape against `want` (`None` = any length).
pub fn read_f32(
    path: &Path,
    want: &[Option<u64>],
    what: &'static str,
) -> Result<(Vec<f32>, Vec<u64>), IoError> {
    let npy = open_npy(path)?;
    let shape = npy.shape().to_vec();
    let matches = shape.len() == want.len()
        && shape
            .iter()
            .zip(want)
            .all(|(g, w)| w.is_none_or(|w| w == *g));
    if !matches {
        return Err(IoError::Shape {
            path: path.into(),
            got: shape,
            want: format_shape(want),
            what,
        });
    }
    if type_str(&npy).as_deref() != Some("<f4") {
        return Err(IoError::DType {
            path: path.into(),
            got: npy.dtype().descr(),
            want: "float32 ('<f4')",
        });
    }
    if npy.order() != npyz::Order::C {
        return Err(IoError::DType {
            path: path.into(),
            got: "Fortran order".into(),
            want: "C order (numpy's default)",
        });
    }
    let data = npy.into_vec::<f32>().map_err(|source| IoError::Format {
        path: path.into(),
        source,
    })?;
    Ok((data, shape))
}

/// Reads a cell mask of shape [D, H, W] (u8 or bool, non-zero = active): with C order the flat
/// index is exactly the engine's cell id `x + y·W + z·W·H`.
pub fn read_mask(path: &Path, dims: Dims) -> Result<Vec<bool>, IoError> {
    let npy = open_npy(path)?;
    let want = [dims.d(), dims.h(), dims.w()].map(u64::from);
    if npy.shape() != want {
        return Err(IoError::Shape {
            path: path.into(),
            got: npy.shape().to_vec(),
            want: format!("{want:?}"),
            what: "[D, H, W] of the lattice",
        });
    }
    let ty = type_str(&npy);
    let values = match ty.as_deref() {
        Some("|u1") => npy
            .into_vec::<u8>()
            .map(|v| v.into_iter().map(|b| b != 0).collect()),
        Some("|b1") => npy.into_vec::<bool>(),
        _ => {
            return Err(IoError::DType {
                path: path.into(),
                got: npy.dtype().descr(),
                want: "uint8 or bool",
            });
        }
    };
    values.map_err(|source| IoError::Format {
        path: path.into(),
        source,
    })
}

/// Writes `path` through a temp file in the same folder, renamed into place only on success.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<(), IoError> {
    let err = |source| IoError::Write {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".lattice-tmp-");
    // Outputs are ordinary files (tempfile's default is owner-only).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(err)?;
        w.flush().map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Writes a C-order f32 array of `shape` as `.npy`, atomically.
pub fn write_f32(path: &Path, shape: &[u64], data: &[f32]) -> Result<(), IoError> {
    assert_eq!(
        shape.iter().product::<u64>() as usize,
        data.len(),
        "shape matches the data"
    );
    write_atomic(path, |w| {
        use npyz::WriterBuilder;
        let mut npy = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(w)
            .begin_nd()?;
        npy.extend(data.iter().copied())?;
        npy.finish()
    })
}

fn format_shape(want: &[Option<u64>]) -> String {
    let parts: Vec<String> = want
        .iter()
        .map(|w| w.map_or("any".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trip_and_shape_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_f32(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let (v, s) = read_f32(&p, &[Some(2), None], "test").unwrap();
        assert_eq!(s, [2, 3]);
        assert_eq!(v[5], 6.0);
        let e = read_f32(&p, &[Some(3), None], "test").unwrap_err();
        assert!(matches!(e, IoError::Shape { .. }), "{e}");
        assert!(matches!(
            read_f32(&dir.path().join("none.npy"), &[None], "t"),
            Err(IoError::Open { .. })
        ));
        // No temp files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
