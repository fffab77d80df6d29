//! The input side of the int8 convolutions: the padded image (its border = the input's zero
//! point), im2col, the addresses of an in-place (no im2col) VNNI convolution, and the
//! column split of a padded image for the depthwise kernel.

use super::epilogue::Epi;
use super::gemm::{QGemm, QPath, on_tiles};
use super::lanes::PixelLanes;
use super::step::Lin;
use greenbench_core::graph::ConvGeom;
use std::ops::Range;

/// Bytes read or written past a copy's end by the fixed-size copies of `im2col_u8` and the
/// channel blocks of `depthwise_u8`: the padded image and the im2col block keep this much
/// slack.
pub(super) const SLACK: usize = 64;

/// The [`Lin::InPlace`] form of an ungrouped convolution: its weights with each kernel row's
/// `kw * Cin` rows padded to a multiple of 4 (zeros), and the reading offsets.
/// With a VNNI path, a layer of few channels takes the pixels-in-lanes form where it fits
/// ([`PixelLanes::new`]).
pub(super) fn in_place_conv(c: ConvGeom, hwio: &[i8], path: QPath, epi: &Epi) -> Lin {
    let run = c.kw * c.cin;
    let run4 = run.next_multiple_of(4);
    let k = c.kh * run4;
    let mut w = vec![0i8; k * c.cout];
    for ky in 0..c.kh {
        for j in 0..run {
            let (to, from) = ((ky * run4 + j) * c.cout, (ky * run + j) * c.cout);
            w[to..to + c.cout].copy_from_slice(&hwio[from..from + c.cout]);
        }
    }
    let wp = c.w + c.pad_left + c.pad_right;
    let bases = (0..c.ho * c.wo)
        .map(|p| ((p / c.wo) * c.sh * wp + (p % c.wo) * c.sw) * c.cin)
        .collect();
    let qoff = (0..k / 4)
        .map(|q| {
            let (ky, j) = (q / (run4 / 4), q % (run4 / 4));
            (ky * wp * c.cin + 4 * j) as u32
        })
        .collect();
    Lin::InPlace {
        geom: c,
        gemm: QGemm::new(&w, k, c.cout, 0, c.cout, path),
        bases,
        qoff,
        lanes: if path.vnni_packed() {
            PixelLanes::new(c, hwio, epi).map(Box::new)
        } else {
            None
        },
    }
}

/// A convolution of few output channels as one computing `p` neighbouring output pixels of a
/// row at once (`p * cout` channels: pixel `ox = p ox' + d`'s channel `co` is channel `d cout +
/// co` of pixel `ox'`, the same bytes in NHWC): kernel width `kw + (p - 1) sw`, stride `p
/// sw`, each pixel's weights shifted `d sw` columns (zeros around them). The padded image
/// and every read of it stay as they were; the GEMM's N grows to `p cout` (up to 16: one
/// full VNNI register or AMX tile width where `cout` filled half or less) and a kernel row's
/// run to `(kw + (p - 1) sw) cin` bytes (at most 64: one AMX chunk). MobileNet's first layer
/// (8 channels, 3x3 stride 2 over 3 channels): 2 pixels, runs of 15 bytes instead of 9.
/// Returns the geometry, the HWIO weights and `p`, or `None` where no `p >= 2` fits
/// (`wo` must be a multiple of `p`).
pub(super) fn widened(c: ConvGeom, hwio: &[i8]) -> Option<(ConvGeom, Vec<i8>, usize)> {
    if c.groups != 1 || c.cout == 0 {
        return None;
    }
    let p = (2..=16 / c.cout)
        .rev()
        .find(|&p| c.wo.is_multiple_of(p) && (c.kw + (p - 1) * c.sw) * c.cin <= 64)?;
    let kw = c.kw + (p - 1) * c.sw;
    let cout = p * c.cout;
    let mut w = vec![0i8; c.kh * kw * c.cin * cout];
    for ky in 0..c.kh {
        for d in 0..p {
            for kx in 0..c.kw {
                for ci in 0..c.cin {
                    let from = ((ky * c.kw + kx) * c.cin + ci) * c.cout;
                    let to = ((ky * kw + kx + d * c.sw) * c.cin + ci) * cout + d * c.cout;
                    w[to..to + c.cout].copy_from_slice(&hwio[from..from + c.cout]);
                }
            }
        }
    }
    let g = ConvGeom {
        wo: c.wo / p,
        cout,
        kw,
        sw: p * c.sw,
        ..c
    };
    Some((g, w, p))
}

/// A pointwise convolution (or its GEMM: `k x n` weights, `rows` pixels an image) too
/// shallow for AMX tiles (`k` below the narrowest chunk) as one over `p` neighbouring pixels
/// at once: `p k` deep and `p n` wide with the weights block-diagonal (`p` times the
/// multiply-adds, all on tiles; pixel pairs are contiguous in NHWC, input and output alike).
/// MobileNet's first pointwise layer (8 -> 16 channels, 48x48) on VNNI was 11 % of its int8
/// batch-32 time. Returns the GEMM and `p`, or `None` where tiles do not run or no `p` up to
/// 4 that divides `rows` gives a tile chunk.
pub(super) fn widened_pointwise(
    w: &[i8],
    k: usize,
    n: usize,
    rows: usize,
    path: QPath,
) -> Option<(QGemm, usize)> {
    if on_tiles(path, k) || !on_tiles(path, 4 * k) {
        return None;
    }
    let p = (2..=4).find(|&p| rows.is_multiple_of(p) && on_tiles(path, p * k))?;
    let (kp, np) = (p * k, p * n);
    let mut wp = vec![0i8; kp * np];
    for d in 0..p {
        for kk in 0..k {
            let to = (d * k + kk) * np + d * n;
            wp[to..to + n].copy_from_slice(&w[kk * n..(kk + 1) * n]);
        }
    }
    Some((QGemm::new(&wp, kp, np, 0, np, path), p))
}

/// Bytes of a convolution's zero-point-padded input image, with [`SLACK`].
pub(super) fn padded_len(c: &ConvGeom) -> usize {
    (c.h + c.pad_top + c.pad_bottom) * (c.w + c.pad_left + c.pad_right) * c.cin + SLACK
}

/// One image with its border of `zero` (the input's zero point: a real 0), in `pad`.
/// Returns it and its row width in pixels.
#[inline(always)]
pub(super) fn pad_image<'a>(
    img: &[u8],
    c: &ConvGeom,
    zero: u8,
    pad: &'a mut [u8],
) -> (&'a [u8], usize) {
    let (wp, hp) = (
        c.w + c.pad_left + c.pad_right,
        c.h + c.pad_top + c.pad_bottom,
    );
    let row = wp * c.cin;
    pad_rows(img, c, zero, 0..hp, &mut pad[..hp * row]);
    (pad, wp)
}

/// Rows `rows` of the padded image (of `h + pad_top + pad_bottom`) into `out` (those rows
/// only): border rows all `zero`, the others the image row between its two ends of `zero`.
#[inline(always)]
pub(super) fn pad_rows(img: &[u8], c: &ConvGeom, zero: u8, rows: Range<usize>, out: &mut [u8]) {
    let wp = c.w + c.pad_left + c.pad_right;
    let (prow, row) = (wp * c.cin, c.w * c.cin);
    assert!(
        out.len() >= rows.len() * prow,
        "padded rows past their block"
    );
    for (j, yp) in rows.enumerate() {
        let o = &mut out[j * prow..(j + 1) * prow];
        if yp < c.pad_top || yp >= c.pad_top + c.h {
            o.fill(zero);
            continue;
        }
        let y = yp - c.pad_top;
        let body = c.pad_left * c.cin;
        o[..body].fill(zero);
        o[body..body + row].copy_from_slice(&img[y * row..(y + 1) * row]);
        o[body + row..].fill(zero);
    }
}

/// Bytes of a stride-2 depthwise convolution's column-split image (two halves of
/// `hp x ceil(wp / 2)` pixels) with [`SLACK`].
pub(super) fn split_len(c: &ConvGeom) -> usize {
    let (hp, wp) = (
        c.h + c.pad_top + c.pad_bottom,
        c.w + c.pad_left + c.pad_right,
    );
    2 * hp * wp.div_ceil(2) * c.cin + SLACK
}

/// The padded image's even columns, then its odd columns, each half `ceil(wp / 2)` pixels
/// wide, into `out` (for stride-2 depthwise), made from the unpadded image `img` (no padded
/// copy first). Returns the halves (and slack), their width and where the odd half starts.
pub(super) fn split_image<'a>(
    img: &[u8],
    c: &ConvGeom,
    zero: u8,
    out: &'a mut [u8],
) -> (&'a [u8], usize, usize) {
    let hp = c.h + c.pad_top + c.pad_bottom;
    let (wq, half) = split_shape(c);
    let (even, odd) = out.split_at_mut(half);
    split_rows(img, c, zero, 0..hp, even, odd);
    (&out[..], wq, half)
}

/// Width of each half of a column split, and where the odd half starts.
pub(super) fn split_shape(c: &ConvGeom) -> (usize, usize) {
    let (hp, wp) = (
        c.h + c.pad_top + c.pad_bottom,
        c.w + c.pad_left + c.pad_right,
    );
    let wq = wp.div_ceil(2);
    (wq, hp * wq * c.cin)
}

/// Padded rows `rows` of the column split, from the unpadded image `img`: the padded row's
/// even pixels into `even`, its odd ones into `odd` (each from that block's first row), the
/// border (and an odd-width row's missing last odd pixel) the zero point `zero`.
#[inline(always)]
pub(super) fn split_rows(
    img: &[u8],
    c: &ConvGeom,
    zero: u8,
    rows: Range<usize>,
    even: &mut [u8],
    odd: &mut [u8],
) {
    let ch = c.cin;
    let wq = (c.w + c.pad_left + c.pad_right).div_ceil(2);
    let hrow = wq * ch;
    for (j, yp) in rows.enumerate() {
        let (e, o) = (
            &mut even[j * hrow..(j + 1) * hrow],
            &mut odd[j * hrow..(j + 1) * hrow],
        );
        if yp < c.pad_top || yp >= c.pad_top + c.h {
            e.fill(zero);
            o.fill(zero);
            continue;
        }
        // Padded column xp: even ones to `e`, odd ones to `o`, at xp / 2. Image pixels
        // cover columns pl .. pl + w: in `e` positions ceil(pl / 2) .. ceil((pl + w) / 2), in
        // `o` floor(pl / 2) .. floor((pl + w) / 2); the rest is border.
        let (pl, w) = (c.pad_left, c.w);
        e[..pl.div_ceil(2) * ch].fill(zero);
        e[(pl + w).div_ceil(2) * ch..].fill(zero);
        o[..pl / 2 * ch].fill(zero);
        o[(pl + w) / 2 * ch..].fill(zero);
        let line = &img[(yp - c.pad_top) * w * ch..][..w * ch];
        // Image pixel 2i to column pl + 2i, 2i + 1 to pl + 2i + 1: with pl even the first to
        // `e` at pl / 2 + i, the second to `o` at the same; with pl odd the first to `o` at
        // (pl - 1) / 2 + i, the second to `e` at (pl + 1) / 2 + i.
        let (first, second) = if pl % 2 == 0 { (e, o) } else { (o, e) };
        let (first, second) = (
            &mut first[pl / 2 * ch..],
            &mut second[pl.div_ceil(2) * ch..],
        );
        match ch {
            8 => deal::<8>(line, first, second),
            16 => deal::<16>(line, first, second),
            32 => deal::<32>(line, first, second),
            64 => deal::<64>(line, first, second),
            128 => deal::<128>(line, first, second),
            _ => deal_any(ch, line, first, second),
        }
    }
}

/// A row's pixels of `N` channels dealt alternately: pixel `2i` to `first`'s pixel `i`, pixel
/// `2i + 1` to `second`'s (fixed-size copies the compiler keeps inline: a call to `memcpy` per
/// pixel cost more than the copy).
#[inline(always)]
fn deal<const N: usize>(line: &[u8], first: &mut [u8], second: &mut [u8]) {
    let mut pairs = line.chunks_exact(2 * N);
    for ((pair, a), b) in (&mut pairs)
        .zip(first.chunks_exact_mut(N))
        .zip(second.chunks_exact_mut(N))
    {
        let (x0, x1) = pair.split_at(N);
        <&mut [u8; N]>::try_from(a)
            .expect("N channels")
            .copy_from_slice(x0);
        <&mut [u8; N]>::try_from(b)
            .expect("N channels")
            .copy_from_slice(x1);
    }
    let last = pairs.remainder();
    if !last.is_empty() {
        let i = line.len() / (2 * N);
        first[i * N..(i + 1) * N].copy_from_slice(last);
    }
}

/// [`deal`] for any channel count.
fn deal_any(ch: usize, line: &[u8], first: &mut [u8], second: &mut [u8]) {
    for (x, px) in line.chunks_exact(ch).enumerate() {
        let half = if x % 2 == 0 {
            &mut *first
        } else {
            &mut *second
        };
        half[x / 2 * ch..(x / 2 + 1) * ch].copy_from_slice(px);
    }
}

/// im2col of one (padded) image of row width `wp` for group `group`: a row of `kh * kw *
/// cin_g` taps for each output pixel of `pixels` (of `ho * wo`), the first at row 0.
#[inline(always)]
pub(super) fn im2col_u8(
    src: &[u8],
    wp: usize,
    c: &ConvGeom,
    group: usize,
    pixels: std::ops::Range<usize>,
    cols: &mut [u8],
) {
    let cin_g = c.cin / c.groups;
    let k = c.kh * c.kw * cin_g;
    // With one group, a kernel row's taps are one contiguous run of kw * cin bytes.
    let (run, runs) = if c.groups == 1 {
        (c.kw * c.cin, 1)
    } else {
        (cin_g, c.kw)
    };
    assert!(pixels.end <= c.ho * c.wo, "pixels past the image");
    assert!(
        cols.len() >= pixels.len() * k + SLACK,
        "im2col block without slack"
    );
    let last = ((c.ho - 1) * c.sh + c.kh - 1) * wp + (c.wo - 1) * c.sw + c.kw;
    assert!(
        src.len() >= last * c.cin + SLACK,
        "padded image without slack"
    );
    let (sp, cp) = (src.as_ptr(), cols.as_mut_ptr());
    for p in pixels.clone() {
        let (oy, ox) = (p / c.wo, p % c.wo);
        {
            let row = (p - pixels.start) * k;
            for ky in 0..c.kh {
                let base = ((oy * c.sh + ky) * wp + ox * c.sw) * c.cin + group * cin_g;
                for r in 0..runs {
                    let (from, to) = (base + r * c.cin, row + (ky * runs + r) * run);
                    // SAFETY: `from + run` and `to + run` are in bounds (the geometry), and
                    // a short run copies a whole 16 or 32 bytes into the slack asserted
                    // above. Runs are written in increasing order, so the bytes a short
                    // copy writes past its run are written again by the next run (or lie
                    // in the slack).
                    unsafe {
                        if run <= 16 {
                            std::ptr::copy_nonoverlapping(sp.add(from), cp.add(to), 16);
                        } else if run <= 32 {
                            std::ptr::copy_nonoverlapping(sp.add(from), cp.add(to), 32);
                        } else {
                            std::ptr::copy_nonoverlapping(sp.add(from), cp.add(to), run);
                        }
                    }
                }
            }
        }
    }
}
