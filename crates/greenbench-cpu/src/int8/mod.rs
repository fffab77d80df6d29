//! Int8 execution of a quantized model ([`QModel`]): uint8 activations stay uint8 between
//! int8 steps; convolutions and dense layers run the packed u8 x s8 GEMM of `gemm` (AVX-512
//! VNNI, AVX2 or portable, chosen at run time) or a direct depthwise loop, each with a fused
//! epilogue (zero-point correction folded into the bias, fixed-point requantization, the
//! ReLU / ReLU6 clamp); pools and residual adds work on uint8; every other op runs the fp32
//! kernels of this crate, with a dequantize / quantize step at each border.
//!
//! Threads: a batch of at least two examples per thread is split across the pool, each
//! worker running its examples through every step with its own memory; a smaller batch runs
//! on one thread (the fp32 steps inside it may still split). All memory is allocated in
//! `prepare`, none in `run`. The arithmetic is `greenbench_core::quant`'s, bit for bit
//! (tested against `run_reference_q`).

pub mod gemm;

use crate::kernels;
use crate::kernels::SendPtr;
use gemm::{QGemm, QPath};
use greenbench_core::backend::{BackendError, Prepared};
use greenbench_core::graph::{ConvGeom, Graph, MatMulGeom, Op, PoolGeom};
use greenbench_core::quant::{
    QLinear, QModel, QNode, QParams, Requantizer, add_q, avg_round, round_shift_up,
};
use greenbench_core::strided::Strided;
use rayon::prelude::*;
use std::sync::Arc;

/// The integer epilogue of a conv / dense layer, per output channel. Its per-channel arrays
/// repeat the channels' values cyclically to a length `span + 64`, `span` a multiple of 16
/// (and at least 256) and of the channel count, so a run of whole pixels is finished in full
/// 16-lane blocks whatever the channel count ([`Epi::finish_run`]), and 16 lanes can be read
/// from any offset below `span + 48`.
struct Epi {
    /// Output channels.
    ch: usize,
    span: usize,
    /// `bias - z_x * sum_k w` (the zero-point correction folded in), or `bias` where the
    /// kernel subtracts the zero point itself (depthwise).
    bias: Vec<i32>,
    mult: Vec<i32>,
    /// `mult` one channel on (`mult_next[i] = mult[i + 1]`, cyclically): loaded at a block's
    /// start, its even lanes are the block's odd channels' multipliers, where `vpmuldq` reads.
    mult_next: Vec<i32>,
    shift: Vec<u32>,
    /// The fp32 requantizer's multipliers (empty for the fixed-point one).
    scale: Vec<f32>,
    /// The fixed-point requantizer's one shift when every channel shares it and it is at
    /// least 32 (every real multiplier below 1/2): results then fit 32 bits before the clamp.
    common_shift: Option<u32>,
    zy: i32,
    lo: i32,
    hi: i32,
    /// Run the AVX-512 form (16 channels at a time).
    wide: bool,
}

impl Epi {
    fn new(l: &QLinear, col_sums: Option<&[i32]>, wide: bool) -> Epi {
        let bias = match col_sums {
            Some(s) => l
                .bias
                .iter()
                .zip(s)
                .map(|(&b, &s)| (b as i64 - l.x.zero as i64 * s as i64) as i32)
                .collect(),
            None => l.bias.clone(),
        };
        let ch = bias.len();
        let mult: Vec<i32> = l.requant.iter().map(|r| r.multiplier).collect();
        let lcm = ch / gcd(ch, 16) * 16;
        let span = lcm * 256usize.div_ceil(lcm);
        // Tiled 64 channels past `span`: a fused epilogue reads 16 from any channel offset
        // below `span + 48` (a depthwise row's 64-value blocks start anywhere in it).
        fn tile<T: Copy>(v: &[T], span: usize) -> Vec<T> {
            v.iter().copied().cycle().take(span + 64).collect()
        }
        Epi {
            ch,
            span,
            bias: tile(&bias, span),
            mult: tile(&mult, span),
            mult_next: (0..span + 64).map(|i| mult[(i + 1) % ch]).collect(),
            shift: tile(&l.requant.iter().map(|r| r.shift).collect::<Vec<_>>(), span),
            scale: match l.requantizer {
                Requantizer::Fp32 => tile(&l.scale, span),
                Requantizer::Fixed => vec![],
            },
            common_shift: l
                .requant
                .first()
                .map(|r| r.shift)
                .filter(|&s| s >= 32 && l.requant.iter().all(|r| r.shift == s)),
            zy: l.y.zero,
            lo: l.lo as i32,
            hi: l.hi as i32,
            wide,
        }
    }

    /// Whole pixels (every channel of each), contiguous: `acc` and `out` of one length, a
    /// multiple of the channel count.
    #[inline]
    fn finish_run(&self, acc: &[i32], out: &mut [u8]) {
        debug_assert!(acc.len().is_multiple_of(self.ch));
        for (a, o) in acc.chunks(self.span).zip(out.chunks_mut(self.span)) {
            self.finish(a, 0, o);
        }
    }

    /// Channels `c0..c0 + acc.len()` of one output row.
    #[inline]
    fn finish(&self, acc: &[i32], c0: usize, out: &mut [u8]) {
        let n = acc.len();
        let mut j = 0;
        #[cfg(target_arch = "x86_64")]
        if self.wide {
            // SAFETY: `wide` is set only where AVX-512F is present; the function reads
            // `acc[..n]`, `self.*[c0..c0 + n]` and writes `out[..n]` in whole 16-lane blocks.
            j = unsafe { self.finish_avx512(acc, c0, out) };
        }
        if !self.scale.is_empty() {
            let (lo, hi) = ((self.lo - self.zy) as f32, (self.hi - self.zy) as f32);
            for j in j..n {
                let c = c0 + j;
                let v = (acc[j].wrapping_add(self.bias[c]) as f32 * self.scale[c]).clamp(lo, hi);
                out[j] = (v.round_ties_even() as i32 + self.zy) as u8;
            }
            return;
        }
        for j in j..n {
            let c = c0 + j;
            let v = (acc[j] as i64 + self.bias[c] as i64) * self.mult[c] as i64;
            out[j] = (round_shift_up(v, self.shift[c]) + self.zy as i64)
                .clamp(self.lo as i64, self.hi as i64) as u8;
        }
    }

    /// [`Self::finish`] in 16-channel blocks (the last one masked); returns how many
    /// channels it did (all).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn finish_avx512(&self, acc: &[i32], c0: usize, out: &mut [u8]) -> usize {
        use std::arch::x86_64::*;
        let n = acc.len();
        assert!(out.len() >= n && c0 + n.next_multiple_of(16) <= self.bias.len());
        for b in 0..n.div_ceil(16) {
            let j = b * 16;
            // The last block may be partial: its lanes past `n` are masked off.
            let k = lanes_from(j, n);
            // SAFETY: the masked load and store touch lanes j..min(j + 16, n) only; `vec16`
            // reads the per-channel arrays at c0 + j..c0 + j + 16, inside them (asserted).
            unsafe {
                let v = _mm512_maskz_loadu_epi32(k, acc.as_ptr().add(j));
                let r = self.vec16(v, c0 + j);
                _mm_mask_storeu_epi8(
                    out.as_mut_ptr().add(j) as *mut i8,
                    k,
                    _mm512_cvtepi32_epi8(r),
                );
            }
        }
        n
    }

    /// The epilogue of 16 raw int32 sums in a register, channels `c..c + 16` (of the tiled
    /// per-channel arrays: `c + 16 <= bias.len()`), to 16 uint8 values in int32 lanes. Fused
    /// into the GEMM tiles and the depthwise rows, and run by [`Self::finish_avx512`].
    ///
    /// - fp32 requantizer: convert, multiply, clamp, round half to even (`cvtps2dq` under the
    ///   default rounding mode), add the zero point;
    /// - fixed-point, one shift for every channel of at least 32 (every real multiplier below
    ///   1/2; `Requant::uniform` gives one shift per layer): `(p + half) >> shift` by one
    ///   count, even channels' products shifted by `shift` (the result in their low 32 bits),
    ///   odd channels' by `shift - 32` (the same result in their high 32 bits), blended; the
    ///   zero point and clamp in 32-bit lanes (the shifted products fit: |p| < 2^62). 13
    ///   vector instructions;
    /// - fixed-point otherwise: the same in 64-bit lanes with a shift per channel.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL; `c + 16 <= self.bias.len()`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn vec16(
        &self,
        acc: std::arch::x86_64::__m512i,
        c: usize,
    ) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        debug_assert!(c + 16 <= self.bias.len());
        // SAFETY: every per-channel array has `bias`'s length (the caller's bound).
        unsafe {
            let ld = |p: *const i32| _mm512_loadu_si512(p.add(c) as *const __m512i);
            let v = _mm512_add_epi32(acc, ld(self.bias.as_ptr()));
            if !self.scale.is_empty() {
                let zy = _mm512_set1_epi32(self.zy);
                let lo = _mm512_set1_ps((self.lo - self.zy) as f32);
                let hi = _mm512_set1_ps((self.hi - self.zy) as f32);
                let f = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(v),
                    _mm512_loadu_ps(self.scale.as_ptr().add(c)),
                );
                let f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
                return _mm512_add_epi32(_mm512_cvtps_epi32(f), zy);
            }
            if let Some(shift) = self.common_shift {
                let (zy, lo, hi) = (
                    _mm512_set1_epi32(self.zy),
                    _mm512_set1_epi32(self.lo),
                    _mm512_set1_epi32(self.hi),
                );
                let even = _mm_cvtsi32_si128(shift as i32);
                let odd = _mm_cvtsi32_si128(shift as i32 - 32);
                let half = _mm512_set1_epi64(1i64 << (shift - 1));
                let pe = _mm512_mul_epi32(v, ld(self.mult.as_ptr()));
                let po = _mm512_mul_epi32(_mm512_srli_epi64(v, 32), ld(self.mult_next.as_ptr()));
                let re = _mm512_sra_epi64(_mm512_add_epi64(pe, half), even);
                let ro = _mm512_sra_epi64(_mm512_add_epi64(po, half), odd);
                let r = _mm512_mask_blend_epi32(0xaaaa, re, ro);
                return _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, zy), lo), hi);
            }
            let one = _mm512_set1_epi64(1);
            let m = ld(self.mult.as_ptr());
            let s = ld(self.shift.as_ptr() as *const i32);
            let round = |p: __m512i, s: __m512i| {
                let h = _mm512_sllv_epi64(one, _mm512_sub_epi64(s, one));
                _mm512_srav_epi64(_mm512_add_epi64(p, h), s)
            };
            let re = round(
                _mm512_mul_epi32(v, m),
                _mm512_and_si512(s, _mm512_set1_epi64(0xffff_ffff)),
            );
            let ro = round(
                _mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(m, 32)),
                _mm512_srli_epi64(s, 32),
            );
            // Clamped in 64-bit lanes (the results may pass 32 bits), then interleaved.
            let (zy, lo, hi) = (
                _mm512_set1_epi64(self.zy as i64),
                _mm512_set1_epi64(self.lo as i64),
                _mm512_set1_epi64(self.hi as i64),
            );
            let clamp =
                |r: __m512i| _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(r, zy), lo), hi);
            _mm512_or_si512(clamp(re), _mm512_slli_epi64(clamp(ro), 32))
        }
    }
}

enum Lin {
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
    },
    /// Depthwise: weights per tap `[kh * kw][C]`, widened (rows padded to 16 channels); and
    /// for stride-1 rows, each tap's weights repeated to `span` (a multiple of 64 and of C).
    Depthwise {
        geom: ConvGeom,
        w: Vec<i32>,
        tiled: Vec<i32>,
        span: usize,
        /// For the VNNI stride-1 kernel: the weights of each quad of taps, per 64-value block
        /// offset in `span`, interleaved as `dw_vnni` reads them (empty when not used).
        quads: Vec<i8>,
    },
}

enum Step {
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
    Linear {
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
struct Layout {
    f32_len: Vec<usize>,
    u8_len: Vec<usize>,
    input: usize,
    output: usize,
    /// Largest padded image + im2col block (bytes, one example at a time) and accumulator
    /// block (ints per example).
    cols_len: usize,
    acc_len: usize,
    /// Attention scores per example.
    scratch_len: usize,
    /// Channels of the widest uint8 pool (its per-channel sums).
    sum_len: usize,
}

struct Mem {
    f: Vec<Vec<f32>>,
    q: Vec<Vec<u8>>,
    cols: Vec<u8>,
    acc: Vec<i32>,
    scratch: Vec<f32>,
    /// Per-channel sums of the uint8 pools.
    sums: Vec<i64>,
    batch: usize,
}

impl Mem {
    fn new(l: &Layout, batch: usize) -> Mem {
        Mem {
            f: l.f32_len.iter().map(|n| vec![0.0; n * batch]).collect(),
            q: l.u8_len.iter().map(|n| vec![0; n * batch]).collect(),
            cols: vec![0; l.cols_len],
            acc: vec![0; l.acc_len * batch],
            scratch: vec![0.0; l.scratch_len * batch],
            sums: vec![0; l.sum_len],
            batch,
        }
    }
}

struct Plan {
    graph: Graph,
    /// Run the AVX-512 forms of the integer loops.
    wide: bool,
    steps: Vec<Step>,
    layout: Layout,
}

/// A quantized model prepared for the CPU at a fixed batch.
pub(crate) struct QPrepared {
    plan: Arc<Plan>,
    /// One per worker (one unless the batch is split).
    workers: Vec<Worker>,
    out: Vec<f32>,
    pool: Arc<rayon::ThreadPool>,
    batch: usize,
}

/// A worker's memory: it runs its share of the batch `main.batch` examples at a time (a
/// sub-batch, see [`sub_batch`]), and what is left over at once in `rest`.
struct Worker {
    main: Mem,
    rest: Option<Mem>,
}

/// Sub-batch working-set budget (bytes of the largest step's int32 sums plus its input and
/// output, per example, times the sub-batch), as the fp32 split's `SUB_BATCH_BYTES`: each
/// layer of a sub-batch stays in L2 instead of streaming the worker's whole share through L3.
const SUB_BATCH_BYTES: usize = 256 * 1024;

/// Examples per sub-batch for a worker's `share`: the largest power of two within the budget.
fn sub_batch(g: &Graph, share: usize) -> usize {
    let per_example = (0..g.nodes.len())
        .map(|i| {
            let ins: usize = g.value_shape(g.node_inputs(i)[0]).iter().product();
            let out: usize = g.out_shape(i).iter().product();
            ins + 5 * out
        })
        .max()
        .unwrap_or(1);
    let mut sub = 1;
    while sub * 2 <= share && sub * 2 * per_example <= SUB_BATCH_BYTES {
        sub *= 2;
    }
    sub
}

/// Which GEMM path int8 steps use here (for the device description).
pub fn path() -> QPath {
    QPath::detect()
}

impl QPrepared {
    pub(crate) fn new(
        qm: &QModel,
        batch: usize,
        threads: usize,
        pool: Arc<rayon::ThreadPool>,
        path: QPath,
    ) -> Result<QPrepared, BackendError> {
        if batch == 0 {
            return Err(BackendError::Invalid("batch must be at least 1".into()));
        }
        if !path.available() {
            return Err(BackendError::Invalid(format!(
                "the {} int8 kernels need CPU features this machine lacks",
                path.name()
            )));
        }
        let plan = Arc::new(plan(qm, path)?);
        let nworkers = if batch >= 2 * threads { threads } else { 1 }.max(1);
        let workers = (0..nworkers)
            .map(|t| {
                let n = share(batch, nworkers, t).1;
                let sub = sub_batch(&plan.graph, n);
                Worker {
                    main: Mem::new(&plan.layout, sub),
                    rest: (!n.is_multiple_of(sub)).then(|| Mem::new(&plan.layout, n % sub)),
                }
            })
            .collect();
        Ok(QPrepared {
            out: vec![0.0; batch * plan.graph.output_len()],
            plan,
            workers,
            pool,
            batch,
        })
    }
}

/// Worker `t`'s first example and example count.
fn share(batch: usize, workers: usize, t: usize) -> (usize, usize) {
    let (q, r) = (batch / workers, batch % workers);
    (t * q + t.min(r), q + usize::from(t < r))
}

impl Prepared for QPrepared {
    fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError> {
        let g = &self.plan.graph;
        g.check_input(input, self.batch)
            .map_err(BackendError::Invalid)?;
        let (inl, outl) = (g.input_len(), g.output_len());
        let nworkers = self.workers.len();
        let plan = &self.plan;
        let batch = self.batch;
        // Each worker writes its examples' outputs into its own part of `out`.
        let (base, total) = (SendPtr(self.out.as_mut_ptr()), self.out.len());
        let work = |t: usize, wk: &mut Worker| {
            let (first, n) = share(batch, nworkers, t);
            assert!(
                (first + n) * outl <= total,
                "worker outputs lie inside the output"
            );
            // SAFETY: workers' shares are disjoint (`share`), inside `out` (checked above),
            // and `out` outlives the pool call.
            let out =
                unsafe { std::slice::from_raw_parts_mut(base.get().add(first * outl), n * outl) };
            let mut done = 0;
            while done < n {
                let m = match &mut wk.rest {
                    Some(r) if n - done < wk.main.batch => r,
                    _ => &mut wk.main,
                };
                let b = m.batch;
                let i0 = (first + done) * inl;
                m.f[plan.layout.input].copy_from_slice(&input[i0..i0 + b * inl]);
                execute(plan, m);
                out[done * outl..(done + b) * outl].copy_from_slice(&m.f[plan.layout.output]);
                done += b;
            }
        };
        self.pool.install(|| {
            if nworkers == 1 {
                work(0, &mut self.workers[0]);
            } else {
                self.workers.par_iter_mut().enumerate().for_each(|(t, wk)| {
                    let was = kernels::set_serial(true);
                    work(t, wk);
                    kernels::set_serial(was);
                });
            }
        });
        Ok(&self.out)
    }
}

fn flat(t: &ndarray::ArrayD<f32>) -> Vec<f32> {
    t.iter().copied().collect()
}

/// Turn the quantized model into steps over fp32 and uint8 buffers.
fn plan(qm: &QModel, path: QPath) -> Result<Plan, BackendError> {
    // The AVX-512 loops and epilogues go with the VNNI path; forcing the AVX2 or portable
    // GEMM (as on CPUs without AVX-512) runs the plain forms too.
    let wide = path == QPath::Vnni && wide_int8();
    let g = &qm.graph;
    let nv = g.nodes.len() + 1;
    let len = |v: usize| -> usize { g.value_shape(v).iter().product() };
    let mut layout = Layout {
        f32_len: vec![],
        u8_len: vec![],
        input: 0,
        output: 0,
        cols_len: 0,
        acc_len: 0,
        scratch_len: 0,
        sum_len: 0,
    };
    // Where each value lives: its fp32 buffer (raw fp32, or the dequantized view of a uint8
    // value) and its uint8 buffer.
    let mut fbuf: Vec<Option<usize>> = vec![None; nv];
    let mut qbuf: Vec<Option<usize>> = vec![None; nv];
    let mut steps = Vec::new();
    let new_f = |layout: &mut Layout, n: usize| {
        layout.f32_len.push(n);
        layout.f32_len.len() - 1
    };
    let new_q = |layout: &mut Layout, n: usize| {
        layout.u8_len.push(n);
        layout.u8_len.len() - 1
    };
    // An fp32 result for value v in buffer `f`: kept, or quantized when v is held as uint8.
    let settle = |v: usize,
                  f: usize,
                  layout: &mut Layout,
                  steps: &mut Vec<Step>,
                  fbuf: &mut Vec<Option<usize>>,
                  qbuf: &mut Vec<Option<usize>>| {
        match qm.values[v] {
            Some(p) => {
                let d = new_q(layout, len(v));
                steps.push(Step::Quantize { src: f, dst: d, p });
                qbuf[v] = Some(d);
            }
            None => fbuf[v] = Some(f),
        }
    };
    let input = new_f(&mut layout, len(0));
    layout.input = input;
    settle(0, input, &mut layout, &mut steps, &mut fbuf, &mut qbuf);
    for i in 0..g.nodes.len() {
        let ins = g.node_inputs(i);
        let v = i + 1;
        match &qm.nodes[i] {
            QNode::Alias => {
                qbuf[v] = qbuf[ins[0]];
                continue;
            }
            QNode::Fp32 => {
                let mut srcs = Vec::with_capacity(ins.len());
                for &u in ins {
                    let f = match fbuf[u] {
                        Some(f) => f,
                        None => {
                            let f = new_f(&mut layout, len(u));
                            steps.push(Step::Dequantize {
                                src: qbuf[u].expect("a value is fp32 or uint8"),
                                dst: f,
                                p: qm.values[u].expect("uint8 value"),
                            });
                            fbuf[u] = Some(f);
                            f
                        }
                    };
                    srcs.push(f);
                }
                let dst = new_f(&mut layout, len(v));
                let t = qm.weights.node(i);
                let data = match &g.nodes[i].op {
                    Op::BatchNorm { eps } => {
                        let (s, h) = greenbench_core::fold::bn_scale_shift(t, *eps);
                        vec![s, h]
                    }
                    Op::Conv2d { .. } | Op::Dense { .. } => {
                        return Err(BackendError::Invalid(format!(
                            "node `{}`: a conv / dense layer left in fp32 inside an int8 model \
                             (the quantization pass quantizes every one)",
                            g.nodes[i].name
                        )));
                    }
                    Op::Attention { heads, .. } => {
                        let s = g.value_shape(ins[0])[0];
                        layout.scratch_len = layout.scratch_len.max(heads * s * s);
                        vec![]
                    }
                    _ => t.iter().map(flat).collect(),
                };
                let (x_shape, out) = (g.value_shape(ins[0]), g.out_shape(i));
                let map = match &g.nodes[i].op {
                    Op::Binary { .. } => {
                        Some(Strided::binary(out, x_shape, g.value_shape(ins[1]), 1))
                    }
                    Op::BinaryConst { shape, left, .. } => {
                        Some(Strided::with_constant(out, x_shape, shape, *left, 1))
                    }
                    Op::Transpose { perm } => Some(Strided::transpose(x_shape, perm, 1)),
                    _ => None,
                };
                steps.push(Step::Fp32 {
                    node: i,
                    ins: srcs,
                    dst,
                    data,
                    map,
                });
                settle(v, dst, &mut layout, &mut steps, &mut fbuf, &mut qbuf);
                continue;
            }
            _ => {}
        }
        let p_out = qm.values[v].expect("an int8 node's output is uint8");
        let q_ins: Vec<usize> = ins
            .iter()
            .map(|&u| qbuf[u].expect("an int8 node's inputs are uint8"))
            .collect();
        let q_in = |k: usize| q_ins[k];
        let dst = new_q(&mut layout, len(v));
        qbuf[v] = Some(dst);
        let step = match &qm.nodes[i] {
            QNode::Linear(l) => {
                let (lin, epi) = match &g.nodes[i].op {
                    Op::Dense { units, .. } => {
                        let k = *g.value_shape(ins[0]).last().expect("non-empty");
                        let gemm = QGemm::new(&l.w, k, *units, 0, *units, path);
                        layout.acc_len = layout.acc_len.max(len(v));
                        let epi = Epi::new(l, Some(&gemm.col_sums), wide);
                        (Lin::Gemm { gemm, k }, epi)
                    }
                    _ => {
                        let c = g.conv_geom(i);
                        if c.is_depthwise() {
                            // HWIO [kh, kw, 1, C]: per tap, C contiguous; each tap's row widened
                            // to a whole number of 16-channel blocks (zeros past C).
                            let chp = c.cout.next_multiple_of(16);
                            let mut w = vec![0i32; c.kh * c.kw * chp];
                            let mut sums = vec![0i32; c.cout];
                            for (j, &v) in l.w.iter().enumerate() {
                                w[(j / c.cout) * chp + j % c.cout] = v as i32;
                                sums[j % c.cout] += v as i32;
                            }
                            layout.cols_len = layout.cols_len.max(padded_len(&c));
                            layout.acc_len = layout.acc_len.max(c.ho * c.wo * c.cout);
                            let span = c.cout / gcd(c.cout, 64) * 64;
                            let tiled: Vec<i32> = (0..c.kh * c.kw)
                                .flat_map(|t| (0..span).map(move |j| (t, j % c.cout)))
                                .map(|(t, ch)| w[t * chp + ch])
                                .collect();
                            let quads = if wide && c.sw <= 2 {
                                dw_quads(&tiled, c.kh * c.kw, span)
                            } else {
                                vec![]
                            };
                            if wide && c.sw == 2 {
                                layout.cols_len =
                                    layout.cols_len.max(padded_len(&c) + split_len(&c));
                            }
                            let lin = Lin::Depthwise {
                                geom: c,
                                w,
                                tiled,
                                span,
                                quads,
                            };
                            (lin, Epi::new(l, Some(&sums), wide))
                        } else {
                            let cin_g = c.cin / c.groups;
                            let cout_g = c.cout / c.groups;
                            let k = c.kh * c.kw * cin_g;
                            let gemms: Vec<QGemm> = (0..c.groups)
                                .map(|grp| QGemm::new(&l.w, k, c.cout, grp * cout_g, cout_g, path))
                                .collect();
                            let sums: Vec<i32> =
                                gemms.iter().flat_map(|q| q.col_sums.clone()).collect();
                            layout.acc_len = layout.acc_len.max(c.ho * c.wo * cout_g);
                            let epi = Epi::new(l, Some(&sums), wide);
                            if c.is_pointwise() {
                                let gemm = gemms.into_iter().next().expect("one group");
                                (Lin::Gemm { gemm, k }, epi)
                            } else if wide && c.groups == 1 {
                                layout.cols_len = layout.cols_len.max(padded_len(&c));
                                (in_place_conv(c, &l.w, path), epi)
                            } else {
                                layout.cols_len = layout
                                    .cols_len
                                    .max(padded_len(&c) + c.ho * c.wo * k + SLACK);
                                (Lin::Conv { geom: c, gemms }, epi)
                            }
                        }
                    }
                };
                Step::Linear {
                    src: q_in(0),
                    dst,
                    zx: l.x.zero,
                    lin: Box::new(lin),
                    epi,
                    out_len: len(v),
                }
            }
            QNode::MaxPool | QNode::AvgPool => {
                let zero = p_out.zero;
                let channels = *g.value_shape(ins[0]).last().expect("non-empty");
                layout.sum_len = layout.sum_len.max(channels);
                match g.nodes[i].op {
                    Op::GlobalAvgPool => {
                        let c = *g.value_shape(ins[0]).last().expect("non-empty");
                        Step::GlobalAvg {
                            src: q_in(0),
                            dst,
                            rows: len(ins[0]) / c,
                            c,
                            zero,
                        }
                    }
                    _ => Step::Pool {
                        src: q_in(0),
                        dst,
                        geom: g.pool_geom(i),
                        max: matches!(qm.nodes[i], QNode::MaxPool),
                        zero,
                    },
                }
            }
            QNode::Add {
                ma,
                mb,
                shift,
                lo,
                hi,
                ..
            } => {
                let (pa, pb) = (
                    qm.values[ins[0]].expect("uint8"),
                    qm.values[ins[1]].expect("uint8"),
                );
                Step::Add {
                    a: q_in(0),
                    b: q_in(1),
                    dst,
                    z: (pa.zero, pb.zero, p_out.zero),
                    node: (*ma, *mb, *shift, *lo, *hi),
                }
            }
            QNode::Fp32 | QNode::Alias => unreachable!("handled above"),
        };
        steps.push(step);
    }
    let last = nv - 1;
    layout.output = match fbuf[last] {
        Some(f) => f,
        None => {
            let f = new_f(&mut layout, len(last));
            steps.push(Step::Dequantize {
                src: qbuf[last].expect("output held somewhere"),
                dst: f,
                p: qm.values[last].expect("uint8 output"),
            });
            f
        }
    };
    Ok(Plan {
        graph: g.clone(),
        wide,
        steps,
        layout,
    })
}

fn execute(plan: &Plan, m: &mut Mem) {
    #[cfg(target_arch = "x86_64")]
    let wide = plan.wide;
    for step in &plan.steps {
        #[cfg(target_arch = "x86_64")]
        if wide && !matches!(step, Step::Fp32 { .. }) {
            // SAFETY: AVX-512 F/BW/VL/DQ are present (`wide_int8`).
            unsafe { execute_step_avx512(plan, step, m) };
            continue;
        }
        execute_step(plan, step, m);
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// The 16-lane mask of a block starting at `j` of `n` values: all lanes, or those before `n`.
#[inline(always)]
fn lanes_from(j: usize, n: usize) -> u16 {
    if j + 16 <= n {
        0xffff
    } else {
        ((1u32 << (n - j)) - 1) as u16
    }
}

/// Whether the AVX-512 forms of the integer loops and epilogues run here (F, BW, VL, DQ).
fn wide_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The integer loops compiled for AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn execute_step_avx512(plan: &Plan, step: &Step, m: &mut Mem) {
    execute_step(plan, step, m)
}

#[inline(always)]
fn execute_step(plan: &Plan, step: &Step, m: &mut Mem) {
    let batch = m.batch;
    {
        match step {
            Step::Quantize { src, dst, p } => quantize(&m.f[*src], *p, &mut m.q[*dst], plan.wide),
            Step::Dequantize { src, dst, p } => {
                let (x, y) = (&m.q[*src], &mut m.f[*dst]);
                let (s, z) = (p.scale, p.zero);
                y.iter_mut()
                    .zip(x)
                    .for_each(|(f, &q)| *f = (q as i32 - z) as f32 * s);
            }
            Step::Linear {
                src,
                dst,
                zx,
                lin,
                epi,
                out_len,
            } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                linear(
                    &m.q[*src],
                    &mut out,
                    batch,
                    *zx,
                    lin,
                    epi,
                    *out_len,
                    &mut m.cols,
                    &mut m.acc,
                );
                m.q[*dst] = out;
            }
            Step::Pool {
                src,
                dst,
                geom,
                max,
                zero,
            } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                pool_u8(&m.q[*src], batch, geom, *max, *zero, &mut m.sums, &mut out);
                m.q[*dst] = out;
            }
            Step::GlobalAvg {
                src,
                dst,
                rows,
                c,
                zero,
            } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                let x = &m.q[*src];
                let sums = &mut m.sums[..*c];
                for n in 0..batch {
                    sums.iter_mut().for_each(|s| *s = 0);
                    for row in x[n * rows * c..(n + 1) * rows * c].chunks(*c) {
                        sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v as i64);
                    }
                    let off = *rows as i64 * *zero as i64;
                    for (j, s) in sums.iter().enumerate() {
                        out[n * c + j] = avg_round(s - off, *rows, *zero);
                    }
                }
                m.q[*dst] = out;
            }
            Step::Add { a, b, dst, z, node } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                out.iter_mut()
                    .zip(m.q[*a].iter().zip(&m.q[*b]))
                    .for_each(|(o, (&p, &r))| *o = add_q(p, r, z.0, z.1, z.2, *node));
                m.q[*dst] = out;
            }
            Step::Fp32 {
                node,
                ins,
                dst,
                data,
                map,
            } => {
                let mut out = std::mem::take(&mut m.f[*dst]);
                fp32_node(
                    &plan.graph,
                    *node,
                    ins,
                    data,
                    map.as_ref(),
                    m,
                    batch,
                    &mut out,
                );
                m.f[*dst] = out;
            }
        }
    }
}

/// `QParams::quantize` over a slice: 16 at a time with AVX-512 (the same IEEE division,
/// rounding half to even, NaN to the zero point, clamp), the rest one by one.
fn quantize(x: &[f32], p: QParams, y: &mut [u8], wide: bool) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: AVX-512 F/BW/VL are present.
        done = unsafe { quantize_avx512(x, p, y) };
    }
    for (q, &v) in y[done..].iter_mut().zip(&x[done..]) {
        *q = p.quantize(v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_avx512(x: &[f32], p: QParams, y: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len()) / 16 * 16;
    let (s, z) = (_mm512_set1_ps(p.scale), _mm512_set1_ps(p.zero as f32));
    let (lo, hi) = (_mm512_setzero_ps(), _mm512_set1_ps(255.0));
    for i in (0..n).step_by(16) {
        // SAFETY: i + 16 <= n, within both slices.
        unsafe {
            let v = _mm512_div_ps(_mm512_loadu_ps(x.as_ptr().add(i)), s);
            // NaN (unordered with itself) becomes 0, i.e. the zero point.
            let v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
            let v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            let v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, z), lo), hi);
            _mm_storeu_si128(
                y.as_mut_ptr().add(i) as *mut __m128i,
                _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)),
            );
        }
    }
    n
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn linear(
    x: &[u8],
    out: &mut [u8],
    batch: usize,
    zx: i32,
    lin: &Lin,
    epi: &Epi,
    out_len: usize,
    cols: &mut [u8],
    acc: &mut [i32],
) {
    match lin {
        Lin::Gemm { gemm, k } => {
            let rows = x.len() / k;
            let n = gemm.n;
            let acc = &mut acc[..rows * n];
            gemm.run(x, *k, rows, acc, n);
            epi.finish_run(acc, &mut out[..rows * n]);
        }
        Lin::Conv { geom: c, gemms } => {
            let cin_g = c.cin / c.groups;
            let cout_g = c.cout / c.groups;
            let k = c.kh * c.kw * cin_g;
            let pix = c.ho * c.wo;
            let (pad, cols) = cols.split_at_mut(padded_len(c));
            for n in 0..batch {
                let img = &x[n * c.h * c.w * c.cin..(n + 1) * c.h * c.w * c.cin];
                let (src, wp) = pad_image(img, c, zx as u8, pad);
                let y = &mut out[n * out_len..(n + 1) * out_len];
                for (grp, gm) in gemms.iter().enumerate() {
                    im2col_u8(src, wp, c, grp, &mut cols[..pix * k + SLACK]);
                    let acc = &mut acc[..pix * cout_g];
                    gm.run(cols, k, pix, acc, cout_g);
                    if c.groups == 1 {
                        epi.finish_run(acc, y);
                        continue;
                    }
                    for (p, a) in acc.chunks(cout_g).enumerate() {
                        let o = &mut y[p * c.cout + grp * cout_g..p * c.cout + (grp + 1) * cout_g];
                        epi.finish(a, grp * cout_g, o);
                    }
                }
            }
        }
        Lin::InPlace {
            geom: c,
            gemm,
            bases,
            qoff,
        } => {
            let pad = &mut cols[..padded_len(c)];
            for n in 0..batch {
                let img = &x[n * c.h * c.w * c.cin..(n + 1) * c.h * c.w * c.cin];
                let (src, _) = pad_image(img, c, zx as u8, pad);
                let y = &mut out[n * out_len..(n + 1) * out_len];
                let acc = &mut acc[..out_len];
                gemm.run_in_place(src, bases, qoff, acc, c.cout);
                epi.finish_run(acc, y);
            }
        }
        Lin::Depthwise {
            geom: c,
            w,
            tiled,
            span,
            quads,
        } => {
            let (pad, rest) = cols.split_at_mut(padded_len(c));
            let split = &mut rest[..if quads.is_empty() || c.sw != 2 {
                0
            } else {
                split_len(c)
            }];
            for n in 0..batch {
                let img = &x[n * c.h * c.w * c.cin..(n + 1) * c.h * c.w * c.cin];
                let (src, wp) = pad_image(img, c, zx as u8, pad);
                let y = &mut out[n * out_len..(n + 1) * out_len];
                let acc = &mut acc[..out_len];
                if c.sw == 1 && !quads.is_empty() {
                    #[cfg(target_arch = "x86_64")]
                    for oy in 0..c.ho {
                        let row = &mut acc[oy * c.wo * c.cout..(oy + 1) * c.wo * c.cout];
                        // SAFETY: quads are built only where AVX-512 F/BW/VNNI are present
                        // (the VNNI path); the padded image has SLACK bytes past its end.
                        unsafe { dw_vnni_row(src, wp, 0, c, quads, *span, oy, row) };
                    }
                } else if c.sw == 2 && !quads.is_empty() {
                    let (split, wq, half) = split_columns(src, wp, c, split);
                    #[cfg(target_arch = "x86_64")]
                    for oy in 0..c.ho {
                        let row = &mut acc[oy * c.wo * c.cout..(oy + 1) * c.wo * c.cout];
                        // SAFETY: as above; `split` has SLACK bytes past its two halves.
                        unsafe { dw_vnni_row(split, wq, half, c, quads, *span, oy, row) };
                    }
                } else if c.sw == 1 {
                    for oy in 0..c.ho {
                        let row = &mut acc[oy * c.wo * c.cout..(oy + 1) * c.wo * c.cout];
                        depthwise_row_s1(src, wp, c, tiled, *span, oy, row);
                    }
                } else {
                    depthwise_u8(src, wp, c, w, acc);
                }
                epi.finish_run(acc, y);
            }
        }
    }
}

/// Bytes read or written past a copy's end by the fixed-size copies of `im2col_u8` and the
/// channel blocks of `depthwise_u8`: the padded image and the im2col block keep this much
/// slack.
const SLACK: usize = 64;

/// The [`Lin::InPlace`] form of an ungrouped convolution: its weights with each kernel row's
/// `kw * Cin` rows padded to a multiple of 4 (zeros), and the reading offsets.
fn in_place_conv(c: ConvGeom, hwio: &[i8], path: QPath) -> Lin {
    let run = c.kw * c.cin;
    let run4 = run.next_multiple_of(4);
    let k = c.kh * run4;
    let mut w = vec![0i8; k * c.cout];
    for ky in 0..c.kh {
        for j in 0..run {
            let (to, from) = ((ky * run4 + j) * c.cout, (ky * run + j) * c.cout);
            w[to..to + c.cout].copy_from_slice(&hwio[from..from + c.cout]);
        }
    }
    let wp = c.w + c.pad_left + c.pad_right;
    let bases = (0..c.ho * c.wo)
        .map(|p| ((p / c.wo) * c.sh * wp + (p % c.wo) * c.sw) * c.cin)
        .collect();
    let qoff = (0..k / 4)
        .map(|q| {
            let (ky, j) = (q / (run4 / 4), q % (run4 / 4));
            (ky * wp * c.cin + 4 * j) as u32
        })
        .collect();
    Lin::InPlace {
        geom: c,
        gemm: QGemm::new(&w, k, c.cout, 0, c.cout, path),
        bases,
        qoff,
    }
}

/// Bytes of a convolution's zero-point-padded input image, with [`SLACK`].
fn padded_len(c: &ConvGeom) -> usize {
    (c.h + c.pad_top + c.pad_bottom) * (c.w + c.pad_left + c.pad_right) * c.cin + SLACK
}

/// One image with its border of `zero` (the input's zero point: a real 0), in `pad`.
/// Returns it and its row width in pixels.
#[inline(always)]
fn pad_image<'a>(img: &'a [u8], c: &ConvGeom, zero: u8, pad: &'a mut [u8]) -> (&'a [u8], usize) {
    let wp = c.w + c.pad_left + c.pad_right;
    let row = c.w * c.cin;
    let hp = c.h + c.pad_top + c.pad_bottom;
    // Borders only: the top and bottom rows, and each row's two ends.
    pad[..c.pad_top * wp * c.cin].fill(zero);
    pad[(c.pad_top + c.h) * wp * c.cin..hp * wp * c.cin].fill(zero);
    for y in 0..c.h {
        let start = ((y + c.pad_top) * wp) * c.cin;
        let body = start + c.pad_left * c.cin;
        pad[start..body].fill(zero);
        pad[body..body + row].copy_from_slice(&img[y * row..(y + 1) * row]);
        pad[body + row..start + wp * c.cin].fill(zero);
    }
    (pad, wp)
}

/// A depthwise convolution of one (padded) image into int32 sums: per output pixel and
/// block of channels, the taps' `x * w` summed in registers (the zero point's share,
/// `z_x * sum w`, is folded into the epilogue's bias). The last block may reach past the channels:
/// it reads the next pixel's bytes (or the slack) against zero weights and keeps only its
/// own channels.
#[inline(always)]
fn depthwise_u8(src: &[u8], wp: usize, c: &ConvGeom, w: &[i32], y: &mut [i32]) {
    let ch = c.cin;
    for oy in 0..c.ho {
        for ox in 0..c.wo {
            let o = (oy * c.wo + ox) * ch;
            let mut cb = 0;
            while cb + 64 <= ch {
                dw_block::<64>(src, wp, c, w, oy, ox, cb, &mut y[o + cb..o + cb + 64]);
                cb += 64;
            }
            while cb < ch {
                let n = (ch - cb).min(16);
                dw_block::<16>(src, wp, c, w, oy, ox, cb, &mut y[o + cb..o + cb + n]);
                cb += 16;
            }
        }
    }
}

/// One output row of a stride-1 depthwise convolution as a 1-D convolution of the
/// flattened row (`wo * C` values): output value `f` (pixel `f / C`, channel `f % C`) reads
/// input value `f + kx * C` of each kernel row, so whole 64-value blocks span several pixels
/// whatever C is, against weights repeated to `span`. The tail block reads past the row (the
/// next row's bytes, or the slack) and keeps only its own values.
#[inline(always)]
fn depthwise_row_s1(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    tiled: &[i32],
    span: usize,
    oy: usize,
    y: &mut [i32],
) {
    let len = y.len();
    let mut f = 0;
    while f + 64 <= len {
        dw_run::<64>(src, wp, c, tiled, span, oy, f, &mut y[f..f + 64]);
        f += 64;
    }
    while f < len {
        let n = (len - f).min(16);
        dw_run::<16>(src, wp, c, tiled, span, oy, f, &mut y[f..f + n]);
        f += 16;
    }
}

/// Bytes of a stride-2 depthwise convolution's column-split image (two halves of
/// `hp x ceil(wp / 2)` pixels) with [`SLACK`].
fn split_len(c: &ConvGeom) -> usize {
    let (hp, wp) = (
        c.h + c.pad_top + c.pad_bottom,
        c.w + c.pad_left + c.pad_right,
    );
    2 * hp * wp.div_ceil(2) * c.cin + SLACK
}

/// The padded image's even columns, then its odd columns, each half `ceil(wp / 2)` pixels
/// wide, into `out` (for stride-2 depthwise). Returns the halves (and slack), their width and
/// where the odd half starts.
fn split_columns<'a>(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    out: &'a mut [u8],
) -> (&'a [u8], usize, usize) {
    let ch = c.cin;
    let hp = c.h + c.pad_top + c.pad_bottom;
    let wq = wp.div_ceil(2);
    let half = hp * wq * ch;
    for y in 0..hp {
        for x in 0..wp {
            let to = (x % 2) * half + (y * wq + x / 2) * ch;
            let from = (y * wp + x) * ch;
            out[to..to + ch].copy_from_slice(&src[from..from + ch]);
        }
    }
    (&out[..], wq, half)
}

/// The VNNI kernel's weights: for each quad of taps `g` and each 64-value block offset `a`
/// in `span`, four 64-byte vectors `k = 0..4` whose 32-bit lane `4L + i` holds the four taps'
/// weights of value `a + 16L + 4k + i` (the order `unpack` leaves the interleaved inputs in).
fn dw_quads(tiled: &[i32], taps: usize, span: usize) -> Vec<i8> {
    let groups = taps.div_ceil(4);
    let blocks = span / 64;
    let mut q = vec![0i8; groups * blocks * 256];
    for g in 0..groups {
        for b in 0..blocks {
            for k in 0..4 {
                for lane in 0..4 {
                    for i in 0..4 {
                        let value = b * 64 + 16 * lane + 4 * k + i;
                        for t in 0..4 {
                            let tap = 4 * g + t;
                            if tap < taps {
                                let at = (((g * blocks + b) * 4 + k) * 16 + 4 * lane + i) * 4 + t;
                                q[at] = tiled[tap * span + value] as i8;
                            }
                        }
                    }
                }
            }
        }
    }
    q
}

/// One output row of a stride-1 depthwise convolution with `vpdpbusd`: per 64-value block
/// of the flattened row (as [`depthwise_row_s1`]), the inputs of four taps are interleaved
/// byte by byte (`unpack` 8 then 16 bits) so one instruction sums four taps' products per
/// value; the four accumulators come out lane-permuted and are put back in order with a
/// 4 x 4 transpose of 128-bit lanes. The last block reads past the row (into the slack) and
/// keeps only its own values.
///
/// # Safety
/// AVX-512 F/BW/VNNI; `src` holds the padded image plus SLACK bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn dw_vnni_row(
    src: &[u8],
    wp: usize,
    odd: usize,
    c: &ConvGeom,
    quads: &[i8],
    span: usize,
    oy: usize,
    y: &mut [i32],
) {
    use std::arch::x86_64::*;
    let ch = c.cin;
    let taps = c.kh * c.kw;
    let groups = taps.div_ceil(4);
    let blocks = span / 64;
    let len = y.len();
    let top = oy * c.sh;
    // Stride 1: tap (ky, kx) reads the row from column kx. Stride 2 (`odd` > 0): `src` holds
    // the even columns, then from `odd` the odd ones, each `wp` wide, so tap (ky, kx) reads
    // the row from column kx / 2 of its half: consecutive output pixels, consecutive bytes.
    let tap_at = |t: usize| {
        let (ky, kx) = (t / c.kw, t % c.kw);
        if odd == 0 {
            ((top + ky) * wp + kx) * ch
        } else {
            (kx % 2) * odd + ((top + ky) * wp + kx / 2) * ch
        }
    };
    let last = (0..taps).map(tap_at).max().unwrap_or(0) + len.next_multiple_of(64);
    assert!(src.len() >= last && quads.len() == groups * blocks * 256);
    let zero = _mm512_setzero_si512();
    let mut f = 0;
    while f < len {
        let b = (f % span) / 64;
        let mut acc = [_mm512_setzero_si512(); 4];
        for g in 0..groups {
            // SAFETY: every tap's 64 bytes from `f` end by `last` (asserted), the weights'
            // 256 bytes are inside `quads` (asserted size).
            unsafe {
                let ld = |t: usize| {
                    if t < taps {
                        _mm512_loadu_si512(src.as_ptr().add(tap_at(t) + f) as *const __m512i)
                    } else {
                        zero
                    }
                };
                let (x0, x1, x2, x3) = (ld(4 * g), ld(4 * g + 1), ld(4 * g + 2), ld(4 * g + 3));
                let (a, bb) = (_mm512_unpacklo_epi8(x0, x1), _mm512_unpackhi_epi8(x0, x1));
                let (cc, d) = (_mm512_unpacklo_epi8(x2, x3), _mm512_unpackhi_epi8(x2, x3));
                let q = [
                    _mm512_unpacklo_epi16(a, cc),
                    _mm512_unpackhi_epi16(a, cc),
                    _mm512_unpacklo_epi16(bb, d),
                    _mm512_unpackhi_epi16(bb, d),
                ];
                let wq = quads.as_ptr().add((g * blocks + b) * 256);
                for k in 0..4 {
                    let wv = _mm512_loadu_si512(wq.add(64 * k) as *const __m512i);
                    acc[k] = _mm512_dpbusd_epi32(acc[k], q[k], wv);
                }
            }
        }
        // acc[k] lane L holds values 16L + 4k .. 16L + 4k + 3: transpose the 128-bit lanes.
        let t0 = _mm512_shuffle_i32x4(acc[0], acc[1], 0x44);
        let t1 = _mm512_shuffle_i32x4(acc[0], acc[1], 0xee);
        let t2 = _mm512_shuffle_i32x4(acc[2], acc[3], 0x44);
        let t3 = _mm512_shuffle_i32x4(acc[2], acc[3], 0xee);
        let out = [
            _mm512_shuffle_i32x4(t0, t2, 0x88),
            _mm512_shuffle_i32x4(t0, t2, 0xdd),
            _mm512_shuffle_i32x4(t1, t3, 0x88),
            _mm512_shuffle_i32x4(t1, t3, 0xdd),
        ];
        let n = (len - f).min(64);
        if n == 64 {
            for (v, o) in out.iter().enumerate() {
                // SAFETY: f + 64 <= len.
                unsafe { _mm512_storeu_si512(y.as_mut_ptr().add(f + 16 * v) as *mut __m512i, *o) };
            }
        } else {
            let mut tmp = [0i32; 64];
            for (v, o) in out.iter().enumerate() {
                // SAFETY: 16 values into a 64-value local.
                unsafe { _mm512_storeu_si512(tmp.as_mut_ptr().add(16 * v) as *mut __m512i, *o) };
            }
            y[f..f + n].copy_from_slice(&tmp[..n]);
        }
        f += 64;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dw_run<const N: usize>(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    tiled: &[i32],
    span: usize,
    oy: usize,
    f: usize,
    out: &mut [i32],
) {
    let ch = c.cin;
    let mut acc = [0i32; N];
    let at = f % span;
    for ky in 0..c.kh {
        let row = (oy * c.sh + ky) * wp * ch + f;
        for kx in 0..c.kw {
            let s: &[u8; N] = src[row + kx * ch..][..N].try_into().expect("N bytes");
            let t: &[i32; N] = tiled[(ky * c.kw + kx) * span + at..][..N]
                .try_into()
                .expect("N weights");
            for j in 0..N {
                acc[j] += s[j] as i32 * t[j];
            }
        }
    }
    out.copy_from_slice(&acc[..out.len()]);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dw_block<const N: usize>(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    w: &[i32],
    oy: usize,
    ox: usize,
    cb: usize,
    out: &mut [i32],
) {
    let ch = c.cin;
    let chp = ch.next_multiple_of(16);
    let mut acc = [0i32; N];
    for ky in 0..c.kh {
        let row = ((oy * c.sh + ky) * wp + ox * c.sw) * ch + cb;
        for kx in 0..c.kw {
            let s: &[u8; N] = src[row + kx * ch..][..N].try_into().expect("N bytes");
            let t: &[i32; N] = w[(ky * c.kw + kx) * chp + cb..][..N]
                .try_into()
                .expect("N weights");
            for j in 0..N {
                acc[j] += s[j] as i32 * t[j];
            }
        }
    }
    out.copy_from_slice(&acc[..out.len()]);
}

/// im2col of one (padded) image of row width `wp` for group `group`: `ho * wo` rows of
/// `kh * kw * cin_g` taps.
#[inline(always)]
fn im2col_u8(src: &[u8], wp: usize, c: &ConvGeom, group: usize, cols: &mut [u8]) {
    let cin_g = c.cin / c.groups;
    let k = c.kh * c.kw * cin_g;
    // With one group, a kernel row's taps are one contiguous run of kw * cin bytes.
    let (run, runs) = if c.groups == 1 {
        (c.kw * c.cin, 1)
    } else {
        (cin_g, c.kw)
    };
    let pix = c.ho * c.wo;
    assert!(cols.len() >= pix * k + SLACK, "im2col block without slack");
    let last = ((c.ho - 1) * c.sh + c.kh - 1) * wp + (c.wo - 1) * c.sw + c.kw;
    assert!(
        src.len() >= last * c.cin + SLACK,
        "padded image without slack"
    );
    let (sp, cp) = (src.as_ptr(), cols.as_mut_ptr());
    for oy in 0..c.ho {
        for ox in 0..c.wo {
            let row = (oy * c.wo + ox) * k;
            for ky in 0..c.kh {
                let base = ((oy * c.sh + ky) * wp + ox * c.sw) * c.cin + group * cin_g;
                for r in 0..runs {
                    let (from, to) = (base + r * c.cin, row + (ky * runs + r) * run);
                    // SAFETY: `from + run` and `to + run` are in bounds (the geometry), and
                    // a short run copies a whole 16 or 32 bytes into the slack asserted
                    // above. Runs are written in increasing order, so the bytes a short
                    // copy writes past its run are written again by the next run (or lie
                    // in the slack).
                    unsafe {
                        if run <= 16 {
                            std::ptr::copy_nonoverlapping(sp.add(from), cp.add(to), 16);
                        } else if run <= 32 {
                            std::ptr::copy_nonoverlapping(sp.add(from), cp.add(to), 32);
                        } else {
                            std::ptr::copy_nonoverlapping(sp.add(from), cp.add(to), run);
                        }
                    }
                }
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pool_u8(
    x: &[u8],
    batch: usize,
    p: &PoolGeom,
    max: bool,
    zero: i32,
    sums: &mut [i64],
    y: &mut [u8],
) {
    if max && p.c < 16 {
        return max_pool_narrow(x, batch, p, y);
    }
    if max {
        return max_pool_wide(x, batch, p, y);
    }
    let acc = &mut sums[..p.c];
    for n in 0..batch {
        let img = &x[n * p.h * p.w * p.c..(n + 1) * p.h * p.w * p.c];
        for oy in 0..p.ho {
            for ox in 0..p.wo {
                acc.iter_mut().for_each(|a| *a = 0);
                let mut count = 0i32;
                for iy in p.rows(oy) {
                    for ix in p.cols(ox) {
                        let src = &img[(iy * p.w + ix) * p.c..][..p.c];
                        if max {
                            acc.iter_mut()
                                .zip(src)
                                .for_each(|(a, &s)| *a = (*a).max(s as i64));
                        } else {
                            acc.iter_mut().zip(src).for_each(|(a, &s)| *a += s as i64);
                        }
                        count += 1;
                    }
                }
                let o = &mut y[((n * p.ho + oy) * p.wo + ox) * p.c..][..p.c];
                if max {
                    o.iter_mut()
                        .zip(acc.iter())
                        .for_each(|(o, &a)| *o = a as u8);
                } else {
                    let d = p.divisor(oy, ox);
                    let off = count as i64 * zero as i64;
                    o.iter_mut()
                        .zip(acc.iter())
                        .for_each(|(o, &a)| *o = avg_round(a - off, d, zero));
                }
            }
        }
    }
}

/// Max pooling of 16 channels or more, on uint8 directly: each output pixel starts as its
/// window's first pixel and takes the byte-wise maximum with the others (a loop over the
/// channels the compiler vectorises). Exact: max commutes with the monotone dequantization.
#[inline(always)]
fn max_pool_wide(x: &[u8], batch: usize, p: &PoolGeom, y: &mut [u8]) {
    let c = p.c;
    let (img_in, img_out) = (p.h * p.w * c, p.ho * p.wo * c);
    for n in 0..batch {
        let img = &x[n * img_in..(n + 1) * img_in];
        let out = &mut y[n * img_out..(n + 1) * img_out];
        for oy in 0..p.ho {
            let rows = p.rows(oy);
            for (ox, o) in out[oy * p.wo * c..(oy + 1) * p.wo * c]
                .chunks_exact_mut(c)
                .enumerate()
            {
                let cols = p.cols(ox);
                let mut first = true;
                for iy in rows.clone() {
                    let seg = &img[(iy * p.w + cols.start) * c..(iy * p.w + cols.end) * c];
                    for px in seg.chunks_exact(c) {
                        if first {
                            o.copy_from_slice(px);
                            first = false;
                        } else {
                            o.iter_mut().zip(px).for_each(|(o, &v)| *o = (*o).max(v));
                        }
                    }
                }
                if first {
                    // An empty window (padding only): the maximum of nothing, as below.
                    o.fill(0);
                }
            }
        }
    }
}

/// Max pooling of fewer than 16 channels: each pixel's channels as one 16-byte vector (the
/// bytes past its channels belong to the next pixel and are dropped), written 16 bytes at a
/// time left to right so each pixel's extra bytes are overwritten by the next pixel's; the
/// last pixels, whose 16 bytes would pass the end of the input or output, go byte by byte.
#[inline(always)]
fn max_pool_narrow(x: &[u8], batch: usize, p: &PoolGeom, y: &mut [u8]) {
    let c = p.c;
    // Output pixels in order (q), without a division per pixel.
    let pixels = (0..batch).flat_map(|n| {
        (0..p.ho).flat_map(move |oy| {
            let rows = p.rows(oy);
            (0..p.wo).map(move |ox| (n, rows.clone(), ox))
        })
    });
    for (q, (n, rows, ox)) in pixels.enumerate() {
        let base = n * p.h * p.w * c;
        let cols = p.cols(ox);
        let last_in = base + ((rows.end.max(1) - 1) * p.w + cols.end.max(1)) * c;
        let o = q * c;
        if last_in + 16 <= x.len() && o + 16 <= y.len() {
            let mut acc = [0u8; 16];
            for iy in rows {
                for ix in cols.clone() {
                    let at = base + (iy * p.w + ix) * c;
                    let s: &[u8; 16] = x[at..at + 16].try_into().expect("16 bytes");
                    for j in 0..16 {
                        acc[j] = acc[j].max(s[j]);
                    }
                }
            }
            y[o..o + 16].copy_from_slice(&acc);
        } else {
            for j in 0..c {
                let mut m = 0u8;
                for iy in rows.clone() {
                    for ix in cols.clone() {
                        m = m.max(x[base + (iy * p.w + ix) * c + j]);
                    }
                }
                y[o + j] = m;
            }
        }
    }
}

/// An fp32 node on this crate's kernels.
#[allow(clippy::too_many_arguments)]
fn fp32_node(
    g: &Graph,
    i: usize,
    ins: &[usize],
    data: &[Vec<f32>],
    map: Option<&Strided>,
    m: &mut Mem,
    batch: usize,
    out: &mut [f32],
) {
    let x = &m.f[ins[0]];
    let last = *g
        .value_shape(g.node_inputs(i)[0])
        .last()
        .expect("non-empty");
    match &g.nodes[i].op {
        Op::Relu => kernels::relu(x, out),
        Op::Gelu => kernels::gelu(x, out),
        Op::Softmax => kernels::softmax_rows(x, last, out),
        Op::LayerNorm { eps } => kernels::layer_norm_rows(x, last, &data[0], &data[1], *eps, out),
        Op::BatchNorm { .. } => kernels::scale_shift(x, last, &data[0], &data[1], false, out),
        op @ (Op::MaxPool { .. } | Op::AvgPool { .. }) => kernels::pool(
            x,
            batch,
            &g.pool_geom(i),
            matches!(op, Op::MaxPool { .. }),
            out,
        ),
        Op::GlobalAvgPool => {
            let rows = g.value_shape(g.node_inputs(i)[0]).iter().product::<usize>() / last;
            kernels::global_avg_pool(x, batch, rows, last, out)
        }
        Op::Flatten | Op::Reshape { .. } => out.copy_from_slice(x),
        Op::Add => kernels::add(x, &m.f[ins[1]], out),
        // One example at a time on the plan's one-example map.
        Op::Binary { op } => {
            let map = map.expect("planned with its map");
            let (a_len, b_len) = (x.len() / batch, m.f[ins[1]].len() / batch);
            for (n, o) in out.chunks_mut(map.len()).enumerate() {
                let (a, b) = (&x[n * a_len..], &m.f[ins[1]][n * b_len..]);
                kernels::binary(a, b, map, *op, o)
            }
        }
        Op::BinaryConst { op, left, .. } => {
            let map = map.expect("planned with its map");
            let (c, x_len) = (&data[0][..], x.len() / batch);
            for (n, o) in out.chunks_mut(map.len()).enumerate() {
                let xn = &x[n * x_len..];
                let (a, b) = if *left { (c, xn) } else { (xn, c) };
                kernels::binary(a, b, map, *op, o)
            }
        }
        Op::Transpose { .. } => {
            let map = map.expect("planned with its map");
            let x_len = x.len() / batch;
            for (n, o) in out.chunks_mut(map.len()).enumerate() {
                kernels::transpose(&x[n * x_len..], map, o)
            }
        }
        Op::MatMul => {
            let (a, b) = (
                g.value_shape(g.node_inputs(i)[0]),
                g.value_shape(g.node_inputs(i)[1]),
            );
            let geom = MatMulGeom::of(a, b).expect("validated").0;
            let (a_len, b_len) = (a.iter().product(), b.iter().product());
            kernels::matmul(x, &m.f[ins[1]], &geom, a_len, b_len, out)
        }
        op @ greenbench_core::unary_ops!() => kernels::unary(x, op.unary().expect("unary op"), out),
        Op::Mul => {
            let (a_len, b_len) = (
                g.value_shape(g.node_inputs(i)[0]).iter().product(),
                g.value_shape(g.node_inputs(i)[1]).iter().product(),
            );
            kernels::mul_broadcast(x, &m.f[ins[1]], a_len, b_len, out)
        }
        Op::Concat { axis } => {
            let shape = g.out_shape(i);
            let outer = batch * shape[..*axis].iter().product::<usize>();
            let row: usize = shape[*axis..].iter().product();
            let mut offset = 0;
            for (k, &b) in ins.iter().enumerate() {
                let part: usize = g.value_shape(g.node_inputs(i)[k])[*axis..].iter().product();
                kernels::concat_part(&m.f[b], part, offset, row, outer, out);
                offset += part;
            }
        }
        Op::Slice { axis, start, len } => {
            let s = g.value_shape(g.node_inputs(i)[0]);
            let outer = batch * s[..*axis].iter().product::<usize>();
            let inner: usize = s[axis + 1..].iter().product();
            let (row, part) = (s[*axis] * inner, len * inner);
            for o in 0..outer {
                out[o * part..(o + 1) * part]
                    .copy_from_slice(&x[o * row + start * inner..][..part]);
            }
        }
        Op::ChannelShuffle { groups } => kernels::channel_shuffle(x, last, *groups, out),
        Op::Embedding { dim, .. } => kernels::embedding(
            x,
            g.value_shape(g.node_inputs(i)[0])[0],
            &data[0],
            data.get(1).map(|v| v.as_slice()),
            *dim,
            out,
        ),
        Op::Attention { heads, head_dim } => {
            let s = g.value_shape(g.node_inputs(i)[0])[0];
            kernels::attention(x, batch, s, *heads, *head_dim, &mut m.scratch, out)
        }
        Op::Conv2d { .. } | Op::Dense { .. } => unreachable!("refused in plan"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenbench_core::quant::Requant;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The epilogue (AVX-512 where present, and the plain loop) against the reference's
        /// `QLinear::finish`, bit for bit: both requantizers; real multipliers below and above
        /// 1/2 (the one-shift form and the per-channel-shift form); one shift per layer or one
        /// per channel; any channel count and starting channel.
        #[test]
        fn epilogue_matches_the_reference(
            ch in 1usize..70, log2 in -20f64..1.5, spread in 0f64..6.0, uniform in any::<bool>(),
            fp32 in any::<bool>(), zy in 0i32..256, lo in 0u8..128, width in 1u8..128,
            c0 in 0usize..40, seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let reals: Vec<f64> = (0..ch)
                .map(|_| 2f64.powf(log2 - spread * (next() % 1000) as f64 / 1000.0))
                .collect();
            let requant = if uniform {
                Requant::uniform(&reals)
            } else {
                reals.iter().map(|&r| Requant::new(r)).collect()
            };
            let hi = lo.saturating_add(width);
            let l = QLinear {
                w: vec![],
                w_scale: vec![1.0; ch],
                bias: (0..ch).map(|_| (next() % 20_001) as i32 - 10_000).collect(),
                requant,
                scale: reals.iter().map(|&r| r as f32).collect(),
                requantizer: if fp32 { Requantizer::Fp32 } else { Requantizer::Fixed },
                x: QParams { scale: 1.0, zero: 0 },
                y: QParams { scale: 1.0, zero: zy },
                lo,
                hi,
                fused: None,
            };
            // Sums from small to near the int32 limits (less the bias).
            let n = (ch * 3).saturating_sub(c0 % ch).max(1);
            let acc: Vec<i32> = (0..n)
                .map(|_| {
                    let mag = 1i64 << (next() % 31);
                    ((next() as i64).rem_euclid(2 * mag) - mag) as i32
                })
                .collect();
            let c0 = c0 % ch;
            let want: Vec<u8> = acc
                .iter()
                .enumerate()
                .map(|(j, &a)| l.finish(a + l.bias[(c0 + j) % ch], (c0 + j) % ch))
                .collect();
            for wide in [false, wide_int8()] {
                let epi = Epi::new(&l, None, wide);
                let mut got = vec![0u8; n];
                epi.finish(&acc, c0, &mut got);
                prop_assert_eq!(&got, &want, "wide {} requant {:?}", wide, l.requant.first());
            }
        }
    }
}
