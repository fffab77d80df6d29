//! The lane masks of 16-lane vectors, shared by every AVX-512 kernel (the direct convolutions,
//! the packed GEMM, the GELU, the attention rows): a leaf module, so that the kernels' modules
//! import it without importing each other.

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
