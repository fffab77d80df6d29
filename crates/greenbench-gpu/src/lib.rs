//! greenbench-gpu: executes a greenbench-core [`Graph`] with wgpu compute shaders.
//!
//! It owns adapter discovery ([`adapters`], [`GpuContext::open`]), the WGSL kernels (one
//! `.wgsl` file per kernel family in `src/shaders/`, beside the Rust that dispatches them) and
//! the execution plan: `prepare` uploads the weights, compiles the pipelines and allocates
//! every buffer and bind group once; `run` uploads the input, records the whole forward pass
//! as one compute pass in one submission, reads the output back, and (where the adapter
//! supports timestamp queries) the device-only time of the pass.
//!
//! A software adapter (device type CPU, e.g. Mesa's lavapipe / llvmpipe) is reported as
//! [`DeviceKind::Software`], so no table presents its speed as a GPU's. The crate knows
//! nothing of timing protocols, energy or tables.
//!
//! Files: `context` (adapters, the opened device, pipelines compiled once per entry point),
//! `plan` (a graph as buffers, bind groups and dispatches), `profile` (each dispatch's device
//! time, a diagnostic), this one (the backend, and a
//! run: upload, one compute pass, read back, device time).

mod context;
mod plan;
mod profile;

pub use context::{
    AdapterSummary, GpuContext, NO_ADAPTER_HELP, adapters, matmul_ts_for, wgpu_limits_default,
};
pub use profile::DispatchTime;

use greenbench_core::backend::{
    Backend, BackendError, DeviceInfo, DeviceKind, PrepareResult, Prepared,
};
use greenbench_core::graph::Graph;
use greenbench_core::weights::Weights;
use plan::Dispatch;
use std::sync::Arc;
use std::time::Duration;

/// The GPU backend over one opened adapter.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    /// Bytes one buffer binding may hold: the adapter's `max_storage_buffer_binding_size`, or
    /// less when set for a test ([`Self::with_binding_limit`]).
    binding_limit: u64,
}

impl GpuBackend {
    /// Open the adapter chosen by `selector` (see [`GpuContext::open`]).
    pub fn new(selector: Option<&str>) -> Result<Self, BackendError> {
        Ok(Self::from_context(GpuContext::open(selector)?))
    }

    /// A backend over an already opened context.
    pub fn from_context(ctx: GpuContext) -> Self {
        let binding_limit = ctx.device.limits().max_storage_buffer_binding_size;
        GpuBackend {
            ctx: Arc::new(ctx),
            binding_limit,
        }
    }

    /// Plan as if the adapter bound at most `bytes` per buffer (tests of the weight
    /// splitting on small models; never above the adapter's own limit).
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.binding_limit = bytes.min(self.binding_limit);
        self
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        self.ctx.adapter()
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> &str {
        "gpu"
    }

    fn device(&self) -> DeviceInfo {
        let s = &self.ctx.summary;
        DeviceInfo {
            name: s.name.clone(),
            kind: if s.software {
                DeviceKind::Software
            } else {
                DeviceKind::Gpu
            },
            threads: None,
            driver: Some(format!(
                "wgpu 30, {}, {}, matmul tile {t}x{t}",
                s.backend,
                s.driver,
                t = 4 * self.ctx.matmul_ts
            )),
        }
    }

    fn prepare(&self, graph: &Graph, weights: &Weights, batch: usize) -> PrepareResult {
        let available = greenbench_core::host::available_memory_bytes();
        greenbench_core::memory::check_fits(graph, batch, available)
            .map_err(BackendError::Invalid)?;
        // One buffer binding per weight tensor and per activation: each must fit the
        // adapter's binding limit (lavapipe: 128 MiB; NVIDIA's Vulkan drivers: 4 GiB). A dense
        // layer's weight larger than that is split into blocks of columns (plan.rs), so only
        // one block of them must fit.
        let limit = self.binding_limit;
        for (i, node) in graph.nodes.iter().enumerate() {
            let weight = match node.op {
                greenbench_core::Op::Dense { .. } => {
                    let k = *graph
                        .value_shape(graph.node_inputs(i)[0])
                        .last()
                        .expect("non-empty");
                    k * plan::DENSE_BLOCK_COLS
                }
                _ => weights.node(i).iter().map(|t| t.len()).max().unwrap_or(0),
            };
            let output = batch * graph.out_shape(i).iter().product::<usize>();
            for (what, elems) in [("a weight", weight), ("its output", output)] {
                let bytes = 4 * elems as u64;
                if bytes > limit {
                    return Err(BackendError::Unsupported {
                        backend: "gpu".into(),
                        node: node.name.clone(),
                        op: node.op.kind().into(),
                        why: format!(
                            "{what} takes {} MiB; this adapter binds at most {} MiB per buffer \
                             (max_storage_buffer_binding_size): run it on the CPU backend, or \
                             on an adapter with a larger limit",
                            bytes >> 20,
                            limit >> 20
                        ),
                    });
                }
            }
        }
        Ok(Box::new(GpuPrepared::new(
            self.ctx.clone(),
            Some(graph),
            weights,
            batch,
            None,
            limit,
        )?))
    }

    /// fp32, and bf16 emulated: a bf16 graph's roundings run as elementwise dispatches and the
    /// fp32 kernels multiply the rounded operands (WGSL has no bf16 type).
    fn precisions(&self) -> Vec<greenbench_core::Precision> {
        use greenbench_core::Precision;
        vec![Precision::Fp32, Precision::Bf16]
    }

    fn precision_note(&self, p: greenbench_core::Precision) -> Option<String> {
        (p == greenbench_core::Precision::Bf16).then(|| {
            "bf16 emulated: WGSL has no bf16 type, so weight layers multiply bf16-rounded operands in fp32 (weights held as fp32): bf16's numbers, not its speed or memory".to_string()
        })
    }

    fn prepare_matmul(&self, m: usize, k: usize, n: usize) -> PrepareResult {
        Ok(Box::new(GpuPrepared::new(
            self.ctx.clone(),
            None,
            &Weights { per_node: vec![] },
            m,
            Some((k, n)),
            self.binding_limit,
        )?))
    }
}

/// A graph planned for the GPU at a fixed batch.
pub struct GpuPrepared {
    pub(crate) ctx: Arc<GpuContext>,
    pub(crate) graph: Option<Graph>,
    pub(crate) batch: usize,
    pub(crate) dispatches: Vec<Dispatch>,
    pub(crate) input: wgpu::Buffer,
    pub(crate) input_len: usize,
    pub(crate) output: wgpu::Buffer,
    pub(crate) staging: wgpu::Buffer,
    pub(crate) host_out: Vec<f32>,
    pub(crate) timer: Option<Timer>,
    pub(crate) last_device_time: Option<Duration>,
    // Keeps weights, activations and parameter buffers alive for the bind groups.
    pub(crate) _keep: Vec<wgpu::Buffer>,
}

pub(crate) struct Timer {
    pub(crate) queries: wgpu::QuerySet,
    pub(crate) resolve: wgpu::Buffer,
    pub(crate) read: wgpu::Buffer,
}

impl Prepared for GpuPrepared {
    fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError> {
        match &self.graph {
            Some(g) => g.check_input(input, self.batch),
            None if input.len() != self.input_len => Err(format!(
                "input has {} values, the prepared matmul takes {}",
                input.len(),
                self.input_len
            )),
            None => Ok(()),
        }
        .map_err(BackendError::Invalid)?;
        let ctx = &self.ctx;
        let failed = |message: String| BackendError::Failed {
            backend: "gpu".into(),
            message,
        };
        ctx.queue
            .write_buffer(&self.input, 0, bytemuck::cast_slice(input));
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: self
                    .timer
                    .as_ref()
                    .map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.queries,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
            });
            for d in &self.dispatches {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
            }
        }
        if let Some(t) = &self.timer {
            enc.resolve_query_set(&t.queries, 0..2, &t.resolve, 0);
            enc.copy_buffer_to_buffer(&t.resolve, 0, &t.read, 0, 16);
        }
        enc.copy_buffer_to_buffer(&self.output, 0, &self.staging, 0, self.staging.size());
        ctx.queue.submit([enc.finish()]);
        let slice = self.staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        if let Some(t) = &self.timer {
            t.read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        }
        ctx.wait().map_err(failed)?;
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| failed(format!("reading the output back: {e}")))?;
            self.host_out
                .copy_from_slice(bytemuck::cast_slice(&view[..]));
        }
        self.staging.unmap();
        self.last_device_time = None;
        if let Some(t) = &self.timer {
            let ticks: [u64; 2] = {
                let view = t
                    .read
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| failed(format!("reading timestamps: {e}")))?;
                let v: &[u64] = bytemuck::cast_slice(&view[..]);
                [v[0], v[1]]
            };
            t.read.unmap();
            if ticks[1] > ticks[0] {
                let ns = (ticks[1] - ticks[0]) as f64 * ctx.period_ns as f64;
                self.last_device_time = Some(Duration::from_nanos(ns as u64));
            }
        }
        Ok(&self.host_out)
    }

    fn device_time(&self) -> Option<Duration> {
        self.last_device_time
    }
}
