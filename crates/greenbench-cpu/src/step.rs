//! The plan's vocabulary: one step of a CPU execution plan (a kernel call over numbered
//! buffers, with what was fused into it) and a step's work estimate. The planner writes steps,
//! the executor and the thread team read them; this file knows neither.

#[cfg(target_arch = "x86_64")]
use crate::direct;
use crate::kernels::Relu;
#[cfg(target_arch = "x86_64")]
use crate::packed;
use greenbench_core::graph::{BinOp, ConvGeom, Graph, MatMulGeom, PoolGeom, Unary};
use greenbench_core::strided::Strided;

/// One step of the execution plan; `src`/`dst` are buffer indices.
pub(crate) enum Step {
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
    /// A dense layer on a GEMM whose weights were packed in `prepare`: AVX-512, or AVX2.
    #[cfg(target_arch = "x86_64")]
    Packed {
        src: usize,
        dst: usize,
        rows: usize,
        plan: Box<PackedPlan>,
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
        relu: Relu,
    },
    /// im2col + GEMM per group.
    Conv {
        src: usize,
        dst: usize,
        geom: ConvGeom,
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: Relu,
    },
    Depthwise {
        src: usize,
        dst: usize,
        geom: ConvGeom,
        w: Vec<f32>,
        w_tiled: Option<Vec<f32>>,

        bias: Option<Vec<f32>>,
        relu: Relu,
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
    /// `x * scale + shift` per channel (batch norms, consecutive ones composed), then a
    /// ReLU if `relu`.
    ScaleShift {
        src: usize,
        dst: usize,
        /// Values from one pixel's channels to the next's in `src` (more than the channels
        /// when `src` is the first channels of a wider buffer: a running concatenation).
        stride: usize,
        scale: Vec<f32>,
        shift: Vec<f32>,
        relu: bool,
    },
    Pool {
        src: usize,
        dst: usize,
        geom: PoolGeom,
        max: bool,
        /// On the direct AVX-512 kernel.
        direct: bool,
        /// That kernel's row gathers for a max pool of few channels (made here, not per run).
        #[cfg(target_arch = "x86_64")]
        narrow: Option<Box<crate::direct::Narrow>>,
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
    Unary {
        src: usize,
        dst: usize,
        f: Unary,
    },
    /// `dst = a * b`, `b` broadcast over each example of `a`.
    Mul {
        a: usize,
        b: usize,
        dst: usize,
        a_len: usize,
        b_len: usize,
    },
    /// Each source's block per outer index, in turn, from the start of each of the output's
    /// rows of `row` values (the sources' total, or more: a running concatenation's base
    /// copied into its first channels).
    Concat {
        /// (buffer, values per outer index)
        srcs: Vec<(usize, usize)>,
        dst: usize,
        outer: usize,
        row: usize,
    },
    ChannelShuffle {
        src: usize,
        dst: usize,
        c: usize,
        groups: usize,
        /// Stored with the zero border of the convolution that reads it (so that the
        /// depthwise convolution after a ShuffleNet shuffle needs no padded copy).
        border: Option<Lines>,
    },
    /// `values` (one example's) written for every example: a constant.
    Fill {
        dst: usize,
        values: Vec<f32>,
    },
    /// Per outer index, `part` values from `offset` of a `row` of the source.
    Slice {
        src: usize,
        dst: usize,
        outer: usize,
        row: usize,
        offset: usize,
        part: usize,
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
        causal: bool,
        /// A buffer of `batch * s` values added to each example's scores at each key.
        bias: Option<usize>,
    },
    /// `dst = a op b`, numpy broadcasting, over the strided map.
    Binary {
        a: usize,
        b: usize,
        dst: usize,
        map: Strided,
        op: BinOp,
    },
    /// `dst = src op c` (`c op src` when `left`) with a constant, over the strided map.
    BinaryConst {
        src: usize,
        dst: usize,
        c: Vec<f32>,
        map: Strided,
        op: BinOp,
        left: bool,
    },
    /// A permutation of axes, over the strided map.
    Transpose {
        src: usize,
        dst: usize,
        map: Strided,
    },
    /// A product of two activations (`a_len`, `b_len`: their per-example lengths).
    MatMul {
        a: usize,
        b: usize,
        dst: usize,
        geom: MatMulGeom,
        a_len: usize,
        b_len: usize,
    },
}

impl Step {
    /// The buffer this step writes.
    pub(crate) fn dst(&self) -> usize {
        match self {
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
            | Step::Unary { dst, .. }
            | Step::Mul { dst, .. }
            | Step::Concat { dst, .. }
            | Step::ChannelShuffle { dst, .. }
            | Step::Slice { dst, .. }
            | Step::Fill { dst, .. }
            | Step::Embedding { dst, .. }
            | Step::Attention { dst, .. }
            | Step::Binary { dst, .. }
            | Step::BinaryConst { dst, .. }
            | Step::Transpose { dst, .. }
            | Step::MatMul { dst, .. } => *dst,
        }
    }

    /// The buffers this step reads (its sources, a fused residual, an attention bias).
    pub(crate) fn reads(&self) -> Vec<usize> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Step::Direct { src, skip, .. } => std::iter::once(*src).chain(*skip).collect(),
            #[cfg(target_arch = "x86_64")]
            Step::DirectDw { src, .. } | Step::Packed { src, .. } => vec![*src],
            Step::Gemm { src, .. }
            | Step::Conv { src, .. }
            | Step::Depthwise { src, .. }
            | Step::Relu { src, .. }
            | Step::Gelu { src, .. }
            | Step::Softmax { src, .. }
            | Step::LayerNorm { src, .. }
            | Step::ScaleShift { src, .. }
            | Step::Pool { src, .. }
            | Step::GlobalAvgPool { src, .. }
            | Step::Unary { src, .. }
            | Step::ChannelShuffle { src, .. }
            | Step::Slice { src, .. }
            | Step::Embedding { src, .. }
            | Step::BinaryConst { src, .. }
            | Step::Transpose { src, .. } => vec![*src],
            Step::Attention { src, bias, .. } => std::iter::once(*src).chain(*bias).collect(),
            Step::Add { a, b, .. }
            | Step::Mul { a, b, .. }
            | Step::Binary { a, b, .. }
            | Step::MatMul { a, b, .. } => vec![*a, *b],
            Step::Concat { srcs, .. } => srcs.iter().map(|&(b, _)| b).collect(),
            Step::Fill { .. } => vec![],
        }
    }

    /// The kernel that runs this step, for a step profile (`Prepared::step_times`).
    pub(crate) fn kernel(&self) -> String {
        match self {
            #[cfg(target_arch = "x86_64")]
            Step::Direct { plan, skip, .. } => format!(
                "direct ({}){}",
                plan.form(),
                if skip.is_some() { " + residual" } else { "" }
            ),
            #[cfg(target_arch = "x86_64")]
            Step::DirectDw { .. } => "direct depthwise".into(),
            #[cfg(target_arch = "x86_64")]
            Step::Packed { plan, .. } => match **plan {
                PackedPlan::Avx512(_) => "packed GEMM (AVX-512)".into(),
                PackedPlan::Avx2(_) => "packed GEMM (AVX2)".into(),
            },
            Step::Gemm { .. } => "GEMM (gemm crate)".into(),
            Step::Conv { .. } => "im2col + GEMM".into(),
            Step::Depthwise { .. } => "depthwise (portable)".into(),
            Step::Relu { .. } => "relu".into(),
            Step::Gelu { .. } => "gelu".into(),
            Step::Softmax { .. } => "softmax".into(),
            Step::LayerNorm { .. } => "layer norm".into(),
            Step::ScaleShift { .. } => "scale and shift".into(),
            Step::Pool { .. } => "pool".into(),
            Step::GlobalAvgPool { .. } => "global average pool".into(),
            Step::Add { .. } => "add".into(),
            Step::Unary { .. } => "elementwise".into(),
            Step::Mul { .. } => "multiply".into(),
            Step::Concat { .. } => "concatenation copy".into(),
            Step::ChannelShuffle { .. } => "channel shuffle".into(),
            Step::Fill { .. } => "fill".into(),
            Step::Slice { .. } => "slice".into(),
            Step::Embedding { .. } => "embedding".into(),
            Step::Attention { .. } => "attention".into(),
            Step::Binary { .. } => "broadcast binary".into(),
            Step::BinaryConst { .. } => "binary with a constant".into(),
            Step::Transpose { .. } => "transpose".into(),
            Step::MatMul { .. } => "matmul".into(),
        }
    }

    /// The output tile side (2 or 4) when this step is a convolution run as Winograd
    /// F(m x m, 3x3).
    pub(crate) fn winograd_tile(&self) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Step::Direct { plan, .. } = self {
            return plan.winograd_tile();
        }
        None
    }
}

/// A step's work for threading decisions: FPO, or 4 per output element for memory-bound
/// ops, whole batch.
pub(crate) fn step_work(g: &Graph, i: usize, batch: usize) -> u64 {
    let c = greenbench_core::cost::node_cost(g, i);
    batch as u64
        * c.fpo()
            .max(4 * g.out_shape(i).iter().product::<usize>() as u64)
}

/// A GEMM with packed weights, on the widest kernel this CPU runs.
#[cfg(target_arch = "x86_64")]
pub(crate) enum PackedPlan {
    Avx512(packed::PackedGemm),
    Avx2(crate::packed_avx2::PackedGemm2),
}

#[cfg(target_arch = "x86_64")]
impl PackedPlan {
    /// Pack `w` (`k x n`) for the AVX-512 kernel when `avx512`, else the AVX2 one.
    pub(crate) fn new(
        avx512: bool,
        w: &[f32],
        k: usize,
        n: usize,
        bias: Option<Vec<f32>>,
        relu: crate::kernels::Relu,
    ) -> Box<Self> {
        Box::new(if avx512 {
            PackedPlan::Avx512(packed::PackedGemm::new(w, k, n, bias, relu))
        } else {
            PackedPlan::Avx2(crate::packed_avx2::PackedGemm2::new(w, k, n, bias, relu))
        })
    }

    /// The reduction length.
    pub(crate) fn k(&self) -> usize {
        match self {
            PackedPlan::Avx512(p) => p.k(),
            PackedPlan::Avx2(p) => p.k(),
        }
    }

    /// `c = a · w` on `threads` row ranges of the current pool.
    pub(crate) fn run(&self, a: &[f32], rows: usize, c: &mut [f32], threads: usize) {
        match self {
            PackedPlan::Avx512(p) => p.run(a, rows, c, threads),
            PackedPlan::Avx2(p) => p.run(a, rows, c, threads),
        }
    }

    /// As [`Self::run`], from outside `pool` (a prepared matmul).
    pub(crate) fn run_from_caller(
        &self,
        pool: &rayon::ThreadPool,
        a: &[f32],
        rows: usize,
        c: &mut [f32],
        threads: usize,
        spin: std::time::Duration,
    ) {
        match self {
            PackedPlan::Avx512(p) => p.run_from_caller(pool, a, rows, c, threads, spin),
            PackedPlan::Avx2(p) => pool.install(|| p.run(a, rows, c, threads)),
        }
    }
}

/// The image rows of a value stored with a zero border: `h` x `w` pixels an image, border
/// `[top, bottom, left, right]`; the value without its border is `batch * h` rows of `w`
/// pixels, one after the other.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lines {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) border: [usize; 4],
}

impl Lines {
    /// Offset (in values of `c` channels a pixel) of row `line`'s first pixel in the
    /// bordered buffer; row `line` is row `line % h` of image `line / h`.
    pub(crate) fn start(&self, line: usize, c: usize) -> usize {
        let [t, b, l, r] = self.border;
        let (n, y) = (line / self.h, line % self.h);
        ((n * (self.h + t + b) + y + t) * (self.w + l + r) + l) * c
    }
}
