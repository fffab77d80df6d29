//! GELU, tanh form: `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`. The portable
//! formula (the reference interpreter's, the scalar epilogues') takes tanh as [`fast_tanh`]'s
//! rational function. On AVX-512 the vector form ([`avx512::gelu16`]) evaluates the same
//! function as `x sigmoid(2u)` through `vscalefps` and a refined reciprocal: about 20
//! operations a vector where the rational tanh took 30, within 1e-6 of `0.5 |x|` of the
//! portable formula (tested: [`tests`]). tiny-transformer bf16 (whose first feed-forward
//! layers end in this GELU on AMX), batch 1, 2 threads, four alternating rounds, best:
//! 91.0 -> 85.3 us an example (2026-12-06, Xeon with AMX).

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
        // Four vectors at a time (independent chains, unmasked), then the rest: 3.6 ns a
        // vector against 4.4-4.7 one masked vector at a time (16,384 and 524,288 values, one
        // thread, best of seven, three alternating runs each).
        while i + 64 <= n {
            // SAFETY: values i..i + 64 lie inside `x` and `y`.
            unsafe {
                let v: [__m512; 4] =
                    std::array::from_fn(|j| _mm512_loadu_ps(x.as_ptr().add(i + 16 * j)));
                let g: [__m512; 4] = std::array::from_fn(|j| gelu16(v[j]));
                for (j, g) in g.into_iter().enumerate() {
                    _mm512_storeu_ps(y.as_mut_ptr().add(i + 16 * j), g);
                }
            }
            i += 64;
        }
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

    /// Sixteen values' GELU, tanh form, as `v sigmoid(2u)` (the same function: `0.5 (1 + tanh u) =
    /// 1 / (1 + e^(-2u))`): `e^(-2u)` as `2^z` with `z = -2u log2(e)` split into the nearest
    /// integer `n` (`vrndscaleps`) and `f` in [-0.5, 0.5], `2^f` by its degree-6 Taylor polynomial
    /// (relative error at most 1.6e-7 there, evaluated in f64 over the interval) and `2^n` applied
    /// by `vscalefps` (0 below the range, no integer tricks), then the quotient `v / (1 + e)` as `v
    /// r` with `r` the reciprocal estimate refined by one Newton step. About 20 vector operations
    /// where the rational tanh took about 30: a loop of GELUs is bound by them (the operations of
    /// four vectors waiting in the scheduler together) — 16,384 values read 6.0-6.8 ns a vector in
    /// the rational form, 4.8-5.6 in this one, four at a time (2026-12-06, Xeon with AMX). `z` is
    /// capped at 64 (reached at `v` = -7.66; GELU there and below is under `|v| 2^-64`, which is
    /// what the capped form returns) so that `1 + e` stays finite for the Newton step. Within 1e-6
    /// of `0.5 |v|` of the portable formula, whose rational tanh is itself within 2e-6 of tanh
    /// (tested: [`tests`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn gelu16(v: __m512) -> __m512 {
        let s = _mm512_set1_ps;
        const K: f32 = -2.0 * super::SQRT_2_OVER_PI * std::f32::consts::LOG2_E;
        const C1: f32 = std::f32::consts::LN_2;
        const C2: f32 = C1 * C1 / 2.0;
        const C3: f32 = C2 * C1 / 3.0;
        const C4: f32 = C3 * C1 / 4.0;
        const C5: f32 = C4 * C1 / 5.0;
        const C6: f32 = C5 * C1 / 6.0;
        // z = -2 u log2(e), u = sqrt(2 / pi) (v + 0.044715 v^3)
        let v2 = _mm512_mul_ps(v, v);
        let z = _mm512_mul_ps(v, _mm512_fmadd_ps(v2, s(K * 0.044_715), s(K)));
        let z = _mm512_min_ps(z, s(64.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(z);
        let f = _mm512_sub_ps(z, n);
        // 2^f = 1 + C1 f + ... + C6 f^6, in pairs of terms (a shallower chain than Horner's).
        let f2 = _mm512_mul_ps(f, f);
        let a = _mm512_fmadd_ps(f, s(C1), s(1.0));
        let b = _mm512_fmadd_ps(f, s(C3), s(C2));
        let c = _mm512_fmadd_ps(f2, s(C6), _mm512_fmadd_ps(f, s(C5), s(C4)));
        let p = _mm512_fmadd_ps(f2, _mm512_fmadd_ps(f2, c, b), a);
        let d = _mm512_add_ps(_mm512_scalef_ps(p, n), s(1.0));
        // d lies in [1, 2^64 + 1]: r = r0 (2 - d r0).
        let r0 = _mm512_rcp14_ps(d);
        let nr = _mm512_fnmadd_ps(d, r0, s(2.0));
        _mm512_mul_ps(_mm512_mul_ps(v, r0), nr)
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

    /// `g` against the portable `want` for input `v`: within 1e-6 of `0.5 |v|` (the two
    /// forms' tanh within 6e-7 of the true one each, tested below; GELU scales tanh's error by
    /// `0.5 |v|`), plus 4 ulp of the result (its last products).
    fn close(v: f32, g: f32, want: f32) -> bool {
        g == want || (g - want).abs() <= 0.5 * v.abs() * 1e-6 + 4.0 * f32::EPSILON * want.abs()
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
            // The form this CPU runs, against tanh itself: within 6e-7 of `0.5 |v|` (the
            // AVX-512 form measured 4.1e-7, the portable one 4.9e-7).
            assert!(
                (*g as f64 - want).abs() <= 6e-7 * 0.5 * d.abs() + 1e-37,
                "gelu({v}) = {g}, f64 {want}: {:e} of 0.5 |v|",
                (*g as f64 - want).abs() / (0.5 * d.abs())
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
