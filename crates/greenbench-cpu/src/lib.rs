//! greenbench-cpu: executes a greenbench-core [`Graph`] on the CPU.
//!
//! It owns the CPU execution plan and kernels, two paths chosen at run time:
//!
//! - **direct** (x86-64 with AVX-512F; the `direct` module): register-blocked AVX-512
//!   micro-kernels for dense layers, ungrouped convolutions (no im2col: each pixel's window
//!   is read in place, one pointer per kernel row), depthwise convolutions and pooling;
//!   weights packed once in `prepare`; bias, folded batch norm, the activation (ReLU, ReLU6,
//!   h-swish, sigmoid) and a following residual add fused into the producing kernel's
//!   epilogue (the add before the activation: ReLU only); activations that padded
//!   convolutions read are stored with their zero border, so no padding copy is made.
//!   Dense layers with every side >= 256 (and the peak's 1024^3 matmul) run a packed GEMM
//!   (the `packed` module: MLAS's layout, weights packed into cache-sized blocks, a 12 x 32
//!   register tile in inline assembly). 3x3 stride-1 convolutions of 16+ channels run as
//!   Winograd F(2x2, 3x3), or F(4x4, 3x3) where the batch has tiles enough
//!   ([`WINOGRAD_F4_MIN_TILES`]) (`direct::winograd`: transforms around 16 or 36 GEMMs on
//!   the same tile; the cells say so, `Prepared::algorithm_note`). A max pool after a
//!   convolution on the tile runs inside it band by band where the output would leave L2
//!   ([`FUSED_POOL_MIN_FLOATS`]).
//! - **portable** (every other CPU, or [`CpuBackend::with_direct_kernels`]`(false)`): im2col +
//!   the `gemm` crate (run-time AVX2/FMA or NEON kernels), a row-streamed depthwise kernel,
//!   fused bias/ReLU.
//!
//! Threads, with no oversubscription (one rayon pool of the requested size): a batch of at
//! least two examples per thread is split across threads, each running its own examples
//! through the whole graph in L2-sized sub-batches; smaller batches run as a *team* (see
//! `Team` in the source) in which every thread takes the same pixel range of each large step and spins
//! between steps. Every activation buffer is allocated in `prepare`, none in `run` (the one
//! exception: Winograd's and the fused pools' per-thread scratch, allocated on a thread's first
//! run and kept), and
//! buffers used at different steps share memory (`reuse`: ResNet-50 at batch 1 holds 13.6 MB
//! of activations instead of 47 MB, so they stay in cache). The
//! choices were made by measurement against ONNX Runtime on the dev VM; the figures are
//! beside each constant and in `results/onnx/README.md`.
//!
//! Where things live: `plan` turns a graph into steps (thresholds, buffers; what it may fuse
//! is read off the graph by `plan_fuse`, concatenations written in place by `plan_concat`),
//! `exec` runs one step on its kernels, `team` shares a run between threads (a team inside
//! steps, walked by `crew`, or a batch split across workers), `buffers` owns the activation
//! memory and `reuse` decides which buffers share it; `direct`,
//! `packed` and `kernels` are the kernels (`mask`: the lane masks they share). This file holds
//! the backend and the run dispatch.
//!
//! It knows nothing of timing protocols, energy or tables: that is the harness's job.

// Off x86-64 the direct kernels, and the planning that only they use (team runs, stored
// borders), compile out; the x86-64 build (CI) checks that code for dead parts.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_mut))]

mod amx;
mod buffers;
mod crew;
#[cfg(target_arch = "x86_64")]
pub mod direct;
mod exec;
pub mod int8;
pub mod kernels;
mod mask;
#[cfg(target_arch = "x86_64")]
mod packed;
#[cfg(target_arch = "x86_64")]
mod packed_avx2;
mod plan;
mod plan_bf16;
mod plan_concat;
mod plan_fuse;
mod reuse;
mod seq;
mod spin;
mod split;
mod step;
mod tail;
mod team;
mod team_choice;

use buffers::Buffers;
use greenbench_core::backend::{
    Backend, BackendError, DeviceInfo, DeviceKind, PrepareResult, Prepared,
};
use greenbench_core::graph::Graph;
use greenbench_core::quant::{Precision, QModel};
use greenbench_core::weights::Weights;
pub use int8::gemm::QPath;
use std::sync::Arc;
use step::Step;
pub use team::TEAM_MIN_WORK;

use split::Split;
use team::Team;

/// The fewest 4x4 output tiles (over the batch) for which a layer runs on F(4x4, 3x3)
/// rather than F(2x2, 3x3): each of its 36 GEMMs reads a `cin x cout` weight matrix for
/// every unit of tiles, 2.25 times F(2x2, 3x3)'s 16, so a layer with few tiles (ResNet-50's
/// 7x7 and 14x14 stages at batch 1: 4 and 16) streams weights rather than multiplies.
/// Measured on the dev VM (Zen 4, 2 threads, batch 1, three alternating rounds, ms; 32
/// against F(2x2, 3x3) everywhere and F(4x4, 3x3) everywhere): ResNet-50 36.5-37.8 against
/// 38.1-40.8 and 40.1-46.3; docs/ONNX.md has VGG-19.
pub const WINOGRAD_F4_MIN_TILES: usize = 32;

/// A max pool after a convolution on the fp32 tile runs band by band inside it
/// (`direct/conv/pool_fused.rs`) where the convolution's output over the batch has at least
/// this many floats (1 MiB, beyond a core's L2 on the machines measured: below it the separate
/// pool step reads the output from cache).
pub const FUSED_POOL_MIN_FLOATS: usize = 1 << 18;

/// The CPU backend.
pub struct CpuBackend {
    settings: Settings,
}

/// How a backend runs what it plans: one value handed to every plan it makes (and, with one
/// thread, to the per-worker plans of a split batch).
#[derive(Clone)]
pub(crate) struct Settings {
    /// Worker threads of `pool`.
    pub(crate) threads: usize,
    pub(crate) pool: Arc<rayon::ThreadPool>,
    /// Set when the calling thread is worker 0 of the pool: runs must come from it.
    pub(crate) owner: Option<std::thread::ThreadId>,
    /// Use the direct AVX-512 kernels for convolutions and dense layers where the CPU has them.
    pub(crate) direct: bool,
    /// Dense layers on the packed AVX2 GEMM (a CPU with AVX2 and FMA, the direct kernels not
    /// in use).
    pub(crate) packed_avx2: bool,
    /// Direct steps with at least this much work are split across threads (see `team::Team`).
    pub(crate) team_min_work: u64,
    /// Keep a planned batch-1 team only where timing both forms at prepare finds it faster
    /// (`team_choice`); off when a caller set the threshold (tests forcing teams).
    pub(crate) team_by_timing: bool,
    /// The int8 GEMM kernels.
    pub(crate) int8_path: QPath,
    /// bf16 weight layers on the AVX-512 BF16 direct kernels (`plan_bf16`); without, a bf16
    /// graph's roundings run as steps and the fp32 kernels multiply.
    pub(crate) bf16: bool,
    /// 3x3 stride-1 convolutions on Winograd (`direct::winograd`).
    pub(crate) winograd: bool,
    /// Winograd layers with at least this many 4x4 output tiles run F(4x4, 3x3), the others
    /// F(2x2, 3x3) ([`WINOGRAD_F4_MIN_TILES`] by default).
    pub(crate) winograd_f4_min_tiles: usize,
    /// Max pools fused into the fp32 tile's convolution from this output size (floats)
    /// ([`FUSED_POOL_MIN_FLOATS`] by default).
    pub(crate) fused_pool_min: usize,
    /// Activation buffers used at different steps share memory (`reuse`).
    pub(crate) reuse: bool,
}

impl Settings {
    fn new(threads: usize, pool: rayon::ThreadPool, owner: Option<std::thread::ThreadId>) -> Self {
        Settings {
            threads,
            pool: Arc::new(pool),
            owner,
            direct: direct_kernels_available(),
            packed_avx2: packed_avx2_available(),
            team_min_work: TEAM_MIN_WORK,
            team_by_timing: true,
            int8_path: QPath::detect(),
            bf16: bf16_kernels_available(),
            winograd: direct_kernels_available(),
            winograd_f4_min_tiles: WINOGRAD_F4_MIN_TILES,
            fused_pool_min: FUSED_POOL_MIN_FLOATS,
            reuse: true,
        }
    }

    /// The same pool and kernels, planning for `threads` threads.
    pub(crate) fn with_threads(&self, threads: usize) -> Self {
        Settings {
            threads,
            ..self.clone()
        }
    }
}

/// Whether the bf16 kernels run their 16-pixel groups on AMX-BF16 (`tdpbf16ps`) here: the
/// CPU has it, Linux granted it, `GREENBENCH_NO_AMX` is unset.
fn amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    return amx::bf16();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether bf16 weight layers run on `vdpbf16ps` (AVX-512F and AVX-512 BF16).
pub fn bf16_kernels_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        direct_kernels_available() && direct::bf16::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether dense layers run on the packed AVX2 GEMM when the direct kernels do not: a CPU
/// with AVX2 and FMA.
fn packed_avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        packed_avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU can run the direct AVX-512 kernels (`direct` module).
pub fn direct_kernels_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        direct::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

fn pool_error(threads: usize, e: rayon::ThreadPoolBuildError) -> BackendError {
    BackendError::Failed {
        backend: "cpu".into(),
        message: format!("cannot start {threads} threads: {e}"),
    }
}

impl CpuBackend {
    /// A backend with `threads` worker threads (0 = all available cores), usable from any
    /// thread. Each run is handed to the pool and waited for, which costs a thread wake-up
    /// (tens of microseconds on a VM); measuring tools should prefer [`Self::on_this_thread`].
    pub fn new(threads: usize) -> Result<Self, BackendError> {
        let threads = resolve_threads(threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("greenbench-cpu-{i}"))
            .build()
            .map_err(|e| pool_error(threads, e))?;
        Ok(CpuBackend {
            settings: Settings::new(threads, pool, None),
        })
    }

    /// A backend whose pool includes the calling thread as worker 0, so a run starts at
    /// once on this thread and only `threads - 1` helpers are woken (none for one thread).
    /// Runs must then come from this thread (others get an error). Falls back to [`Self::new`]
    /// if this thread already belongs to a pool. The pool lives until the process ends.
    pub fn on_this_thread(threads: usize) -> Result<Self, BackendError> {
        let threads = resolve_threads(threads);
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .use_current_thread()
            .thread_name(|i| format!("greenbench-cpu-{i}"))
            .build()
        {
            Ok(pool) => Ok(CpuBackend {
                settings: Settings::new(threads, pool, Some(std::thread::current().id())),
            }),
            Err(_) => Self::new(threads),
        }
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.settings.threads
    }

    /// Turn the direct AVX-512 kernels off (the portable im2col + `gemm` crate path runs
    /// instead) or back on; on a CPU without AVX-512 they stay off. Tests use this to check
    /// both paths on one machine.
    pub fn with_direct_kernels(mut self, on: bool) -> Self {
        self.settings.direct = on && direct_kernels_available();
        self
    }

    /// Split direct steps with at least `min_work` FPO (whole batch) across threads when a
    /// batch is too small to split (default [`TEAM_MIN_WORK`]); tests use 0 to split every
    /// step. A team planned this way is kept (without this call, a team is kept only where
    /// timing both forms at prepare finds it faster: `team_choice`).
    pub fn with_step_split_threshold(mut self, min_work: u64) -> Self {
        self.settings.team_min_work = min_work;
        self.settings.team_by_timing = false;
        self
    }

    /// Turn the bf16 kernels (`vdpbf16ps`) off (a bf16 graph's roundings then run as steps
    /// and the fp32 kernels multiply the rounded values) or back on where the CPU has them.
    pub fn with_bf16_kernels(mut self, on: bool) -> Self {
        self.settings.bf16 = on && bf16_kernels_available();
        self
    }

    /// Turn Winograd (F(2x2, 3x3) and F(4x4, 3x3)) for 3x3 stride-1 convolutions (with at least 16 input and
    /// output channels) off (the direct tile runs them) or back on where the direct kernels
    /// run. Tests use this to check both on one machine.
    pub fn with_winograd(mut self, on: bool) -> Self {
        self.settings.winograd = on && direct_kernels_available();
        self
    }

    /// Which Winograd layers run F(4x4, 3x3) rather than F(2x2, 3x3): those whose batch has
    /// at least `tiles` 4x4 output tiles (0: every one; `usize::MAX`: none). Tests use this
    /// to check both forms on one machine.
    pub fn with_winograd_f4_min_tiles(mut self, tiles: usize) -> Self {
        self.settings.winograd_f4_min_tiles = tiles;
        self
    }

    /// Fuse a max pool into the fp32 tile's convolution before it from an output of `floats`
    /// values over the batch (0: every one; `usize::MAX`: none). Tests use this to run the
    /// fused form on small shapes.
    pub fn with_fused_pool_min(mut self, floats: usize) -> Self {
        self.settings.fused_pool_min = floats;
        self
    }

    /// Give every activation buffer memory of its own (`false`) instead of sharing blocks
    /// between buffers used at different steps (the default). Tests run both.
    pub fn with_buffer_reuse(mut self, on: bool) -> Self {
        self.settings.reuse = on;
        self
    }

    /// Whether 3x3 stride-1 convolutions run on Winograd (F(2x2, 3x3) or F(4x4, 3x3)).
    pub fn uses_winograd(&self) -> bool {
        self.settings.winograd && self.settings.direct
    }

    /// Whether bf16 weight layers run on the AVX-512 BF16 kernels.
    pub fn uses_bf16_kernels(&self) -> bool {
        self.settings.bf16 && self.settings.direct
    }

    /// Whether convolutions and dense layers run on the direct AVX-512 kernels.
    pub fn uses_direct_kernels(&self) -> bool {
        self.settings.direct
    }
}

pub use greenbench_core::host::cpu_model_name;

/// Which kernels run convolutions and GEMMs on this CPU.
pub fn gemm_kernel_family() -> &'static str {
    if direct_kernels_available() {
        return "direct AVX-512 kernels, packed AVX-512 GEMM for large products; gemm 0.19 AVX-512 for attention";
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "gemm 0.19, AVX-512 kernels";
        }
        if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
        {
            return "packed AVX2 GEMM for dense layers; gemm 0.19 AVX2/FMA kernels for convolutions and attention";
        }
        "gemm 0.19, SSE kernels"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "gemm 0.19, NEON kernels"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "gemm 0.19, scalar kernels"
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }

    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            name: cpu_model_name(),
            kind: DeviceKind::Cpu,
            threads: Some(self.settings.threads),
            driver: Some(if self.settings.direct || !direct_kernels_available() {
                gemm_kernel_family().to_string()
            } else {
                "im2col + gemm 0.19 (direct kernels off)".to_string()
            }),
        }
    }

    fn prepare(&self, graph: &Graph, weights: &Weights, batch: usize) -> PrepareResult {
        let available = greenbench_core::host::available_memory_bytes();
        greenbench_core::memory::check_fits(graph, batch, available)
            .map_err(BackendError::Invalid)?;
        let mut p = CpuPrepared::new(graph, weights, batch, &self.settings)?;
        if self.settings.team_by_timing && p.team.is_some() {
            p.choose_team()?;
        }
        Ok(Box::new(p))
    }

    fn prepare_matmul(&self, m: usize, k: usize, n: usize) -> PrepareResult {
        Ok(Box::new(CpuPrepared::matmul(m, k, n, &self.settings)))
    }

    /// On a pool of its own with one thread.
    fn prepare_reference(&self, n: usize) -> PrepareResult {
        let mut one = CpuBackend::new(1)?;
        one.settings.direct = self.settings.direct;
        one.prepare_matmul(n, n, n)
    }

    fn precisions(&self) -> Vec<Precision> {
        Precision::ALL.to_vec()
    }

    fn prepare_quantized(&self, qm: &QModel, batch: usize) -> PrepareResult {
        self.prepare_quantized_on(qm, batch, self.settings.int8_path)
    }

    fn precision_note(&self, p: Precision) -> Option<String> {
        if p == Precision::Int8 {
            return Some(format!(
                "int8 matrix products on {}",
                self.settings.int8_path.name()
            ));
        }
        (p == Precision::Bf16).then(|| {
            if self.uses_bf16_kernels() && amx_bf16() {
                "bf16 dense layers and ungrouped convolutions on AMX-BF16 (tdpbf16ps tiles) and AVX-512 BF16 (vdpbf16ps) where tiles do not fit, fp32 sums".to_string()
            } else if self.uses_bf16_kernels() {
                "bf16 dense layers and ungrouped convolutions on AVX-512 BF16 (vdpbf16ps, fp32 sums)".to_string()
            } else {
                "bf16 emulated: this CPU has no AVX-512 BF16 (or the direct kernels are off), so weight layers multiply bf16-rounded operands on the fp32 kernels: bf16's numbers, not its speed".to_string()
            }
        })
    }
}

impl CpuBackend {
    /// Prepare a quantized model on the int8 kernels of `path` (tests force each path).
    pub fn prepare_quantized_on(&self, qm: &QModel, batch: usize, path: QPath) -> PrepareResult {
        let available = greenbench_core::host::available_memory_bytes();
        greenbench_core::memory::check_fits(&qm.graph, batch, available)
            .map_err(BackendError::Invalid)?;
        Ok(Box::new(int8::QPrepared::new(
            qm,
            batch,
            self.settings.threads,
            self.settings.pool.clone(),
            path,
            self.settings.team_min_work,
            self.settings.team_by_timing,
        )?))
    }

    /// Run int8 models on `path`'s kernels (default: the fastest this CPU has).
    pub fn with_int8_path(mut self, path: QPath) -> Self {
        self.settings.int8_path = path;
        self
    }
}

/// A graph planned for the CPU at a fixed batch: a sequence of steps (`plan`), run on one
/// thread, split inside steps across a team (`team`), or with the batch split across
/// workers that each run their own plan (`team::Split`).
pub struct CpuPrepared {
    pub(crate) steps: Vec<Step>,
    /// Per step: whether its work is large enough to split across threads.
    pub(crate) par: Vec<bool>,
    /// Work sharing for a run split inside steps (see `team`), when planned.
    pub(crate) team: Option<Arc<Team>>,
    /// Set when the batch is split across threads (then `steps` is empty).
    pub(crate) split: Option<Split>,
    pub(crate) mem: Buffers,
    /// The graph (for input checks); `None` for a bare matmul.
    pub(crate) graph: Option<Graph>,
    pub(crate) batch: usize,
    pub(crate) output_len: usize,
    pub(crate) settings: Settings,
    /// Graph nodes run as Winograd (`direct::winograd`) and their output tile side (2 for
    /// F(2x2, 3x3), 4 for F(4x4, 3x3)), for the cell's note.
    pub(crate) winograd_nodes: Vec<(usize, usize)>,
    /// Set when a planned team was dropped as slower here (`team_choice`), for the note.
    pub(crate) team_note: Option<String>,
    /// Per step: its first and last graph node (the nodes fused into it between).
    pub(crate) step_nodes: Vec<(usize, usize)>,
    /// Each step's time over the runs since `time_steps` (`exec`); `None`: not timed.
    pub(crate) clock: Option<exec::StepClock>,
}

impl CpuPrepared {
    /// A plan with no steps yet over `mem`.
    pub(crate) fn empty(
        settings: &Settings,
        graph: Option<Graph>,
        batch: usize,
        output_len: usize,
        mem: Buffers,
    ) -> Self {
        CpuPrepared {
            steps: Vec::new(),
            par: Vec::new(),
            team: None,
            split: None,
            mem,
            graph,
            batch,
            output_len,
            settings: settings.clone(),
            winograd_nodes: Vec::new(),
            step_nodes: Vec::new(),
            clock: None,
            team_note: None,
        }
    }

    /// Time the planned team against one thread and drop it where it is slower
    /// (`team_choice`).
    fn choose_team(&mut self) -> Result<(), BackendError> {
        let g = self.graph.as_ref().expect("teams are planned for graphs");
        let input = team_choice::probe_input(self.batch * g.input_len());
        let team = self.team.take();
        let mut failed = None;
        let choice = team_choice::time_both(|with_team| {
            self.team = if with_team { team.clone() } else { None };
            if let Err(e) = self.run(&input) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if choice.keep_team() {
            self.team = team;
        } else {
            self.team = None;
            self.team_note = Some(choice.note(self.settings.threads));
        }
        Ok(())
    }
}

impl Prepared for CpuPrepared {
    fn algorithm_note(&self) -> Option<String> {
        let g = self.graph.as_ref()?;
        if self.winograd_nodes.is_empty() {
            return None;
        }
        let cost = greenbench_core::cost::graph_cost(g);
        let total = cost.total.fpo();
        let wino: u64 = (self.winograd_nodes.iter())
            .map(|&(i, _)| cost.nodes[i].cost.fpo())
            .sum();
        let f4 = self.winograd_nodes.iter().filter(|&&(_, m)| m == 4).count();
        let f2 = self.winograd_nodes.len() - f4;
        let mut how = Vec::new();
        if f4 > 0 {
            how.push(format!("{f4} as F(4x4, 3x3): 36 multiplies per 16 outputs where the direct convolution counts 144"));
        }
        if f2 > 0 {
            how.push(format!("{f2} as F(2x2, 3x3): 16 multiplies per 4 outputs where the direct convolution counts 36"));
        }
        Some(format!(
            "{} 3x3 stride-1 convolutions ({:.0} % of the counted FPO) ran as Winograd ({}), so GFPO/s (counted FPO per second, FPO.md) can exceed the machine's peak",
            self.winograd_nodes.len(),
            100.0 * wino as f64 / total.max(1) as f64,
            how.join("; ")
        ))
    }

    fn execution_note(&self) -> Option<String> {
        self.team_note.clone()
    }

    fn time_steps(&mut self) -> Result<(), String> {
        if self.graph.is_none() {
            return Err("a prepared matmul is one step".into());
        }
        if let Some(team) = &self.team {
            team.start_clock();
            return Ok(());
        }
        match &mut self.split {
            Some(split) => split.plans_mut().for_each(|p| p.start_clock()),
            None => self.start_clock(),
        }
        Ok(())
    }

    fn step_times(&self) -> Vec<greenbench_core::backend::StepTime> {
        let mut acc = Vec::new();
        if let Some(team) = &self.team
            && let Some((runs, mut per_step)) = team.step_seconds(self.steps.len())
        {
            // The input's copy, the team's first phase (where the steps do not read the
            // caller's input in place).
            let (seconds, busy) = per_step.pop().expect("the input's entry");
            if team.copies_input() {
                acc.push(greenbench_core::backend::StepTime {
                    kernel: "input copy".into(),
                    nodes: Vec::new(),
                    seconds,
                    threads: 1,
                    examples: runs * self.batch as u64,
                    thread_busy: busy,
                });
            }
            self.steps_into(&per_step, runs, &mut acc);
            return acc;
        }
        match &self.split {
            Some(split) => {
                split.plans().for_each(|p| p.clock_into(&mut acc));
                // Each worker ran its own examples on its own thread.
                acc.iter_mut().for_each(|t| t.threads = split.workers());
            }
            None => self.clock_into(&mut acc),
        }
        acc
    }

    fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError> {
        let want = match &self.graph {
            Some(_) => self.mem.bufs[self.mem.input].len(),
            None => self.batch * self.matmul_k(),
        };
        match &self.graph {
            Some(g) => g.check_input(input, self.batch),
            None if input.len() != want => Err(format!(
                "input has {} values, the prepared matmul takes {want}",
                input.len()
            )),
            None => Ok(()),
        }
        .map_err(BackendError::Invalid)?;
        if let Some(owner) = self.settings.owner
            && owner != std::thread::current().id()
        {
            return Err(BackendError::Invalid(
                "this CPU backend was built with on_this_thread; run it from that thread".into(),
            ));
        }
        let pool = self.settings.pool.clone();
        if let Some(split) = &mut self.split {
            // Workers read the caller's input directly.
            let g = self.graph.as_ref().expect("split plans have a graph");
            split.run(&pool, g, input, &mut self.mem.bufs[self.mem.output]);
        } else if self.graph.is_none() {
            self.execute_matmul(input);
        } else if let Some(team) = self.team.clone() {
            pool.install(|| self.execute_team(&team, input));
        } else {
            self.mem.load_input(input);
            pool.install(|| self.execute());
        }
        Ok(&self.mem.bufs[self.mem.output][..self.output_len])
    }
}
