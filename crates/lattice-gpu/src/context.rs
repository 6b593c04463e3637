//! Adapter and device setup. The adapter's own limits are requested (the defaults cap a storage
//! binding at 128 MiB), and "no adapter" is an ordinary, well-explained outcome.

use summary::AdapterSummary;

use crate::adapters::{self, AdapterFacts, GpuRequest, Verdict};

#[cfg(feature = "test-support")]
/// Environment switch: when set to `1`, GPU tests fail instead of skipping if no adapter is found.
pub const REQUIRE_GPU_ENV: &str = "LATTICE_REQUIRE_GPU";

/// What to install or check when no adapter is found.
pub const NO_ADAPTER_HELP: &str = "On a machine without a GPU install a CPU Vulkan driver \
(Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`) and set WGPU_BACKEND=vulkan; \
on a machine with a GPU, check that its driver and Vulkan loader are installed \
(`vulkaninfo --summary`). An OpenGL-only adapter is used only with --allow-untrusted-gpu, after a \
self-check against the CPU. Or use --backend cpu";

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no usable GPU adapter ({0}). {NO_ADAPTER_HELP}")]
    NoAdapter(String),
    /// The request names no GPU (a `LATTICE_GPU` that is not an index).
    #[error("{0}")]
    Request(String),
    #[error("the adapter {adapter} refused a device: {source}")]
    Device {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("{what} needs {need} bytes in one binding, the adapter allows {limit}; {fix}")]
    TooLarge {
        what: &'static str,
        need: u64,
        limit: u64,
        fix: &'static str,
    },
    #[error(
        "the kernel {kernel} needs {need} bytes of workgroup memory, the adapter allows {limit}; {fix}"
    )]
    WorkgroupMemory {
        kernel: &'static str,
        need: u64,
        limit: u64,
        fix: &'static str,
    },
    /// An allocation failed (caught by an out-of-memory error scope).
    #[error("the GPU ran out of memory: {0}")]
    OutOfMemory(#[source] wgpu::Error),
    /// A batch's buffers exceed the test-only [`GpuContext::memory_cap`].
    #[cfg(feature = "test-support")]
    #[error("the batch needs {asked} bytes of GPU buffers; the memory cap is {cap}")]
    OverCap { asked: u64, cap: u64 },
    /// An allocation failure injected for testing the retry path.
    #[cfg(feature = "test-support")]
    #[error("allocation failure injected for testing")]
    InjectedOutOfMemory,
    /// Any other error wgpu reported (validation, internal).
    #[error("GPU error: {0}")]
    Wgpu(#[source] wgpu::Error),
    /// Waiting for submitted work failed.
    #[error("waiting for the GPU failed: {0}")]
    Poll(#[source] wgpu::PollError),
    /// Mapping a read-back buffer failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(#[source] wgpu::BufferAsyncError),
    /// A mapped read-back buffer could not be viewed.
    #[error("reading back from the GPU failed: {0}")]
    MapRange(#[source] wgpu::MapRangeError),
    /// The read-back callback never reported.
    #[error("reading back from the GPU failed: the mapping was never reported")]
    ReadbackLost,
    /// The GPU's early-stop decision for an item differs from the host's (an engine bug).
    #[error(
        "item {item} of the batch: the GPU's stop rule gave {device}, the host's {host} \
         (please report it; --backend cpu runs the host's rule alone)"
    )]
    StopRule {
        item: u32,
        device: String,
        host: String,
    },
}

impl GpuError {
    /// Whether fewer items per batch could succeed.
    pub fn is_allocation(&self) -> bool {
        match self {
            Self::TooLarge { .. } | Self::OutOfMemory(_) => true,
            #[cfg(feature = "test-support")]
            Self::OverCap { .. } | Self::InjectedOutOfMemory => true,
            _ => false,
        }
    }
}

/// A device, its queue and what it can do.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Whether the adapter's API is one the kernels are validated on; an untrusted one must
    /// pass a self-check against the CPU before a run uses it.
    pub trusted: bool,
    /// Fault injection for tests: a batch whose storage buffers add up to more than this many
    /// bytes fails at its allocation as if the device ran out of memory (None: no cap).
    #[cfg(feature = "test-support")]
    pub memory_cap: Option<u64>,
    /// Storage bytes created inside the current [`crate::kernel::allocating`] scope.
    pub(crate) allocated: std::sync::atomic::AtomicU64,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::all();
    wgpu::Instance::new(desc.with_env())
}

/// Every adapter wgpu can see (honours `WGPU_BACKEND`), and the facts selection decides on.
fn enumerate() -> (Vec<wgpu::Adapter>, Vec<AdapterFacts>) {
    let all = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    let facts = all
        .iter()
        .map(|a| AdapterFacts::from_info(&a.get_info()))
        .collect();
    (all, facts)
}

/// Every adapter wgpu can see (honours `WGPU_BACKEND`), with what selection makes of it
/// under `req`.
pub fn list_adapters(req: &GpuRequest) -> Vec<(AdapterSummary, Verdict)> {
    let (all, facts) = enumerate();
    let verdicts = adapters::assess(&facts, req);
    all.iter()
        .map(AdapterSummary::from_adapter)
        .zip(verdicts)
        .collect()
}

impl GpuContext {
    /// The first usable GPU: a discrete one before an integrated one, a hardware GPU before a
    /// software adapter, and only through the APIs the kernels are validated on.
    pub fn new() -> Result<Self, GpuError> {
        Self::open_requested(&GpuRequest::default())
    }

    /// The adapter `req` asks for ([`adapters::choose`]): an explicit GPU, or the node-local
    /// rank's, among distinct devices of trusted APIs (any API with `allow_untrusted`).
    /// [`Self::trusted`] tells a caller whether it must check the adapter before a run.
    pub fn open_requested(req: &GpuRequest) -> Result<Self, GpuError> {
        let (mut all, facts) = enumerate();
        let k = adapters::choose(&facts, req).map_err(GpuError::NoAdapter)?;
        Self::open(all.swap_remove(k))
    }

    fn open(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let summary = AdapterSummary::from_adapter(&adapter);
        let wanted = wgpu::Features::TIMESTAMP_QUERY;
        let features = wanted & adapter.features();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lattice"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|source| GpuError::Device {
            adapter: summary.name.clone(),
            source,
        })?;
        tracing::info!(adapter = %summary.name, backend = %summary.backend, "GPU device ready");
        let trusted = adapters::Api::from_wgpu(adapter.get_info().backend).is_trusted();
        Ok(Self {
            trusted,
            device,
            queue,
            adapter: summary,
            limits,
            features,
            #[cfg(feature = "test-support")]
            memory_cap: None,
            allocated: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Storage bytes the last batch set-up allocated.
    pub fn last_allocation_bytes(&self) -> u64 {
        self.allocated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The largest storage binding this device accepts.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The share of the device's memory a run may plan to use: 80 % of it, where known.
    pub fn memory_budget(&self) -> Option<u64> {
        self.adapter.device_memory.map(|m| m / 10 * 8)
    }

    /// Items that fit one batch: each needs `binding` bytes in its largest binding and `total`
    /// bytes of device memory in all. Returns the count and the limit that set it.
    pub fn items_that_fit(&self, binding: u64, total: u64) -> (u64, &'static str) {
        let by_binding = self.max_binding() / binding.max(1);
        match self.memory_budget() {
            Some(budget) if budget / total.max(1) < by_binding => {
                (budget / total.max(1), "80 % of the GPU's memory")
            }
            _ => (by_binding, "one GPU binding"),
        }
    }

    /// Fails with a clear error if one binding of `bytes` would exceed the device's limit.
    pub fn check_binding(
        &self,
        what: &'static str,
        bytes: u64,
        fix: &'static str,
    ) -> Result<(), GpuError> {
        if bytes > self.max_binding() {
            return Err(GpuError::TooLarge {
                what,
                need: bytes,
                limit: self.max_binding(),
                fix,
            });
        }
        Ok(())
    }
}

/// The context for a GPU test: `None` (skip, with a note) when no trusted adapter exists, unless
/// `LATTICE_REQUIRE_GPU=1`, in which case a missing adapter fails the test.
#[cfg(feature = "test-support")]
pub fn test_context() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var(REQUIRE_GPU_ENV).as_deref() == Ok("1") {
                panic!("{REQUIRE_GPU_ENV}=1 but no GPU device: {e}");
            }
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

pub mod summary {
    //! Plain adapter facts for printing and metrics.

    /// Name, backend, type and the limits that matter to the engine.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AdapterSummary {
        pub name: String,
        pub backend: String,
        pub device_type: String,
        pub driver: String,
        pub max_storage_binding: u64,
        pub max_buffer: u64,
        pub max_workgroups_per_dim: u32,
        pub max_workgroup_storage: u32,
        pub timestamps: bool,
        pub f16: bool,
        pub subgroups: bool,
        /// Device-local memory in bytes, where the backend tells (Vulkan: the largest
        /// DEVICE_LOCAL heap); `None` elsewhere (wgpu has no portable query).
        pub device_memory: Option<u64>,
    }

    impl AdapterSummary {
        pub fn from_adapter(a: &wgpu::Adapter) -> Self {
            let info = a.get_info();
            let limits = a.limits();
            let features = a.features();
            Self {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                max_storage_binding: limits.max_storage_buffer_binding_size,
                max_buffer: limits.max_buffer_size,
                max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
                max_workgroup_storage: limits.max_compute_workgroup_storage_size,
                timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
                f16: features.contains(wgpu::Features::SHADER_F16),
                subgroups: features.contains(wgpu::Features::SUBGROUP),
                device_memory: device_memory(a),
            }
        }
    }

    /// The largest DEVICE_LOCAL heap of a Vulkan adapter.
    #[cfg(not(target_arch = "wasm32"))]
    fn device_memory(a: &wgpu::Adapter) -> Option<u64> {
        use ash::vk::MemoryHeapFlags;
        // SAFETY: reads the physical device's memory properties through wgpu's own instance;
        // no handle is created, kept or destroyed.
        let hal = unsafe { a.as_hal::<wgpu::hal::api::Vulkan>() }?;
        let props = unsafe {
            hal.shared_instance()
                .raw_instance()
                .get_physical_device_memory_properties(hal.raw_physical_device())
        };
        let count = (props.memory_heap_count as usize).min(props.memory_heaps.len());
        props.memory_heaps[..count]
            .iter()
            .filter(|h| h.flags.contains(MemoryHeapFlags::DEVICE_LOCAL))
            .map(|h| h.size)
            .max()
    }

    #[cfg(target_arch = "wasm32")]
    fn device_memory(_: &wgpu::Adapter) -> Option<u64> {
        None
    }
}
