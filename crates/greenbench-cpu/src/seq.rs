//! Kernels over token sequences (rows of a `[tokens, features]` activation): row softmax,
//! layer norm, token and position embedding, and the multi-head attention core. The
//! transformer's own kernels; they use the general ones (`kernels`) and nothing else.

use crate::kernels::{Mat, SendPtr, Simd, Threads, min_len, sgemm, simd};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod rows_avx512;
#[cfg(target_arch = "x86_64")]
mod small_gemm;

/// Sums and maxima in 16 lanes, then across them: LLVM keeps a sequential f32 sum scalar
/// (reordering it changes the rounding, which it may not do on its own), so these are
/// written in the order a vector unit takes; the result differs from the sequential sum by
/// rounding only. (softmax, layer norm and attention rows: scalar sums, libm's `expf` and
/// the max took ~40 % of tiny-transformer at batch 32, perf on the dev VM, 2026-12-04.)
#[inline(always)]
fn lanes(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for j in 0..16 {
            acc[j] = f(acc[j], c[j]);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    acc.iter().fold(tail, |a, &v| f(a, v))
}

#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    lanes(x, 0.0, |a, v| a + v)
}

/// The largest value (NaN if any is NaN, as the reference's max propagates it).
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    lanes(x, f32::NEG_INFINITY, |a, v| {
        if v > a || v.is_nan() { v } else { a }
    })
}

#[inline(always)]
fn lane_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for j in 0..16 {
            let d = c[j] - mean;
            acc[j] += d * d;
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    tail + acc.iter().sum::<f32>()
}

/// e^x by Cephes' `expf` (range reduction by ln 2 in two parts, a degree-6 polynomial,
/// 2^n built in the exponent bits): within 2 ulp of the true value (tested), branch-free,
/// so it vectorises (libm's `expf` is a call per value). Below -87.3 (where 2^n would leave
/// the normal range) it is 0, as exp(-inf) is; NaN stays NaN.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.3, 88.3);
    // Nearest integer by the 1.5 * 2^23 trick (SSE2 arithmetic; `floor` is a libm call on
    // the x86-64 baseline, which a closure outside the AVX-512 wrapper gets).
    const ROUND: f32 = 12_582_912.0;
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    // n as an integer from t's low mantissa bits (t = 1.5 * 2^23 + n exactly, |n| <= 128):
    // `n as i32` saturates, which LLVM did lane by lane in scalar code (`vucomiss` and
    // `vpinsrd` per value, the hottest instructions of the attention's softmax in perf).
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = (p * r * r + r + 1.0) * f32::from_bits(((ni + 127) << 23) as u32);
    if x.is_nan() {
        x
    } else if x < -87.3 {
        0.0
    } else if x > 88.3 {
        f32::INFINITY
    } else {
        y
    }
}

/// Softmax of each row of length `n`.
pub fn softmax_rows(x: &[f32], n: usize, y: &mut [f32]) {
    let level = Simd::detect();
    y[..x.len()]
        .par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .with_min_len(min_len())
        .for_each(|(o, i)| {
            simd(
                level,
                #[inline(always)]
                || softmax_row(i, o),
            )
        });
}

// Row functions are inlined into `simd`'s target-feature wrapper (a closure or function
// left out of line is compiled for the x86-64 baseline: 4-lane SSE2).
#[inline(always)]
fn softmax_row(i: &[f32], o: &mut [f32]) {
    let m = lane_max(i);
    for (o, &v) in o.iter_mut().zip(i) {
        *o = fast_exp(v - m);
    }
    let s = lane_sum(o);
    let inv = 1.0 / s;
    o.iter_mut().for_each(|v| *v *= inv);
}

/// Layer norm of each row of length `n`, with affine `gamma`, `beta`.
pub fn layer_norm_rows(x: &[f32], n: usize, gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32]) {
    let level = Simd::detect();
    // Groups of rows per task: the AVX-512 form interleaves a group's rows in each pass.
    y[..x.len()]
        .par_chunks_mut(n * ROW_GROUP)
        .zip(x.par_chunks(n * ROW_GROUP))
        .with_min_len(min_len())
        .for_each(|(o, i)| match level {
            // SAFETY: the level is chosen only on CPUs with AVX-512F; `o` holds the group's
            // rows, `gamma` and `beta` `n` values (`layer_norm_group` asserts it).
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { rows_avx512::layer_norm_group(i, n, gamma, beta, eps, o) },
            _ => simd(
                level,
                #[inline(always)]
                || {
                    for (o, i) in o.chunks_mut(n).zip(i.chunks(n)) {
                        layer_norm_row(i, gamma, beta, eps, o)
                    }
                },
            ),
        });
}

#[inline(always)]
fn layer_norm_row(i: &[f32], gamma: &[f32], beta: &[f32], eps: f32, o: &mut [f32]) {
    let n = i.len();
    let mean = lane_sum(i) / n as f32;
    let var = lane_sq_dev(i, mean) / n as f32;
    let inv = 1.0 / (var + eps).sqrt();
    // Zipped, not indexed: four indexed slices kept their bounds checks and the loop scalar
    // (`vmulss`/`vaddss` in perf annotate).
    assert!(
        gamma.len() >= n && beta.len() >= n,
        "layer norm: affine too short"
    );
    for (((o, &x), &g), &b) in o.iter_mut().zip(i).zip(gamma).zip(beta) {
        *o = (x - mean) * inv * g + b;
    }
}

/// Rows of attention scores (`s` keys each, row `r` the query `r`): each scaled, the key bias
/// added, keys after the query's own masked when `causal`, then its softmax. [`ROW_GROUP`]
/// rows go through each pass before the next pass starts, so one row's exponentials need not
/// wait on the previous row's sum and scaling (tiny-transformer b32 fp32 118.97 -> 113.80 µs
/// against row by row, three alternating rounds). The same operations on each value as row
/// by row, so the same results. (On AVX-512 the intrinsics form runs instead:
/// `rows_avx512::softmax_rows_unnormalized`.)
#[inline(always)]
fn attention_rows(
    scores: &mut [f32],
    s: usize,
    scale: f32,
    key_bias: Option<&[f32]>,
    causal: bool,
) {
    for (g, block) in scores.chunks_mut(ROW_GROUP * s).enumerate() {
        let mut m = [0f32; ROW_GROUP];
        for (i, row) in block.chunks_mut(s).enumerate() {
            match key_bias {
                Some(b) => row
                    .iter_mut()
                    .zip(b)
                    .for_each(|(v, &k)| *v = *v * scale + k),
                None => row.iter_mut().for_each(|v| *v *= scale),
            }
            if causal {
                // Keys after the query's own row get no weight: exp(-inf - m) = 0.
                let r = g * ROW_GROUP + i;
                row[r + 1..].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            }
            m[i] = lane_max(row);
        }
        for (row, &m) in block.chunks_mut(s).zip(&m) {
            row.iter_mut().for_each(|v| *v = fast_exp(*v - m));
        }
        for row in block.chunks_mut(s) {
            let inv = 1.0 / lane_sum(row);
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Rows of scores per pass of [`attention_rows`].
const ROW_GROUP: usize = 8;

/// Token embedding plus optional positions: `tokens` holds `batch * seq` ids.
pub fn embedding(
    tokens: &[f32],
    seq: usize,
    table: &[f32],
    pos: Option<&[f32]>,
    dim: usize,
    y: &mut [f32],
) {
    y[..tokens.len() * dim]
        .par_chunks_mut(dim)
        .zip(tokens.par_iter())
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(r, (o, &t))| {
            let row = &table[t as usize * dim..(t as usize + 1) * dim];
            match pos {
                Some(p) => {
                    let s = r % seq;
                    let pr = &p[s * dim..(s + 1) * dim];
                    o.iter_mut()
                        .zip(row.iter().zip(pr))
                        .for_each(|(o, (a, b))| *o = a + b);
                }
                None => o.copy_from_slice(row),
            }
        });
}

/// Multi-head self-attention core over fused QKV `[batch * s, 3 * h * d]` into
/// `[batch * s, h * d]`. `scratch` holds `batch * h * s * s` scores. Each (example, head)
/// is one task: two GEMMs with strided operands (no copies) and a row softmax between.
/// `bias` (`batch * s` values, a padding mask) is added to each example's scores at each key.
pub fn attention(
    qkv: &[f32],
    batch: usize,
    dims: (usize, usize, usize),
    causal: bool,
    bias: Option<&[f32]>,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let (s, h, _) = dims;
    let yp = SendPtr(y.as_mut_ptr());
    let y_len = y.len();
    scratch[..batch * h * s * s]
        .par_chunks_mut(s * s)
        .enumerate()
        .with_min_len(min_len())
        // SAFETY: `y` is `y_len` long; each task writes its own elements (`attention_task`).
        .for_each(|(t, scores)| unsafe {
            attention_task(qkv, dims, causal, bias, t, scores, yp.get(), y_len)
        });
}

/// Tasks `tasks` of [`attention`] (task `t` = example `t / h`, head `t % h`), one after the
/// other on this thread: a team's share of the step. `scratch` holds `s * s` values per task
/// (indexed by task), `y` the whole output.
///
/// # Safety
/// `scratch` and `y` point to [`attention`]'s scratch and output (`y_len` values); concurrent
/// calls take disjoint task ranges.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn attention_tasks(
    qkv: &[f32],
    dims: (usize, usize, usize),
    causal: bool,
    bias: Option<&[f32]>,
    tasks: std::ops::Range<usize>,
    scratch: *mut f32,
    y: *mut f32,
    y_len: usize,
) {
    let ss = dims.0 * dims.0;
    for t in tasks {
        // SAFETY: task t's scores are its own `s * s` values of the scratch.
        let scores = unsafe { std::slice::from_raw_parts_mut(scratch.add(t * ss), ss) };
        unsafe { attention_task(qkv, dims, causal, bias, t, scores, y, y_len) };
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// A head's `Kᵀ / √d` (`d` rows of `s` keys) and its `s` softmax sums for
    /// [`attention_task_avx512`]: made on a thread's first attention and kept (grown when a
    /// longer sequence needs it).
    static HEAD_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`attention_task`] on AVX-512: `Kᵀ` copied out of the head's key columns with the scale
/// `1/√d` applied, `Q Kᵀ` on [`small_gemm::gemm`]'s register tiles, the score rows'
/// exponentials ([`rows_avx512::softmax_rows_unnormalized`]), `P V` on the tiles again, and
/// each output row divided by its row's sum (`d` values a row instead of `s`). Against the
/// portable form the scale is applied to the keys before the product and the division after
/// it: the same values up to rounding.
///
/// # Safety
/// As [`attention_task`]; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn attention_task_avx512(
    qkv: &[f32],
    (s, h, d): (usize, usize, usize),
    causal: bool,
    bias: Option<&[f32]>,
    t: usize,
    scores: &mut [f32],
    y: *mut f32,
    y_len: usize,
) {
    use std::arch::x86_64::*;
    let stride = 3 * h * d;
    let (n, hh) = (t / h, t % h);
    let base = n * s * stride;
    // The head's Q, K and V: rows `stride` apart, `d` values each.
    let (q, k, v) = (base + hh * d, base + (h + hh) * d, base + (2 * h + hh) * d);
    assert!(
        v + (s - 1) * stride + d <= qkv.len(),
        "head past the qkv rows"
    );
    assert!(scores.len() >= s * s);
    let off = n * s * h * d + hh * d;
    assert!(off + (s - 1) * h * d + d <= y_len);
    let scale = 1.0 / (d as f32).sqrt();
    HEAD_SCRATCH.with_borrow_mut(|buf| {
        if buf.len() < s * d + s {
            buf.resize(s * d + s, 0.0);
        }
        let (kt, sums) = buf.split_at_mut(s * d);
        // Column c of K (16 keys a gather), scaled, is row c of Kᵀ.
        assert!(
            s * stride < i32::MAX as usize,
            "key offsets fit the gather's indices"
        );
        let lanes = _mm512_mullo_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(stride as i32),
        );
        let sc = _mm512_set1_ps(scale);
        for j0 in (0..s).step_by(16) {
            let m = crate::mask::lane_mask(s, j0 / 16);
            let idx = _mm512_add_epi32(lanes, _mm512_set1_epi32((j0 * stride) as i32));
            for c in 0..d {
                // SAFETY: the lanes of `m` address keys j0.. < s, value c < d of each: inside
                // `qkv` (checked above); row c of `Kᵀ` has `s` values.
                unsafe {
                    let x = _mm512_mask_i32gather_ps::<4>(
                        _mm512_setzero_ps(),
                        m,
                        idx,
                        qkv.as_ptr().add(k + c),
                    );
                    _mm512_mask_storeu_ps(kt.as_mut_ptr().add(c * s + j0), m, _mm512_mul_ps(x, sc));
                }
            }
        }
        // SAFETY: Q's `s` rows of `d` lie in `qkv` (checked above), `Kᵀ` is `d x s`, the
        // scores `s x s`.
        unsafe {
            small_gemm::gemm(
                (s, s, d),
                qkv.as_ptr().add(q),
                stride,
                kt.as_ptr(),
                s,
                scores.as_mut_ptr(),
                s,
            )
        };
        let key_bias = bias.map(|b| &b[n * s..(n + 1) * s]);
        // SAFETY: AVX-512F; `scores` holds `s` rows of `s`, the key bias `s` values, `sums`
        // `s` values.
        unsafe {
            rows_avx512::softmax_rows_unnormalized(&mut scores[..s * s], s, key_bias, causal, sums)
        };
        // SAFETY: task (n, hh) writes only rows n*s..(n+1)*s, columns hh*d..(hh+1)*d of `y`
        // (checked above to lie inside it); tasks write disjoint elements. V's rows lie in
        // `qkv` (checked above).
        unsafe {
            small_gemm::gemm(
                (s, d, s),
                scores.as_ptr(),
                s,
                qkv.as_ptr().add(v),
                stride,
                y.add(off),
                h * d,
            )
        };
        for (i, &sum) in sums[..s].iter().enumerate() {
            let inv = _mm512_set1_ps(1.0 / sum);
            for c in (0..d).step_by(16) {
                let m = crate::mask::lane_mask(d, c / 16);
                // SAFETY: row i's columns c..c + 16 (masked to `d`) of this head in `y`.
                unsafe {
                    let p = y.add(off + i * h * d + c);
                    _mm512_mask_storeu_ps(p, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p), inv));
                }
            }
        }
    });
}

/// Task `t` of [`attention`]: `softmax(Q Kᵀ / √d + bias) V` of one example's head into its
/// columns of `y`, the scores in `scores`.
///
/// # Safety
/// `y` points to `y_len` values; no other task writes rows `n*s..(n+1)*s`, columns
/// `hh*d..(hh+1)*d` of it concurrently.
#[allow(clippy::too_many_arguments)]
unsafe fn attention_task(
    qkv: &[f32],
    (s, h, d): (usize, usize, usize),
    causal: bool,
    bias: Option<&[f32]>,
    t: usize,
    scores: &mut [f32],
    y: *mut f32,
    y_len: usize,
) {
    let level = Simd::detect();
    let stride = 3 * h * d;
    let scale = 1.0 / (d as f32).sqrt();
    #[cfg(target_arch = "x86_64")]
    if let Simd::Avx512 = level {
        // SAFETY: AVX-512F is present (the level); the caller's contract.
        return unsafe { attention_task_avx512(qkv, (s, h, d), causal, bias, t, scores, y, y_len) };
    }
    simd(
        level,
        #[inline(always)]
        || {
            let (n, hh) = (t / h, t % h);
            let base = n * s * stride;
            let q = Mat {
                data: &qkv[base + hh * d..],
                rs: stride,
                cs: 1,
            };
            // K^T as a [d, s] operand: element (j, c) = K[c, j].
            let kt = Mat {
                data: &qkv[base + h * d + hh * d..],
                rs: 1,
                cs: stride,
            };
            sgemm(s, s, d, q, kt, scores, s, Threads::One);
            // (AVX-512 returned above: `attention_task_avx512`.)
            let key_bias = bias.map(|b| &b[n * s..(n + 1) * s]);
            attention_rows(scores, s, scale, key_bias, causal);
            let v = Mat {
                data: &qkv[base + 2 * h * d + hh * d..],
                rs: stride,
                cs: 1,
            };
            let off = n * s * h * d + hh * d;
            let len = (s - 1) * h * d + d;
            assert!(off + len <= y_len);
            // SAFETY: task (n, hh) writes only rows n*s..(n+1)*s, columns hh*d..(hh+1)*d of
            // `y`; tasks write disjoint elements, and the range is checked above.
            let out = unsafe { std::slice::from_raw_parts_mut(y.add(off), len) };
            sgemm(s, d, s, Mat::rows(scores, s), v, out, h * d, Threads::One);
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One head of `softmax(Q Kᵀ / √d + bias) V` (causal: keys after the query masked), in
    /// f64 from the plain definition.
    fn head_reference(
        qkv: &[f32],
        (s, h, d): (usize, usize, usize),
        causal: bool,
        bias: Option<&[f32]>,
        n: usize,
        hh: usize,
    ) -> Vec<f64> {
        let stride = 3 * h * d;
        let at = |row: usize, part: usize, c: usize| {
            qkv[(n * s + row) * stride + (part * h + hh) * d + c] as f64
        };
        let mut out = vec![0.0; s * d];
        for i in 0..s {
            let live = if causal { i + 1 } else { s };
            let sc: Vec<f64> = (0..live)
                .map(|j| {
                    let dot: f64 = (0..d).map(|c| at(i, 0, c) * at(j, 1, c)).sum();
                    dot / (d as f64).sqrt() + bias.map_or(0.0, |b| b[n * s + j] as f64)
                })
                .collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - mx).exp()).collect();
            let sum: f64 = e.iter().sum();
            for c in 0..d {
                out[i * d + c] = (0..live).map(|j| e[j] * at(j, 2, c)).sum::<f64>() / sum;
            }
        }
        out
    }

    /// The AVX-512 attention task against the definition: sequence lengths 1..40, heads of
    /// 1..70 values (whole and masked vectors, several column blocks), with and without
    /// the causal mask and a key bias, every head of two examples; nothing else of the output
    /// written.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_attention_task_matches_the_definition() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for (s, h, d) in [
            (1, 1, 16),
            (7, 2, 5),
            (17, 3, 16),
            (33, 2, 20),
            (40, 1, 70),
            (24, 4, 64),
        ] {
            for (causal, with_bias) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let examples = 2;
                let stride = 3 * h * d;
                let qkv: Vec<f32> = (0..examples * s * stride)
                    .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 300.0)
                    .collect();
                let bias: Vec<f32> = (0..examples * s)
                    .map(|j| {
                        if j % 4 == 1 {
                            -1e4
                        } else {
                            (j % 3) as f32 * 0.25
                        }
                    })
                    .collect();
                let bias = with_bias.then_some(&bias[..]);
                let y_len = examples * s * h * d;
                let mut y = vec![f32::NAN; y_len + 3];
                let mut scores = vec![0f32; s * s];
                for t in 0..examples * h {
                    // SAFETY: AVX-512F checked; task t writes only its head's columns.
                    unsafe {
                        attention_task_avx512(
                            &qkv,
                            (s, h, d),
                            causal,
                            bias,
                            t,
                            &mut scores,
                            y.as_mut_ptr(),
                            y_len,
                        )
                    };
                }
                for t in 0..examples * h {
                    let (n, hh) = (t / h, t % h);
                    let want = head_reference(&qkv, (s, h, d), causal, bias, n, hh);
                    for i in 0..s {
                        for c in 0..d {
                            let got = y[(n * s + i) * h * d + hh * d + c] as f64;
                            let w = want[i * d + c];
                            assert!(
                                (got - w).abs() <= 2e-5 * (1.0 + w.abs()),
                                "s {s} h {h} d {d} causal {causal} bias {with_bias}: head {t} [{i}][{c}] = {got}, want {w}"
                            );
                        }
                    }
                }
                assert!(
                    y[y_len..].iter().all(|v| v.is_nan()),
                    "wrote past the output"
                );
            }
        }
    }

    #[test]
    fn fast_exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * i as f32 / 2_000_000.0;
            let (got, want) = (fast_exp(x) as f64, (x as f64).exp());
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max((got - want).abs() / ulp as f64);
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(-100.0), 0.0);
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(100.0), f32::INFINITY);
        assert!(fast_exp(f32::NAN).is_nan());
    }

    #[test]
    fn lane_reductions_match_sequential_ones() {
        for n in [0usize, 1, 15, 16, 17, 100, 1000] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let s: f64 = x.iter().map(|&v| v as f64).sum();
            assert!((lane_sum(&x) as f64 - s).abs() <= 1e-4 * (1.0 + s.abs()));
            let m = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            assert_eq!(lane_max(&x), m);
            let mean = (s / n.max(1) as f64) as f32;
            let d: f64 = x.iter().map(|&v| ((v - mean) as f64).powi(2)).sum();
            assert!((lane_sq_dev(&x, mean) as f64 - d).abs() <= 1e-4 * (1.0 + d));
        }
        assert!(lane_max(&[1.0, f32::NAN, 2.0]).is_nan());
    }
}
