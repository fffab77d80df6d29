//! Register-blocked AVX-512 convolution and GEMM, with no im2col and no packing of the
//! activations.
//!
//! One micro-kernel family serves dense layers, 1x1 convolutions and k x k convolutions
//! (ungrouped): an output tile of `P` pixels by `16 * V` output channels lives in `P * V`
//! zmm accumulators; for every reduction step it loads `V` vectors of packed weights and
//! broadcasts one input value per pixel straight from the NHWC activation (an "indirect
//! convolution": each pixel and tap has its own input pointer, taken from an indirection
//! table built once in `prepare`, with padding taps pointing at a zero row). Bias and ReLU
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

use greenbench_core::graph::ConvGeom;
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Most taps of one reduction block (the kernel's pointer table is on the stack).
const MAX_TAPS: usize = 64;
/// Most pixels in one tile (the widest kernel instance).
const MAX_P: usize = 8;
/// Target pixels per work unit: enough tiles to reuse an L1-resident weight block, few
/// enough that the unit's output stays in L2 while reduction blocks revisit it.
const UNIT_PIXELS: usize = 256;

/// Whether this CPU runs the direct kernels.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Where a pixel's input for a tap starts.
enum Source {
    /// Pixel `q` reads `x[q * stride ..]` (one tap): dense layers, 1x1 stride-1 convs.
    Rows { stride: usize },
    /// `table[q * taps + t]` is the offset of pixel `q`, tap `t`; `u32::MAX` is padding.
    Table(Vec<u32>),
}

/// One convolution or GEMM planned for the direct kernels.
pub struct DirectPlan {
    pixels: usize,
    cout: usize,
    cin: usize,
    taps: usize,
    src: Source,
    /// Vectors (of 16 channels) per channel block, 1..=4.
    v: usize,
    /// Pixels per tile for this `v`.
    p: usize,
    /// `[block][tap * cin + c][16 v]`, zero-padded past `cout`.
    w: Vec<f32>,
    /// Bias padded to whole blocks (zeros when the layer has none).
    bias: Vec<f32>,
    relu: bool,
    /// Reduction blocks: taps `t0..t1`, channels `c0..c1` of each.
    kblocks: Vec<(usize, usize, usize, usize)>,
    zeros: Vec<f32>,
    input_len: usize,
}

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
        Self::build(
            rows,
            k,
            n,
            1,
            Source::Rows { stride: k },
            w,
            bias,
            relu,
            rows * k,
        )
    }

    /// An ungrouped convolution over `batch` NHWC images, weights HWIO.
    /// `None` when the geometry is not one the kernels take (groups, huge tensors).
    pub fn conv(
        g: &ConvGeom,
        batch: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
    ) -> Option<Self> {
        if g.groups != 1 {
            return None;
        }
        let input_len = batch * g.h * g.w * g.cin;
        if input_len >= u32::MAX as usize {
            return None;
        }
        let pixels = batch * g.ho * g.wo;
        if g.is_pointwise() {
            let src = Source::Rows { stride: g.cin };
            return Some(Self::build(
                pixels, g.cin, g.cout, 1, src, w, bias, relu, input_len,
            ));
        }
        let taps = g.kh * g.kw;
        let mut table = Vec::with_capacity(pixels * taps);
        for n in 0..batch {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy * g.sh + ky) as isize - g.pad_top as isize;
                            let ix = (ox * g.sw + kx) as isize - g.pad_left as isize;
                            table.push(
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    u32::MAX
                                } else {
                                    (((n * g.h + iy as usize) * g.w + ix as usize) * g.cin) as u32
                                },
                            );
                        }
                    }
                }
            }
        }
        Some(Self::build(
            pixels,
            g.cin,
            g.cout,
            taps,
            Source::Table(table),
            w,
            bias,
            relu,
            input_len,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        pixels: usize,
        cin: usize,
        cout: usize,
        taps: usize,
        src: Source,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        input_len: usize,
    ) -> Self {
        assert_eq!(
            w.len(),
            taps * cin * cout,
            "weights do not match the geometry"
        );
        // Register blocking: P * V accumulators + V weight vectors + 1 broadcast <= 32 zmm,
        // and at least 8 accumulators to cover the FMA latency of two pipes.
        let v = cout.div_ceil(16).clamp(1, 4);
        let p = if v == 4 { 6 } else { 8 };
        let nb = cout.div_ceil(16 * v);
        let width = 16 * v;
        let k = taps * cin;
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
        // Reduction blocks: the weights of one block (kc * width floats) within ~24 KiB.
        let kc = (6144 / width).max(1);
        let mut kblocks = Vec::new();
        if taps == 1 {
            let mut c0 = 0;
            while c0 < cin {
                let c1 = (c0 + kc).min(cin);
                kblocks.push((0, 1, c0, c1));
                c0 = c1;
            }
        } else {
            let per = (kc / cin.max(1)).clamp(1, MAX_TAPS);
            let mut t0 = 0;
            while t0 < taps {
                let t1 = (t0 + per).min(taps);
                kblocks.push((t0, t1, 0, cin));
                t0 = t1;
            }
        }
        DirectPlan {
            pixels,
            cout,
            cin,
            taps,
            src,
            v,
            p,
            w: packed,
            bias: padded_bias,
            relu,
            kblocks,
            zeros: vec![0.0; cin],
            input_len,
        }
    }

    /// Output values written.
    pub fn output_len(&self) -> usize {
        self.pixels * self.cout
    }

    /// Run on `x` into `y`, splitting across the current rayon pool when `par`.
    /// Panics if the CPU lacks AVX-512 (callers check [`available`]) or on short slices.
    pub fn run(&self, x: &[f32], y: &mut [f32], par: bool, threads: usize) {
        assert!(available(), "direct kernels need AVX-512F");
        assert!(x.len() >= self.input_len, "direct: input too short");
        assert!(y.len() >= self.output_len(), "direct: output too short");
        let width = 16 * self.v;
        let nb = self.cout.div_ceil(width);
        let tiles = self.pixels.div_ceil(self.p);
        let mut unit_tiles = (UNIT_PIXELS / self.p).max(1);
        if par {
            // At least ~4 units per thread, so both threads stay busy to the end.
            let want = (4 * threads).div_ceil(nb);
            unit_tiles = unit_tiles.min(tiles.div_ceil(want).max(1));
        }
        let chunks = tiles.div_ceil(unit_tiles);
        let units = chunks * nb;
        let yp = SendPtr(y.as_mut_ptr());
        let body = |u: usize| {
            let (chunk, b) = (u / nb, u % nb);
            let t0 = chunk * unit_tiles;
            let t1 = (t0 + unit_tiles).min(tiles);
            // SAFETY: AVX-512F was checked above; unit (chunk, b) writes only its pixels'
            // channels b*width..(b+1)*width, disjoint from every other unit's, and all
            // offsets were checked against the slice lengths (table entries are < input_len
            // by construction, pixels * cout <= y.len()).
            unsafe { self.unit(x.as_ptr(), yp.get(), t0, t1, b) };
        };
        if par {
            (0..units).into_par_iter().for_each(body);
        } else {
            (0..units).for_each(body);
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn unit(&self, x: *const f32, y: *mut f32, t0: usize, t1: usize, b: usize) {
        let width = 16 * self.v;
        let k = self.taps * self.cin;
        let ncols = (self.cout - b * width).min(width);
        let mut ptrs = [std::ptr::null::<f32>(); MAX_TAPS * MAX_P];
        let nkb = self.kblocks.len();
        for (kbi, &(ta, tb, c0, c1)) in self.kblocks.iter().enumerate() {
            let w = unsafe { self.w.as_ptr().add((b * k + ta * self.cin + c0) * width) };
            let nt = tb - ta;
            let mode = Mode {
                init: if kbi == 0 { Init::Bias } else { Init::Load },
                relu: self.relu && kbi + 1 == nkb,
            };
            for tile in t0..t1 {
                let q0 = tile * self.p;
                let np = (self.pixels - q0).min(self.p);
                for t in 0..nt {
                    for pi in 0..self.p {
                        // Pixels past the end repeat the first one; their results are dropped.
                        let q = q0 + if pi < np { pi } else { 0 };
                        let base = match &self.src {
                            Source::Rows { stride } => unsafe { x.add(q * stride) },
                            Source::Table(tab) => {
                                let off = tab[q * self.taps + ta + t];
                                if off == u32::MAX {
                                    self.zeros.as_ptr()
                                } else {
                                    unsafe { x.add(off as usize) }
                                }
                            }
                        };
                        ptrs[t * self.p + pi] = unsafe { base.add(c0) };
                    }
                }
                let a = TileArgs {
                    ptrs: &ptrs[..nt * self.p],
                    pstride: self.p,
                    nt,
                    kc: c1 - c0,
                    w,
                    bias: unsafe { self.bias.as_ptr().add(b * width) },
                    out: unsafe { y.add(q0 * self.cout + b * width) },
                    out_stride: self.cout,
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
    relu: bool,
}

struct TileArgs<'a> {
    /// `nt` groups of `P` input pointers (one per pixel), one group per tap.
    ptrs: &'a [*const f32],
    /// Distance between the pointer groups of consecutive taps (the plan's tile size).
    pstride: usize,
    nt: usize,
    kc: usize,
    w: *const f32,
    bias: *const f32,
    out: *mut f32,
    out_stride: usize,
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

#[inline(always)]
fn lane_mask(ncols: usize, v: usize) -> u16 {
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
                    let o = unsafe { a.out.add(p * a.out_stride + 16 * v) };
                    row[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], o) };
                }
            }
        }
    }
    let mut w = a.w;
    for t in 0..a.nt {
        let mut px = [std::ptr::null::<f32>(); P];
        px.copy_from_slice(&a.ptrs[t * a.pstride..t * a.pstride + P]);
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
            let r = if a.mode.relu {
                _mm512_max_ps(row[v], zero)
            } else {
                row[v]
            };
            let o = unsafe { a.out.add(p * a.out_stride + 16 * v) };
            unsafe { _mm512_mask_storeu_ps(o, masks[v], r) };
        }
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used for disjoint writes, see `DirectPlan::run`.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}
