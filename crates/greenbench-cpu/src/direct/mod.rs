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
//! reduction is cut into blocks whose weights fit in L2 (`KBLOCK_FLOATS`), so one weight block serves a whole
//! run of pixel tiles.
//!
//! Why not the `gemm` crate with im2col, which this replaced on AVX-512 machines: the zoo's
//! convolutions have 6 to 64 output channels, the `gemm` crate's AVX-512 micro-kernel is
//! 48 x 6 and fell to its edge kernels on them, and im2col copied each input value up to
//! `kh * kw` times (35 % of resnet8's time at batch 32, 56 % of lenet5's). Measured on the
//! dev VM (2-core Xeon with AVX-512, quick profile, 2 threads): see the commit that made
//! this the default and `results/onnx/README.md`.
//!
//! Files: `conv` (dense layers and ungrouped convolutions: plans, units; under it `bf16_plan`
//! the bf16 constructors, `pooled` a single-channel layer's 2x2 pool in lanes, `pool_fused`
//! any max pool after the fp32 tile, band by band), `tile` (the fp32 register tile and what
//! a tile is given),
//! `winograd` (3x3 stride-1 convolutions as Winograd F(2x2, 3x3) or F(4x4, 3x3): transforms
//! around 16 or 36 of `conv`'s GEMMs), `depthwise` (depthwise plans and strip kernels), `pool` (max/average
//! pooling); this one holds what they share: padded-input copies, stored borders, lane masks.
//!
//! Only compiled for x86-64; other CPUs (and x86-64 CPUs without AVX-512) keep the
//! im2col + `gemm` crate path, which dispatches to AVX2/FMA or NEON kernels.

#![cfg(target_arch = "x86_64")]

mod amx;
pub mod bf16;
mod conv;
mod depthwise;
mod lanes;
mod pool;
mod tile;
mod winograd;

pub use conv::DirectPlan;
pub use depthwise::DwPlan;
pub use pool::{Narrow, pool, pool_rows};

use crate::kernels::{Act, Relu, SendPtr};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// The epilogue activation on 16 lanes: clamps and h-swish in registers; the sigmoid lane by
/// lane through the scalar formula (a 16-value loop the compiler vectorises here), so the fused
/// and the separate kernels compute the same values.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn act_ps(a: Act, r: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    match a {
        Act::Clamp(hi) => _mm512_min_ps(_mm512_max_ps(r, zero), _mm512_set1_ps(hi)),
        Act::HardSwish => {
            let t = _mm512_add_ps(
                _mm512_mul_ps(r, _mm512_set1_ps(1.0 / 6.0)),
                _mm512_set1_ps(0.5),
            );
            let t = _mm512_min_ps(_mm512_max_ps(t, zero), _mm512_set1_ps(1.0));
            _mm512_mul_ps(r, t)
        }
        // As the sigmoid, lane by lane through the portable formula: `kernels::gelu16` here
        // (its constants and polynomials inlined into every kernel's epilogue) made fp32 layers
        // that never run a GELU slower (ds-cnn fp32 b32 16.85 -> 17.51 µs against this form's
        // 16.51, three alternating rounds, best); the AMX epilogue, which runs the fused GELUs
        // of bf16 dense layers, calls `gelu16` itself.
        Act::Gelu => {
            let mut v = [0f32; 16];
            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), r) };
            for x in v.iter_mut() {
                *x = Act::Gelu.apply(*x);
            }
            unsafe { _mm512_loadu_ps(v.as_ptr()) }
        }
        Act::Sigmoid => {
            let mut v = [0f32; 16];
            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), r) };
            for x in v.iter_mut() {
                *x = Act::Sigmoid.apply(*x);
            }
            unsafe { _mm512_loadu_ps(v.as_ptr()) }
        }
    }
}

/// A fused activation with its kind decided once per strip or tile rather than per stored
/// vector: `act_ps` matches on the kind every call, a compare and a jump per vector that
/// `perf annotate` of the fp32 depthwise kernel put at a quarter of its samples (ds-cnn, batch
/// 32, one thread). Clamps (ReLU, ReLU6) run in registers; the rest through `act_ps`.
#[derive(Clone, Copy)]
pub(crate) struct ActRegs {
    /// The clamp's upper bound, for `Act::Clamp`.
    clamp: Option<__m512>,
    /// Any other activation.
    other: Option<Act>,
}

impl ActRegs {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(a: Relu) -> ActRegs {
        match a {
            Some(Act::Clamp(hi)) => ActRegs {
                clamp: Some(_mm512_set1_ps(hi)),
                other: None,
            },
            other => ActRegs { clamp: None, other },
        }
    }

    /// The activation on 16 lanes: the same values as `act_ps` (a clamp is `max(r, 0)`
    /// then `min(_, hi)`, a NaN going to 0 as there).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn apply(&self, r: __m512) -> __m512 {
        if let Some(hi) = self.clamp {
            return _mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), hi);
        }
        match self.other {
            // SAFETY: AVX-512F (this function's features).
            Some(a) => unsafe { act_ps(a, r) },
            None => r,
        }
    }
}

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
/// that threads can share it. With `bf16`, each value is rounded to bf16 (ties to even,
/// `greenbench_core::bf16`) and stored as its 16 bits, each pixel's `c` channels in a slot of
/// `cp` (the rest stay zero): the operands of the bf16 kernels.
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
    /// Channels per pixel in the buffer (`c`, or `c` rounded up to even for bf16).
    cp: usize,
    bf16: bool,
}

/// Input rows per copy unit.
const COPY_ROWS: usize = 8;

impl PadCopy {
    fn units(&self) -> usize {
        self.batch * self.h.div_ceil(COPY_ROWS)
    }

    /// Floats of the destination buffer (bf16 values two to a float).
    fn dst_floats(&self) -> usize {
        let n = self.batch * self.hp * self.wp * self.cp;
        if self.bf16 { n.div_ceil(2) } else { n }
    }

    /// Copy unit `u` of `x` into `dst` ([`Self::dst_floats`] floats).
    ///
    /// # Safety
    /// `dst` must point to that many floats; concurrent calls must use distinct `u`.
    unsafe fn unit(&self, x: &[f32], dst: *mut f32, u: usize) {
        let per = self.h.div_ceil(COPY_ROWS);
        let (n, r0) = (u / per, (u % per) * COPY_ROWS);
        let row = self.w * self.c;
        for iy in r0..(r0 + COPY_ROWS).min(self.h) {
            let src = &x[(n * self.h + iy) * row..(n * self.h + iy + 1) * row];
            let o = ((n * self.hp + iy + self.top) * self.wp + self.left) * self.cp;
            if self.bf16 && self.c == self.cp {
                // SAFETY: bf16 copies belong to bf16 plans, built only on AVX-512 CPUs; the
                // row's `row` values lie inside image n (as below).
                unsafe { bf16::round_row(src, (dst as *mut u16).add(o)) };
                continue;
            }
            if self.bf16 {
                // Odd channel counts. A pixel's channels are contiguous in its slot of `cp`:
                // wide pixels (an odd-length dense row) are rounded straight into it; narrow
                // ones (a first layer's RGB) a chunk of whole pixels at a time through a stack
                // buffer (no allocation inside the run), then stored pixel by pixel.
                let d = dst as *mut u16;
                if self.c >= 16 {
                    for (j, px) in src.chunks_exact(self.c).enumerate() {
                        // SAFETY: as above; the pixel's slot holds `c` values.
                        unsafe { bf16::round_row(px, d.add(o + j * self.cp)) };
                    }
                    continue;
                }
                // Not zeroed: each chunk's values are written before they are read (zeroing
                // its 4 KiB per row was 3 % of mobilenet-v1-0.25 in bf16, as `memset`).
                let mut tmp = std::mem::MaybeUninit::<[u16; 2048]>::uninit();
                let tp = tmp.as_mut_ptr() as *mut u16;
                let per = 2048 / self.c;
                for (k, chunk) in src.chunks(per * self.c).enumerate() {
                    // SAFETY: as above; `tmp` holds `chunk.len()` values, all written here.
                    let done = unsafe {
                        bf16::round_row(chunk, tp);
                        std::slice::from_raw_parts(tp, chunk.len())
                    };
                    let first = o + k * per * self.cp;
                    let px = done.chunks_exact(self.c);
                    // SAFETY: pixel left + k * per + j < wp of row iy + top < hp of image n.
                    if self.c == 3 && self.cp == 4 && std::is_x86_feature_detected!("avx512bw") {
                        // RGB: a pixel's three values and the zero after them, 8 pixels a step.
                        // SAFETY: AVX-512 F/BW (checked); the chunk's pixels' slots (as below).
                        unsafe { bf16::spread_rgb(done, d.add(first)) };
                    } else if self.c == 3 {
                        // RGB: a pixel's three values and the zero after them, one store.
                        for (j, v) in px.enumerate() {
                            let word = v[0] as u64 | (v[1] as u64) << 16 | (v[2] as u64) << 32;
                            unsafe { (d.add(first + 4 * j) as *mut u64).write_unaligned(word) };
                        }
                    } else {
                        for (j, v) in px.enumerate() {
                            let at = first + j * self.cp;
                            for (t, &h) in v.iter().enumerate() {
                                unsafe { *d.add(at + t) = h };
                            }
                        }
                    }
                }
                continue;
            }
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
        assert!(dst.len() >= self.dst_floats(), "pad copy: buffer");
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

/// The buffer a padded convolution copies its input into (borders stay zero); empty for
/// the other plans. Kept by the caller so `run` can take the plan by shared reference.
pub type PadBuffer = crate::kernels::Buf;

/// The mask of vector `v`'s lanes (`crate::mask`, re-exported for this module's files).
pub(crate) use crate::mask::lane_mask;
