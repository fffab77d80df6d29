//! Activation expressions: an elementwise expression of one activation with scalar
//! constants (`x * 0.5 * (1 + erf(x / sqrt 2))`) is kept lazy and, when something else reads
//! it, identified by evaluation as the IR op it equals (GELU, sigmoid, tanh, an affine map)
//! or written op by op.

use super::error::ImportError;
use super::values::*;
use crate::proto::NodeProto;
use greenbench_core::graph::{BinOp, MathFn, Op};

/// The math function ONNX operator `op` is, for the single-input ones.
pub(super) fn math_fn(op: &str) -> Option<MathFn> {
    Some(match op {
        "Sqrt" => MathFn::Sqrt,
        "Reciprocal" => MathFn::Reciprocal,
        "Neg" => MathFn::Neg,
        "Exp" => MathFn::Exp,
        "Log" => MathFn::Log,
        "Abs" => MathFn::Abs,
        "Sign" => MathFn::Sign,
        _ => return None,
    })
}
use ndarray::{ArrayD, IxDyn};

/// A piece of an expression written as IR ops: a value, or a constant folded at import.
pub(super) enum ExprPart {
    Act(Act),
    Const(f64),
}

/// What an elementwise expression computes, found by evaluating it at points spread over
/// where activations live and comparing with each candidate (so `x * 0.5 * (1 + erf(x /
/// sqrt 2))` and `0.5 * x * (1 + erf(x * 0.7071))` are both the exact GELU).
#[derive(Debug, PartialEq)]
pub(super) enum Identified {
    Op(Op),
    /// a x + b
    Affine(f32, f32),
}

pub(super) fn identify(e: &Expr) -> Option<Identified> {
    const PTS: [f64; 11] = [
        -4.2, -3.1, -1.7, -0.6, -0.13, 0.0, 0.21, 0.77, 1.9, 3.6, 5.3,
    ];
    let ys: Vec<f64> = PTS.iter().map(|&x| e.eval(x)).collect();
    if ys.iter().any(|y| !y.is_finite()) {
        return None;
    }
    let close = |f: &dyn Fn(f64) -> f64| {
        PTS.iter()
            .zip(&ys)
            .all(|(&x, &y)| (f(x) - y).abs() <= 1e-5 * (1.0 + y.abs()))
    };
    let b = e.eval(0.0);
    let a = e.eval(1.0) - b;
    if close(&|x| a * x + b) {
        return Some(Identified::Affine(a as f32, b as f32));
    }
    for op in [Op::GeluErf, Op::Sigmoid, Op::Tanh] {
        let f = op.unary().expect("unary");
        if close(&|x| f.eval(x)) {
            return Some(Identified::Op(op));
        }
    }
    if close(&|x| greenbench_core::reference::gelu(x)) {
        return Some(Identified::Op(Op::Gelu));
    }
    None
}

impl Importer<'_> {
    /// The expression an elementwise node builds, if it is one: `erf`, `pow`, `tanh` of an
    /// expression, and `+ - * /` of one activation (or expressions of it) with scalar
    /// constants or itself.
    pub(super) fn try_expr(&mut self, n: &NodeProto) -> Result<Option<Val>, ImportError> {
        let op = n.op_type.as_deref().unwrap_or("");
        if !matches!(op, "Erf" | "Tanh" | "Pow" | "Add" | "Sub" | "Mul" | "Div")
            && math_fn(op).is_none()
        {
            return Ok(None);
        }
        // An expression that already is a known activation (a finished GELU, say) becomes
        // that op first: a larger expression around it would not be one, and a new one may
        // start from its output.
        for name in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(Val::Expr(x, e)) = self.vals.get(name).cloned()
                && matches!(identify(&e), Some(Identified::Op(_)))
            {
                let a = self.materialize(n, name, x, &e)?;
                self.vals.insert(name.clone(), Val::Act(a));
            }
        }
        Ok(self.expr_of(n, op))
    }

    pub(super) fn expr_of(&self, n: &NodeProto, op: &str) -> Option<Val> {
        let ins: Vec<&Val> = n
            .input
            .iter()
            .map(|i| self.vals.get(i))
            .collect::<Option<_>>()?;
        let term = |v: &Val| -> Option<(Option<Act>, Expr)> {
            match v {
                Val::Const(t) if t.len() == 1 => Some((None, Expr::C(t.to_f32()[0] as f64))),
                Val::Act(a) => Some((Some(a.clone()), Expr::X)),
                Val::Expr(a, e) => Some((Some(a.clone()), e.clone())),
                _ => None,
            }
        };
        let terms: Vec<(Option<Act>, Expr)> = ins.iter().map(|v| term(v)).collect::<Option<_>>()?;
        let acts: Vec<&Act> = terms.iter().filter_map(|t| t.0.as_ref()).collect();
        let x = (*acts.first()?).clone();
        if acts
            .iter()
            .any(|a| a.ir != x.ir || a.dims != x.dims || a.layout != x.layout)
        {
            return None;
        }
        let any_expr = ins.iter().any(|v| matches!(v, Val::Expr(..)));
        // A plain activation plus a one-element constant is a bias (of a one-unit dense layer,
        // say) for `add` to fold, not an expression.
        if matches!(op, "Add" | "Sub") && !any_expr && acts.len() == 1 {
            return None;
        }
        let b = |k: usize| Box::new(terms[k].1.clone());
        let e = match (op, terms.len()) {
            ("Erf", 1) => Expr::Erf(b(0)),
            ("Tanh", 1) if any_expr => Expr::Tanh(b(0)),
            (_, 1) if any_expr && math_fn(op).is_some() => {
                Expr::F(math_fn(op).expect("checked"), b(0))
            }
            ("Pow", 2) => Expr::Pow(b(0), b(1)),
            ("Add" | "Sub" | "Mul" | "Div", 2) => {
                // An activation with a per-channel constant, or two different activations,
                // are not expressions; x op x and x op scalar are.
                match op {
                    "Add" => Expr::Add(b(0), b(1)),
                    "Sub" => Expr::Sub(b(0), b(1)),
                    "Mul" => Expr::Mul(b(0), b(1)),
                    _ => Expr::Div(b(0), b(1)),
                }
            }
            _ => return None,
        };
        Some(Val::Expr(x, e))
    }

    /// Turn the lazy elementwise expressions `n` reads into IR values.
    pub(super) fn materialize_exprs(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        for name in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(Val::Expr(x, e)) = self.vals.get(name).cloned() {
                let a = self.materialize(n, name, x, &e)?;
                self.vals.insert(name.clone(), Val::Act(a));
            }
        }
        Ok(())
    }

    /// Turn the lazy values `n` reads into IR values.
    pub(super) fn materialize_inputs(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        for name in n.input.iter().filter(|s| !s.is_empty()) {
            match self.vals.get(name).cloned() {
                Some(Val::Expr(x, e)) => {
                    let a = self.materialize(n, name, x, &e)?;
                    self.vals.insert(name.clone(), Val::Act(a));
                }
                // A pattern that did not complete: the general ops it stands for.
                Some(Val::Attn(a)) => {
                    let base = self.expr_node.get(name).cloned().unwrap_or(name.clone());
                    let a = self.materialize_attn(&base, *a);
                    self.vals.insert(name.clone(), Val::Act(a));
                }
                Some(Val::Shuffle { x, groups, swapped }) => {
                    let base = self.expr_node.get(name).cloned().unwrap_or(name.clone());
                    let x = self.plain_of(&base, x);
                    let mut split = vec![groups, x.dims[0] / groups];
                    split.extend_from_slice(&x.dims[1..]);
                    let mut a = self.reshape_plain(&format!("{base}_groups"), x, split);
                    if swapped {
                        let mut perm: Vec<usize> = (0..a.dims.len()).collect();
                        perm.swap(0, 1);
                        a = self.transpose_plain(&base, a, perm);
                    }
                    self.vals.insert(name.clone(), Val::Act(a));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn materialize(
        &mut self,
        n: &NodeProto,
        name: &str,
        x: Act,
        e: &Expr,
    ) -> Result<Act, ImportError> {
        // Named after the ONNX node that finished the expression.
        let base = self
            .expr_node
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("{name}_elementwise"));
        match identify(e) {
            Some(Identified::Affine(a, b)) if a == 1.0 && b == 0.0 => Ok(x),
            Some(Identified::Affine(a, b)) => {
                let c = *x.ir_shape.last().expect("non-empty");
                Ok(self.affine(&base, &x, vec![a; c], vec![b; c]))
            }
            Some(Identified::Op(op)) => {
                let ir = self.emit(&base, op, vec![x.ir.clone()], vec![]);
                Ok(Act { ir, ..x })
            }
            // Not one op: the arithmetic it is written with, an IR op per ONNX op.
            None => match self.expr_ops(&base, &x, e) {
                Some(ExprPart::Act(a)) => Ok(a),
                _ => Err(self.node_err(
                    n,
                    format!(
                        "reads `{name}`, an elementwise expression of its input that greenbench \
                         cannot write (recognised as one op: affine a*x+b, GELU (erf or tanh), \
                         sigmoid, tanh; else written op by op, which a power by an exponent \
                         computed from the input is not)"
                    ),
                )),
            },
        }
    }

    /// An expression of `x` as IR ops, one per arithmetic node: a constant operand becomes a
    /// one-value `binary_const`, a product of `x`-expressions a `binary`, tanh the tanh op,
    /// a square a product; constant subexpressions are folded. `None` where the IR has no op
    /// (erf of an activation, other powers).
    pub(super) fn expr_ops(&mut self, base: &str, x: &Act, e: &Expr) -> Option<ExprPart> {
        let binary = |e: &Expr| match e {
            Expr::Add(a, b) => Some((BinOp::Add, a.clone(), b.clone())),
            Expr::Sub(a, b) => Some((BinOp::Sub, a.clone(), b.clone())),
            Expr::Mul(a, b) => Some((BinOp::Mul, a.clone(), b.clone())),
            Expr::Div(a, b) => Some((BinOp::Div, a.clone(), b.clone())),
            Expr::Pow(a, b) if matches!(**b, Expr::C(c) if c == 2.0) => {
                Some((BinOp::Mul, a.clone(), a.clone()))
            }
            _ => None,
        };
        let act = |me: &mut Self, op: Op, ins: Vec<String>, w: Vec<ArrayD<f32>>| {
            let ir = me.emit(base, op, ins, w);
            ExprPart::Act(Act { ir, ..x.clone() })
        };
        Some(match e {
            Expr::X => ExprPart::Act(x.clone()),
            Expr::C(c) => ExprPart::Const(*c),
            Expr::Tanh(a) => match self.expr_ops(base, x, a)? {
                ExprPart::Const(c) => ExprPart::Const(c.tanh()),
                ExprPart::Act(y) => act(self, Op::Tanh, vec![y.ir], vec![]),
            },
            Expr::Erf(a) => match self.expr_ops(base, x, a)? {
                ExprPart::Const(c) => ExprPart::Const(libm::erf(c)),
                ExprPart::Act(y) => act(self, Op::Math { f: MathFn::Erf }, vec![y.ir], vec![]),
            },
            Expr::F(f, a) => match self.expr_ops(base, x, a)? {
                ExprPart::Const(c) => ExprPart::Const(f.eval(c)),
                ExprPart::Act(y) => act(self, Op::Math { f: *f }, vec![y.ir], vec![]),
            },
            // A power other than 2 by a constant exponent.
            Expr::Pow(a, p) if !matches!(**p, Expr::C(c) if c == 2.0) => {
                match (self.expr_ops(base, x, a)?, self.expr_ops(base, x, p)?) {
                    (ExprPart::Const(c), ExprPart::Const(e)) => ExprPart::Const(c.powf(e)),
                    (ExprPart::Act(y), ExprPart::Const(e)) => {
                        let f = MathFn::Pow { exponent: e as f32 };
                        act(self, Op::Math { f }, vec![y.ir], vec![])
                    }
                    _ => return None,
                }
            }
            other => {
                let (op, a, b) = binary(other)?;
                let (pa, pb) = (self.expr_ops(base, x, &a)?, self.expr_ops(base, x, &b)?);
                let one = |c: f64| {
                    vec![ArrayD::from_shape_vec(IxDyn(&[1]), vec![c as f32]).expect("sized")]
                };
                // An activation and a scalar, the scalar first when `left`.
                let with_scalar = |me: &mut Self, y: Act, c: f64, left: bool| {
                    let shape = vec![1];
                    act(me, Op::BinaryConst { op, shape, left }, vec![y.ir], one(c))
                };
                match (pa, pb) {
                    (ExprPart::Const(p), ExprPart::Const(q)) => ExprPart::Const(op.apply64(p, q)),
                    (ExprPart::Act(y), ExprPart::Const(q)) => with_scalar(self, y, q, false),
                    (ExprPart::Const(p), ExprPart::Act(y)) => with_scalar(self, y, p, true),
                    (ExprPart::Act(y), ExprPart::Act(z)) => {
                        act(self, Op::Binary { op }, vec![y.ir, z.ir], vec![])
                    }
                }
            }
        })
    }
}
