//! Array ops: flatten, reshape, squeeze and unsqueeze, transpose, gather, slice, split and
//! concat on activations (on constants they are folded).

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::decode::Tensor;
use crate::proto::NodeProto;
use greenbench_core::graph::{Op, fmt_shape};
use ndarray::{ArrayD, IxDyn};

/// This family's ops.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Concat", |i, n| i.concat(n)),
    ("Flatten", |i, n| i.flatten(n)),
    ("Gather", |i, n| i.gather(n)),
    ("Reshape", |i, n| i.reshape(n)),
    ("Slice", |i, n| i.slice(n)),
    ("Split", |i, n| i.split(n)),
    ("Squeeze", |i, n| i.squeeze(n)),
    ("Transpose", |i, n| i.transpose(n)),
    ("Unsqueeze", |i, n| i.squeeze(n)),
];

impl Importer<'_> {
    /// Flatten everything but the batch.
    pub(super) fn flatten_act(&mut self, n: &NodeProto, x: Act) -> Act {
        let len: usize = x.dims.iter().product();
        let layout = match x.layout {
            Layout::Chw { c, h, w } if x.layout.gather().is_some() => Layout::Flat { c, h, w },
            Layout::Flat { .. } => x.layout,
            _ => Layout::Plain,
        };
        let ir = if x.ir_shape.len() > 1 {
            self.emit(&Self::node_name(n), Op::Flatten, vec![x.ir], vec![])
        } else {
            x.ir
        };
        Act {
            ir,
            dims: vec![len],
            layout,
            ir_shape: vec![len],
        }
    }

    pub(super) fn flatten(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let a = attr_i(n, "axis", 1);
        if axis(a, x.dims.len() + 1).ok() != Some(1) {
            return Err(self.node_err(
                n,
                format!("Flatten at axis {a}: only axis 1 (keep the batch) is supported"),
            ));
        }
        let y = self.flatten_act(n, x);
        self.set(n, Val::Act(y));
        Ok(())
    }

    pub(super) fn reshape(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let shape =
            i64_values(&self.need_const(n, 1, "the shape")?).map_err(|m| self.node_err(n, m))?;
        if shape.is_empty() {
            return Err(self.node_err(n, "reshape to a scalar drops the batch"));
        }
        // The first entry must stay the batch.
        let fixed = self.fixed_batch.map(|b| b as i64);
        let per: Vec<i64> = shape[1..].to_vec();
        let lead_ok = shape[0] == BATCH
            || shape[0] == 0
            || Some(shape[0]) == fixed
            || shape[0] == -1 && !per.contains(&-1);
        if !lead_ok || per.contains(&BATCH) {
            return Err(self.node_err(
                n,
                format!(
                    "reshape to {} does not keep the batch as the first dimension",
                    fmt_i64s(&shape)
                ),
            ));
        }
        let dims = resolve_reshape(&x.dims, &per, attr_i(n, "allowzero", 0) != 0)
            .map_err(|m| self.node_err(n, m))?;
        self.reshape_to(n, x, dims)
    }

    /// Squeeze / Unsqueeze of an activation: a reshape that adds or removes unit axes (never
    /// the batch).
    pub(super) fn squeeze(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let axes: Vec<i64> = match self.input_val(n, 1)? {
            Some(Val::Const(t)) => i64_values(t).map_err(|m| self.node_err(n, m))?,
            Some(_) => return Err(self.node_err(n, "axes must be a constant")),
            None => attr_ints(n, "axes").unwrap_or_default(),
        };
        let full: Vec<usize> = std::iter::once(1).chain(x.dims.iter().copied()).collect();
        let out = if n.op_type.as_deref() == Some("Unsqueeze") {
            let r = full.len() + axes.len();
            let mut ax: Vec<usize> = axes
                .iter()
                .map(|&a| axis(a, r))
                .collect::<Result<_, _>>()
                .map_err(|m| self.node_err(n, m))?;
            ax.sort();
            let mut d = full.clone();
            for a in ax {
                if a == 0 {
                    return Err(self.node_err(n, "a new axis before the batch"));
                }
                d.insert(a, 1);
            }
            d
        } else {
            let r = full.len();
            let ax: Vec<usize> = if axes.is_empty() {
                (1..r).filter(|&a| full[a] == 1).collect()
            } else {
                axes.iter()
                    .map(|&a| axis(a, r))
                    .collect::<Result<_, _>>()
                    .map_err(|m| self.node_err(n, m))?
            };
            if ax.iter().any(|&a| a == 0 || full[a] != 1) {
                return Err(self.node_err(
                    n,
                    format!("squeezes axes {axes:?} of [N, {}]", fmt_shape(&x.dims)),
                ));
            }
            full.iter()
                .enumerate()
                .filter(|(a, _)| !ax.contains(a))
                .map(|(_, &d)| d)
                .collect()
        };
        if out.len() < 2 {
            return Err(self.node_err(n, "leaves only the batch axis"));
        }
        self.reshape_to(n, x, out[1..].to_vec())
    }

    pub(super) fn reshape_to(
        &mut self,
        n: &NodeProto,
        x: Act,
        dims: Vec<usize>,
    ) -> Result<(), ImportError> {
        if dims == x.dims {
            self.set(n, Val::Act(x));
            return Ok(());
        }
        if dims.len() == 1 {
            let y = self.flatten_act(n, x);
            self.set(n, Val::Act(y));
            return Ok(());
        }
        // Adding or removing unit axes of a row-major tensor keeps its memory.
        let squeeze = |d: &[usize]| d.iter().copied().filter(|&v| v != 1).collect::<Vec<_>>();
        // (Ops that work on a last axis check that the IR's and the file's agree.)
        if matches!(x.layout, Layout::Plain) && squeeze(&dims) == squeeze(&x.dims) {
            self.set(n, Val::Act(Act { dims, ..x }));
            return Ok(());
        }
        // [C] -> [C, 1, 1]: a per-channel vector as an NCHW map (torch's `s.view(N, C, 1, 1)`).
        if let [c, 1, 1] = dims[..]
            && x.ir_shape == [c]
            && x.layout.gather().is_none()
        {
            let layout = Layout::Chw { c, h: 1, w: 1 };
            self.set(n, Val::Act(Act { dims, layout, ..x }));
            return Ok(());
        }
        // Anything else: the file's element order, reshaped.
        let name = Self::node_name(n);
        let x = self.plain_of(&name, x);
        let y = self.reshape_plain(&name, x, dims);
        self.set(n, Val::Act(y));
        Ok(())
    }

    pub(super) fn transpose(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let perm =
            attr_ints(n, "perm").unwrap_or_else(|| (0..=x.dims.len() as i64).rev().collect());
        let y = match (x.layout, perm.as_slice(), x.dims.as_slice()) {
            // NHWC -> NCHW: the IR already holds [H, W, C].
            (Layout::Plain, [0, 3, 1, 2], &[h, w, c]) if x.ir_shape == [h, w, c] => Act {
                dims: vec![c, h, w],
                layout: Layout::Chw { c, h, w },
                ..x
            },
            // NCHW -> NHWC.
            (Layout::Chw { c, h, w }, [0, 2, 3, 1], _) if x.ir_shape == [h, w, c] => Act {
                dims: vec![h, w, c],
                layout: Layout::Plain,
                ..x
            },
            // A 1-D convolution's [C, L] -> [L, C] (Whisper's permute): the IR already holds
            // [1, L, C], a reshape away.
            (Layout::Chw { c, h: 1, w }, [0, 2, 1], &[_, _]) if x.ir_shape == [1, w, c] => {
                let ir = self.emit(
                    &Self::node_name(n),
                    Op::Reshape { shape: vec![w, c] },
                    vec![x.ir],
                    vec![],
                );
                Act {
                    ir,
                    dims: vec![w, c],
                    layout: Layout::Plain,
                    ir_shape: vec![w, c],
                }
            }
            _ if perm.iter().enumerate().all(|(i, &p)| p == i as i64) => x,
            _ => {
                let r = x.dims.len() + 1;
                let mut seen = vec![false; r];
                let valid = perm.len() == r
                    && perm.iter().all(|&p| {
                        (0..r as i64).contains(&p)
                            && !std::mem::replace(&mut seen[p as usize], true)
                    });
                if !valid || perm[0] != 0 {
                    return Err(self.node_err(
                        n,
                        format!(
                            "transpose {perm:?} of [N, {} must permute the axes after the batch",
                            fmt_shape(&x.dims).trim_start_matches('[')
                        ),
                    ));
                }
                let name = Self::node_name(n);
                let x = self.plain_of(&name, x);
                let p: Vec<usize> = perm[1..].iter().map(|&a| a as usize - 1).collect();
                self.transpose_plain(&name, x, p)
            }
        };
        self.set(n, Val::Act(y));
        Ok(())
    }

    pub(super) fn gather(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let table = match self.need(n, 0)? {
            Val::Const(t) => t.clone(),
            Val::Act(x) => {
                let x = x.clone();
                return self.gather_entry(n, x);
            }
            _ => {
                return Err(self.node_err(n, "gathering from an activation is not supported (embedding lookups from a constant table are)"));
            }
        };
        let ids = self.need_act(n, 1)?;
        let is_ids = ids.ir == "input" || self.integral.contains(&ids.ir);
        if attr_i(n, "axis", 0) != 0 || table.dims.len() != 2 || !is_ids || ids.dims.len() != 1 {
            return Err(self.node_err(
                n,
                "only an embedding lookup (axis 0 of a [vocab, dim] table, indexed by one of the model's [N, S] integer inputs) is supported",
            ));
        }
        let (vocab, dim) = (table.dims[0], table.dims[1]);
        let v = self.vocabs.entry(ids.ir.clone()).or_insert(vocab);
        *v = (*v).min(vocab);
        let ws = vec![ArrayD::from_shape_vec(IxDyn(&[vocab, dim]), table.to_f32()).expect("sized")];
        let op = Op::Embedding {
            vocab,
            dim,
            positions: false,
        };
        let name = self.emit(&Self::node_name(n), op, vec![ids.ir], ws);
        self.set(
            n,
            Val::Act(Act {
                ir: name,
                dims: vec![ids.dims[0], dim],
                layout: Layout::Plain,
                ir_shape: vec![ids.dims[0], dim],
            }),
        );
        Ok(())
    }

    /// Constant input `k` of `n` (`[1, ...]`: one value for every example) as an IR constant.
    fn constant_act(&mut self, n: &NodeProto, k: usize, t: &Tensor) -> Result<Act, ImportError> {
        let per = match t.dims.split_first() {
            Some((1, per)) if !per.is_empty() => per.to_vec(),
            _ => {
                return Err(self.node_err(
                    n,
                    format!(
                        "input {k} is a constant of dims {:?}: greenbench concatenates a constant that is the same for every example ([1, ...], e.g. expanded to the batch)",
                        t.dims
                    ),
                ));
            }
        };
        let w = ArrayD::from_shape_vec(IxDyn(&per), t.to_f32()).expect("sized");
        let base = format!("{}_const{k}", Self::node_name(n));
        let op = Op::Constant { shape: per.clone() };
        let ir = self.emit(&base, op, vec!["input".into()], vec![w]);
        Ok(Act {
            ir,
            dims: per.clone(),
            layout: Layout::Plain,
            ir_shape: per,
        })
    }

    /// `Gather` of an activation at one constant index on any axis but the batch (BERT's
    /// pooler and ViT's head read token 0: `x[:, 0]`): a slice, the axis dropped for a scalar
    /// index.
    fn gather_entry(&mut self, n: &NodeProto, x: Act) -> Result<(), ImportError> {
        let idx = self.need_const(n, 1, "the index")?;
        let at = i64_values(&idx).map_err(|m| self.node_err(n, m))?;
        let [at] = at[..] else {
            return Err(self.node_err(
                n,
                "gathering several entries of an activation is not supported (one constant index is)",
            ));
        };
        let ax = axis(attr_i(n, "axis", 0), x.dims.len() + 1).map_err(|m| self.node_err(n, m))?;
        if ax == 0 {
            return Err(self.node_err(n, "gathering along the batch axis"));
        }
        let len = x.dims[ax - 1] as i64;
        let i = if at < 0 { at + len } else { at };
        if !(0..len).contains(&i) {
            return Err(self.node_err(
                n,
                format!("index {at} is outside axis {ax} of length {len}"),
            ));
        }
        let name = Self::node_name(n);
        let y = self.slice_act(n, &x, ax, i as usize, 1, &name)?;
        let mut dims = y.dims.clone();
        if idx.dims.is_empty() {
            dims.remove(ax - 1);
            if dims.is_empty() {
                return Err(self.node_err(n, "leaves only the batch axis"));
            }
        }
        self.reshape_to(n, y, dims)
    }

    /// `len` entries from `start` of ONNX axis `ax` of `x`, as an IR slice.
    pub(super) fn slice_act(
        &mut self,
        n: &NodeProto,
        x: &Act,
        ax: usize,
        start: usize,
        len: usize,
        base: &str,
    ) -> Result<Act, ImportError> {
        let ia = self.ir_axis(n, x, ax)?;
        if start == 0 && len == x.dims[ax - 1] {
            return Ok(x.clone());
        }
        let ir = self.emit(
            base,
            Op::Slice {
                axis: ia,
                start,
                len,
            },
            vec![x.ir.clone()],
            vec![],
        );
        let mut dims = x.dims.clone();
        dims[ax - 1] = len;
        let mut ir_shape = x.ir_shape.clone();
        ir_shape[ia] = len;
        let layout = match x.layout {
            Layout::Chw { .. } => Layout::Chw {
                c: dims[0],
                h: dims[1],
                w: dims[2],
            },
            other => other,
        };
        Ok(Act {
            ir,
            dims,
            layout,
            ir_shape,
        })
    }

    pub(super) fn slice(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let ints = |me: &Self, k: usize| -> Result<Option<Vec<i64>>, ImportError> {
            match me.input_val(n, k)? {
                Some(Val::Const(t)) => Ok(Some(i64_values(t).map_err(|m| me.node_err(n, m))?)),
                Some(_) => Err(me.node_err(n, "starts, ends, axes and steps must be constants")),
                None => Ok(None),
            }
        };
        let (starts, ends, axes, steps) = if self.opset < 10 {
            (
                attr_ints(n, "starts").unwrap_or_default(),
                attr_ints(n, "ends").unwrap_or_default(),
                attr_ints(n, "axes"),
                None,
            )
        } else {
            (
                ints(self, 1)?.unwrap_or_default(),
                ints(self, 2)?.unwrap_or_default(),
                ints(self, 3)?,
                ints(self, 4)?,
            )
        };
        let r = x.dims.len() + 1;
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| axis(v, r))
                .collect::<Result<_, _>>()
                .map_err(|m| self.node_err(n, m))?,
            None => (0..starts.len()).collect(),
        };
        if starts.len() != axes.len() || ends.len() != axes.len() {
            return Err(self.node_err(n, "starts, ends and axes differ in length"));
        }
        if steps.is_some_and(|s| s.iter().any(|&v| v != 1)) {
            return Err(self.node_err(n, "a step other than 1"));
        }
        let mut cur = x;
        for (k, &ax) in axes.iter().enumerate() {
            if ax == 0 {
                return Err(self.node_err(n, "a slice of the batch axis"));
            }
            let d = cur.dims[ax - 1] as i64;
            let clampi = |v: i64| (if v < 0 { v + d } else { v }).clamp(0, d) as usize;
            let (lo, hi) = (clampi(starts[k]), clampi(ends[k]));
            if hi <= lo {
                return Err(self.node_err(n, format!("an empty slice of axis {ax}")));
            }
            let base = Self::node_name(n);
            cur = self.slice_act(n, &cur, ax, lo, hi - lo, &base)?;
        }
        self.set(n, Val::Act(cur));
        Ok(())
    }

    /// Split: one IR slice per output.
    pub(super) fn split(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let r = x.dims.len() + 1;
        let ax = axis(attr_i(n, "axis", 0), r).map_err(|m| self.node_err(n, m))?;
        if ax == 0 {
            return Err(self.node_err(n, "a split of the batch axis"));
        }
        let total = x.dims[ax - 1];
        let outs = n.output.len();
        let sizes: Vec<usize> = match self.input_val(n, 1)? {
            Some(Val::Const(t)) => i64_values(t)
                .map_err(|m| self.node_err(n, m))?
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect(),
            Some(_) => return Err(self.node_err(n, "split sizes must be constants")),
            None => match attr_ints(n, "split") {
                Some(v) => v.iter().map(|&v| v.max(0) as usize).collect(),
                None => {
                    let parts = outs.max(1);
                    let each = total.div_ceil(parts);
                    (0..parts)
                        .map(|k| each.min(total.saturating_sub(k * each)))
                        .collect()
                }
            },
        };
        if sizes.len() != outs || sizes.iter().sum::<usize>() != total || sizes.contains(&0) {
            return Err(self.node_err(
                n,
                format!("split sizes {sizes:?} do not cut {total} into {outs} parts"),
            ));
        }
        let mut start = 0;
        for (k, &len) in sizes.iter().enumerate() {
            let base = format!("{}_{k}", Self::node_name(n));
            let part = self.slice_act(n, &x, ax, start, len, &base)?;
            self.vals.insert(n.output[k].clone(), Val::Act(part));
            start += len;
        }
        Ok(())
    }

    pub(super) fn concat(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let mut parts: Vec<Act> = vec![];
        for k in (0..n.input.len()).filter(|&k| !n.input[k].is_empty()) {
            let part = match self.need(n, k)? {
                // A constant the same for every example (ViT's class token): an IR constant.
                Val::Const(t) => {
                    let t = t.clone();
                    self.constant_act(n, k, &t)?
                }
                _ => self.need_act(n, k)?,
            };
            parts.push(part);
        }
        let first = parts
            .first()
            .ok_or_else(|| self.node_err(n, "no inputs"))?
            .clone();
        let r = first.dims.len() + 1;
        let ax = axis(attr_i(n, "axis", 1), r).map_err(|m| self.node_err(n, m))?;
        if ax == 0 {
            return Err(self.node_err(n, "concatenation along the batch axis"));
        }
        let image = matches!(first.layout, Layout::Chw { .. }) && first.ir_shape.len() == 3;
        let plain = |a: &Act| matches!(a.layout, Layout::Plain) && a.ir_shape == a.dims;
        let ir_axis = if image {
            // ONNX [C, H, W] -> IR [H, W, C]
            [2, 0, 1][ax - 1]
        } else {
            ax - 1
        };
        for p in &parts {
            let same_kind = if image {
                matches!(p.layout, Layout::Chw { .. }) && p.ir_shape.len() == 3
            } else {
                plain(p)
            };
            if !same_kind || p.dims.len() != first.dims.len() {
                return Err(self.node_err(
                    n,
                    format!(
                        "concatenates {} with {}: greenbench concatenates NCHW images or row-major tensors of one kind",
                        fmt_shape(&first.dims),
                        fmt_shape(&p.dims)
                    ),
                ));
            }
        }
        let mut dims = first.dims.clone();
        dims[ax - 1] = parts.iter().map(|p| p.dims[ax - 1]).sum();
        let mut ir_shape = first.ir_shape.clone();
        ir_shape[ir_axis] = parts.iter().map(|p| p.ir_shape[ir_axis]).sum();
        let layout = if image {
            Layout::Chw {
                c: dims[0],
                h: dims[1],
                w: dims[2],
            }
        } else {
            Layout::Plain
        };
        let ins: Vec<String> = parts.iter().map(|p| p.ir.clone()).collect();
        let ir = self.emit(
            &Self::node_name(n),
            Op::Concat { axis: ir_axis },
            ins,
            vec![],
        );
        self.set(
            n,
            Val::Act(Act {
                ir,
                dims,
                layout,
                ir_shape,
            }),
        );
        Ok(())
    }
}
