//! Shape inference and validation: each op's rule for its output shape, and the error that
//! names the node, the op and what did not fit.

use super::geom::{MatMulGeom, broadcast, conv_geom, pool_geom};
use super::node::{GraphError, InputSpec, Node};
use super::ops::Op;
use super::shape::{Shape, fmt_shape};

/// Shape inference for one node.
/// `ids_vocab`: the table size the first input's ids are declared within, if they are ids.
pub(super) fn infer(
    node: &Node,
    ins: &[&Shape],
    input: &InputSpec,
    ids_vocab: Option<usize>,
) -> Result<Shape, GraphError> {
    let op = &node.op;
    let x = ins[0];
    let shape_err = |what: &str, expected: String| GraphError::Shape {
        node: node.name.clone(),
        op: op.kind(),
        what: what.to_string(),
        got: fmt_shape(x),
        expected,
    };
    let invalid = |message: String| GraphError::Invalid {
        node: node.name.clone(),
        op: op.kind(),
        message,
    };
    match op {
        Op::Conv2d {
            filters,
            kernel,
            stride,
            groups,
            ..
        } => {
            if x.len() != 3 {
                return Err(shape_err("input must be an image", "[H, W, C]".into()));
            }
            if *filters == 0 || kernel.contains(&0) || stride.contains(&0) || *groups == 0 {
                return Err(invalid(
                    "filters, kernel, stride and groups must be positive".into(),
                ));
            }
            if !x[2].is_multiple_of(*groups) || !filters.is_multiple_of(*groups) {
                return Err(shape_err(
                    &format!("channels not divisible by groups = {groups}"),
                    format!("[H, W, C] with C and filters ({filters}) divisible by {groups}"),
                ));
            }
            let g = conv_geom(op, x).ok_or_else(|| {
                shape_err(
                    &format!("kernel {kernel:?} does not fit the (padded) input"),
                    format!("[H >= {}, W >= {}, C]", kernel[0], kernel[1]),
                )
            })?;
            Ok(vec![g.ho, g.wo, g.cout])
        }
        Op::Dense { units, .. } => {
            if *units == 0 {
                return Err(invalid("units must be positive".into()));
            }
            let mut out = x.clone();
            *out.last_mut().expect("non-empty") = *units;
            Ok(out)
        }
        Op::BatchNorm { .. } | Op::Relu | Op::Gelu | Op::Softmax | Op::LayerNorm { .. } => {
            Ok(x.clone())
        }
        Op::Sigmoid
        | Op::HardSigmoid { .. }
        | Op::HardSwish
        | Op::Clip { .. }
        | Op::Tanh
        | Op::LeakyRelu { .. }
        | Op::GeluErf
        | Op::Math { .. } => Ok(x.clone()),
        Op::Mul => {
            let b = ins[1];
            let n: usize = b.iter().product();
            let suffix = b.len() <= x.len() && x[x.len() - b.len()..] == b[..];
            if !(suffix || n == 1) {
                return Err(GraphError::Shape {
                    node: node.name.clone(),
                    op: op.kind(),
                    what: "the second input does not broadcast over the first".into(),
                    got: fmt_shape(b),
                    expected: format!("{} or a trailing part of it", fmt_shape(x)),
                });
            }
            Ok(x.clone())
        }
        Op::Concat { axis } => {
            if *axis >= x.len() {
                return Err(invalid(format!("axis {axis} is outside {}", fmt_shape(x))));
            }
            let mut out = x.clone();
            for s in &ins[1..] {
                let agree = s.len() == x.len() && (0..x.len()).all(|d| d == *axis || s[d] == x[d]);
                if !agree {
                    return Err(GraphError::Shape {
                        node: node.name.clone(),
                        op: op.kind(),
                        what: format!("inputs differ off axis {axis}"),
                        got: fmt_shape(s),
                        expected: fmt_shape(x),
                    });
                }
                out[*axis] += s[*axis];
            }
            Ok(out)
        }
        Op::Slice { axis, start, len } => {
            if *axis >= x.len() || *len == 0 || start + len > x[*axis] {
                return Err(invalid(format!(
                    "{len} entries from {start} of axis {axis} are not inside {}",
                    fmt_shape(x)
                )));
            }
            let mut out = x.clone();
            out[*axis] = *len;
            Ok(out)
        }
        Op::ChannelShuffle { groups } => {
            let c = *x.last().expect("non-empty");
            if *groups == 0 || !c.is_multiple_of(*groups) {
                return Err(invalid(format!(
                    "{c} channels do not split into {groups} groups"
                )));
            }
            Ok(x.clone())
        }
        Op::MaxPool { .. } | Op::AvgPool { .. } => {
            if x.len() != 3 {
                return Err(shape_err("input must be an image", "[H, W, C]".into()));
            }
            let g = pool_geom(op, x).ok_or_else(|| {
                shape_err(
                    "pool window does not fit the (padded) input, is zero, or a pad is as large as the window",
                    "[H >= kh, W >= kw, C] and every pad < the window".into(),
                )
            })?;
            Ok(vec![g.ho, g.wo, g.c])
        }
        Op::GlobalAvgPool => {
            if x.len() < 2 {
                return Err(shape_err(
                    "needs at least two axes",
                    "[H, W, C] or [S, D]".into(),
                ));
            }
            Ok(vec![*x.last().expect("non-empty")])
        }
        Op::Flatten => Ok(vec![x.iter().product()]),
        Op::Add => {
            if ins[0] != ins[1] {
                return Err(GraphError::Shape {
                    node: node.name.clone(),
                    op: op.kind(),
                    what: "the two inputs differ".into(),
                    got: fmt_shape(ins[1]),
                    expected: fmt_shape(ins[0]),
                });
            }
            Ok(x.clone())
        }
        Op::Embedding { vocab, dim, .. } => {
            if x.len() != 1 {
                return Err(shape_err("input must be a token sequence", "[S]".into()));
            }
            if *vocab == 0 || *dim == 0 {
                return Err(invalid("vocab and dim must be positive".into()));
            }
            match ids_vocab {
                Some(v) if v <= *vocab => {}
                _ => {
                    return Err(invalid(format!(
                        "its input must be token ids of a table <= {vocab} (the graph input's \
                         token_vocab, or a named input's vocab)"
                    )));
                }
            }
            Ok(vec![x[0], *dim])
        }
        Op::Attention {
            heads,
            head_dim,
            key_bias,
            ..
        } => {
            let qkv = 3 * heads * head_dim;
            if x.len() != 2 || x[1] != qkv {
                return Err(shape_err(
                    "input must be fused QKV",
                    format!("[S, {qkv}] (3 x {heads} heads x {head_dim})"),
                ));
            }
            if *key_bias && ins[1].iter().product::<usize>() != x[0] {
                return Err(GraphError::Shape {
                    node: node.name.clone(),
                    op: op.kind(),
                    what: "the key bias must hold one value per key".into(),
                    got: fmt_shape(ins[1]),
                    expected: format!("[{}]", x[0]),
                });
            }
            Ok(vec![x[0], heads * head_dim])
        }
        Op::Input { index } => match input.parts.get(*index) {
            Some(p) => Ok(p.shape.clone()),
            None => Err(invalid(format!(
                "input {index} of a graph with {} named inputs",
                input.parts.len()
            ))),
        },
        Op::Constant { shape } => {
            if shape.is_empty() || shape.contains(&0) {
                return Err(invalid(format!(
                    "constant shape {} must be non-empty",
                    fmt_shape(shape)
                )));
            }
            Ok(shape.clone())
        }
        Op::Pack { names } => {
            if names.len() != ins.len() {
                return Err(invalid(format!(
                    "{} names for {} outputs",
                    names.len(),
                    ins.len()
                )));
            }
            Ok(vec![ins.iter().map(|s| s.iter().product::<usize>()).sum()])
        }
        Op::Binary { .. } => broadcast(x, ins[1]).ok_or_else(|| GraphError::Shape {
            node: node.name.clone(),
            op: op.kind(),
            what: "the inputs do not broadcast (numpy's rule)".into(),
            got: fmt_shape(ins[1]),
            expected: format!("a shape broadcastable with {}", fmt_shape(x)),
        }),
        Op::BinaryConst { shape, .. } => {
            if shape.is_empty() || shape.contains(&0) {
                return Err(invalid(format!(
                    "constant shape {} must be non-empty",
                    fmt_shape(shape)
                )));
            }
            broadcast(x, shape).ok_or_else(|| GraphError::Shape {
                node: node.name.clone(),
                op: op.kind(),
                what: format!("the constant {} does not broadcast", fmt_shape(shape)),
                got: fmt_shape(x),
                expected: format!("a shape broadcastable with {}", fmt_shape(shape)),
            })
        }
        Op::MatMul => MatMulGeom::of(x, ins[1])
            .map(|(_, out)| out)
            .map_err(invalid),
        Op::Transpose { perm } => {
            let mut seen = vec![false; x.len()];
            let ok = perm.len() == x.len()
                && perm
                    .iter()
                    .all(|&p| p < x.len() && !std::mem::replace(&mut seen[p], true));
            if !ok {
                return Err(invalid(format!(
                    "perm {perm:?} is not a permutation of the {} axes of {}",
                    x.len(),
                    fmt_shape(x)
                )));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Reshape { shape } => {
            if shape.is_empty()
                || shape.contains(&0)
                || shape.iter().product::<usize>() != x.iter().product::<usize>()
            {
                return Err(shape_err(
                    &format!("cannot be reshaped to {}", fmt_shape(shape)),
                    format!("{} elements", x.iter().product::<usize>()),
                ));
            }
            Ok(shape.clone())
        }
    }
}
