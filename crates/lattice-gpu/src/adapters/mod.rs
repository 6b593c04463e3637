//! Which adapter a process opens, decided on plain facts (so it is unit-tested on synthetic
//! adapter lists): only the APIs the kernels are validated on unless the caller asks for more,
//! distinct devices kept distinct (eight identical GPUs are eight devices), one device seen
//! through two APIs merged into one, and one GPU per node-local rank.

/// The graphics API an adapter is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    Vulkan,
    Metal,
    Dx12,
    Gl,
    Other,
}

impl Api {
    /// Whether the kernels are validated on this API (the GPU-vs-CPU tests run on Vulkan, and
    /// Metal and DX12 compile the same WGSL through naga's mature back ends). OpenGL runs
    /// compute through one shared context: concurrent use deadlocked or read wrong numbers.
    pub fn is_trusted(self) -> bool {
        matches!(self, Self::Vulkan | Self::Metal | Self::Dx12)
    }

    pub fn from_wgpu(b: wgpu::Backend) -> Self {
        match b {
            wgpu::Backend::Vulkan => Self::Vulkan,
            wgpu::Backend::Metal => Self::Metal,
            wgpu::Backend::Dx12 => Self::Dx12,
            wgpu::Backend::Gl => Self::Gl,
            _ => Self::Other,
        }
    }
}

/// What kind of device an adapter drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A discrete GPU (listed first: the default single-process choice).
    Discrete,
    Integrated,
    /// A software rasterizer (lavapipe, llvmpipe, WARP) sharing the CPU.
    Software,
    Other,
}

impl Kind {
    pub fn from_wgpu(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => Self::Discrete,
            wgpu::DeviceType::IntegratedGpu => Self::Integrated,
            wgpu::DeviceType::Cpu => Self::Software,
            _ => Self::Other,
        }
    }

    fn is_hardware(self) -> bool {
        matches!(self, Self::Discrete | Self::Integrated)
    }
}

/// The facts of one adapter that selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterFacts {
    pub name: String,
    pub api: Api,
    pub kind: Kind,
    pub vendor: u32,
    pub device: u32,
    /// `domain:bus:device.function` where the API reports it (Vulkan with the PCI bus info
    /// extension), else empty.
    pub pci_bus_id: String,
}

impl AdapterFacts {
    pub fn from_info(info: &wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name.clone(),
            api: Api::from_wgpu(info.backend),
            kind: Kind::from_wgpu(info.device_type),
            vendor: info.vendor,
            device: info.device,
            pci_bus_id: info.device_pci_bus_id.clone(),
        }
    }

    /// Whether `self` and `other` are one device seen through two APIs: the same PCI bus id
    /// where both report one, else the same vendor and model (a name that one of the two
    /// extends, a device id that matches or is unreported). Adapters of one API are always
    /// distinct devices, however alike.
    fn same_device(&self, other: &Self) -> bool {
        if self.api == other.api {
            return false;
        }
        if !self.pci_bus_id.is_empty() && !other.pci_bus_id.is_empty() {
            return self.pci_bus_id == other.pci_bus_id;
        }
        let ids = self.vendor == other.vendor
            && (self.device == other.device || self.device == 0 || other.device == 0);
        let names = self.name.starts_with(&other.name) || other.name.starts_with(&self.name);
        ids && names
    }
}

/// Why an adapter is or is not among the devices a process may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A device a run may open (its index among the usable devices).
    Usable { index: usize },
    /// Reached through an API the kernels are not validated on; used only on request.
    Untrusted,
    /// The same device as adapter `of` (listed earlier), seen through another API.
    Duplicate { of: usize },
    /// A software adapter on a machine with a hardware GPU.
    SoftwareBesideHardware,
    /// Not among the GPUs this task was given (`CUDA_VISIBLE_DEVICES`).
    NotVisible,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usable { index } => write!(f, "usable, GPU {index}"),
            Self::Untrusted => write!(
                f,
                "not used: the kernels are not validated on this API (--allow-untrusted-gpu \
                 tries it after a self-check against the CPU)"
            ),
            Self::Duplicate { of } => {
                write!(
                    f,
                    "not used: adapter {of} is the same device through another API"
                )
            }
            Self::SoftwareBesideHardware => {
                write!(f, "not used: a software adapter beside a hardware GPU")
            }
            Self::NotVisible => write!(f, "not used: not among CUDA_VISIBLE_DEVICES"),
        }
    }
}

/// What the caller asks of adapter selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuRequest {
    /// An explicit device: the N-th usable GPU (`--gpu N`, `LATTICE_GPU`).
    pub device: Option<usize>,
    /// This process's rank among the processes of its machine: rank k takes GPU k.
    pub local_rank: Option<usize>,
    /// Also consider adapters whose API the kernels are not validated on (they must then pass
    /// a self-check before a run uses them).
    pub allow_untrusted: bool,
    /// The GPUs this task was given as indices in PCI bus order (`CUDA_VISIBLE_DEVICES`),
    /// used when the API shows more GPUs than that.
    pub visible: Option<Vec<usize>>,
}

/// The environment variable that names a GPU, as `--gpu N` does.
pub const GPU_ENV: &str = "LATTICE_GPU";

impl GpuRequest {
    /// `LATTICE_GPU` and `CUDA_VISIBLE_DEVICES` from the environment.
    ///
    /// # Errors
    /// `LATTICE_GPU` set to something other than a GPU index.
    pub fn from_env() -> Result<Self, String> {
        let device = match std::env::var(GPU_ENV) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(|_| {
                format!("{GPU_ENV}={v:?} is not a GPU index (0, 1, ...; `lattice info` lists them)")
            })?),
            _ => None,
        };
        let visible = std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .and_then(|v| parse_visible(&v));
        Ok(Self {
            device,
            visible,
            ..Self::default()
        })
    }
}

/// `CUDA_VISIBLE_DEVICES` as indices; `None` when unset, empty or not numeric (UUIDs name
/// devices that Vulkan does not report, so those lists are not applied).
fn parse_visible(v: &str) -> Option<Vec<usize>> {
    let list: Option<Vec<usize>> = v.split(',').map(|s| s.trim().parse().ok()).collect();
    list.filter(|l| !l.is_empty())
}

/// Every adapter's verdict, in the order listed.
pub fn assess(list: &[AdapterFacts], req: &GpuRequest) -> Vec<Verdict> {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; list.len()];
    // Merge duplicates, keeping the trusted API's adapter (Vulkan first).
    let mut by_api: Vec<usize> = (0..list.len()).collect();
    by_api.sort_by_key(|&i| (list[i].api, i));
    let mut kept: Vec<usize> = Vec::new();
    for &i in &by_api {
        match kept.iter().find(|&&k| list[k].same_device(&list[i])) {
            Some(&k) => verdicts[i] = Some(Verdict::Duplicate { of: k }),
            None => kept.push(i),
        }
    }
    kept.retain(|&i| {
        let trusted = req.allow_untrusted || list[i].api.is_trusted();
        if !trusted {
            verdicts[i] = Some(Verdict::Untrusted);
        }
        trusted
    });
    if kept.iter().any(|&i| list[i].kind.is_hardware()) {
        kept.retain(|&i| {
            let hw = list[i].kind.is_hardware();
            if !hw {
                verdicts[i] = Some(Verdict::SoftwareBesideHardware);
            }
            hw
        });
    }
    apply_visible(list, req, &mut kept, &mut verdicts);
    // Trusted APIs first, then discrete before integrated, in listing order.
    kept.sort_by_key(|&i| (!list[i].api.is_trusted(), list[i].kind, i));
    for (index, &i) in kept.iter().enumerate() {
        verdicts[i] = Some(Verdict::Usable { index });
    }
    verdicts
        .into_iter()
        .map(|v| v.expect("every adapter is judged"))
        .collect()
}

/// Keeps the GPUs named by `CUDA_VISIBLE_DEVICES` (indices in PCI bus order) when the API
/// shows more than the task was given; an API that already shows only those is left as is.
fn apply_visible(
    list: &[AdapterFacts],
    req: &GpuRequest,
    kept: &mut Vec<usize>,
    verdicts: &mut [Option<Verdict>],
) {
    let Some(visible) = &req.visible else {
        return;
    };
    let mut hw: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|&i| list[i].kind.is_hardware() && !list[i].pci_bus_id.is_empty())
        .collect();
    if hw.len() <= visible.len() || hw.len() != kept.len() {
        return;
    }
    hw.sort_by(|&a, &b| list[a].pci_bus_id.cmp(&list[b].pci_bus_id));
    let chosen: Vec<usize> = visible.iter().filter_map(|&v| hw.get(v).copied()).collect();
    kept.retain(|i| {
        let keep = chosen.contains(i);
        if !keep {
            verdicts[*i] = Some(Verdict::NotVisible);
        }
        keep
    });
}

/// The adapter (index into `list`) this process opens.
///
/// # Errors
/// No usable adapter (saying why each was passed over), or `--gpu N` past the last GPU.
pub fn choose(list: &[AdapterFacts], req: &GpuRequest) -> Result<usize, String> {
    let verdicts = assess(list, req);
    let usable = in_gpu_order(&verdicts);
    if usable.is_empty() {
        let why: Vec<String> = (list.iter().zip(&verdicts))
            .map(|(a, v)| format!("{} ({:?}): {v}", a.name, a.api))
            .collect();
        return Err(if why.is_empty() {
            "no adapter was found".into()
        } else {
            why.join("; ")
        });
    }
    let n = usable.len();
    let pick = match (req.device, req.local_rank) {
        (Some(d), _) if d >= n => {
            return Err(format!(
                "GPU {d} was asked for (--gpu or {GPU_ENV}), but this task has {n} usable \
                 GPU(s), numbered from 0 (`lattice info` lists them)"
            ));
        }
        (Some(d), _) => d,
        (None, Some(k)) => {
            if k >= n {
                tracing::warn!(
                    "node-local rank {k} shares a GPU: the machine has {n} usable GPU(s) \
                     (GPU {} is taken)",
                    k % n
                );
            }
            k % n
        }
        (None, None) => 0,
    };
    Ok(usable[pick])
}

/// The usable adapters (indices into the list), GPU 0 first.
pub fn in_gpu_order(verdicts: &[Verdict]) -> Vec<usize> {
    let mut usable: Vec<(usize, usize)> = (verdicts.iter().enumerate())
        .filter_map(|(i, v)| match v {
            Verdict::Usable { index } => Some((*index, i)),
            _ => None,
        })
        .collect();
    usable.sort_unstable();
    usable.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests;
