//! Elementwise ops and reductions: additions (residuals, biases, per-channel constants),
//! products and quotients, activations, clipping, softmax, mean.

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::decode::Tensor;
use crate::proto::NodeProto;
use greenbench_core::graph::{BinOp, MathFn, Op, fmt_shape};
use ndarray::{ArrayD, IxDyn};

/// This family's ops.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Abs", |i, n| i.math(n)),
    ("Add", |i, n| i.add(n)),
    ("Clip", |i, n| i.clip(n)),
    ("Div", |i, n| i.arith(n)),
    ("Erf", |i, n| i.unary(n, Op::Math { f: MathFn::Erf })),
    ("Exp", |i, n| i.math(n)),
    ("Gelu", |i, n| i.gelu(n)),
    ("HardSigmoid", |i, n| {
        let (alpha, beta) = (attr_f(n, "alpha", 0.2), attr_f(n, "beta", 0.5));
        i.unary(n, Op::HardSigmoid { alpha, beta })
    }),
    ("HardSwish", |i, n| i.unary(n, Op::HardSwish)),
    ("LeakyRelu", |i, n| {
        let alpha = attr_f(n, "alpha", 0.01);
        i.unary(n, Op::LeakyRelu { alpha })
    }),
    ("Log", |i, n| i.math(n)),
    ("Mul", |i, n| i.arith(n)),
    ("Neg", |i, n| i.math(n)),
    ("Pow", |i, n| i.alone(n)),
    ("Reciprocal", |i, n| i.math(n)),
    ("ReduceMean", |i, n| i.reduce_mean(n)),
    ("Relu", |i, n| i.unary(n, Op::Relu)),
    ("Sigmoid", |i, n| i.unary(n, Op::Sigmoid)),
    ("Sign", |i, n| i.math(n)),
    ("Softmax", |i, n| i.softmax(n)),
    ("Sqrt", |i, n| i.math(n)),
    ("Sub", |i, n| i.arith(n)),
    ("Sum", |i, n| i.add(n)),
    ("Tanh", |i, n| i.unary(n, Op::Tanh)),
    ("Where", |i, n| i.where_act(n)),
];

impl Importer<'_> {
    /// Opset 20's GELU op: exact, or GPT-2's tanh form.
    fn gelu(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        match attr_s(n, "approximate").as_deref() {
            None | Some("none") => self.unary(n, Op::GeluErf),
            Some("tanh") => self.unary(n, Op::Gelu),
            Some(other) => Err(self.node_err(n, format!("approximate = {other}"))),
        }
    }

    /// Sqrt, Reciprocal, Neg, Exp, Log, Abs, Sign of an activation.
    fn math(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let op = n.op_type.as_deref().unwrap_or("");
        let f = super::expr::math_fn(op).expect("in the table");
        self.unary(n, Op::Math { f })
    }

    /// `Pow` outside an expression the importer recognises (an exponent that is not a scalar
    /// constant).
    fn alone(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        Err(self.node_err(
            n,
            "alone (not inside a GELU or another recognised elementwise pattern) this is not \
             in greenbench's IR",
        ))
    }

    pub(super) fn add(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let ins: Vec<usize> = (0..n.input.len())
            .filter(|&k| !n.input[k].is_empty())
            .collect();
        let acts: Vec<usize> = ins
            .iter()
            .copied()
            .filter(|&k| matches!(self.vals.get(&n.input[k]), Some(Val::Act(_))))
            .collect();
        let consts: Vec<usize> = ins.iter().copied().filter(|k| !acts.contains(k)).collect();
        if consts.len() > 1 {
            return Err(self.node_err(n, "more than one constant operand"));
        }
        // activation (+ activation ...): residual sums.
        let Some(&first) = acts.first() else {
            // No activation among the inputs: an undefined one, or constants the folder
            // could not take.
            for &k in &ins {
                self.need(n, k)?;
            }
            return Err(self.node_err(n, "none of its inputs is an activation"));
        };
        let mut cur = self.need_act(n, first)?;
        for (j, &k) in acts.iter().enumerate().skip(1) {
            let y = self.need_act(n, k)?;
            if y.dims != cur.dims || y.layout != cur.layout || y.ir_shape != cur.ir_shape {
                // Broadcasting (or differently laid out) operands.
                cur = self.binary_acts(n, BinOp::Add, cur, y)?;
                continue;
            }
            let base = if j + 1 == acts.len() && consts.is_empty() {
                Self::node_name(n)
            } else {
                format!("{}_{j}", Self::node_name(n))
            };
            let name = self.emit(&base, Op::Add, vec![cur.ir.clone(), y.ir], vec![]);
            cur = Act { ir: name, ..cur };
        }
        if let Some(&k) = consts.first() {
            let c = self.need_const(n, k, "the constant")?;
            let sole = acts.len() == 1 && self.sole_reader(&n.input[acts[0]]);
            cur = match self.add_const(n, &cur, sole, &c) {
                Ok(y) => y,
                // Not a bias the layer before can take: a per-channel shift of its own, or
                // a broadcast constant.
                Err(_) => match self.per_channel(&cur, &c) {
                    Some(v) => {
                        let ch = v.len();
                        self.affine(&Self::node_name(n), &cur, vec![1.0; ch], v)
                    }
                    None => self.const_binary(n, BinOp::Add, cur, &c, false)?,
                },
            };
        }
        self.set(n, Val::Act(cur));
        Ok(())
    }

    /// `act + constant` where the constant is a bias the producer can take.
    pub(super) fn add_const(
        &mut self,
        n: &NodeProto,
        x: &Act,
        sole: bool,
        c: &Tensor,
    ) -> Result<Act, ImportError> {
        let refuse = |me: &Self| {
            me.node_err(
                n,
                format!(
                    "adds a constant {:?} to an activation {} that is not a bias of the layer before it \
                     (broadcasting elementwise ops are planned)",
                    c.dims,
                    fmt_shape(&x.dims)
                ),
            )
        };
        let Some(&i) = self.index.get(&x.ir) else {
            return Err(refuse(self));
        };
        if !sole {
            return Err(refuse(self));
        }
        let v = c.to_f32();
        let new_name = Self::node_name(n);
        match self.nodes[i].op.clone() {
            Op::Dense { units, bias } => {
                let per_unit = v.len() == units
                    && c.dims.iter().rev().skip(1).all(|&d| d == 1)
                    && c.dims.last() == Some(&units);
                if !(per_unit || v.len() == 1) {
                    return Err(refuse(self));
                }
                let add: Vec<f32> = if v.len() == 1 { vec![v[0]; units] } else { v };
                if bias {
                    let b = &mut self.weights[i][1];
                    b.iter_mut().zip(&add).for_each(|(b, a)| *b += a);
                } else {
                    self.weights[i]
                        .push(ArrayD::from_shape_vec(IxDyn(&[units]), add).expect("sized"));
                    self.nodes[i].op = Op::Dense { units, bias: true };
                }
                Ok(self.rename(i, &new_name, x))
            }
            Op::Conv2d {
                filters,
                kernel,
                stride,
                padding,
                groups,
                bias,
            } => {
                // [C, 1, 1] or [1, C, 1, 1]: a per-channel bias.
                let per_channel = v.len() == filters && {
                    let mut d = c.dims.clone();
                    while d.first() == Some(&1) && d.len() > 3 {
                        d.remove(0);
                    }
                    d.len() == 3 && d[0] == filters && d[1] == 1 && d[2] == 1
                };
                if !per_channel {
                    return Err(refuse(self));
                }
                if bias {
                    let b = &mut self.weights[i][1];
                    b.iter_mut().zip(&v).for_each(|(b, a)| *b += a);
                } else {
                    self.weights[i]
                        .push(ArrayD::from_shape_vec(IxDyn(&[filters]), v).expect("sized"));
                    self.nodes[i].op = Op::Conv2d {
                        filters,
                        kernel,
                        stride,
                        padding,
                        groups,
                        bias: true,
                    };
                }
                Ok(self.rename(i, &new_name, x))
            }
            Op::Embedding {
                vocab,
                dim,
                positions: false,
            } => {
                let s = x.dims[0];
                let mut d = c.dims.clone();
                while d.len() > 2 && d[0] == 1 {
                    d.remove(0);
                }
                if d != [s, dim] {
                    return Err(refuse(self));
                }
                self.weights[i].push(ArrayD::from_shape_vec(IxDyn(&[s, dim]), v).expect("sized"));
                self.nodes[i].op = Op::Embedding {
                    vocab,
                    dim,
                    positions: true,
                };
                Ok(self.rename(i, &new_name, x))
            }
            _ => Err(refuse(self)),
        }
    }

    /// `x op c` (`c op x` when `left`) with a constant neither scalar nor per channel, by
    /// numpy's rule: the constant's axes align at the right with `[N, ..]`; a leading one
    /// that meets the batch must be 1. On `x`'s plain form.
    pub(super) fn const_binary(
        &mut self,
        n: &NodeProto,
        op: BinOp,
        x: Act,
        c: &Tensor,
        left: bool,
    ) -> Result<Act, ImportError> {
        let r = x.dims.len();
        let shape: Vec<usize> = match c.dims.len() {
            0 => vec![1],
            k if k <= r => c.dims.clone(),
            k if k == r + 1 && c.dims[0] == 1 => c.dims[1..].to_vec(),
            _ => {
                return Err(self.node_err(
                    n,
                    format!(
                        "{} of [N, {} by a constant {:?}: the constant would broadcast over the batch",
                        op.onnx(),
                        fmt_shape(&x.dims).trim_start_matches('['),
                        c.dims
                    ),
                ));
            }
        };
        let shape = if shape.is_empty() { vec![1] } else { shape };
        let Some(out) = greenbench_core::graph::broadcast(&x.dims, &shape) else {
            return Err(self.node_err(
                n,
                format!(
                    "{}: [N, {} and the constant {:?} do not broadcast",
                    op.onnx(),
                    fmt_shape(&x.dims).trim_start_matches('['),
                    c.dims
                ),
            ));
        };
        let name = Self::node_name(n);
        let x = self.plain_of(&name, x);
        let w = ArrayD::from_shape_vec(IxDyn(&shape), c.to_f32()).expect("sized");
        let ir = self.emit(
            &name,
            Op::BinaryConst { op, shape, left },
            vec![x.ir],
            vec![w],
        );
        Ok(Act {
            ir,
            dims: out.clone(),
            layout: Layout::Plain,
            ir_shape: out,
        })
    }

    /// `a op b` of two activations by numpy's rule (ONNX's): on the IR values as they are
    /// when both hold the same layout and shape, else on their plain forms. Errors name the
    /// shapes when they do not broadcast, or when their ranks differ (the batch axis of one
    /// would broadcast against a per-example axis of the other).
    pub(super) fn binary_acts(
        &mut self,
        n: &NodeProto,
        op: BinOp,
        a: Act,
        b: Act,
    ) -> Result<Act, ImportError> {
        let name = Self::node_name(n);
        if a.dims == b.dims && a.layout == b.layout && a.ir_shape == b.ir_shape {
            let ir = self.emit(&name, Op::Binary { op }, vec![a.ir.clone(), b.ir], vec![]);
            return Ok(Act { ir, ..a });
        }
        let shapes = || format!("{} and {}", fmt_shape(&a.dims), fmt_shape(&b.dims));
        if a.dims.len() != b.dims.len() {
            return Err(self.node_err(
                n,
                format!(
                    "{} of [N, ..] tensors of different ranks ({}): the batch axis would broadcast against a per-example axis",
                    op.onnx(),
                    shapes()
                ),
            ));
        }
        let Some(out) = greenbench_core::graph::broadcast(&a.dims, &b.dims) else {
            return Err(self.node_err(n, format!("{}: {} do not broadcast", op.onnx(), shapes())));
        };
        // Where the IR holds both in the file's order (plain; unit axes it dropped are
        // leading ones) or both as NHWC images, the IR's broadcast (aligned at the right) is
        // the file's: no conversion.
        let padded = |ir: &[usize], r: usize| {
            let mut v = vec![1; r.saturating_sub(ir.len())];
            v.extend_from_slice(ir);
            v
        };
        let plain = |x: &Act| {
            matches!(x.layout, Layout::Plain) && padded(&x.ir_shape, x.dims.len()) == x.dims
        };
        let image = |x: &Act| match x.layout {
            Layout::Chw { c, h, w } => padded(&x.ir_shape, 3) == [h, w, c],
            _ => false,
        };
        let same_kind = (plain(&a) && plain(&b)) || (image(&a) && image(&b));
        if same_kind
            && let Some(ir_shape) = greenbench_core::graph::broadcast(&a.ir_shape, &b.ir_shape)
        {
            let layout = match (a.layout, &out[..]) {
                (Layout::Chw { .. }, &[c, h, w]) => Layout::Chw { c, h, w },
                _ => Layout::Plain,
            };
            let ir = self.emit(&name, Op::Binary { op }, vec![a.ir, b.ir], vec![]);
            return Ok(Act {
                ir,
                dims: out,
                layout,
                ir_shape,
            });
        }
        let (pa, pb) = (self.plain_of(&name, a), self.plain_of(&name, b));
        let ir = self.emit(&name, Op::Binary { op }, vec![pa.ir, pb.ir], vec![]);
        Ok(Act {
            ir,
            dims: out.clone(),
            layout: Layout::Plain,
            ir_shape: out,
        })
    }

    /// A constant's values per channel of `x` (the IR's last axis), if it broadcasts as one:
    /// a scalar, `[C, 1, 1]` / `[1, C, 1, 1]` over an NCHW image, `[.., D]` over a row-major
    /// tensor whose last axis is `D`.
    pub(super) fn per_channel(&self, x: &Act, c: &Tensor) -> Option<Vec<f32>> {
        let ch = *x.ir_shape.last()?;
        let v = c.to_f32();
        if v.len() == 1 {
            return Some(vec![v[0]; ch]);
        }
        let mut d = c.dims.clone();
        while d.len() > x.dims.len() && d.first() == Some(&1) {
            d.remove(0);
        }
        let ok = match x.layout {
            Layout::Chw { c: cc, .. } => {
                d.len() == 3 && d[0] == cc && d[1] == 1 && d[2] == 1 && cc == ch
            }
            Layout::Plain => {
                d.last() == Some(&ch)
                    && x.dims.last() == Some(&ch)
                    && d.iter().rev().skip(1).all(|&v| v == 1)
            }
            Layout::Flat { .. } => false,
        };
        ok.then_some(v)
    }

    /// Sub, Mul, Div: with a per-channel constant, an affine; Mul of two activations, the IR's
    /// broadcasting multiply.
    pub(super) fn arith(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let op = n.op_type.clone().unwrap_or_default();
        let a = self.need(n, 0)?.clone();
        let b = self.need(n, 1)?.clone();
        let name = Self::node_name(n);
        let refuse = |me: &Self, what: String| me.node_err(n, what);
        let y = match (&a, &b) {
            (Val::Act(x), Val::Const(c)) | (Val::Const(c), Val::Act(x))
                if op == "Mul" || matches!(a, Val::Act(_)) =>
            {
                let Some(v) = self.per_channel(x, c) else {
                    // Neither a scalar nor per channel: a broadcast constant of its own.
                    let bop = BinOp::from_onnx(&op).expect("Sub, Mul or Div");
                    let y = self.const_binary(n, bop, x.clone(), c, matches!(a, Val::Const(_)))?;
                    self.set(n, Val::Act(y));
                    return Ok(());
                };
                let ch = v.len();
                match op.as_str() {
                    "Mul" => self.scale_or_new(&name, x, &n.input, v),
                    "Div" => {
                        self.scale_or_new(&name, x, &n.input, v.iter().map(|d| 1.0 / d).collect())
                    }
                    _ => {
                        let neg: Vec<f32> = v.iter().map(|d| -d).collect();
                        let c2 = t_f32("", vec![ch], neg);
                        let sole = self.sole_reader(&n.input[0]);
                        match self.add_const(n, x, sole, &c2) {
                            Ok(y) => y,
                            Err(_) => self.affine(&name, x, vec![1.0; ch], c2.to_f32()),
                        }
                    }
                }
            }
            (Val::Act(x), Val::Act(y)) if op == "Mul" => {
                // The IR multiplies by a second operand whose shape is a trailing part of the
                // first's: put the larger first.
                let (big, small) = if x.ir_shape.len() >= y.ir_shape.len() {
                    (x, y)
                } else {
                    (y, x)
                };
                let onnx_ok =
                    broadcast_shape(&big.dims, &small.dims).ok().as_ref() == Some(&big.dims);
                let s = &small.ir_shape;
                let ir_ok = s.len() <= big.ir_shape.len()
                    && big.ir_shape[big.ir_shape.len() - s.len()..] == s[..];
                let same_order = big.layout == small.layout
                    || matches!(
                        (big.layout, small.layout),
                        (Layout::Chw { .. }, Layout::Chw { h: 1, w: 1, .. })
                    );
                if !(onnx_ok && ir_ok && same_order) {
                    let y = self.binary_acts(n, BinOp::Mul, x.clone(), y.clone())?;
                    self.set(n, Val::Act(y));
                    return Ok(());
                }
                let ir = self.emit(
                    &name,
                    Op::Mul,
                    vec![big.ir.clone(), small.ir.clone()],
                    vec![],
                );
                Act { ir, ..big.clone() }
            }
            (Val::Act(x), Val::Act(y)) => {
                let bop = BinOp::from_onnx(&op).expect("Sub or Div");
                self.binary_acts(n, bop, x.clone(), y.clone())?
            }
            // constant - x, constant / x
            (Val::Const(c), Val::Act(x)) => {
                let bop = BinOp::from_onnx(&op).expect("Sub or Div");
                self.const_binary(n, bop, x.clone(), c, true)?
            }
            _ => {
                return Err(refuse(
                    self,
                    format!(
                        "{op} of these operands is not in greenbench's IR (an activation {op} a per-channel constant or another activation is)"
                    ),
                ));
            }
        };
        self.set(n, Val::Act(y));
        Ok(())
    }

    /// Scale `x` per channel: into the batch norm that produced it when this is its only reader,
    /// else as a new affine.
    pub(super) fn scale_or_new(
        &mut self,
        name: &str,
        x: &Act,
        inputs: &[String],
        v: Vec<f32>,
    ) -> Act {
        let sole = inputs.iter().any(|i| {
            matches!(self.vals.get(i), Some(Val::Act(a)) if a.ir == x.ir) && self.sole_reader(i)
        });
        if sole
            && let Some(&i) = self.index.get(&x.ir)
            && matches!(self.nodes[i].op, Op::BatchNorm { .. })
        {
            // (x - m) / s * g + b, scaled: g and b scale.
            for k in [0, 1] {
                self.weights[i][k]
                    .iter_mut()
                    .zip(&v)
                    .for_each(|(w, s)| *w *= s);
            }
            return x.clone();
        }
        let ch = v.len();
        self.affine(name, x, v, vec![0.0; ch])
    }

    pub(super) fn clip(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let (lo, hi) = if self.opset < 11 {
            (attr_f(n, "min", f32::MIN), attr_f(n, "max", f32::MAX))
        } else {
            let get = |k: usize| -> Result<Option<f32>, ImportError> {
                match self.input_val(n, k)? {
                    None => Ok(None),
                    Some(Val::Const(t)) => Ok(t.to_f32().first().copied()),
                    Some(_) => Err(self.node_err(n, "min/max must be constants")),
                }
            };
            (get(1)?.unwrap_or(f32::MIN), get(2)?.unwrap_or(f32::MAX))
        };
        if lo == 0.0 && hi >= f32::MAX {
            return self.unary(n, Op::Relu);
        }
        if lo > hi {
            return Err(self.node_err(n, format!("min {lo} is above max {hi}")));
        }
        self.unary(n, Op::Clip { min: lo, max: hi })
    }

    pub(super) fn softmax(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let default = if self.opset < 13 { 1 } else { -1 };
        let a = attr_i(n, "axis", default);
        if self.opset < 13 {
            // Softmax over everything from `axis` on: the last axis only when that is all.
            let r = x.dims.len() + 1;
            let ax = axis(a, r).map_err(|m| self.node_err(n, m))?;
            // Over everything from axis 1 on: the IR's last-axis softmax when the IR value is
            // one row per example (a softmax over all of it does not depend on the order).
            let one_row =
                x.ir_shape.iter().product::<usize>() == *x.ir_shape.last().expect("non-empty");
            if ax != r - 1 && !(ax == 1 && one_row) {
                return Err(self.node_err(
                    n,
                    format!("softmax over axes {ax}.. of a rank-{r} tensor is not supported"),
                ));
            }
            return self.unary(n, Op::Softmax);
        }
        self.last_axis(n, &x, a)?;
        self.unary(n, Op::Softmax)
    }

    pub(super) fn reduce_mean(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let axes: Vec<i64> = match self.input_val(n, 1)? {
            Some(Val::Const(t)) => i64_values(t).map_err(|m| self.node_err(n, m))?,
            Some(_) => return Err(self.node_err(n, "axes must be a constant")),
            None => attr_ints(n, "axes").unwrap_or_default(),
        };
        let r = x.dims.len() + 1;
        let mut ax: Vec<usize> = axes
            .iter()
            .map(|&a| axis(a, r))
            .collect::<Result<_, _>>()
            .map_err(|m| self.node_err(n, m))?;
        ax.sort();
        let keep = attr_i(n, "keepdims", 1) != 0;
        match x.layout {
            Layout::Chw { c, .. } if ax == [2, 3] => {
                let name = self.emit(&Self::node_name(n), Op::GlobalAvgPool, vec![x.ir], vec![]);
                let dims = if keep { vec![c, 1, 1] } else { vec![c] };
                self.set(n, Val::Act(Act { ir: name, dims, layout: Layout::Chw { c, h: 1, w: 1 }, ir_shape: vec![c] }));
                Ok(())
            }
            Layout::Plain if x.dims.len() == 2 && ax == [1] => {
                let d = x.dims[1];
                let name = self.emit(&Self::node_name(n), Op::GlobalAvgPool, vec![x.ir], vec![]);
                let dims = if keep { vec![1, d] } else { vec![d] };
                self.set(n, Val::Act(Act { ir: name, dims, layout: Layout::Plain, ir_shape: vec![d] }));
                Ok(())
            }
            _ => Err(self.node_err(
                n,
                format!("mean over axes {axes:?} of {} is not supported (spatial means of NCHW images and means over the sequence of [N, S, D] are)", fmt_shape(&x.dims)),
            )),
        }
    }
}
