//! The int8 plan's vocabulary: a linear layer's form (`Lin`), one step over numbered fp32 and
//! uint8 buffers (`Step`), the buffers' per-example lengths (`Layout`), a worker's memory
//! (`Mem`) and the plan itself. The planner writes these, the executor reads them.

use super::depthwise::takes_row_pairs;
use super::epilogue::Epi;
use super::gemm::QGemm;
use super::lanes::PixelLanes;
use super::pool::NarrowIdx;
use crate::kernels::AVec;
use greenbench_core::graph::{ConvGeom, Graph, PoolGeom};
use greenbench_core::quant::QParams;
use greenbench_core::strided::Strided;

pub(super) enum Lin {
    /// Dense or pointwise conv: rows of `k` straight from the input.
    Gemm { gemm: QGemm, k: usize },
    /// im2col (padding = the input's zero point) + one GEMM per group.
    Conv { geom: ConvGeom, gemms: Vec<QGemm> },
    /// An ungrouped convolution on VNNI read in place (no im2col): GEMM rows are pixels whose
    /// quads are read from the padded image (`bases` per pixel, `qoff` per quad; each kernel
    /// row's `kw * Cin` bytes rounded up to 4, the extra bytes meeting zero weights).
    InPlace {
        geom: ConvGeom,
        gemm: QGemm,
        bases: Vec<usize>,
        qoff: Vec<u32>,
        /// The pixels-in-lanes form, where it runs (one input channel, stride 1, up to 8
        /// output channels: `lanes.rs`); the GEMM otherwise.
        lanes: Option<Box<PixelLanes>>,
    },
    /// Depthwise: weights per tap `[kh * kw][C]`, widened (rows padded to 16 channels); and
    /// for stride-1 rows, each tap's weights repeated to `span` (a multiple of 64 and of C).
    Depthwise {
        geom: ConvGeom,
        w: Vec<i32>,
        tiled: AVec<i32>,
        span: usize,
        /// For the VNNI stride-1 kernel: the weights of each quad of taps, per 64-value block
        /// offset in `span`, interleaved as `dw_vnni` reads them (empty when not used).
        quads: AVec<i8>,
        /// The step's epilogue in the VNNI rows' lane order (`Epi::quad_permuted` to
        /// `span`), with `quads`.
        qepi: Option<Box<Epi>>,
    },
}

pub(super) enum Step {
    Quantize {
        src: usize,
        dst: usize,
        p: QParams,
    },
    Dequantize {
        src: usize,
        dst: usize,
        p: QParams,
    },
    /// A unary elementwise node between two uint8 values as its table of 256 results
    /// (`lut.rs`): from uint8 buffer `src` to uint8 buffer `dst`.
    Lut {
        src: usize,
        dst: usize,
        table: Box<[u8; 256]>,
    },
    Linear {
        /// The graph node (for the team's work estimate).
        node: usize,
        /// The last graph node it computes: `node`, or a max pool fused into it (and the
        /// activation between).
        last: usize,
        src: usize,
        dst: usize,
        zx: i32,
        lin: Box<Lin>,
        epi: Epi,
        /// Output values per example.
        out_len: usize,
    },
    Pool {
        src: usize,
        dst: usize,
        geom: PoolGeom,
        max: bool,
        /// A max pool's row-gather tables where that form runs (made here, not per run).
        gathers: Option<Box<NarrowIdx>>,
        zero: i32,
    },
    GlobalAvg {
        src: usize,
        dst: usize,
        rows: usize,
        c: usize,
        zero: i32,
    },
    Add {
        a: usize,
        b: usize,
        dst: usize,
        z: (i32, i32, i32),
        node: (i64, i64, u32, u8, u8),
    },
    /// An fp32 node on fp32 buffers.
    Fp32 {
        node: usize,
        ins: Vec<usize>,
        dst: usize,
        data: Vec<Vec<f32>>,
        /// One example's strided map of a broadcasting op or transpose, made here once (not
        /// per run).
        map: Option<Strided>,
    },
}

/// Per example lengths of the buffers (fp32 and uint8), and where the input / output are.
#[derive(Clone)]
pub(super) struct Layout {
    pub(super) f32_len: Vec<usize>,
    pub(super) u8_len: Vec<usize>,
    pub(super) input: usize,
    /// The input is read only by the first step's quantize: its fp32 buffer is empty and the
    /// quantize reads the run's input where the caller holds it (no copy of the batch).
    pub(super) input_direct: bool,
    pub(super) output: usize,
    /// Largest padded image + im2col block (bytes, one example at a time) and accumulator
    /// block (ints per example).
    pub(super) cols_len: usize,
    pub(super) acc_len: usize,
    /// Attention scores per example.
    pub(super) scratch_len: usize,
    /// Channels of the widest uint8 pool (its per-channel sums).
    pub(super) sum_len: usize,
}

/// A worker's buffers, each on cache lines ([`AVec`]): the kernels load and store them 64
/// bytes at a time. Measured on the dev VM (Intel Xeon with AMX, 2026-12-05, `greenbench run
/// --models ... --batch 32 --precision int8 --threads 2`, four alternating rounds, best us,
/// `Vec` -> `AVec`): ds-cnn 14.2 -> 11.9, mobilenet-v1-0.25 57.2 -> 51.9, resnet8 27.4 -> 25.4,
/// tiny-transformer 110.4 -> 104.9, lenet5 5.28 -> 4.90, mlp 0.39 -> 0.37.
pub(super) struct Mem {
    pub(super) f: Vec<AVec<f32>>,
    pub(super) q: Vec<AVec<u8>>,
    pub(super) cols: AVec<u8>,
    pub(super) acc: AVec<i32>,
    pub(super) scratch: AVec<f32>,
    /// Per-channel sums of the uint8 pools.
    pub(super) sums: Vec<i64>,
    pub(super) batch: usize,
    /// Each step's time over the runs since `time_steps` (and the runs); `None`: not timed.
    pub(super) clock: Option<(Vec<std::time::Duration>, u64)>,
}

impl Mem {
    pub(super) fn new(l: &Layout, batch: usize) -> Mem {
        Mem {
            f: l.f32_len.iter().map(|n| AVec::zeroed(n * batch)).collect(),
            q: l.u8_len.iter().map(|n| AVec::zeroed(n * batch)).collect(),
            cols: AVec::zeroed(l.cols_len),
            acc: AVec::zeroed(l.acc_len * batch),
            scratch: AVec::zeroed(l.scratch_len * batch),
            sums: vec![0; l.sum_len],
            batch,
            clock: None,
        }
    }
}

pub(super) struct Plan {
    pub(super) graph: Graph,
    /// Run the AVX-512 forms of the integer loops.
    pub(super) wide: bool,
    pub(super) steps: Vec<Step>,
    /// Per step: the graph node it computes, or whose input or output it converts (a border
    /// quantize or dequantize); `None` for the model input's quantize.
    pub(super) step_nodes: Vec<Option<usize>>,
    pub(super) layout: Layout,
}

impl Step {
    /// The kernel that runs this step, for a step profile.
    pub(super) fn kernel(&self, g: &Graph) -> String {
        match self {
            Step::Quantize { .. } => "int8 quantize (border)".into(),
            Step::Dequantize { .. } => "int8 dequantize (border)".into(),
            Step::Lut { .. } => "int8 table (dequantize, op, quantize)".into(),
            Step::Linear { lin, .. } => match &**lin {
                Lin::Gemm { .. } => "int8 GEMM".into(),
                Lin::Conv { .. } => "int8 im2col + GEMM".into(),
                Lin::InPlace { lanes: Some(l), .. } if l.pooled() => {
                    "int8 conv + max pool (pixels in lanes)".into()
                }
                Lin::InPlace { lanes: Some(_), .. } => "int8 conv (pixels in lanes)".into(),
                Lin::InPlace { .. } => "int8 conv (read in place)".into(),
                Lin::Depthwise { geom, quads, .. }
                    if !quads.is_empty() && takes_row_pairs(geom.kh, geom.kw) =>
                {
                    "int8 depthwise (VNNI row pairs)".into()
                }
                Lin::Depthwise { quads, .. } if !quads.is_empty() => {
                    "int8 depthwise (VNNI rows)".into()
                }
                Lin::Depthwise { .. } => "int8 depthwise".into(),
            },
            Step::Pool { max: true, .. } => "int8 max pool".into(),
            Step::Pool { .. } => "int8 average pool".into(),
            Step::GlobalAvg { .. } => "int8 global average pool".into(),
            Step::Add { .. } => "int8 add".into(),
            Step::Fp32 { node, .. } => format!("fp32 {}", g.nodes[*node].op.kind()),
        }
    }
}
