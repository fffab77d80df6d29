//! Winograd F(2x2, 3x3) and F(4x4, 3x3) for 3x3, stride-1, ungrouped convolutions of at
//! least 16 input and 16 output channels: a run of output tiles (2x2 pixels each) as 16
//! GEMMs of the tiles' transformed 4x4 input windows with the transformed weights, then each
//! tile's 4x4 of products folded back into its 2x2 outputs. 16 multiplies per 4 outputs and
//! input channel where the direct tile does 36, for a transform of the input (per tile and
//! channel: 32 additions) and of the output (24 per tile and output channel). F(4x4, 3x3)
//! (`f4`: 4x4 tiles, 6x6 windows, 36 GEMMs) does 36 multiplies per 16 outputs where the
//! direct tile does 144, for 36 transformed weight matrices: a layer takes it when its batch
//! has at least `WINOGRAD_F4_MIN_TILES` 4x4 tiles (`Wino::new`, the crate's settings), so
//! the weights serve enough rows.
//!
//! The counted work does not change: FPO.md counts a convolution's multiply-adds as the
//! model defines them, whatever algorithm runs it; a fast algorithm shows as more FPO per
//! second, not as fewer FPO (each cell says which convolutions ran this way and their share
//! of the FPO: `Prepared::algorithm_note`, `CpuPrepared`'s in `lib.rs`).
//!
//! Numbers: the transforms' coefficients are 0, ±1 and ±1/2 (the weight side, done once in
//! f64), so the sums differ from the direct kernels' in order and by the input transform's
//! additions, within the fp32 kernels' tolerance (`tests/kernels.rs`).
//!
//! Layout (per work unit of `chunk` tiles, in a per-thread scratch): `V[16][chunk][cin]`, the
//! transformed inputs, and `M[16][chunk][cout]`, the GEMMs' products (each `xi`'s slice a
//! cache line past the previous one's end: see `vstride`); the 16 GEMMs are the
//! direct kernels' own dense-layer plans (`DirectPlan::gemm`, `[cin] x [cout]` each), reached
//! through [`RowGemm`] so that this file does not import `conv` (which imports this one).

#![allow(clippy::needless_range_loop)] // index loops keep 4x4 register arrays in registers

mod f4;

use super::lane_mask;
use crate::kernels::AVec;
use greenbench_core::graph::ConvGeom;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Scratch budget of one unit (`16 x chunk x (cin + cout)` floats), 768 KiB, which sets the
/// tiles a unit takes, clamped to 64..=256: up to `cin + cout = 192` the scratch stays within
/// the budget (a 1 MiB L2), wider layers take 64 tiles and exceed it (fewer would re-read
/// their weights every few tiles). Not tuned per CPU: measured on the Zen 4 VM only.
const SCRATCH_FLOATS: usize = 196_608;

/// Whether a convolution runs on Winograd F(2x2, 3x3): 3x3 kernel, stride 1, ungrouped,
/// and channels enough for the GEMMs to dominate the transforms.
pub(super) fn eligible(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.sh == 1
        && g.sw == 1
        && g.groups == 1
        && g.cin >= 16
        && g.cout >= 16
        && g.ho >= 2
        && g.wo >= 2
}

/// Fewest F(2x2, 3x3) tiles in a batch for a layer with streamed weights to take Winograd
/// (see [`pays`]).
const MIN_TILES_STREAMED: usize = 32;
/// Transformed weights (F(2x2, 3x3): `16 x cin x cout` floats) up to this many bytes are taken
/// to stay cached between runs (half a 2 MiB L2).
const CACHED_WEIGHT_BYTES: usize = 1 << 20;

/// Whether Winograd pays for an eligible layer at this batch. Each transformed weight serves
/// one multiply-add per tile (F(2x2, 3x3): 16 / 9 as many weights as the direct kernel's,
/// each serving 4 times fewer rows), so a layer with few tiles and weights too large to stay
/// cached waits on memory for them: ResNet-50's 7x7 stage at batch 1 (16 tiles, 16 MiB of
/// transformed weights per 512-channel layer) ran 1.43 ms a layer on F(2x2, 3x3) against
/// 1.00 ms for the direct kernel on its stride-2 twin (dev VM, Intel Xeon, 2026-12-05,
/// `greenbench run --models <ResNet-50> --batch 1 --threads 2`, per-phase timing); the whole
/// network 28.7-29.0 -> 27.0-28.1 ms (three alternating rounds).
pub(super) fn pays(g: &ConvGeom, batch: usize) -> bool {
    let tiles = batch * g.ho.div_ceil(2) * g.wo.div_ceil(2);
    tiles >= MIN_TILES_STREAMED || 16 * g.cin * g.cout * 4 <= CACHED_WEIGHT_BYTES
}

/// A GEMM over rows of `k` values into rows of `n`, run by output channel block: what a
/// Winograd plan multiplies its transformed tiles with (`conv`'s dense-layer plan).
pub(super) trait RowGemm {
    /// Output channel blocks (units per row range).
    fn channel_blocks(&self) -> usize;
    /// Rows `0..rows` of block `b`: row `r` of `x` at `r * k`, of `y` at `r * n`.
    ///
    /// # Safety
    /// AVX-512F; `x` and `y` hold the plan's rows; `rows` at most the plan's.
    unsafe fn gemm_rows(&self, x: *const f32, y: *mut f32, rows: usize, b: usize);
}

/// A convolution planned for Winograd F(m x m, 3x3), its GEMMs `G`.
pub(super) struct Wino<G> {
    /// Output tile side: 2 or 4 (`f4`).
    m: usize,
    batch: usize,
    /// Tile rows and columns of an image (`ho / m`, `wo / m` rounded up).
    th: usize,
    tw: usize,
    ho: usize,
    wo: usize,
    /// The input as the kernels read it (padded, or with its border): rows, columns.
    hp: usize,
    wp: usize,
    cin: usize,
    cout: usize,
    /// Most tiles per unit (the GEMMs' rows).
    chunk: usize,
    /// `gemms[xi]`: `chunk` rows of `cin` transformed inputs times `U_xi` (`cin x cout`).
    gemms: Vec<G>,
}

/// The epilogue and where a unit writes, all the convolution plan's own: its bias (padded to
/// whole vectors) and activation; each output pixel's offset in `y` (`out_pix`, or `q * cout`
/// when empty) and its residual's in `skip` (`skip_pix` likewise; `skip` null when none).
pub(super) struct Dest<'a> {
    pub(super) bias: &'a [f32],
    pub(super) act: super::ActRegs,
    pub(super) y: *mut f32,
    pub(super) out_pix: &'a [usize],
    pub(super) skip: *const f32,
    pub(super) skip_pix: &'a [usize],
}

thread_local! {
    /// A unit's `V` and `M` (grown on a thread's first unit, reused after).
    /// On cache lines: the GEMMs store their 16-lane products into it.
    static SCRATCH: RefCell<AVec<f32>> = RefCell::new(AVec::default());
}

/// `G g G^T` of one 3x3 kernel (row-major taps), `G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2;
/// 0 0 1]`, in f64.
fn weight_transform(g: [f64; 9]) -> [f64; 16] {
    let gm = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut t = [[0.0f64; 3]; 4];
    for i in 0..4 {
        for j in 0..3 {
            t[i][j] = (0..3).map(|k| gm[i][k] * g[k * 3 + j]).sum();
        }
    }
    let mut u = [0.0f64; 16];
    for i in 0..4 {
        for j in 0..4 {
            u[i * 4 + j] = (0..3).map(|k| t[i][k] * gm[j][k]).sum();
        }
    }
    u
}

impl<G: RowGemm> Wino<G> {
    /// `w`: HWIO `[3, 3, cin, cout]`; `hp`, `wp`: the input the kernels read; F(4x4, 3x3)
    /// when the batch has at least `f4_min_tiles` 4x4 tiles, else F(2x2, 3x3); `gemm(rows,
    /// k, n, weights)` plans one `[rows x k] x [k x n]` product (weights `[k][n]`, no bias).
    pub(super) fn new(
        g: &ConvGeom,
        batch: usize,
        hp: usize,
        wp: usize,
        w: &[f32],
        f4_min_tiles: usize,
        gemm: impl Fn(usize, usize, usize, &[f32]) -> G,
    ) -> Self {
        let (cin, cout) = (g.cin, g.cout);
        assert_eq!(w.len(), 9 * cin * cout, "winograd: weights");
        let m = if batch * g.ho.div_ceil(4) * g.wo.div_ceil(4) >= f4_min_tiles {
            4
        } else {
            2
        };
        let nxi = (m + 2) * (m + 2);
        let (th, tw) = (g.ho.div_ceil(m), g.wo.div_ceil(m));
        let tiles = batch * th * tw;
        // At least 64 tiles a unit (F(4x4): 32, as many outputs again): the weights of a
        // wide layer (16 x 512 x 512 floats) are then read once per 64 tiles; one `xi`'s
        // share of the scratch (64 x 512 inputs) still fits L2 while its GEMM runs.
        let chunk = (SCRATCH_FLOATS / (nxi * (cin + cout)))
            .clamp(if m == 4 { 32 } else { 64 }, 256)
            .next_multiple_of(8)
            .min(tiles.next_multiple_of(8));
        let mut u = vec![vec![0.0f32; cin * cout]; nxi];
        for ci in 0..cin {
            for co in 0..cout {
                let taps = std::array::from_fn(|t| w[(t * cin + ci) * cout + co] as f64);
                let (u2, u4);
                let ut: &[f64] = if m == 4 {
                    u4 = f4::weight_transform(taps);
                    &u4
                } else {
                    u2 = weight_transform(taps);
                    &u2
                };
                for (xi, &v) in ut.iter().enumerate() {
                    u[xi][ci * cout + co] = v as f32;
                }
            }
        }
        let gemms = u.iter().map(|ux| gemm(chunk, cin, cout, ux)).collect();
        Wino {
            m,
            batch,
            th,
            tw,
            ho: g.ho,
            wo: g.wo,
            hp,
            wp,
            cin,
            cout,
            chunk,
            gemms,
        }
    }

    /// Output tiles over the batch.
    fn tiles(&self) -> usize {
        self.batch * self.th * self.tw
    }

    /// Tiles per unit for `threads` threads. One thread: `chunk`. A team (batch 1): the
    /// tiles split evenly into as few units as the scratch allows, a multiple of `threads`
    /// (one unit a thread where `chunk` holds half the tiles), each unit with every output
    /// channel: its tiles' inputs are transformed once and the transformed weights read once a
    /// unit. The earlier layout split the output channels into groups first (each unit
    /// transformed its tiles again for its group): ResNet-50's 28x28 and 14x14 layers at
    /// batch 1 on two threads take 23-29 % less time this way (dev VM, Intel Ice Lake,
    /// 2026-12-07, `inspect --time`, each step's best of six alternating rounds: 632-737 ->
    /// 456-571 us at 28x28, 843-1017 -> 626-722 at 14x14; docs/ONNX.md).
    fn layout(&self, threads: usize) -> usize {
        let tiles = self.tiles();
        if threads <= 1 {
            return self.chunk;
        }
        let mut units = threads;
        while tiles.div_ceil(units) > self.chunk {
            units += threads;
        }
        tiles.div_ceil(units)
    }

    /// The output tile side: 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)).
    pub(super) fn tile(&self) -> usize {
        self.m
    }

    pub(super) fn compute_units(&self, threads: usize) -> usize {
        self.tiles().div_ceil(self.layout(threads))
    }

    /// Unit `u` (of [`Self::compute_units`] for `threads`): its tiles' inputs from `x` (the
    /// padded input, `batch x hp x wp x cin`) transformed, multiplied and written to `d`.
    ///
    /// # Safety
    /// AVX-512F; `x` holds the padded input; `d`'s pointers and offsets are the plan's
    /// (every output pixel's `cout` values inside `y`, its residual's inside `skip`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn compute_unit(&self, x: &[f32], d: &Dest<'_>, u: usize, threads: usize) {
        assert!(
            x.len() >= self.batch * self.hp * self.wp * self.cin,
            "winograd: input too short"
        );
        let per = self.layout(threads);
        let t0 = u * per;
        let nt = (self.tiles() - t0).min(per);
        let blocks = self.gemms[0].channel_blocks();
        let nxi = self.gemms.len();
        let (vlen, mlen) = (nxi * self.vstride(), nxi * self.mstride());
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < vlen + mlen {
                *s = AVec::zeroed(vlen + mlen);
            }
            let (v, m) = s.split_at_mut(vlen);
            // SAFETY: AVX-512F (this function's); every offset is checked or derived from
            // the plan's geometry (see each function).
            unsafe {
                if self.m == 4 {
                    self.input_transform4(x, t0, nt, v.as_mut_ptr());
                } else {
                    self.input_transform(x, t0, nt, v.as_mut_ptr());
                }
                for (xi, gm) in self.gemms.iter().enumerate() {
                    let vx = v.as_ptr().add(xi * self.vstride());
                    let mx = m.as_mut_ptr().add(xi * self.mstride());
                    for b in 0..blocks {
                        gm.gemm_rows(vx, mx, nt, b);
                    }
                }
                if self.m == 4 {
                    self.output_transform4(t0, nt, m.as_ptr(), d);
                } else {
                    self.output_transform(t0, nt, m.as_ptr(), d);
                }
            }
        });
    }

    /// Floats from one `xi`'s transformed inputs to the next's: a cache line past the
    /// `chunk x cin` values, so the 16 a tile touches do not fall in one L1 set (a stride
    /// of 16 KiB put them there: the output transform's loads then missed L1).
    fn vstride(&self) -> usize {
        self.chunk * self.cin + 16
    }

    /// As [`Self::vstride`] for the products.
    fn mstride(&self) -> usize {
        self.chunk * self.cout + 16
    }

    /// Tile `t` (global): image, tile row, tile column.
    fn tile_pos(&self, t: usize) -> (usize, usize, usize) {
        let per_img = self.th * self.tw;
        let (n, r) = (t / per_img, t % per_img);
        (n, r / self.tw, r % self.tw)
    }

    /// `B^T d B` of each tile's 4x4 window (rows and columns past the input read as zero)
    /// into `v[xi][t - t0][ci]`, `xi = 4 i + j`.
    #[target_feature(enable = "avx512f")]
    unsafe fn input_transform(&self, x: &[f32], t0: usize, nt: usize, v: *mut f32) {
        let c = self.cin;
        let zero = _mm512_setzero_ps();
        for lt in 0..nt {
            let (n, ty, tx) = self.tile_pos(t0 + lt);
            let (r0, c0) = (2 * ty, 2 * tx);
            let img = n * self.hp * self.wp * c;
            let mut cv = 0;
            while cv < c {
                let mask = lane_mask(c - cv, 0);
                let mut dd = [[zero; 4]; 4];
                for i in 0..4 {
                    if r0 + i >= self.hp {
                        continue;
                    }
                    for j in 0..4 {
                        if c0 + j < self.wp {
                            let o = img + ((r0 + i) * self.wp + c0 + j) * c + cv;
                            // SAFETY: pixel (r0 + i, c0 + j) of image n lies in `x`
                            // (asserted length), lanes masked to its channels.
                            dd[i][j] = unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add(o)) };
                        }
                    }
                }
                // Rows: B^T d.
                let mut t = [[zero; 4]; 4];
                for j in 0..4 {
                    t[0][j] = _mm512_sub_ps(dd[0][j], dd[2][j]);
                    t[1][j] = _mm512_add_ps(dd[1][j], dd[2][j]);
                    t[2][j] = _mm512_sub_ps(dd[2][j], dd[1][j]);
                    t[3][j] = _mm512_sub_ps(dd[1][j], dd[3][j]);
                }
                // Columns: (B^T d) B, stored by xi.
                for i in 0..4 {
                    let r = [
                        _mm512_sub_ps(t[i][0], t[i][2]),
                        _mm512_add_ps(t[i][1], t[i][2]),
                        _mm512_sub_ps(t[i][2], t[i][1]),
                        _mm512_sub_ps(t[i][1], t[i][3]),
                    ];
                    for (j, rv) in r.into_iter().enumerate() {
                        let o = (4 * i + j) * self.vstride() + lt * c + cv;
                        // SAFETY: xi < 16, lt < chunk, lanes masked to cin: inside `v`.
                        unsafe { _mm512_mask_storeu_ps(v.add(o), mask, rv) };
                    }
                }
                cv += 16;
            }
        }
    }

    /// `A^T m A` of each tile's 16 products (`A^T = [1 1 1 0; 0 1 -1 -1]`), plus bias,
    /// residual and activation, stored for the tile's output pixels inside the image.
    #[target_feature(enable = "avx512f")]
    unsafe fn output_transform(&self, t0: usize, nt: usize, m: *const f32, d: &Dest<'_>) {
        let c = self.cout;
        for lt in 0..nt {
            let (n, ty, tx) = self.tile_pos(t0 + lt);
            let mut cv = 0;
            while cv < c {
                let mask = lane_mask(c - cv, 0);
                let mut mm = [[_mm512_setzero_ps(); 4]; 4];
                for i in 0..4 {
                    for j in 0..4 {
                        let o = (4 * i + j) * self.mstride() + lt * c + cv;
                        // SAFETY: inside `M` (xi < 16, lt < chunk), lanes masked.
                        mm[i][j] = unsafe { _mm512_maskz_loadu_ps(mask, m.add(o)) };
                    }
                }
                let mut s = [[_mm512_setzero_ps(); 4]; 2];
                for j in 0..4 {
                    s[0][j] = _mm512_add_ps(_mm512_add_ps(mm[0][j], mm[1][j]), mm[2][j]);
                    s[1][j] = _mm512_sub_ps(_mm512_sub_ps(mm[1][j], mm[2][j]), mm[3][j]);
                }
                // SAFETY: the bias is padded to whole vectors.
                let bias = unsafe { _mm512_loadu_ps(d.bias.as_ptr().add(cv)) };
                for (i, si) in s.iter().enumerate() {
                    let y = [
                        _mm512_add_ps(_mm512_add_ps(si[0], si[1]), si[2]),
                        _mm512_sub_ps(_mm512_sub_ps(si[1], si[2]), si[3]),
                    ];
                    let oy = 2 * ty + i;
                    if oy >= self.ho {
                        continue;
                    }
                    for (j, yv) in y.into_iter().enumerate() {
                        let ox = 2 * tx + j;
                        if ox >= self.wo {
                            continue;
                        }
                        let q = (n * self.ho + oy) * self.wo + ox;
                        // SAFETY: the plan's layout (see `Dest`).
                        unsafe { self.store(d, q, cv, mask, _mm512_add_ps(yv, bias)) };
                    }
                }
                cv += 16;
            }
        }
    }

    /// Output pixel `q`'s channels `cv..` (`mask`): `r` plus the residual, through the
    /// activation, stored.
    ///
    /// # Safety
    /// AVX-512F; `q` an output pixel of the plan, `d` the plan's destination.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn store(&self, d: &Dest<'_>, q: usize, cv: usize, mask: u16, r: __m512) {
        let c = self.cout;
        let mut r = r;
        if !d.skip.is_null() {
            let so = if d.skip_pix.is_empty() {
                q * c
            } else {
                d.skip_pix[q]
            };
            // SAFETY: the residual's pixel q (the plan's layout).
            let sv = unsafe { _mm512_maskz_loadu_ps(mask, d.skip.add(so + cv)) };
            r = _mm512_add_ps(r, sv);
        }
        r = d.act.apply(r);
        let yo = if d.out_pix.is_empty() {
            q * c
        } else {
            d.out_pix[q]
        };
        // SAFETY: output pixel q's channels (the plan's layout).
        unsafe { _mm512_mask_storeu_ps(d.y.add(yo + cv), mask, r) };
    }
}

#[cfg(test)]
mod tests {
    use super::{ConvGeom, pays, weight_transform};

    /// A 3x3 "same" convolution of a `side x side` image.
    fn same3x3(side: usize, cin: usize, cout: usize) -> ConvGeom {
        ConvGeom {
            h: side,
            w: side,
            cin,
            ho: side,
            wo: side,
            cout,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            pad_top: 1,
            pad_bottom: 1,
            pad_left: 1,
            pad_right: 1,
            groups: 1,
        }
    }

    /// Few tiles and streamed weights keep the direct kernel; many tiles, or weights that
    /// stay cached, take Winograd.
    #[test]
    fn winograd_pays_with_tiles_or_cached_weights() {
        // ResNet-50's 7x7 stage at batch 1: 16 tiles, 16 MiB of transformed weights.
        assert!(!pays(&same3x3(7, 512, 512), 1));
        // ... at batch 2 (32 tiles), and its 14x14 stage (49 tiles, 4 MiB).
        assert!(pays(&same3x3(7, 512, 512), 2));
        assert!(pays(&same3x3(14, 256, 256), 1));
        // resnet8's 8x8 stage at batch 1: 16 tiles, 256 KiB.
        assert!(pays(&same3x3(8, 64, 64), 1));
        // 9 tiles: 1 MiB of weights (16 x 128 x 128 floats) counts as cached, a channel
        // more each way does not.
        assert!(pays(&same3x3(6, 128, 128), 1));
        assert!(!pays(&same3x3(6, 129, 129), 1));
    }

    /// F(2, 3) in one dimension, from the transforms: `A^T [(G g) . (B^T d)]` equals the
    /// direct correlation of `d` (4 values) with `g` (3) at both outputs.
    #[test]
    fn transforms_compute_a_correlation() {
        let g = [0.3, -1.2, 2.5];
        let d = [1.5, -0.25, 4.0, 0.75];
        // The 2D weight transform of an outer product is the outer product of 1D ones.
        let g2: [f64; 9] = std::array::from_fn(|t| if t / 3 == 0 { g[t % 3] } else { 0.0 });
        let u = weight_transform(g2);
        let gg = [u[0], u[1], u[2], u[3]];
        let bd = [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]];
        let m: Vec<f64> = (0..4).map(|i| gg[i] * bd[i]).collect();
        let y = [m[0] + m[1] + m[2], m[1] - m[2] - m[3]];
        let want = [
            d[0] * g[0] + d[1] * g[1] + d[2] * g[2],
            d[1] * g[0] + d[2] * g[1] + d[3] * g[2],
        ];
        for k in 0..2 {
            assert!((y[k] - want[k]).abs() < 1e-12, "{y:?} vs {want:?}");
        }
    }
}
