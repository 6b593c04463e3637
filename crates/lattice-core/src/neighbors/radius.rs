//! The adaptive radius and the three distance classes (docs/model.md A3).

use serde::Serialize;

/// LOCAL d < 0.4R, FUNCTIONAL 0.4R ≤ d ≤ 0.8R, DISTANT 0.8R < d ≤ 0.99R.
pub const LOCAL_RATIO: f64 = 0.4;
pub const FUNCTIONAL_RATIO: f64 = 0.8;
pub const DISTANT_RATIO: f64 = 0.99;

/// Which expert a neighbor feeds. The discriminant is the index used in every array and shader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[repr(u8)]
pub enum NeighborClass {
    Local = 0,
    Functional = 1,
    Distant = 2,
}

impl NeighborClass {
    pub const ALL: [NeighborClass; 3] = [Self::Local, Self::Functional, Self::Distant];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Functional => "functional",
            Self::Distant => "distant",
        }
    }
}

/// The radius R and the class thresholds derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Radius {
    pub r: f64,
    pub local: f64,
    pub functional: f64,
    pub distant: f64,
}

impl Radius {
    /// `R = clamp(max_dim · ratio, min, max)`.
    pub fn adaptive(max_dim: u32, ratio: f64, min: f64, max: f64) -> Self {
        Self::from_r((f64::from(max_dim) * ratio).clamp(min, max))
    }

    pub fn from_r(r: f64) -> Self {
        Self {
            r,
            local: LOCAL_RATIO * r,
            functional: FUNCTIONAL_RATIO * r,
            distant: DISTANT_RATIO * r,
        }
    }

    /// The largest integer offset along one axis that can still be a neighbor.
    pub fn reach(&self) -> i32 {
        self.distant.floor() as i32
    }

    /// The class of a neighbor at squared integer distance `d2`, or `None` if it is not one
    /// (the cell itself, or beyond 0.99R). The one geometric predicate every path uses.
    #[inline]
    pub fn classify(&self, d2: u32) -> Option<NeighborClass> {
        if d2 == 0 {
            return None;
        }
        let d = f64::from(d2).sqrt();
        if d < self.local {
            Some(NeighborClass::Local)
        } else if d <= self.functional {
            Some(NeighborClass::Functional)
        } else if d <= self.distant {
            Some(NeighborClass::Distant)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_preset_thresholds() {
        let r = Radius::adaptive(15, 0.3, 1.0, 100.0);
        approx::assert_abs_diff_eq!(r.r, 4.5, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(r.local, 1.8, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(r.functional, 3.6, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(r.distant, 4.455, epsilon = 1e-12);
        assert_eq!(r.reach(), 4);
        assert_eq!(r.classify(1), Some(NeighborClass::Local));
        assert_eq!(r.classify(4), Some(NeighborClass::Functional));
        assert_eq!(r.classify(16), Some(NeighborClass::Distant));
        assert_eq!(r.classify(20), None);
        assert_eq!(r.classify(0), None);
    }

    #[test]
    fn radius_is_clamped() {
        assert_eq!(Radius::adaptive(2, 0.1, 1.0, 100.0).r, 1.0);
        assert_eq!(Radius::adaptive(1000, 0.2, 1.0, 100.0).r, 100.0);
    }
}
