//! The VNNI depthwise rows two output rows at a time, for kernels whose rows are three or
//! four taps wide (MobileNet's and DS-CNN's 3x3): with a quad of taps per kernel row
//! ([`super::depthwise::dw_row_quads`]), the interleaved bytes of one input row serve every
//! output row that reads it, so rows `oy` and `oy + 1` (stride `s`) interleave their `s + kh`
//! input rows once each instead of `kh` each: for a 3x3 kernel, 4 interleaves (32 `unpack`s
//! on the one shuffle port) for two rows' 64-value blocks where the quad kernel made 6 (48).
//! The sums, the weights' layout and the epilogue are [`super::depthwise::dw_rows`]'s; an odd
//! last row runs there.

#[cfg(target_arch = "x86_64")]
use super::depthwise::{RowsArgs, dw_rows, finish_block, interleave4};
#[cfg(target_arch = "x86_64")]
use super::epilogue::EpiRegs;

/// [`super::depthwise::dw_vnni_rows`]'s rows in pairs (its quads a kernel row each), with the
/// epilogue's form `M`.
///
/// # Safety
/// As [`super::depthwise::dw_vnni_rows`], whose asserts bound every read and write here: the
/// pair `(oy, oy + 1)` reads input rows `oy sh .. (oy + 1) sh + kh`, those the quad kernel
/// reads for its two rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
pub(super) unsafe fn dw_row_pairs<const M: u8>(
    ra: &RowsArgs<'_>,
    regs: &EpiRegs,
    rows: std::ops::Range<usize>,
    q: &mut [u8],
) {
    use std::arch::x86_64::*;
    let (src, quads, epi) = (ra.src, ra.quads, ra.epi);
    let (len, span, blocks, kh, sh) = (ra.len, ra.span, ra.blocks, ra.kh, ra.sh);
    // Row 0's quad: its taps' offsets (quad ky's are these plus ky input rows).
    let o = &ra.offs[..4];
    let mut oy = rows.start;
    let mut j = 0;
    while oy < rows.end {
        if oy + 1 == rows.end {
            // SAFETY: the caller's (one row of theirs).
            unsafe { dw_rows::<M>(ra, regs, oy..oy + 1, &mut q[j * len..]) };
            return;
        }
        let base = oy * ra.row_step;
        let (q0, q1) = q[j * len..(j + 2) * len].split_at_mut(len);
        let (mut f, mut fs) = (0, 0);
        while f < len {
            let b = fs / 64;
            let (mut a0, mut a1) = ([_mm512_setzero_si512(); 4], [_mm512_setzero_si512(); 4]);
            for r in 0..sh + kh {
                // SAFETY: input row r of the pair, its block at f: inside `src` (the caller's
                // bound); quad `ky`'s 256 weight bytes inside `quads` (`kh` quads).
                unsafe {
                    let at = src.as_ptr().add(base + r * ra.row_bytes + f);
                    let ld = |t: usize| _mm512_loadu_si512(at.add(o[t]) as *const __m512i);
                    let xq = interleave4([ld(0), ld(1), ld(2), ld(3)]);
                    let dot = |acc: &mut [__m512i; 4], ky: usize| {
                        let wq = quads.as_ptr().add((ky * blocks + b) * 256);
                        for k in 0..4 {
                            let wv = _mm512_loadu_si512(wq.add(64 * k) as *const __m512i);
                            acc[k] = _mm512_dpbusd_epi32(acc[k], xq[k], wv);
                        }
                    };
                    if r < kh {
                        dot(&mut a0, r);
                    }
                    if r >= sh && r - sh < kh {
                        dot(&mut a1, r - sh);
                    }
                }
            }
            // SAFETY: the epilogue's arrays cover `fs + 64 <= span + 64`; values f ..
            // min(f + 64, len) of each row.
            unsafe {
                finish_block::<M>(epi, regs, &a0, fs, &mut q0[f..]);
                finish_block::<M>(epi, regs, &a1, fs, &mut q1[f..]);
            }
            f += 64;
            fs = if fs + 64 == span { 0 } else { fs + 64 };
        }
        oy += 2;
        j += 2;
    }
}
