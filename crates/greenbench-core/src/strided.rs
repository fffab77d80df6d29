//! Strided index maps: how the broadcasting and transposing ops ([`Op::Binary`],
//! [`Op::Transpose`]) walk their operands while writing their output in row-major order. The
//! batch is the first axis; axes every operand walks contiguously are merged, so a typical map
//! has one to three axes and its last axis is a run a kernel loops over.
//!
//! [`Op::Binary`]: crate::graph::Op::Binary
//! [`Op::Transpose`]: crate::graph::Op::Transpose

use crate::graph::broadcast_strides;

/// An output of `dims` (row-major) and, per operand, its stride along each output axis (0:
/// broadcast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strided {
    pub dims: Vec<usize>,
    pub strides: Vec<Vec<usize>>,
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for ax in (0..shape.len().saturating_sub(1)).rev() {
        st[ax] = st[ax + 1] * shape[ax + 1];
    }
    st
}

impl Strided {
    /// `batch` examples of `a op b` (per-example shapes `a`, `b`, broadcast to `out`).
    pub fn binary(out: &[usize], a: &[usize], b: &[usize], batch: usize) -> Strided {
        Self::operands(out, &[(a, true), (b, true)], batch)
    }

    /// `batch` examples of `x op c` with a constant `c` (one for every example), or of
    /// `c op x` when `left` (then `c` is operand 0).
    pub fn with_constant(
        out: &[usize],
        x: &[usize],
        c: &[usize],
        left: bool,
        batch: usize,
    ) -> Strided {
        if left {
            Self::operands(out, &[(c, false), (x, true)], batch)
        } else {
            Self::operands(out, &[(x, true), (c, false)], batch)
        }
    }

    /// Operands of per-example shapes broadcast to `out`; each either has its own values per
    /// example (`true`) or one set for all.
    fn operands(out: &[usize], ops: &[(&[usize], bool)], batch: usize) -> Strided {
        let mut dims = vec![batch];
        dims.extend_from_slice(out);
        let strides = ops
            .iter()
            .map(|&(x, per_example)| {
                let mut s = vec![if per_example { x.iter().product() } else { 0 }];
                s.extend(broadcast_strides(out, x));
                s
            })
            .collect();
        Strided { dims, strides }.simplified()
    }

    /// `batch` examples of `x` (per-example shape) with its axes permuted by `perm`.
    pub fn transpose(x: &[usize], perm: &[usize], batch: usize) -> Strided {
        let st = row_major(x);
        let mut dims = vec![batch];
        dims.extend(perm.iter().map(|&p| x[p]));
        let mut s = vec![x.iter().product()];
        s.extend(perm.iter().map(|&p| st[p]));
        Strided {
            dims,
            strides: vec![s],
        }
        .simplified()
    }

    /// Axes of length 1 dropped; an axis merged into the next where every operand walks the
    /// pair as one axis.
    fn simplified(self) -> Strided {
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<usize>> = vec![Vec::new(); self.strides.len()];
        for ax in 0..self.dims.len() {
            let d = self.dims[ax];
            if d == 1 {
                continue;
            }
            let merge = !dims.is_empty()
                && self
                    .strides
                    .iter()
                    .zip(&strides)
                    .all(|(s, kept)| *kept.last().expect("kept axis") == s[ax] * d);
            if merge {
                *dims.last_mut().expect("kept axis") *= d;
                for (s, kept) in self.strides.iter().zip(strides.iter_mut()) {
                    *kept.last_mut().expect("kept axis") = s[ax];
                }
            } else {
                dims.push(d);
                for (s, kept) in self.strides.iter().zip(strides.iter_mut()) {
                    kept.push(s[ax]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            strides.iter_mut().for_each(|s| s.push(0));
        }
        Strided { dims, strides }
    }

    /// Elements of the output.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
    /// True for an empty output (never, for a validated graph).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The length of a run (the last axis).
    pub fn run(&self) -> usize {
        *self.dims.last().expect("at least one axis")
    }
    /// Operand `k`'s stride along a run.
    pub fn inner(&self, k: usize) -> usize {
        *self.strides[k].last().expect("at least one axis")
    }

    /// Call `f(out_offset, operand_offsets)` for each run, in output order.
    pub fn runs(&self, mut f: impl FnMut(usize, &[usize])) {
        let r = self.dims.len();
        let n = self.run();
        let outer = &self.dims[..r - 1];
        let count: usize = outer.iter().product();
        let mut idx = vec![0usize; r - 1];
        let mut offs = vec![0usize; self.strides.len()];
        for run in 0..count {
            f(run * n, &offs);
            // Odometer over the outer axes, keeping the operand offsets in step.
            for ax in (0..r - 1).rev() {
                idx[ax] += 1;
                for (o, s) in offs.iter_mut().zip(&self.strides) {
                    *o += s[ax];
                }
                if idx[ax] < outer[ax] {
                    break;
                }
                for (o, s) in offs.iter_mut().zip(&self.strides) {
                    *o -= s[ax] * outer[ax];
                }
                idx[ax] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_axes_merge_and_broadcasts_stay() {
        // [S, D] + [D]: each example has its own b (batch stride 8), broadcast over S.
        let p = Strided::binary(&[5, 8], &[5, 8], &[8], 3);
        assert_eq!(p.dims, vec![3, 5, 8]);
        assert_eq!(p.strides, vec![vec![40, 8, 1], vec![8, 0, 1]]);
        // Equal shapes: one run over the whole batch.
        let p = Strided::binary(&[4, 6], &[4, 6], &[4, 6], 2);
        assert_eq!(p.dims, vec![48]);
        // [S, 1] against [S, D]: the run broadcasts b.
        let p = Strided::binary(&[5, 8], &[5, 8], &[5, 1], 1);
        assert_eq!(p.dims, vec![5, 8]);
        assert_eq!(p.strides[1], vec![1, 0]);
        // A transpose of the last two axes walks the input with stride 6 along a run.
        let p = Strided::transpose(&[2, 4, 6], &[0, 2, 1], 3);
        assert_eq!(p.dims, vec![6, 6, 4]);
        assert_eq!(p.strides, vec![vec![24, 1, 6]]);
        // A constant [D] added to [S, D]: broadcast over the batch and S, one run of D.
        let p = Strided::with_constant(&[5, 8], &[5, 8], &[8], false, 3);
        assert_eq!(p.dims, vec![15, 8]);
        assert_eq!(p.strides, vec![vec![8, 1], vec![0, 1]]);
        // Identity permutation: one run.
        assert_eq!(Strided::transpose(&[2, 3], &[0, 1], 4).dims, vec![24]);
    }

    #[test]
    fn runs_visit_every_output_once_with_the_right_offsets() {
        let p = Strided::transpose(&[2, 3, 4], &[2, 0, 1], 2);
        let mut seen = Vec::new();
        p.runs(|o, offs| {
            for j in 0..p.run() {
                seen.push((o + j, offs[0] + j * p.inner(0)));
            }
        });
        // Output (n, c, a, b) of x (n, a, b, c): offset n*24 + a*12 + b*4 + c.
        let mut want = Vec::new();
        for n in 0..2 {
            for c in 0..4 {
                for a in 0..2 {
                    for b in 0..3 {
                        want.push(n * 24 + a * 12 + b * 4 + c);
                    }
                }
            }
        }
        let got: Vec<usize> = seen.iter().map(|s| s.1).collect();
        assert_eq!(got, want);
        assert!(seen.iter().enumerate().all(|(i, s)| s.0 == i));
    }
}
