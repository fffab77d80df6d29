//! The int8 depthwise convolution: a direct loop over uint8 pixels with int32 sums, and the
//! VNNI stride-1 row kernel over quads of taps.

use super::epilogue::Epi;
#[cfg(target_arch = "x86_64")]
use super::epilogue::EpiRegs;
use greenbench_core::graph::ConvGeom;

/// A depthwise convolution of one (padded) image into int32 sums: per output pixel and
/// block of channels, the taps' `x * w` summed in registers (the zero point's share,
/// `z_x * sum w`, is folded into the epilogue's bias). The last block may reach past the channels:
/// it reads the next pixel's bytes (or the slack) against zero weights and keeps only its
/// own channels.
#[inline(always)]
pub(super) fn depthwise_u8(src: &[u8], wp: usize, c: &ConvGeom, w: &[i32], y: &mut [i32]) {
    let ch = c.cin;
    for oy in 0..c.ho {
        for ox in 0..c.wo {
            let o = (oy * c.wo + ox) * ch;
            let mut cb = 0;
            while cb + 64 <= ch {
                dw_block::<64>(src, wp, c, w, oy, ox, cb, &mut y[o + cb..o + cb + 64]);
                cb += 64;
            }
            while cb < ch {
                let n = (ch - cb).min(16);
                dw_block::<16>(src, wp, c, w, oy, ox, cb, &mut y[o + cb..o + cb + n]);
                cb += 16;
            }
        }
    }
}

/// One output row of a stride-1 depthwise convolution as a 1-D convolution of the
/// flattened row (`wo * C` values): output value `f` (pixel `f / C`, channel `f % C`) reads
/// input value `f + kx * C` of each kernel row, so whole 64-value blocks span several pixels
/// whatever C is, against weights repeated to `span`. The tail block reads past the row (the
/// next row's bytes, or the slack) and keeps only its own values.
#[inline(always)]
pub(super) fn depthwise_row_s1(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    tiled: &[i32],
    span: usize,
    oy: usize,
    y: &mut [i32],
) {
    let len = y.len();
    let mut f = 0;
    while f + 64 <= len {
        dw_run::<64>(src, wp, c, tiled, span, oy, f, &mut y[f..f + 64]);
        f += 64;
    }
    while f < len {
        let n = (len - f).min(16);
        dw_run::<16>(src, wp, c, tiled, span, oy, f, &mut y[f..f + n]);
        f += 16;
    }
}

/// The VNNI kernel's weights: for each quad of taps `g` and each 64-value block offset `a`
/// in `span`, four 64-byte vectors `k = 0..4` whose 32-bit lane `4L + i` holds the four taps'
/// weights of value `a + 16L + 4k + i` (the order `unpack` leaves the interleaved inputs in).
/// Quads of four consecutive taps (row by row): `ceil(taps / 4)` of them.
pub(super) fn dw_quads(tiled: &[i32], taps: usize, span: usize) -> Vec<i8> {
    quads_by(tiled, span, taps.div_ceil(4), |g, t| {
        Some(4 * g + t).filter(|&tap| tap < taps)
    })
}

/// [`dw_quads`] with a quad per kernel row (kernels `kw <= 4` wide: [`takes_row_pairs`]):
/// quad `ky` holds taps `(ky, 0..kw)`, zeros after.
pub(super) fn dw_row_quads(tiled: &[i32], kh: usize, kw: usize, span: usize) -> Vec<i8> {
    assert!(kw <= 4);
    quads_by(tiled, span, kh, |g, t| (t < kw).then_some(g * kw + t))
}

/// Whether the row-pair form of `dw_vnni_rows` (`dw_vnni.rs`) takes a depthwise kernel
/// `kh x kw`: rows of three or four taps (one quad a row, as many quads as four taps at a
/// time would need for three rows of three).
pub(super) fn takes_row_pairs(kh: usize, kw: usize) -> bool {
    (3..=4).contains(&kw) && kh * 4 <= MAX_VNNI_TAPS
}

/// The quads' weight vectors, quad `g`'s slot `t` holding tap `tap(g, t)` (or zeros).
fn quads_by(
    tiled: &[i32],
    span: usize,
    groups: usize,
    tap: impl Fn(usize, usize) -> Option<usize>,
) -> Vec<i8> {
    let blocks = span / 64;
    let mut q = vec![0i8; groups * blocks * 256];
    for g in 0..groups {
        for b in 0..blocks {
            for k in 0..4 {
                for lane in 0..4 {
                    for i in 0..4 {
                        let value = b * 64 + 16 * lane + 4 * k + i;
                        for t in 0..4 {
                            if let Some(tap) = tap(g, t) {
                                let at = (((g * blocks + b) * 4 + k) * 16 + 4 * lane + i) * 4 + t;
                                q[at] = tiled[tap * span + value] as i8;
                            }
                        }
                    }
                }
            }
        }
    }
    q
}

/// The most taps (rounded up to whole quads) the VNNI depthwise kernel takes, 8 x 8 (its
/// tap offsets live in a fixed array); the plan gives larger kernels the plain loops.
pub(super) const MAX_VNNI_TAPS: usize = 64;

/// What [`dw_rows`] reads: [`dw_vnni_rows`]'s arguments and the taps' offsets in row 0.
#[cfg(target_arch = "x86_64")]
pub(super) struct RowsArgs<'a> {
    pub(super) src: &'a [u8],
    pub(super) quads: &'a [i8],
    pub(super) offs: &'a [usize],
    /// Bytes from one output row's first input row to the next's (`sh` input rows).
    pub(super) row_step: usize,
    /// Bytes of one input row (of the padded image, or of either half of its split).
    pub(super) row_bytes: usize,
    pub(super) kh: usize,
    pub(super) sh: usize,
    pub(super) len: usize,
    pub(super) span: usize,
    pub(super) blocks: usize,
    pub(super) epi: &'a Epi,
}

/// [`dw_vnni_rows`]'s loop over the rows, with the epilogue's form `M`
/// ([`Epi::vec16_in`]).
///
/// # Safety
/// As [`dw_vnni_rows`], whose asserts bound every read and write here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
pub(super) unsafe fn dw_rows<const M: u8>(
    ra: &RowsArgs<'_>,
    regs: &EpiRegs,
    rows: std::ops::Range<usize>,
    q: &mut [u8],
) {
    use std::arch::x86_64::*;
    let (src, quads, epi) = (ra.src, ra.quads, ra.epi);
    let (len, span, blocks) = (ra.len, ra.span, ra.blocks);
    for (j, oy) in rows.enumerate() {
        let base = oy * ra.row_step;
        let q = &mut q[j * len..(j + 1) * len];
        // `f % span`, kept as f steps by 64 (a row starts at channel 0: `len` is whole pixels).
        let mut fs = 0;
        let mut f = 0;
        while f < len {
            let b = fs / 64;
            let mut acc = [_mm512_setzero_si512(); 4];
            for (g, o) in ra.offs.chunks_exact(4).enumerate() {
                // SAFETY: every tap's 64 bytes from `base + f` end by `last` (asserted), the weights'
                // 256 bytes are inside `quads` (asserted size).
                unsafe {
                    let ld = |t: usize| {
                        _mm512_loadu_si512(src.as_ptr().add(base + o[t] + f) as *const __m512i)
                    };
                    let xq = interleave4([ld(0), ld(1), ld(2), ld(3)]);
                    let wq = quads.as_ptr().add((g * blocks + b) * 256);
                    for k in 0..4 {
                        let wv = _mm512_loadu_si512(wq.add(64 * k) as *const __m512i);
                        acc[k] = _mm512_dpbusd_epi32(acc[k], xq[k], wv);
                    }
                }
            }
            // SAFETY: the epilogue's arrays cover `fs + 64 <= span + 64`; values f ..
            // min(f + 64, len) of `q` (asserted to hold `len`).
            unsafe { finish_block::<M>(epi, regs, &acc, fs, &mut q[f..]) };
            f += 64;
            fs = if fs + 64 == span { 0 } else { fs + 64 };
        }
    }
}

/// Four taps' 64 bytes interleaved byte by byte (`unpack` 8 then 16 bits): register `k`'s
/// 32-bit lane `4 L + i` holds the four taps' bytes of value `16 L + 4 k + i`.
///
/// # Safety
/// AVX-512 BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) unsafe fn interleave4(
    x: [std::arch::x86_64::__m512i; 4],
) -> [std::arch::x86_64::__m512i; 4] {
    use std::arch::x86_64::*;
    let (a, b) = (
        _mm512_unpacklo_epi8(x[0], x[1]),
        _mm512_unpackhi_epi8(x[0], x[1]),
    );
    let (c, d) = (
        _mm512_unpacklo_epi8(x[2], x[3]),
        _mm512_unpackhi_epi8(x[2], x[3]),
    );
    [
        _mm512_unpacklo_epi16(a, c),
        _mm512_unpackhi_epi16(a, c),
        _mm512_unpacklo_epi16(b, d),
        _mm512_unpackhi_epi16(b, d),
    ]
}

/// One 64-value block of lane-permuted sums (`acc`, as [`interleave4`] leaves four taps'
/// products) through the quad-permuted epilogue at `fs` (its arrays meet register `j`'s
/// values at `fs + 16 j`), packed and clamped (`Epi::pack4`: `vpackssdw` of registers 0 and 1
/// puts lane L's values 16L .. 16L + 8 together, `vpackuswb` with 2 and 3's adds 16L + 8 ..
/// 16L + 16: the 64 bytes in order, no transpose) into `q`'s first `min(64, q.len())`
/// bytes.
///
/// # Safety
/// AVX-512 F/BW/VL; `regs` made by `epi`, `M` as they allow; `fs + 64 <= epi.span + 64`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
pub(super) unsafe fn finish_block<const M: u8>(
    epi: &Epi,
    regs: &EpiRegs,
    acc: &[std::arch::x86_64::__m512i; 4],
    fs: usize,
    q: &mut [u8],
) {
    use std::arch::x86_64::*;
    let n = q.len().min(64);
    let m: u64 = if n == 64 { !0 } else { (1u64 << n) - 1 };
    // SAFETY: the caller's; the masked store writes `n` bytes of `q`.
    unsafe {
        // Four calls, not a closure: a closure lacks this function's target features, so
        // `vec16` would not inline into it.
        let r0 = epi.vec16_in::<false, M>(regs, acc[0], fs);
        let r1 = epi.vec16_in::<false, M>(regs, acc[1], fs + 16);
        let r2 = epi.vec16_in::<false, M>(regs, acc[2], fs + 32);
        let r3 = epi.vec16_in::<false, M>(regs, acc[3], fs + 48);
        let bytes = epi.pack4(regs, [r0, r1, r2, r3]);
        _mm512_mask_storeu_epi8(q.as_mut_ptr() as *mut i8, m, bytes);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn dw_run<const N: usize>(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    tiled: &[i32],
    span: usize,
    oy: usize,
    f: usize,
    out: &mut [i32],
) {
    let ch = c.cin;
    let mut acc = [0i32; N];
    let at = f % span;
    for ky in 0..c.kh {
        let row = (oy * c.sh + ky) * wp * ch + f;
        for kx in 0..c.kw {
            let s: &[u8; N] = src[row + kx * ch..][..N].try_into().expect("N bytes");
            let t: &[i32; N] = tiled[(ky * c.kw + kx) * span + at..][..N]
                .try_into()
                .expect("N weights");
            for j in 0..N {
                acc[j] += s[j] as i32 * t[j];
            }
        }
    }
    out.copy_from_slice(&acc[..out.len()]);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn dw_block<const N: usize>(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    w: &[i32],
    oy: usize,
    ox: usize,
    cb: usize,
    out: &mut [i32],
) {
    let ch = c.cin;
    let chp = ch.next_multiple_of(16);
    let mut acc = [0i32; N];
    for ky in 0..c.kh {
        let row = ((oy * c.sh + ky) * wp + ox * c.sw) * ch + cb;
        for kx in 0..c.kw {
            let s: &[u8; N] = src[row + kx * ch..][..N].try_into().expect("N bytes");
            let t: &[i32; N] = w[(ky * c.kw + kx) * chp + cb..][..N]
                .try_into()
                .expect("N weights");
            for j in 0..N {
                acc[j] += s[j] as i32 * t[j];
            }
        }
    }
    out.copy_from_slice(&acc[..out.len()]);
}
