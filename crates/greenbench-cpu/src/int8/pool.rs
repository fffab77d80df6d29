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
    zero: i32,
    sums: &mut [i64],
    y: &mut [u8],
) {
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
