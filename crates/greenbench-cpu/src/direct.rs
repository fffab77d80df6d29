//! Register-blocked AVX-512 convolution and GEMM, with no im2col and no packing of the
//! activations.
//!
//! One micro-kernel family serves dense layers, 1x1 convolutions and k x k convolutions
//! (ungrouped): an output tile of `P` pixels by `16 * V` output channels lives in `P * V`
//! zmm accumulators; for every reduction step it loads `V` vectors of packed weights and
//! broadcasts one input value per pixel straight from the NHWC activation. A kernel row
//! (`kw` taps of `cin` values) is one contiguous run of the input, so a pixel needs one
//! pointer per kernel row; padded convolutions first copy their input into a buffer with
//! zero borders (one pass over the input, against `kh * kw` for im2col). Bias and ReLU
//! are applied as the tile is stored; Cout that is not a multiple of 16 is stored with
//! masks. Weights are packed once, in `prepare`, as `[channel block][k][16 V]`, and the
//! reduction is cut into blocks whose weights fit in L1, so one weight block serves a whole
//! run of pixel tiles.
//!
//! Why not the `gemm` crate with im2col, which this replaced on AVX-512 machines: the zoo's
//! convolutions have 6 to 64 output channels, the `gemm` crate's AVX-512 micro-kernel is
//! 48 x 6 and fell to its edge kernels on them, and im2col copied each input value up to
//! `kh * kw` times (35 % of resnet8's time at batch 32, 56 % of lenet5's). Measured on the
//! dev VM (2-core Xeon with AVX-512, quick profile, 2 threads): see the commit that made
//! this the default and `results/onnx/README.md`.
//!
//! Only compiled for x86-64; other CPUs (and x86-64 CPUs without AVX-512) keep the
//! im2col + `gemm` crate path, which dispatches to AVX2/FMA or NEON kernels.

#![cfg(target_arch = "x86_64")]

use crate::kernels::SendPtr;
use greenbench_core::graph::{ConvGeom, PoolGeom};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Most pixels in one tile (the widest kernel instance).
const MAX_P: usize = 8;
/// Target pixels per work unit: enough tiles to reuse an L1-resident weight block, few
/// enough that the unit's output stays in L2 while reduction blocks revisit it.
const UNIT_PIXELS: usize = 256;

/// Whether this CPU runs the direct kernels.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// How to find the input of output pixel `q`: image `q / (ho * wo)`, row `oy`, column `ox`
/// start at `((n * hp + oy * sh) * wp + ox * sw) * cin` of the (padded) input, and kernel
/// row `ky` is the run of `kw * cin` values `ky * wp * cin` further on. A dense layer is the
/// case `ho = wo = hp = wp = kh = kw = 1`.
#[derive(Clone, Copy)]
struct Geometry {
    ho: usize,
    wo: usize,
    hp: usize,
    wp: usize,
    sh: usize,
    sw: usize,
    cin: usize,
    kh: usize,
    kw: usize,
}

/// Zero padding around each input image, copied in before the convolution runs.
#[derive(Clone, Copy)]
struct Padding {
    h: usize,
    w: usize,
    top: usize,
    left: usize,
}

/// Zero rows and columns around each image of an activation stored padded: top, bottom,
/// left, right. A convolution whose input is stored this way reads it in place; the step
/// that produces it writes only the interior (the borders are zeroed once, in `prepare`).
pub type Border = [usize; 4];

/// Copying a batch of NHWC images into a zero-bordered buffer, in units of a few rows so
/// that threads can share it.
#[derive(Clone, Copy)]
struct PadCopy {
    batch: usize,
    h: usize,
    w: usize,
    c: usize,
    top: usize,
    left: usize,
    hp: usize,
    wp: usize,
}

/// Input rows per copy unit.
const COPY_ROWS: usize = 8;

impl PadCopy {
    fn units(&self) -> usize {
        self.batch * self.h.div_ceil(COPY_ROWS)
    }

    /// Copy unit `u` of `x` into `dst` (`batch * hp * wp * c` values).
    ///
    /// # Safety
    /// `dst` must point to that many values; concurrent calls must use distinct `u`.
    unsafe fn unit(&self, x: &[f32], dst: *mut f32, u: usize) {
        let per = self.h.div_ceil(COPY_ROWS);
        let (n, r0) = (u / per, (u % per) * COPY_ROWS);
        let row = self.w * self.c;
        for iy in r0..(r0 + COPY_ROWS).min(self.h) {
            let src = &x[(n * self.h + iy) * row..(n * self.h + iy + 1) * row];
            let o = ((n * self.hp + iy + self.top) * self.wp + self.left) * self.c;
            // SAFETY: the row lies inside image n of `dst` (iy + top < hp, left + w <= wp);
            // distinct units write distinct rows.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.add(o), row) };
        }
    }

    fn run(&self, x: &[f32], dst: &mut [f32], par: bool) {
        assert!(
            x.len() >= self.batch * self.h * self.w * self.c,
            "pad copy: input"
        );
        assert!(
            dst.len() >= self.batch * self.hp * self.wp * self.c,
            "pad copy: buffer"
        );
        let d = SendPtr(dst.as_mut_ptr());
        // SAFETY: lengths asserted above; units are distinct.
        let body = |u| unsafe { self.unit(x, d.get(), u) };
        if par {
            (0..self.units()).into_par_iter().for_each(body);
        } else {
            (0..self.units()).for_each(body);
        }
    }
}

/// Per pixel of `batch` images of `h x w x c` stored with `border`: the offset of its first
/// channel; and the whole stored length.
fn bordered_offsets(
    batch: usize,
    h: usize,
    w: usize,
    c: usize,
    border: Border,
) -> (Vec<usize>, usize) {
    let [bt, bb, bl, br] = border;
    let (hb, wb) = (h + bt + bb, w + bl + br);
    let offsets = (0..batch * h * w)
        .map(|q| {
            let (n, r) = (q / (h * w), q % (h * w));
            ((n * hb + r / w + bt) * wb + r % w + bl) * c
        })
        .collect();
    (offsets, batch * hb * wb * c)
}

/// One convolution or GEMM planned for the direct kernels.
pub struct DirectPlan {
    pixels: usize,
    cout: usize,
    geo: Geometry,
    pad: Option<Padding>,
    /// Vectors (of 16 channels) per channel block, 1..=4.
    v: usize,
    /// Pixels per tile for this `v`.
    p: usize,
    /// `[block][k][16 v]` with k in (ky, kx, ci) order, zero-padded past `cout`.
    w: Vec<f32>,
    /// Bias padded to whole blocks (zeros when the layer has none).
    bias: Vec<f32>,
    relu: bool,
    /// Reduction blocks: kernel rows `r0..r1`, values `c0..c1` of each row's run.
    kblocks: Vec<(usize, usize, usize, usize)>,
    /// Offset in the (padded) input of each output pixel's window; empty for GEMMs (and
    /// 1x1 convolutions of 1x1 images), whose pixel `q` starts at `q * cin`.
    pix: Vec<usize>,
    /// Offset of each output pixel when the output is stored with a [`Border`]; empty when
    /// pixel `q` is at `q * cout`.
    out_pix: Vec<usize>,
    /// A residual is added before the ReLU (`with_residual`); `skip_pix` as `out_pix` for
    /// the residual's layout (empty: pixel `q` at `q * cout`).
    residual: bool,
    skip_pix: Vec<usize>,
    skip_len: usize,
    input_len: usize,
    out_len: usize,
}

/// The buffer a padded convolution copies its input into (borders stay zero); empty for
/// the other plans. Kept by the caller so `run` can take the plan by shared reference.
pub type PadBuffer = crate::kernels::Buf;

impl DirectPlan {
    /// A GEMM `y[rows, n] = x[rows, k] . w[k, n]` (+ bias, ReLU); `w` row-major.
    pub fn gemm(
        rows: usize,
        k: usize,
        n: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
    ) -> Self {
        let geo = Geometry {
            ho: 1,
            wo: 1,
            hp: 1,
            wp: 1,
            sh: 1,
            sw: 1,
            cin: k,
            kh: 1,
            kw: 1,
        };
        Self::build(rows, n, geo, None, w, bias, relu, rows * k)
    }

    /// An ungrouped convolution over `batch` NHWC images, weights HWIO. `in_padded`: the
    /// input is stored with this convolution's padding as its [`Border`] (no copy needed);
    /// `out_border`: store the output with that border.
    /// `None` when the geometry is not one the kernels take (grouped convolutions).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        g: &ConvGeom,
        batch: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        in_padded: bool,
        out_border: Option<Border>,
    ) -> Option<Self> {
        if g.groups != 1 {
            return None;
        }
        let padded = !in_padded && g.pad_top + g.pad_bottom + g.pad_left + g.pad_right > 0;
        let (hp, wp) = (
            g.h + g.pad_top + g.pad_bottom,
            g.w + g.pad_left + g.pad_right,
        );
        let geo = Geometry {
            ho: g.ho,
            wo: g.wo,
            hp,
            wp,
            sh: g.sh,
            sw: g.sw,
            cin: g.cin,
            kh: g.kh,
            kw: g.kw,
        };
        let pad = padded.then_some(Padding {
            h: g.h,
            w: g.w,
            top: g.pad_top,
            left: g.pad_left,
        });
        let input_len = if in_padded {
            batch * hp * wp * g.cin
        } else {
            batch * g.h * g.w * g.cin
        };
        let mut plan = Self::build(
            batch * g.ho * g.wo,
            g.cout,
            geo,
            pad,
            w,
            bias,
            relu,
            input_len,
        );
        if let Some(border) = out_border {
            (plan.out_pix, plan.out_len) = bordered_offsets(batch, g.ho, g.wo, g.cout, border);
        }
        Some(plan)
    }

    /// Add a residual of the output's shape before the ReLU: `y = relu(conv(x) + skip)`,
    /// with `skip` stored with `border` (its producer's) if any. Only for convolutions.
    pub fn with_residual(mut self, border: Option<Border>) -> Self {
        let g = self.geo;
        let batch = self.pixels / (g.ho * g.wo);
        self.residual = true;
        match border {
            Some(border) => {
                (self.skip_pix, self.skip_len) =
                    bordered_offsets(batch, g.ho, g.wo, self.cout, border);
            }
            None => self.skip_len = self.pixels * self.cout,
        }
        self
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        pixels: usize,
        cout: usize,
        geo: Geometry,
        pad: Option<Padding>,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        input_len: usize,
    ) -> Self {
        let k = geo.kh * geo.kw * geo.cin;
        assert_eq!(w.len(), k * cout, "weights do not match the geometry");
        // Register blocking: P * V accumulators + V weight vectors + 1 broadcast <= 32 zmm,
        // and at least 8 accumulators to cover the FMA latency of two pipes.
        let v = cout.div_ceil(16).clamp(1, 4);
        let p = if v == 4 { 6 } else { 8 };
        let nb = cout.div_ceil(16 * v);
        let width = 16 * v;
        let mut packed = vec![0.0f32; nb * k * width];
        for b in 0..nb {
            for kk in 0..k {
                for j in 0..width {
                    let co = b * width + j;
                    if co < cout {
                        packed[(b * k + kk) * width + j] = w[kk * cout + co];
                    }
                }
            }
        }
        let mut padded_bias = vec![0.0f32; nb * width];
        if let Some(b) = bias {
            padded_bias[..cout].copy_from_slice(&b[..cout]);
        }
        // Reduction blocks: the weights of one block (kc * width floats) within ~24 KiB:
        // whole kernel rows where they fit, else pieces of one row's run.
        let kc = (6144 / width).max(1);
        let run = geo.kw * geo.cin;
        let mut kblocks = Vec::new();
        if run <= kc {
            let per = kc / run;
            let mut r0 = 0;
            while r0 < geo.kh {
                let r1 = (r0 + per).min(geo.kh);
                kblocks.push((r0, r1, 0, run));
                r0 = r1;
            }
        } else {
            for r in 0..geo.kh {
                let mut c0 = 0;
                while c0 < run {
                    let c1 = (c0 + kc).min(run);
                    kblocks.push((r, r + 1, c0, c1));
                    c0 = c1;
                }
            }
        }
        // Window offsets, computed once here (two divisions per pixel cost as much as the
        // multiply-adds of a small tile).
        let pix = if geo.ho * geo.wo == 1 && geo.hp * geo.wp == 1 && geo.kh * geo.kw == 1 {
            Vec::new()
        } else {
            (0..pixels)
                .map(|q| {
                    let (n, r) = (q / (geo.ho * geo.wo), q % (geo.ho * geo.wo));
                    let (oy, ox) = (r / geo.wo, r % geo.wo);
                    ((n * geo.hp + oy * geo.sh) * geo.wp + ox * geo.sw) * geo.cin
                })
                .collect()
        };
        DirectPlan {
            pix,
            pixels,
            cout,
            geo,
            pad,
            v,
            p,
            w: packed,
            bias: padded_bias,
            relu,
            kblocks,
            out_pix: Vec::new(),
            residual: false,
            skip_pix: Vec::new(),
            skip_len: 0,
            input_len,
            out_len: pixels * cout,
        }
    }

    /// Length of the output buffer (with its border, if stored with one).
    pub fn output_len(&self) -> usize {
        self.out_len
    }

    /// The zeroed buffer [`Self::run`] needs (empty when the convolution has no padding).
    pub fn pad_buffer(&self) -> PadBuffer {
        match self.pad {
            Some(_) => {
                let batch = self.pixels / (self.geo.ho * self.geo.wo);
                PadBuffer::zeros(batch * self.geo.hp * self.geo.wp * self.geo.cin)
            }
            None => PadBuffer::default(),
        }
    }

    fn pad_copy(&self) -> Option<PadCopy> {
        self.pad.map(|pd| PadCopy {
            batch: self.pixels / (self.geo.ho * self.geo.wo),
            h: pd.h,
            w: pd.w,
            c: self.geo.cin,
            top: pd.top,
            left: pd.left,
            hp: self.geo.hp,
            wp: self.geo.wp,
        })
    }

    /// Units of the padded-input copy (0 when there is none); see [`Self::copy_unit`].
    pub fn copy_units(&self) -> usize {
        self.pad_copy().map_or(0, |c| c.units())
    }

    /// Run copy unit `u` of `x` into the pad buffer at `padbuf`.
    ///
    /// # Safety
    /// `padbuf` must be this plan's [`Self::pad_buffer`]; concurrent calls use distinct `u`.
    pub unsafe fn copy_unit(&self, x: &[f32], padbuf: *mut f32, u: usize) {
        assert!(x.len() >= self.input_len, "direct: input too short");
        let c = self.pad_copy().expect("copy units exist only with padding");
        unsafe { c.unit(x, padbuf, u) }
    }

    /// Whether the compute reads the pad buffer (after the copy) rather than the input.
    pub fn reads_pad_buffer(&self) -> bool {
        self.pad.is_some()
    }

    /// Units of the compute for `threads` threads (one unit per tile chunk and channel
    /// block; at least ~4 per thread so all stay busy to the end).
    pub fn compute_units(&self, threads: usize) -> usize {
        let (chunks, _, nb) = self.layout(threads);
        chunks * nb
    }

    /// (chunks, tiles per chunk, channel blocks).
    fn layout(&self, threads: usize) -> (usize, usize, usize) {
        let nb = self.cout.div_ceil(16 * self.v);
        let tiles = self.pixels.div_ceil(self.p);
        let mut unit_tiles = (UNIT_PIXELS / self.p).max(1);
        if threads > 1 {
            let want = (4 * threads).div_ceil(nb);
            unit_tiles = unit_tiles.min(tiles.div_ceil(want).max(1));
        }
        (tiles.div_ceil(unit_tiles), unit_tiles, nb)
    }

    /// Run compute unit `u` (of [`Self::compute_units`] for `threads`) reading `x` (the
    /// pad buffer if [`Self::reads_pad_buffer`], else the input) and writing `y`.
    ///
    /// # Safety
    /// `y` must point to [`Self::output_len`] values; concurrent calls use distinct `u`.
    pub unsafe fn compute_unit(
        &self,
        x: &[f32],
        y: *mut f32,
        skip: Option<&[f32]>,
        u: usize,
        threads: usize,
    ) {
        assert!(available(), "direct kernels need AVX-512F");
        let skip = match skip {
            Some(s) if self.residual => {
                assert!(s.len() >= self.skip_len, "direct: residual too short");
                s.as_ptr()
            }
            None if !self.residual => std::ptr::null(),
            _ => panic!("direct: residual given to a plan without one, or missing"),
        };
        let need = match self.pad_copy() {
            Some(c) => c.batch * c.hp * c.wp * c.c,
            None => self.input_len,
        };
        assert!(x.len() >= need, "direct: input too short");
        let (_, unit_tiles, nb) = self.layout(threads);
        let tiles = self.pixels.div_ceil(self.p);
        let (chunk, b) = (u / nb, u % nb);
        let t0 = chunk * unit_tiles;
        let t1 = (t0 + unit_tiles).min(tiles);
        // SAFETY: AVX-512F checked; unit (chunk, b) writes only its pixels' channels
        // b*width..(b+1)*width, disjoint from every other unit's; every input offset lies
        // inside `x` (the padded geometry covers each pixel's whole window, length checked).
        unsafe { self.unit(x.as_ptr(), y, skip, t0, t1, b) };
    }

    /// Run on `x` into `y`, splitting across the current rayon pool when `par`; `padbuf`
    /// comes from [`Self::pad_buffer`]. Panics if the CPU lacks AVX-512 (callers check
    /// [`available`]) or on short slices.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        x: &[f32],
        y: &mut [f32],
        skip: Option<&[f32]>,
        padbuf: &mut PadBuffer,
        par: bool,
        threads: usize,
    ) {
        assert!(available(), "direct kernels need AVX-512F");
        assert!(x.len() >= self.input_len, "direct: input too short");
        assert!(y.len() >= self.output_len(), "direct: output too short");
        let x: &[f32] = match self.pad_copy() {
            Some(c) => {
                c.run(x, padbuf, par);
                padbuf
            }
            None => x,
        };
        let threads = if par { threads } else { 1 };
        let units = self.compute_units(threads);
        let yp = SendPtr(y.as_mut_ptr());
        // SAFETY: `y` is long enough (asserted); units are distinct.
        let body = |u: usize| unsafe { self.compute_unit(x, yp.get(), skip, u, threads) };
        if par {
            (0..units).into_par_iter().for_each(body);
        } else {
            (0..units).for_each(body);
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn unit(
        &self,
        x: *const f32,
        y: *mut f32,
        skip: *const f32,
        t0: usize,
        t1: usize,
        b: usize,
    ) {
        let g = self.geo;
        let width = 16 * self.v;
        let k = g.kh * g.kw * g.cin;
        let run = g.kw * g.cin;
        let row_stride = g.wp * g.cin;
        let ncols = (self.cout - b * width).min(width);
        let nkb = self.kblocks.len();
        let mut base = [0usize; MAX_P];
        let mut obase = [0usize; MAX_P];
        let mut sbase = [0usize; MAX_P];
        for (kbi, &(r0, r1, c0, c1)) in self.kblocks.iter().enumerate() {
            let w = unsafe { self.w.as_ptr().add((b * k + r0 * run + c0) * width) };
            let mode = Mode {
                init: if kbi == 0 { Init::Bias } else { Init::Load },
                last: kbi + 1 == nkb,
                relu: self.relu && kbi + 1 == nkb,
            };
            for tile in t0..t1 {
                let q0 = tile * self.p;
                let np = (self.pixels - q0).min(self.p);
                let off = r0 * row_stride + c0;
                if self.pix.is_empty() {
                    for (pi, o) in base.iter_mut().enumerate().take(np) {
                        *o = (q0 + pi) * g.cin + off;
                    }
                } else {
                    for (o, &w) in base.iter_mut().zip(&self.pix[q0..q0 + np]) {
                        *o = w + off;
                    }
                }
                if self.out_pix.is_empty() {
                    for (pi, o) in obase.iter_mut().enumerate().take(np) {
                        *o = (q0 + pi) * self.cout + b * width;
                    }
                } else {
                    for (o, &w) in obase.iter_mut().zip(&self.out_pix[q0..q0 + np]) {
                        *o = w + b * width;
                    }
                }
                if self.residual {
                    if self.skip_pix.is_empty() {
                        for (pi, o) in sbase.iter_mut().enumerate().take(np) {
                            *o = (q0 + pi) * self.cout + b * width;
                        }
                    } else {
                        for (o, &w) in sbase.iter_mut().zip(&self.skip_pix[q0..q0 + np]) {
                            *o = w + b * width;
                        }
                    }
                }
                let a = TileArgs {
                    x,
                    base: &base,
                    obase: &obase,
                    nr: r1 - r0,
                    row_stride,
                    kc: c1 - c0,
                    w,
                    bias: unsafe { self.bias.as_ptr().add(b * width) },
                    y,
                    skip,
                    sbase: &sbase,
                    np,
                    ncols,
                    mode,
                };
                unsafe { dispatch(self.v, np, &a) };
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Init {
    Bias,
    Load,
}

#[derive(Clone, Copy)]
struct Mode {
    init: Init,
    /// Last reduction block: add the residual (if any), then ReLU (if set).
    last: bool,
    relu: bool,
}

struct TileArgs<'a> {
    x: *const f32,
    /// Offset in `x` of each pixel's first value of this block (first `P` used).
    base: &'a [usize; MAX_P],
    /// Kernel rows in the block, `row_stride` apart in `x`.
    nr: usize,
    row_stride: usize,
    /// Contiguous values per kernel row in the block.
    kc: usize,
    w: *const f32,
    bias: *const f32,
    y: *mut f32,
    /// Offset in `y` of each pixel's first channel of this block.
    obase: &'a [usize; MAX_P],
    /// Residual added before the ReLU on the last block (null when none), at `sbase`.
    skip: *const f32,
    sbase: &'a [usize; MAX_P],
    np: usize,
    ncols: usize,
    mode: Mode,
}

/// Pick the kernel instance: `V` from the plan, `P` from the pixels left in this tile (so
/// a batch-1 dense layer runs a 1-pixel kernel, not a full tile of duplicates).
#[target_feature(enable = "avx512f")]
unsafe fn dispatch(v: usize, np: usize, a: &TileArgs<'_>) {
    macro_rules! by_p {
        ($v:literal, $($p:literal)*) => {
            match np {
                $($p => unsafe { tile::<$p, $v>(a) },)*
                _ => unreachable!("tile of {np} pixels"),
            }
        };
    }
    match v {
        1 => by_p!(1, 1 2 3 4 5 6 7 8),
        2 => by_p!(2, 1 2 3 4 5 6 7 8),
        3 => by_p!(3, 1 2 3 4 5 6 7 8),
        _ => by_p!(4, 1 2 3 4 5 6),
    }
}

/// The mask of vector `v`'s lanes (16 each) that fall inside the first `ncols` columns.
#[inline(always)]
pub(crate) fn lane_mask(ncols: usize, v: usize) -> u16 {
    let lanes = ncols.saturating_sub(16 * v).min(16);
    if lanes == 16 {
        u16::MAX
    } else {
        (1u16 << lanes) - 1
    }
}

/// The micro-kernel: `P` pixels x `16 V` channels, over one reduction block.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const P: usize, const V: usize>(a: &TileArgs<'_>) {
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    let mut masks = [0u16; V];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = lane_mask(a.ncols, v);
    }
    match a.mode.init {
        Init::Bias => {
            for v in 0..V {
                let b = unsafe { _mm512_loadu_ps(a.bias.add(16 * v)) };
                for row in acc.iter_mut() {
                    row[v] = b;
                }
            }
        }
        Init::Load => {
            for (p, row) in acc.iter_mut().enumerate().take(a.np) {
                for v in 0..V {
                    let o = unsafe { a.y.add(a.obase[p] + 16 * v) };
                    row[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], o) };
                }
            }
        }
    }
    let mut w = a.w;
    for r in 0..a.nr {
        let mut px = [std::ptr::null::<f32>(); P];
        for (p, ptr) in px.iter_mut().enumerate() {
            *ptr = unsafe { a.x.add(a.base[p] + r * a.row_stride) };
        }
        for c in 0..a.kc {
            let mut wv = [_mm512_setzero_ps(); V];
            for (v, wr) in wv.iter_mut().enumerate() {
                *wr = unsafe { _mm512_loadu_ps(w.add(16 * v)) };
            }
            for p in 0..P {
                let xb = _mm512_set1_ps(unsafe { *px[p].add(c) });
                for v in 0..V {
                    acc[p][v] = _mm512_fmadd_ps(xb, wv[v], acc[p][v]);
                }
            }
            w = unsafe { w.add(16 * V) };
        }
    }
    let zero = _mm512_setzero_ps();
    for (p, row) in acc.iter().enumerate().take(a.np) {
        for v in 0..V {
            if masks[v] == 0 {
                continue;
            }
            let mut r = row[v];
            if a.mode.last && !a.skip.is_null() {
                let s = unsafe { _mm512_maskz_loadu_ps(masks[v], a.skip.add(a.sbase[p] + 16 * v)) };
                r = _mm512_add_ps(r, s);
            }
            if a.mode.relu {
                r = _mm512_max_ps(r, zero);
            }
            let o = unsafe { a.y.add(a.obase[p] + 16 * v) };
            unsafe { _mm512_mask_storeu_ps(o, masks[v], r) };
        }
    }
}

/// Output rows per depthwise compute unit.
const DW_ROWS: usize = 2;

/// A depthwise convolution (groups == Cin == Cout) planned for the direct kernel: weights
/// `[kh * kw, C]`, fused bias and ReLU, NHWC. A padded input is read in place when its
/// producer stored it with this convolution's padding as [`Border`] (`in_padded`), else
/// first copied into the plan's pad buffer (borders zero), so every window is whole. The
/// output is stored with `out_border` when the next convolution wants it so. A compute unit
/// is a couple of output rows; within a row, up to 64 channels (4 vectors) by a strip of up
/// to 6 or 8 pixels accumulate every tap in registers and are stored once (the portable
/// kernel re-reads and re-writes the output row for each tap, and was 36 % of mobilenet's
/// time).
pub struct DwPlan {
    g: ConvGeom,
    batch: usize,
    w: Vec<f32>,
    bias: Option<Vec<f32>>,
    relu: bool,
    in_padded: bool,
    out_border: Border,
    hp: usize,
    wp: usize,
}

impl DwPlan {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        g: &ConvGeom,
        batch: usize,
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
        in_padded: bool,
        out_border: Option<Border>,
    ) -> Self {
        assert!(g.is_depthwise(), "not a depthwise convolution");
        assert!(
            w.len() >= g.kh * g.kw * g.cin,
            "depthwise: weights too short"
        );
        assert!(
            bias.as_ref().is_none_or(|b| b.len() >= g.cin),
            "depthwise: bias too short"
        );
        let (hp, wp) = (
            g.h + g.pad_top + g.pad_bottom,
            g.w + g.pad_left + g.pad_right,
        );
        assert!((g.ho - 1) * g.sh + g.kh <= hp && (g.wo - 1) * g.sw + g.kw <= wp);
        DwPlan {
            g: *g,
            batch,
            w,
            bias,
            relu,
            in_padded,
            out_border: out_border.unwrap_or([0; 4]),
            hp,
            wp,
        }
    }

    fn pad_copy(&self) -> Option<PadCopy> {
        let g = &self.g;
        (!self.in_padded && g.pad_top + g.pad_bottom + g.pad_left + g.pad_right > 0).then_some(
            PadCopy {
                batch: self.batch,
                h: g.h,
                w: g.w,
                c: g.cin,
                top: g.pad_top,
                left: g.pad_left,
                hp: self.hp,
                wp: self.wp,
            },
        )
    }

    /// The zeroed buffer the padded input is copied into (empty when none is needed).
    pub fn pad_buffer(&self) -> PadBuffer {
        match self.pad_copy() {
            Some(c) => PadBuffer::zeros(c.batch * c.hp * c.wp * c.c),
            None => PadBuffer::default(),
        }
    }

    /// Units of the padded-input copy (0 when there is none).
    pub fn copy_units(&self) -> usize {
        self.pad_copy().map_or(0, |c| c.units())
    }

    /// # Safety
    /// As [`DirectPlan::copy_unit`].
    pub unsafe fn copy_unit(&self, x: &[f32], padbuf: *mut f32, u: usize) {
        let c = self.pad_copy().expect("copy units exist only with padding");
        unsafe { c.unit(x, padbuf, u) }
    }

    /// Whether the compute reads the pad buffer (after the copy) rather than the input.
    pub fn reads_pad_buffer(&self) -> bool {
        self.pad_copy().is_some()
    }

    pub fn compute_units(&self) -> usize {
        (self.batch * self.g.ho).div_ceil(DW_ROWS)
    }

    /// Length of the output buffer (with its border, if stored with one).
    pub fn output_len(&self) -> usize {
        let [bt, bb, bl, br] = self.out_border;
        self.batch * (self.g.ho + bt + bb) * (self.g.wo + bl + br) * self.g.cout
    }

    /// # Safety
    /// As [`DirectPlan::compute_unit`]: `y` points to [`Self::output_len`] values.
    pub unsafe fn compute_unit(&self, x: &[f32], y: *mut f32, u: usize) {
        assert!(available(), "direct kernels need AVX-512F");
        let g = &self.g;
        let c = g.cin;
        let (hp, wp) = if self.in_padded || self.reads_pad_buffer() {
            (self.hp, self.wp)
        } else {
            (g.h, g.w)
        };
        assert!(
            x.len() >= self.batch * hp * wp * c,
            "depthwise: input too short"
        );
        let [bt, bb, bl, br] = self.out_border;
        let (hb, wb) = (g.ho + bt + bb, g.wo + bl + br);
        let row_len = g.wo * c;
        for r in u * DW_ROWS..((u + 1) * DW_ROWS).min(self.batch * g.ho) {
            let (n, oy) = (r / g.ho, r % g.ho);
            let off = ((n * hb + oy + bt) * wb + bl) * c;
            // SAFETY: row r's interior run [off, off + row_len) is inside `y` and disjoint
            // from every other row's.
            let out = unsafe { std::slice::from_raw_parts_mut(y.add(off), row_len) };
            // SAFETY: AVX-512F checked; windows are inside the (padded) image (asserted in
            // `new`), channels are masked to `c`, writes stay in `out` (one output row).
            unsafe {
                dw_row(
                    x,
                    g,
                    hp,
                    wp,
                    &self.w,
                    self.bias.as_deref(),
                    self.relu,
                    r,
                    out,
                )
            }
        }
    }

    /// Run on `x` into `y`, splitting across the current rayon pool when `par`.
    pub fn run(&self, x: &[f32], y: &mut [f32], padbuf: &mut PadBuffer, par: bool) {
        assert!(y.len() >= self.output_len(), "depthwise: output too short");
        let x: &[f32] = match self.pad_copy() {
            Some(c) => {
                c.run(x, padbuf, par);
                padbuf
            }
            None => x,
        };
        let yp = SendPtr(y.as_mut_ptr());
        // SAFETY: `y` is long enough (asserted); units are distinct.
        let body = |u: usize| unsafe { self.compute_unit(x, yp.get(), u) };
        if par {
            (0..self.compute_units()).into_par_iter().for_each(body);
        } else {
            (0..self.compute_units()).for_each(body);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn dw_row(
    x: &[f32],
    g: &ConvGeom,
    hp: usize,
    wp: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    r: usize,
    out: &mut [f32],
) {
    let c = g.cin;
    let (n, oy) = (r / g.ho, r % g.ho);
    let img = &x[n * hp * wp * c..(n + 1) * hp * wp * c];
    let mut ch = 0;
    while ch < c {
        let nch = (c - ch).min(64);
        let masks = std::array::from_fn(|v| lane_mask(nch, v));
        let a = DwStrip {
            x: unsafe { img.as_ptr().add(oy * g.sh * wp * c + ch) },
            w: unsafe { w.as_ptr().add(ch) },
            b: bias.map(|b| unsafe { b.as_ptr().add(ch) }),
            out: unsafe { out.as_mut_ptr().add(ch) },
            row_stride: wp * c,
            g,
            masks,
            relu,
        };
        let nv = nch.div_ceil(16);
        // Stride 1, 3 taps wide: the sliding-window kernel (S + 2 input loads per kernel row
        // and vector serve 3 S multiply-adds, against 3 S loads in `dw_pixels`).
        let slide = g.sw == 1 && g.kw == 3;
        let mut ox = 0;
        while ox < g.wo {
            let left = g.wo - ox;
            macro_rules! strip {
                ($g:literal, $($s:literal)*) => {{
                    let s = left.min(*[$($s),*].iter().max().expect("sizes"));
                    // SAFETY: see `depthwise`.
                    match s {
                        $($s => unsafe {
                            if slide {
                                dw_slide3::<$s, $g>(&a, ox)
                            } else {
                                dw_pixels::<$s, $g>(&a, ox)
                            }
                        },)*
                        _ => unreachable!(),
                    }
                    s
                }};
            }
            ox += match nv {
                1 => strip!(1, 8 7 6 5 4 3 2 1),
                2 => strip!(2, 8 7 6 5 4 3 2 1),
                3 => strip!(3, 6 5 4 3 2 1),
                _ => strip!(4, 6 5 4 3 2 1),
            };
        }
        ch += nch;
    }
}

/// As [`dw_pixels`] for stride 1 and 3-wide kernels: per kernel row and vector, the
/// `S + 2` input vectors the strip's windows cover are loaded once and each serves up to
/// three taps.
#[inline]
#[allow(clippy::needless_range_loop)] // indices into two register arrays at once
#[target_feature(enable = "avx512f")]
unsafe fn dw_slide3<const S: usize, const G: usize>(a: &DwStrip<'_>, ox: usize) {
    let g = a.g;
    let c = g.cin;
    let mut acc = unsafe { a.init::<S, G>() };
    let x0 = unsafe { a.x.add(ox * c) };
    for ky in 0..g.kh {
        let xr = unsafe { x0.add(ky * a.row_stride) };
        let wt = unsafe { a.w.add(ky * 3 * c) };
        for v in 0..G {
            let m = a.masks[v];
            let w0 = unsafe { _mm512_maskz_loadu_ps(m, wt.add(16 * v)) };
            let w1 = unsafe { _mm512_maskz_loadu_ps(m, wt.add(c + 16 * v)) };
            let w2 = unsafe { _mm512_maskz_loadu_ps(m, wt.add(2 * c + 16 * v)) };
            // Input column j is tap kx of pixel j - kx.
            for j in 0..S + 2 {
                let xj = unsafe { _mm512_maskz_loadu_ps(m, xr.add(j * c + 16 * v)) };
                if j < S {
                    acc[j][v] = _mm512_fmadd_ps(xj, w0, acc[j][v]);
                }
                if j >= 1 && j - 1 < S {
                    acc[j - 1][v] = _mm512_fmadd_ps(xj, w1, acc[j - 1][v]);
                }
                if j >= 2 {
                    acc[j - 2][v] = _mm512_fmadd_ps(xj, w2, acc[j - 2][v]);
                }
            }
        }
    }
    unsafe { a.store(ox, &acc) };
}

impl DwStrip<'_> {
    /// Accumulators of a strip, each set to the bias (or zero).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn init<const S: usize, const G: usize>(&self) -> [[__m512; G]; S] {
        let mut acc = [[_mm512_setzero_ps(); G]; S];
        if let Some(b) = self.b {
            for v in 0..G {
                let bv = unsafe { _mm512_maskz_loadu_ps(self.masks[v], b.add(16 * v)) };
                for row in acc.iter_mut() {
                    row[v] = bv;
                }
            }
        }
        acc
    }

    /// Store a strip from output pixel `ox` (ReLU first if fused).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store<const S: usize, const G: usize>(&self, ox: usize, acc: &[[__m512; G]; S]) {
        let zero = _mm512_setzero_ps();
        for (p, row) in acc.iter().enumerate() {
            for (v, &val) in row.iter().enumerate() {
                let r = if self.relu {
                    _mm512_max_ps(val, zero)
                } else {
                    val
                };
                let o = unsafe { self.out.add((ox + p) * self.g.cin + 16 * v) };
                unsafe { _mm512_mask_storeu_ps(o, self.masks[v], r) };
            }
        }
    }
}

/// One output row's state for [`dw_pixels`]; pointers at the row's first channel `ch`.
struct DwStrip<'a> {
    /// Input at kernel row 0, column 0 of output pixel 0.
    x: *const f32,
    w: *const f32,
    b: Option<*const f32>,
    out: *mut f32,
    row_stride: usize,
    g: &'a ConvGeom,
    masks: [u16; 4],
    relu: bool,
}

/// `S` output pixels from `ox` by `16 G` channels, every tap accumulated in registers and
/// stored once.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dw_pixels<const S: usize, const G: usize>(a: &DwStrip<'_>, ox: usize) {
    let g = a.g;
    let c = g.cin;
    let mut acc = unsafe { a.init::<S, G>() };
    let x0 = unsafe { a.x.add(ox * g.sw * c) };
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let xt = unsafe { x0.add(ky * a.row_stride + kx * c) };
            let wt = unsafe { a.w.add((ky * g.kw + kx) * c) };
            for v in 0..G {
                let wv = unsafe { _mm512_maskz_loadu_ps(a.masks[v], wt.add(16 * v)) };
                for (p, row) in acc.iter_mut().enumerate() {
                    let xv =
                        unsafe { _mm512_maskz_loadu_ps(a.masks[v], xt.add(p * g.sw * c + 16 * v)) };
                    row[v] = _mm512_fmadd_ps(xv, wv, row[v]);
                }
            }
        }
    }
    unsafe { a.store(ox, &acc) };
}

/// Max or average pooling (valid padding), NHWC, with AVX-512: per output pixel, 16
/// channels at a time (masked to `c`), every window tap in one register. The portable
/// kernel's per-pixel slice loops ran 4-lane code on channel counts like 6 and took 31 %
/// of lenet5's time at batch 32.
pub fn pool(x: &[f32], batch: usize, p: &PoolGeom, max: bool, y: &mut [f32], par: bool) {
    assert!(available(), "direct kernels need AVX-512F");
    assert!(x.len() >= batch * p.h * p.w * p.c, "pool: input too short");
    assert!(p.ho > 0 && (p.ho - 1) * p.sh + p.kh <= p.h && (p.wo - 1) * p.sw + p.kw <= p.w);
    let row_len = p.wo * p.c;
    let body = |(r, out): (usize, &mut [f32])| {
        // SAFETY: AVX-512F checked; windows are inside the image (asserted), loads and
        // stores are masked to `c` channels, and `out` is one output row.
        unsafe { pool_row(x, p, max, r, out) }
    };
    let y = &mut y[..batch * p.ho * row_len];
    if par {
        y.par_chunks_mut(row_len).enumerate().for_each(body);
    } else {
        y.chunks_mut(row_len).enumerate().for_each(body);
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn pool_row(x: &[f32], p: &PoolGeom, max: bool, r: usize, out: &mut [f32]) {
    let (n, oy) = (r / p.ho, r % p.ho);
    let img = unsafe { x.as_ptr().add(n * p.h * p.w * p.c) };
    let inv = _mm512_set1_ps(1.0 / (p.kh * p.kw) as f32);
    let init = _mm512_set1_ps(if max { f32::NEG_INFINITY } else { 0.0 });
    let mut ch = 0;
    while ch < p.c {
        let m = lane_mask(p.c - ch, 0);
        for ox in 0..p.wo {
            let mut acc = init;
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    let off = ((oy * p.sh + ky) * p.w + ox * p.sw + kx) * p.c + ch;
                    let v = unsafe { _mm512_maskz_loadu_ps(m, img.add(off)) };
                    acc = if max {
                        _mm512_max_ps(acc, v)
                    } else {
                        _mm512_add_ps(acc, v)
                    };
                }
            }
            if !max {
                acc = _mm512_mul_ps(acc, inv);
            }
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(ox * p.c + ch), m, acc) };
        }
        ch += 16;
    }
}
