//! Per-item inputs (MoE initial states, flow embeddings) from one `.npy` file or from a
//! directory of precomputed batches: every `*.npy` in it, in name order, each `[k, ...item]`.
//! A directory is read in order (its items concatenated) or round-robin (item i from file
//! i mod F, row ⌊i / F⌋, wrapping within the file).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::{IoError, read_f32};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]

pub enum InputOrder {
    /// The files' items one after the other.
    #[default]
    InOrder,
    /// One item from each file in turn.
    RoundRobin,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot list {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no .npy file; put batches of shape [k, {item}] there")]
    Empty { path: PathBuf, item: String },
    #[error(
        "{path} holds {have} item(s) in its .npy files, the config asks for {want} (batch.items); add batches, lower batch.items, or read it round-robin"
    )]
    TooFew {
        path: PathBuf,
        have: usize,
        want: usize,
    },
}

/// `items` items of shape `item` (f32), from a file `[items, ...item]` or a directory.
pub fn read_items(
    path: &Path,
    item: &[u64],
    items: usize,
    order: InputOrder,
    what: &'static str,
) -> Result<Vec<f32>, InputError> {
    let per: usize = item.iter().product::<u64>() as usize;
    if !path.is_dir() {
        let mut want = vec![Some(items as u64)];
        want.extend(item.iter().map(|&d| Some(d)));
        return Ok(read_f32(path, &want, what)?.0);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| InputError::List {
            path: path.into(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    if files.is_empty() {
        let dims: Vec<String> = item.iter().map(u64::to_string).collect();
        return Err(InputError::Empty {
            path: path.into(),
            item: dims.join(", "),
        });
    }
    let mut want = vec![None];
    want.extend(item.iter().map(|&d| Some(d)));
    let batches: Vec<Vec<f32>> = files
        .iter()
        .map(|f| read_f32(f, &want, what).map(|(v, _)| v))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(items * per);
    match order {
        InputOrder::InOrder => {
            let have: usize = batches.iter().map(|b| b.len() / per).sum();
            if have < items {
                return Err(InputError::TooFew {
                    path: path.into(),
                    have,
                    want: items,
                });
            }
            for b in &batches {
                let take = (items * per - out.len()).min(b.len());
                out.extend_from_slice(&b[..take]);
            }
        }
        InputOrder::RoundRobin => {
            let f = batches.len();
            for i in 0..items {
                let b = &batches[i % f];
                let row = (i / f) % (b.len() / per).max(1);
                out.extend_from_slice(&b[row * per..(row + 1) * per]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::write_f32;

    #[test]
    fn directories_in_order_and_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_f32(&d.join("a.npy"), &[2, 2], &[0.0, 0.5, 1.0, 1.5]).unwrap();
        write_f32(&d.join("b.npy"), &[1, 2], &[2.0, 2.5]).unwrap();
        let v = read_items(d, &[2], 3, InputOrder::InOrder, "t").unwrap();
        assert_eq!(v, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        let v = read_items(d, &[2], 4, InputOrder::RoundRobin, "t").unwrap();
        // a0, b0, a1, b0 (b wraps).
        assert_eq!(v, [0.0, 0.5, 2.0, 2.5, 1.0, 1.5, 2.0, 2.5]);
        let e = read_items(d, &[2], 4, InputOrder::InOrder, "t").unwrap_err();
        assert!(e.to_string().contains("holds 3 item(s)"), "{e}");
        let e = read_items(d, &[3], 1, InputOrder::InOrder, "t").unwrap_err();
        assert!(e.to_string().contains("a.npy"), "{e}");
    }
}
