//! The importer's state and its basic moves: what each ONNX value is (a constant, an
//! activation, or a lazy pattern half-way), node attributes, emitting IR nodes with fresh
//! names, and converting an activation between its image and plain forms.

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use crate::decode::Tensor;
use crate::proto::{AttributeProto, NodeProto};
use greenbench_core::graph::{Node, Op, fmt_shape};
use ndarray::{ArrayD, IxDyn};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One op's import: reads node `n`'s inputs from the importer's values and sets its outputs.
pub(super) type ImportFn = fn(&mut Importer<'_>, &NodeProto) -> Result<(), ImportError>;

#[derive(Clone, Debug)]
pub(super) struct Act {
    /// IR value name: `input` or a node's name.
    pub(super) ir: String,
    /// Per-example ONNX dims.
    pub(super) dims: Vec<usize>,
    pub(super) layout: Layout,
    /// Per-example shape of the IR value.
    pub(super) ir_shape: Vec<usize>,
}

#[derive(Clone, Debug)]
pub(super) enum Val {
    Const(Tensor),
    Act(Act),
    /// An elementwise expression of one activation with scalar constants (`x / sqrt 2`,
    /// `erf(..)`, `x * x * x`), kept lazy until a non-elementwise op reads it; then it becomes
    /// the IR op it equals (see [`identify`]).
    Expr(Act, Expr),
    /// ShuffleNet's channel shuffle half-way: an NCHW activation reshaped to
    /// `[N, groups, C / groups, H, W]` (`swapped`: after the Transpose of axes 1 and 2).
    Shuffle {
        x: Act,
        groups: usize,
        swapped: bool,
    },
    /// Multi-head attention half-way, in torch's per-head form (see `try_attention`).
    Attn(Box<Attn>),
    /// An NCHW activation zero-padded by a Pad node (`[top, left, bottom, right]`), waiting for
    /// the convolution that takes the padding into its own.
    Padded(Act, [usize; 4]),
}

/// The stages of `softmax(Q K^T * scale) V` as torch.onnx writes multi-head attention.
#[derive(Clone, Debug)]
pub(super) enum Attn {
    /// A `[N, S, D]` projection reshaped to `[N, S, h, d]` (`head_major`: transposed to
    /// `[N, h, S, d]`; `key_t`: to `[N, h, d, S]`).
    Heads {
        x: Act,
        h: usize,
        d: usize,
        head_major: bool,
        key_t: bool,
    },
    /// `Q K^T * scale` (`probs`: after the softmax; `causal`: a causal mask applied; `mask`:
    /// a padding mask's additive key bias, `[S]` per example, added).
    Scores {
        q: Act,
        k: Act,
        h: usize,
        d: usize,
        scale: f64,
        probs: bool,
        causal: bool,
        mask: Option<Act>,
    },
    /// `probs V` as `[N, h, S, d]` (`merged`: transposed to `[N, S, h, d]`).
    Context {
        q: Act,
        k: Act,
        v: Act,
        h: usize,
        d: usize,
        scale: f64,
        merged: bool,
        causal: bool,
        mask: Option<Act>,
    },
}

/// An elementwise expression of `x`.
#[derive(Clone, Debug)]
pub(super) enum Expr {
    X,
    C(f64),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Erf(Box<Expr>),
    Tanh(Box<Expr>),
    /// One of ONNX's math operators (Sqrt, Reciprocal, Neg, Exp, Log, Abs, Sign).
    F(greenbench_core::graph::MathFn, Box<Expr>),
}

impl Expr {
    pub(super) fn eval(&self, x: f64) -> f64 {
        match self {
            Expr::X => x,
            Expr::C(c) => *c,
            Expr::Add(a, b) => a.eval(x) + b.eval(x),
            Expr::Sub(a, b) => a.eval(x) - b.eval(x),
            Expr::Mul(a, b) => a.eval(x) * b.eval(x),
            Expr::Div(a, b) => a.eval(x) / b.eval(x),
            Expr::Pow(a, b) => a.eval(x).powf(b.eval(x)),
            Expr::Erf(a) => libm::erf(a.eval(x)),
            Expr::Tanh(a) => a.eval(x).tanh(),
            Expr::F(f, a) => f.eval(a.eval(x)),
        }
    }
}

pub(super) struct Importer<'a> {
    pub(super) file: String,
    pub(super) opset: i64,
    pub(super) base: Option<&'a Path>,
    pub(super) vals: HashMap<String, Val>,
    pub(super) nodes: Vec<Node>,
    pub(super) weights: Vec<Vec<ArrayD<f32>>>,
    /// IR node index by IR name.
    pub(super) index: HashMap<String, usize>,
    pub(super) names: HashMap<String, usize>,
    /// How many ONNX nodes read each ONNX value (graph outputs count once).
    pub(super) readers: HashMap<String, usize>,
    /// The rows of the smallest embedding table each IR value is read as ids of.
    pub(super) vocabs: HashMap<String, usize>,
    /// IR values of integer inputs (a cast of them to an integer type changes nothing).
    pub(super) integral: HashSet<String>,
    /// IR values of attention-mask inputs (0 or 1, checked when given).
    pub(super) masks: HashSet<String>,
    pub(super) fixed_batch: Option<usize>,
    /// ONNX node name of each lazy expression value.
    pub(super) expr_node: HashMap<String, String>,
    /// An IR value's conversions made for the general ops (`(ir name, true)`: its plain form,
    /// `false`: its image form), so that several readers share one.
    pub(super) converted: HashMap<(String, bool), Act>,
}

pub(super) fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

pub(super) fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).and_then(|a| a.i).unwrap_or(default)
}

pub(super) fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).and_then(|a| a.f).unwrap_or(default)
}

pub(super) fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

pub(super) fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name)
        .and_then(|a| a.s.as_ref())
        .map(|s| String::from_utf8_lossy(s).to_string())
}

impl Importer<'_> {
    pub(super) fn node_err(&self, n: &NodeProto, message: impl Into<String>) -> ImportError {
        ImportError::Node {
            file: self.file.clone(),
            node: n.name.clone().unwrap_or_default(),
            op: n.op_type.clone().unwrap_or_default(),
            opset: self.opset,
            message: message.into(),
        }
    }

    pub(super) fn fresh_name(&mut self, base: &str) -> String {
        let base: String = if base.is_empty() {
            "node".into()
        } else {
            base.into()
        };
        let base = if base == "input" {
            "input_".into()
        } else {
            base
        };
        let k = self.names.entry(base.clone()).or_insert(0);
        *k += 1;
        if *k == 1 {
            base
        } else {
            format!("{base}_{}", *k - 1)
        }
    }

    pub(super) fn emit(
        &mut self,
        base: &str,
        op: Op,
        inputs: Vec<String>,
        w: Vec<ArrayD<f32>>,
    ) -> String {
        let name = self.fresh_name(base);
        let refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
        self.index.insert(name.clone(), self.nodes.len());
        self.nodes.push(Node::with_inputs(name.clone(), op, &refs));
        self.weights.push(w);
        name
    }

    pub(super) fn input_val(&self, n: &NodeProto, k: usize) -> Result<Option<&Val>, ImportError> {
        match n.input.get(k).map(|s| s.as_str()) {
            None | Some("") => Ok(None),
            Some(name) => {
                self.vals.get(name).map(Some).ok_or_else(|| {
                    self.node_err(n, format!("input `{name}` is not defined earlier"))
                })
            }
        }
    }

    pub(super) fn need(&self, n: &NodeProto, k: usize) -> Result<&Val, ImportError> {
        self.input_val(n, k)?
            .ok_or_else(|| self.node_err(n, format!("input {k} is missing")))
    }

    pub(super) fn need_const(
        &self,
        n: &NodeProto,
        k: usize,
        what: &str,
    ) -> Result<Tensor, ImportError> {
        match self.need(n, k)? {
            Val::Const(t) => Ok(t.clone()),
            _ => Err(self.node_err(
                n,
                format!(
                    "{what} (input {k}) must be a constant (an initializer or computed from \
                     constants); greenbench's IR takes weights, not activations, here"
                ),
            )),
        }
    }

    pub(super) fn need_act(&self, n: &NodeProto, k: usize) -> Result<Act, ImportError> {
        match self.need(n, k)? {
            Val::Act(a) => Ok(a.clone()),
            Val::Const(_) => Err(self.node_err(n, format!("input {k} is a constant here"))),
            Val::Padded(..) => Err(self.node_err(
                n,
                format!(
                    "input {k} is zero-padded by a Pad node; greenbench takes a Pad only into the \
                     convolution that reads it"
                ),
            )),
            Val::Expr(..) | Val::Shuffle { .. } | Val::Attn(_) => Err(self.node_err(
                n,
                format!("input {k} is an unfinished pattern (an internal error: please report it)"),
            )),
        }
    }

    /// Set a pattern's value, remembering the node for the name of what it may become.
    pub(super) fn set_lazy(&mut self, n: &NodeProto, v: Val) {
        if !matches!(v, Val::Act(_))
            && let Some(out) = n.output.first()
        {
            self.expr_node.insert(out.clone(), Self::node_name(n));
        }
        self.set(n, v);
    }

    pub(super) fn set(&mut self, n: &NodeProto, v: Val) {
        if let Some(out) = n.output.first() {
            self.vals.insert(out.clone(), v);
        }
    }

    /// An ONNX output beyond the first that something reads (BN's running stats, Dropout's
    /// mask): not supported.
    pub(super) fn only_first_output(&self, n: &NodeProto) -> Result<(), ImportError> {
        for o in n.output.iter().skip(1) {
            if !o.is_empty() && self.readers.get(o).copied().unwrap_or(0) > 0 {
                return Err(self.node_err(
                    n,
                    format!("output `{o}` is used; only the first output is supported (inference)"),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn node_name(n: &NodeProto) -> String {
        let s = n
            .name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| n.output.first().cloned())
            .unwrap_or_default();
        if s.is_empty() {
            n.op_type.clone().unwrap_or_default().to_lowercase()
        } else {
            s
        }
    }

    /// The single ONNX reader of `act` may rewrite its producer in place.
    pub(super) fn sole_reader(&self, onnx_value: &str) -> bool {
        // Every ONNX value standing for the same IR value (Identity, Dropout, relabelling
        // Transposes and Reshapes alias it) counts.
        let Some(Val::Act(a)) = self.vals.get(onnx_value) else {
            return false;
        };
        let reads: usize = self
            .vals
            .iter()
            .filter(|(_, v)| matches!(v, Val::Act(b) | Val::Expr(b, _) if b.ir == a.ir))
            .map(|(k, _)| self.readers.get(k).copied().unwrap_or(0))
            .sum();
        reads == 1
    }

    /// Give IR node `i` (whose only reader was just folded into it) the folding node's name.
    pub(super) fn rename(&mut self, i: usize, base: &str, x: &Act) -> Act {
        let old = self.nodes[i].name.clone();
        // Only the last node can be renamed safely (nothing refers to it yet).
        if i + 1 != self.nodes.len() {
            return x.clone();
        }
        if let Some(k) = self.names.get_mut(&old) {
            *k -= 1;
        }
        let name = self.fresh_name(base);
        self.index.remove(&old);
        self.index.insert(name.clone(), i);
        self.nodes[i].name = name.clone();
        Act {
            ir: name,
            ..x.clone()
        }
    }

    /// `x` as an IR value in the file's own element order and shape (an NCHW map relabelled
    /// NHWC is transposed back; unit axes the IR dropped come back): what the general ops
    /// (reshape, transpose, matmul, broadcasting arithmetic) read.
    pub(super) fn plain_of(&mut self, base: &str, x: Act) -> Act {
        let key = (x.ir.clone(), true);
        if let Some(a) = self.converted.get(&key)
            && a.dims == x.dims
        {
            return a.clone();
        }
        let y = self.plain_form(base, x);
        self.converted.insert(key, y.clone());
        y
    }

    pub(super) fn plain_form(&mut self, base: &str, x: Act) -> Act {
        let x = match x.layout {
            Layout::Plain => x,
            _ if x.layout.gather().is_none() => Act {
                layout: Layout::Plain,
                ..x
            },
            Layout::Chw { c, h, w } | Layout::Flat { c, h, w } => {
                let img = if x.ir_shape == [h, w, c] {
                    x.ir.clone()
                } else {
                    let op = Op::Reshape {
                        shape: vec![h, w, c],
                    };
                    self.emit(&format!("{base}_hwc"), op, vec![x.ir.clone()], vec![])
                };
                let perm = vec![2, 0, 1];
                let ir = self.emit(
                    &format!("{base}_chw"),
                    Op::Transpose { perm },
                    vec![img],
                    vec![],
                );
                if x.dims.len() == 2 && h == 1 {
                    // A 1-D convolution's [C, L] (held as [1, L, C]).
                    let ir = self.emit(
                        &format!("{base}_cl"),
                        Op::Reshape { shape: vec![c, w] },
                        vec![ir],
                        vec![],
                    );
                    return Act {
                        ir,
                        layout: Layout::Plain,
                        ir_shape: vec![c, w],
                        ..x
                    };
                }
                Act {
                    ir,
                    layout: Layout::Plain,
                    ir_shape: vec![c, h, w],
                    ..x
                }
            }
        };
        if x.ir_shape == x.dims {
            return x;
        }
        let op = Op::Reshape {
            shape: x.dims.clone(),
        };
        let ir = self.emit(&format!("{base}_shaped"), op, vec![x.ir.clone()], vec![]);
        Act {
            ir,
            ir_shape: x.dims.clone(),
            ..x
        }
    }

    /// An `[N, C, H, W]` value the general ops left in the file's order, as the IR's image
    /// (`[H, W, C]`, relabelled NCHW) that convolutions and pools read; other values as they are.
    pub(super) fn image_of(&mut self, n: &NodeProto, x: Act) -> Act {
        if !matches!(x.layout, Layout::Plain) || x.dims.len() != 3 {
            return x;
        }
        let key = (x.ir.clone(), false);
        if let Some(a) = self.converted.get(&key)
            && a.dims == x.dims
        {
            return a.clone();
        }
        let name = Self::node_name(n);
        let p = self.plain_of(&name, x);
        let (c, h, w) = (p.dims[0], p.dims[1], p.dims[2]);
        let perm = vec![1, 2, 0];
        let ir = self.emit(
            &format!("{name}_hwc"),
            Op::Transpose { perm },
            vec![p.ir],
            vec![],
        );
        let y = Act {
            ir,
            dims: p.dims,
            layout: Layout::Chw { c, h, w },
            ir_shape: vec![h, w, c],
        };
        self.converted.insert(key, y.clone());
        y
    }

    /// A reshape of a plain value (see [`Self::plain_of`]) to `dims`.
    pub(super) fn reshape_plain(&mut self, base: &str, x: Act, dims: Vec<usize>) -> Act {
        if x.dims == dims {
            return x;
        }
        let op = Op::Reshape {
            shape: dims.clone(),
        };
        let ir = self.emit(base, op, vec![x.ir], vec![]);
        Act {
            ir,
            dims: dims.clone(),
            layout: Layout::Plain,
            ir_shape: dims,
        }
    }

    /// A transpose of a plain value's per-example axes.
    pub(super) fn transpose_plain(&mut self, base: &str, x: Act, perm: Vec<usize>) -> Act {
        let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
        let ir = self.emit(base, Op::Transpose { perm }, vec![x.ir], vec![]);
        Act {
            ir,
            dims: dims.clone(),
            layout: Layout::Plain,
            ir_shape: dims,
        }
    }

    /// The product of two plain values whose shapes the IR's MatMul takes (checked by the
    /// caller, or by construction).
    pub(super) fn matmul_plain(&mut self, base: &str, a: Act, b: Act) -> Act {
        let (_, dims) = greenbench_core::graph::MatMulGeom::of(&a.dims, &b.dims)
            .expect("shapes checked by the caller");
        let ir = self.emit(base, Op::MatMul, vec![a.ir, b.ir], vec![]);
        Act {
            ir,
            dims: dims.clone(),
            layout: Layout::Plain,
            ir_shape: dims,
        }
    }

    /// Emit `op` on `x` (named after `n`) as `n`'s output, in `x`'s shape and layout.
    pub(super) fn emit_same(
        &mut self,
        n: &NodeProto,
        op: Op,
        x: Act,
        ws: Vec<ArrayD<f32>>,
    ) -> Result<(), ImportError> {
        let ir = self.emit(&Self::node_name(n), op, vec![x.ir.clone()], ws);
        self.set(n, Val::Act(Act { ir, ..x }));
        Ok(())
    }

    pub(super) fn unary(&mut self, n: &NodeProto, op: Op) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        self.emit_same(n, op, x, vec![])
    }

    /// `x * scale + shift` over the IR's last axis, as an inference batch norm (mean 0,
    /// variance 1, eps 0: exact), which the fold pass merges into a convolution or dense layer
    /// before it.
    pub(super) fn affine(&mut self, base: &str, x: &Act, scale: Vec<f32>, shift: Vec<f32>) -> Act {
        let c = scale.len();
        let t = |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(&[c]), v).expect("sized");
        let ws = vec![t(scale), t(shift), t(vec![0.0; c]), t(vec![1.0; c])];
        let ir = self.emit(base, Op::BatchNorm { eps: 0.0 }, vec![x.ir.clone()], ws);
        Act { ir, ..x.clone() }
    }

    pub(super) fn last_axis(&self, n: &NodeProto, x: &Act, a: i64) -> Result<(), ImportError> {
        let r = x.dims.len() + 1;
        let ax = axis(a, r).map_err(|m| self.node_err(n, m))?;
        if ax != r - 1 || x.layout.gather().is_some() || x.ir_shape.last() != x.dims.last() {
            return Err(self.node_err(
                n,
                format!(
                    "only the last axis of a row-major tensor is supported (axis {a} of {})",
                    fmt_shape(&x.dims)
                ),
            ));
        }
        Ok(())
    }

    /// The IR axis of ONNX axis `ax` (batch = 0) of `x`, for slicing and concatenation.
    pub(super) fn ir_axis(&self, n: &NodeProto, x: &Act, ax: usize) -> Result<usize, ImportError> {
        match x.layout {
            Layout::Chw { .. } if x.ir_shape.len() == 3 && ax >= 1 => Ok([2, 0, 1][ax - 1]),
            Layout::Plain if x.ir_shape == x.dims && ax >= 1 => Ok(ax - 1),
            _ => Err(self.node_err(
                n,
                format!(
                    "axis {ax} of {} (batch axis, or a flattened NCHW map)",
                    fmt_shape(&x.dims)
                ),
            )),
        }
    }
}
