//! Pools on uint8 activations: max pooling (wide, 16+ channels, and narrow) and average
//! pooling with the reference's rounding.

use greenbench_core::graph::PoolGeom;
use greenbench_core::quant::avg_round;

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn pool_u8(
    x: &[u8],
    batch: usize,
    p: &PoolGeom,
    max: bool,
    gathers: Option<&NarrowIdx>,
    zero: i32,
    sums: &mut [i64],
    y: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(ix) = gathers.filter(|_| max) {
        // SAFETY: `NarrowIdx::new(p)` (the plan's) checked the CPU's features and the geometry.
        return unsafe { max_pool_narrow_vbmi(x, batch, p, ix, y) };
    }
    if max && p.c < 16 {
        return max_pool_narrow(x, batch, p, y);
    }
    if max {
        return max_pool_wide(x, batch, p, y);
    }
    let acc = &mut sums[..p.c];
    for n in 0..batch {
        let img = &x[n * p.h * p.w * p.c..(n + 1) * p.h * p.w * p.c];
        for oy in 0..p.ho {
            for ox in 0..p.wo {
                acc.iter_mut().for_each(|a| *a = 0);
                let mut count = 0i32;
                for iy in p.rows(oy) {
                    for ix in p.cols(ox) {
                        let src = &img[(iy * p.w + ix) * p.c..][..p.c];
                        if max {
                            acc.iter_mut()
                                .zip(src)
                                .for_each(|(a, &s)| *a = (*a).max(s as i64));
                        } else {
                            acc.iter_mut().zip(src).for_each(|(a, &s)| *a += s as i64);
                        }
                        count += 1;
                    }
                }
                let o = &mut y[((n * p.ho + oy) * p.wo + ox) * p.c..][..p.c];
                if max {
                    o.iter_mut()
                        .zip(acc.iter())
                        .for_each(|(o, &a)| *o = a as u8);
                } else {
                    let d = p.divisor(oy, ox);
                    let off = count as i64 * zero as i64;
                    o.iter_mut()
                        .zip(acc.iter())
                        .for_each(|(o, &a)| *o = avg_round(a - off, d, zero));
                }
            }
        }
    }
}

/// The global average pool of one image (`rows` pixels of `c` channels) with the reference's
/// rounding: each block of 64 (then 16) channels summed over the pixels in registers (int32:
/// exact below 2^23 pixels; `sums` holds int64 sums for larger images), not a memory round
/// trip per pixel.
#[inline(always)]
pub(super) fn global_avg_u8(
    img: &[u8],
    rows: usize,
    c: usize,
    zero: i32,
    sums: &mut [i64],
    out: &mut [u8],
) {
    let off = rows as i64 * zero as i64;
    if rows >= 1 << 23 {
        let sums = &mut sums[..c];
        sums.fill(0);
        for row in img.chunks_exact(c) {
            sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v as i64);
        }
        for (o, &s) in out.iter_mut().zip(sums.iter()) {
            *o = avg_round(s - off, rows, zero);
        }
        return;
    }
    #[inline(always)]
    fn block<const N: usize>(img: &[u8], c: usize, j: usize) -> [i32; N] {
        let mut acc = [0i32; N];
        for row in img.chunks_exact(c) {
            let v: &[u8; N] = row[j..j + N].try_into().expect("N channels");
            for i in 0..N {
                acc[i] += v[i] as i32;
            }
        }
        acc
    }
    let mut j = 0;
    let mut put = |j: usize, acc: &[i32]| {
        for (i, &a) in acc.iter().enumerate() {
            out[j + i] = avg_round(a as i64 - off, rows, zero);
        }
    };
    while j + 64 <= c {
        put(j, &block::<64>(img, c, j));
        j += 64;
    }
    while j + 16 <= c {
        put(j, &block::<16>(img, c, j));
        j += 16;
    }
    while j < c {
        put(j, &block::<1>(img, c, j));
        j += 1;
    }
}

/// Max pooling of 16 channels or more, on uint8 directly: each output pixel starts as its
/// window's first pixel and takes the byte-wise maximum with the others (a loop over the
/// channels the compiler vectorises). Exact: max commutes with the monotone dequantization.
#[inline(always)]
pub(super) fn max_pool_wide(x: &[u8], batch: usize, p: &PoolGeom, y: &mut [u8]) {
    let c = p.c;
    let (img_in, img_out) = (p.h * p.w * c, p.ho * p.wo * c);
    for n in 0..batch {
        let img = &x[n * img_in..(n + 1) * img_in];
        let out = &mut y[n * img_out..(n + 1) * img_out];
        for oy in 0..p.ho {
            let rows = p.rows(oy);
            for (ox, o) in out[oy * p.wo * c..(oy + 1) * p.wo * c]
                .chunks_exact_mut(c)
                .enumerate()
            {
                let cols = p.cols(ox);
                let mut first = true;
                for iy in rows.clone() {
                    let seg = &img[(iy * p.w + cols.start) * c..(iy * p.w + cols.end) * c];
                    for px in seg.chunks_exact(c) {
                        if first {
                            o.copy_from_slice(px);
                            first = false;
                        } else {
                            o.iter_mut().zip(px).for_each(|(o, &v)| *o = (*o).max(v));
                        }
                    }
                }
                if first {
                    // An empty window (padding only): the maximum of nothing, as below.
                    o.fill(0);
                }
            }
        }
    }
}

/// Max pooling of fewer than 16 channels: each pixel's channels as one 16-byte vector (the
/// bytes past its channels belong to the next pixel and are dropped), written 16 bytes at a
/// time left to right so each pixel's extra bytes are overwritten by the next pixel's; the
/// last pixels, whose 16 bytes would pass the end of the input or output, go byte by byte.
#[inline(always)]
pub(super) fn max_pool_narrow(x: &[u8], batch: usize, p: &PoolGeom, y: &mut [u8]) {
    // Output pixels in order (q): plain loops (an iterator chain here was a call per pixel).
    let mut q = 0;
    for n in 0..batch {
        for oy in 0..p.ho {
            let rows = p.rows(oy);
            for ox in 0..p.wo {
                pool_pixel_narrow(x, p, n, rows.clone(), ox, q, y);
                q += 1;
            }
        }
    }
}

/// Output pixel `q` (example `n`, window rows `rows`, column `ox`) of [`max_pool_narrow`].
#[inline(always)]
fn pool_pixel_narrow(
    x: &[u8],
    p: &PoolGeom,
    n: usize,
    rows: std::ops::Range<usize>,
    ox: usize,
    q: usize,
    y: &mut [u8],
) {
    let c = p.c;
    let base = n * p.h * p.w * c;
    let cols = p.cols(ox);
    let last_in = base + ((rows.end.max(1) - 1) * p.w + cols.end.max(1)) * c;
    let o = q * c;
    if last_in + 16 <= x.len() && o + 16 <= y.len() {
        let mut acc = [0u8; 16];
        for iy in rows {
            for ix in cols.clone() {
                let at = base + (iy * p.w + ix) * c;
                let s: &[u8; 16] = x[at..at + 16].try_into().expect("16 bytes");
                for j in 0..16 {
                    acc[j] = acc[j].max(s[j]);
                }
            }
        }
        y[o..o + 16].copy_from_slice(&acc);
    } else {
        for j in 0..c {
            let mut m = 0u8;
            for iy in rows.clone() {
                for ix in cols.clone() {
                    m = m.max(x[base + (iy * p.w + ix) * c + j]);
                }
            }
            y[o + j] = m;
        }
    }
}

/// The byte gathers of [`max_pool_narrow_vbmi`]: for `per` output pixels of a row (as many
/// as one 64-byte load of their windows' columns holds), `cols[kx]` puts window column
/// `kx`'s bytes in the output's order (output byte `i`: pixel `i / c`, channel `i % c`).
pub(super) struct NarrowIdx {
    per: usize,
    cols: [[u8; 64]; 8],
}

impl NarrowIdx {
    /// Where the vector form runs: max pooling of up to 32 channels, every window inside the
    /// image, `kw` at most 8 and one window's columns within 64 bytes (LeNet-5's pools of 6
    /// and 16 channels), on a CPU with AVX-512 BW and VBMI.
    pub(super) fn new(p: &PoolGeom) -> Option<NarrowIdx> {
        #[cfg(target_arch = "x86_64")]
        let cpu = std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi");
        #[cfg(not(target_arch = "x86_64"))]
        let cpu = false;
        let (per, cols) = crate::kernels::narrow_pool_gathers(p, 64, 32).filter(|_| cpu)?;
        Some(NarrowIdx { per, cols })
    }
}

/// Max pooling of up to 32 channels, every window inside the image: per output row, the
/// window rows' byte-wise maximum of one (masked) 64-byte load at a run of `ix.per` output
/// pixels, then each window column's bytes gathered into output order (`vpermb`) and their
/// maximum stored (masked): a handful of instructions for several pixels, where
/// [`max_pool_narrow`] loads a vector per window pixel.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VBMI and `ix` is `NarrowIdx::new(p)` (made at plan time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn max_pool_narrow_vbmi(x: &[u8], batch: usize, p: &PoolGeom, ix: &NarrowIdx, y: &mut [u8]) {
    use std::arch::x86_64::*;
    let c = p.c;
    let (img_in, img_out) = (p.h * p.w * c, p.ho * p.wo * c);
    assert!(x.len() >= batch * img_in && y.len() >= batch * img_out);
    let mut cols = [_mm512_setzero_si512(); 8];
    for (v, i) in cols.iter_mut().zip(&ix.cols) {
        // SAFETY: 64 bytes.
        *v = unsafe { _mm512_loadu_si512(i.as_ptr() as *const __m512i) };
    }
    let mask = |n: usize| -> u64 { if n >= 64 { !0 } else { (1u64 << n) - 1 } };
    for n in 0..batch {
        for oy in 0..p.ho {
            let iy0 = oy * p.sh;
            let mut ox = 0;
            while ox < p.wo {
                let pix = ix.per.min(p.wo - ox);
                // The bytes of these pixels' windows' columns: inside the row (unpadded).
                let span = ((pix - 1) * p.sw + p.kw) * c;
                let at = n * img_in + (iy0 * p.w + ox * p.sw) * c;
                // SAFETY: the masked loads read `span` bytes of rows iy0..iy0 + kh of this
                // image, inside `x`; the store writes `pix * c` bytes of output row oy.
                unsafe {
                    let m = mask(span);
                    let mut v = _mm512_maskz_loadu_epi8(m, x.as_ptr().add(at) as *const i8);
                    for ky in 1..p.kh {
                        let r = _mm512_maskz_loadu_epi8(
                            m,
                            x.as_ptr().add(at + ky * p.w * c) as *const i8,
                        );
                        v = _mm512_max_epu8(v, r);
                    }
                    let mut o = _mm512_permutexvar_epi8(cols[0], v);
                    for col in &cols[1..p.kw] {
                        o = _mm512_max_epu8(o, _mm512_permutexvar_epi8(*col, v));
                    }
                    let to = n * img_out + (oy * p.wo + ox) * c;
                    _mm512_mask_storeu_epi8(y.as_mut_ptr().add(to) as *mut i8, mask(pix * c), o);
                }
                ox += pix;
            }
        }
    }
}
