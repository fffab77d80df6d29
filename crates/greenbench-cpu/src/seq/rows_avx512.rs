//! Row kernels of the transformer steps on AVX-512, written with intrinsics.
//!
//! The attention's score rows ([`super::attention_rows`]'s operations, its division left to
//! the attention's output rows: [`softmax_rows_unnormalized`]): per row one pass of key bias
//! and maximum, one of exponentials and sum, each over whole vectors with the last one masked,
//! and the 16 lanes of the maximum and the sum folded by shuffles (`_mm512_reduce_*`: four
//! dependent steps) instead of the portable form's 16 dependent scalar steps per row. The
//! exponential is [`super::fast_exp`]'s Cephes polynomial with fused multiply-adds (within a
//! few ulp of it, tested); the sum adds the same values in another order. Groups of
//! [`super::ROW_GROUP`] rows go through each pass together, as in the portable form.
//!
//! Layer norms ([`layer_norm_group`]): the same folds for the mean and the variance, a group of
//! rows a pass at a time.

use crate::mask::lane_mask as mask;
use std::arch::x86_64::*;

/// `e^x` on 16 lanes for `x` in [-87.3, 88.3]: [`super::fast_exp`]'s range reduction and
/// polynomial, with FMAs; nothing else (NaN goes through the arithmetic and stays NaN).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16_in_range(x: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    const ROUND: f32 = 12_582_912.0;
    let t = _mm512_fmadd_ps(x, s(std::f32::consts::LOG2_E), s(ROUND));
    let n = _mm512_sub_ps(t, s(ROUND));
    let ni = _mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(ROUND.to_bits() as i32),
    );
    let r = _mm512_fnmadd_ps(
        n,
        s(-2.121_944_4e-4),
        _mm512_fnmadd_ps(n, s(0.693_359_4), x),
    );
    let mut p = _mm512_fmadd_ps(s(1.987_569_1e-4), r, s(1.398_2e-3));
    p = _mm512_fmadd_ps(p, r, s(8.333_452e-3));
    p = _mm512_fmadd_ps(p, r, s(4.166_579_6e-2));
    p = _mm512_fmadd_ps(p, r, s(0.166_666_65));
    p = _mm512_fmadd_ps(p, r, s(0.5));
    let pr = _mm512_mul_ps(p, r);
    let y0 = _mm512_add_ps(_mm512_fmadd_ps(pr, r, r), s(1.0));
    let two_n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        ni,
        _mm512_set1_epi32(127),
    )));
    _mm512_mul_ps(y0, two_n)
}

/// `e^x` on 16 lanes: [`exp16_in_range`] of `x` clamped; below -87.3 it is 0, above 88.3
/// infinite, NaN stays NaN. Only the tests use it (the kernels' exponentials are of
/// non-positive arguments: [`exp16_nonpositive`], checked against it).
#[cfg(test)]
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp16(x: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    let xc = _mm512_min_ps(_mm512_max_ps(x, s(-87.3)), s(88.3));
    let mut y = exp16_in_range(xc);
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, s(-87.3)), y, s(0.0));
    y = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, s(88.3)),
        y,
        s(f32::INFINITY),
    );
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}

/// [`exp16`] for `x <= 0` (a softmax's scores less their row's maximum) or NaN: the same
/// value where `x >= -87.3` (bit for bit), 0 below, NaN for NaN, without the clamps and the
/// other blends `exp16` needs for any `x`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp16_nonpositive(x: __m512) -> __m512 {
    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(-87.3));
    _mm512_mask_blend_ps(below, exp16_in_range(x), _mm512_setzero_ps())
}

/// The softmax of each score row without its last division: `scores` (already scaled) get
/// the key bias and the causal mask, then `e^(x - max)` in place, and each row's sum of them
/// goes to `sums` (the attention divides its output rows by it instead: `d` values a row,
/// not `s`). Each pass over a group of [`super::ROW_GROUP`] rows before the next.
///
/// # Safety
/// AVX-512F; `scores` holds whole rows of `s` values, `key_bias` (if any) `s` values, `sums`
/// one value per row.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax_rows_unnormalized(
    scores: &mut [f32],
    s: usize,
    key_bias: Option<&[f32]>,
    causal: bool,
    sums: &mut [f32],
) {
    assert!(
        key_bias.is_none_or(|b| b.len() >= s),
        "attention: key bias too short"
    );
    assert!(sums.len() * s >= scores.len(), "a sum for every row");
    // SAFETY: the asserts above. Rows of whole vectors where every key counts (no causal
    // mask: tiny-transformer's 64 keys, BERT's with a key bias) take the form whose lane
    // masks are constants: one made per vector (`cmov`, `shl`, `kmov` in `perf annotate`)
    // had held the attention step at 19.0-20.6 us of tiny-transformer's (bf16, batch 32, one
    // thread), 14.2-15.3 without.
    unsafe {
        if s.is_multiple_of(16) && !causal {
            softmax_rows::<true>(scores, s, key_bias, false, sums)
        } else {
            softmax_rows::<false>(scores, s, key_bias, causal, sums)
        }
    }
}

/// [`softmax_rows_unnormalized`]'s passes; `WHOLE`: `s` is a multiple of 16 and no key is
/// masked by position (every lane mask full, `causal` false).
///
/// # Safety
/// As [`softmax_rows_unnormalized`], whose asserts hold.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn softmax_rows<const WHOLE: bool>(
    scores: &mut [f32],
    s: usize,
    key_bias: Option<&[f32]>,
    causal: bool,
    sums: &mut [f32],
) {
    let lanes = |n: usize, j: usize| if WHOLE { u16::MAX } else { mask(n, j) };
    let nv = s.div_ceil(16);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let blocks = scores.chunks_mut(super::ROW_GROUP * s);
    for (g, (block, sums)) in blocks.zip(sums.chunks_mut(super::ROW_GROUP)).enumerate() {
        let rows = block.len() / s;
        let mut m = [0f32; super::ROW_GROUP];
        let p = block.as_mut_ptr();
        // SAFETY (both passes): lanes of `lanes(s, j)` of row i's vector j lie inside row i
        // of the block, and inside `key_bias`.
        unsafe {
            for (i, mi) in m.iter_mut().enumerate().take(rows) {
                let row = p.add(i * s);
                // Causal: keys after query r get no weight (exp(-inf - m) = 0).
                let keys = if !WHOLE && causal {
                    (g * super::ROW_GROUP + i + 1).min(s)
                } else {
                    s
                };
                let mut mx = ninf;
                for j in 0..nv {
                    let k = lanes(s, j);
                    let mut v = _mm512_maskz_loadu_ps(k, row.add(16 * j));
                    if let Some(b) = key_bias {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b.as_ptr().add(16 * j)));
                    }
                    let live = lanes(keys, j);
                    if key_bias.is_some() || causal {
                        v = _mm512_mask_blend_ps(live, ninf, v);
                        _mm512_mask_storeu_ps(row.add(16 * j), k, v);
                    }
                    mx = _mm512_mask_max_ps(mx, live, mx, v);
                }
                *mi = _mm512_reduce_max_ps(mx);
            }
            for (i, (&mi, si)) in m.iter().zip(sums.iter_mut()).enumerate().take(rows) {
                let row = p.add(i * s);
                let mv = _mm512_set1_ps(mi);
                let mut acc = _mm512_setzero_ps();
                for j in 0..nv {
                    let k = lanes(s, j);
                    let x = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, row.add(16 * j)), mv);
                    let e = exp16_nonpositive(x);
                    acc = _mm512_mask_add_ps(acc, k, acc, e);
                    _mm512_mask_storeu_ps(row.add(16 * j), k, e);
                }
                *si = _mm512_reduce_add_ps(acc);
            }
        }
    }
}

/// [`super::layer_norm_row`] on AVX-512 for each row of `n` values in `x` (at most
/// [`super::ROW_GROUP`] rows): the mean and the squared deviations summed in vectors and
/// folded by shuffles, then `(x - mean) * inv * gamma + beta`; each pass over all the rows
/// before the next, so the rows' reductions overlap.
///
/// # Safety
/// AVX-512F; `gamma`, `beta` hold `n` values, `o` as many as `x`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn layer_norm_group(
    x: &[f32],
    n: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    o: &mut [f32],
) {
    let rows = x.len() / n;
    assert!(
        rows <= super::ROW_GROUP && rows * n == x.len(),
        "layer norm: a group of whole rows"
    );
    assert!(
        gamma.len() >= n && beta.len() >= n && o.len() >= x.len(),
        "layer norm: affine or output too short"
    );
    // SAFETY: the asserts above. Rows of whole vectors take the form whose lane masks are
    // constants (as the softmax's: tiny-transformer's layer norms of 64 values 1.5-1.85 ->
    // 0.85-0.9 us, bf16, batch 32, one thread).
    unsafe {
        if n.is_multiple_of(16) {
            layer_norm_rows::<true>(x, n, rows, gamma, beta, eps, o)
        } else {
            layer_norm_rows::<false>(x, n, rows, gamma, beta, eps, o)
        }
    }
}

/// [`layer_norm_group`]'s passes; `WHOLE`: `n` is a multiple of 16 (every lane mask full).
///
/// # Safety
/// As [`layer_norm_group`], whose asserts hold.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn layer_norm_rows<const WHOLE: bool>(
    x: &[f32],
    n: usize,
    rows: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    o: &mut [f32],
) {
    let lanes = |n: usize, j: usize| if WHOLE { u16::MAX } else { mask(n, j) };
    let nv = n.div_ceil(16);
    let xp = x.as_ptr();
    let (mut mean, mut inv) = ([0f32; super::ROW_GROUP], [0f32; super::ROW_GROUP]);
    // SAFETY (whole body): lanes of `lanes(n, j)` of row r's vector j lie inside row r of `x`
    // and `o`, and inside `gamma` and `beta`.
    unsafe {
        for (r, m) in mean.iter_mut().enumerate().take(rows) {
            let mut acc = _mm512_setzero_ps();
            for j in 0..nv {
                let v = _mm512_maskz_loadu_ps(lanes(n, j), xp.add(r * n + 16 * j));
                acc = _mm512_add_ps(acc, v);
            }
            *m = _mm512_reduce_add_ps(acc) / n as f32;
        }
        for (r, (&m, iv)) in mean.iter().zip(inv.iter_mut()).enumerate().take(rows) {
            let mv = _mm512_set1_ps(m);
            let mut sq = _mm512_setzero_ps();
            for j in 0..nv {
                let k = lanes(n, j);
                let d =
                    _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, xp.add(r * n + 16 * j)), mv);
                sq = _mm512_fmadd_ps(d, d, sq);
            }
            let var = _mm512_reduce_add_ps(sq) / n as f32;
            *iv = 1.0 / (var + eps).sqrt();
        }
        for r in 0..rows {
            let (mv, iv) = (_mm512_set1_ps(mean[r]), _mm512_set1_ps(inv[r]));
            for j in 0..nv {
                let k = lanes(n, j);
                let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, xp.add(r * n + 16 * j)), mv);
                let g = _mm512_maskz_loadu_ps(k, gamma.as_ptr().add(16 * j));
                let b = _mm512_maskz_loadu_ps(k, beta.as_ptr().add(16 * j));
                let v = _mm512_fmadd_ps(_mm512_mul_ps(d, iv), g, b);
                _mm512_mask_storeu_ps(o.as_mut_ptr().add(r * n + 16 * j), k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// [`super::super::attention_rows`] from the AVX-512 pieces as the attention task runs
    /// them: the scores scaled, [`softmax_rows_unnormalized`], each row divided by its sum.
    ///
    /// # Safety
    /// AVX-512F; as [`softmax_rows_unnormalized`].
    unsafe fn attention_rows(
        scores: &mut [f32],
        s: usize,
        scale: f32,
        key_bias: Option<&[f32]>,
        causal: bool,
    ) {
        scores.iter_mut().for_each(|v| *v *= scale);
        let mut sums = vec![0f32; scores.len() / s];
        // SAFETY: the caller's.
        unsafe { softmax_rows_unnormalized(scores, s, key_bias, causal, &mut sums) };
        for (row, sum) in scores.chunks_mut(s).zip(&sums) {
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }

    #[test]
    fn exp16_is_fast_exp_within_two_ulp() {
        if !avx512() {
            return;
        }
        let mut x: Vec<f32> = (0..=400_000)
            .map(|i| -90.0 + 180.0 * i as f32 / 400_000.0)
            .collect();
        x.extend([
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -87.3,
            88.3,
            0.0,
            -0.0,
        ]);
        for c in x.chunks(16) {
            let mut v = [0f32; 16];
            v[..c.len()].copy_from_slice(c);
            let mut got = [0f32; 16];
            // SAFETY: AVX-512F checked.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), exp16(_mm512_loadu_ps(v.as_ptr()))) };
            for (&x, &g) in v.iter().zip(&got) {
                let want = super::super::fast_exp(x);
                let ok = (g.is_nan() && want.is_nan())
                    || g == want
                    || (g - want).abs() <= 2.0 * f32::EPSILON * want.abs();
                assert!(ok, "exp16({x}) = {g}, fast_exp {want}");
            }
        }
    }

    /// Against the portable rows: every row length 1..70 (whole and masked vectors), with
    /// and without a key bias and the causal mask, rows in several groups; values within a
    /// few ulp of the portable ones (exponentials with FMAs, sums in another order).
    #[test]
    fn rows_match_the_portable_form() {
        if !avx512() {
            return;
        }
        for s in 1..70usize {
            for (bias, causal) in [(false, false), (true, false), (false, true), (true, true)] {
                let n = s * s;
                let x: Vec<f32> = (0..n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
                    .collect();
                let b: Vec<f32> = (0..s)
                    .map(|i| if i % 5 == 3 { -1e4 } else { 0.0 })
                    .collect();
                let key_bias = bias.then_some(&b[..]);
                let (mut want, mut got) = (x.clone(), x.clone());
                super::super::attention_rows(&mut want, s, 0.3, key_bias, causal);
                // SAFETY: AVX-512F checked; `s` rows of `s`, the bias `s` values.
                unsafe { attention_rows(&mut got, s, 0.3, key_bias, causal) };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
                        "s {s}, bias {bias}, causal {causal}, [{i}]: {g} against {w}"
                    );
                }
            }
        }
    }

    /// Groups of 1..8 rows of 1..100 values against the portable row, row by row: within a
    /// few ulp of its scale; nothing written past the group.
    #[test]
    fn layer_norm_rows_match_the_portable_form() {
        if !avx512() {
            return;
        }
        for n in 1..100usize {
            for rows in [1usize, 3, 8] {
                let x: Vec<f32> = (0..rows * n)
                    .map(|i| ((i * 53 % 97) as f32 - 40.0) / 3.0 + 100.0 + (i / n) as f32)
                    .collect();
                let g: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
                let b: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
                let mut want = vec![0f32; rows * n];
                for (w, xr) in want.chunks_mut(n).zip(x.chunks(n)) {
                    super::super::layer_norm_row(xr, &g, &b, 1e-5, w);
                }
                let mut got = vec![f32::NAN; rows * n + 5];
                // SAFETY: AVX-512F checked; lengths as required.
                unsafe { layer_norm_group(&x, n, &g, &b, 1e-5, &mut got) };
                for (j, (o, w)) in got.iter().zip(&want).enumerate() {
                    let ok = (o - w).abs() <= 1e-5 * (1.0 + w.abs());
                    assert!(ok, "n {n}, rows {rows} [{j}]: {o} against {w}");
                }
                assert!(
                    got[rows * n..].iter().all(|v| v.is_nan()),
                    "wrote past the group"
                );
            }
        }
    }

    #[test]
    fn exp16_nonpositive_is_exp16_where_it_applies() {
        if !avx512() {
            return;
        }
        let mut x: Vec<f32> = (0..=200_000)
            .map(|i| -110.0 * i as f32 / 200_000.0)
            .collect();
        x.extend([
            f32::NEG_INFINITY,
            f32::NAN,
            -87.3,
            -87.299_99,
            0.0,
            -0.0,
            -1e-30,
        ]);
        for c in x.chunks(16) {
            let mut v = [0f32; 16];
            v[..c.len()].copy_from_slice(c);
            let (mut got, mut want) = ([0f32; 16], [0f32; 16]);
            // SAFETY: AVX-512F checked.
            unsafe {
                let xv = _mm512_loadu_ps(v.as_ptr());
                _mm512_storeu_ps(got.as_mut_ptr(), exp16_nonpositive(xv));
                _mm512_storeu_ps(want.as_mut_ptr(), exp16(xv));
            }
            for ((&x, &g), &w) in v.iter().zip(&got).zip(&want) {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{x}: {g} against {w}"
                );
            }
        }
    }

    /// The unnormalized rows divided by their sums are the portable softmax rows (scores
    /// scaled beforehand); every row length 1..70, with and without bias and causal mask.
    #[test]
    fn unnormalized_rows_over_their_sums_match_the_portable_form() {
        if !avx512() {
            return;
        }
        for s in 1..70usize {
            for (bias, causal) in [(false, false), (true, false), (false, true), (true, true)] {
                let x: Vec<f32> = (0..s * s)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
                    .collect();
                let b: Vec<f32> = (0..s)
                    .map(|i| if i % 5 == 3 { -1e4 } else { 0.0 })
                    .collect();
                let key_bias = bias.then_some(&b[..]);
                let mut want = x.clone();
                super::super::attention_rows(&mut want, s, 0.3, key_bias, causal);
                let mut got: Vec<f32> = x.iter().map(|v| v * 0.3).collect();
                let mut sums = vec![f32::NAN; s];
                // SAFETY: AVX-512F checked; `s` rows of `s`, the bias `s` values, `s` sums.
                unsafe { softmax_rows_unnormalized(&mut got, s, key_bias, causal, &mut sums) };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let g = g / sums[i / s];
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
                        "s {s}, bias {bias}, causal {causal}, [{i}]: {g} against {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_nan_score_makes_its_row_nan() {
        if !avx512() {
            return;
        }
        // 20: the masked form; 32 and 64: whole vectors (`softmax_rows::<true>`), the NaN
        // early or late in the row.
        for (s, at) in [(20, 3), (32, 3), (32, 20), (64, 49)] {
            let mut x = vec![0.5f32; 2 * s];
            x[at] = f32::NAN;
            // SAFETY: AVX-512F checked.
            unsafe { attention_rows(&mut x, s, 1.0, None, false) };
            assert!(x[..s].iter().all(|v| v.is_nan()), "s {s}");
            assert!(x[s..].iter().all(|v| (v - 1.0 / s as f32).abs() < 1e-6));
        }
    }
}
