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
//! threads, four alternating rounds, best; Xeon with AMX, 2026-12-05).

use super::{act_ps, lane_mask};
use crate::kernels::Relu;
use greenbench_core::graph::ConvGeom;
use std::arch::x86_64::*;

/// The most output channels this form runs.
pub(super) const MAX_COUT: usize = 16;

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
}

impl Lanes {
    /// The form for `g` (HWIO weights `w`) where it applies: one input channel, ungrouped,
    /// stride 1, at most [`MAX_COUT`] outputs.
    pub(super) fn new(g: &ConvGeom, w: &[f32], bias: Option<&[f32]>, relu: Relu) -> Option<Lanes> {
        let fits = g.cin == 1
            && g.groups == 1
            && g.sh == 1
            && g.sw == 1
            && (1..=MAX_COUT).contains(&g.cout);
        if !fits {
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
        })
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
        let m = lane_mask(npx, 0);
        let mut acc = [[_mm512_setzero_ps(); C]; B];
        for r in 0..B {
            for co in 0..C {
                acc[r][co] = _mm512_set1_ps(self.bias[co]);
            }
        }
        for ky in 0..g.kh {
            // Row (n, oy + r + ky) of the padded input from column ox: the chunk's windows
            // (inside the row: every window is).
            let row = (n * self.hp + oy + ky) * self.wp + ox;
            for kx in 0..g.kw {
                let mut xv = [_mm512_setzero_ps(); B];
                for r in 0..B {
                    // SAFETY: lanes below `npx` read inside row oy + r + ky; the others are
                    // masked.
                    xv[r] =
                        unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(row + r * self.wp + kx)) };
                }
                let wt = &self.w[(ky * g.kw + kx) * C..][..C];
                for co in 0..C {
                    let wv = _mm512_set1_ps(wt[co]);
                    for r in 0..B {
                        acc[r][co] = _mm512_fmadd_ps(xv[r], wv, acc[r][co]);
                    }
                }
            }
        }
        let total = npx * C;
        for r in 0..B {
            if let Some(a) = self.relu {
                for co in 0..C {
                    // SAFETY: AVX-512F (this function's features).
                    acc[r][co] = unsafe { act_ps(a, acc[r][co]) };
                }
            }
            let q = (n * g.ho + oy + r) * g.wo + ox;
            // Interleave into NHWC: output vector i gathers each channel's lanes.
            for i in 0..total.div_ceil(16) {
                // SAFETY: 16 i32.
                let ix = unsafe { _mm512_loadu_si512(self.idx[i].as_ptr() as *const __m512i) };
                let mut o = _mm512_setzero_ps();
                for co in 0..C {
                    o = _mm512_mask_permutexvar_ps(o, self.masks[i * C + co], ix, acc[r][co]);
                }
                // SAFETY: values 16 i .. min(16 i + 16, total) of row r's pixels, the
                // caller's.
                unsafe {
                    _mm512_mask_storeu_ps(y.add(q * C + 16 * i), lane_mask(total - 16 * i, 0), o)
                };
            }
        }
    }
}
