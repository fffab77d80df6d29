//! Single-channel convolutions (one input channel, stride 1, at most 16 output channels:
//! LeNet-5's first layer) with **pixels in the lanes**: 16 output pixels of a row per
//! register, one accumulator per output channel; per tap one (masked) load of the 16 pixels'
//! inputs and one FMA per channel with its weight broadcast. Bias and activation in
//! registers, then the channels interleaved into NHWC by masked `vpermps` (`cout` per output
//! vector). Where a thread's pixels hold whole rows, two to four rows at once (by the channel
//! count: at most 24 accumulators): one row's `C` chains are `kh kw` FMAs long each, bound
//! by the FMA's latency, and the rows share each weight broadcast. lenet5 at batch 32, one
//! thread, best of eight alternating runs (Xeon with AMX, 2026-12-06): fp32 11.05 -> 9.95
//! us an example, bf16 9.30 -> 8.41 (rows of 2 at 6 channels; rows of 4 read 12.61 against
//! 11.36 in another round: its 24 accumulators were spilled).
//!
//! The channels-in-lanes tile (`tile`) fills `cout` of its 16 lanes here and runs a tap per
//! pixel: `25 x 16` FMAs per 16 pixels of LeNet-5's 5x5 layer where this runs `25 x 6`.
//! A bf16 graph's single-channel layer runs here too, on its rounded input (the same exact
//! products). A `vdpbf16ps` form (a kernel row's taps in pairs, `vpermw` of the row converted
//! to bf16) measured slower: lenet5 bf16 batch 32 4.56 us against 3.56 with this one (2
//! threads, four alternating rounds, best; Xeon with AMX, 2026-12-05). So did an AMX-BF16
//! form (2026-12-06): the output channels as the tile's rows (`A`, the weights), the 16
//! pixels as its columns (`B`: per pair of taps two shifted-row loads, `vcvtne2ps2bf16`,
//! `vpermw`, a store), rows built eight at a time before their products: lenet5 bf16 conv1
//! (with its pool) 4.5-5.0 us an example against this form's 2.4-3.0 (`inspect --time`,
//! batch 32, one thread, alternating). A C microbenchmark put building one row's `B` (13
//! pairs) at 46-56 ns alone, more than this form's whole row of 16 pixels (~41 ns), and the
//! tile load, product and store at ~20 ns a row.

use super::{act_ps, lane_mask};
use crate::kernels::{Act, Relu};
use greenbench_core::graph::ConvGeom;
use std::arch::x86_64::*;

/// The most output channels this form runs.
pub(super) const MAX_COUT: usize = 16;

/// The sums (bias included, no activation) of output pixels `ox .. ox + npx` of rows `oy ..
/// oy + B` of image `n`, per row and channel (pixel `ox + l` in lane `l`): per tap one
/// masked load per row and one FMA per channel and row. A macro expanded into each AVX-512F
/// kernel (the unpooled and the pooled one share its text). Keep the activation off the
/// returned array: written back into it (`acc[r][co] = act_ps(..)`), the calls kept the
/// accumulators in memory through the FMA loop, lenet5's pooled first layer 4.8 us an
/// example against 2.6 (one thread, batch 32).
macro_rules! lane_sums {
    ($l:ident, $x:ident, $n:ident, $oy:ident, $ox:ident, $npx:ident, $c:ident, $b:expr) => {{
        let g = &$l.g;
        let m = lane_mask($npx, 0);
        let mut acc = [[_mm512_setzero_ps(); $c]; $b];
        for r in 0..$b {
            for co in 0..$c {
                acc[r][co] = _mm512_set1_ps($l.bias[co]);
            }
        }
        for ky in 0..g.kh {
            // Row (n, oy + r + ky) of the padded input from column ox: the chunk's windows
            // (inside the row: every window is).
            let row = ($n * $l.hp + $oy + ky) * $l.wp + $ox;
            for kx in 0..g.kw {
                let mut xv = [_mm512_setzero_ps(); $b];
                for r in 0..$b {
                    // SAFETY: lanes below `npx` read inside row oy + r + ky; the others are
                    // masked.
                    xv[r] =
                        unsafe { _mm512_maskz_loadu_ps(m, $x.as_ptr().add(row + r * $l.wp + kx)) };
                }
                let wt = &$l.w[(ky * g.kw + kx) * $c..][..$c];
                for co in 0..$c {
                    let wv = _mm512_set1_ps(wt[co]);
                    for r in 0..$b {
                        acc[r][co] = _mm512_fmadd_ps(xv[r], wv, acc[r][co]);
                    }
                }
            }
        }
        acc
    }};
}

/// The first `total / C` pixels of `acc` (`C` registers: a channel each, a pixel per lane)
/// interleaved into NHWC at `y`: output vector `i` gathers each channel's lanes. Unsafe: `y`
/// must hold `total` values.
macro_rules! interleave_store {
    ($l:ident, $acc:expr, $y:expr, $total:expr, $c:ident) => {{
        let (acc, y, total) = ($acc, $y, $total);
        for i in 0..total.div_ceil(16) {
            let ix = _mm512_loadu_si512($l.idx[i].as_ptr() as *const __m512i);
            let mut o = _mm512_setzero_ps();
            for co in 0..$c {
                o = _mm512_mask_permutexvar_ps(o, $l.masks[i * $c + co], ix, acc[co]);
            }
            _mm512_mask_storeu_ps(y.add(16 * i), lane_mask(total - 16 * i, 0), o);
        }
    }};
}

/// A single-channel convolution's weights, bias and output interleave for the lanes kernel.
pub(super) struct Lanes {
    g: ConvGeom,
    hp: usize,
    wp: usize,
    /// `[ky][kx][co]`.
    w: Vec<f32>,
    bias: Vec<f32>,
    relu: Relu,
    /// Output vector `i` (values `16 i ..`: pixel `v / cout`, channel `v % cout`): the
    /// pixel of each lane.
    idx: Vec<[i32; 16]>,
    /// `masks[i * cout + co]`: the lanes of output vector `i` holding channel `co`.
    masks: Vec<u16>,
    /// A 2x2 stride-2 max pool after the activation, fused ([`Self::pool2`]).
    pool: bool,
}

/// Most output channels with a fused pool: its two rows' accumulators, `2 C`, in 24.
const POOL_MAX_COUT: usize = 12;

impl Lanes {
    /// The form for `g` (HWIO weights `w`) where it applies: one input channel, ungrouped,
    /// stride 1, at most [`MAX_COUT`] outputs.
    pub(super) fn new(g: &ConvGeom, w: &[f32], bias: Option<&[f32]>, relu: Relu) -> Option<Lanes> {
        if !Self::fits(g) {
            return None;
        }
        let c = g.cout;
        let idx = (0..c)
            .map(|i| std::array::from_fn(|l| ((16 * i + l) / c) as i32))
            .collect();
        let mut masks = vec![0u16; c * c];
        for i in 0..c {
            for l in 0..16 {
                masks[i * c + (16 * i + l) % c] |= 1 << l;
            }
        }
        Some(Lanes {
            g: *g,
            hp: g.h + g.pad_top + g.pad_bottom,
            wp: g.w + g.pad_left + g.pad_right,
            w: w[..g.kh * g.kw * c].to_vec(),
            bias: bias.map_or_else(|| vec![0.0; c], |b| b[..c].to_vec()),
            relu,
            idx,
            masks,
            pool: false,
        })
    }

    /// Whether `g` is one this form runs (see [`Self::new`]).
    pub(super) fn fits(g: &ConvGeom) -> bool {
        g.cin == 1 && g.groups == 1 && g.sh == 1 && g.sw == 1 && (1..=MAX_COUT).contains(&g.cout)
    }

    /// Whether a 2x2 stride-2 max pool (no padding) after this convolution's activation may
    /// be fused into it: the output's rows and columns even, at most [`POOL_MAX_COUT`]
    /// channels.
    pub(super) fn pools(g: &ConvGeom) -> bool {
        g.ho.is_multiple_of(2) && g.wo.is_multiple_of(2) && g.cout <= POOL_MAX_COUT
    }

    /// Fuse the pool ([`Self::pools`]); the output is then the pooled image.
    pub(super) fn pool2(&mut self) -> bool {
        self.pool = Self::pools(&self.g);
        self.pool
    }

    /// With a fused pool: pairs of output rows over the batch (a unit of work is a range of
    /// them, [`Self::run_pooled`]).
    pub(super) fn pooled_pairs(&self, batch: usize) -> Option<usize> {
        self.pool.then_some(batch * self.g.ho / 2)
    }

    /// Output row pairs `pairs` (pair `k`: image `k / (ho / 2)`, rows `2 (k % (ho / 2))` and
    /// the next) pooled into `y` (NHWC, `ho / 2 x wo / 2`, no border), from the padded input
    /// `x` as [`Self::run`]'s.
    ///
    /// # Safety
    /// AVX-512F; `y` holds the range's pooled pixels, written by this call alone.
    pub(super) unsafe fn run_pooled(&self, x: &[f32], y: *mut f32, pairs: std::ops::Range<usize>) {
        let g = &self.g;
        let half = g.ho / 2;
        assert!(
            pairs.end.div_ceil(half) * self.hp * self.wp <= x.len(),
            "lanes: input too short"
        );
        macro_rules! by_c {
            ($($c:literal)*) => {
                match g.cout {
                    $($c => {
                        for k in pairs {
                            for ox in (0..g.wo).step_by(16) {
                                // SAFETY: rows 2 (k % half) + {0, 1} of image k / half, the
                                // range's pooled pixels (`run`'s checks).
                                unsafe {
                                    self.pooled::<$c>(x, y, k / half, 2 * (k % half), ox, (g.wo - ox).min(16))
                                };
                            }
                        }
                    })*
                    _ => unreachable!("a fused pool over {} channels", g.cout),
                }
            };
        }
        by_c!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    /// Output pixels `pixels` (over the batch: image `q / (ho wo)`, row-major within it) from
    /// the padded input `x` (`[n][hp][wp]`) into `y` (NHWC, no border: pixel `q` at `q
    /// cout`).
    ///
    /// # Safety
    /// AVX-512F; `y` holds the range's pixels, written by this call alone.
    pub(super) unsafe fn run(&self, x: &[f32], y: *mut f32, pixels: std::ops::Range<usize>) {
        let g = &self.g;
        let per_img = g.ho * g.wo;
        assert!(
            pixels.end.div_ceil(per_img) * self.hp * self.wp <= x.len(),
            "lanes: input too short"
        );
        // Rows at once per channel count: at most 24 accumulators.
        macro_rules! by_c {
            ($($c:literal $r:literal),*) => {
                match g.cout {
                    $($c => unsafe { self.rows::<$c, $r>(x, y, pixels) },)*
                    _ => unreachable!("lanes of {} channels", g.cout),
                }
            };
        }
        by_c!(1 4, 2 4, 3 4, 4 4, 5 2, 6 2, 7 2, 8 2, 9 1, 10 1, 11 1, 12 1, 13 1, 14 1, 15 1, 16 1)
    }

    /// The pixels in chunks of up to 16 inside one output row each, `C` channels; where the
    /// range holds `R` whole rows of an image from the current one, those rows at once (`R`
    /// times the accumulators: one chain per channel is `kh kw` FMAs long, latency-bound at 6
    /// channels; `R` rows share each weight broadcast).
    ///
    /// # Safety
    /// As [`Self::run`].
    #[target_feature(enable = "avx512f")]
    unsafe fn rows<const C: usize, const R: usize>(
        &self,
        x: &[f32],
        y: *mut f32,
        pixels: std::ops::Range<usize>,
    ) {
        let g = &self.g;
        let (wo, per_img) = (g.wo, g.ho * g.wo);
        let mut q = pixels.start;
        while q < pixels.end {
            let (n, p) = (q / per_img, q % per_img);
            let (oy, ox) = (p / wo, p % wo);
            if R > 1 && ox == 0 && oy + R <= g.ho && q + R * wo <= pixels.end {
                for ox in (0..wo).step_by(16) {
                    // SAFETY: rows oy .. oy + R of image n, the range's (checked above).
                    unsafe { self.block::<C, R>(x, y, n, oy, ox, (wo - ox).min(16)) };
                }
                q += R * wo;
            } else {
                let npx = (wo - ox).min(16).min(pixels.end - q);
                // SAFETY: pixels q .. q + npx, inside the range and row oy.
                unsafe { self.block::<C, 1>(x, y, n, oy, ox, npx) };
                q += npx;
            }
        }
    }

    /// Output pixels `ox .. ox + npx` (`npx <= 16`) of rows `oy .. oy + B` of image `n`.
    ///
    /// # Safety
    /// AVX-512F; those pixels are the caller's to write, inside the image; `run` checked the
    /// images are in `x`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
    #[inline]
    unsafe fn block<const C: usize, const B: usize>(
        &self,
        x: &[f32],
        y: *mut f32,
        n: usize,
        oy: usize,
        ox: usize,
        npx: usize,
    ) {
        let g = &self.g;
        let acc = lane_sums!(self, x, n, oy, ox, npx, C, B);
        let total = npx * C;
        for r in 0..B {
            // The activation on a copy of the row (see `lane_sums`).
            let mut row = acc[r];
            if let Some(a) = self.relu {
                for v in row.iter_mut() {
                    // SAFETY: AVX-512F (this function's features).
                    *v = unsafe { act_ps(a, *v) };
                }
            }
            let q = (n * g.ho + oy + r) * g.wo + ox;
            // SAFETY: row r's pixels, the caller's.
            unsafe { interleave_store!(self, row, y.add(q * C), total, C) };
        }
    }

    /// Rows `oy` and `oy + 1` (`oy` even) of output pixels `ox .. ox + npx` (`ox`, `npx`
    /// even) of image `n`, max-pooled 2x2: the rows' maximum, then each pair of lanes' (the
    /// even and odd lanes brought to the low eight by two `vpermps`), stored as `npx / 2`
    /// pooled pixels. Exact: the maxima of the values the unfused steps would store.
    ///
    /// # Safety
    /// As [`Self::run_pooled`]'s for these pixels.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
    unsafe fn pooled<const C: usize>(
        &self,
        x: &[f32],
        y: *mut f32,
        n: usize,
        oy: usize,
        ox: usize,
        npx: usize,
    ) {
        let g = &self.g;
        let acc = lane_sums!(self, x, n, oy, ox, npx, C, 2);
        // A clamp (ReLU, ReLU6) commutes with the maximum exactly, so it runs once per pooled
        // value, in registers; the other activations (not monotonic, or not exactly so in
        // floating point) on each of the four values, as the unfused steps would.
        let clamp = match self.relu {
            Some(Act::Clamp(hi)) => Some(_mm512_set1_ps(hi)),
            _ => None,
        };
        let even = _mm512_set_epi32(14, 12, 10, 8, 6, 4, 2, 0, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 15, 13, 11, 9, 7, 5, 3, 1);
        let mut pooled = [_mm512_setzero_ps(); C];
        for co in 0..C {
            let (mut a0, mut a1) = (acc[0][co], acc[1][co]);
            if let (Some(a), None) = (self.relu, clamp) {
                // SAFETY: AVX-512F (this function's features). (On copies: written back into
                // `acc`, the calls kept the accumulators in memory through the FMA loop.)
                (a0, a1) = unsafe { (act_ps(a, a0), act_ps(a, a1)) };
            }
            let mut v = _mm512_max_ps(a0, a1);
            if let Some(hi) = clamp {
                v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), hi);
            }
            pooled[co] = _mm512_max_ps(
                _mm512_permutexvar_ps(even, v),
                _mm512_permutexvar_ps(odd, v),
            );
        }
        let (hw, py) = (g.wo / 2, oy / 2);
        let q = (n * (g.ho / 2) + py) * hw + ox / 2;
        // SAFETY: the pooled row's pixels ox / 2 .. (ox + npx) / 2, the caller's.
        unsafe { interleave_store!(self, pooled, y.add(q * C), npx / 2 * C, C) };
    }
}
