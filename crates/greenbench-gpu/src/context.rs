//! Adapters and the opened device: discovery in a stable order, software adapters labelled,
//! WGSL kernels specialised to the adapter's limits and compiled once per entry point.

use greenbench_core::backend::BackendError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
        &[
            "relu",
            "gelu",
            "add",
            "scale_shift",
            "embedding",
            "unary",
            "mul_bcast",
            "concat_part",
            "channel_shuffle",
            "slice_part",
            "strided",
        ],
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
pub(crate) const WG: u32 = 64;
/// Largest head size the attention kernel holds in registers.
pub(crate) const MAX_HEAD_DIM: usize = 64;

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
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) summary: AdapterSummary,
    pub(crate) timestamps: bool,
    pub(crate) period_ns: f32,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) pipeline_layout: wgpu::PipelineLayout,
    pub(crate) pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
    pub(crate) dummy: wgpu::Buffer,
    /// Errors the device reported outside an error scope, and device loss.
    pub(crate) fault: Arc<Mutex<Option<String>>>,
    /// Invocations per side of a matmul workgroup (`TS` in matmul.wgsl); a workgroup
    /// computes a (4 TS)-square block of the output.
    pub(crate) matmul_ts: u32,
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

    pub(crate) fn take_fault(&self) -> Option<String> {
        self.fault.lock().expect("lock").take()
    }

    /// Wait for everything submitted (mapped reads included), then report a device fault
    /// raised meanwhile.
    pub(crate) fn wait(&self) -> Result<(), String> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| format!("waiting for the GPU: {e}"))?;
        self.take_fault().map_or(Ok(()), Err)
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
    pub(crate) fn pipeline(
        &self,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline, BackendError> {
        if let Some(p) = self.pipelines.lock().expect("lock").get(entry) {
            return Ok(p.clone());
        }
        let (family, src, entries) = FAMILIES
            .iter()
            .find(|f| f.2.contains(&entry))
            .expect("every entry point belongs to a family");
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(family),
            source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{}", self.specialise(src)).into()),
        };
        let checks = runtime_checks(
            std::env::var("GREENBENCH_GPU_LOOP_BOUNDING")
                .ok()
                .as_deref(),
        );
        // SAFETY: the only check relaxed is loop bounding, and every loop in these shaders
        // terminates (see `runtime_checks`).
        let module = unsafe { self.device.create_shader_module_trusted(desc, checks) };
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

/// The runtime checks wgpu compiles greenbench's shaders with: every check on except loop
/// bounding, which `GREENBENCH_GPU_LOOP_BOUNDING=1` (`env`) puts back, to measure its cost.
///
/// wgpu (since 25) wraps every loop in a counter that breaks after 2^64 iterations
/// (`force_loop_bounding`), against drivers that treat an infinite loop as unreachable. The
/// counter keeps drivers from unrolling loops, and the matmul's 4x4 accumulators then live in
/// memory instead of registers: on an NVIDIA H200 the 4096^3 matmul ran at 0.51 TFLOP/s with it
/// and 14.1 TFLOP/s without (docs/GPU.md; gfx-rs/wgpu#7698 reports 0.1 -> 10 ms). Every loop
/// in these shaders terminates: each `for` counts up by 1 to a bound it reaches, or (the
/// matmul's `k0 += BK`) to K, a matrix dimension far below u32::MAX - BK.
pub(crate) fn runtime_checks(env: Option<&str>) -> wgpu::ShaderRuntimeChecks {
    wgpu::ShaderRuntimeChecks {
        force_loop_bounding: env == Some("1"),
        ..wgpu::ShaderRuntimeChecks::checked()
    }
}

#[cfg(test)]
mod tests {
    use super::runtime_checks;

    #[test]
    fn shaders_keep_bounds_checks_and_drop_loop_bounding() {
        let c = runtime_checks(None);
        assert!(c.bounds_checks && c.int_div_checks);
        assert!(!c.force_loop_bounding);
        assert!(runtime_checks(Some("1")).force_loop_bounding);
        assert!(!runtime_checks(Some("0")).force_loop_bounding);
    }
}
