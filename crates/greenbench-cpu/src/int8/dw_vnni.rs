//! The VNNI depthwise rows (`vpdpbusd`, stride 1 or 2): the entry that sets a call up
//! ([`dw_vnni_rows`]: the taps' offsets, the bounds, the epilogue's form) and its row-pair
//! form. The quad kernel's pieces (the interleave, the block epilogue, its row loop) are
//! `depthwise.rs`'s.
//!
//! Row pairs: for kernels whose rows are three or four taps wide (MobileNet's and DS-CNN's
//! 3x3), with a quad of taps per kernel row ([`super::depthwise::dw_row_quads`]), the
//! interleaved bytes of one input row serve every output row that reads it, so rows `oy` and
//! `oy + 1` (stride `s`) interleave their `s + kh` input rows once each instead of `kh` each:
//! for a 3x3 kernel, 4 interleaves (32 `unpack`s on the one shuffle port) for two rows'
//! 64-value blocks where the quad kernel made 6 (48). The sums, the weights' layout and the
//! epilogue are [`super::depthwise::dw_rows`]'s; an odd last row runs there.

use super::depthwise::{MAX_VNNI_TAPS, takes_row_pairs};
#[cfg(target_arch = "x86_64")]
use super::depthwise::{RowsArgs, dw_rows, finish_block, interleave4};
use super::epilogue::Epi;
#[cfg(target_arch = "x86_64")]
use super::epilogue::EpiRegs;
#[cfg(target_arch = "x86_64")]
use super::epilogue::{ANY_MODE, HIGH_MODE};
use greenbench_core::graph::ConvGeom;

/// Output rows `rows` of a depthwise convolution with `vpdpbusd`: per 64-value block of each
/// flattened row (as [`depthwise_row_s1`]), the inputs of four taps are interleaved
/// byte by byte (`unpack` 8 then 16 bits) so one instruction sums four taps' products per
/// value; the four accumulators come out lane-permuted and are put back in order with a
/// 4 x 4 transpose of 128-bit lanes. The last block reads past the row (into the slack) and
/// keeps only its own values.
///
/// The values go through the epilogue `epi` (the layer's [`Epi::quad_permuted`] to this
/// `span`) straight into the rows' uint8 outputs `q` (row `rows.start` first): no int32 sums
/// reach memory and no transpose is made. The taps' offsets and the epilogue's registers are
/// set up once for all the rows (a row of a small image is only a few blocks).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `src` holds the padded image plus SLACK bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn dw_vnni_rows(
    src: &[u8],
    wp: usize,
    odd: usize,
    c: &ConvGeom,
    quads: &[i8],
    span: usize,
    rows: std::ops::Range<usize>,
    epi: &Epi,
    q: &mut [u8],
) {
    let ch = c.cin;
    let taps = c.kh * c.kw;
    // Kernel rows of 3 or 4 taps run as row pairs, a quad a kernel row (the plan built
    // their weights so: `dw_row_quads`); others in quads of four consecutive taps.
    let rows_quads = takes_row_pairs(c.kh, c.kw);
    let groups = if rows_quads { c.kh } else { taps.div_ceil(4) };
    let blocks = span / 64;
    let len = c.wo * c.cout;
    // Output row `oy` reads from input row `oy * sh`: its taps' offsets are row 0's plus
    // this (in either half of a column split).
    let row_step = c.sh * wp * ch;
    // Stride 1: tap (ky, kx) reads the row from column kx. Stride 2 (`odd` > 0): `src` holds
    // the even columns, then from `odd` the odd ones, each `wp` wide, so tap (ky, kx) reads
    // the row from column kx / 2 of its half: consecutive output pixels, consecutive bytes.
    let tap_at = |ky: usize, kx: usize| {
        if odd == 0 {
            (ky * wp + kx) * ch
        } else {
            (kx % 2) * odd + (ky * wp + kx / 2) * ch
        }
    };
    // Each tap's offset, once per row (no division per tap and block); the quads' padding
    // taps (past `taps`, zero weights) read tap 0's bytes.
    assert!(
        groups * 4 <= MAX_VNNI_TAPS,
        "planned only up to {MAX_VNNI_TAPS} taps"
    );
    let mut offs = [0usize; MAX_VNNI_TAPS];
    if rows_quads {
        // Quad ky: the row's taps, then its first tap again (zero weights).
        for ky in 0..c.kh {
            for t in 0..4 {
                offs[4 * ky + t] = tap_at(ky, if t < c.kw { t } else { 0 });
            }
        }
    } else {
        for ky in 0..c.kh {
            for kx in 0..c.kw {
                offs[ky * c.kw + kx] = tap_at(ky, kx);
            }
        }
        for t in taps..groups * 4 {
            offs[t] = offs[0];
        }
    }
    let offs0 = &offs[..groups * 4];
    let last = offs0.iter().max().copied().unwrap_or(0)
        + rows.end.saturating_sub(1) * row_step
        + len.next_multiple_of(64);
    assert!(src.len() >= last && quads.len() == groups * blocks * 256);
    assert!(
        q.len() >= rows.len() * len && epi.wide && epi.ch == ch && epi.span == span,
        "fused rows' outputs, through the quad-permuted epilogue"
    );
    // SAFETY: AVX-512 F (this function's features).
    let regs = unsafe { epi.regs() };
    let a = RowsArgs {
        src,
        quads,
        offs: offs0,
        row_step,
        row_bytes: wp * ch,
        kh: c.kh,
        sh: c.sh,
        len,
        span,
        blocks,
        epi,
    };
    // SAFETY: the bounds asserted above; this function's features. The epilogue's form
    // chosen once here (`High`, the usual one, fixed in the loop).
    unsafe {
        match (rows_quads, regs.is_high()) {
            (true, true) => dw_row_pairs::<HIGH_MODE>(&a, &regs, rows, q),
            (true, false) => dw_row_pairs::<ANY_MODE>(&a, &regs, rows, q),
            (false, true) => dw_rows::<HIGH_MODE>(&a, &regs, rows, q),
            (false, false) => dw_rows::<ANY_MODE>(&a, &regs, rows, q),
        }
    }
}

/// [`dw_vnni_rows`]'s rows in pairs (its quads a kernel row each), with the
/// epilogue's form `M`.
///
/// # Safety
/// As [`dw_vnni_rows`], whose asserts bound every read and write here: the
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
                    // Kernel row `r` of the first output row, `r - sh` of the second (loops,
                    // not a closure: a closure lacks this function's target features).
                    if r < kh {
                        let wq = quads.as_ptr().add((r * blocks + b) * 256);
                        for k in 0..4 {
                            let wv = _mm512_loadu_si512(wq.add(64 * k) as *const __m512i);
                            a0[k] = _mm512_dpbusd_epi32(a0[k], xq[k], wv);
                        }
                    }
                    if r >= sh && r - sh < kh {
                        let wq = quads.as_ptr().add(((r - sh) * blocks + b) * 256);
                        for k in 0..4 {
                            let wv = _mm512_loadu_si512(wq.add(64 * k) as *const __m512i);
                            a1[k] = _mm512_dpbusd_epi32(a1[k], xq[k], wv);
                        }
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
