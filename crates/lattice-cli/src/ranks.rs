//! The ranks of an MPI job (`mpirun -n P lattice run ...`, a binary built with `--features
//! mpi`) and what they exchange in a run by items: each rank runs a contiguous share of the
//! items and sends its results to rank 0, which writes every output. Without the feature, or
//! with one rank, a run is one process and every exchange here is the identity.

use std::ops::Range;

#[cfg(feature = "mpi")]
use mpi::traits::{Communicator, Destination, Root, Source};

/// This process's place in the job.
pub struct Ranks {
    #[cfg(feature = "mpi")]
    world: Option<(
        mpi::environment::Universe,
        mpi::topology::SimpleCommunicator,
    )>,
    rank: usize,
    size: usize,
}

impl Ranks {
    /// Joins the MPI job the process was launched in (feature `mpi`), else a job of one.
    pub fn init() -> Self {
        #[cfg(feature = "mpi")]
        if let Some(universe) = mpi::initialize() {
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            return Self {
                world: Some((universe, world)),
                rank,
                size,
            };
        }
        Self {
            #[cfg(feature = "mpi")]
            world: None,
            rank: 0,
            size: 1,
        }
    }

    /// Whether this binary was built with MPI.
    pub fn built_with_mpi() -> bool {
        cfg!(feature = "mpi")
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank 0: the one that writes the outputs.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// This rank's items: contiguous, in rank order, shares differing by at most one item.
    pub fn share(&self, items: usize) -> Range<usize> {
        share(items, self.rank, self.size)
    }

    /// Fails unless this rank's `value` of `what` is rank 0's (broadcast from rank 0).
    ///
    /// # Errors
    /// The value differs, naming both.
    pub fn agree(&self, what: &str, value: u64) -> anyhow::Result<()> {
        let root = self.broadcast(value);
        if root != value {
            anyhow::bail!(
                "{what} differs from rank 0's ({value:016x} here, {root:016x} on rank 0): \
                 every rank must run the same config, version and weights"
            );
        }
        Ok(())
    }

    /// Rank 0's `value`, on every rank.
    fn broadcast(&self, value: u64) -> u64 {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            let mut root = value;
            world.process_at_rank(0).broadcast_into(&mut root);
            return root;
        }
        value
    }

    /// Rank 0: every rank's `bytes`, in rank order (its own first). Other ranks send theirs
    /// and get `None`.
    pub fn gather(&self, bytes: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            if self.rank != 0 {
                world.process_at_rank(0).send(&bytes[..]);
                return None;
            }
            let mut all = vec![bytes];
            for r in 1..self.size {
                all.push(world.process_at_rank(r as i32).receive_vec::<u8>().0);
            }
            return Some(all);
        }
        Some(vec![bytes])
    }

    /// Ends the whole job (every rank) with `code`, after this rank's error was printed.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            world.abort(code);
        }
        std::process::exit(code)
    }
}

/// Items `[items·r/p, items·(r+1)/p)` of rank `r` of `p`.
pub fn share(items: usize, rank: usize, size: usize) -> Range<usize> {
    items * rank / size..items * (rank + 1) / size
}

/// A message: a JSON header and f32 arrays, framed as
/// `[json length: u64 LE][json][each array: length u64 LE, then its f32 values LE]`.
pub fn pack(header: &impl serde::Serialize, arrays: &[&[f32]]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("headers serialize");
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    for a in arrays {
        out.extend_from_slice(&(a.len() as u64).to_le_bytes());
        out.extend(a.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

/// The header and `n` arrays of a [`pack`]ed message.
///
/// # Errors
/// A truncated or malformed message.
pub fn unpack<H: serde::de::DeserializeOwned>(
    bytes: &[u8],
    n: usize,
) -> anyhow::Result<(H, Vec<Vec<f32>>)> {
    let mut at = 0;
    let mut take = |len: usize| -> anyhow::Result<&[u8]> {
        let s = bytes
            .get(at..at + len)
            .ok_or_else(|| anyhow::anyhow!("a truncated message from another rank"))?;
        at += len;
        Ok(s)
    };
    let len = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize;
    let json_len = len(take(8)?);
    let header = serde_json::from_slice(take(json_len)?)?;
    let mut arrays = Vec::with_capacity(n);
    for _ in 0..n {
        let count = len(take(8)?);
        let raw = take(count * 4)?;
        arrays.push(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        );
    }
    Ok((header, arrays))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_items_in_order() {
        for (items, size) in [(5, 2), (5, 3), (2, 3), (7, 1), (64, 5)] {
            let shares: Vec<_> = (0..size).map(|r| share(items, r, size)).collect();
            assert_eq!(shares[0].start, 0);
            assert_eq!(shares[size - 1].end, items);
            for w in shares.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let lens: Vec<usize> = shares.iter().map(ExactSizeIterator::len).collect();
            let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
            assert!(hi - lo <= 1, "{lens:?}");
        }
    }

    #[test]
    fn messages_round_trip_bit_for_bit() {
        let a = [1.5f32, f32::NAN, -0.0, f32::MIN_POSITIVE / 3.0];
        let b: [f32; 0] = [];
        let bytes = pack(&("hello", 7u32), &[&a, &b]);
        let ((s, n), arrays): ((String, u32), _) = unpack(&bytes, 2).unwrap();
        assert_eq!((s.as_str(), n), ("hello", 7));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&arrays[0]), bits(&a));
        assert!(arrays[1].is_empty());
        assert!(unpack::<(String, u32)>(&bytes[..bytes.len() - 1], 2).is_err());
    }
}
