//! MoE weights: the generic [`Weights`] over the MoE [`ParamLayout`].

pub use crate::tensors::WeightsError;

use super::params::ParamLayout;
use crate::tensors::Weights;

/// All MoE tensors, packed in [`ParamLayout`] order.
pub type MoeWeights = Weights<ParamLayout>;
