//! GELU, tanh form: `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`, with tanh as
//! [`fast_tanh`]'s rational function. On AVX-512 the quotient of that function is a
//! reciprocal estimate (`vrcp14ps`, 14 bits) refined by one Newton step and a product, in
//! place of `vdivps`: `perf annotate` of tiny-transformer put 46 % of the GELU's samples on
//! the instruction after the division, and the whole GELU at 15 % of its bf16 run (one
//! thread, batch 32). The refined quotient is within a few ulp of the divided one (tested:
//! [`tests`]), far inside `fast_tanh`'s own 2e-6 error.

use super::{PAR_GRAIN, Simd, fast_tanh, min_len, simd};
use rayon::prelude::*;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU (tanh form) of one value, the portable formula.
#[inline]
pub(super) fn gelu_one(v: f32) -> f32 {
    0.5 * v * (1.0 + fast_tanh(SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v)))
}

/// GELU (tanh form), elementwise, in parallel chunks.
pub fn gelu(x: &[f32], y: &mut [f32]) {
    let level = Simd::detect();
    y[..x.len()]
        .par_chunks_mut(PAR_GRAIN)
        .zip(x.par_chunks(PAR_GRAIN))
        .with_min_len(min_len())
        .for_each(|(o, i)| gelu_chunk(level, i, o));
}

/// One chunk on this CPU's best form.
fn gelu_chunk(level: Simd, x: &[f32], y: &mut [f32]) {
    match level {
        // SAFETY: the level is chosen only on CPUs with AVX-512F.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::gelu(x, y) },
        _ => simd(level, || {
            y.iter_mut().zip(x).for_each(|(o, v)| *o = gelu_one(*v))
        }),
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    /// `y[i] = gelu(x[i])` for `x.len()` values (`y` at least as long), 16 at a time, the
    /// last vector masked.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gelu(x: &[f32], y: &mut [f32]) {
        assert!(y.len() >= x.len(), "gelu: output too short");
        let n = x.len();
        let mut i = 0;
        while i < n {
            let m = crate::mask::lane_mask(n, i / 16);
            // SAFETY: lanes of `m` lie inside `x` and `y`.
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(i), m, gelu16(v));
            }
            i += 16;
        }
    }

    /// Sixteen values' GELU: [`super::gelu_one`]'s arithmetic in the same order, the
    /// rational tanh's quotient `p / q` as `p r` with `r` the refined reciprocal of `q`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn gelu16(v: __m512) -> __m512 {
        use crate::kernels::tanh_coef::*;
        let s = _mm512_set1_ps;
        // u = sqrt(2 / pi) (v + 0.044715 v^3), evaluated as the scalar form does.
        let v3 = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(s(0.044_715), v), v), v);
        let u = _mm512_mul_ps(s(super::SQRT_2_OVER_PI), _mm512_add_ps(v, v3));
        let x = _mm512_min_ps(_mm512_max_ps(u, s(-CLAMP)), s(CLAMP));
        let x2 = _mm512_mul_ps(x, x);
        let mut p = _mm512_fmadd_ps(x2, s(A13), s(A11));
        p = _mm512_fmadd_ps(x2, p, s(A9));
        p = _mm512_fmadd_ps(x2, p, s(A7));
        p = _mm512_fmadd_ps(x2, p, s(A5));
        p = _mm512_fmadd_ps(x2, p, s(A3));
        p = _mm512_fmadd_ps(x2, p, s(A1));
        p = _mm512_mul_ps(p, x);
        let mut q = _mm512_fmadd_ps(x2, s(B6), s(B4));
        q = _mm512_fmadd_ps(x2, q, s(B2));
        q = _mm512_fmadd_ps(x2, q, s(B0));
        // q lies in [B0, ~0.47]: no zero, no overflow. r = r0 (2 - q r0).
        let r0 = _mm512_rcp14_ps(q);
        let r = _mm512_mul_ps(r0, _mm512_fnmadd_ps(q, r0, s(2.0)));
        let t = _mm512_mul_ps(p, r);
        _mm512_mul_ps(_mm512_mul_ps(s(0.5), v), _mm512_add_ps(s(1.0), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values over GELU's whole range (tanh saturates past |u| ~ 7.9) and the special ones.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        v.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            50.0,
            -50.0,
            1e4,
            -1e4,
            f32::MAX,
            f32::MIN,
        ]);
        v
    }

    /// `g` against the portable `want` for input `v`: tanh's value within 8 ulp of 1 (the
    /// FMA-evaluated polynomials and the refined reciprocal), scaled by `0.5 |v|` as GELU
    /// scales it, plus 4 ulp of the result (its last products).
    fn close(v: f32, g: f32, want: f32) -> bool {
        g == want
            || (g - want).abs()
                <= 0.5 * v.abs() * 8.0 * f32::EPSILON + 4.0 * f32::EPSILON * want.abs()
    }

    #[test]
    fn every_form_matches_the_portable_formula() {
        let x = inputs();
        let mut y = vec![0.0; x.len()];
        gelu(&x, &mut y);
        for (v, g) in x.iter().zip(&y) {
            let want = gelu_one(*v);
            assert!(close(*v, *g, want), "gelu({v}) = {g}, the formula {want}");
        }
    }

    #[test]
    fn gelu_matches_f64() {
        let x = inputs();
        let mut y = vec![0.0; x.len()];
        gelu(&x, &mut y);
        for (v, g) in x.iter().zip(&y).filter(|(v, _)| v.abs() <= 12.0) {
            let d = *v as f64;
            let want = 0.5 * d * (1.0 + (0.797_884_560_8 * (d + 0.044_715 * d * d * d)).tanh());
            assert!(
                (*g as f64 - want).abs() < 3e-5,
                "gelu({v}) = {g}, f64 {want}"
            );
        }
    }

    #[test]
    fn tails_and_short_rows() {
        // Every length up to three vectors: the masked last vector.
        for n in 0..50 {
            let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 5.0).collect();
            let mut y = vec![f32::NAN; n + 3];
            gelu(&x, &mut y);
            for i in 0..n {
                assert!(close(x[i], y[i], gelu_one(x[i])), "n {n}, i {i}");
            }
            assert!(y[n..].iter().all(|v| v.is_nan()), "wrote past the input");
        }
    }
}
