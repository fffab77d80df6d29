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

use greenbench_core::backend::{Backend, BackendError, DeviceInfo, DeviceKind, Prepared};
use greenbench_core::graph::{Graph, Op};
use greenbench_core::weights::{Weights, check_weights};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wgpu::util::DeviceExt;

const COMMON: &str = include_str!("shaders/common.wgsl");

/// Kernel families: (file, entry points).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("matmul", include_str!("shaders/matmul.wgsl"), &["matmul"]),
    (
        "conv",
        include_str!("shaders/conv.wgsl"),
        &["im2col", "conv_direct"],
    ),
    (
        "elementwise",
        include_str!("shaders/elementwise.wgsl"),
        &["relu", "gelu", "add", "scale_shift", "embedding"],
    ),
    (
        "rows",
        include_str!("shaders/rows.wgsl"),
        &["softmax", "layer_norm", "global_avg_pool"],
    ),
    ("pool", include_str!("shaders/pool.wgsl"), &["pool"]),
    (
        "attention",
        include_str!("shaders/attention.wgsl"),
        &["attention"],
    ),
];

/// Threads per workgroup of the 1-D kernels (`WG` in common.wgsl).
const WG: u32 = 64;
/// Largest head size the attention kernel holds in registers.
const MAX_HEAD_DIM: usize = 64;

/// What the user is told when no adapter exists.
pub const NO_ADAPTER_HELP: &str = "no GPU adapter found. Install your GPU's Vulkan/Metal/DX12 \
driver; for testing without a GPU, Mesa's software Vulkan works (Debian/Ubuntu: \
`apt-get install mesa-vulkan-drivers libvulkan1`), and is labelled `software`";

/// One adapter as `greenbench devices` lists it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub software: bool,
    pub timestamps: bool,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn summarize(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    AdapterSummary {
        index,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        software: info.device_type == wgpu::DeviceType::Cpu,
        timestamps: a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
    }
}

/// Every adapter wgpu can see, in a stable order.
pub fn adapters() -> Vec<AdapterSummary> {
    let inst = instance();
    let list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    list.iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a))
        .collect()
}

/// An opened device with the pipelines compiled so far.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    timestamps: bool,
    period_ns: f32,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
    dummy: wgpu::Buffer,
    /// Errors the device reported outside an error scope, and device loss.
    fault: Arc<Mutex<Option<String>>>,
    /// Invocations per side of a matmul workgroup (`TS` in matmul.wgsl); a workgroup
    /// computes a (4 TS)-square block of the output.
    matmul_ts: u32,
}

/// WebGPU's default limits (what every conformant adapter offers).
pub fn wgpu_limits_default() -> wgpu::Limits {
    wgpu::Limits::default()
}

/// The matmul workgroup side the adapter's limits allow: 16 (256 invocations, 8 KiB of
/// workgroup memory, WebGPU's defaults) or 8 (64 invocations, 4 KiB) for smaller adapters.
pub fn matmul_ts_for(limits: &wgpu::Limits) -> u32 {
    let fits = |ts: u32| {
        limits.max_compute_invocations_per_workgroup >= ts * ts
            && limits.max_compute_workgroup_size_x >= ts
            && limits.max_compute_workgroup_size_y >= ts
            && limits.max_compute_workgroup_storage_size >= 2 * 16 * 4 * ts * 4
    };
    if fits(16) { 16 } else { 8 }
}

impl GpuContext {
    /// Open an adapter: `selector` is an index from [`adapters`] or a case-insensitive part
    /// of its name; `None` picks the first hardware adapter (discrete first), else a
    /// software one.
    pub fn open(selector: Option<&str>) -> Result<GpuContext, BackendError> {
        Self::open_with(selector, None)
    }

    /// [`Self::open`], with the matmul workgroup side forced (8 or 16) instead of chosen from
    /// the adapter's limits (for tests of the smaller variant).
    pub fn open_with(
        selector: Option<&str>,
        matmul_ts: Option<u32>,
    ) -> Result<GpuContext, BackendError> {
        let inst = instance();
        let list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        let fail = |message: String| BackendError::Failed {
            backend: "gpu".into(),
            message,
        };
        if list.is_empty() {
            return Err(fail(NO_ADAPTER_HELP.into()));
        }
        let chosen = match selector {
            Some(sel) => {
                let by_index = sel.parse::<usize>().ok().and_then(|i| list.get(i));
                let by_name = || {
                    list.iter().find(|a| {
                        a.get_info()
                            .name
                            .to_lowercase()
                            .contains(&sel.to_lowercase())
                    })
                };
                by_index.or_else(by_name).ok_or_else(|| {
                    let names: Vec<String> = list
                        .iter()
                        .enumerate()
                        .map(|(i, a)| format!("{i}: {}", a.get_info().name))
                        .collect();
                    fail(format!(
                        "no GPU adapter matches `{sel}`; adapters: {}",
                        names.join("; ")
                    ))
                })?
            }
            None => {
                let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
                    wgpu::DeviceType::DiscreteGpu => 0,
                    wgpu::DeviceType::IntegratedGpu => 1,
                    wgpu::DeviceType::VirtualGpu => 2,
                    wgpu::DeviceType::Other => 3,
                    wgpu::DeviceType::Cpu => 4,
                };
                list.iter().min_by_key(|a| rank(a)).expect("non-empty")
            }
        };
        let index = list
            .iter()
            .position(|a| std::ptr::eq(a, chosen))
            .unwrap_or(0);
        let summary = summarize(index, chosen);
        let timestamps = summary.timestamps;
        let mut features = wgpu::Features::empty();
        if timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        // Ask for what the adapter offers: bigger storage buffers for large batches.
        let limits = chosen.limits();
        let (device, queue) = pollster::block_on(chosen.request_device(&wgpu::DeviceDescriptor {
            label: Some("greenbench"),
            required_features: features,
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| fail(format!("cannot open {}: {e}", summary.name)))?;
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        {
            let f = fault.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                f.lock().expect("lock").get_or_insert(e.to_string());
            }));
            let f = fault.clone();
            device.set_device_lost_callback(move |reason, msg| {
                f.lock()
                    .expect("lock")
                    .get_or_insert(format!("device lost ({reason:?}): {msg}"));
            });
        }
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("greenbench"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("greenbench"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let period_ns = queue.get_timestamp_period();
        let matmul_ts = match matmul_ts {
            Some(ts @ (8 | 16)) => ts,
            Some(other) => {
                return Err(fail(format!(
                    "matmul workgroup side must be 8 or 16, got {other}"
                )));
            }
            None => matmul_ts_for(&device.limits()),
        };
        Ok(GpuContext {
            matmul_ts,
            device,
            queue,
            summary,
            timestamps,
            period_ns,
            layout,
            pipeline_layout,
            pipelines: Mutex::default(),
            dummy,
            fault,
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    fn take_fault(&self) -> Option<String> {
        self.fault.lock().expect("lock").take()
    }

    /// The matmul workgroup side in use.
    pub fn matmul_ts(&self) -> u32 {
        self.matmul_ts
    }

    /// Set the shader constants chosen for this adapter.
    fn specialise(&self, src: &str) -> String {
        src.replace(
            "const TS: u32 = 16u;",
            &format!("const TS: u32 = {}u;", self.matmul_ts),
        )
    }

    /// The pipeline of `entry`, compiling its family on first use. Compilation errors are
    /// caught by an error scope and returned.
    fn pipeline(&self, entry: &'static str) -> Result<wgpu::ComputePipeline, BackendError> {
        if let Some(p) = self.pipelines.lock().expect("lock").get(entry) {
            return Ok(p.clone());
        }
        let (family, src, entries) = FAMILIES
            .iter()
            .find(|f| f.2.contains(&entry))
            .expect("every entry point belongs to a family");
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family),
                source: wgpu::ShaderSource::Wgsl(
                    format!("{COMMON}\n{}", self.specialise(src)).into(),
                ),
            });
        let mut built = Vec::new();
        for e in entries.iter() {
            let p = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(e),
                    layout: Some(&self.pipeline_layout),
                    module: &module,
                    entry_point: Some(e),
                    compilation_options: Default::default(),
                    cache: None,
                });
            built.push((*e, p));
        }
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(BackendError::Failed {
                backend: "gpu".into(),
                message: format!("shader family `{family}` failed to compile: {err}"),
            });
        }
        let mut map = self.pipelines.lock().expect("lock");
        for (e, p) in built {
            map.insert(e, p);
        }
        Ok(map[entry].clone())
    }
}

/// The GPU backend over one opened adapter.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
}

impl GpuBackend {
    /// Open the adapter chosen by `selector` (see [`GpuContext::open`]).
    pub fn new(selector: Option<&str>) -> Result<Self, BackendError> {
        Ok(GpuBackend {
            ctx: Arc::new(GpuContext::open(selector)?),
        })
    }

    /// A backend over an already opened context.
    pub fn from_context(ctx: GpuContext) -> Self {
        GpuBackend { ctx: Arc::new(ctx) }
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

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        batch: usize,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        Ok(Box::new(GpuPrepared::new(
            self.ctx.clone(),
            Some(graph),
            weights,
            batch,
            None,
        )?))
    }

    fn prepare_matmul(
        &self,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        Ok(Box::new(GpuPrepared::new(
            self.ctx.clone(),
            None,
            &Weights { per_node: vec![] },
            m,
            Some((k, n)),
        )?))
    }
}

/// One recorded dispatch.
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

/// A graph planned for the GPU at a fixed batch.
pub struct GpuPrepared {
    ctx: Arc<GpuContext>,
    graph: Option<Graph>,
    batch: usize,
    dispatches: Vec<Dispatch>,
    input: wgpu::Buffer,
    input_len: usize,
    output: wgpu::Buffer,
    staging: wgpu::Buffer,
    host_out: Vec<f32>,
    timer: Option<Timer>,
    last_device_time: Option<Duration>,
    // Keeps weights, activations and parameter buffers alive for the bind groups.
    _keep: Vec<wgpu::Buffer>,
}

struct Timer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
}

/// 16 u32 parameter slots, as `Params` in common.wgsl.
type Params = [u32; 16];

fn grid(threads: usize) -> (u32, u32) {
    let groups = threads.div_ceil(WG as usize).max(1) as u32;
    if groups <= 65_535 {
        (groups, 1)
    } else {
        (65_535, groups.div_ceil(65_535))
    }
}

struct Planner<'a> {
    ctx: &'a GpuContext,
    buffers: Vec<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
}

impl Planner<'_> {
    fn storage(&mut self, label: &str, len: usize) -> usize {
        let b = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.buffers.push(b);
        self.buffers.len() - 1
    }

    fn upload(&mut self, label: &str, data: &[f32]) -> usize {
        let padded;
        let data = if data.is_empty() {
            padded = [0f32; 4];
            &padded[..]
        } else {
            data
        };
        let b = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            });
        self.buffers.push(b);
        self.buffers.len() - 1
    }

    /// Record a dispatch of `entry` reading `srcs` (up to 3 buffer ids) into `dst`.
    fn dispatch(
        &mut self,
        entry: &'static str,
        params: Params,
        srcs: &[usize],
        dst: usize,
        groups: (u32, u32),
    ) -> Result<(), BackendError> {
        let pipeline = self.ctx.pipeline(entry)?;
        let ubuf = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let src = |i: usize| srcs.get(i).map_or(&self.ctx.dummy, |&b| &self.buffers[b]);
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &self.ctx.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: ubuf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: src(0).as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: src(1).as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: src(2).as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: self.buffers[dst].as_entire_binding(),
                    },
                ],
            });
        self.buffers.push(ubuf);
        self.dispatches.push(Dispatch {
            pipeline,
            bind_group,
            groups,
        });
        Ok(())
    }

    /// `dst[m, n] = src[m, k] . w[k, n] (+ bias) (ReLU)`.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &mut self,
        src: usize,
        w: usize,
        bias: Option<usize>,
        dst: usize,
        (m, k, n): (usize, usize, usize),
        relu: bool,
    ) -> Result<(), BackendError> {
        let flags = u32::from(bias.is_some()) | (u32::from(relu) << 1);
        let mut p = [0u32; 16];
        p[..7].copy_from_slice(&[
            m as u32, n as u32, k as u32, flags, k as u32, n as u32, n as u32,
        ]);
        let mut srcs = vec![src, w];
        srcs.extend(bias);
        let block = 4 * self.ctx.matmul_ts as usize;
        let groups = (n.div_ceil(block) as u32, m.div_ceil(block) as u32);
        if groups.1 > 65_535 {
            return Err(BackendError::Invalid(format!(
                "a {m}-row matrix product exceeds the dispatch grid; use a smaller batch"
            )));
        }
        self.dispatch("matmul", p, &srcs, dst, groups)
    }
}

fn flat(t: &greenbench_core::weights::Tensor) -> Vec<f32> {
    t.iter().copied().collect()
}

impl GpuPrepared {
    fn new(
        ctx: Arc<GpuContext>,
        graph: Option<&Graph>,
        w: &Weights,
        batch: usize,
        matmul: Option<(usize, usize)>,
    ) -> Result<Self, BackendError> {
        if batch == 0 {
            return Err(BackendError::Invalid("batch must be at least 1".into()));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut pl = Planner {
            ctx: &ctx,
            buffers: vec![],
            dispatches: vec![],
        };
        let (input, input_len, output, output_len) = match (graph, matmul) {
            (None, Some((k, n))) => {
                let m = batch;
                let a = pl.storage("A", m * k);
                let b: Vec<f32> = (0..k * n).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
                let b = pl.upload("B", &b);
                let c = pl.storage("C", m * n);
                pl.matmul(a, b, None, c, (m, k, n), false)?;
                (a, m * k, c, m * n)
            }
            (Some(g), _) => plan_graph(&mut pl, g, w, batch)?,
            (None, None) => unreachable!("a graph or a matmul"),
        };
        let fail = |what: &str, e: wgpu::Error| BackendError::Failed {
            backend: "gpu".into(),
            message: format!("{what}: {e}"),
        };
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(fail("out of GPU memory while preparing", e));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fail("preparing the model failed", e));
        }
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (output_len * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let timer = ctx.timestamps.then(|| Timer {
            queries: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            read: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        });
        let Planner {
            buffers,
            dispatches,
            ..
        } = pl;
        let input_buf = buffers[input].clone();
        let output_buf = buffers[output].clone();
        Ok(GpuPrepared {
            graph: graph.cloned(),
            batch,
            dispatches,
            input: input_buf,
            input_len,
            output: output_buf,
            staging,
            host_out: vec![0.0; output_len],
            timer,
            last_device_time: None,
            _keep: buffers,
            ctx,
        })
    }
}

/// Plan every node; returns (input buffer, its length, output buffer, its length).
fn plan_graph(
    pl: &mut Planner<'_>,
    g: &Graph,
    w: &Weights,
    batch: usize,
) -> Result<(usize, usize, usize, usize), BackendError> {
    check_weights(g, w).map_err(BackendError::Invalid)?;
    let nvals = g.nodes.len() + 1;
    let mut buf_of = vec![usize::MAX; nvals];
    let input_len = batch * g.input_len();
    buf_of[0] = pl.storage("input", input_len);
    let mut skip_next = false;
    for i in 0..g.nodes.len() {
        let v = i + 1;
        if skip_next {
            skip_next = false;
            continue;
        }
        let node = &g.nodes[i];
        let ins = g.node_inputs(i);
        let src = buf_of[ins[0]];
        let in_shape = g.value_shape(ins[0]);
        let last = *in_shape.last().expect("non-empty");
        let out_len = batch * g.out_shape(i).iter().product::<usize>();
        let t = w.node(i);
        if let Op::Flatten = node.op {
            buf_of[v] = src;
            continue;
        }
        let fuse_relu = g.relu_fusable(i);
        let dst = pl.storage(&node.name, out_len);
        buf_of[v] = dst;
        if fuse_relu {
            buf_of[v + 1] = dst;
            skip_next = true;
        }
        let threads = grid(out_len);
        let mut p = [0u32; 16];
        let unsupported = |why: String| BackendError::Unsupported {
            backend: "gpu".into(),
            node: node.name.clone(),
            op: node.op.kind().into(),
            why,
        };
        match &node.op {
            Op::Dense { units, .. } => {
                let wk = pl.upload(&node.name, &flat(&t[0]));
                let bias = t.get(1).map(|b| pl.upload(&node.name, &flat(b)));
                pl.matmul(
                    src,
                    wk,
                    bias,
                    dst,
                    (out_len / units, last, *units),
                    fuse_relu,
                )?;
            }
            Op::Conv2d { .. } => {
                let c = g.conv_geom(i);
                let wk = pl.upload(&node.name, &flat(&t[0]));
                let bias = t.get(1).map(|b| pl.upload(&node.name, &flat(b)));
                let rows = batch * c.ho * c.wo;
                if c.is_pointwise() {
                    pl.matmul(src, wk, bias, dst, (rows, c.cin, c.cout), fuse_relu)?;
                } else {
                    let flags = u32::from(bias.is_some()) | (u32::from(fuse_relu) << 1);
                    let geo = [
                        c.h, c.w, c.cin, c.ho, c.wo, c.kh, c.kw, c.sh, c.sw, c.pad_top, c.pad_left,
                    ];
                    for (slot, val) in p.iter_mut().zip(geo) {
                        *slot = val as u32;
                    }
                    if c.groups == 1 {
                        let kk = c.kh * c.kw * c.cin;
                        let cols = pl.storage("im2col", rows * kk);
                        p[11] = (rows * kk) as u32;
                        pl.dispatch("im2col", p, &[src], cols, grid(rows * kk))?;
                        pl.matmul(cols, wk, bias, dst, (rows, kk, c.cout), fuse_relu)?;
                    } else {
                        p[11] = out_len as u32;
                        p[12] = c.cout as u32;
                        p[13] = c.groups as u32;
                        p[14] = flags;
                        let mut srcs = vec![src, wk];
                        srcs.extend(bias);
                        pl.dispatch("conv_direct", p, &srcs, dst, threads)?;
                    }
                }
            }
            Op::BatchNorm { eps } => {
                let (scale, shift) = greenbench_core::fold::bn_scale_shift(t, *eps);
                let s = pl.upload("bn scale", &scale);
                let h = pl.upload("bn shift", &shift);
                p[0] = out_len as u32;
                p[1] = last as u32;
                pl.dispatch("scale_shift", p, &[src, s, h], dst, threads)?;
            }
            Op::Relu | Op::Gelu => {
                p[0] = out_len as u32;
                let e = if matches!(node.op, Op::Relu) {
                    "relu"
                } else {
                    "gelu"
                };
                pl.dispatch(e, p, &[src], dst, threads)?;
            }
            Op::Add => {
                p[0] = out_len as u32;
                pl.dispatch("add", p, &[src, buf_of[ins[1]]], dst, threads)?;
            }
            Op::Softmax | Op::LayerNorm { .. } => {
                let rows = out_len / last;
                p[0] = rows as u32;
                p[1] = last as u32;
                let mut srcs = vec![src];
                let e = if let Op::LayerNorm { eps } = node.op {
                    p[2] = eps.to_bits();
                    srcs.push(pl.upload("ln gamma", &flat(&t[0])));
                    srcs.push(pl.upload("ln beta", &flat(&t[1])));
                    "layer_norm"
                } else {
                    "softmax"
                };
                pl.dispatch(e, p, &srcs, dst, grid(rows))?;
            }
            Op::GlobalAvgPool => {
                p[0] = out_len as u32;
                p[1] = (in_shape.iter().product::<usize>() / last) as u32;
                p[2] = last as u32;
                pl.dispatch("global_avg_pool", p, &[src], dst, threads)?;
            }
            Op::MaxPool { .. } | Op::AvgPool { .. } => {
                let q = g.pool_geom(i);
                let geo = [q.h, q.w, q.c, q.ho, q.wo, q.kh, q.kw, q.sh, q.sw];
                for (slot, val) in p.iter_mut().zip(geo) {
                    *slot = val as u32;
                }
                p[9] = u32::from(matches!(node.op, Op::MaxPool { .. }));
                p[11] = out_len as u32;
                pl.dispatch("pool", p, &[src], dst, threads)?;
            }
            Op::Embedding { dim, .. } => {
                let table = pl.upload("embedding", &flat(&t[0]));
                let mut srcs = vec![src, table];
                if let Some(pos) = t.get(1) {
                    srcs.push(pl.upload("positions", &flat(pos)));
                }
                p[..4].copy_from_slice(&[
                    out_len as u32,
                    in_shape[0] as u32,
                    *dim as u32,
                    u32::from(t.len() > 1),
                ]);
                pl.dispatch("embedding", p, &srcs, dst, threads)?;
            }
            Op::Attention { heads, head_dim } => {
                if *head_dim > MAX_HEAD_DIM {
                    return Err(unsupported(format!(
                        "head_dim {head_dim} > {MAX_HEAD_DIM}, the kernel's register budget"
                    )));
                }
                let s = in_shape[0];
                let rows = batch * heads * s;
                p[..5].copy_from_slice(&[
                    rows as u32,
                    s as u32,
                    *heads as u32,
                    *head_dim as u32,
                    (1.0 / (*head_dim as f32).sqrt()).to_bits(),
                ]);
                pl.dispatch("attention", p, &[src], dst, grid(rows))?;
            }
            Op::Flatten => unreachable!("handled above"),
        }
    }
    Ok((
        buf_of[0],
        input_len,
        buf_of[nvals - 1],
        batch * g.output_len(),
    ))
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
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| failed(format!("waiting for the GPU: {e}")))?;
        if let Some(f) = ctx.take_fault() {
            return Err(failed(f));
        }
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
