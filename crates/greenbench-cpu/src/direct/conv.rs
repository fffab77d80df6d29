//! The direct convolution / GEMM: plans, work units and the `P x 16 V` register tile.

use super::amx::GROUP;
use super::lanes::Lanes;
use super::tile::{Init, Mode, TileArgs, dispatch};
use super::winograd::{self, Dest, RowGemm, Wino};
use super::*;
use crate::kernels::AVec;
use greenbench_core::graph::ConvGeom;

mod bf16_plan;
mod pool_fused;
mod pooled;

/// Weights per reduction block (floats): 256 KiB, a block stays in L2 across the tiles of a
/// unit while each tile's accumulators stay in registers over the whole block. Blocks sized
/// for L1 (24 KiB, as before) cost more in accumulator reloads than they saved: ResNet-50
/// (onnx light model) at batch 1 on the dev VM, 1 thread: 83.0 ms at 24 KiB, 81.9 at 32 KiB,
/// 79.6 at 64 KiB, 78.1 at 256 KiB, 78.1 unbounded; 2 threads 43.1 -> 41.6 ms; zoo cells at
/// batch 32 the same or faster (mlp 2.79 -> 2.51 us, autoencoder 2.84 -> 2.68 us). Bounded
/// so a huge dense layer's weights are not streamed from memory once per tile.
const KBLOCK_FLOATS: usize = 65536;

/// One convolution or GEMM planned for the direct kernels.
pub struct DirectPlan {
    pixels: usize,
    cout: usize,
    geo: Geometry,
    pad: Option<Padding>,
    /// Vectors (of 16 channels) per channel block, 1..=4 (the last block as many as its
    /// channels need).
    v: usize,
    /// Pixels per tile for this `v`.
    p: usize,
    /// `[block][k][16 v]` with k in (ky, kx, ci) order, zero-padded past `cout`.
    w: AVec<f32>,
    /// Bias padded to whole blocks (zeros when the layer has none).
    bias: Vec<f32>,
    relu: Relu,
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
    /// Run on bf16 operands (`super::bf16`): the input converted by this copy, the weights
    /// (`w` emptied) as pairs of reduction steps.
    bf16: Option<Bf16Operands>,
    /// Run as Winograd F(2x2, 3x3) (`super::winograd`; `w` emptied).
    wino: Option<Box<Wino<DirectPlan>>>,
    /// A single-channel convolution's pixels-in-lanes form (`super::lanes`), used where the
    /// output has no border and no residual is fused.
    lanes: Option<Box<Lanes>>,
    /// A max pool after the fp32 tile, run band by band on the rows it computes into a
    /// per-thread scratch (`pool_fused`): its output is the pooled image.
    tpool: Option<Box<pool_fused::TilePool>>,
}

/// A bf16 plan's input conversion and weights: `[block][k / 2][16 V][2]` bf16 bits, the
/// two values of a lane's pair consecutive reduction steps (`vdpbf16ps`'s operand layout).
struct Bf16Operands {
    copy: PadCopy,
    w: AVec<u16>,
    /// `ends[q]`: where the evenly spaced run of pixel inputs from pixel `q` ends
    /// ([`super::amx::even_ends`]; empty with `pix`), so that finding the AMX groups reads a
    /// table entry per group instead of every pixel's input offset.
    ends: Vec<usize>,
}

/// `w` (`[k][cout]`, k in (tap, channel) order with `cin` channels per tap) with each tap's
/// channels padded with zero rows to `cp`.
fn pad_channels(w: &[f32], taps: usize, cin: usize, cp: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; taps * cp * cout];
    for t in 0..taps {
        for c in 0..cin {
            let (src, dst) = ((t * cin + c) * cout, (t * cp + c) * cout);
            out[dst..dst + cout].copy_from_slice(&w[src..src + cout]);
        }
    }
    out
}

/// Reduction blocks: the weights of one block (kc * width floats) within KBLOCK_FLOATS:
/// whole kernel rows where they fit, else pieces of one row's run (of an even length when
/// `even`, so bf16 pairs never straddle two blocks).
fn reduction_blocks(geo: &Geometry, width: usize, even: bool) -> Vec<(usize, usize, usize, usize)> {
    let mut kc = (KBLOCK_FLOATS / width).max(1);
    if even {
        kc = (kc & !1).max(2);
    }
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
    kblocks
}

impl DirectPlan {
    /// The output tile side (2 or 4) when this plan runs as Winograd F(m x m, 3x3).
    pub fn winograd_tile(&self) -> Option<usize> {
        self.wino.as_ref().map(|w| w.tile())
    }

    /// Whether this plan runs on bf16 operands.
    pub fn is_bf16(&self) -> bool {
        self.bf16.is_some()
    }

    /// Which kernel runs it, for a step profile: Winograd, the bf16 tile (AMX where the
    /// CPU grants it), the pixels-in-lanes form, or the fp32 register tile.
    pub fn form(&self) -> &'static str {
        match (self.winograd_tile(), &self.bf16, &self.lanes) {
            (Some(4), ..) => "Winograd F(4x4, 3x3)",
            (Some(_), ..) => "Winograd F(2x2, 3x3)",
            (None, Some(_), _) if crate::amx::bf16() => "bf16 tile, AMX",
            (None, Some(_), _) => "bf16 tile",
            (None, None, Some(_)) => "pixels in lanes",
            (None, None, None) if self.tpool.is_some() => "fp32 tile, max pool fused",
            (None, None, None) => "fp32 tile",
        }
    }

    /// A GEMM `y[rows, n] = x[rows, k] . w[k, n]` (+ bias, ReLU); `w` row-major.
    pub fn gemm(
        rows: usize,
        k: usize,
        n: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: Relu,
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
    /// `winograd`: run it as Winograd where that applies (`super::winograd`), F(4x4, 3x3) when
    /// the batch has at least this many 4x4 output tiles, else F(2x2, 3x3); `None`: direct.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        g: &ConvGeom,
        batch: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: Relu,
        in_padded: bool,
        out_border: Option<Border>,
        winograd: Option<usize>,
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
        if let Some(f4_min_tiles) =
            winograd.filter(|_| winograd::eligible(g) && winograd::pays(g, batch))
        {
            let gemm = |rows, k, n, u: &[f32]| Self::gemm(rows, k, n, u, None, None);
            plan.wino = Some(Box::new(Wino::new(g, batch, hp, wp, w, f4_min_tiles, gemm)));
            plan.w = Default::default();
        } else {
            plan.lanes = Lanes::new(g, w, bias, relu).map(Box::new);
        }
        Some(plan)
    }

    /// Group `grp` of a grouped 1x1 convolution (stride 1, unpadded; weights HWIO `[1, 1,
    /// Cin/groups, Cout]`) over `batch` NHWC images: a GEMM reading its group's input
    /// channels of each pixel and writing its group's output channels. One plan per group,
    /// run one after the other into the same output (ShuffleNet's grouped pointwise layers
    /// ran im2col + the `gemm` crate). `skip`: a residual of the output's shape added before
    /// the activation, stored with that border if any (each group adds its channels of it).
    pub fn pointwise_group(
        g: &ConvGeom,
        batch: usize,
        grp: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: Relu,
        skip: Option<Option<Border>>,
    ) -> Self {
        assert!(
            g.is_grouped_pointwise(),
            "not a grouped pointwise convolution"
        );
        let (cin_g, cout_g) = (g.cin / g.groups, g.cout / g.groups);
        let rows = batch * g.ho * g.wo;
        let wg: Vec<f32> = (0..cin_g)
            .flat_map(|k| (0..cout_g).map(move |j| w[k * g.cout + grp * cout_g + j]))
            .collect();
        let bg = bias.map(|b| &b[grp * cout_g..(grp + 1) * cout_g]);
        let mut plan = Self::gemm(rows, cin_g, cout_g, &wg, bg, relu);
        plan.pix = (0..rows).map(|q| q * g.cin + grp * cin_g).collect();
        plan.input_len = rows * g.cin;
        if let Some(border) = skip {
            let (pix, len) = bordered_offsets(batch, g.ho, g.wo, g.cout, border.unwrap_or([0; 4]));
            plan.residual = true;
            plan.skip_pix = pix.into_iter().map(|o| o + grp * cout_g).collect();
            plan.skip_len = len;
        }
        plan.into_concat(None, g.cout, grp * cout_g)
    }

    /// Store the output as channels `offset..offset + cout` of a `c_total`-channel image
    /// (a concatenation along channels written in place by its producers, or one group of
    /// a grouped convolution), stored with `border` if any.
    pub fn into_concat(mut self, border: Option<Border>, c_total: usize, offset: usize) -> Self {
        let g = self.geo;
        let batch = self.pixels / (g.ho * g.wo);
        assert!(offset + self.cout <= c_total, "concat slice past its image");
        let (pix, len) = bordered_offsets(batch, g.ho, g.wo, c_total, border.unwrap_or([0; 4]));
        self.out_pix = pix.into_iter().map(|o| o + offset).collect();
        self.out_len = len;
        self
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
        relu: Relu,
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
        // The last block only as wide as the channels it has left (68 channels: 64 + 16,
        // not 64 + 64 of which 4 are used).
        let v_last = (cout - (nb - 1) * width).div_ceil(16);
        let mut packed = vec![0.0f32; (nb - 1) * k * width + k * 16 * v_last];
        for b in 0..nb {
            let wb = if b + 1 == nb { 16 * v_last } else { width };
            for kk in 0..k {
                for j in 0..wb {
                    let co = b * width + j;
                    if co < cout {
                        packed[b * k * width + kk * wb + j] = w[kk * cout + co];
                    }
                }
            }
        }
        let mut padded_bias = vec![0.0f32; nb * width];
        if let Some(b) = bias {
            padded_bias[..cout].copy_from_slice(&b[..cout]);
        }
        let kblocks = reduction_blocks(&geo, width, false);
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
            w: packed.into(),
            bias: padded_bias,
            relu,
            kblocks,
            out_pix: Vec::new(),
            residual: false,
            skip_pix: Vec::new(),
            skip_len: 0,
            input_len,
            out_len: pixels * cout,
            bf16: None,
            wino: None,
            lanes: None,
            tpool: None,
        }
    }

    /// Length of the output buffer (with its border, if stored with one).
    pub fn output_len(&self) -> usize {
        self.out_len
    }

    /// The zeroed buffer [`Self::run`] needs (empty when the convolution has no padding).
    pub fn pad_buffer(&self) -> PadBuffer {
        if let Some(b) = &self.bf16 {
            return PadBuffer::zeros(b.copy.dst_floats());
        }
        match self.pad {
            Some(_) => {
                let batch = self.pixels / (self.geo.ho * self.geo.wo);
                PadBuffer::zeros(batch * self.geo.hp * self.geo.wp * self.geo.cin)
            }
            None => PadBuffer::default(),
        }
    }

    fn pad_copy(&self) -> Option<PadCopy> {
        if let Some(b) = &self.bf16 {
            return Some(b.copy);
        }
        self.pad.map(|pd| PadCopy {
            batch: self.pixels / (self.geo.ho * self.geo.wo),
            h: pd.h,
            w: pd.w,
            c: self.geo.cin,
            top: pd.top,
            left: pd.left,
            hp: self.geo.hp,
            wp: self.geo.wp,
            cp: self.geo.cin,
            bf16: false,
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
        self.pad.is_some() || self.bf16.is_some()
    }

    /// Units of the compute for `threads` threads (one unit per tile chunk and channel
    /// block; at least ~4 per thread so all stay busy to the end).
    pub fn compute_units(&self, threads: usize) -> usize {
        if let Some(wn) = &self.wino {
            return wn.compute_units(threads);
        }
        if let Some((per, pairs)) = self.pooled_layout(threads) {
            return pairs.div_ceil(per);
        }
        if let Some(tp) = &self.tpool {
            return tp.units(threads);
        }
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
        // bf16 on AMX: units of whole groups where they hold several: 16 pixels where the
        // pixels are evenly spaced throughout, else a row's groups (whole rows where groups
        // do not fill rows exactly). A unit starting inside a group left the group's pixels
        // to the AVX-512 BF16 tile: lenet5's conv2, 10 pixels a row in units of 256, 1.11 ->
        // 0.90 us an example with whole rows (batch 32, one thread). Units of whole rows
        // where 16-pixel groups already align (mobilenet's first layer, 48 pixels a row:
        // 240 pixels a unit instead of 256) read 5 % slower on that layer.
        if let Some(h) = self.bf16.as_ref().filter(|_| crate::amx::bf16()) {
            let wo = self.geo.wo;
            let q = match super::amx::row_group(wo) {
                _ if super::amx::uniform(&h.ends, 0, self.pixels) => GROUP,
                r if wo.is_multiple_of(r) => r,
                _ => wo,
            };
            let m = q / gcd(self.p, q);
            if unit_tiles > m {
                unit_tiles = unit_tiles / m * m;
            }
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
            Some(c) => c.dst_floats(),
            None => self.input_len,
        };
        assert!(x.len() >= need, "direct: input too short");
        if let Some(wn) = &self.wino {
            let d = Dest {
                bias: &self.bias,
                // SAFETY: AVX-512F checked above.
                act: unsafe { super::ActRegs::new(self.relu) },
                y,
                out_pix: &self.out_pix,
                skip,
                skip_pix: &self.skip_pix,
            };
            // SAFETY: AVX-512F checked; `d` is this plan's output layout, `y` as documented.
            unsafe { wn.compute_unit(x, &d, u, threads) };
            return;
        }
        if self.pooled_layout(threads).is_some() {
            // SAFETY: AVX-512F checked; `y` as documented.
            return unsafe { self.pooled_unit(x, y, u, threads) };
        }
        if self.tpool.is_some() {
            // SAFETY: AVX-512F checked; `y` as documented.
            return unsafe { self.tile_pooled_unit(x, y, u, threads) };
        }
        let (_, unit_tiles, nb) = self.layout(threads);
        let tiles = self.pixels.div_ceil(self.p);
        let (chunk, b) = (u / nb, u % nb);
        let t0 = chunk * unit_tiles;
        let t1 = (t0 + unit_tiles).min(tiles);
        if let Some(l) = &self.lanes
            && self.out_pix.is_empty()
            && !self.residual
        {
            // SAFETY: AVX-512F checked; the unit's pixels (one channel block: cout <= 16) are
            // its own.
            unsafe { l.run(x, y, t0 * self.p..(t1 * self.p).min(self.pixels)) };
            return;
        }
        let px = t0 * self.p..(t1 * self.p).min(self.pixels);
        // SAFETY: AVX-512F checked; unit (chunk, b) writes only its pixels' channels
        // b*width..(b+1)*width, disjoint from every other unit's; every input offset lies
        // inside `x` (the padded geometry covers each pixel's whole window, length checked).
        unsafe { self.unit(x.as_ptr(), y, skip, px, 0, b) };
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

    /// Output pixels `px` of channel block `b`: pixel `q`'s channels stored at `y + q cout
    /// - out_shift` (`out_shift` 0 but for a fused pool's band, `pool_fused`).
    #[target_feature(enable = "avx512f")]
    unsafe fn unit(
        &self,
        x: *const f32,
        y: *mut f32,
        skip: *const f32,
        px: std::ops::Range<usize>,
        out_shift: usize,
        b: usize,
    ) {
        let g = self.geo;
        let width = 16 * self.v;
        let k = g.kh * g.kw * g.cin;
        let run = g.kw * g.cin;
        let row_stride = g.wp * g.cin;
        // This block's channels and vectors: the last block may be narrower (`build`).
        let ncols = (self.cout - b * width).min(width);
        let vb = ncols.div_ceil(16);
        let nkb = self.kblocks.len();
        let mut base = [0usize; MAX_P];
        let mut obase = [0usize; MAX_P];
        let mut sbase = [0usize; MAX_P];
        let nb = self.channel_blocks();
        // The first reduction block's weights of channel block `b`: (offset, floats).
        let first_block = |b: usize| {
            let (r0, r1, c0, c1) = self.kblocks[0];
            let vb = (self.cout - b * width).min(width).div_ceil(16);
            (b * k * width, (r1 - r0) * (c1 - c0) * 16 * vb)
        };
        for (kbi, &(r0, r1, c0, c1)) in self.kblocks.iter().enumerate() {
            // Element offset of the block's weights (bf16 weights: the same offset in u16s,
            // handed to the bf16 tile as a float pointer it casts back).
            let wo = b * k * width + (r0 * run + c0) * 16 * vb;
            // What this thread reads next: the unit's next reduction block, or after the last
            // one the next channel block's first (the next unit, in the order threads take
            // them); fp32 only. Fetched into L2 while this block's tiles compute, so the next
            // block's first tile does not wait on memory for each weight (`tile`).
            let next = match self.kblocks.get(kbi + 1) {
                _ if self.bf16.is_some() => None,
                Some(&(q0, q1, d0, d1)) => Some((
                    b * k * width + (q0 * run + d0) * 16 * vb,
                    (q1 - q0) * (d1 - d0) * 16 * vb,
                )),
                None if b + 1 < nb => Some(first_block(b + 1)),
                None => None,
            };
            let (pf_at, pf_all) = next.unwrap_or((0, 0));
            let pf_all = pf_all.div_ceil(16);
            let steps = (r1 - r0) * (c1 - c0);
            let tiles = px.len().div_ceil(self.p).max(1);
            let pf_per = pf_all.div_ceil(tiles).min(2 * steps);
            let mut pf_done = 0usize;
            let w = match &self.bf16 {
                Some(h) => unsafe { h.w.as_ptr().add(wo) as *const f32 },
                None => unsafe { self.w.as_ptr().add(wo) },
            };
            let mode = Mode {
                init: if kbi == 0 { Init::Bias } else { Init::Load },
                last: kbi + 1 == nkb,
                act: self.relu.filter(|_| kbi + 1 == nkb),
            };
            let out_at = |q: usize| match self.out_pix.is_empty() {
                true => q * self.cout + b * width - out_shift,
                false => self.out_pix[q] + b * width,
            };
            let skip_at = |q: usize| match self.skip_pix.is_empty() {
                true => q * self.cout + b * width,
                false => self.skip_pix[q] + b * width,
            };
            let bias = unsafe { self.bias.as_ptr().add(b * width) };
            let off = r0 * row_stride + c0;
            // bf16 on AMX: groups of evenly spaced pixels (`super::amx`; 16, or one output
            // row where rows are narrower), the rest below.
            let (qa, qb) = (px.start, px.end);
            let ends = self.bf16.as_ref().map_or(&[][..], |h| &h.ends[..]);
            let uniform = self.bf16.is_some() && super::amx::uniform(ends, qa, qb);
            // Uniform: groups as equal as 16-row tiles allow (the 9 pixels of a 3x3 image at
            // sub-batch 1 are one group of 9); else one output row.
            let rows = match uniform {
                true => (qb - qa) / (qb - qa).div_ceil(GROUP),
                false => super::amx::row_group(g.wo),
            };
            let amx = self.bf16.is_some() && super::amx::runs(c1 - c0, rows);
            if amx {
                // SAFETY: AMX-BF16 granted (`runs`); the configuration stays loaded after this
                // block's pixels (`crate::amx`).
                unsafe { super::amx::config(c1 - c0, rows).load() };
            }
            // Only where groups run: its two slots' arguments are a few hundred bytes each.
            let mut pairs = amx.then(super::amx::Pairs::default);
            let mut q0 = qa;
            while q0 < qb {
                let even = match amx && q0 + rows <= qb {
                    true => super::amx::even(&self.pix, ends, g.cin, q0, rows),
                    false => None,
                };
                if let Some(stride) = even {
                    let pairs = pairs.as_mut().expect("groups run only with `amx`");
                    let ga = pairs.slot();
                    for i in 0..rows {
                        ga.obase[i] = out_at(q0 + i);
                        if self.residual {
                            ga.sbase[i] = skip_at(q0 + i);
                        }
                    }
                    let first = if self.pix.is_empty() {
                        q0 * g.cin
                    } else {
                        self.pix[q0]
                    };
                    ga.rows = rows;
                    ga.x = x as *const u16;
                    ga.base = first + off;
                    ga.stride = stride;
                    ga.nr = r1 - r0;
                    ga.row_stride = row_stride;
                    ga.kc = c1 - c0;
                    ga.w = w as *const u16;
                    ga.vb = vb;
                    ga.bias = bias;
                    ga.y = y;
                    ga.skip = skip;
                    ga.ncols = ncols;
                    ga.mode = mode;
                    // SAFETY: `amx` checked `runs`; the same inputs, weights and outputs as
                    // the tiles of these pixels would read and write.
                    unsafe { pairs.push() };
                    q0 += rows;
                    continue;
                }
                let mut np = (qb - q0).min(self.p);
                if amx && !uniform {
                    // Up to the output row's end, so the next group starts a row.
                    np = np.min(g.wo - q0 % g.wo);
                }
                if self.pix.is_empty() {
                    for (pi, o) in base.iter_mut().enumerate().take(np) {
                        *o = (q0 + pi) * g.cin + off;
                    }
                } else {
                    for (o, &w) in base.iter_mut().zip(&self.pix[q0..q0 + np]) {
                        *o = w + off;
                    }
                }
                for (pi, o) in obase.iter_mut().enumerate().take(np) {
                    *o = out_at(q0 + pi);
                }
                if self.residual {
                    for (pi, o) in sbase.iter_mut().enumerate().take(np) {
                        *o = skip_at(q0 + pi);
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
                    bias,
                    y,
                    skip,
                    sbase: &sbase,
                    np,
                    ncols,
                    mode,
                    // Inside `self.w` (the next block's weights) but for a last line's rest:
                    // wrapping, and only ever prefetched.
                    pf: self
                        .w
                        .as_ptr()
                        .wrapping_add(pf_at + 16 * pf_done.min(pf_all)),
                    pf_lines: pf_per.min(pf_all - pf_done.min(pf_all)),
                };
                pf_done += pf_per;
                if self.bf16.is_some() {
                    // SAFETY: bf16 plans are built only where `super::bf16::available()`.
                    unsafe { super::bf16::dispatch(vb, np, &a) };
                } else {
                    unsafe { dispatch(vb, np, &a) };
                }
                q0 += np;
            }
            // SAFETY: the configuration loaded above; the last group before the next block's
            // (the tiles stay configured: `crate::amx`).
            if let Some(p) = pairs.as_mut() {
                unsafe { p.flush() };
            }
        }
    }
}

/// A dense-layer plan as Winograd's GEMM: the first `rows` rows, one channel block.
impl RowGemm for DirectPlan {
    fn channel_blocks(&self) -> usize {
        self.cout.div_ceil(16 * self.v)
    }

    unsafe fn gemm_rows(&self, x: *const f32, y: *mut f32, rows: usize, b: usize) {
        debug_assert!(self.pix.is_empty() && self.out_pix.is_empty() && rows <= self.pixels);
        // SAFETY: the caller's (AVX-512F, rows inside `x` and `y`).
        let px = 0..(rows.div_ceil(self.p) * self.p).min(self.pixels);
        unsafe { self.unit(x, y, std::ptr::null(), px, 0, b) };
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
