//! The direct kernels' register tile on bf16 operands (`--precision bf16`, AVX-512 BF16).
//!
//! The same `P` pixels x `16 V` channels tile as the fp32 one (`conv::tile`), over a bf16
//! copy of the input (`PadCopy` with `bf16`, each pixel's channels padded to even) and
//! weights packed as pairs of reduction steps (`[block][k / 2][16 V][2]`): per pair, one
//! 32-bit broadcast of a pixel's two input values and one `vdpbf16ps` per weight vector, which
//! adds both exact bf16 x bf16 products to the fp32 accumulators. Half the weight bytes and
//! half the instructions of the fp32 tile per multiply-add. The start (bias or partial sums)
//! and the epilogue (residual, activation, masked store) repeat the fp32 tile's on purpose:
//! shared as `#[inline] #[target_feature]` helpers they left both tiles 2.4 times slower
//! (mlp batch 32, fp32 2.75 -> 6.74 us: the accumulators no longer stayed in registers).
//!
//! `vdpbf16ps` flushes denormal inputs and outputs to zero and rounds each of its two adds to
//! nearest even: against the reference (exact products, f64 sums) it differs as an fp32 sum
//! in another order does, which the fp32 kernels' tolerance covers.

use super::tile::{Init, TileArgs};
use super::{MAX_P, lane_mask};
use std::arch::x86_64::*;

/// Whether this CPU runs the bf16 tile (AVX-512F and AVX-512 BF16).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// [`tile`]'s instance for `v` weight vectors and `np` pixels (as `conv::dispatch`).
///
/// # Safety
/// The CPU has [`available`]; `a`'s pointers are a bf16 plan's (`a.x` its converted input
/// and `a.w` its paired weights, both bf16 bits behind a float pointer).
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn dispatch(v: usize, np: usize, a: &TileArgs<'_>) {
    macro_rules! by_p {
        ($v:literal, $($p:literal)*) => {
            match np {
                $($p => unsafe { tile::<$p, $v>(a) },)*
                _ => unreachable!("tile of {np} pixels"),
            }
        };
    }
    const _: () = assert!(MAX_P == 8);
    match v {
        1 => by_p!(1, 1 2 3 4 5 6 7 8),
        2 => by_p!(2, 1 2 3 4 5 6 7 8),
        3 => by_p!(3, 1 2 3 4 5 6 7 8),
        _ => by_p!(4, 1 2 3 4 5 6),
    }
}

/// The micro-kernel: `P` pixels x `16 V` channels over one reduction block, two reduction
/// steps per `vdpbf16ps`. `a.kc` (values per kernel row in the block) is even.
#[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile<const P: usize, const V: usize>(a: &TileArgs<'_>) {
    debug_assert!(a.kc.is_multiple_of(2), "bf16 tile: odd run");
    let x = a.x as *const u16;
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    let mut masks = [0u16; V];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = lane_mask(a.ncols, v);
    }
    match a.mode.init {
        Init::Bias => {
            for v in 0..V {
                let b = unsafe { _mm512_loadu_ps(a.bias.add(16 * v)) };
                for row in acc.iter_mut() {
                    row[v] = b;
                }
            }
        }
        Init::Load => {
            // Fixed trip counts, as in the fp32 tile (keeps the accumulators in registers).
            for p in 0..P {
                if p < a.np {
                    for v in 0..V {
                        let o = unsafe { a.y.add(a.obase[p] + 16 * v) };
                        acc[p][v] = unsafe { _mm512_maskz_loadu_ps(masks[v], o) };
                    }
                }
            }
        }
    }
    let mut w = a.w as *const u16;
    for r in 0..a.nr {
        let mut px = [std::ptr::null::<u16>(); P];
        for (p, ptr) in px.iter_mut().enumerate() {
            *ptr = unsafe { x.add(a.base[p] + r * a.row_stride) };
        }
        for c in (0..a.kc).step_by(2) {
            let mut wv = [_mm512_setzero_si512(); V];
            for (v, wr) in wv.iter_mut().enumerate() {
                *wr = unsafe { _mm512_loadu_si512(w.add(32 * v) as *const _) };
            }
            for p in 0..P {
                // The pixel's two values (c, c + 1) as one 32-bit lane, in every lane.
                let pair = unsafe { (px[p].add(c) as *const u32).read_unaligned() };
                let xb: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(pair as i32)) };
                for v in 0..V {
                    let wb: __m512bh = unsafe { std::mem::transmute(wv[v]) };
                    acc[p][v] = _mm512_dpbf16_ps(acc[p][v], xb, wb);
                }
            }
            w = unsafe { w.add(32 * V) };
        }
    }
    let act = super::ActRegs::new(a.mode.act);
    for p in 0..P {
        if p >= a.np {
            break;
        }
        for v in 0..V {
            if masks[v] == 0 {
                continue;
            }
            let mut r = acc[p][v];
            if a.mode.last && !a.skip.is_null() {
                let s = unsafe { _mm512_maskz_loadu_ps(masks[v], a.skip.add(a.sbase[p] + 16 * v)) };
                r = _mm512_add_ps(r, s);
            }
            r = act.apply(r);
            let o = unsafe { a.y.add(a.obase[p] + 16 * v) };
            unsafe { _mm512_mask_storeu_ps(o, masks[v], r) };
        }
    }
}

/// `src` rounded to bf16 (ties to even, NaN kept quiet: `greenbench_core::bf16::to_bits`
/// exactly, denormals included) into `dst`, 16 values per step: `vcvtneps2bf16` where the CPU
/// has AVX-512 BF16 (one instruction; it flushes denormal inputs to zero, so a step holding
/// one rounds in integer arithmetic instead), else integer arithmetic throughout.
///
/// # Safety
/// The CPU has AVX-512F; `dst` points to `src.len()` writable values.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn round_row(src: &[f32], dst: *mut u16) {
    if std::arch::is_x86_feature_detected!("avx512bf16")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
    {
        // SAFETY: the features just detected; the caller's bounds.
        return unsafe { round_row_cvt(src, dst) };
    }
    // SAFETY: AVX-512F; the caller's bounds.
    unsafe { round_row_int(src, dst) }
}

/// Three-channel pixels' bf16 values (`src`, `3 n` of them: a first layer's RGB, rounded by
/// [`round_row`]) spread into slots of four (`dst`, `4 n`: each pixel's three values and a
/// zero), 8 pixels a step with one `vpermw` (the store per pixel it replaces was 4 % of
/// mobilenet-v1-0.25's bf16 run, `perf record`, batch 32, one thread).
///
/// # Safety
/// The CPU has AVX-512 F/BW; `dst` points to `4 n` writable values.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn spread_rgb(src: &[u16], dst: *mut u16) {
    let n = src.len() / 3;
    // Slot 4p + t of a step's output reads value 3p + t of its input; slot 3 of each stays 0.
    let idx: [u16; 32] = std::array::from_fn(|j| (3 * (j / 4) + (j % 4).min(2)) as u16);
    // SAFETY: 32 u16.
    let idx = unsafe { _mm512_loadu_si512(idx.as_ptr() as *const __m512i) };
    let mut p = 0;
    while p < n {
        let k = (n - p).min(8);
        // SAFETY: values 3p .. 3(p + k) of `src` (the load's other lanes masked off), slots
        // 4p .. 4(p + k) of `dst` (the caller's bound).
        unsafe {
            let v = _mm512_maskz_loadu_epi16(
                (1u32 << (3 * k)) - 1,
                src.as_ptr().add(3 * p) as *const i16,
            );
            let o = _mm512_maskz_permutexvar_epi16(0x7777_7777, idx, v);
            let m = if k == 8 {
                u32::MAX
            } else {
                (1u32 << (4 * k)) - 1
            };
            _mm512_mask_storeu_epi16(dst.add(4 * p) as *mut i16, m, o);
        }
        p += k;
    }
}

/// [`round_row`] in integer arithmetic.
///
/// # Safety
/// As [`round_row`].
#[target_feature(enable = "avx512f")]
unsafe fn round_row_int(src: &[f32], dst: *mut u16) {
    let n16 = src.len() / 16 * 16;
    for i in (0..n16).step_by(16) {
        // SAFETY: values i..i + 16 of `src` and `dst` (the caller's bounds).
        unsafe {
            let r = round16(_mm512_loadu_ps(src.as_ptr().add(i)));
            _mm256_storeu_si256(dst.add(i) as *mut __m256i, r);
        }
    }
    // SAFETY: the caller's bounds.
    unsafe { round_tail(src, dst, n16) };
}

/// [`round_row`] with `vcvtneps2bf16`, 16 values a step, the last step masked (its lanes past
/// the row load as zeros, not denormals); a step holding a denormal rounds by [`round16`].
///
/// # Safety
/// AVX-512 F/BW/VL/DQ/BF16; the bounds of [`round_row`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
unsafe fn round_row_cvt(src: &[f32], dst: *mut u16) {
    // 64 values a step while they last, one denormal test for the four vectors (a test and
    // branch per 16 values held the loop to the conversion's latency).
    let n64 = src.len() / 64 * 64;
    for i in (0..n64).step_by(64) {
        // SAFETY: values i..i + 64 of `src` and `dst` (the caller's bounds).
        unsafe {
            let p = src.as_ptr().add(i);
            let x = [
                _mm512_loadu_ps(p),
                _mm512_loadu_ps(p.add(16)),
                _mm512_loadu_ps(p.add(32)),
                _mm512_loadu_ps(p.add(48)),
            ];
            let denormal = _mm512_fpclass_ps_mask::<0x20>(x[0])
                | _mm512_fpclass_ps_mask::<0x20>(x[1])
                | _mm512_fpclass_ps_mask::<0x20>(x[2])
                | _mm512_fpclass_ps_mask::<0x20>(x[3]);
            for (j, &v) in x.iter().enumerate() {
                let r = if denormal == 0 {
                    std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v))
                } else {
                    round16(v)
                };
                _mm256_storeu_si256(dst.add(i + 16 * j) as *mut __m256i, r);
            }
        }
    }
    for i in (n64..src.len()).step_by(16) {
        let m = if src.len() - i >= 16 {
            u16::MAX
        } else {
            ((1u32 << (src.len() - i)) - 1) as u16
        };
        // SAFETY: lanes i..min(i + 16, len) of `src` and `dst` only (the caller's bounds).
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, src.as_ptr().add(i));
            // fpclass 0x20: denormal.
            let r = if _mm512_fpclass_ps_mask::<0x20>(x) == 0 {
                std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x))
            } else {
                round16(x)
            };
            _mm256_mask_storeu_epi16(dst.add(i) as *mut i16, m, r);
        }
    }
}

/// 16 values rounded to bf16 in integer arithmetic: add `0x7fff` plus the kept part's lowest
/// bit, keep the top 16 bits; NaN: its top 16 bits with the quiet bit set.
#[target_feature(enable = "avx512f")]
#[inline]
fn round16(x: __m512) -> __m256i {
    let one = _mm512_set1_epi32(1);
    let half = _mm512_set1_epi32(0x7fff);
    let quiet = _mm512_set1_epi32(0x0040);
    let b = _mm512_castps_si512(x);
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(b), one);
    let r = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, _mm512_add_epi32(half, lsb)));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    let r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32::<16>(b), quiet));
    _mm512_cvtepi32_epi16(r)
}

/// Values `from..` of `src` rounded one by one.
///
/// # Safety
/// `dst` points to `src.len()` writable values.
unsafe fn round_tail(src: &[f32], dst: *mut u16, from: usize) {
    for (i, &v) in src.iter().enumerate().skip(from) {
        // SAFETY: the caller's bounds (`dst` holds `src.len()` values).
        unsafe { *dst.add(i) = greenbench_core::bf16::to_bits(v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised rounding is `greenbench_core::bf16::to_bits`, bit for bit, on every kind
    /// of value: ties both ways, just past them, denormals, infinities, NaN, the largest
    /// finite (to infinity), signed zeros; lengths that leave a scalar tail.
    #[test]
    fn round_row_is_the_reference_rounding() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: no AVX-512F");
            return;
        }
        let mut x: Vec<f32> = vec![
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
            -(1.0 + 2f32.powi(-8)),
            f32::from_bits(0x3f80_8001),
            f32::from_bits(0x3f80_7fff),
            f32::from_bits(0x0000_8001),
            f32::from_bits(0x0001_8000),
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0xffc1_2345),
            // A signalling NaN (quiet bit clear).
            f32::from_bits(0x7f81_2345),
            -0.0,
            0.0,
        ];
        x.extend((0..1000u32).map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761))));
        // Also without the denormals, so the ties and NaNs above meet `vcvtneps2bf16` (a step
        // holding a denormal rounds in integer arithmetic).
        let normal: Vec<f32> = x.iter().copied().filter(|v| !v.is_subnormal()).collect();
        for x in [&x, &normal] {
            for len in [0, 5, 16, 17, 64, 65, 130, x.len()] {
                // The dispatched form (`vcvtneps2bf16` where present) and the integer one.
                let (mut got, mut int) = (vec![0u16; len], vec![0u16; len]);
                unsafe { round_row(&x[..len], got.as_mut_ptr()) };
                unsafe { round_row_int(&x[..len], int.as_mut_ptr()) };
                for (i, ((&g, &n), &v)) in got.iter().zip(&int).zip(x).enumerate() {
                    let want = greenbench_core::bf16::to_bits(v);
                    assert_eq!(g, want, "value {i}: {v:e}");
                    assert_eq!(n, want, "integer path, value {i}: {v:e}");
                }
            }
        }
    }
}
