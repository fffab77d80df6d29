//! The direct plans on bf16 operands: the GEMM and convolution constructors, and the
//! weights repacked as `vdpbf16ps` pairs.

use super::{Bf16Operands, DirectPlan, pad_channels, reduction_blocks};
use crate::direct::{Border, PadCopy};
use crate::kernels::Relu;
use greenbench_core::graph::ConvGeom;

impl DirectPlan {
    /// [`Self::gemm`] on bf16 operands: `x` rounded to bf16 as it is copied in (each row's
    /// `k` values padded to even), `w` rounded (callers pass weights already bf16), products
    /// exact, sums fp32. Needs AVX-512 BF16 ([`super::bf16::available`]).
    pub fn gemm_bf16(
        rows: usize,
        k: usize,
        n: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: Relu,
    ) -> Self {
        let kp = k.next_multiple_of(2);
        let plan = Self::gemm(rows, kp, n, &pad_channels(w, 1, k, kp, n), bias, relu);
        let copy = PadCopy {
            batch: rows,
            h: 1,
            w: 1,
            c: k,
            top: 0,
            left: 0,
            hp: 1,
            wp: 1,
            cp: kp,
            bf16: true,
        };
        plan.into_bf16(copy, rows * k)
    }

    /// [`Self::conv`] on bf16 operands (see [`Self::gemm_bf16`]): the input (unbordered NHWC)
    /// copied into a zero-bordered bf16 buffer; each pixel's channels padded to even unless
    /// a kernel row's values already pair up (`kw * cin` even: pairs may join two pixels).
    pub fn conv_bf16(
        g: &ConvGeom,
        batch: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        relu: Relu,
        out_border: Option<Border>,
    ) -> Option<Self> {
        let cp = match (g.kw * g.cin).is_multiple_of(2) {
            true => g.cin,
            false => g.cin.next_multiple_of(2),
        };
        let mut gp = *g;
        gp.cin = cp;
        let wp = pad_channels(w, g.kh * g.kw, g.cin, cp, g.cout);
        // Built as over an input stored padded: the copy below pads.
        let plan = Self::conv(&gp, batch, &wp, bias, relu, true, out_border, None)?;
        let copy = PadCopy {
            batch,
            h: g.h,
            w: g.w,
            c: g.cin,
            top: g.pad_top,
            left: g.pad_left,
            hp: plan.geo.hp,
            wp: plan.geo.wp,
            cp,
            bf16: true,
        };
        Some(plan.into_bf16(copy, batch * g.h * g.w * g.cin))
    }

    /// This plan (built over `copy`'s buffer geometry, fp32 weights) on bf16 operands, reading
    /// an fp32 input of `input_len` values through `copy`.
    fn into_bf16(mut self, copy: PadCopy, input_len: usize) -> Self {
        assert!(self.wino.is_none(), "bf16 plans run the direct tile");
        let k = self.geo.kh * self.geo.kw * self.geo.cin;
        assert!(
            k.is_multiple_of(2) && (self.geo.kw * self.geo.cin).is_multiple_of(2),
            "bf16: odd reduction"
        );
        let width = 16 * self.v;
        let nb = self.cout.div_ceil(width);
        let v_last = (self.cout - (nb - 1) * width).div_ceil(16);
        let mut w = vec![0u16; self.w.len()];
        for b in 0..nb {
            let wb = if b + 1 == nb { 16 * v_last } else { width };
            let base = b * k * width;
            for kk in (0..k).step_by(2) {
                for j in 0..wb {
                    let (lo, hi) = (self.w[base + kk * wb + j], self.w[base + (kk + 1) * wb + j]);
                    let o = base + kk * wb + 2 * j;
                    w[o] = greenbench_core::bf16::to_bits(lo);
                    w[o + 1] = greenbench_core::bf16::to_bits(hi);
                }
            }
        }
        self.w = Default::default();
        self.kblocks = reduction_blocks(&self.geo, width, true);
        self.pad = None;
        self.input_len = input_len;
        let ends = super::amx::even_ends(&self.pix);
        self.bf16 = Some(Bf16Operands {
            copy,
            w: w.into(),
            ends,
        });
        self
    }
}
