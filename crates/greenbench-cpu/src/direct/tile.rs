//! The fp32 register tile of the direct kernels (`conv` runs it over each reduction block),
//! and what a register tile is given: the fp32 tile and the bf16 tile (`bf16`) both read it.

use crate::kernels::Act;

use super::{ActRegs, MAX_P, lane_mask};
use std::arch::x86_64::*;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Init {
    Bias,
    Load,
}

#[derive(Clone, Copy)]
pub(super) struct Mode {
    pub(super) init: Init,
    /// Last reduction block: add the residual (if any), then the activation (if set).
    pub(super) last: bool,
    pub(super) act: Option<Act>,
}

pub(super) struct TileArgs<'a> {
    pub(super) x: *const f32,
    /// Offset in `x` of each pixel's first value of this block (first `P` used).
    pub(super) base: &'a [usize; MAX_P],
    /// Kernel rows in the block, `row_stride` apart in `x`.
    pub(super) nr: usize,
    pub(super) row_stride: usize,
    /// Contiguous values per kernel row in the block.
    pub(super) kc: usize,
    pub(super) w: *const f32,
    pub(super) bias: *const f32,
    pub(super) y: *mut f32,
    /// Offset in `y` of each pixel's first channel of this block.
    pub(super) obase: &'a [usize; MAX_P],
    /// Residual added before the ReLU on the last block (null when none), at `sbase`.
    pub(super) skip: *const f32,
    pub(super) sbase: &'a [usize; MAX_P],
    pub(super) np: usize,
    pub(super) ncols: usize,
    pub(super) mode: Mode,
    /// Weights the unit reads next (`DirectPlan::unit` shares them out among its tiles): this
    /// tile asks for `pf_lines` cache lines of them into L2 from `pf`, one or two per
    /// reduction step, while it computes (fp32 tile only).
    pub(super) pf: *const f32,
    pub(super) pf_lines: usize,
}

/// Pick the kernel instance: `V` from the plan, `P` from the pixels left in this tile (so
/// a batch-1 dense layer runs a 1-pixel kernel, not a full tile of duplicates).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dispatch(v: usize, np: usize, a: &TileArgs<'_>) {
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

/// The micro-kernel: `P` pixels x `16 V` channels, over one reduction block.
#[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
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
            // Fixed trip counts (`p < a.np` tested inside) keep the accumulators in
            // registers: a loop bounded by `np` over the array made LLVM keep it in memory and
            // store every accumulator after each multiply-add (seen in `perf annotate`).
            for p in 0..P {
                if p < a.np {
                    for v in 0..V {
                        let o = unsafe { a.y.add(a.obase[p] + 16 * v) };
                        acc[p][v] = unsafe { _mm512_maskz_loadu_ps(masks[v], o) };
                    }
                }
            }
        }
    }
    let mut w = a.w;
    let (mut pf, mut pf_left) = (a.pf, a.pf_lines);
    let mut steps_left = a.nr * a.kc;
    for r in 0..a.nr {
        let mut px = [std::ptr::null::<f32>(); P];
        for (p, ptr) in px.iter_mut().enumerate() {
            *ptr = unsafe { a.x.add(a.base[p] + r * a.row_stride) };
        }
        for c in 0..a.kc {
            if pf_left > 0 {
                // A prefetch does not fault; `pf` stays inside the weights all the same.
                _mm_prefetch::<_MM_HINT_T1>(pf as *const i8);
                pf_left -= 1;
                pf = pf.wrapping_add(16);
                if pf_left > steps_left {
                    _mm_prefetch::<_MM_HINT_T1>(pf as *const i8);
                    pf_left -= 1;
                    pf = pf.wrapping_add(16);
                }
            }
            steps_left = steps_left.saturating_sub(1);
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
    let act = ActRegs::new(a.mode.act);
    for p in 0..P {
        if p >= a.np {
            break;
        }
        for v in 0..V {
            if masks[v] == 0 {
                continue;
            }
            let mut r = acc[p][v];
            if a.mode.last && !a.skip.is_null() {
                let s = unsafe { _mm512_maskz_loadu_ps(masks[v], a.skip.add(a.sbase[p] + 16 * v)) };
                r = _mm512_add_ps(r, s);
            }
            r = act.apply(r);
            let o = unsafe { a.y.add(a.obase[p] + 16 * v) };
            unsafe { _mm512_mask_storeu_ps(o, masks[v], r) };
        }
    }
}
