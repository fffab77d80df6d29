//! The bf16 direct kernels' tile on Intel AMX-BF16 (`tdpbf16ps`): 16 pixels (or two groups of
//! them, [`Pairs`]) x up to 64 channels per call, one tile instruction multiplying 16 pixels' next `cc` bf16 values (up
//! to 32) by the weights' `cc / 2` pairs of rows into 16 x 16 fp32 sums, the work of
//! `16 * cc / 2` `vdpbf16ps`. The weights are read as the AVX-512 BF16 tile packs them
//! (`[pairs][16 V][2]`: AMX's B layout, a tile per 16 channels at a `64 V`-byte stride) and
//! the pixels where they lie in the bf16 input (one tile row per pixel, at the pixels' common
//! stride: a group of 16 pixels of one output row, or 16 rows of a dense layer).
//!
//! The sums start at zero; the start (bias, or the partial sums of the reduction blocks
//! before) is added after the block's products, then on the last block the residual and the
//! activation, as `super::bf16::tile` does: the same products (exact), fp32 sums in another
//! order, within the tolerance the bf16 kernels are tested to. Detection, permission and the
//! tile instructions are `crate::amx`'s.

use super::lane_mask;
use super::tile::{Init, Mode};
use crate::amx::{Config, tile_dp, tile_load, tile_store, tile_zero};
use crate::kernels::Act;
use std::arch::x86_64::*;

/// Most pixels in an AMX group (a tile's rows).
pub(super) const GROUP: usize = 16;
/// The least tile a group is worth: rows x chunk (of 16 x 32). It keeps groups of one to
/// three pixels (batch-1 dense layers) off the tiles; that case was not measured. Against no
/// minimum (Xeon with AMX, 2026-12-05, `greenbench run --models ds-cnn,mobilenet-v1-0.25,
/// resnet8,lenet5 --batch 1,32 --precision bf16 --threads 2 --no-peak`, two alternating
/// rounds) every cell read the same within the spread (resnet8 b32 34.0 / 36.2 us with it,
/// 33.7 / 35.4 without). (It was added while ds-cnn read 16.5 -> 20.5 us; the cause was its
/// 1x1 layers in 5-pixel row groups, mended by taking uniform runs whole.)
const MIN_TILE: usize = 128;

/// The chunk of bf16 values per tile product for kernel-row runs of `kc` values: the largest
/// even divisor of `kc` up to 32 (a tile row's 64 bytes), when at least 8. `None`: the run
/// is too short or too odd for tiles to pay (the AVX-512 BF16 tile takes it).
pub(super) fn chunk(kc: usize) -> Option<usize> {
    (8..=32).rev().step_by(2).find(|c| kc.is_multiple_of(*c))
}

/// One group: `rows` pixels whose block input starts at `x + base` and steps by `stride` bf16
/// values from pixel to pixel, kernel rows `row_stride` apart; outputs and residuals as the
/// AVX-512 tile's ([`super::tile::TileArgs`]).
pub(super) struct GroupArgs {
    pub(super) rows: usize,
    pub(super) x: *const u16,
    pub(super) base: usize,
    pub(super) stride: usize,
    pub(super) nr: usize,
    pub(super) row_stride: usize,
    pub(super) kc: usize,
    /// The block's weights, `[pairs][16 vb][2]` bf16.
    pub(super) w: *const u16,
    pub(super) vb: usize,
    pub(super) bias: *const f32,
    pub(super) y: *mut f32,
    pub(super) obase: [usize; GROUP],
    pub(super) skip: *const f32,
    pub(super) sbase: [usize; GROUP],
    pub(super) ncols: usize,
    pub(super) mode: Mode,
}

/// For each pixel `q`, the end of the run of pixels from `q` whose inputs (`pix`) increase by
/// one common step: `pix[q..ends[q]]` evenly spaced, `ends[q] >= q + 1`. Empty for an empty
/// `pix` (every pixel `cin` after the one before).
pub(super) fn even_ends(pix: &[usize]) -> Vec<usize> {
    let n = pix.len();
    let mut ends = vec![n; n];
    for q in (0..n.saturating_sub(1)).rev() {
        let d = pix[q + 1].wrapping_sub(pix[q]);
        ends[q] = if pix[q + 1] <= pix[q] {
            q + 1
        } else if q + 2 < n && pix[q + 2] > pix[q + 1] && pix[q + 2] - pix[q + 1] == d {
            ends[q + 1]
        } else {
            q + 2
        };
    }
    ends
}

/// Whether pixels `qa..qb` (`ends`: [`even_ends`] of their inputs; empty: evenly spaced) are
/// all evenly spaced in the input (a dense layer, a 1x1 convolution over an unpadded input):
/// groups of 16 then cross output rows.
pub(super) fn uniform(ends: &[usize], qa: usize, qb: usize) -> bool {
    qb <= qa + 1 || ends.is_empty() || ends[qa] >= qb
}

/// The distance between consecutive pixels' inputs when pixels `q0..q0 + rows` are evenly
/// spaced in the input (one output row of a convolution; every run of a dense layer, whose
/// `pix` is empty and pixels `cin` apart). `ends`: [`even_ends`] of `pix`.
pub(super) fn even(
    pix: &[usize],
    ends: &[usize],
    cin: usize,
    q0: usize,
    rows: usize,
) -> Option<usize> {
    if pix.is_empty() {
        return Some(cin);
    }
    (rows >= 2 && ends[q0] >= q0 + rows).then(|| pix[q0 + 1] - pix[q0])
}

/// Pixels per AMX group along one output row of `wo` pixels (not evenly spaced across rows):
/// as equal as groups of at most 16 allow (28 -> 14 + 14, where 16 + 12 would leave 12 pixels
/// to a second tile configuration or to the AVX-512 BF16 tile).
pub(super) fn row_group(wo: usize) -> usize {
    wo / wo.div_ceil(GROUP)
}

/// One 16 x 16 block of fp32 sums as `tilestored` leaves them.
#[repr(C, align(64))]
struct Sums([f32; 256]);

/// Whether the AMX group kernel runs here (AMX-BF16 granted) for groups of `rows` pixels
/// over runs of `kc` values.
pub(super) fn runs(kc: usize, rows: usize) -> bool {
    crate::amx::bf16() && chunk(kc).is_some_and(|cc| rows * cc >= MIN_TILE)
}

/// The tile configuration of groups of `rows` pixels over runs of `kc` values: `tmm0..3`
/// sums (`rows` x 16 fp32), `tmm4..5` pixels (`rows` x `cc` bf16), `tmm6..7` weights (`cc /
/// 2` pairs x 16 channels). Loaded for a reduction block's groups ([`Config::load`], skipped
/// where this thread's tiles hold it already: `crate::amx`).
pub(super) fn config(kc: usize, rows: usize) -> Config {
    let cc = chunk(kc).expect("a chunkable run");
    let (c, x, w) = ((rows, 64), (rows, 2 * cc), (cc / 2, 64));
    Config::new([c, c, c, c, x, x, w, w])
}

/// A reduction block's groups, run two at a time ([`pair`]): the caller fills the next group in
/// place ([`Self::slot`], then [`Self::push`]), and a group waits there for the next one;
/// [`Self::flush`] runs the last one alone (before the block's partial sums are read). Filled in
/// place rather than moved in: a group's arguments are a few hundred bytes, and copying them whole
/// read back the caller's just-written fields with wide loads that waited on those stores (`perf
/// annotate` of `DirectPlan::unit`).
pub(super) struct Pairs {
    slots: [GroupArgs; 2],
    held: bool,
}

impl Default for Pairs {
    fn default() -> Pairs {
        let empty = || GroupArgs {
            rows: 0,
            x: std::ptr::null(),
            base: 0,
            stride: 0,
            nr: 0,
            row_stride: 0,
            kc: 0,
            w: std::ptr::null(),
            vb: 0,
            bias: std::ptr::null(),
            y: std::ptr::null_mut(),
            obase: [0; GROUP],
            skip: std::ptr::null(),
            sbase: [0; GROUP],
            ncols: 0,
            mode: Mode {
                init: Init::Bias,
                last: false,
                act: None,
            },
        };
        Pairs {
            slots: [empty(), empty()],
            held: false,
        }
    }
}

impl Pairs {
    /// The group to fill next.
    pub(super) fn slot(&mut self) -> &mut GroupArgs {
        &mut self.slots[self.held as usize]
    }

    /// Run the filled group with the held one, or hold it.
    ///
    /// # Safety
    /// As [`pair`]'s, for the filled group and the held one.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn push(&mut self) {
        if self.held {
            // SAFETY: the caller's.
            unsafe { pair(&self.slots[0], Some(&self.slots[1])) };
        }
        self.held = !self.held;
    }

    /// Run the held group, if any.
    ///
    /// # Safety
    /// As [`pair`]'s.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn flush(&mut self) {
        if self.held {
            self.held = false;
            // SAFETY: the caller's.
            unsafe { pair(&self.slots[0], None) };
        }
    }
}

/// Two groups' products and epilogues (`b` of the same rows, kernel and weights as `a`; or
/// `a` alone), two weight vectors at a time: per chunk, each group's pixels in a tile
/// (`tmm4`, `tmm5`) and each vector's weights (`tmm6`, `tmm7`) loaded once and used twice, the
/// four products independent (`tmm0..3`: a x v, a x v + 1, b x v, b x v + 1).
///
/// # Safety
/// [`runs`]`(a.kc, a.rows)` and [`config`]`(a.kc, a.rows)` loaded; AVX-512F; for each group,
/// every pixel's block input (`nr` runs of `kc` values) inside the input, `vb <= 4`, the
/// outputs (and residuals) at `obase` (`sbase`) inside theirs for `ncols` channels, `bias`
/// covering `16 vb` values.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pair(a: &GroupArgs, b: Option<&GroupArgs>) {
    let cc = chunk(a.kc).expect("a chunkable run");
    debug_assert!((1..=4).contains(&a.vb) && a.rows <= GROUP);
    debug_assert!(b.is_none_or(|b| b.rows == a.rows && b.kc == a.kc && b.vb == a.vb));
    let mut sums = Sums([0.0; 256]);
    let Some(b) = b else {
        // SAFETY: the caller's.
        return unsafe { single(a, cc, &mut sums) };
    };
    let (ws, xa, xb) = (64 * a.vb, 2 * a.stride, 2 * b.stride);
    // SAFETY (whole body): the caller's bounds. Tile loads read 16 pixels' `cc` values of a
    // kernel row (inside the run) and `cc / 2` weight pairs x 16 channels of vector v (inside
    // the block); stores go to `sums`.
    unsafe {
        for v in (0..a.vb).step_by(2) {
            let two = v + 1 < a.vb;
            tile_zero!("0", "1", "2", "3");
            for r in 0..a.nr {
                for j in (0..a.kc).step_by(cc) {
                    let at = r * a.row_stride + j;
                    let wp = a.w.add((r * a.kc + j) / 2 * 32 * a.vb + 32 * v);
                    tile_load!("4", a.x.add(a.base + at), xa);
                    tile_load!("6", wp, ws);
                    tile_dp!("tdpbf16ps", "0", "4", "6");
                    if two {
                        tile_load!("7", wp.add(32), ws);
                        tile_dp!("tdpbf16ps", "1", "4", "7");
                    }
                    tile_load!("5", b.x.add(b.base + at), xb);
                    tile_dp!("tdpbf16ps", "2", "5", "6");
                    if two {
                        tile_dp!("tdpbf16ps", "3", "5", "7");
                    }
                }
            }
            let sp = sums.0.as_mut_ptr();
            tile_store!("0", sp, 64usize);
            finish(a, sums.0.as_ptr(), v);
            if two {
                tile_store!("1", sp, 64usize);
                finish(a, sums.0.as_ptr(), v + 1);
            }
            tile_store!("2", sp, 64usize);
            finish(b, sums.0.as_ptr(), v);
            if two {
                tile_store!("3", sp, 64usize);
                finish(b, sums.0.as_ptr(), v + 1);
            }
        }
    }
}

/// One group alone: its `vb` vectors' sums at once (`tmm0..3`: four products per chunk, as in
/// a pair), the pixels in `tmm4` and the weights in `tmm6..7` (in turn: `tmm5` is shaped for
/// pixels, and a product of mismatched shapes faults).
///
/// # Safety
/// As [`pair`]'s for `a`; `cc = chunk(a.kc)`.
#[target_feature(enable = "avx512f")]
unsafe fn single(a: &GroupArgs, cc: usize, sums: &mut Sums) {
    let (xs, ws) = (2 * a.stride, 64 * a.vb);
    // SAFETY: as [`pair`]'s body.
    unsafe {
        tile_zero!("0", "1", "2", "3");
        for r in 0..a.nr {
            for j in (0..a.kc).step_by(cc) {
                tile_load!("4", a.x.add(a.base + r * a.row_stride + j), xs);
                let wp = a.w.add((r * a.kc + j) / 2 * 32 * a.vb);
                tile_load!("6", wp, ws);
                tile_dp!("tdpbf16ps", "0", "4", "6");
                if a.vb > 1 {
                    tile_load!("7", wp.add(32), ws);
                    tile_dp!("tdpbf16ps", "1", "4", "7");
                }
                if a.vb > 2 {
                    tile_load!("6", wp.add(64), ws);
                    tile_dp!("tdpbf16ps", "2", "4", "6");
                }
                if a.vb > 3 {
                    tile_load!("7", wp.add(96), ws);
                    tile_dp!("tdpbf16ps", "3", "4", "7");
                }
            }
        }
        let sp = sums.0.as_mut_ptr();
        for v in 0..a.vb {
            match v {
                0 => tile_store!("0", sp, 64usize),
                1 => tile_store!("1", sp, 64usize),
                2 => tile_store!("2", sp, 64usize),
                _ => tile_store!("3", sp, 64usize),
            }
            finish(a, sums.0.as_ptr(), v);
        }
    }
}

/// Vector `v`'s 16 x 16 sums through the start, residual and activation into the output.
///
/// # Safety
/// As [`pair`]'s.
#[target_feature(enable = "avx512f")]
unsafe fn finish(a: &GroupArgs, s: *const f32, v: usize) {
    let m = lane_mask(a.ncols, v);
    if m == 0 {
        return;
    }
    let load = matches!(a.mode.init, Init::Load);
    let skip = a.mode.last && !a.skip.is_null();
    // The block's mode chosen once rather than per row (a jump per row measured in `perf
    // annotate`): the common activations (none, ReLU, ReLU6) as a clamp in the row loop.
    macro_rules! by_mode {
        ($($l:literal $s:literal),*) => {
            match (load, skip, a.mode.act) {
                $(
                    ($l, $s, None) => unsafe { finish_rows::<$l, $s, false>(a, s, v, m, None) },
                    ($l, $s, Some(Act::Clamp(hi))) => unsafe {
                        finish_rows::<$l, $s, true>(a, s, v, m, Some(hi))
                    },
                )*
                (l, k, Some(act)) => unsafe { finish_any(a, s, v, m, l, k, act) },
            }
        };
    }
    by_mode!(false false, false true, true false, true true)
}

/// [`finish`]'s rows with the start loaded (`LOAD`) or the bias, the residual added (`SKIP`),
/// and clamped to `[0, hi]` (`CLAMP`).
///
/// # Safety
/// As [`pair`]'s; `m` = vector `v`'s lanes inside `ncols`.
#[inline(always)]
unsafe fn finish_rows<const LOAD: bool, const SKIP: bool, const CLAMP: bool>(
    a: &GroupArgs,
    s: *const f32,
    v: usize,
    m: u16,
    hi: Option<f32>,
) {
    // SAFETY: the caller's bounds (outputs, residuals and bias for `ncols` channels).
    unsafe {
        let bias = _mm512_maskz_loadu_ps(m, a.bias.add(16 * v));
        let (zero, hi) = (_mm512_setzero_ps(), _mm512_set1_ps(hi.unwrap_or(0.0)));
        for i in 0..a.rows {
            let mut r = _mm512_load_ps(s.add(16 * i));
            let o = a.y.add(a.obase[i] + 16 * v);
            r = match LOAD {
                false => _mm512_add_ps(r, bias),
                true => _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, o)),
            };
            if SKIP {
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, a.skip.add(a.sbase[i] + 16 * v)));
            }
            if CLAMP {
                r = _mm512_min_ps(_mm512_max_ps(r, zero), hi);
            }
            _mm512_mask_storeu_ps(o, m, r);
        }
    }
}

/// [`finish`]'s rows for the other activations.
///
/// # Safety
/// As [`finish_rows`].
#[target_feature(enable = "avx512f")]
unsafe fn finish_any(
    a: &GroupArgs,
    s: *const f32,
    v: usize,
    m: u16,
    load: bool,
    skip: bool,
    act: Act,
) {
    // SAFETY: the caller's bounds (outputs, residuals and bias for `ncols` channels).
    unsafe {
        let bias = _mm512_maskz_loadu_ps(m, a.bias.add(16 * v));
        for i in 0..a.rows {
            let mut r = _mm512_load_ps(s.add(16 * i));
            let o = a.y.add(a.obase[i] + 16 * v);
            r = match load {
                false => _mm512_add_ps(r, bias),
                true => _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, o)),
            };
            if skip {
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, a.skip.add(a.sbase[i] + 16 * v)));
            }
            r = match act {
                Act::Gelu => crate::kernels::gelu16(r),
                _ => super::act_ps(act, r),
            };
            _mm512_mask_storeu_ps(o, m, r);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pixels_evenly_spaced_or_not() {
        // Two output rows of 3 pixels, 2 values each, rows 10 apart.
        let pix = [0, 2, 4, 10, 12, 14];
        let ends = super::even_ends(&pix);
        assert_eq!(ends, [3, 3, 4, 6, 6, 6]);
        assert!(!super::uniform(&ends, 0, 6));
        assert!(super::uniform(&ends, 0, 3));
        assert!(super::uniform(&ends, 3, 6));
        assert!(!super::uniform(&ends, 2, 5));
        assert!(super::uniform(&ends, 2, 3));
        assert!(super::uniform(&[], 0, 64));
        assert_eq!(super::even(&pix, &ends, 2, 0, 3), Some(2));
        assert_eq!(super::even(&pix, &ends, 2, 1, 3), None);
        assert_eq!(super::even(&pix, &ends, 2, 3, 3), Some(2));
        assert_eq!(super::even(&[], &[], 7, 5, 16), Some(7));
        // Steps that do not increase end a run.
        assert_eq!(super::even_ends(&[5, 5, 6, 7]), [1, 4, 4, 4]);
        assert_eq!(super::even_ends(&[9, 3, 6]), [1, 3, 3]);
    }

    #[test]
    fn chunks_divide_the_run() {
        assert_eq!(super::chunk(64), Some(32));
        assert_eq!(super::chunk(48), Some(24));
        assert_eq!(super::chunk(12), Some(12));
        assert_eq!(super::chunk(8), Some(8));
        assert_eq!(super::chunk(6), None);
        assert_eq!(super::chunk(2 * 37), None);
    }
}
