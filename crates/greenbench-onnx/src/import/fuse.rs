//! Rewrites of the ONNX node list before the walk: multi-node spellings of one operator that
//! exporters write, recognised and replaced by that operator so that the walk, the op check
//! and the count see one node.
//!
//! * **The decomposed LayerNorm** that torch.onnx writes below opset 17 (BERT, GPT-2 and their
//!   kin exported at opset 14): `m = ReduceMean(x, axes=[-1])`, `d = Sub(x, m)`,
//!   `v = ReduceMean(Pow(d, 2))` (or `Mul(d, d)`), `y = Div(d, Sqrt(Add(v, eps)))`, then
//!   `Mul` by a constant scale and `Add` of a constant bias (either operand first). It becomes
//!   one `LayerNormalization` (epsilon = eps, axis = -1) producing the last value; every value
//!   inside must be read only by the pattern (`d` by its `Pow`/`Mul` and its `Div`), so the
//!   rewrite never changes what the graph computes. A pattern that does not complete is left
//!   alone (its `Sqrt` is then reported like any operator greenbench cannot import).

use crate::decode;
use crate::proto::{AttributeProto, GraphProto, NodeProto, attribute_proto::AttributeType};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The node list with every recognised pattern replaced (the original list when none is).
pub(super) fn rewrite(g: &GraphProto, base: Option<&Path>) -> Vec<NodeProto> {
    let ctx = Ctx::new(g, base);
    let mut drop: HashSet<usize> = HashSet::new();
    let mut replace: HashMap<usize, NodeProto> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type.as_deref() != Some("ReduceMean") || drop.contains(&i) {
            continue;
        }
        if let Some((nodes, fused)) = ctx.layer_norm(i)
            && nodes.iter().all(|j| !drop.contains(j))
        {
            let last = *nodes.iter().max().expect("non-empty");
            drop.extend(nodes.iter().copied().filter(|&j| j != last));
            replace.insert(last, fused);
        }
    }
    if replace.is_empty() {
        return g.node.clone();
    }
    (g.node.iter().enumerate())
        .filter(|(i, _)| !drop.contains(i))
        .map(|(i, n)| replace.remove(&i).unwrap_or_else(|| n.clone()))
        .collect()
}

struct Ctx<'g> {
    g: &'g GraphProto,
    base: Option<&'g Path>,
    /// Value name -> the nodes that read it (graph outputs count as a reader `usize::MAX`).
    readers: HashMap<&'g str, Vec<usize>>,
    /// Value name -> the node that writes it.
    writer: HashMap<&'g str, usize>,
}

fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// Whether node `n`'s inputs are exactly `want`, in order.
fn inputs_are(n: &NodeProto, want: &[&str]) -> bool {
    n.input.len() == want.len() && n.input.iter().zip(want).all(|(a, b)| a == b)
}

impl<'g> Ctx<'g> {
    fn new(g: &'g GraphProto, base: Option<&'g Path>) -> Self {
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut writer = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for v in &n.input {
                readers.entry(v.as_str()).or_default().push(i);
            }
            for v in &n.output {
                writer.insert(v.as_str(), i);
            }
        }
        for o in &g.output {
            readers
                .entry(o.name.as_deref().unwrap_or(""))
                .or_default()
                .push(usize::MAX);
        }
        Ctx {
            g,
            base,
            readers,
            writer,
        }
    }

    fn node(&self, i: usize) -> &'g NodeProto {
        &self.g.node[i]
    }

    fn out(&self, i: usize) -> &'g str {
        self.node(i).output.first().map_or("", String::as_str)
    }

    /// The one node reading `v`, if exactly one does (and it is not a graph output).
    fn sole_reader(&self, v: &str) -> Option<usize> {
        match self.readers.get(v).map(Vec::as_slice) {
            Some([r]) if *r != usize::MAX => Some(*r),
            _ => None,
        }
    }

    /// The values of a constant: an initializer or a `Constant` node's `value`.
    fn constant(&self, v: &str) -> Option<Vec<f32>> {
        if let Some(t) = self
            .g
            .initializer
            .iter()
            .find(|t| t.name.as_deref() == Some(v))
        {
            return decode::tensor_values(t, self.base).ok().map(|t| t.to_f32());
        }
        let n = self.node(*self.writer.get(v)?);
        if op(n) != "Constant" {
            return None;
        }
        let a = n
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("value"))?;
        decode::tensor_values(a.t.as_ref()?, self.base)
            .ok()
            .map(|t| t.to_f32())
    }

    fn is_constant(&self, v: &str) -> bool {
        self.g
            .initializer
            .iter()
            .any(|t| t.name.as_deref() == Some(v))
            || self
                .writer
                .get(v)
                .is_some_and(|&i| op(self.node(i)) == "Constant")
    }

    fn scalar(&self, v: &str) -> Option<f32> {
        match self.constant(v)?.as_slice() {
            [x] => Some(*x),
            _ => None,
        }
    }

    /// A ReduceMean over the last axis only, keeping it.
    fn mean_last(&self, i: usize) -> bool {
        let n = self.node(i);
        if op(n) != "ReduceMean" {
            return false;
        }
        let keep = n
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("keepdims"))
            .and_then(|a| a.i)
            .unwrap_or(1);
        let axes: Option<Vec<i64>> = match n.input.get(1).filter(|s| !s.is_empty()) {
            Some(a) => self
                .constant(a)
                .map(|v| v.iter().map(|&x| x as i64).collect()),
            None => n
                .attribute
                .iter()
                .find(|a| a.name.as_deref() == Some("axes"))
                .map(|a| a.ints.clone()),
        };
        keep != 0 && axes.as_deref() == Some(&[-1])
    }

    /// The other operand of binary node `i` when one of its two inputs is `v`.
    fn other(&self, i: usize, v: &str) -> Option<&'g str> {
        match self.node(i).input.as_slice() {
            [a, b] if a == v => Some(b),
            [a, b] if b == v => Some(a),
            _ => None,
        }
    }

    /// The decomposed LayerNorm starting at ReduceMean node `i`: the nodes it spans and the
    /// one `LayerNormalization` that replaces them.
    fn layer_norm(&self, i: usize) -> Option<(Vec<usize>, NodeProto)> {
        if !self.mean_last(i) {
            return None;
        }
        let x = self.node(i).input.first()?.as_str();
        let mean = self.out(i);
        let sub = self.sole_reader(mean)?;
        let n_sub = self.node(sub);
        if op(n_sub) != "Sub" || !inputs_are(n_sub, &[x, mean]) {
            return None;
        }
        let d = self.out(sub);
        // d is read twice: by the square and by the division.
        let mut rd = self.readers.get(d)?.clone();
        rd.dedup();
        let [r1, r2] = rd.as_slice() else {
            return None;
        };
        let (sq, div) = if op(self.node(*r1)) == "Div" {
            (*r2, *r1)
        } else {
            (*r1, *r2)
        };
        let n_sq = self.node(sq);
        let squares = match op(n_sq) {
            "Pow" => {
                n_sq.input.first().map(String::as_str) == Some(d)
                    && n_sq.input.get(1).and_then(|e| self.scalar(e)) == Some(2.0)
            }
            "Mul" => inputs_are(n_sq, &[d, d]),
            _ => false,
        };
        if !squares {
            return None;
        }
        let var = self.sole_reader(self.out(sq))?;
        if !self.mean_last(var) {
            return None;
        }
        let add_eps = self.sole_reader(self.out(var))?;
        if op(self.node(add_eps)) != "Add" {
            return None;
        }
        let eps = self.scalar(self.other(add_eps, self.out(var))?)?;
        let sqrt = self.sole_reader(self.out(add_eps))?;
        if op(self.node(sqrt)) != "Sqrt" {
            return None;
        }
        let n_div = self.node(div);
        if op(n_div) != "Div" || !inputs_are(n_div, &[d, self.out(sqrt)]) {
            return None;
        }
        let mut nodes = vec![i, sub, sq, var, add_eps, sqrt, div];
        // The affine: a constant scale, then optionally a constant bias.
        let mul = self.sole_reader(self.out(div))?;
        if op(self.node(mul)) != "Mul" {
            return None;
        }
        let gamma = self.other(mul, self.out(div))?;
        if !self.is_constant(gamma) {
            return None;
        }
        nodes.push(mul);
        let mut last = mul;
        let mut inputs = vec![x.to_string(), gamma.to_string()];
        if let Some(add) = self.sole_reader(self.out(mul))
            && op(self.node(add)) == "Add"
            && let Some(beta) = self.other(add, self.out(mul))
            && self.is_constant(beta)
        {
            nodes.push(add);
            last = add;
            inputs.push(beta.to_string());
        }
        let name = self.node(last).name.clone().unwrap_or_default();
        let attr_f = |name: &str, f: f32| AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(f),
            ..Default::default()
        };
        let attr_i = |name: &str, i: i64| AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(i),
            ..Default::default()
        };
        let fused = NodeProto {
            name: Some(name),
            op_type: Some("LayerNormalization".into()),
            input: inputs,
            output: vec![self.out(last).to_string()],
            attribute: vec![attr_f("epsilon", eps), attr_i("axis", -1)],
            ..Default::default()
        };
        Some((nodes, fused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{TensorProto, ValueInfoProto, tensor_proto::DataType};

    fn node(op: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
        NodeProto {
            name: Some(format!("{op}:{}", outs[0])),
            op_type: Some(op.into()),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn mean(x: &str, y: &str, axis: i64) -> NodeProto {
        let mut n = node("ReduceMean", &[x], &[y]);
        n.attribute.push(AttributeProto {
            name: Some("axes".into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: vec![axis],
            ..Default::default()
        });
        n
    }

    fn init(name: &str, v: &[f32]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: if v.len() == 1 {
                vec![]
            } else {
                vec![v.len() as i64]
            },
            data_type: Some(DataType::Float as i32),
            float_data: v.to_vec(),
            ..Default::default()
        }
    }

    /// torch's opset-14 LayerNorm of `x` into `y`; `square` is "Pow" or "Mul".
    fn graph(square: &str, axis: i64, bias: bool) -> GraphProto {
        let mut n = vec![
            mean("x", "m", axis),
            node("Sub", &["x", "m"], &["d"]),
            if square == "Pow" {
                node("Pow", &["d", "two"], &["sq"])
            } else {
                node("Mul", &["d", "d"], &["sq"])
            },
            mean("sq", "v", -1),
            node("Add", &["v", "eps"], &["ve"]),
            node("Sqrt", &["ve"], &["s"]),
            node("Div", &["d", "s"], &["y0"]),
            node("Mul", &["gamma", "y0"], &[if bias { "y1" } else { "y" }]),
        ];
        if bias {
            n.push(node("Add", &["y1", "beta"], &["y"]));
        }
        GraphProto {
            node: n,
            initializer: vec![
                init("two", &[2.0]),
                init("eps", &[1e-12]),
                init("gamma", &[1.0, 2.0]),
                init("beta", &[0.5, 0.5]),
            ],
            output: vec![ValueInfoProto {
                name: Some("y".into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_decomposed_layer_norm_becomes_one_node() {
        for square in ["Pow", "Mul"] {
            let out = rewrite(&graph(square, -1, true), None);
            assert_eq!(out.len(), 1, "{square}: {out:?}");
            let ln = &out[0];
            assert_eq!(ln.op_type.as_deref(), Some("LayerNormalization"));
            assert_eq!(ln.input, ["x", "gamma", "beta"]);
            assert_eq!(ln.output, ["y"]);
            let eps = ln
                .attribute
                .iter()
                .find(|a| a.name.as_deref() == Some("epsilon"));
            assert_eq!(eps.and_then(|a| a.f), Some(1e-12));
        }
        // Without the bias, the scale's Mul is the last node.
        let out = rewrite(&graph("Pow", -1, false), None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].input, ["x", "gamma"]);
    }

    #[test]
    fn anything_but_the_whole_pattern_is_left_alone() {
        // A mean over another axis is not a layer norm.
        assert_eq!(rewrite(&graph("Pow", 1, true), None).len(), 9);
        // The centred value read elsewhere too (here: a graph output).
        let mut g = graph("Pow", -1, true);
        g.output.push(ValueInfoProto {
            name: Some("d".into()),
            ..Default::default()
        });
        assert_eq!(rewrite(&g, None).len(), 9);
        // A cube is not a variance.
        let mut g = graph("Pow", -1, true);
        g.initializer[0] = init("two", &[3.0]);
        assert_eq!(rewrite(&g, None).len(), 9);
        // A scale computed from the input is not a constant.
        let mut g = graph("Pow", -1, true);
        g.initializer.retain(|t| t.name.as_deref() != Some("gamma"));
        assert_eq!(rewrite(&g, None).len(), 9);
    }
}
