//! From a config's lattice section to a validated neighbor cache.

use crate::config::{ConfigError, LatticeConfig, LoadedConfig};
use crate::geometry::Dims;
use crate::io::{IoError, read_mask};
use crate::neighbors::{NeighborCache, NeighborError, Radius};

#[derive(Debug, thiserror::Error)]
pub enum LatticeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("lattice.mask: {0}")]
    Mask(#[from] IoError),
    #[error("lattice: {0}")]
    Neighbors(#[from] NeighborError),
}

impl LatticeConfig {
    /// Dimensions; validated configs always have valid ones.
    pub fn dims(&self) -> Dims {
        let (w, h, d) = self.dims;
        Dims::new(w, h, d).expect("dims are checked by config validation")
    }

    pub fn radius(&self) -> Radius {
        Radius::adaptive(
            self.dims().max_dim(),
            self.radius_ratio,
            self.radius_min,
            self.radius_max,
        )
    }
}

/// Builds and validates the neighbor cache of a loaded config's lattice (mask included).
pub fn build_cache(
    loaded: &LoadedConfig,
    lattice: &LatticeConfig,
) -> Result<NeighborCache, LatticeError> {
    let dims = lattice.dims();
    let mask = match &lattice.mask {
        Some(p) => Some(read_mask(&loaded.resolve(p), dims)?),
        None => None,
    };
    Ok(NeighborCache::build(
        dims,
        lattice.boundary,
        lattice.radius(),
        mask,
    )?)
}
