//! The cost model of the GPU kernels as built, in one place: per kernel and per unit of work
//! (a cell-update, a flow-step), the arithmetic it does and the device-memory bytes it must
//! move. `lattice bench --profile` sets these next to each kernel's measured time, and the
//! roofline bound of a device is the larger of FLOP / peak and bytes / bandwidth.
//!
//! Counting rules. FLOP: a multiply-add is 2, every other arithmetic operation 1, and a
//! transcendental (exp, tanh, erf in GELU, sigmoid's exp, sqrt) 1; inputs that are always zero
//! (the MoE GRU gates' 16 external inputs) are not counted. Bytes: every buffer element a
//! kernel reads or writes, once per unit (a kernel that re-reads a value may move more; one
//! whose caches catch neighbors' reads moves less than the sum over neighbors, so neighbor
//! states count once per cell); weights once per dispatch, not per unit, so they are left out.

pub mod flows;
pub mod moe;

/// One kernel's work per unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelCost {
    /// The kernel's name in the kernel table (`moe_gather`, `flow_gru`, ...).
    pub kernel: &'static str,
    /// Arithmetic per unit.
    pub flop: f64,
    /// Device-memory bytes per unit.
    pub bytes: f64,
}

/// A device's limits for a roofline bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Device {
    pub name: &'static str,
    /// FP32 (non-tensor) FLOP/s.
    pub fp32_flops: f64,
    /// Device-memory bytes/s.
    pub bandwidth: f64,
}

impl Device {
    /// NVIDIA H100 SXM: 67 TFLOP/s FP32, 3.35 TB/s HBM3 (the device the modeled figures of
    /// docs/benchmarks.md assume).
    pub const H100: Self = Self {
        name: "H100",
        fp32_flops: 67.0e12,
        bandwidth: 3.35e12,
    };
    /// NVIDIA H200: the H100's FP32 peak, 4.8 TB/s HBM3e.
    pub const H200: Self = Self {
        name: "H200",
        fp32_flops: 67.0e12,
        bandwidth: 4.8e12,
    };
    /// NVIDIA A100 SXM 80 GB: 19.5 TFLOP/s FP32, 2.04 TB/s.
    pub const A100: Self = Self {
        name: "A100",
        fp32_flops: 19.5e12,
        bandwidth: 2.04e12,
    };

    /// The known device an adapter name belongs to.
    pub fn known(adapter: &str) -> Option<Self> {
        [Self::H200, Self::H100, Self::A100]
            .into_iter()
            .find(|d| adapter.contains(d.name))
    }

    /// The roofline time of `units` units of `cost`, in seconds.
    pub fn bound_s(&self, cost: &KernelCost, units: f64) -> f64 {
        (cost.flop * units / self.fp32_flops).max(cost.bytes * units / self.bandwidth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_the_slower_of_arithmetic_and_memory() {
        let k = KernelCost {
            kernel: "k",
            flop: 670.0,
            bytes: 3.35,
        };
        // 1e9 units: 6.7e11 FLOP → 10 ms of arithmetic, 3.35e9 B → 1 ms of memory.
        approx::assert_relative_eq!(Device::H100.bound_s(&k, 1e9), 0.01, max_relative = 1e-12);
        let m = KernelCost { bytes: 335.0, ..k };
        approx::assert_relative_eq!(Device::H100.bound_s(&m, 1e9), 0.1, max_relative = 1e-12);
        assert_eq!(Device::known("NVIDIA H200 NVL"), Some(Device::H200));
        assert_eq!(Device::known("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
    }
}
