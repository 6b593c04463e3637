//! What can go wrong in a run, typed: a caller can `match` on it, and its `Display` is the
//! message a user reads.

use lattice_core::config::ConfigError;
use lattice_core::lattice::LatticeError;
use lattice_core::tensors::WeightsError;
use lattice_gpu::GpuError;

/// An error an [`crate::Observer`] returns to end a run (anything that is `std::error::Error`).
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Why a simulation could not be built or a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config could not be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lattice (mask, neighbor cache) could not be built.
    #[error(transparent)]
    Lattice(#[from] LatticeError),
    /// A weights file could not be read or written, or does not match the model.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The GPU failed (no adapter, a refused device, an allocation, a readback).
    #[error("{context}: {source}")]
    Gpu {
        /// What was being done.
        context: &'static str,
        /// The device's error.
        #[source]
        source: GpuError,
    },
    /// Not even one item fits the backend's memory.
    #[error(
        "one {what} needs {binding_bytes} bytes in one GPU binding and {total_bytes} bytes in all; \
         {limit} is less. {fix}"
    )]
    OutOfMemory {
        /// "lattice" or "flows item".
        what: &'static str,
        /// Bytes of its largest buffer (one binding).
        binding_bytes: u64,
        /// Bytes of all its buffers.
        total_bytes: u64,
        /// The limit it exceeds.
        limit: &'static str,
        /// What to change.
        fix: &'static str,
    },
    /// A batch of one item still failed to allocate after the halvings.
    #[error(
        "even a batch of 1 item could not be allocated; use a smaller lattice or --backend cpu: {0}"
    )]
    BatchOfOneFailed(#[source] Box<Error>),
    /// `batch.max_batch_size` asks for more items than fit.
    #[error(
        "batch.max_batch_size Fixed({asked}) does not fit this backend: at most {fits} item(s) \
         fit {limit}; lower it or use Auto"
    )]
    BatchTooLarge {
        /// The configured batch size.
        asked: u32,
        /// Items that fit.
        fits: usize,
        /// The limit that sets `fits`.
        limit: &'static str,
    },
    /// A submitted item does not suit the simulation (wrong input kind or size, non-finite).
    #[error("item {item}: {message}")]
    Input {
        /// The item's id.
        item: u64,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A submitted item's input holds NaN or ±Inf.
    #[error("the {what} are not finite at item {item}, {place}")]
    NonFiniteInput {
        /// The item's id.
        item: u64,
        /// "initial states" or "input embeddings".
        what: &'static str,
        /// Where: "cell 7 [1, 1, 0]" or "element 3".
        place: String,
    },
    /// Two submitted items share an id.
    #[error("item id {0} is submitted twice")]
    DuplicateItem(u64),
    /// The observer ended the run.
    #[error("{0}")]
    Observer(#[source] ObserverError),
    /// A lattice split across ranks that this simulation or backend cannot run.
    #[error("{0}")]
    Domain(String),
    /// Another rank of a lattice split across ranks could not allocate its part of a batch.
    #[error("another rank could not allocate its part of the batch")]
    RankAllocation,
    /// An adapter of an API the kernels are not validated on disagreed with the CPU path.
    #[error(
        "the GPU adapter {adapter} failed the self-check against the CPU ({case}: {why}); \
         run with --backend cpu, or install a Vulkan driver (`apt-get install mesa-vulkan-drivers \
         libvulkan1` gives a CPU one)"
    )]
    SelfCheck {
        /// The adapter and its API.
        adapter: String,
        /// The check that failed.
        case: &'static str,
        /// What differed.
        why: String,
    },
    /// Texts could not be read or encoded, or the encoder's folder is unusable.
    #[cfg(feature = "texts")]
    #[error(transparent)]
    Text(Box<lattice_text::TextError>),
    /// The encoder's embeddings are not as wide as the flows' inputs.
    #[cfg(feature = "texts")]
    #[error(
        "the encoder {encoder} gives {dim}-d embeddings; the flows take embedding_dim = \
         {embedding_dim}: set embedding_dim: {dim} in the config, or use a {embedding_dim}-d encoder"
    )]
    EncoderWidth {
        /// The encoder's folder.
        encoder: String,
        /// Its width.
        dim: usize,
        /// The flows' `embedding_dim`.
        embedding_dim: u32,
    },
    /// Texts in a run whose items they cannot be.
    #[cfg(feature = "texts")]
    #[error("{0}")]
    Texts(String),
    /// The config could not be serialized (a config made in code).
    #[error("serializing the config: {0}")]
    Serialize(#[from] ron::Error),
}

#[cfg(feature = "texts")]
impl From<lattice_text::TextError> for Error {
    fn from(e: lattice_text::TextError) -> Self {
        Self::Text(Box::new(e))
    }
}

impl Error {
    /// A GPU error with what was being done.
    pub fn gpu(context: &'static str) -> impl FnOnce(GpuError) -> Self {
        move |source| Self::Gpu { context, source }
    }

    /// Whether a smaller batch might succeed (a GPU allocation failure).
    pub fn is_allocation(&self) -> bool {
        match self {
            Self::Gpu { source, .. } => source.is_allocation(),
            Self::RankAllocation => true,
            _ => false,
        }
    }
}

/// Why one item failed while the others went on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// A state turned NaN or ±Inf.
    #[error("non-finite state at step {step}, cell {cell} {coord:?}")]
    NonFinite {
        /// The step that produced it (1-based).
        step: u32,
        /// The first bad cell, index x + y·W + z·W·H.
        cell: u32,
        /// The cell's (x, y, z).
        coord: [u32; 3],
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
