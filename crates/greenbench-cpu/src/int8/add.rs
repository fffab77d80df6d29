//! The uint8 residual add (`add_q` over a buffer): with AVX-512, eight values a vector in
//! 64-bit lanes, bit for bit.
//!
//! `add_q` computes `p = (a - za) ma + (b - zb) mb` (multipliers of up to 30 bits, so `p`
//! needs 64 bits), rounds `p / 2^s` half away from zero, adds the output's zero point and
//! clamps. The vector form folds the constants: `p = a ma + b mb - k` with `k = za ma + zb
//! mb`, and `round(p / 2^s) + zy = (a ma + b mb + c - [p < 0]) >> s` (arithmetic) with `c =
//! 2^(s-1) + zy 2^s - k`: half up, one less on the negative side turns its ties away from
//! zero, and adding `zy 2^s` before the floor adds `zy` after it. The compiler's own
//! vectorisation of the scalar loop (64-bit products, a branch) left resnet8's three adds at
//! 18 % of its int8 time (`inspect resnet8 --time --batch 32 --threads 1 --precision int8`,
//! Ice Lake VM, 2026-12-07: `s1_add` 12.1 us of 122); this loop takes it to 6.0-6.3, the
//! three adds 21.2 -> 10.5-11.0 us (two alternating runs each).

use greenbench_core::quant::add_q;

/// One add node's constants (`Step::Add`): zero points `(za, zb, zy)`, and `(ma, mb, s, lo,
/// hi)`.
pub(super) type AddNode = ((i32, i32, i32), (i64, i64, u32, u8, u8));

/// `out[i] = add_q(a[i], b[i], ..)` over the three slices (of equal length), with AVX-512
/// where `wide`.
pub(super) fn add_u8(a: &[u8], b: &[u8], out: &mut [u8], node: AddNode, wide: bool) {
    let ((za, zb, zy), q) = node;
    let n = out.len().min(a.len()).min(b.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if wide && vector_fits(node) {
        // SAFETY: AVX-512 F/BW/VL/DQ are present (`wide`); the constants fit (`vector_fits`).
        done = unsafe { add_avx512(&a[..n], &b[..n], &mut out[..n], node) };
    }
    for i in done..n {
        out[i] = add_q(a[i], b[i], za, zb, zy, q);
    }
}

/// Whether the vector form is exact for these constants: multipliers that `vpmuludq` takes
/// (31-bit), a shift of at least 1 and at most 54, zero points of a byte, and the folded
/// constant and sums well inside 63 bits (the quantizer's adds have 30-bit multipliers; a
/// shift above 54, from an input-to-output scale ratio below 2^-24, takes the scalar loop).
fn vector_fits(((za, zb, zy), (ma, mb, s, _, _)): AddNode) -> bool {
    let m31 = |m: i64| (0..1i64 << 31).contains(&m);
    let z8 = |z: i32| (0..=255).contains(&z);
    m31(ma) && m31(mb) && (1..=54).contains(&s) && z8(za) && z8(zb) && z8(zy)
}

/// The AVX-512 loop over whole eights; returns how many values it did.
///
/// The multipliers are broadcast from `u32`s: broadcast from an `i64`, LLVM could not see
/// their upper halves are zero and emitted `vpmullq` (AVX-512DQ enabled) or a 64 x 64 multiply
/// from three `vpmuludq`s and shifts, and resnet8's `s1_add` read 7.4-8.2 us against 6.0-6.3.
///
/// # Safety
/// AVX-512F; `node` passes [`vector_fits`]; the slices have equal length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_avx512(a: &[u8], b: &[u8], out: &mut [u8], node: AddNode) -> usize {
    use std::arch::x86_64::*;
    let ((za, zb, zy), (ma, mb, s, lo, hi)) = node;
    let k = za as i64 * ma + zb as i64 * mb;
    let c = (1i64 << (s - 1)) + ((zy as i64) << s) - k;
    // Built from u32s, so that LLVM sees zero upper halves and keeps one `vpmuludq` a product.
    let (vma, vmb) = (
        _mm512_set1_epi64(ma as u32 as i64),
        _mm512_set1_epi64(mb as u32 as i64),
    );
    let (vk, vc, one) = (
        _mm512_set1_epi64(k),
        _mm512_set1_epi64(c),
        _mm512_set1_epi64(1),
    );
    let (vlo, vhi) = (_mm512_set1_epi64(lo as i64), _mm512_set1_epi64(hi as i64));
    let count = _mm_cvtsi64_si128(s as i64);
    let n = out.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: i + 8 <= n, within all three slices.
        unsafe {
            let va = _mm512_cvtepu8_epi64(_mm_loadl_epi64(a.as_ptr().add(i) as *const __m128i));
            let vb = _mm512_cvtepu8_epi64(_mm_loadl_epi64(b.as_ptr().add(i) as *const __m128i));
            // a ma + b mb: exact unsigned 32 x 32 -> 64-bit products (bytes, multipliers < 2^31).
            let s0 = _mm512_add_epi64(_mm512_mul_epu32(va, vma), _mm512_mul_epu32(vb, vmb));
            let negative = _mm512_cmplt_epi64_mask(s0, vk);
            let t = _mm512_add_epi64(s0, vc);
            let t = _mm512_mask_sub_epi64(t, negative, t, one);
            let r = _mm512_min_epi64(_mm512_max_epi64(_mm512_sra_epi64(t, count), vlo), vhi);
            _mm_storel_epi64(
                out.as_mut_ptr().add(i) as *mut __m128i,
                _mm512_cvtepi64_epi8(r),
            );
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::epilogue::wide_int8 as wide;
    use proptest::prelude::*;

    proptest! {
        /// Bit for bit the reference's `add_q` over every value pair's neighbourhood, for
        /// multipliers and shifts as the quantizer makes them (30-bit, any ratio), exact ties
        /// included (multipliers that are multiples of 2^(s-1)), clamps of fused ReLUs.
        #[test]
        fn add_matches_add_q(
            a in proptest::collection::vec(any::<u8>(), 0..100),
            seed in any::<u64>(),
            (za, zb, zy) in (any::<u8>(), any::<u8>(), any::<u8>()),
            ma in 1i64..(1 << 30), mb in 0i64..(1 << 30),
            s in 1u32..=54, tie in any::<bool>(),
            (lo, hi) in (0u8..=64, 128u8..=255),
        ) {
            let (ma, mb) = if tie {
                // Multiples of 2^(s-1): p / 2^s lands on halves.
                let h = 1i64 << (s - 1);
                ((ma % 64 + 1) * h, (mb % 64) * h)
            } else {
                (ma, mb)
            };
            prop_assume!(ma < 1 << 31 && mb < 1 << 31);
            let b: Vec<u8> = (0..a.len()).map(|i| (seed >> (i % 57)) as u8 ^ i as u8).collect();
            let node = ((za as i32, zb as i32, zy as i32), (ma, mb, s, lo, hi));
            let mut got = vec![0u8; a.len()];
            add_u8(&a, &b, &mut got, node, wide());
            for i in 0..a.len() {
                let want = add_q(a[i], b[i], za as i32, zb as i32, zy as i32, (ma, mb, s, lo, hi));
                prop_assert_eq!(got[i], want, "at {} of {}: a {} b {}", i, a.len(), a[i], b[i]);
            }
        }
    }

    /// Every pair of bytes, for a few constant sets (ties among them): the whole table.
    #[test]
    fn add_matches_add_q_on_every_pair() {
        let a: Vec<u8> = (0..65536).map(|i| (i >> 8) as u8).collect();
        let b: Vec<u8> = (0..65536).map(|i| i as u8).collect();
        for node in [
            ((128, 128, 128), (1 << 29, 1 << 29, 30, 0, 255)),
            ((3, 250, 0), (536_870_913, 7_777_777, 30, 0, 255)),
            ((0, 0, 17), (3 << 20, 5 << 20, 22, 17, 200)),
            ((255, 1, 255), (1_073_741_823, 1, 31, 0, 255)),
            ((77, 99, 5), (1, 1, 1, 0, 255)),
        ] {
            let mut got = vec![0u8; a.len()];
            add_u8(&a, &b, &mut got, node, wide());
            let ((za, zb, zy), q) = node;
            for i in 0..a.len() {
                assert_eq!(
                    got[i],
                    add_q(a[i], b[i], za, zb, zy, q),
                    "{node:?} at a {} b {}",
                    a[i],
                    b[i]
                );
            }
        }
    }
}
