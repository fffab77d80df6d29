//! The graph type: nodes in order over one input, validated when built (from nodes or from
//! its serialised form), with every value's shape and each node's geometry at hand.

use super::geom::{ConvGeom, PoolGeom, conv_geom, pool_geom};
use super::infer::infer;
use super::node::{GraphError, InputSpec, Node};
use super::ops::Op;
use super::shape::{Shape, fmt_shape};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The serialised form of a graph.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphDesc {
    pub name: String,
    pub input: InputSpec,
    pub nodes: Vec<Node>,
}

/// A validated model graph: nodes in topological order with inferred shapes.
///
/// Values are numbered: 0 is the graph input, `i + 1` the output of node `i`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GraphDesc", into = "GraphDesc")]
pub struct Graph {
    pub name: String,
    pub input: InputSpec,
    pub nodes: Vec<Node>,
    srcs: Vec<Vec<usize>>,
    shapes: Vec<Shape>,
}

impl TryFrom<GraphDesc> for Graph {
    type Error = GraphError;
    fn try_from(d: GraphDesc) -> Result<Self, GraphError> {
        Graph::new(d.name, d.input, d.nodes)
    }
}

impl From<Graph> for GraphDesc {
    fn from(g: Graph) -> Self {
        GraphDesc {
            name: g.name,
            input: g.input,
            nodes: g.nodes,
        }
    }
}

/// A packed input's parts: named once each, non-empty, filling the input exactly.
fn check_parts(input: &InputSpec) -> Result<(), GraphError> {
    if input.parts.is_empty() {
        return Ok(());
    }
    let bad = |message: String| {
        Err(GraphError::Invalid {
            node: "input".into(),
            op: "input",
            message,
        })
    };
    let total: usize = input.parts.iter().map(|p| p.len()).sum();
    if input.shape != [total] || input.token_vocab.is_some() {
        return bad(format!(
            "an input of {} named parts has shape [{total}] (their lengths summed) and no \
             token_vocab of its own, not {}",
            input.parts.len(),
            fmt_shape(&input.shape)
        ));
    }
    for (k, p) in input.parts.iter().enumerate() {
        if p.shape.is_empty() || p.shape.contains(&0) {
            return bad(format!("input `{}` has an empty shape", p.name));
        }
        if input.parts[..k].iter().any(|q| q.name == p.name) {
            return bad(format!("input name `{}` is used twice", p.name));
        }
    }
    Ok(())
}

impl Graph {
    /// Build and validate a graph.
    pub fn new(
        name: impl Into<String>,
        input: InputSpec,
        nodes: Vec<Node>,
    ) -> Result<Graph, GraphError> {
        let name = name.into();
        if nodes.is_empty() {
            return Err(GraphError::Empty(name));
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        ids.insert("input", 0);
        let mut srcs = Vec::with_capacity(nodes.len());
        let mut shapes = vec![input.shape.clone()];
        if input.shape.is_empty() || input.shape.contains(&0) {
            return Err(GraphError::Invalid {
                node: "input".into(),
                op: "input",
                message: format!("input shape {} must be non-empty", fmt_shape(&input.shape)),
            });
        }
        check_parts(&input)?;
        // The table each value's ids index, where the value is ids (an embedding's input).
        let mut vocabs = vec![input.token_vocab];
        let last = nodes.len() - 1;
        for (i, node) in nodes.iter().enumerate() {
            let src: Vec<usize> = if node.inputs.is_empty() {
                // A named input or a constant reads the graph input; anything else the
                // previous node.
                vec![
                    if matches!(node.op, Op::Input { .. } | Op::Constant { .. }) {
                        0
                    } else {
                        i
                    },
                ]
            } else {
                node.inputs
                    .iter()
                    .map(|n| {
                        ids.get(n.as_str())
                            .copied()
                            .ok_or_else(|| GraphError::UnknownInput {
                                node: node.name.clone(),
                                input: n.clone(),
                            })
                    })
                    .collect::<Result<_, _>>()?
            };
            let arity = node.op.arity();
            // A two-input op fed implicitly has only one input: report that.
            let variadic_ok = arity == usize::MAX && !src.is_empty();
            if src.len() != arity && !variadic_ok {
                return Err(GraphError::Arity {
                    node: node.name.clone(),
                    op: node.op.kind(),
                    expected: arity,
                    got: src.len(),
                });
            }
            let misplaced = match node.op {
                Op::Input { .. } if src != [0] => Some("reads the graph input `input` only"),
                Op::Pack { .. } if i != last => Some("must be the graph's last node"),
                _ => None,
            };
            if let Some(message) = misplaced {
                return Err(GraphError::Invalid {
                    node: node.name.clone(),
                    op: node.op.kind(),
                    message: message.into(),
                });
            }
            let in_shapes: Vec<&Shape> = src.iter().map(|&s| &shapes[s]).collect();
            let out = infer(node, &in_shapes, &input, vocabs[src[0]])?;
            vocabs.push(match &node.op {
                Op::Input { index } => input.parts[*index].vocab,
                Op::Reshape { .. } | Op::Flatten => vocabs[src[0]],
                _ => None,
            });
            if ids.insert(node.name.as_str(), i + 1).is_some() {
                return Err(GraphError::DuplicateName(node.name.clone()));
            }
            srcs.push(src);
            shapes.push(out);
        }
        Ok(Graph {
            name,
            input,
            nodes,
            srcs,
            shapes,
        })
    }

    /// Per-example shape of value `v` (0 = graph input, i + 1 = node i).
    pub fn value_shape(&self, v: usize) -> &Shape {
        &self.shapes[v]
    }
    /// Per-example output shape of node `i`.
    pub fn out_shape(&self, i: usize) -> &Shape {
        &self.shapes[i + 1]
    }
    /// Per-example shape of the graph output (the last node).
    pub fn output_shape(&self) -> &Shape {
        self.shapes.last().expect("graph has nodes")
    }
    /// Value ids feeding node `i`.
    pub fn node_inputs(&self, i: usize) -> &[usize] {
        &self.srcs[i]
    }
    /// What a backend's planner reads of node `i` at `batch`: `(its input values, the first
    /// input's per-example shape, that shape's last dimension (a dense layer's reduction
    /// length), the whole batch's output length)`.
    pub fn node_io(&self, i: usize, batch: usize) -> (&[usize], &[usize], usize, usize) {
        let inputs = self.node_inputs(i);
        let in_shape = self.value_shape(inputs[0]);
        let last = *in_shape.last().expect("shapes are non-empty");
        let out_len = batch * self.out_shape(i).iter().product::<usize>();
        (inputs, in_shape, last, out_len)
    }
    /// Per-example input element count.
    pub fn input_len(&self) -> usize {
        self.input.shape.iter().product()
    }
    /// Per-example output element count.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
    /// Number of nodes that consume value `v`.
    pub fn consumers(&self, v: usize) -> usize {
        self.srcs.iter().flatten().filter(|&&s| s == v).count()
    }

    /// Whether node `i` (a conv2d or dense) is followed by a ReLU that is its output's only
    /// consumer, so a backend may apply the ReLU in node `i`'s epilogue and skip node `i + 1`.
    pub fn relu_fusable(&self, i: usize) -> bool {
        let v = i + 1;
        matches!(self.nodes[i].op, Op::Conv2d { .. } | Op::Dense { .. })
            && self
                .nodes
                .get(i + 1)
                .is_some_and(|n| matches!(n.op, Op::Relu))
            && self.node_inputs(i + 1) == [v]
            && self.consumers(v) == 1
    }

    /// Geometry of conv node `i`. Panics if node `i` is not a conv2d.
    pub fn conv_geom(&self, i: usize) -> ConvGeom {
        conv_geom(&self.nodes[i].op, &self.shapes[self.srcs[i][0]]).expect("validated conv")
    }
    /// Geometry of pooling node `i`. Panics if node `i` is not a max/avg pool.
    pub fn pool_geom(&self, i: usize) -> PoolGeom {
        pool_geom(&self.nodes[i].op, &self.shapes[self.srcs[i][0]]).expect("validated pool")
    }

    /// Check a flattened batch-major input for `batch` examples: its length, and for token
    /// inputs that every id is an integer inside the vocabulary (an out-of-range id would
    /// index outside the embedding table); for several named inputs, each part's values.
    pub fn check_input(&self, input: &[f32], batch: usize) -> Result<(), String> {
        let want = batch * self.input_len();
        if input.len() != want {
            return Err(format!(
                "input has {} values, the prepared model takes {want} ({batch} x {})",
                input.len(),
                fmt_shape(&self.input.shape)
            ));
        }
        if let Some(v) = self.input.token_vocab
            && let Some(bad) = input
                .iter()
                .find(|&&t| !(t >= 0.0 && (t as usize) < v && t.fract() == 0.0))
        {
            return Err(format!("token id {bad} is outside the vocabulary 0..{v}"));
        }
        if !self.input.parts.is_empty() {
            for example in input.chunks(self.input_len()) {
                let mut at = 0;
                for p in &self.input.parts {
                    p.check(&example[at..at + p.len()])?;
                    at += p.len();
                }
            }
        }
        Ok(())
    }

    /// The graph's outputs by name with their per-example shapes: a [`Op::Pack`]'s inputs,
    /// or the last node's value named `output`.
    pub fn output_parts(&self) -> Vec<(String, Shape)> {
        let last = self.nodes.len() - 1;
        match &self.nodes[last].op {
            Op::Pack { names } => names
                .iter()
                .zip(self.node_inputs(last))
                .map(|(n, &v)| (n.clone(), self.value_shape(v).clone()))
                .collect(),
            _ => vec![("output".into(), self.output_shape().clone())],
        }
    }

    /// Parse a graph from its JSON description.
    pub fn from_json(text: &str) -> Result<Graph, serde_json::Error> {
        serde_json::from_str(text)
    }
    /// The graph's JSON description.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("graph serialises")
    }
}
