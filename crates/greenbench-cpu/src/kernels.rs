//! CPU kernels over flat, batch-major NHWC slices. Each is tested against the plain-loop
//! reference of greenbench-core (see `tests/kernels.rs`). Parallel kernels use rayon and
//! must be called inside the backend's thread pool (`ThreadPool::install`), so the thread
//! count is the one the user asked for.

use greenbench_core::graph::{BinOp, ConvGeom, MatMulGeom, MathFn, PoolGeom, Unary};
use greenbench_core::strided::Strided;
use rayon::prelude::*;

mod aligned;
mod buf;
mod gelu;
mod movement;
pub use aligned::{AVec, Zeroable};
pub use buf::Buf;
#[cfg(target_arch = "x86_64")]
pub(crate) use gelu::avx512::gelu16;
pub use gelu::gelu;
pub use movement::{channel_shuffle, concat_part, shuffle_pixels, transpose};

thread_local! {
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keep this thread's kernels serial (`on`) or let them split across the pool; returns the
/// previous setting. Waking a helper thread costs tens of microseconds on a VM, more than a
/// small step's whole work, so the executor decides per step (see `CpuPrepared`).
pub fn set_serial(on: bool) -> bool {
    SERIAL.replace(on)
}

/// Minimum items per rayon task: unbounded (no split) when serial.
pub(crate) fn min_len() -> usize {
    if SERIAL.get() { usize::MAX } else { 1 }
}

/// Minimum elements per parallel task, so tiny tensors are not split across threads.
const PAR_GRAIN: usize = 16 * 1024;

/// How a GEMM may use threads.
#[derive(Clone, Copy, Debug)]
pub enum Threads {
    /// Single-threaded (the caller is already parallel).
    One,
    /// Split across the current rayon pool's `n` threads.
    Pool(usize),
}

/// A matrix operand: a slice with row and column strides (in elements).
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major, contiguous rows of length `cols` (row stride `cols`).
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.rs + (c - 1) * self.cs < self.data.len()
    }
}

/// `c[m, n] = a[m, k] . b[k, n]`, `c` row-major with row stride `c_rs`.
///
/// The GEMM is the `gemm` crate (0.19, feature `x86-v4`): it dispatches at run time to
/// AVX-512, AVX2/FMA or NEON kernels. Chosen by measurement on the project's machine
/// (shared/PERFORMANCE.md, sgemm 1024^3, 1 thread): 227 GFLOP/s against 98 for ndarray's
/// built-in `dot` (matrixmultiply, AVX2 only), and it takes arbitrary strides, so grouped
/// convolutions and attention heads need no copies.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    c_rs: usize,
    threads: Threads,
) {
    assert!(a.fits(m, k), "gemm: lhs slice too short");
    assert!(b.fits(k, n), "gemm: rhs slice too short");
    assert!(
        m == 0 || n == 0 || (m - 1) * c_rs + n <= c.len(),
        "gemm: dst too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    let par = match threads {
        Threads::Pool(t) if t > 1 => gemm::Parallelism::Rayon(t),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: the asserts above keep every strided access of the three operands inside
    // their slices; `c` is borrowed mutably, `a` and `b` immutably, so they do not alias.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_rs as isize,
            false,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// An activation a convolution or dense step applies in its epilogue, on the value it
/// just computed (no second pass over memory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `max(x, 0)` then `min(_, hi)`: `hi` infinite is ReLU, 6 is ReLU6 (MobileNetV2's).
    Clamp(f32),
    /// `x * clamp(x / 6 + 1/2, 0, 1)` (MobileNetV3's h-swish).
    HardSwish,
    /// `1 / (1 + e^-x)`, as the separate kernel computes it (`0.5 + 0.5 tanh(x / 2)`).
    Sigmoid,
    /// GELU, tanh form ([`gelu`]): the separate kernel and the AMX epilogue on AVX-512 run
    /// the vector form (`x sigmoid(2u)`), the other epilogues the portable formula; the two
    /// agree within 1e-6 of `0.5 |x|` (tested in `kernels::gelu`).
    Gelu,
}

impl Act {
    /// ReLU.
    pub const RELU: Act = Act::Clamp(f32::INFINITY);
    /// The activation on one value: the same formulas as the separate kernels
    /// ([`relu`], [`unary`]).
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::Clamp(hi) => relu_to(v, hi),
            Act::HardSwish => v * (v * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
            Act::Sigmoid => 0.5 + 0.5 * fast_tanh(0.5 * v),
            Act::Gelu => gelu::gelu_one(v),
        }
    }
}

/// The activation a step applies in its epilogue, if any.
pub type Relu = Option<Act>;

/// ReLU, clamped above at `hi`.
#[inline(always)]
pub(crate) fn relu_to(v: f32, hi: f32) -> f32 {
    v.max(0.0).min(hi)
}

/// Epilogue over `rows` rows of `n` values at row stride `rs`: add `bias`, then the activation.
pub fn bias_act(c: &mut [f32], rows: usize, n: usize, rs: usize, bias: Option<&[f32]>, relu: Relu) {
    let level = Simd::detect();
    if bias.is_none() && relu.is_none() {
        return;
    }
    let per_task = (PAR_GRAIN / rs.max(1)).max(1);
    c[..(rows - 1) * rs + n]
        .par_chunks_mut(rs * per_task)
        .with_min_len(min_len())
        .for_each(|chunk| {
            simd(level, || {
                for row in chunk.chunks_mut(rs) {
                    let len = n.min(row.len());
                    bias_act_row(&mut row[..len], bias, relu);
                }
            })
        });
}

/// One row of [`bias_act`]: `row += bias` (as far as both go), then the activation.
#[inline(always)]
pub(crate) fn bias_act_row(row: &mut [f32], bias: Option<&[f32]>, relu: Relu) {
    match (bias, relu) {
        (Some(b), Some(a)) => row
            .iter_mut()
            .zip(b)
            .for_each(|(v, b)| *v = a.apply(*v + b)),
        (Some(b), None) => row.iter_mut().zip(b).for_each(|(v, b)| *v += b),
        (None, Some(a)) => row.iter_mut().for_each(|v| *v = a.apply(*v)),
        (None, None) => {}
    }
}

/// im2col for group `group` of a convolution: `cols` gets `batch * ho * wo` rows of
/// `kh * kw * cin_g` values (taps in (ky, kx, ci) order, matching HWIO weights), with zeros
/// where a tap falls in the padding.
pub fn im2col(x: &[f32], batch: usize, g: &ConvGeom, group: usize, cols: &mut [f32]) {
    let cin_g = g.cin / g.groups;
    let kk = g.kh * g.kw * cin_g;
    let rows = batch * g.ho * g.wo;
    let cols = &mut cols[..rows * kk];
    let per_task = (PAR_GRAIN / kk.max(1)).max(1);
    cols.par_chunks_mut(kk * per_task)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(t, chunk)| {
            for (j, row) in chunk.chunks_mut(kk).enumerate() {
                let r = t * per_task + j;
                let (n, rem) = (r / (g.ho * g.wo), r % (g.ho * g.wo));
                let (oy, ox) = (rem / g.wo, rem % g.wo);
                let img = &x[n * g.h * g.w * g.cin..(n + 1) * g.h * g.w * g.cin];
                for ky in 0..g.kh {
                    let iy = (oy * g.sh + ky) as isize - g.pad_top as isize;
                    let seg = &mut row[ky * g.kw * cin_g..(ky + 1) * g.kw * cin_g];
                    if g.groups == 1 {
                        // Ungrouped: the taps of one kernel row are one contiguous run of
                        // the input row (kw * cin values): copy it at once, zero the padding.
                        if iy < 0 || iy >= g.h as isize {
                            seg.fill(0.0);
                            continue;
                        }
                        let ix0 = (ox * g.sw) as isize - g.pad_left as isize;
                        let lo = (-ix0).clamp(0, g.kw as isize) as usize;
                        let hi = (g.w as isize - ix0).clamp(0, g.kw as isize) as usize;
                        seg[..lo * cin_g].fill(0.0);
                        seg[hi.max(lo) * cin_g..].fill(0.0);
                        if hi > lo {
                            let off = (iy as usize * g.w + (ix0 + lo as isize) as usize) * g.cin;
                            seg[lo * cin_g..hi * cin_g]
                                .copy_from_slice(&img[off..off + (hi - lo) * cin_g]);
                        }
                        continue;
                    }
                    for kx in 0..g.kw {
                        let ix = (ox * g.sw + kx) as isize - g.pad_left as isize;
                        let dst = &mut row[(ky * g.kw + kx) * cin_g..(ky * g.kw + kx + 1) * cin_g];
                        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            dst.fill(0.0);
                        } else {
                            let off = (iy as usize * g.w + ix as usize) * g.cin + group * cin_g;
                            dst.copy_from_slice(&img[off..off + cin_g]);
                        }
                    }
                }
            }
        });
}

/// Weights of a stride-1 depthwise convolution tiled along the output row: for each tap,
/// `wo` copies of its `C` weights, so that a whole output row is one long contiguous
/// multiply-add per tap (see [`depthwise`]). Computed once, in `prepare`.
pub fn tile_depthwise_weights(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    let c = g.cin;
    let mut t = Vec::with_capacity(g.kh * g.kw * g.wo * c);
    for tap in w.chunks(c).take(g.kh * g.kw) {
        for _ in 0..g.wo {
            t.extend_from_slice(tap);
        }
    }
    t
}

/// Depthwise convolution (groups == Cin == Cout), weights `[kh * kw, C]`, with fused bias
/// and ReLU. Memory-bound, so written to stream: with stride 1 along the width and
/// `w_tiled` from [`tile_depthwise_weights`], each tap is one contiguous multiply-add over
/// the whole output row (`wo * C` values, which vectorises however small C is); otherwise
/// one multiply-add over the C channels per pixel and tap.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    x: &[f32],
    batch: usize,
    g: &ConvGeom,
    w: &[f32],
    w_tiled: Option<&[f32]>,
    bias: Option<&[f32]>,
    relu: Relu,
    y: &mut [f32],
) {
    let w_tiled = w_tiled.filter(|_| g.sw == 1);
    let row_len = g.wo * g.cin;
    let simd = Simd::detect();
    y[..batch * g.ho * row_len]
        .par_chunks_mut(row_len)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(r, out_row)| {
            let a = DwRow {
                x,
                g,
                w,
                w_tiled,
                bias,
                relu,
            };
            match simd {
                // SAFETY: the variant is only chosen when the CPU has those features.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => unsafe { depthwise_row_avx512(&a, r, out_row) },
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { depthwise_row_avx2(&a, r, out_row) },
                Simd::Base => depthwise_row(&a, r, out_row),
            }
        });
}

/// The SIMD level kernels compiled twice are dispatched to. greenbench is built for the
/// baseline target (SSE2 on x86-64), so without this the compiler's vectorised loops use
/// 4-lane registers on CPUs with 16-lane ones.
#[derive(Clone, Copy)]
pub(crate) enum Simd {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Base,
}

impl Simd {
    pub(crate) fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        Simd::Base
    }
}

/// Run `f` compiled for the best SIMD level of this CPU: `f` is inlined into a function with
/// that target feature, so its loops vectorise with the wide registers.
#[inline(always)]
pub(crate) fn simd<R>(level: Simd, f: impl FnOnce() -> R) -> R {
    match level {
        // SAFETY: the level is only chosen when the CPU has those features.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { with_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { with_avx2(f) },
        Simd::Base => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Arguments of one depthwise output row.
struct DwRow<'a> {
    x: &'a [f32],
    g: &'a ConvGeom,
    w: &'a [f32],
    w_tiled: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    relu: Relu,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_row_avx512(a: &DwRow<'_>, r: usize, out_row: &mut [f32]) {
    depthwise_row(a, r, out_row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_row_avx2(a: &DwRow<'_>, r: usize, out_row: &mut [f32]) {
    depthwise_row(a, r, out_row)
}

/// One output row `r` (= n * ho + oy) of a depthwise convolution.
#[inline(always)]
fn depthwise_row(a: &DwRow<'_>, r: usize, out_row: &mut [f32]) {
    let DwRow {
        x,
        g,
        w,
        w_tiled,
        bias,
        relu,
    } = *a;
    let c = g.cin;
    let row_len = g.wo * c;
    let (n, oy) = (r / g.ho, r % g.ho);
    let img = &x[n * g.h * g.w * c..(n + 1) * g.h * g.w * c];
    match bias {
        Some(b) => out_row.chunks_mut(c).for_each(|o| o.copy_from_slice(b)),
        None => out_row.fill(0.0),
    }
    let iy0 = (oy * g.sh) as isize - g.pad_top as isize;
    for ky in 0..g.kh {
        let iy = iy0 + ky as isize;
        if iy < 0 || iy >= g.h as isize {
            continue;
        }
        let in_row = &img[iy as usize * g.w * c..(iy as usize + 1) * g.w * c];
        for kx in 0..g.kw {
            if let Some(wt) = w_tiled {
                // ox valid when 0 <= ox + kx - pad_left < w.
                let lo = g.pad_left.saturating_sub(kx).min(g.wo);
                let hi = (g.w + g.pad_left).saturating_sub(kx).min(g.wo).max(lo);
                if hi == lo {
                    continue;
                }
                let shift = lo + kx - g.pad_left;
                let src = &in_row[shift * c..(shift + hi - lo) * c];
                let tap = (ky * g.kw + kx) * row_len;
                let wk = &wt[tap + lo * c..tap + hi * c];
                let dst = &mut out_row[lo * c..hi * c];
                for ((d, s), k) in dst.iter_mut().zip(src).zip(wk) {
                    *d += s * k;
                }
            } else {
                let wk = &w[(ky * g.kw + kx) * c..(ky * g.kw + kx + 1) * c];
                for ox in 0..g.wo {
                    let ix = (ox * g.sw + kx) as isize - g.pad_left as isize;
                    if ix < 0 || ix >= g.w as isize {
                        continue;
                    }
                    let src = &in_row[ix as usize * c..(ix as usize + 1) * c];
                    let dst = &mut out_row[ox * c..(ox + 1) * c];
                    for ((d, s), k) in dst.iter_mut().zip(src).zip(wk) {
                        *d += s * k;
                    }
                }
            }
        }
    }
    if let Some(a) = relu {
        out_row.iter_mut().for_each(|v| *v = a.apply(*v));
    }
}

/// The gathers of a max pool over few channels whose windows lie inside the image, run a row
/// at a time in registers (`direct::pool` in fp32, `int8::pool` in uint8; both make them at
/// plan time): how many output pixels a step takes (`per`: their values fill at most `N`
/// lanes, their windows' columns span at most `table` input values) and, per window column
/// `kx`, the input position of each output value (lane `i`: pixel `i / c`, channel `i % c`; 0
/// past `per * c`) from the step's first window (columns past `kw` unused). `None` where that
/// does not fit (padded or partial windows, more than `max_c` channels, `kw` above 8).
pub(crate) fn narrow_pool_gathers<T: TryFrom<usize> + Default + Copy, const N: usize>(
    p: &PoolGeom,
    table: usize,
    max_c: usize,
) -> Option<(usize, [[T; N]; 8])> {
    let c = p.c;
    if c == 0 || c > max_c || !p.is_unpadded() || p.kw > 8 || p.kw * c > table {
        return None;
    }
    let per = (1..=N)
        .take_while(|&n| n * c <= N && ((n - 1) * p.sw + p.kw) * c <= table)
        .last()?;
    let at = |kx: usize, i: usize| ((i / c) * p.sw + kx) * c + i % c;
    // Fixed-size tables (eight window columns at most), held inline by the plans' steps.
    let cols = std::array::from_fn(|kx| {
        std::array::from_fn(|i| match kx < p.kw && i < per * c {
            true => T::try_from(at(kx, i))
                .ok()
                .expect("an index inside the table"),
            false => T::default(),
        })
    });
    Some((per, cols))
}

/// Max or average pooling; windows clipped to the image (padding never wins a max and adds
/// nothing to a sum; the average divides by [`PoolGeom::divisor`]).
pub fn pool(x: &[f32], batch: usize, p: &PoolGeom, max: bool, y: &mut [f32]) {
    let level = Simd::detect();
    let row_len = p.wo * p.c;
    y[..batch * p.ho * row_len]
        .par_chunks_mut(row_len)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(r, out_row)| {
            simd(level, || {
                let (n, oy) = (r / p.ho, r % p.ho);
                let img = &x[n * p.h * p.w * p.c..(n + 1) * p.h * p.w * p.c];
                for ox in 0..p.wo {
                    let acc = &mut out_row[ox * p.c..(ox + 1) * p.c];
                    acc.fill(if max { f32::NEG_INFINITY } else { 0.0 });
                    for iy in p.rows(oy) {
                        for ix in p.cols(ox) {
                            let off = (iy * p.w + ix) * p.c;
                            let src = &img[off..off + p.c];
                            if max {
                                acc.iter_mut().zip(src).for_each(|(a, s)| *a = a.max(*s));
                            } else {
                                acc.iter_mut().zip(src).for_each(|(a, s)| *a += s);
                            }
                        }
                    }
                    if !max {
                        let inv = 1.0 / p.divisor(oy, ox) as f32;
                        acc.iter_mut().for_each(|a| *a *= inv);
                    }
                }
            })
        });
}

/// Mean over `rows` rows of `c` channels, per example.
pub fn global_avg_pool(x: &[f32], batch: usize, rows: usize, c: usize, y: &mut [f32]) {
    let level = Simd::detect();
    let inv = 1.0 / rows as f32;
    y[..batch * c]
        .par_chunks_mut(c)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(n, out)| {
            simd(level, || {
                out.fill(0.0);
                for row in x[n * rows * c..(n + 1) * rows * c].chunks(c) {
                    out.iter_mut().zip(row).for_each(|(a, s)| *a += s);
                }
                out.iter_mut().for_each(|a| *a *= inv);
            })
        });
}

/// Elementwise map in parallel chunks.
fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let level = Simd::detect();
    y[..x.len()]
        .par_chunks_mut(PAR_GRAIN)
        .zip(x.par_chunks(PAR_GRAIN))
        .with_min_len(min_len())
        .for_each(|(o, i)| simd(level, || o.iter_mut().zip(i).for_each(|(o, i)| *o = f(*i))));
}

/// max(x, 0).
pub fn relu(x: &[f32], y: &mut [f32]) {
    map(x, y, |v| v.max(0.0));
}

/// An elementwise activation of the [`Unary`] family, each variant its own vectorisable
/// loop: tanh and the sigmoid (0.5 (1 + tanh(x / 2))) on [`fast_tanh`]; the exact GELU on
/// [`fast_erf`].
pub fn unary(x: &[f32], f: Unary, y: &mut [f32]) {
    match f {
        Unary::Sigmoid => map(x, y, |v| 0.5 + 0.5 * fast_tanh(0.5 * v)),
        Unary::HardSigmoid { alpha, beta } => {
            map(x, y, move |v| (alpha * v + beta).clamp(0.0, 1.0))
        }
        Unary::HardSwish => map(x, y, |v| v * (v * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
        Unary::Clip { min, max } => map(x, y, move |v| v.max(min).min(max)),
        Unary::Tanh => map(x, y, fast_tanh),
        Unary::LeakyRelu { alpha } => map(x, y, move |v| if v >= 0.0 { v } else { alpha * v }),
        Unary::GeluErf => map(x, y, |v| {
            0.5 * v * (1.0 + fast_erf(v * std::f32::consts::FRAC_1_SQRT_2))
        }),
        // ONNX's math operators, one loop each (the function chosen once, not per element).
        Unary::Math(f) => match f {
            MathFn::Sqrt => map(x, y, f32::sqrt),
            MathFn::Reciprocal => map(x, y, |v| 1.0 / v),
            MathFn::Neg => map(x, y, |v| -v),
            MathFn::Abs => map(x, y, f32::abs),
            MathFn::Exp => map(x, y, f32::exp),
            MathFn::Log => map(x, y, f32::ln),
            MathFn::RoundBf16 => map(x, y, greenbench_core::bf16::round),
            MathFn::Sign | MathFn::Erf | MathFn::Pow { .. } => map(x, y, move |v| f.eval32(v)),
        },
    }
}

/// `y[n, k] = a[n, k] * b[n, k mod b_len]` for examples of `a_len` values (`b` broadcast
/// over each example: a per-channel scale when `b_len` is the channel count).
pub fn mul_broadcast(a: &[f32], b: &[f32], a_len: usize, b_len: usize, y: &mut [f32]) {
    let level = Simd::detect();
    y[..a.len()]
        .par_chunks_mut(a_len)
        .zip(a.par_chunks(a_len))
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(n, (o, x))| {
            let s = &b[n * b_len..(n + 1) * b_len];
            simd(level, || {
                for (o, x) in o.chunks_mut(b_len).zip(x.chunks(b_len)) {
                    o.iter_mut()
                        .zip(x)
                        .zip(s)
                        .for_each(|((o, x), s)| *o = x * s);
                }
            })
        });
}

/// `y = a op b` with numpy broadcasting, over the map `p` (`Strided::binary`): each run is a
/// loop the compiler vectorises when both operands are contiguous along it or one is a scalar
/// there (the per-channel and per-row broadcasts), a strided loop otherwise.
pub fn binary(a: &[f32], b: &[f32], p: &Strided, op: BinOp, y: &mut [f32]) {
    match op {
        BinOp::Add => binary_with(a, b, p, y, |x, z| x + z),
        BinOp::Sub => binary_with(a, b, p, y, |x, z| x - z),
        BinOp::Mul => binary_with(a, b, p, y, |x, z| x * z),
        BinOp::Div => binary_with(a, b, p, y, |x, z| x / z),
    }
}

#[inline(always)]
fn binary_with(a: &[f32], b: &[f32], p: &Strided, y: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    let (n, sa, sb) = (p.run(), p.inner(0), p.inner(1));
    simd(Simd::detect(), || {
        p.runs(|o, offs| {
            let out = &mut y[o..o + n];
            match (sa, sb) {
                (1, 1) => out
                    .iter_mut()
                    .zip(&a[offs[0]..offs[0] + n])
                    .zip(&b[offs[1]..offs[1] + n])
                    .for_each(|((o, &x), &z)| *o = f(x, z)),
                (1, 0) => {
                    let z = b[offs[1]];
                    out.iter_mut()
                        .zip(&a[offs[0]..offs[0] + n])
                        .for_each(|(o, &x)| *o = f(x, z));
                }
                (0, 1) => {
                    let x = a[offs[0]];
                    out.iter_mut()
                        .zip(&b[offs[1]..offs[1] + n])
                        .for_each(|(o, &z)| *o = f(x, z));
                }
                _ => {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = f(a[offs[0] + j * sa], b[offs[1] + j * sb]);
                    }
                }
            }
        })
    })
}

/// `batch` examples of the batched product `a x b` (`g`: per example; `a_len`, `b_len`: the
/// operands' per-example lengths), one GEMM per matrix, the matrices split across the pool.
pub fn matmul(a: &[f32], b: &[f32], g: &MatMulGeom, a_len: usize, b_len: usize, y: &mut [f32]) {
    let level = Simd::detect();
    let per = g.m * g.n;
    y.par_chunks_mut(per)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(t, out)| {
            let (ex, mt) = (t / g.mats, t % g.mats);
            let lhs = &a[ex * a_len + mt * g.a_step..];
            let rhs = &b[ex * b_len + mt * g.b_step..];
            simd(level, || {
                sgemm(
                    g.m,
                    g.n,
                    g.k,
                    Mat::rows(lhs, g.k),
                    Mat::rows(rhs, g.n),
                    out,
                    g.n,
                    Threads::One,
                )
            })
        });
}

/// erf by Abramowitz & Stegun 7.1.28, `1 - (1 + a1 x + ... + a6 x^6)^-16` for x >= 0, odd
/// in x: a polynomial, a division and four squarings, branch-free, so it vectorises (libm's
/// `erff` does not). Error against f64 erf below 2e-6 absolute (tested; 3e-7 in exact
/// arithmetic, the rest is f32 rounding through the 16th power), so only for the GELU, where
/// `1 + erf` absorbs it.
#[inline]
pub fn fast_erf(x: f32) -> f32 {
    const A: [f32; 6] = [
        0.070_523_08,
        0.042_282_01,
        0.009_270_527,
        0.000_152_014_3,
        0.000_276_567_2,
        0.000_043_063_8,
    ];
    let a = x.abs().min(6.0);
    let p = 1.0 + a * (A[0] + a * (A[1] + a * (A[2] + a * (A[3] + a * (A[4] + a * A[5])))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let r = 1.0 - 1.0 / (p8 * p8);
    r.copysign(x)
}

/// The coefficients of [`fast_tanh`] (Eigen, Core/MathFunctionsImpl.h), shared with the
/// AVX-512 GELU.
pub(crate) mod tanh_coef {
    pub(crate) const CLAMP: f32 = 7.905_311;
    pub(crate) const A1: f32 = 4.893_524_6e-3;
    pub(crate) const A3: f32 = 6.372_619_3e-4;
    pub(crate) const A5: f32 = 1.485_722_4e-5;
    pub(crate) const A7: f32 = 5.122_297e-8;
    pub(crate) const A9: f32 = -8.604_672e-11;
    pub(crate) const A11: f32 = 2.000_188e-13;
    pub(crate) const A13: f32 = -2.760_768_5e-16;
    pub(crate) const B0: f32 = 4.893_525e-3;
    pub(crate) const B2: f32 = 2.268_434_6e-3;
    pub(crate) const B4: f32 = 1.185_347_1e-4;
    pub(crate) const B6: f32 = 1.198_258_4e-6;
}

/// tanh as a 13/6 rational function on [-7.9053, 7.9053] (beyond, tanh is 1 in f32): the
/// coefficients of Eigen's `generic_fast_tanh_float`. Branch-free, so it vectorises; libm's
/// `tanhf` took 74 % of tiny-transformer's time at batch 1 (perf, 2-core dev VM). Error
/// against f64 tanh is below 2e-6 absolute (tested).
#[inline]
pub fn fast_tanh(x: f32) -> f32 {
    use tanh_coef::*;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = x2 * A13 + A11;
    p = x2 * p + A9;
    p = x2 * p + A7;
    p = x2 * p + A5;
    p = x2 * p + A3;
    p = x2 * p + A1;
    p *= x;
    let mut q = x2 * B6 + B4;
    q = x2 * q + B2;
    q = x2 * q + B0;
    p / q
}

/// a + b.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    y[..a.len()]
        .par_chunks_mut(PAR_GRAIN)
        .zip(a.par_chunks(PAR_GRAIN).zip(b.par_chunks(PAR_GRAIN)))
        .with_min_len(min_len())
        .for_each(|(o, (p, q))| {
            o.iter_mut()
                .zip(p.iter().zip(q))
                .for_each(|(o, (p, q))| *o = p + q)
        });
}

/// Unfolded inference batch norm as `x * scale + shift` over the last axis of length `c =
/// scale.len()`, read from rows `stride` apart in `x` (`c`, or more when `x` is the first
/// channels of a wider buffer).
pub fn scale_shift(
    x: &[f32],
    stride: usize,
    scale: &[f32],
    shift: &[f32],
    relu: bool,
    y: &mut [f32],
) {
    let (c, rows) = (scale.len(), x.len() / stride);
    y[..rows * c]
        .par_chunks_mut(c)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(r, o)| scale_shift_rows(&x[r * stride..], stride, scale, shift, relu, o));
}

/// [`scale_shift`] of whole rows of `scale.len()` values, `stride` apart in `x`, on the
/// calling thread: as many rows as `y` holds.
pub fn scale_shift_rows(
    x: &[f32],
    stride: usize,
    scale: &[f32],
    shift: &[f32],
    relu: bool,
    y: &mut [f32],
) {
    let c = scale.len();
    for (r, o) in y.chunks_exact_mut(c).enumerate() {
        let i = &x[r * stride..r * stride + c];
        for j in 0..c {
            o[j] = i[j] * scale[j] + shift[j];
        }
        if relu {
            o.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: only used for disjoint writes (see `attention` and the `direct` kernels).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_matches_f64_tanh() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // [-20, 20]
            let e = (fast_tanh(x) as f64 - (x as f64).tanh()).abs();
            worst = worst.max(e);
        }
        assert!(worst < 2e-6, "max abs error {worst}");
        assert_eq!(fast_tanh(f32::INFINITY), fast_tanh(100.0));
    }

    #[test]
    fn fast_erf_matches_f64_erf() {
        let mut worst = 0f64;
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-4; // [-10, 10]
            let e = (fast_erf(x) as f64 - libm::erf(x as f64)).abs();
            worst = worst.max(e);
        }
        assert!(worst < 2e-6, "max abs error {worst}");
        assert_eq!(fast_erf(f32::INFINITY), 1.0);
        assert_eq!(fast_erf(f32::NEG_INFINITY), -1.0);
    }
}
