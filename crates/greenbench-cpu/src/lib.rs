//! greenbench-cpu: executes a greenbench-core [`Graph`] on the CPU.
//!
//! It owns the CPU execution plan and kernels, two paths chosen at run time:
//!
//! - **direct** (x86-64 with AVX-512F; the `direct` module): register-blocked AVX-512
//!   micro-kernels for dense layers, ungrouped convolutions (no im2col: each pixel's window
//!   is read in place, one pointer per kernel row), depthwise convolutions and pooling;
//!   weights packed once in `prepare`; bias, folded batch norm, ReLU and a following
//!   residual add fused into the producing kernel's epilogue; activations that padded
//!   convolutions read are stored with their zero border, so no padding copy is made.
//!   Dense layers with every side >= 256 (and the peak's 1024^3 matmul) run a packed GEMM
//!   (the `packed` module: MLAS's layout, weights packed into cache-sized blocks, a 12 x 32
//!   register tile in inline assembly).
//! - **portable** (every other CPU, or [`CpuBackend::with_direct_kernels`]`(false)`): im2col +
//!   the `gemm` crate (run-time AVX2/FMA or NEON kernels), a row-streamed depthwise kernel,
//!   fused bias/ReLU.
//!
//! Threads, with no oversubscription (one rayon pool of the requested size): a batch of at
//! least two examples per thread is split across threads, each running its own examples
//! through the whole graph in L2-sized sub-batches; smaller batches run as a *team* (see
//! `Team` in the source) in which every thread takes the same pixel range of each large step and spins
//! between steps. Every activation buffer is allocated in `prepare`, none in `run`. The
//! choices were made by measurement against ONNX Runtime on the dev VM; the figures are
//! beside each constant and in `results/onnx/README.md`.
//!
//! It knows nothing of timing protocols, energy or tables: that is the harness's job.

// Off x86-64 the direct kernels, and the planning that only they use (team runs, stored
// borders), compile out; the x86-64 build (CI) checks that code for dead parts.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_mut))]

#[cfg(target_arch = "x86_64")]
pub mod direct;
pub mod kernels;
#[cfg(target_arch = "x86_64")]
mod packed;

use greenbench_core::backend::{Backend, BackendError, DeviceInfo, DeviceKind, Prepared};
use greenbench_core::graph::{ConvGeom, Graph, Op, PoolGeom};
use greenbench_core::weights::{Weights, check_weights};
use kernels::{Buf, Mat, Threads};
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The CPU backend.
pub struct CpuBackend {
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
    /// Set when the calling thread is worker 0 of the pool: runs must come from it.
    owner: Option<std::thread::ThreadId>,
    /// Use the direct AVX-512 kernels for convolutions and dense layers where the CPU has them.
    direct: bool,
    /// Direct steps with at least this much work are split across threads (see [`Team`]).
    team_min_work: u64,
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
            threads,
            pool: Arc::new(pool),
            owner: None,
            direct: direct_kernels_available(),
            team_min_work: TEAM_MIN_WORK,
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
                threads,
                pool: Arc::new(pool),
                owner: Some(std::thread::current().id()),
                direct: direct_kernels_available(),
                team_min_work: TEAM_MIN_WORK,
            }),
            Err(_) => Self::new(threads),
        }
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Turn the direct AVX-512 kernels off (the portable im2col + `gemm` crate path runs
    /// instead) or back on; on a CPU without AVX-512 they stay off. Tests use this to check
    /// both paths on one machine.
    pub fn with_direct_kernels(mut self, on: bool) -> Self {
        self.direct = on && direct_kernels_available();
        self
    }

    /// Split direct steps with at least `min_work` FPO (whole batch) across threads when a
    /// batch is too small to split (default [`TEAM_MIN_WORK`]); tests use 0 to split every
    /// step.
    pub fn with_step_split_threshold(mut self, min_work: u64) -> Self {
        self.team_min_work = min_work;
        self
    }

    /// Whether convolutions and dense layers run on the direct AVX-512 kernels.
    pub fn uses_direct_kernels(&self) -> bool {
        self.direct
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
        if std::arch::is_x86_feature_detected!("fma") {
            return "gemm 0.19, AVX2/FMA kernels";
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
            threads: Some(self.threads),
            driver: Some(if self.direct || !direct_kernels_available() {
                gemm_kernel_family().to_string()
            } else {
                "im2col + gemm 0.19 (direct kernels off)".to_string()
            }),
        }
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        batch: usize,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let mut p = CpuPrepared::new(
            graph,
            weights,
            batch,
            self.threads,
            self.pool.clone(),
            self.direct,
            self.team_min_work,
        )?;
        p.owner = self.owner;
        Ok(Box::new(p))
    }

    fn prepare_matmul(
        &self,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        // Seeded right-hand side; values do not matter for speed but stay deterministic.
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        // The right-hand side plays the weights: packed here, once, where the packed AVX-512
        // GEMM runs (as a large dense layer would be); the `gemm` crate elsewhere.
        let gemm = |w| Step::Gemm {
            src: 0,
            dst: 1,
            rows: m,
            k,
            n,
            w,
            bias: None,
            relu: false,
        };
        #[cfg(target_arch = "x86_64")]
        let step = if self.direct {
            Step::Packed {
                src: 0,
                dst: 1,
                rows: m,
                plan: Box::new(packed::PackedGemm::new(&b, k, n, None, false)),
            }
        } else {
            gemm(b)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let step = gemm(b);
        let steps = vec![step];
        Ok(Box::new(CpuPrepared {
            par: vec![self.threads > 1],
            steps,
            // The left operand is read where the caller holds it (`execute_matmul`).
            bufs: vec![Buf::default(), Buf::zeros(m * n)],
            scratch: vec![],
            pads: vec![Buf::default()],
            team: None,
            buf_ptrs: Vec::new(),
            pad_ptrs: Vec::new(),
            split: None,
            input_buf: 0,
            input_border: None,
            output_buf: 1,
            graph: None,
            batch: m,
            output_len: m * n,
            threads: self.threads,
            pool: self.pool.clone(),
            owner: self.owner,
        }))
    }
}

/// One step of the execution plan; `src`/`dst` are buffer indices.
enum Step {
    /// A depthwise convolution on the direct AVX-512 kernel (bias/ReLU inside).
    #[cfg(target_arch = "x86_64")]
    DirectDw {
        src: usize,
        dst: usize,
        plan: Box<direct::DwPlan>,
        /// Index of its padded-input buffer in `CpuPrepared::pads`.
        pad: usize,
    },
    /// A convolution or dense layer on the direct AVX-512 kernels (bias/ReLU inside).
    #[cfg(target_arch = "x86_64")]
    Direct {
        src: usize,
        dst: usize,
        /// Buffer of a fused residual (added before the ReLU).
        skip: Option<usize>,
        plan: Box<direct::DirectPlan>,
        /// Index of its padded-input buffer in `CpuPrepared::pads`.
        pad: usize,
    },
    /// A large dense layer (see `large_gemm`) on the packed AVX-512 GEMM.
    #[cfg(target_arch = "x86_64")]
    Packed {
        src: usize,
        dst: usize,
        rows: usize,
        plan: Box<packed::PackedGemm>,
    },
    /// `dst[rows, n] = src[rows, k] . w[k, n]` (+ bias, ReLU): dense and 1x1 convolutions.
    Gemm {
        src: usize,
        dst: usize,
        rows: usize,
        k: usize,
        n: usize,
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    },
    /// im2col + GEMM per group.
    Conv {
        src: usize,
        dst: usize,
        geom: ConvGeom,
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    },
    Depthwise {
        src: usize,
        dst: usize,
        geom: ConvGeom,
        w: Vec<f32>,
        w_tiled: Option<Vec<f32>>,

        bias: Option<Vec<f32>>,
        relu: bool,
    },
    Relu {
        src: usize,
        dst: usize,
    },
    Gelu {
        src: usize,
        dst: usize,
    },
    Softmax {
        src: usize,
        dst: usize,
        n: usize,
    },
    LayerNorm {
        src: usize,
        dst: usize,
        n: usize,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        eps: f32,
    },
    ScaleShift {
        src: usize,
        dst: usize,
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Pool {
        src: usize,
        dst: usize,
        geom: PoolGeom,
        max: bool,
        /// On the direct AVX-512 kernel.
        direct: bool,
    },
    GlobalAvgPool {
        src: usize,
        dst: usize,
        rows: usize,
        c: usize,
    },
    Add {
        a: usize,
        b: usize,
        dst: usize,
    },
    Embedding {
        src: usize,
        dst: usize,
        seq: usize,
        dim: usize,
        table: Vec<f32>,
        pos: Option<Vec<f32>>,
    },
    Attention {
        src: usize,
        dst: usize,
        s: usize,
        h: usize,
        d: usize,
    },
}

/// A graph planned for the CPU at a fixed batch.
pub struct CpuPrepared {
    steps: Vec<Step>,
    /// Per step: whether its work is large enough to split across threads.
    par: Vec<bool>,
    bufs: Vec<Buf>,
    scratch: Vec<f32>,
    /// Zero-bordered input copies of padded direct convolutions.
    pads: Vec<Buf>,
    /// Work sharing for a run split inside steps (see `execute_team`), when planned.
    team: Option<Arc<Team>>,
    /// Data pointers of `bufs` and `pads`, refreshed at the start of each team run.
    buf_ptrs: Vec<RawBuf>,
    pad_ptrs: Vec<RawBuf>,
    /// Set when the batch is split across threads (then `steps` is empty).
    split: Option<Split>,
    input_buf: usize,
    /// Set when the input is stored with a zero border (its convolutions' padding): the
    /// border and the per-example (h, w, c).
    input_border: Option<([usize; 4], [usize; 3])>,
    output_buf: usize,
    /// The graph (for input checks); `None` for a bare matmul.
    graph: Option<Graph>,
    batch: usize,
    output_len: usize,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
    owner: Option<std::thread::ThreadId>,
}

/// Steps with less work than this (FPO, or 4 per output element for memory-bound ops,
/// whole batch) run on one thread. Waking a helper costs 20-40 us on the 2-core dev VM
/// (measured: mlp at batch 1 took 35 us on 1 thread, 77 us with every step split in two);
/// 4 MFPO is about that long on one core.
const PAR_MIN_WORK: u64 = 4_000_000;

/// The same for plain GEMM steps (dense, 1x1 convolutions): splitting a GEMM costs the gemm
/// crate's own synchronisation too. Measured on the dev VM (quick profile, 2 threads): mlp b32
/// 4.3-5.0 -> 3.3-3.8 us, autoencoder b32 5.0 -> 3.4-3.7 us, ds-cnn b32 46 -> 41 us, mobilenet
/// b32 ~238 -> 214-220 us; raising the threshold for every step instead slowed ds-cnn b32
/// 46 -> 70 us and lenet5 b32 42 -> 65 us.
const PAR_MIN_GEMM_WORK: u64 = 16_000_000;

fn flat(t: &ndarray::ArrayD<f32>) -> Vec<f32> {
    t.iter().copied().collect()
}

/// Sub-batch working-set budget: a worker runs its images this many bytes of activations
/// at a time (largest step input + output, per image, times the sub-batch), so every layer
/// of a sub-batch reads and writes L2 instead of streaming the whole batch through L3.
/// Measured on the dev VM (batch 32, 2 threads, us, three runs each; 128 / 256 / 512 KiB):
/// mobilenet 93-96 / 90-93 / 93-102, ds-cnn 23.1-23.6 / 22.4-23.5 / 25.8-27.1, resnet8
/// 102-105 / 100-118 / 106, lenet5 11.1-11.6 / 9.8-10.1 / 10.0-10.3; 8 MiB (whole
/// per-thread batch) was slower on all (mobilenet 100-104, resnet8 113-116).
const SUB_BATCH_BYTES: usize = 256 * 1024;

/// A batch split across threads: each worker runs its own images through the whole graph,
/// `sub` images at a time, on one thread (no synchronisation between layers).
struct Split {
    workers: Vec<Worker>,
    /// Workers finished in the current run.
    finished: AtomicUsize,
}

/// How long a worker that finished its images early spins for the others, so that it is
/// still awake (not parked by rayon) when the next run starts: with back-to-back runs a
/// parked helper's wake-up cost about 70 us per batch-32 run on the dev VM (ds-cnn b32:
/// 23.8 us/example against 21.6 at batch 128).
const FINISH_SPIN: std::time::Duration = std::time::Duration::from_micros(500);

/// Spin until `finished` reaches `n` or `max` has passed (then the caller's own, sleeping,
/// wait takes over): a thread that is done early stays awake for the others.
fn spin_until(finished: &AtomicUsize, n: usize, max: std::time::Duration) {
    let t = std::time::Instant::now();
    while finished.load(Ordering::Acquire) < n && t.elapsed() < max {
        std::hint::spin_loop();
    }
}

struct Worker {
    /// First image and image count of this worker.
    start: usize,
    count: usize,
    /// The graph planned at the sub-batch, and at batch 1 for what is left over.
    main: CpuPrepared,
    one: Option<CpuPrepared>,
    /// This worker's outputs, `count` examples.
    out: Vec<f32>,
}

impl Worker {
    fn run(&mut self, input: &[f32], in_per: usize, out_per: usize) {
        let sub = self.main.batch;
        let mut done = 0;
        while done < self.count {
            let plan = if self.count - done >= sub {
                &mut self.main
            } else {
                self.one
                    .as_mut()
                    .expect("planned when the count is not a multiple")
            };
            let b = plan.batch;
            let i0 = (self.start + done) * in_per;
            plan.load_input(&input[i0..i0 + b * in_per]);
            plan.execute();
            self.out[done * out_per..(done + b) * out_per]
                .copy_from_slice(&plan.bufs[plan.output_buf][..b * out_per]);
            done += b;
        }
    }
}

/// A buffer's data pointer and length, for team runs (see [`CpuPrepared::execute_team`]).
#[derive(Clone, Copy)]
struct RawBuf {
    ptr: *mut f32,
    len: usize,
}

impl Default for RawBuf {
    fn default() -> Self {
        RawBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }
}

// SAFETY: shared between the threads of one team run, which write disjoint parts (units) or
// run whole steps alone; see `execute_team`.
unsafe impl Send for RawBuf {}
// SAFETY: as above.
unsafe impl Sync for RawBuf {}

/// A pointer to the plan, for the threads of a team run.
#[derive(Clone, Copy)]
struct PlanPtr(*mut CpuPrepared);
// SAFETY: see `execute_team`: threads only touch the plan through units of the current phase.
unsafe impl Send for PlanPtr {}
// SAFETY: as above.
unsafe impl Sync for PlanPtr {}

#[derive(Clone, Copy, Debug)]
enum PhaseKind {
    /// The whole step, on whichever thread claims it.
    Whole,
    /// Units of a direct step's padded-input copy.
    Copy,
    /// Units of a direct step's compute.
    Compute,
}

#[derive(Debug)]
struct Phase {
    step: usize,
    kind: PhaseKind,
    units: usize,
}

/// Steps with less work than this (FPO, whole batch) run whole on the calling thread in a
/// team run; bigger direct steps are split into units the team's threads share. Measured on the dev VM at batch 1,
/// 2 threads (us; 250 k / 500 k / 1 M / no split): resnet8 142-148 / 140-144 / 143-147 /
/// 209, mobilenet 157-164 / 173 / 165-170 / 189, tiny-transformer 289-294 / 288-293 /
/// 289-296 / 301.
pub const TEAM_MIN_WORK: u64 = 250_000;

/// A run shared by a team of threads: every thread walks the same list of phases, claims
/// units of the current phase from an atomic counter, and waits (spinning) until all of the
/// phase's units are done before the next. Nobody sleeps between steps (a rayon fork-join
/// per step cost a helper's wake-up, 20-40 us on the dev VM, each time), and a helper that
/// wakes late just joins at the current phase.
struct Team {
    phases: Vec<Phase>,
    /// Per phase and thread slot: units of the slot's range claimed so far.
    claimed: Vec<AtomicUsize>,
    done: Vec<AtomicUsize>,
    threads: usize,
}

impl Team {
    #[cfg(target_arch = "x86_64")]
    /// `None` when no step is big enough to split (then the steps just run in order).
    fn plan(
        g: &Graph,
        steps: &[Step],
        step_nodes: &[usize],
        batch: usize,
        threads: usize,
        min_work: u64,
    ) -> Option<Team> {
        let mut phases = Vec::new();
        for ((i, step), &node) in steps.iter().enumerate().zip(step_nodes) {
            let big = step_work(g, node, batch) >= min_work;
            // (copy units, compute units) of a direct step.
            let units = match step {
                Step::Direct { plan, .. } => Some((plan.copy_units(), plan.compute_units(threads))),
                Step::DirectDw { plan, .. } => Some((plan.copy_units(), plan.compute_units())),
                _ => None,
            };
            match units {
                Some((copy, compute)) if big => {
                    if copy > 0 {
                        phases.push(Phase {
                            step: i,
                            kind: PhaseKind::Copy,
                            units: copy,
                        });
                    }
                    phases.push(Phase {
                        step: i,
                        kind: PhaseKind::Compute,
                        units: compute,
                    });
                }
                _ => phases.push(Phase {
                    step: i,
                    kind: PhaseKind::Whole,
                    units: 1,
                }),
            }
        }
        let n = phases.len();
        if !phases.iter().any(|p| !matches!(p.kind, PhaseKind::Whole)) {
            return None;
        }
        Some(Team {
            phases,
            claimed: (0..n * threads).map(|_| AtomicUsize::new(0)).collect(),
            done: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            threads,
        })
    }
}

/// A step's work for threading decisions: FPO, or 4 per output element for memory-bound
/// ops, whole batch.
fn step_work(g: &Graph, i: usize, batch: usize) -> u64 {
    let c = greenbench_core::cost::node_cost(g, i);
    batch as u64
        * c.fpo()
            .max(4 * g.out_shape(i).iter().product::<usize>() as u64)
}

/// Dense layers this large run on the packed GEMM (`packed`: weights packed into
/// cache-sized blocks in `prepare`, a 12 x 32 register tile, one contiguous row range per
/// thread), which beats the direct kernels there. Measured on the dev VM, sgemm 1024^3 on
/// 1 / 2 threads (GFLOP/s, `greenbench peak --threads N`): packed GEMM 160-166 / 327-341;
/// before it, the `gemm` crate 158 / 285-300 (that peak also copied its input); the direct
/// kernels 125-131 / 209, with a packed left operand 138 / 272 (and slower than unpacked on
/// the zoo's small GEMMs: mlp b32 2.5 -> 3.2 us); ONNX Runtime (MLAS, `compare.sh`'s
/// MatMul) 311-314 on 2 threads. No zoo layer is this large.
fn large_gemm(m: usize, k: usize, n: usize) -> bool {
    m >= 256 && k >= 256 && n >= 256
}

/// Whether node `i`, an ungrouped convolution, is followed by an Add that is its output's
/// only consumer (a residual connection): then `(the other operand's value, whether a ReLU
/// that is the sum's only consumer follows)`, and the direct kernels add the residual and
/// apply the ReLU in the convolution's epilogue.
fn residual_fusable(g: &Graph, i: usize) -> Option<(usize, bool)> {
    let v = i + 1;
    if !matches!(g.nodes[i].op, Op::Conv2d { .. }) || g.conv_geom(i).groups != 1 {
        return None;
    }
    if !matches!(g.nodes.get(i + 1)?.op, Op::Add) || g.consumers(v) != 1 {
        return None;
    }
    let ins = g.node_inputs(i + 1);
    let skip = match ins {
        [a, b] if *a == v && *b != v => *b,
        [a, b] if *b == v && *a != v => *a,
        _ => return None,
    };
    let relu = g.nodes.get(i + 2).is_some_and(|n| matches!(n.op, Op::Relu))
        && g.node_inputs(i + 2) == [v + 1]
        && g.consumers(v + 1) == 1;
    Some((skip, relu))
}

/// Per value: the zero border (top, bottom, left, right) to store it with, so that the
/// convolutions reading it need no padded copy. Only for values whose every consumer is a
/// convolution the direct kernels run (ungrouped or depthwise) with the same non-zero
/// padding; the producer is checked by the caller (only convolutions, and the loading of a
/// 3-D input, write borders).
fn wanted_borders(g: &Graph) -> Vec<Option<[usize; 4]>> {
    let nvals = g.nodes.len() + 1;
    let mut want = vec![None; nvals];
    for (u, slot) in want.iter_mut().enumerate() {
        let mut border = None;
        let mut ok = false;
        for j in 0..g.nodes.len() {
            if !g.node_inputs(j).contains(&u) {
                continue;
            }
            // A residual fused into the convolution before it reads any layout.
            if j > 0 && residual_fusable(g, j - 1).is_some_and(|(skip, _)| skip == u) {
                continue;
            }
            let this = match g.nodes[j].op {
                Op::Conv2d { .. } => {
                    let c = g.conv_geom(j);
                    let b = [c.pad_top, c.pad_bottom, c.pad_left, c.pad_right];
                    ((c.groups == 1 || c.is_depthwise()) && b != [0; 4] && g.node_inputs(j) == [u])
                        .then_some(b)
                }
                _ => None,
            };
            match (this, border) {
                (Some(b), None) if !ok => {
                    border = Some(b);
                    ok = true;
                }
                (Some(b), Some(prev)) if b == prev => {}
                _ => {
                    ok = false;
                    border = None;
                    break;
                }
            }
        }
        *slot = if ok { border } else { None };
    }
    want
}

impl CpuPrepared {
    fn new(
        g: &Graph,
        w: &Weights,
        batch: usize,
        threads: usize,
        pool: Arc<rayon::ThreadPool>,
        direct: bool,
        team_min: u64,
    ) -> Result<Self, BackendError> {
        // Split the batch across threads when every thread gets at least two images.
        if batch == 0 || batch < 2 * threads || (threads == 1 && batch == 1) {
            return Self::plan(g, w, batch, threads, pool, direct, team_min);
        }
        let per_image = (0..g.nodes.len())
            .map(|i| {
                let ins: usize = g.value_shape(g.node_inputs(i)[0]).iter().product();
                ins + g.out_shape(i).iter().product::<usize>()
            })
            .max()
            .unwrap_or(1)
            * std::mem::size_of::<f32>();
        let per_thread = batch / threads;
        let mut sub = 1;
        while sub * 2 <= per_thread && sub * 2 * per_image <= SUB_BATCH_BYTES {
            sub *= 2;
        }
        if threads == 1 && sub >= batch {
            return Self::plan(g, w, batch, threads, pool, direct, team_min);
        }
        let mut workers = Vec::with_capacity(threads);
        for t in 0..threads {
            let start = t * batch / threads;
            let count = (t + 1) * batch / threads - start;
            let main = Self::plan(g, w, sub.min(count), 1, pool.clone(), direct, team_min)?;
            let one = if !count.is_multiple_of(main.batch) {
                Some(Self::plan(g, w, 1, 1, pool.clone(), direct, team_min)?)
            } else {
                None
            };
            workers.push(Worker {
                start,
                count,
                main,
                one,
                out: vec![0.0; count * g.output_len()],
            });
        }
        check_weights(g, w).map_err(BackendError::Invalid)?;
        Ok(CpuPrepared {
            steps: Vec::new(),
            par: Vec::new(),
            // The input is read from the caller's slice: no buffer for it.
            bufs: vec![Buf::default(), Buf::zeros(batch * g.output_len())],
            scratch: Vec::new(),
            pads: Vec::new(),
            team: None,
            buf_ptrs: Vec::new(),
            pad_ptrs: Vec::new(),
            input_buf: 0,
            input_border: None,
            output_buf: 1,
            graph: Some(g.clone()),
            batch,
            output_len: batch * g.output_len(),
            threads,
            pool,
            owner: None,
            split: Some(Split {
                workers,
                finished: AtomicUsize::new(0),
            }),
        })
    }

    /// The graph planned as one sequence of steps over the whole batch.
    fn plan(
        g: &Graph,
        w: &Weights,
        batch: usize,
        threads: usize,
        pool: Arc<rayon::ThreadPool>,
        direct: bool,
        team_min: u64,
    ) -> Result<Self, BackendError> {
        if batch == 0 {
            return Err(BackendError::Invalid("batch must be at least 1".into()));
        }
        check_weights(g, w).map_err(BackendError::Invalid)?;
        let nvals = g.nodes.len() + 1;
        // value id -> buffer id; flatten and fused ReLUs alias their source.
        let mut buf_of: Vec<usize> = vec![usize::MAX; nvals];
        let mut sizes: Vec<usize> = vec![batch * g.input_len()];
        buf_of[0] = 0;
        let new_buf = |sizes: &mut Vec<usize>, len: usize| {
            sizes.push(len);
            sizes.len() - 1
        };
        let mut steps = Vec::new();
        let mut par = Vec::new();
        let mut scratch_len = 0usize;
        let mut pads: Vec<Buf> = Vec::new();
        let mut skip_nodes = 0usize;
        // Graph node of each step (for the team's work estimates).
        let mut step_nodes: Vec<usize> = Vec::new();
        let want_border = if direct {
            wanted_borders(g)
        } else {
            vec![None; nvals]
        };
        // Per buffer: stored with zero borders around each image (see `wanted_borders`).
        // The input gets one when its convolutions want it: loading it then is the only copy.
        let in_shape0 = g.value_shape(0).clone();
        let input_border = match (want_border[0], in_shape0.len()) {
            (Some(b), 3) => Some((b, [in_shape0[0], in_shape0[1], in_shape0[2]])),
            _ => None,
        };
        if let Some(([t, b, l, r], [h, w, c])) = input_border {
            sizes[0] = batch * (h + t + b) * (w + l + r) * c;
        }
        let mut buf_border: Vec<Option<[usize; 4]>> = vec![input_border.map(|b| b.0)];
        for i in 0..g.nodes.len() {
            let v = i + 1;
            if skip_nodes > 0 {
                skip_nodes -= 1;
                continue;
            }
            let ins = g.node_inputs(i);
            let src = buf_of[ins[0]];
            let in_shape = g.value_shape(ins[0]);
            let last = *in_shape.last().expect("non-empty");
            let out_len = batch * g.out_shape(i).iter().product::<usize>();
            let t = w.node(i);
            let op = &g.nodes[i].op;
            if let Op::Flatten = op {
                buf_of[v] = src;
                continue;
            }
            // Fuse a following ReLU that is this node's only consumer.
            // A residual add (and the ReLU after it) fused into a direct convolution.
            let residual = if direct { residual_fusable(g, i) } else { None };
            let fuse_relu = match residual {
                Some((_, relu)) => relu,
                None => g.relu_fusable(i),
            };
            // The value this step finally produces (after the fused add and ReLU).
            let fused = usize::from(residual.is_some()) + usize::from(fuse_relu);
            let in_padded = buf_border[src].is_some();
            // Store the output with the border its consumers want, if this step can.
            let out_border = match op {
                Op::Conv2d { .. }
                    if g.conv_geom(i).groups == 1 || g.conv_geom(i).is_depthwise() =>
                {
                    want_border[v + fused]
                }
                _ => None,
            };
            let dst = match out_border {
                Some([t, b, l, r]) => {
                    let s = g.out_shape(i);
                    new_buf(&mut sizes, batch * (s[0] + t + b) * (s[1] + l + r) * s[2])
                }
                None => new_buf(&mut sizes, out_len),
            };
            buf_border.push(out_border);
            for f in 0..=fused {
                buf_of[v + f] = dst;
            }
            skip_nodes = fused;
            step_nodes.push(i);
            let bias = t.get(1).map(flat);
            #[cfg(target_arch = "x86_64")]
            let direct_plan = if direct {
                match op {
                    Op::Dense { units, .. } if !large_gemm(out_len / units, last, *units) => {
                        Some(direct::DirectPlan::gemm(
                            out_len / units,
                            last,
                            *units,
                            &flat(&t[0]),
                            bias.as_deref(),
                            fuse_relu,
                        ))
                    }
                    Op::Conv2d { .. } => direct::DirectPlan::conv(
                        &g.conv_geom(i),
                        batch,
                        &flat(&t[0]),
                        bias.as_deref(),
                        fuse_relu,
                        in_padded,
                        out_border,
                    )
                    .map(|p| match residual {
                        Some((skip, _)) => p.with_residual(buf_border[buf_of[skip]]),
                        None => p,
                    }),
                    _ => None,
                }
            } else {
                None
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (direct, in_padded);
            let step = match op {
                #[cfg(target_arch = "x86_64")]
                _ if direct_plan.is_some() => {
                    let plan = Box::new(direct_plan.expect("checked"));
                    pads.push(plan.pad_buffer());
                    Step::Direct {
                        skip: residual.map(|(skip, _)| buf_of[skip]),
                        src,
                        dst,
                        plan,
                        pad: pads.len() - 1,
                    }
                }
                #[cfg(target_arch = "x86_64")]
                Op::Dense { units, .. } if direct => Step::Packed {
                    src,
                    dst,
                    rows: out_len / units,
                    plan: Box::new(packed::PackedGemm::new(
                        &flat(&t[0]),
                        last,
                        *units,
                        bias,
                        fuse_relu,
                    )),
                },
                Op::Dense { units, .. } => Step::Gemm {
                    src,
                    dst,
                    rows: out_len / units,
                    k: last,
                    n: *units,
                    w: flat(&t[0]),
                    bias,
                    relu: fuse_relu,
                },
                Op::Conv2d { .. } => {
                    let geom = g.conv_geom(i);
                    if geom.is_pointwise() {
                        Step::Gemm {
                            src,
                            dst,
                            rows: batch * geom.ho * geom.wo,
                            k: geom.cin,
                            n: geom.cout,
                            w: flat(&t[0]),
                            bias,
                            relu: fuse_relu,
                        }
                    } else if geom.is_depthwise() {
                        let w = flat(&t[0]);
                        #[cfg(target_arch = "x86_64")]
                        if direct {
                            let plan = Box::new(direct::DwPlan::new(
                                &geom, batch, w, bias, fuse_relu, in_padded, out_border,
                            ));
                            pads.push(plan.pad_buffer());
                            steps.push(Step::DirectDw {
                                src,
                                dst,
                                plan,
                                pad: pads.len() - 1,
                            });
                            par.push(false);
                            let last = par.len() - 1;
                            par[last] = threads > 1 && step_work(g, i, batch) >= PAR_MIN_WORK;
                            continue;
                        }
                        Step::Depthwise {
                            src,
                            dst,
                            geom,
                            w_tiled: (geom.sw == 1)
                                .then(|| kernels::tile_depthwise_weights(&geom, &w)),
                            w,
                            bias,
                            relu: fuse_relu,
                        }
                    } else {
                        let rows = batch * geom.ho * geom.wo;
                        scratch_len =
                            scratch_len.max(rows * geom.kh * geom.kw * geom.cin / geom.groups);
                        Step::Conv {
                            src,
                            dst,
                            geom,
                            w: flat(&t[0]),
                            bias,
                            relu: fuse_relu,
                        }
                    }
                }
                Op::BatchNorm { eps } => {
                    let (scale, shift) = greenbench_core::fold::bn_scale_shift(t, *eps);
                    Step::ScaleShift {
                        src,
                        dst,
                        scale,
                        shift,
                    }
                }
                Op::Relu => Step::Relu { src, dst },
                Op::Gelu => Step::Gelu { src, dst },
                Op::Softmax => Step::Softmax { src, dst, n: last },
                Op::LayerNorm { eps } => Step::LayerNorm {
                    src,
                    dst,
                    n: last,
                    gamma: flat(&t[0]),
                    beta: flat(&t[1]),
                    eps: *eps,
                },
                Op::MaxPool { .. } | Op::AvgPool { .. } => Step::Pool {
                    src,
                    dst,
                    geom: g.pool_geom(i),
                    direct,
                    max: matches!(op, Op::MaxPool { .. }),
                },
                Op::GlobalAvgPool => Step::GlobalAvgPool {
                    src,
                    dst,
                    rows: in_shape.iter().product::<usize>() / last,
                    c: last,
                },
                Op::Add => Step::Add {
                    a: src,
                    b: buf_of[ins[1]],
                    dst,
                },
                Op::Embedding { dim, .. } => Step::Embedding {
                    src,
                    dst,
                    seq: in_shape[0],
                    dim: *dim,
                    table: flat(&t[0]),
                    pos: t.get(1).map(flat),
                },
                Op::Attention { heads, head_dim } => {
                    scratch_len = scratch_len.max(batch * heads * in_shape[0] * in_shape[0]);
                    Step::Attention {
                        src,
                        dst,
                        s: in_shape[0],
                        h: *heads,
                        d: *head_dim,
                    }
                }
                Op::Flatten => unreachable!("handled above"),
            };
            steps.push(step);
            let work = step_work(g, i, batch);
            let min = if matches!(steps.last(), Some(Step::Gemm { .. })) {
                PAR_MIN_GEMM_WORK
            } else {
                PAR_MIN_WORK
            };
            par.push(threads > 1 && work >= min);
        }
        let output_buf = buf_of[nvals - 1];
        #[cfg(target_arch = "x86_64")]
        let team = if direct && threads > 1 {
            Team::plan(g, &steps, &step_nodes, batch, threads, team_min).map(Arc::new)
        } else {
            None
        };
        #[cfg(not(target_arch = "x86_64"))]
        let team = {
            let _ = team_min;
            None
        };
        Ok(CpuPrepared {
            buf_ptrs: vec![RawBuf::default(); sizes.len()],
            pad_ptrs: vec![RawBuf::default(); pads.len()],
            team,
            steps,
            par,
            bufs: sizes.iter().map(|&n| Buf::zeros(n)).collect(),
            scratch: vec![0.0; scratch_len],
            pads,
            split: None,
            input_buf: 0,
            input_border,
            output_buf,
            graph: Some(g.clone()),
            batch,
            output_len: batch * g.output_len(),
            threads,
            pool,
            owner: None,
        })
    }

    /// Run the steps as a team of `threads` threads (see [`Team`]): the calling thread
    /// starts at once; the others join when rayon wakes them.
    fn execute_team(&mut self, team: &Arc<Team>) {
        for c in team.claimed.iter().chain(&team.done) {
            c.store(0, Ordering::Relaxed);
        }
        for (p, b) in self.buf_ptrs.iter_mut().zip(self.bufs.iter_mut()) {
            *p = RawBuf {
                ptr: b.as_mut_ptr(),
                len: b.len(),
            };
        }
        for (p, b) in self.pad_ptrs.iter_mut().zip(self.pads.iter_mut()) {
            *p = RawBuf {
                ptr: b.as_mut_ptr(),
                len: b.len(),
            };
        }
        let this = PlanPtr(self as *mut CpuPrepared);
        team_fork(this, team, 0, team.threads);
    }

    /// Copy `x` (already checked) into the input buffer, inside its border if it has one.
    fn load_input(&mut self, x: &[f32]) {
        let buf = &mut self.bufs[self.input_buf];
        match self.input_border {
            None => buf.copy_from_slice(x),
            Some(([t, b, l, r], [h, w, c])) => {
                let (hp, wp) = (h + t + b, w + l + r);
                for (n, img) in x.chunks(h * w * c).enumerate() {
                    for (iy, row) in img.chunks(w * c).enumerate() {
                        let o = ((n * hp + iy + t) * wp + l) * c;
                        buf[o..o + w * c].copy_from_slice(row);
                    }
                }
            }
        }
    }

    /// The reduction length of a prepared matmul (`prepare_matmul`: one GEMM step).
    fn matmul_k(&self) -> usize {
        match &self.steps[0] {
            #[cfg(target_arch = "x86_64")]
            Step::Packed { plan, .. } => plan.k(),
            Step::Gemm { k, .. } => *k,
            _ => unreachable!("a prepared matmul is one GEMM step"),
        }
    }

    /// Run a prepared matmul on the caller's left operand in place, as ONNX Runtime's MatMul
    /// reads its input: copying it into a buffer first cost ~0.5-0.7 ms of a 1024^3 product
    /// on the dev VM (`greenbench peak` read 287 GFLOP/s, 7.5 ms, with the copy; the same
    /// `gemm` crate call without it 306-316, 6.8-7.0 ms, timed standalone). Called from the
    /// caller's thread (not inside the pool).
    fn execute_matmul(&mut self, a: &[f32]) {
        let threads = self.threads;
        let out = &mut self.bufs[self.output_buf];
        match &self.steps[0] {
            #[cfg(target_arch = "x86_64")]
            Step::Packed { rows, plan, .. } => {
                plan.run_from_caller(&self.pool, a, *rows, out, threads, FINISH_SPIN)
            }
            Step::Gemm { rows, k, n, w, .. } => self.pool.install(|| {
                kernels::sgemm(
                    *rows,
                    *n,
                    *k,
                    Mat::rows(a, *k),
                    Mat::rows(w, *n),
                    out,
                    *n,
                    Threads::Pool(threads),
                )
            }),
            _ => unreachable!("a prepared matmul is one GEMM step"),
        }
    }

    fn execute(&mut self) {
        for i in 0..self.steps.len() {
            let par = self.par[i];
            self.exec_step(i, par);
        }
    }

    /// Run step `i`, split across the current rayon pool when `par`.
    fn exec_step(&mut self, i: usize, par: bool) {
        let step = &self.steps[i];
        let gemm_threads = if par {
            Threads::Pool(self.threads)
        } else {
            Threads::One
        };
        let was_serial = kernels::set_serial(!par);
        let dst_id = match step {
            #[cfg(target_arch = "x86_64")]
            Step::Direct { dst, .. } | Step::DirectDw { dst, .. } | Step::Packed { dst, .. } => {
                *dst
            }
            Step::Gemm { dst, .. }
            | Step::Conv { dst, .. }
            | Step::Depthwise { dst, .. }
            | Step::Relu { dst, .. }
            | Step::Gelu { dst, .. }
            | Step::Softmax { dst, .. }
            | Step::LayerNorm { dst, .. }
            | Step::ScaleShift { dst, .. }
            | Step::Pool { dst, .. }
            | Step::GlobalAvgPool { dst, .. }
            | Step::Add { dst, .. }
            | Step::Embedding { dst, .. }
            | Step::Attention { dst, .. } => *dst,
        };
        // Move the destination out so sources can be borrowed alongside (no allocation).
        let mut out = std::mem::take(&mut self.bufs[dst_id]);
        let bufs = &self.bufs;
        match step {
            #[cfg(target_arch = "x86_64")]
            Step::Direct {
                src,
                plan,
                pad,
                skip,
                ..
            } => plan.run(
                &bufs[*src],
                &mut out,
                skip.map(|b| bufs[b].as_slice()),
                &mut self.pads[*pad],
                par,
                self.threads,
            ),
            #[cfg(target_arch = "x86_64")]
            Step::Packed {
                src, rows, plan, ..
            } => plan.run(
                &bufs[*src],
                *rows,
                &mut out,
                if par { self.threads } else { 1 },
            ),
            Step::Gemm {
                src,
                rows,
                k,
                n,
                w,
                bias,
                relu,
                ..
            } => {
                kernels::sgemm(
                    *rows,
                    *n,
                    *k,
                    Mat::rows(&bufs[*src], *k),
                    Mat::rows(w, *n),
                    &mut out,
                    *n,
                    gemm_threads,
                );
                kernels::bias_act(&mut out, *rows, *n, *n, bias.as_deref(), *relu);
            }
            Step::Conv {
                src,
                geom,
                w,
                bias,
                relu,
                ..
            } => {
                let batch = out.len() / (geom.ho * geom.wo * geom.cout);
                let rows = batch * geom.ho * geom.wo;
                let cin_g = geom.cin / geom.groups;
                let cout_g = geom.cout / geom.groups;
                let kk = geom.kh * geom.kw * cin_g;
                for grp in 0..geom.groups {
                    kernels::im2col(&bufs[*src], batch, geom, grp, &mut self.scratch);
                    kernels::sgemm(
                        rows,
                        cout_g,
                        kk,
                        Mat::rows(&self.scratch, kk),
                        Mat {
                            data: &w[grp * cout_g..],
                            rs: geom.cout,
                            cs: 1,
                        },
                        &mut out[grp * cout_g..],
                        geom.cout,
                        gemm_threads,
                    );
                }
                kernels::bias_act(&mut out, rows, geom.cout, geom.cout, bias.as_deref(), *relu);
            }
            #[cfg(target_arch = "x86_64")]
            Step::DirectDw { src, plan, pad, .. } => {
                plan.run(&bufs[*src], &mut out, &mut self.pads[*pad], par)
            }
            Step::Depthwise {
                src,
                geom,
                w,
                w_tiled,
                bias,
                relu,
                ..
            } => {
                let batch = out.len() / (geom.ho * geom.wo * geom.cout);
                kernels::depthwise(
                    &bufs[*src],
                    batch,
                    geom,
                    w,
                    w_tiled.as_deref(),
                    bias.as_deref(),
                    *relu,
                    &mut out,
                );
            }
            Step::Relu { src, .. } => kernels::relu(&bufs[*src], &mut out),
            Step::Gelu { src, .. } => kernels::gelu(&bufs[*src], &mut out),
            Step::Softmax { src, n, .. } => kernels::softmax_rows(&bufs[*src], *n, &mut out),
            Step::LayerNorm {
                src,
                n,
                gamma,
                beta,
                eps,
                ..
            } => kernels::layer_norm_rows(&bufs[*src], *n, gamma, beta, *eps, &mut out),
            Step::ScaleShift {
                src, scale, shift, ..
            } => kernels::scale_shift(&bufs[*src], scale.len(), scale, shift, &mut out),
            Step::Pool {
                src,
                geom,
                max,
                direct,
                ..
            } => {
                let batch = out.len() / (geom.ho * geom.wo * geom.c);
                #[cfg(target_arch = "x86_64")]
                if *direct {
                    direct::pool(&bufs[*src], batch, geom, *max, &mut out, par);
                } else {
                    kernels::pool(&bufs[*src], batch, geom, *max, &mut out);
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = direct;
                    kernels::pool(&bufs[*src], batch, geom, *max, &mut out);
                }
            }
            Step::GlobalAvgPool { src, rows, c, .. } => {
                kernels::global_avg_pool(&bufs[*src], out.len() / c, *rows, *c, &mut out)
            }
            Step::Add { a, b, .. } => kernels::add(&bufs[*a], &bufs[*b], &mut out),
            Step::Embedding {
                src,
                seq,
                dim,
                table,
                pos,
                ..
            } => kernels::embedding(&bufs[*src], *seq, table, pos.as_deref(), *dim, &mut out),
            Step::Attention { src, s, h, d, .. } => {
                let batch = out.len() / (s * h * d);
                kernels::attention(&bufs[*src], batch, *s, *h, *d, &mut self.scratch, &mut out);
            }
        }
        self.bufs[dst_id] = out;
        kernels::set_serial(was_serial);
    }
}

/// Start the walks of threads `lo..hi` with nested `rayon::join`s (stack jobs: no heap
/// allocation per run, unlike `rayon::scope`); the calling thread walks as `lo` at once.
fn team_fork(this: PlanPtr, team: &Team, lo: usize, hi: usize) {
    if hi - lo <= 1 {
        // SAFETY: see `team_walk`.
        unsafe { team_walk(this, team, lo) };
        return;
    }
    let mid = lo + (hi - lo).div_ceil(2);
    rayon::join(
        || team_fork(this, team, lo, mid),
        || team_fork(this, team, mid, hi),
    );
}

/// One thread's walk through a team run.
///
/// # Safety
/// `this` points to a plan that outlives the run and that nothing else touches meanwhile;
/// its `buf_ptrs`/`pad_ptrs` are fresh. Phases are strictly ordered (a thread starts phase
/// k + 1 only when every unit of phase k is done, with acquire/release on `done`), units of
/// a split phase write disjoint parts of one buffer and read only buffers no phase writes
/// at the same time, and a whole step runs on one thread while the others spin on `done`
/// without touching the plan.
unsafe fn team_walk(this: PlanPtr, team: &Team, me: usize) {
    let n = team.threads;
    for (k, ph) in team.phases.iter().enumerate() {
        // Whole steps stay on the calling thread (me == 0), where small steps' data is
        // cached. Split phases: thread t owns units [t U / n, (t + 1) U / n), the same
        // pixel range in every layer, so most of what it reads it wrote itself; it takes
        // its own units first, then helps with the others' that are still unclaimed.
        let whole = matches!(ph.kind, PhaseKind::Whole);
        let slots = if whole { usize::from(me == 0) } else { n };
        for j in 0..slots {
            let slot = (me + j) % n;
            let (lo, hi) = if whole {
                (0, ph.units)
            } else {
                (slot * ph.units / n, (slot + 1) * ph.units / n)
            };
            loop {
                let u = lo + team.claimed[k * n + slot].fetch_add(1, Ordering::Relaxed);
                if u >= hi {
                    break;
                }
                unsafe { team_unit(this, ph, u, team.threads) };
                team.done[k].fetch_add(1, Ordering::Release);
            }
        }
        while team.done[k].load(Ordering::Acquire) < ph.units {
            std::hint::spin_loop();
        }
    }
}

/// Unit `u` of phase `ph`. Safety: as [`team_walk`].
unsafe fn team_unit(this: PlanPtr, ph: &Phase, u: usize, threads: usize) {
    if let PhaseKind::Whole = ph.kind {
        // SAFETY: this thread alone runs the phase; the others only spin on atomics.
        let p = unsafe { &mut *this.0 };
        p.exec_step(ph.step, false);
        return;
    }
    // SAFETY: shared access; writes go through raw pointers to disjoint parts.
    let p = unsafe { &*this.0 };
    let slice = |b: RawBuf| unsafe { std::slice::from_raw_parts(b.ptr, b.len) };
    #[cfg(target_arch = "x86_64")]
    {
        let (src, dst, pad, reads_pad) = match &p.steps[ph.step] {
            Step::Direct {
                src,
                dst,
                pad,
                plan,
                ..
            } => (*src, *dst, *pad, plan.reads_pad_buffer()),
            Step::DirectDw {
                src,
                dst,
                pad,
                plan,
                ..
            } => (*src, *dst, *pad, plan.reads_pad_buffer()),
            _ => unreachable!("phase {ph:?} of a step without units"),
        };
        let input = slice(p.buf_ptrs[src]);
        // The compute reads the pad buffer once the copy phase has filled it.
        let x = if reads_pad {
            slice(p.pad_ptrs[pad])
        } else {
            input
        };
        let y = p.buf_ptrs[dst];
        match (&p.steps[ph.step], ph.kind) {
            (Step::Direct { plan, .. }, PhaseKind::Copy) => unsafe {
                plan.copy_unit(input, p.pad_ptrs[pad].ptr, u)
            },
            (Step::DirectDw { plan, .. }, PhaseKind::Copy) => unsafe {
                plan.copy_unit(input, p.pad_ptrs[pad].ptr, u)
            },
            (Step::Direct { plan, skip, .. }, PhaseKind::Compute) => {
                assert!(y.len >= plan.output_len());
                let skip = skip.map(|b| slice(p.buf_ptrs[b]));
                unsafe { plan.compute_unit(x, y.ptr, skip, u, threads) }
            }
            (Step::DirectDw { plan, .. }, PhaseKind::Compute) => {
                assert!(y.len >= plan.output_len());
                unsafe { plan.compute_unit(x, y.ptr, u) }
            }
            _ => unreachable!("phase {ph:?} of a step without units"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, slice, u, threads);
}

impl Prepared for CpuPrepared {
    fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError> {
        let want = match &self.graph {
            Some(_) => self.bufs[self.input_buf].len(),
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
        if let Some(owner) = self.owner
            && owner != std::thread::current().id()
        {
            return Err(BackendError::Invalid(
                "this CPU backend was built with on_this_thread; run it from that thread".into(),
            ));
        }
        let pool = self.pool.clone();
        if let Some(split) = &mut self.split {
            // Workers read the caller's input directly.
            let g = self.graph.as_ref().expect("split plans have a graph");
            let (in_per, out_per) = (g.input_len(), g.output_len());
            let Split { workers, finished } = split;
            let finished = &*finished;
            finished.store(0, Ordering::Relaxed);
            let nworkers = workers.len();
            pool.install(|| {
                workers.par_iter_mut().with_max_len(1).for_each(|wk| {
                    wk.run(input, in_per, out_per);
                    finished.fetch_add(1, Ordering::AcqRel);
                    spin_until(finished, nworkers, FINISH_SPIN);
                })
            });
            let out = &mut self.bufs[self.output_buf];
            for wk in workers.iter() {
                out[wk.start * out_per..(wk.start + wk.count) * out_per].copy_from_slice(&wk.out);
            }
        } else if self.graph.is_none() {
            self.execute_matmul(input);
        } else if let Some(team) = self.team.clone() {
            self.load_input(input);
            pool.install(|| self.execute_team(&team));
        } else {
            self.load_input(input);
            pool.install(|| self.execute());
        }
        Ok(&self.bufs[self.output_buf][..self.output_len])
    }
}
