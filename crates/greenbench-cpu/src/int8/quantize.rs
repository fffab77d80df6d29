//! The quantize step at an int8 border (fp32 to uint8, `QParams::quantize` over a slice):
//! with AVX-512, the IEEE quotient `x / scale` by a reciprocal and two exact-remainder
//! corrections, not a divide; then converted to an integer, the zero point added and the
//! clamp done in integers (two operations fewer a vector than in floats: mobilenet-v1-0.25's
//! input quantize 4.09-4.20 -> 3.27-3.38 us an example, `inspect --time --batch 32
//! --threads 1 --precision int8`, four alternating runs, 2026-12-06).

use greenbench_core::quant::QParams;

/// `QParams::quantize` over a slice, bit for bit: 16 at a time with AVX-512 where the scale
/// allows the divide-free quotient ([`fast_scale`]) or with the divide, the rest one by one.
pub(super) fn quantize(x: &[f32], p: QParams, y: &mut [u8], wide: bool) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: AVX-512 F/BW/VL are present (`wide`).
        done = unsafe { quantize_avx512(x, p, y) };
    }
    for (q, &v) in y[done..].iter_mut().zip(&x[done..]) {
        *q = p.quantize(v);
    }
}

/// Whether the quotient by `scale` may be formed from its reciprocal: a normal scale well
/// inside the exponent range, so that for every input clamped to `[-512 scale, 512 scale]`
/// the steps of [`quantize_avx512`] neither overflow nor lose the remainder to underflow
/// where it could change the result (a quotient below 2^-24 rounds to 0 either way).
fn fast_scale(scale: f32) -> bool {
    scale.is_finite() && (2f32.powi(-60)..=2f32.powi(60)).contains(&scale)
}

/// The AVX-512 loop; returns how many values it did (whole 16s).
///
/// `QParams::quantize` rounds the IEEE quotient `q = RN(x / s)` to an integer, half to even.
/// A divide per 16 values bounded the loop, so the quotient is formed without one (when
/// [`fast_scale`]): `y = RN(1 / s)`, `q0 = RN(x y)`; `r = x - s q` by an FMA and `q + r y`
/// rounded once, twice. The first correction leaves `q1` within a hair over half an ulp of
/// `x / s` (a faithful quotient); for a faithful `q1` the remainder `x - s q1` is exact and
/// `RN(q1 + r1 y)` is the correctly rounded quotient (Markstein's theorem; y within half an
/// ulp of `1 / s`, no overflow or underflow). The input is first clamped to
/// `±512 s` (exact: a power of two times `s`): any `|x / s| >= 512` quantizes to 0 or 255
/// whatever the zero point, and infinities would make the remainder NaN. NaN inputs map to
/// the zero point, as a NaN quotient does (the scale is finite and positive).
///
/// # Safety
/// AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn quantize_avx512(x: &[f32], p: QParams, y: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len()) / 16 * 16;
    let fast = fast_scale(p.scale);
    let (s, zi) = (_mm512_set1_ps(p.scale), _mm512_set1_epi32(p.zero));
    let r = _mm512_set1_ps(1.0 / p.scale);
    let big = _mm512_set1_ps(512.0 * p.scale);
    let lo = _mm512_setzero_ps();
    for i in (0..n).step_by(16) {
        // SAFETY: i + 16 <= n, within both slices.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(x.as_ptr().wrapping_add(i + 512) as *const i8);
            let a = _mm512_loadu_ps(x.as_ptr().add(i));
            let ordered = _mm512_cmp_ps_mask(a, a, _CMP_ORD_Q);
            let q = if fast {
                let a = _mm512_min_ps(_mm512_max_ps(a, _mm512_sub_ps(lo, big)), big);
                let q0 = _mm512_mul_ps(a, r);
                let q1 = _mm512_fmadd_ps(_mm512_fnmadd_ps(q0, s, a), r, q0);
                _mm512_fmadd_ps(_mm512_fnmadd_ps(q1, s, a), r, q1)
            } else {
                // The quotient of an unclamped input: clamped to ±512 for the conversion
                // below (the fast path's clamped input keeps it there).
                let q = _mm512_div_ps(a, s);
                _mm512_min_ps(
                    _mm512_max_ps(q, _mm512_set1_ps(-512.0)),
                    _mm512_set1_ps(512.0),
                )
            };
            // NaN (unordered with itself) becomes 0, i.e. the zero point. The quotient (within
            // ±512: beyond, every zero point gives 0 or 255) to the nearest integer, ties to
            // even (`vcvtps2dq` in the default rounding mode, as `roundscale` to nearest), the
            // zero point added in integers, then the clamp to 0..255 as a maximum with 0 and
            // the unsigned saturation of the narrowing: two operations fewer a vector than
            // rounding, adding and clamping in floats.
            let q = _mm512_cvtps_epi32(_mm512_maskz_mov_ps(ordered, q));
            let q = _mm512_max_epi32(_mm512_add_epi32(q, zi), _mm512_setzero_si512());
            _mm_storeu_si128(
                y.as_mut_ptr().add(i) as *mut __m128i,
                _mm512_cvtusepi32_epi8(q),
            );
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values where the quotient's last bit decides the integer: `x` the fp32 numbers around
    /// `(k + 1/2) s` (and around `k s`), the ulps either side, for every `k` that matters.
    fn near_halves(s: f32) -> Vec<f32> {
        let mut v = vec![];
        for k in -300i32..300 {
            for frac in [0.0f64, 0.5] {
                let c = ((k as f64 + frac) * s as f64) as f32;
                let mut b = c.to_bits().wrapping_sub(3);
                for _ in 0..7 {
                    v.push(f32::from_bits(b));
                    b = b.wrapping_add(1);
                }
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The slice quantize (AVX-512 where present, the divide-free quotient for these
        /// scales) against `QParams::quantize`, bit for bit: random inputs of every magnitude,
        /// the fp32 values next to each half-integer and integer multiple of the scale, zeros,
        /// infinities, NaN, subnormals; scales from 2^-40 to 2^40 and one outside the fast
        /// range (the divide).
        #[test]
        fn quantize_matches_the_reference(
            log2 in -40f64..40.0, zero in 0i32..256, seed in any::<u64>(), outside in any::<bool>(),
        ) {
            let scale = if outside { 2f32.powi(-70) * 1.37 } else { 2f64.powf(log2) as f32 };
            prop_assume!(scale.is_normal());
            let p = QParams { scale, zero };
            let mut st = seed | 1;
            let mut next = move || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st };
            let mut x = near_halves(scale);
            x.extend((0..2000).map(|_| {
                let e = (next() % 80) as i32 - 40;
                (next() % 2_000_001) as f32 / 1e6 * scale * 2f32.powi(e) * if next() % 2 == 0 { 1.0 } else { -1.0 }
            }));
            x.extend((0..500).map(|_| f32::from_bits(next() as u32)));
            x.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE / 8.0,
                f32::MAX, f32::MIN, 255.5 * scale, -0.5 * scale, 0.5 * scale, 1.5 * scale]);
            x.resize(x.len().next_multiple_of(16) + 5, 0.25 * scale);
            let want: Vec<u8> = x.iter().map(|&v| p.quantize(v)).collect();
            for wide in [false, crate::int8::epilogue::wide_int8()] {
                let mut got = vec![0u8; x.len()];
                quantize(&x, p, &mut got, wide);
                let bad = got.iter().zip(&want).position(|(g, w)| g != w);
                prop_assert!(bad.is_none(), "wide {} scale {:e}: x = {:e} gives {} for {}",
                    wide, scale, x[bad.unwrap_or(0)], got[bad.unwrap_or(0)], want[bad.unwrap_or(0)]);
            }
        }
    }
}
