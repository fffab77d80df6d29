//! Direct max and average pooling.

use super::*;
use greenbench_core::graph::PoolGeom;
use std::arch::x86_64::*;

/// Max or average pooling, NHWC, with AVX-512: per output pixel, 16 channels at a time
/// (masked to `c`), every window tap in one register; windows clipped to the image (padded
/// and ceil-mode pools: padding never wins a max, the average divides by
/// [`PoolGeom::divisor`]). The portable kernel's per-pixel slice loops ran 4-lane code on
/// channel counts like 6 and took 31 % of lenet5's time at batch 32.
/// `narrow`: the max pool's row gathers ([`Narrow::new`] of `p`, made at plan time).
pub fn pool(
    x: &[f32],
    batch: usize,
    p: &PoolGeom,
    max: bool,
    narrow: Option<&Narrow>,
    y: &mut [f32],
    par: bool,
) {
    assert!(available(), "direct kernels need AVX-512F");
    assert!(x.len() >= batch * p.h * p.w * p.c, "pool: input too short");
    assert!(p.ho > 0 && p.wo > 0);
    let row_len = p.wo * p.c;
    let body = |(r, out): (usize, &mut [f32])| {
        // SAFETY: AVX-512F checked; windows are clipped to the image (PoolGeom::rows/cols),
        // loads and stores are masked to `c` channels, and `out` is one output row.
        unsafe { pool_row(image(x, p, r), 0, p, max, narrow, r % p.ho, out) }
    };
    let y = &mut y[..batch * p.ho * row_len];
    if par {
        y.par_chunks_mut(row_len).enumerate().for_each(body);
    } else {
        y.chunks_mut(row_len).enumerate().for_each(body);
    }
}

/// Output rows `rows` (over the whole batch: row `r` is image `r / ho`, output row `r % ho`)
/// of [`pool`], written at `y` (the whole output). A team's threads share a pool this way.
///
/// # Safety
/// `y` points to the step's output of `batch * ho * wo * c` values; concurrent calls write
/// distinct rows.
pub unsafe fn pool_rows(
    x: &[f32],
    p: &PoolGeom,
    max: bool,
    narrow: Option<&Narrow>,
    rows: std::ops::Range<usize>,
    y: *mut f32,
) {
    assert!(available(), "direct kernels need AVX-512F");
    let row_len = p.wo * p.c;
    assert!(
        x.len() >= (rows.end.div_ceil(p.ho)) * p.h * p.w * p.c,
        "pool: input too short"
    );
    for r in rows {
        // SAFETY: the caller's contract: row r of the output is this call's alone.
        let out = unsafe { std::slice::from_raw_parts_mut(y.add(r * row_len), row_len) };
        // SAFETY: as in `pool`.
        unsafe { pool_row(image(x, p, r), 0, p, max, narrow, r % p.ho, out) };
    }
}

/// Image `r / ho` of `x` (output row `r` of the whole batch reads it).
fn image(x: &[f32], p: &PoolGeom, r: usize) -> *const f32 {
    let len = p.h * p.w * p.c;
    x[(r / p.ho) * len..][..len].as_ptr()
}

/// Output rows `oys` of one image's max pool whose input rows `row0..` are at `img` (a
/// band of the image: a convolution's rows computed into a scratch, `conv/pool_fused.rs`),
/// written at `y` (the image's first output row).
///
/// # Safety
/// AVX-512F; `img` holds the input rows under every window of `oys` (from `row0`), `y`
/// the image's `ho * wo * c` outputs.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn max_pool_band(
    img: *const f32,
    row0: usize,
    p: &PoolGeom,
    narrow: Option<&Narrow>,
    oys: std::ops::Range<usize>,
    y: *mut f32,
) {
    let row_len = p.wo * p.c;
    for oy in oys {
        // SAFETY: the caller's.
        unsafe {
            let out = std::slice::from_raw_parts_mut(y.add(oy * row_len), row_len);
            pool_row(img, row0, p, true, narrow, oy, out);
        }
    }
}

/// The gathers of a max pool over fewer than 16 channels whose windows lie inside the image:
/// `per` output pixels at a time (their channels fill at most one register, their windows'
/// columns at most two), `cols[kx]` the `vpermt2ps` indices putting window column `kx`'s
/// values in output order (value `i`: pixel `i / c`, channel `i % c`). Made at plan time
/// (`Step::Pool`), not per run.
pub struct Narrow {
    per: usize,
    cols: [[i32; 16]; 8],
}

impl Narrow {
    /// The gathers of max pool `p`, where that form runs.
    pub fn new(p: &PoolGeom) -> Option<Narrow> {
        let (per, cols) = crate::kernels::narrow_pool_gathers(p, 32, 15)?;
        Some(Narrow { per, cols })
    }
}

/// One output row of a [`Narrow`] max pool: per run of `per` output pixels, the window rows'
/// maximum of two masked loads each, then each window column gathered into output order and
/// the maximum stored (the per-pixel loop loads a vector per window pixel: 12 % of lenet5's
/// fp32 samples at batch 32).
///
/// # Safety
/// AVX-512F; `nw` made for `p`; `img` holds the image's rows under output row `oy`'s
/// windows from row `row0` on, `out` is one output row.
#[target_feature(enable = "avx512f")]
unsafe fn narrow_row(
    img: *const f32,
    row0: usize,
    p: &PoolGeom,
    nw: &Narrow,
    oy: usize,
    out: &mut [f32],
) {
    let c = p.c;
    let mut cols = [_mm512_setzero_si512(); 8];
    for (v, i) in cols.iter_mut().zip(&nw.cols) {
        // SAFETY: 16 i32.
        *v = unsafe { _mm512_loadu_si512(i.as_ptr() as *const __m512i) };
    }
    let mask = |n: usize| -> u16 {
        if n >= 16 {
            !0
        } else {
            ((1u32 << n) - 1) as u16
        }
    };
    let iy0 = oy * p.sh - row0;
    let mut ox = 0;
    while ox < p.wo {
        let pix = nw.per.min(p.wo - ox);
        let span = ((pix - 1) * p.sw + p.kw) * c;
        let (m0, m1) = (mask(span), mask(span.saturating_sub(16)));
        let at = (iy0 * p.w + ox * p.sw) * c;
        // SAFETY: the masked loads read `span` values of rows iy0..iy0 + kh (inside the
        // image: every window is); the store writes `pix * c` values of `out`.
        unsafe {
            let ld = |o: usize, m: u16| _mm512_maskz_loadu_ps(m, img.add(o));
            let (mut a, mut b) = (ld(at, m0), ld(at + 16, m1));
            for ky in 1..p.kh {
                let o = at + ky * p.w * c;
                a = _mm512_max_ps(a, ld(o, m0));
                b = _mm512_max_ps(b, ld(o + 16, m1));
            }
            let mut o = _mm512_permutex2var_ps(a, cols[0], b);
            for col in &cols[1..p.kw] {
                o = _mm512_max_ps(o, _mm512_permutex2var_ps(a, *col, b));
            }
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(ox * c), mask(pix * c), o);
        }
        ox += pix;
    }
}

/// Output row `oy` of one image, its input rows from `row0` on at `img`.
///
/// # Safety
/// AVX-512F; `img` holds the rows under the row's windows (clipped to the image), `out` is
/// one output row.
#[target_feature(enable = "avx512f")]
unsafe fn pool_row(
    img: *const f32,
    row0: usize,
    p: &PoolGeom,
    max: bool,
    narrow: Option<&Narrow>,
    oy: usize,
    out: &mut [f32],
) {
    if let Some(nw) = narrow.filter(|_| max) {
        // SAFETY: the caller's.
        return unsafe { narrow_row(img, row0, p, nw, oy, out) };
    }
    // The window's rows from the band's first (none where the window is all padding).
    let rows = match p.rows(oy) {
        r if r.is_empty() => 0..0,
        r => r.start - row0..r.end - row0,
    };
    // Output pixels outermost, their channels inside: a window's pixels are read whole while
    // in L1 (channel blocks outermost streamed a large input from L3 once per 16 channels:
    // SqueezeNet's 111x111x64 pool took 11 % of its time).
    for ox in 0..p.wo {
        let w = Window {
            img,
            at: ox * p.c,
            rows: rows.clone(),
            cols: p.cols(ox),
            max,
            scale: if max {
                1.0
            } else {
                1.0 / p.divisor(oy, ox) as f32
            },
        };
        // Up to four vectors of channels at a time, each its own chain of maxima (or sums):
        // with one, every tap waited on the one before (`vmaxps`'s latency): SqueezeNet's
        // 55x55x64 pool read ~200 us from L2.
        let mut ch = 0;
        while ch < p.c {
            let left = (p.c - ch).div_ceil(16);
            // SAFETY: the caller's; the chunk's loads and stores masked to the channels.
            unsafe {
                match left {
                    1 => w.chunk::<1>(p, ch, out),
                    2 => w.chunk::<2>(p, ch, out),
                    3 => w.chunk::<3>(p, ch, out),
                    _ => w.chunk::<4>(p, ch, out),
                }
            }
            ch += 64;
        }
    }
}

/// One output pixel's window (its rows relative to the band's first), for [`Window::chunk`].
struct Window {
    img: *const f32,
    /// The pixel's first value in the output row.
    at: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    max: bool,
    scale: f32,
}

impl Window {
    /// Channels `ch .. ch + 16 V` (masked to `p.c`) of the pixel: `V` chains over the taps.
    ///
    /// # Safety
    /// AVX-512F; the window's rows and columns inside `img`, the pixel inside `out`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn chunk<const V: usize>(&self, p: &PoolGeom, ch: usize, out: &mut [f32]) {
        let m: [u16; V] = std::array::from_fn(|j| lane_mask(p.c - ch, j));
        let mut acc = [_mm512_set1_ps(if self.max { f32::NEG_INFINITY } else { 0.0 }); V];
        for iy in self.rows.clone() {
            for ix in self.cols.clone() {
                let off = (iy * p.w + ix) * p.c + ch;
                for j in 0..V {
                    // SAFETY: the caller's (masked to the channels).
                    let v = unsafe { _mm512_maskz_loadu_ps(m[j], self.img.add(off + 16 * j)) };
                    acc[j] = if self.max {
                        _mm512_max_ps(acc[j], v)
                    } else {
                        _mm512_add_ps(acc[j], v)
                    };
                }
            }
        }
        for j in 0..V {
            if !self.max {
                acc[j] = _mm512_mul_ps(acc[j], _mm512_set1_ps(self.scale));
            }
            // SAFETY: the caller's.
            unsafe {
                let o = out.as_mut_ptr().add(self.at + ch + 16 * j);
                _mm512_mask_storeu_ps(o, m[j], acc[j]);
            }
        }
    }
}
