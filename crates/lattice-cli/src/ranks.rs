//! The ranks of an MPI job (`mpirun -n P lattice run ...`, a binary built with `--features
//! mpi`) and what they exchange in a run by items: each rank runs a contiguous share of the
//! items and sends its results to rank 0, which writes every output. Without the feature, or
//! with one rank, a run is one process and every exchange here is the identity.

use std::ops::Range;

use lattice_core::moe::domain::{Halo, Planes};
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

    /// This rank's place among the ranks on its machine (MPI's shared-memory split), which
    /// picks its GPU; `None` in a job of one.
    pub fn local_rank(&self) -> Option<usize> {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world
            && self.size > 1
        {
            let node = world.split_shared(self.rank as i32);
            return Some(node.rank() as usize);
        }
        None
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

    /// Fails unless this rank's `value` of `what` is rank 0's, naming both values.
    ///
    /// # Errors
    /// The value differs.
    pub fn agree_on(&self, what: &str, value: &str) -> anyhow::Result<()> {
        let root = self.broadcast_text(value);
        if root != value {
            anyhow::bail!(
                "ranks disagree on {what}: {value} here, {root} on rank 0; every rank must \
                 run the same inputs and options"
            );
        }
        Ok(())
    }

    /// Rank 0's `text`, on every rank.
    fn broadcast_text(&self, text: &str) -> String {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            let root = world.process_at_rank(0);
            let mut len = text.len() as u64;
            root.broadcast_into(&mut len);
            let mut bytes = text.as_bytes().to_vec();
            bytes.resize(len as usize, 0);
            root.broadcast_into(&mut bytes[..]);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        text.to_owned()
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
    /// and get `None`. A part travels as its length, then pieces of at most 1 GiB (an MPI
    /// message counts its elements in an `int`).
    pub fn gather(&self, bytes: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        #[cfg(feature = "mpi")]
        if let Some((_, world)) = &self.world {
            if self.rank != 0 {
                let root = world.process_at_rank(0);
                root.send(&(bytes.len() as u64));
                for piece in bytes.chunks(piece_bytes()) {
                    root.send(piece);
                }
                return None;
            }
            let mut all = vec![bytes];
            for r in 1..self.size {
                let rank = world.process_at_rank(r as i32);
                let len = rank.receive::<u64>().0 as usize;
                let mut part = Vec::with_capacity(len);
                while part.len() < len {
                    part.extend(rank.receive_vec::<u8>().0);
                }
                all.push(part);
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

impl Ranks {
    /// The halo exchange of this rank's slab `planes` of every lattice (`plane_values` floats
    /// per z-plane of an item), counting into `tally`. A job of one has nothing to exchange.
    pub fn halo(
        &self,
        planes: Planes,
        plane_values: usize,
        tally: std::sync::Arc<HaloTally>,
    ) -> Box<dyn Halo> {
        #[cfg(feature = "mpi")]
        if self.world.is_some() {
            return Box::new(MpiHalo::new(
                planes,
                plane_values,
                self.rank,
                self.size,
                tally,
            ));
        }
        let _ = (planes, plane_values, tally);
        Box::new(OneProcess)
    }
}

/// The halo of a job of one: the slab is the whole lattice.
struct OneProcess;

impl Halo for OneProcess {
    fn exchange(&mut self, _states: &mut [f32]) {}

    fn lowest_over_ranks(&mut self, lowest: Vec<u32>) -> Vec<u32> {
        lowest
    }

    fn batch_size_of_root(&mut self, mine: usize) -> usize {
        mine
    }

    fn all_allocated(&mut self, here: bool) -> bool {
        here
    }
}

/// The size of the pieces a part is sent in: 1 GiB (tests cut parts smaller).
#[cfg(feature = "mpi")]
fn piece_bytes() -> usize {
    crate::test_hooks::mpi_piece_bytes()
        .filter(|&n| n > 0)
        .unwrap_or(1 << 30)
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

/// What a rank's halo exchanges cost: bytes sent and time spent, over all exchanges.
#[derive(Debug, Default)]
pub struct HaloTally {
    pub bytes_sent: std::sync::atomic::AtomicU64,
    pub nanos: std::sync::atomic::AtomicU64,
    pub exchanges: std::sync::atomic::AtomicU64,
}

impl HaloTally {
    /// Mean bytes sent and milliseconds spent per exchange (per step).
    pub fn per_step(&self) -> (f64, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.exchanges.load(Relaxed).max(1) as f64;
        (
            self.bytes_sent.load(Relaxed) as f64 / n,
            self.nanos.load(Relaxed) as f64 * 1e-6 / n,
        )
    }
}

#[cfg(feature = "mpi")]
pub use exchange::MpiHalo;

#[cfg(feature = "mpi")]
mod exchange {
    use std::ops::Range;
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Instant;

    use lattice_core::moe::domain::{Halo, Planes};
    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator, CommunicatorCollectives, Destination, Root, Source};

    use super::HaloTally;

    /// Tags: planes sent to the rank above, and to the rank below.
    const UP: i32 = 1;
    const DOWN: i32 = 2;

    /// The halo exchange of one rank's z-slab over MPI_COMM_WORLD: non-blocking sends of its
    /// edge planes, blocking receives of its halo planes (device memory is not involved: the
    /// CPU backend's states are host memory).
    pub struct MpiHalo {
        planes: Planes,
        /// Floats in one z-plane of one item (W·H·S).
        plane_values: usize,
        up: Option<i32>,
        down: Option<i32>,
        tally: Arc<HaloTally>,
    }

    impl MpiHalo {
        pub fn new(
            planes: Planes,
            plane_values: usize,
            rank: usize,
            size: usize,
            tally: Arc<HaloTally>,
        ) -> Self {
            let (r, p) = (rank as i32, size as i32);
            let up = planes.above().map(|_| (r + 1) % p);
            let down = planes.below().map(|_| (r + p - 1) % p);
            Self {
                planes,
                plane_values,
                up,
                down,
                tally,
            }
        }

        fn values(&self, z: &Range<u32>) -> Range<usize> {
            z.start as usize * self.plane_values..z.end as usize * self.plane_values
        }
    }

    impl Halo for MpiHalo {
        fn exchange(&mut self, states: &mut [f32]) {
            let t = Instant::now();
            let world = SimpleCommunicator::world();
            let per_item = self.plane_values * self.planes.depth as usize;
            let (owned, h) = (self.planes.owned.clone(), self.planes.halo);
            let top = self.values(&(owned.end - h..owned.end));
            let bottom = self.values(&(owned.start..owned.start + h));
            let below = self.planes.below().map(|z| self.values(&z));
            let above = self.planes.above().map(|z| self.values(&z));
            let mut sent = 0u64;
            for item in states.chunks_mut(per_item) {
                let send_up = item[top.clone()].to_vec();
                let send_down = item[bottom.clone()].to_vec();
                let mut from_below = vec![0.0f32; below.as_ref().map_or(0, ExactSizeIterator::len)];
                let mut from_above = vec![0.0f32; above.as_ref().map_or(0, ExactSizeIterator::len)];
                mpi::request::scope(|scope| {
                    let to_up = (self.up).map(|u| {
                        world
                            .process_at_rank(u)
                            .immediate_send_with_tag(scope, &send_up[..], UP)
                    });
                    let to_down = (self.down).map(|d| {
                        (world.process_at_rank(d)).immediate_send_with_tag(
                            scope,
                            &send_down[..],
                            DOWN,
                        )
                    });
                    if let Some(d) = self.down {
                        world
                            .process_at_rank(d)
                            .receive_into_with_tag(&mut from_below[..], UP);
                    }
                    if let Some(u) = self.up {
                        world
                            .process_at_rank(u)
                            .receive_into_with_tag(&mut from_above[..], DOWN);
                    }
                    for r in [to_up, to_down].into_iter().flatten() {
                        r.wait();
                    }
                });
                if let Some(z) = &below {
                    item[z.clone()].copy_from_slice(&from_below);
                }
                if let Some(z) = &above {
                    item[z.clone()].copy_from_slice(&from_above);
                }
                let sends = u64::from(self.up.is_some()) * send_up.len() as u64
                    + u64::from(self.down.is_some()) * send_down.len() as u64;
                sent += 4 * sends;
            }
            self.tally.bytes_sent.fetch_add(sent, Relaxed);
            (self.tally.nanos).fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
            self.tally.exchanges.fetch_add(1, Relaxed);
        }

        fn lowest_over_ranks(&mut self, lowest: Vec<u32>) -> Vec<u32> {
            let mut all = vec![u32::MAX; lowest.len()];
            SimpleCommunicator::world().all_reduce_into(
                &lowest[..],
                &mut all[..],
                SystemOperation::min(),
            );
            all
        }

        fn batch_size_of_root(&mut self, mine: usize) -> usize {
            let mut size = mine as u64;
            SimpleCommunicator::world()
                .process_at_rank(0)
                .broadcast_into(&mut size);
            size as usize
        }

        fn all_allocated(&mut self, here: bool) -> bool {
            let mut all = 0u32;
            SimpleCommunicator::world().all_reduce_into(
                &u32::from(here),
                &mut all,
                SystemOperation::min(),
            );
            all == 1
        }
    }
}
