//! What a register tile of the direct kernels is given: the fp32 tile (`conv`) and the bf16
//! tile (`bf16`) both read it.

use crate::kernels::Act;

use super::MAX_P;

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
