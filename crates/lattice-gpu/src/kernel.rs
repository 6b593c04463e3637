//! Buffer, pipeline and dispatch helpers shared by every kernel module.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use crate::context::{GpuContext, GpuError};
use crate::shaders::{self, KernelSpec};

/// A compute pipeline built from one kernel of the table ([`KernelSpec`]), with its
/// auto-derived layout. Cloning shares the compiled pipeline.
#[derive(Clone)]
pub struct Kernel {
    pub spec: &'static KernelSpec,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub workgroup: u32,
}

impl Kernel {
    /// Compiles `spec` specialised with `header` (empty for an unspecialised kernel).
    pub fn new(ctx: &GpuContext, spec: &'static KernelSpec, header: &str) -> Self {
        let label = spec.name;
        let source = shaders::compose(spec, header);
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some(spec.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    zero_initialize_workgroup_memory: true,
                },
                cache: None,
            });
        let layout = pipeline.get_bind_group_layout(0);
        Self {
            spec,
            pipeline,
            layout,
            workgroup: spec.workgroup,
        }
    }

    /// A bind group of `buffers` in the table's binding order.
    pub fn bind(&self, ctx: &GpuContext, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        assert_eq!(
            buffers.len(),
            self.spec.bindings.len(),
            "{}: bind {:?} in this order",
            self.spec.name,
            self.spec.bindings
        );
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(k, b)| wgpu::BindGroupEntry {
                binding: k as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        })
    }

    /// Records a dispatch of `invocations` threads, folding the grid into 2D past 65,535 groups.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        group: &wgpu::BindGroup,
        invocations: u64,
    ) {
        let (x, y) = grid(
            invocations,
            self.workgroup,
            ctx.limits.max_compute_workgroups_per_dimension,
        );
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

impl Kernel {
    /// Records a dispatch whose workgroup grid a kernel wrote to `args` at `offset` (three
    /// `u32`s: x, y, z).
    pub fn dispatch_indirect(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        group: &wgpu::BindGroup,
        args: &wgpu::Buffer,
        offset: u64,
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups_indirect(args, offset);
    }

    /// Records a dispatch of an explicit workgroup grid.
    pub fn dispatch_groups(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        group: &wgpu::BindGroup,
        x: u32,
        y: u32,
        z: u32,
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Workgroup grid (x, y) covering `invocations` threads; shaders recover the flat index with
/// `flat_invocation`.
pub fn grid(invocations: u64, workgroup: u32, max_per_dim: u32) -> (u32, u32) {
    let groups = invocations.div_ceil(u64::from(workgroup)).max(1);
    let x = groups.min(u64::from(max_per_dim));
    let y = groups.div_ceil(x);
    (x as u32, y as u32)
}

/// Runs `alloc` (buffer and bind-group creation) inside an out-of-memory error scope, so a
/// failed allocation is an error the caller can retry smaller instead of a panic.
pub fn allocating<T>(
    ctx: &GpuContext,
    alloc: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    use std::sync::atomic::Ordering;
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    ctx.allocated.store(0, Ordering::Relaxed);
    let value = alloc();
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(GpuError::OutOfMemory(e));
    }
    #[cfg(feature = "test-support")]
    {
        let asked = ctx.allocated.load(Ordering::Relaxed);
        if let Some(cap) = ctx.memory_cap.filter(|&cap| asked > cap) {
            return Err(GpuError::OverCap { asked, cap });
        }
    }
    value
}

/// Counts a storage or staging buffer against the current allocation scope.
fn charge(ctx: &GpuContext, bytes: u64) {
    ctx.allocated
        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
}

pub fn storage<T: Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> wgpu::Buffer {
    // Zero-length bindings are invalid: bind one zero element instead.
    let bytes: &[u8] = bytemuck::cast_slice(data);
    charge(ctx, bytes.len() as u64);
    let zero = [0u8; 4];
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: if bytes.is_empty() { &zero } else { bytes },
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

pub fn storage_zeroed(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
    zeroed(ctx, label, bytes, wgpu::BufferUsages::COPY_DST)
}

/// A zeroed storage buffer a kernel writes workgroup grids into, for indirect dispatch.
pub fn indirect_args(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
    zeroed(ctx, label, bytes, wgpu::BufferUsages::INDIRECT)
}

/// A zeroed, charged storage buffer that can be copied from, with `usage` besides.
fn zeroed(ctx: &GpuContext, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    charge(ctx, bytes);
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | usage,
        mapped_at_creation: false,
    })
}

pub fn uniform<T: Pod>(ctx: &GpuContext, label: &str, value: &T) -> wgpu::Buffer {
    charge(ctx, size_of::<T>() as u64);
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

/// A host-readable buffer for a small read-back that happens every step (flow counts,
/// non-finite flags): created once, its copy recorded into the step's own command buffer, so a
/// step neither creates a buffer nor submits a second time to read its result.
pub struct Staging {
    buffer: wgpu::Buffer,
    bytes: u64,
}

impl Staging {
    /// Room for `bytes` bytes (charged to the current allocation scope like a storage buffer:
    /// a batch's memory plan counts its staging too).
    pub fn new(ctx: &GpuContext, label: &str, bytes: u64) -> Self {
        charge(ctx, bytes);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { buffer, bytes }
    }

    /// Records the copy of the first `self.bytes` bytes of `src` into this buffer.
    pub fn record_copy(&self, enc: &mut wgpu::CommandEncoder, src: &wgpu::Buffer) {
        enc.copy_buffer_to_buffer(src, 0, &self.buffer, 0, self.bytes);
    }

    /// Records the copy of the first `bytes` bytes of `src` to `offset` in this buffer.
    pub fn record_copy_at(
        &self,
        enc: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) {
        self.record_copy_from(enc, src, 0, offset, bytes);
    }

    /// Records the copy of `bytes` bytes of `src` from `src_offset` to `offset` in this buffer.
    pub fn record_copy_from(
        &self,
        enc: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        src_offset: u64,
        offset: u64,
        bytes: u64,
    ) {
        assert!(
            offset + bytes <= self.bytes,
            "a copy within the staging buffer"
        );
        enc.copy_buffer_to_buffer(src, src_offset, &self.buffer, offset, bytes);
    }

    /// Waits for the submitted copy and returns its `len` elements.
    pub fn read<T: Pod>(&self, ctx: &GpuContext, len: usize) -> Result<Vec<T>, GpuError> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        assert!(bytes <= self.bytes, "a read within the staged bytes");
        let slice = self.buffer.slice(..bytes.max(4));
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(GpuError::Poll)?;
        rx.recv()
            .map_err(|_| GpuError::ReadbackLost)?
            .map_err(GpuError::Readback)?;
        let view = slice.get_mapped_range().map_err(GpuError::MapRange)?;
        let out = bytemuck::cast_slice(&view[..bytes as usize]).to_vec();
        drop(view);
        self.buffer.unmap();
        Ok(out)
    }
}

/// Copies `len` elements of `buffer` to the host (a one-off staging buffer, map, wait).
pub fn read_back<T: Pod>(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<T>, GpuError> {
    let staging = Staging::new(ctx, "readback", (len * std::mem::size_of::<T>()) as u64);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    staging.record_copy(&mut enc, buffer);
    ctx.queue.submit([enc.finish()]);
    staging.read(ctx, len)
}

/// Runs `record` in one compute pass, submits, and waits for the GPU to finish.
pub fn run_pass(
    ctx: &GpuContext,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>),
) -> Result<(), GpuError> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        record(&mut pass);
    }
    ctx.queue.submit([enc.finish()]);
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Wgpu(e));
    }
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(GpuError::Poll)?;
    Ok(())
}
