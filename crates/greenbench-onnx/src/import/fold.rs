//! Constant folding: an op whose inputs are all constants (initializers, `Constant`, shapes)
//! is evaluated here and never run; `Shape` of an activation is a constant with a symbolic
//! batch entry.

use super::error::ImportError;
use super::logic;
use super::shape::*;
use super::values::*;
use crate::decode::{self, Tensor, Values};
use crate::proto::{NodeProto, tensor_proto::DataType};

/// Ops imported the same way whatever their inputs are: constants, shapes, pass-throughs.
pub(super) const CONSTANTS: &[(&str, ImportFn)] = &[
    ("Constant", |i, n| i.constant(n)),
    ("Dropout", |i, n| i.identity(n)),
    ("Identity", |i, n| i.identity(n)),
    ("Shape", |i, n| i.shape(n)),
];

/// Ops imported only when their inputs are constants (folded); on activations they are an
/// error that says so.
pub(super) const FOLDED: &[(&str, ImportFn)] = &[
    ("And", |i, n| i.constants_only(n)),
    ("Cast", |i, n| i.cast(n)),
    ("ConstantOfShape", |i, n| i.constants_only(n)),
    ("Equal", |i, n| i.mask_logic(n)),
    ("Expand", |i, n| i.constants_only(n)),
    ("Greater", |i, n| i.constants_only(n)),
    ("GreaterOrEqual", |i, n| i.constants_only(n)),
    ("Less", |i, n| i.constants_only(n)),
    ("LessOrEqual", |i, n| i.constants_only(n)),
    ("Not", |i, n| i.mask_logic(n)),
    ("Or", |i, n| i.constants_only(n)),
    ("Range", |i, n| i.constants_only(n)),
    ("Trilu", |i, n| i.constants_only(n)),
    ("Xor", |i, n| i.constants_only(n)),
];

/// The per-example ONNX dims a half-done attention stands for.
fn attn_dims(a: &Attn) -> Vec<usize> {
    match a {
        Attn::Heads {
            x,
            h,
            d,
            head_major,
            key_t,
        } => {
            let s = x.dims[0];
            match (head_major, key_t) {
                (_, true) => vec![*h, *d, s],
                (true, false) => vec![*h, s, *d],
                (false, false) => vec![s, *h, *d],
            }
        }
        Attn::Scores { q, h, .. } => vec![*h, q.dims[0], q.dims[0]],
        Attn::Context {
            q, h, d, merged, ..
        } => {
            if *merged {
                vec![q.dims[0], *h, *d]
            } else {
                vec![*h, q.dims[0], *d]
            }
        }
    }
}

impl Importer<'_> {
    fn constant(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let t = self.constant_attr(n)?;
        self.set(n, Val::Const(t));
        Ok(())
    }

    fn identity(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        self.only_first_output(n)?;
        let v = self.need(n, 0)?.clone();
        self.set(n, v);
        Ok(())
    }

    /// `Shape`: of a constant, its dims; of an activation, the batch as a symbolic entry then
    /// its per-example dims.
    fn shape(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let v = self.need(n, 0)?.clone();
        let dims: Vec<i64> = match &v {
            Val::Const(t) => t.dims.iter().map(|&d| d as i64).collect(),
            Val::Act(a) | Val::Expr(a, _) => std::iter::once(BATCH)
                .chain(a.dims.iter().map(|&d| d as i64))
                .collect(),
            // A half-done attention's shape is its stage's (the pattern stays lazy).
            Val::Attn(a) => std::iter::once(BATCH)
                .chain(attn_dims(a).into_iter().map(|d| d as i64))
                .collect(),
            Val::Shuffle { .. } | Val::Padded(..) => {
                return Err(self.node_err(n, "the shape of a half-done channel shuffle"));
            }
        };
        let r = dims.len() as i64;
        let clampi = |x: i64| -> usize { (if x < 0 { x + r } else { x }).clamp(0, r) as usize };
        let s = clampi(attr_i(n, "start", 0));
        let e = clampi(attr_i(n, "end", r));
        let sl = if s < e { dims[s..e].to_vec() } else { vec![] };
        let len = sl.len();
        self.set(n, Val::Const(t_i64("shape", vec![len], sl)));
        Ok(())
    }

    fn constants_only(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        Err(self.node_err(
            n,
            "on activations (not constants) this is not in greenbench's IR yet",
        ))
    }

    pub(super) fn constant_attr(&self, n: &NodeProto) -> Result<Tensor, ImportError> {
        let a = n
            .attribute
            .first()
            .ok_or_else(|| self.node_err(n, "Constant without a value"))?;
        let name = n.output.first().cloned().unwrap_or_default();
        Ok(match a.name.as_deref() {
            Some("value") => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.node_err(n, "`value` holds no tensor"))?;
                decode::tensor_values(t, self.base)?
            }
            Some("value_float") => t_f32(&name, vec![], vec![a.f.unwrap_or(0.0)]),
            Some("value_floats") => t_f32(&name, vec![a.floats.len()], a.floats.clone()),
            Some("value_int") => t_i64(&name, vec![], vec![a.i.unwrap_or(0)]),
            Some("value_ints") => t_i64(&name, vec![a.ints.len()], a.ints.clone()),
            other => {
                return Err(
                    self.node_err(n, format!("Constant attribute {other:?} is not supported"))
                );
            }
        })
    }

    /// Evaluate a node whose inputs are all constants.
    pub(super) fn fold(&self, n: &NodeProto) -> Result<Tensor, String> {
        let op = n.op_type.as_deref().unwrap_or("");
        let c = |k: usize| -> Result<Tensor, String> {
            match n.input.get(k).and_then(|i| self.vals.get(i)) {
                Some(Val::Const(t)) => Ok(t.clone()),
                _ => Err(format!("input {k} is missing")),
            }
        };
        let opt = |k: usize| -> Option<Tensor> {
            match n
                .input
                .get(k)
                .filter(|s| !s.is_empty())
                .and_then(|i| self.vals.get(i))
            {
                Some(Val::Const(t)) => Some(t.clone()),
                _ => None,
            }
        };
        let name = n.output.first().cloned().unwrap_or_default();
        let x = c(0)?;
        Ok(match op {
            "Cast" => {
                let to = attr_i(n, "to", 1) as i32;
                match DataType::try_from(to) {
                    Ok(DataType::Float | DataType::Double | DataType::Float16) => {
                        if let Values::I64(v) = &x.values
                            && v.contains(&BATCH)
                        {
                            return Err("casts the dynamic batch size to float".into());
                        }
                        t_f32(&name, x.dims.clone(), x.to_f32())
                    }
                    // Held as fp32 values rounded to bf16 (exact in fp32).
                    Ok(DataType::Bfloat16) => t_f32(
                        &name,
                        x.dims.clone(),
                        x.to_f32()
                            .into_iter()
                            .map(greenbench_core::bf16::round)
                            .collect(),
                    ),
                    Ok(DataType::Int64 | DataType::Int32 | DataType::Int8 | DataType::Uint8) => {
                        let v = match &x.values {
                            Values::I64(v) => v.clone(),
                            Values::F32(v) => v.iter().map(|&f| f as i64).collect(),
                        };
                        t_i64(&name, x.dims.clone(), v)
                    }
                    Ok(DataType::Bool) => t_i64(
                        &name,
                        x.dims.clone(),
                        x.to_f32().iter().map(|&f| (f != 0.0) as i64).collect(),
                    ),
                    _ => return Err(format!("Cast to data type {to} is not supported")),
                }
            }
            "Unsqueeze" | "Squeeze" => {
                let axes: Vec<i64> = match opt(1) {
                    Some(a) => i64_values(&a)?,
                    None => attr_ints(n, "axes").unwrap_or_default(),
                };
                let mut dims = x.dims.clone();
                if op == "Unsqueeze" {
                    let r = dims.len() + axes.len();
                    let mut ax: Vec<usize> =
                        axes.iter().map(|&a| axis(a, r)).collect::<Result<_, _>>()?;
                    ax.sort();
                    for a in ax {
                        dims.insert(a, 1);
                    }
                } else if axes.is_empty() {
                    dims.retain(|&d| d != 1);
                } else {
                    let r = dims.len();
                    let mut ax: Vec<usize> =
                        axes.iter().map(|&a| axis(a, r)).collect::<Result<_, _>>()?;
                    ax.sort();
                    for a in ax.into_iter().rev() {
                        if dims[a] != 1 {
                            return Err(format!("Squeeze of axis {a}, which is {}", dims[a]));
                        }
                        dims.remove(a);
                    }
                }
                Tensor { dims, ..x }
            }
            "Reshape" => {
                let shape = i64_values(&c(1)?)?;
                let dims = resolve_reshape(&x.dims, &shape, attr_i(n, "allowzero", 0) != 0)?;
                Tensor { dims, ..x }
            }
            "Flatten" => {
                let r = x.dims.len();
                let a = axis(attr_i(n, "axis", 1), r + 1)?;
                let d0: usize = x.dims[..a].iter().product();
                let d1: usize = x.dims[a..].iter().product();
                Tensor {
                    dims: vec![d0, d1],
                    ..x
                }
            }
            "Concat" => {
                let ts: Vec<Tensor> = (0..n.input.len()).map(c).collect::<Result<_, _>>()?;
                let r = ts[0].dims.len().max(1);
                let a = axis(attr_i(n, "axis", 0), r)?;
                concat(&ts, a, &name)?
            }
            "Gather" => {
                let idx = i64_values(&c(1)?)?;
                let idx_t = c(1)?;
                let a = axis(attr_i(n, "axis", 0), x.dims.len().max(1))?;
                gather(&x, &idx, &idx_t.dims, a, &name)?
            }
            "Slice" => {
                let (starts, ends, axes, steps) = if self.opset < 10 {
                    (
                        attr_ints(n, "starts").unwrap_or_default(),
                        attr_ints(n, "ends").unwrap_or_default(),
                        attr_ints(n, "axes"),
                        None,
                    )
                } else {
                    (
                        i64_values(&c(1)?)?,
                        i64_values(&c(2)?)?,
                        opt(3).map(|t| i64_values(&t)).transpose()?,
                        opt(4).map(|t| i64_values(&t)).transpose()?,
                    )
                };
                slice(&x, &starts, &ends, axes, steps, &name)?
            }
            "Transpose" => {
                let r = x.dims.len();
                let perm: Vec<usize> = match attr_ints(n, "perm") {
                    Some(p) => p.iter().map(|&a| axis(a, r)).collect::<Result<_, _>>()?,
                    None => (0..r).rev().collect(),
                };
                transpose(&x, &perm, &name)?
            }
            "ConstantOfShape" => {
                let shape = i64_values(&x)?;
                if shape.contains(&BATCH) {
                    return Err("ConstantOfShape over the dynamic batch size".into());
                }
                let dims: Vec<usize> = shape
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
                    .collect::<Result<_, _>>()?;
                let len = cap(decode::element_count(&shape)?)?;
                let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => decode::tensor_values(t, self.base).map_err(|e| e.to_string())?,
                    None => t_f32("", vec![1], vec![0.0]),
                };
                match value.values {
                    Values::F32(v) => t_f32(&name, dims, vec![*v.first().unwrap_or(&0.0); len]),
                    Values::I64(v) => t_i64(&name, dims, vec![*v.first().unwrap_or(&0); len]),
                }
            }
            "Add" | "Sub" | "Mul" | "Div" | "Sum" => {
                let mut acc = x;
                for k in 1..n.input.len() {
                    acc = binary(op, &acc, &c(k)?, &name)?;
                }
                acc
            }
            "Range" => logic::range(&x, &c(1)?, &c(2)?, &name)?,
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or"
            | "Xor" => logic::compare(op, &x, &c(1)?, &name)?,
            "Not" => logic::not(&x, &name)?,
            "Where" => logic::where_(&x, &c(1)?, &c(2)?, &name)?,
            "Expand" => logic::expand(&x, &i64_values(&c(1)?)?, &name)?,
            "Trilu" => {
                let k = match opt(1) {
                    Some(t) => *i64_values(&t)?.first().ok_or("Trilu's k is empty")?,
                    None => 0,
                };
                logic::trilu(&x, k, attr_i(n, "upper", 1) != 0, &name)?
            }
            "Pow" => logic::pow(&x, &c(1)?, &name)?,
            "Erf" => logic::math(greenbench_core::graph::MathFn::Erf, &x, &name),
            m if super::expr::math_fn(m).is_some() => {
                logic::math(super::expr::math_fn(m).expect("checked"), &x, &name)
            }
            "Relu" => t_f32(
                &name,
                x.dims.clone(),
                x.to_f32().iter().map(|v| v.max(0.0)).collect(),
            ),
            other => return Err(format!("{other} of constants is not supported")),
        })
    }
}
