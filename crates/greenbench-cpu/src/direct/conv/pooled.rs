//! A single-channel convolution with the 2x2 stride-2 max pool after it fused (LeNet-5's
//! conv1 -> pool1): the pixels-in-lanes kernel (`super::super::lanes`) computes two output
//! rows at once already, so it pools them in registers and stores the pooled image; no full
//! output written and read back, and no pool step.

use super::DirectPlan;
use super::UNIT_PIXELS;
use crate::direct::lanes::Lanes;
use crate::direct::winograd;
use greenbench_core::graph::ConvGeom;

impl DirectPlan {
    /// Whether [`DirectPlan::conv`] with `winograd` builds, for `g` (an unbordered output,
    /// no residual), a plan that takes a fused 2x2 stride-2 max pool
    /// ([`Self::with_max_pool2`]): the pixels-in-lanes form with even output sides.
    pub fn takes_max_pool2(g: &ConvGeom, batch: usize, winograd: Option<usize>) -> bool {
        !Self::runs_winograd(g, batch, winograd) && Lanes::fits(g) && Lanes::pools(g)
    }

    /// Whether [`DirectPlan::conv`] with `winograd` runs `g` as Winograd (a fused pool
    /// needs another form).
    pub(super) fn runs_winograd(g: &ConvGeom, batch: usize, winograd: Option<usize>) -> bool {
        winograd.is_some() && winograd::eligible(g) && winograd::pays(g, batch)
    }

    /// This plan with the max pool fused: its output is the pooled image. `None` where it
    /// does not take one ([`Self::takes_max_pool2`], a bordered output, a residual).
    pub fn with_max_pool2(mut self) -> Option<Self> {
        if !self.out_pix.is_empty() || self.residual || self.bf16.is_some() {
            return None;
        }
        if !self.lanes.as_mut()?.pool2() {
            return None;
        }
        self.out_len /= 4;
        Some(self)
    }

    /// With a fused pool: its units of work (ranges of output row pairs: as many as fit
    /// `UNIT_PIXELS` output pixels, at least ~4 a thread) and the pairs in all.
    pub(super) fn pooled_layout(&self, threads: usize) -> Option<(usize, usize)> {
        let batch = self.pixels / (self.geo.ho * self.geo.wo);
        let pairs = self.lanes.as_ref()?.pooled_pairs(batch)?;
        let mut per = (UNIT_PIXELS / (2 * self.geo.wo)).max(1);
        if threads > 1 {
            per = per.min(pairs.div_ceil(4 * threads).max(1));
        }
        Some((per, pairs))
    }

    /// Pooled unit `u` of [`Self::pooled_layout`]'s.
    ///
    /// # Safety
    /// AVX-512F; `y` holds the pooled output, unit `u`'s part written by this call alone.
    pub(super) unsafe fn pooled_unit(&self, x: &[f32], y: *mut f32, u: usize, threads: usize) {
        let (per, pairs) = self.pooled_layout(threads).expect("a fused pool");
        let lanes = self.lanes.as_ref().expect("a fused pool runs in lanes");
        let k0 = (u * per).min(pairs);
        // SAFETY: the caller's.
        unsafe { lanes.run_pooled(x, y, k0..(k0 + per).min(pairs)) };
    }
}
