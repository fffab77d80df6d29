//! Shape arithmetic of the IR's ops: broadcasting, the geometry of a matrix product, a
//! convolution and a pool (padding, output size, the windows' clipping), derived from an op
//! and its input's shape.

use super::ops::{Op, Padding};
use super::shape::{Shape, fmt_shape};

/// numpy's broadcast of two per-example shapes (aligned at the right; an axis of 1 stretches),
/// or `None` when an axis differs and neither is 1.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Shape> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        let pad = r - s.len();
        if i < pad { 1 } else { s[i - pad] }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// For each axis of `out`, the row-major stride of `x` along it when `x` broadcasts to `out`
/// (aligned at the right): 0 where `x` has no such axis or has 1 there.
pub fn broadcast_strides(out: &[usize], x: &[usize]) -> Vec<usize> {
    let pad = out.len() - x.len();
    let mut st = vec![0; out.len()];
    let mut s = 1;
    for i in (0..x.len()).rev() {
        if x[i] != 1 {
            st[pad + i] = s;
        }
        s *= x[i];
    }
    st
}

/// The geometry of a batched matrix product `[.., m, k] x [.., k, n]` per example: `mats`
/// products, the left operand's matrices `a_step` elements apart and the right's `b_step` (0:
/// one matrix shared by all, broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulGeom {
    pub mats: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_step: usize,
    pub b_step: usize,
}

impl MatMulGeom {
    /// The geometry of `a x b`, or why it has none: both at least 2-D, inner lengths equal,
    /// leading axes equal or those of one side all 1 (broadcast).
    pub fn of(a: &[usize], b: &[usize]) -> Result<(MatMulGeom, Shape), String> {
        if a.len() < 2 || b.len() < 2 {
            return Err(format!(
                "both operands must be at least 2-D per example, got {} and {}",
                fmt_shape(a),
                fmt_shape(b)
            ));
        }
        let (la, lb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let (m, k, k2, n) = (
            a[a.len() - 2],
            a[a.len() - 1],
            b[b.len() - 2],
            b[b.len() - 1],
        );
        if k != k2 {
            return Err(format!(
                "inner lengths differ: {} x {}",
                fmt_shape(a),
                fmt_shape(b)
            ));
        }
        let (pa, pb) = (la.iter().product::<usize>(), lb.iter().product::<usize>());
        let strip = |l: &[usize]| {
            l.iter()
                .copied()
                .skip_while(|&d| d == 1)
                .collect::<Vec<_>>()
        };
        let lead: Vec<usize> = if strip(la) == strip(lb) {
            if la.len() >= lb.len() {
                la.to_vec()
            } else {
                lb.to_vec()
            }
        } else if pb == 1 {
            let mut l = la.to_vec();
            l.splice(
                0..0,
                std::iter::repeat_n(1, lb.len().saturating_sub(la.len())),
            );
            l
        } else if pa == 1 {
            let mut l = lb.to_vec();
            l.splice(
                0..0,
                std::iter::repeat_n(1, la.len().saturating_sub(lb.len())),
            );
            l
        } else {
            return Err(format!(
                "leading axes {} and {} must be equal, or one side's all 1 (greenbench broadcasts a whole side, not single axes)",
                fmt_shape(la),
                fmt_shape(lb)
            ));
        };
        let mats = lead.iter().product::<usize>();
        let mut out = lead;
        out.extend([m, n]);
        let geom = MatMulGeom {
            mats,
            m,
            k,
            n,
            a_step: if pa == 1 { 0 } else { m * k },
            b_step: if pb == 1 { 0 } else { k * n },
        };
        Ok((geom, out))
    }
}

/// Resolved geometry of a convolution node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub ho: usize,
    pub wo: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_bottom: usize,
    pub pad_left: usize,
    pub pad_right: usize,
    pub groups: usize,
}

impl ConvGeom {
    /// True for a depthwise convolution (groups == Cin == Cout).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.cin && self.cout == self.cin && self.groups > 1
    }
    /// True for a 1x1, stride 1, unpadded, ungrouped convolution (a plain GEMM).
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.groups == 1
            && self.pad_top + self.pad_bottom + self.pad_left + self.pad_right == 0
    }
    /// True for a grouped (not depthwise) convolution whose groups are each pointwise: one
    /// plain GEMM per group.
    pub fn is_grouped_pointwise(&self) -> bool {
        self.groups > 1 && !self.is_depthwise() && ConvGeom { groups: 1, ..*self }.is_pointwise()
    }
}

/// Resolved geometry of a pooling node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad_bottom: usize,
    pub pad_right: usize,
    /// Average pooling divides by the window clipped to the padded image (not to the image).
    pub count_include_pad: bool,
}

/// The part of a window `[start, start + k)` (in unpadded coordinates, start may be negative)
/// inside `[lo, hi)`.
#[inline]
pub(super) fn clip(start: isize, k: usize, lo: isize, hi: isize) -> std::ops::Range<usize> {
    let a = start.max(lo);
    let b = (start + k as isize).min(hi);
    if b <= a {
        return 0..0;
    }
    (a.max(0) as usize)..(b.max(0) as usize)
}

impl PoolGeom {
    /// True when every window lies inside the image (no padding, no partial window).
    pub fn is_unpadded(&self) -> bool {
        self.pad_top + self.pad_left == 0
            && (self.ho - 1) * self.sh + self.kh <= self.h
            && (self.wo - 1) * self.sw + self.kw <= self.w
    }
    /// The input rows under output row `oy`'s window, clipped to the image.
    #[inline]
    pub fn rows(&self, oy: usize) -> std::ops::Range<usize> {
        let s = (oy * self.sh) as isize - self.pad_top as isize;
        clip(s, self.kh, 0, self.h as isize)
    }
    /// The input columns under output column `ox`'s window, clipped to the image.
    #[inline]
    pub fn cols(&self, ox: usize) -> std::ops::Range<usize> {
        let s = (ox * self.sw) as isize - self.pad_left as isize;
        clip(s, self.kw, 0, self.w as isize)
    }
    /// What average pooling divides the window's sum by at `(oy, ox)`.
    pub fn divisor(&self, oy: usize, ox: usize) -> usize {
        if self.count_include_pad {
            let sy = (oy * self.sh) as isize - self.pad_top as isize;
            let sx = (ox * self.sw) as isize - self.pad_left as isize;
            let ny = ((sy + self.kh as isize).min((self.h + self.pad_bottom) as isize)
                - sy.max(-(self.pad_top as isize)))
            .max(0) as usize;
            let nx = ((sx + self.kw as isize).min((self.w + self.pad_right) as isize)
                - sx.max(-(self.pad_left as isize)))
            .max(0) as usize;
            ny * nx
        } else {
            self.rows(oy).len() * self.cols(ox).len()
        }
    }
}

/// TensorFlow "same" padding along one axis: (out, before, after).
pub fn same_padding(input: usize, k: usize, s: usize) -> (usize, usize, usize) {
    let out = input.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(input);
    (out, total / 2, total - total / 2)
}

pub(super) fn conv_geom(op: &Op, x: &[usize]) -> Option<ConvGeom> {
    let Op::Conv2d {
        filters,
        kernel,
        stride,
        padding,
        groups,
        ..
    } = op
    else {
        return None;
    };
    let [h, w, cin] = *x else { return None };
    let [kh, kw] = *kernel;
    let [sh, sw] = *stride;
    let (ho, pt, pb, wo, pl, pr) = match padding {
        Padding::Same => {
            let (ho, pt, pb) = same_padding(h, kh, sh);
            let (wo, pl, pr) = same_padding(w, kw, sw);
            (ho, pt, pb, wo, pl, pr)
        }
        Padding::Valid | Padding::Explicit { .. } => {
            let (pt, pb, pl, pr) = match padding {
                Padding::Explicit {
                    top,
                    bottom,
                    left,
                    right,
                } => (*top, *bottom, *left, *right),
                _ => (0, 0, 0, 0),
            };
            let hp = h + pt + pb;
            let wp = w + pl + pr;
            if hp < kh || wp < kw || sh == 0 || sw == 0 {
                return None;
            }
            ((hp - kh) / sh + 1, pt, pb, (wp - kw) / sw + 1, pl, pr)
        }
    };
    Some(ConvGeom {
        h,
        w,
        cin,
        ho,
        wo,
        cout: *filters,
        kh,
        kw,
        sh,
        sw,
        pad_top: pt,
        pad_bottom: pb,
        pad_left: pl,
        pad_right: pr,
        groups: *groups,
    })
}

/// Pooled length along one axis: floor or ceil mode (a ceil-mode window must start inside
/// the image or its leading padding).
fn pooled(
    input: usize,
    k: usize,
    s: usize,
    before: usize,
    after: usize,
    ceil: bool,
) -> Option<usize> {
    let span = (input + before + after).checked_sub(k)?;
    let mut o = if ceil {
        span.div_ceil(s) + 1
    } else {
        span / s + 1
    };
    if ceil && (o - 1) * s >= input + before {
        o -= 1;
    }
    Some(o)
}

/// The geometry of a pooling op over a per-example `[H, W, C]` input; `None` if the op is not
/// a pool or its window does not fit.
pub fn pool_geometry(op: &Op, x: &[usize]) -> Option<PoolGeom> {
    pool_geom(op, x)
}

pub(super) fn pool_geom(op: &Op, x: &[usize]) -> Option<PoolGeom> {
    let (kernel, stride, padding, ceil, cip) = match op {
        Op::MaxPool {
            kernel,
            stride,
            padding,
            ceil_mode,
        } => (kernel, stride, padding, *ceil_mode, false),
        Op::AvgPool {
            kernel,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        } => (kernel, stride, padding, *ceil_mode, *count_include_pad),
        _ => return None,
    };
    let [h, w, c] = *x else { return None };
    let [kh, kw] = *kernel;
    let [sh, sw] = *stride;
    if sh == 0 || sw == 0 || kh == 0 || kw == 0 {
        return None;
    }
    let (pt, pb, pl, pr) = match padding {
        Padding::Valid => (0, 0, 0, 0),
        Padding::Same => {
            let (_, t, b) = same_padding(h, kh, sh);
            let (_, l, r) = same_padding(w, kw, sw);
            (t, b, l, r)
        }
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => (*top, *bottom, *left, *right),
    };
    // A pad as large as the window would make windows of padding only.
    if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
        return None;
    }
    Some(PoolGeom {
        h,
        w,
        c,
        ho: pooled(h, kh, sh, pt, pb, ceil)?,
        wo: pooled(w, kw, sw, pl, pr, ceil)?,
        kh,
        kw,
        sh,
        sw,
        pad_top: pt,
        pad_left: pl,
        pad_bottom: pb,
        pad_right: pr,
        count_include_pad: cip,
    })
}
