//! The IR's small vocabulary: a graph's input, a named node and the
//! errors of building a graph.

use super::ops::Op;
use super::shape::Shape;
use serde::{Deserialize, Serialize};

/// What the graph's input holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Per-example shape.
    pub shape: Shape,
    /// If set, the input holds token ids in `0..token_vocab` (stored as f32, exact below 2^24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_vocab: Option<usize>,
}

/// A named node. `inputs` name earlier nodes or `"input"`; empty means "the previous node".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Ops folded into this node by a graph pass (e.g. `["batch_norm"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<String>,
}

impl Node {
    /// A node fed by the previous node.
    pub fn new(name: impl Into<String>, op: Op) -> Self {
        Node {
            name: name.into(),
            op,
            inputs: vec![],
            folded: vec![],
        }
    }
    /// A node with named inputs.
    pub fn with_inputs(name: impl Into<String>, op: Op, inputs: &[&str]) -> Self {
        Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            folded: vec![],
        }
    }
}

/// An inconsistent graph. Every variant names the node.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("node `{node}` ({op}): {what}: got shape {got}, expected {expected}")]
    Shape {
        node: String,
        op: &'static str,
        what: String,
        got: String,
        expected: String,
    },
    #[error("node `{node}`: input `{input}` is not an earlier node (or `input`)")]
    UnknownInput { node: String, input: String },
    #[error("node `{node}`: {op} takes {expected} input(s), got {got}")]
    Arity {
        node: String,
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("node name `{0}` is used twice (or is the reserved name `input`)")]
    DuplicateName(String),
    #[error("node `{node}` ({op}): {message}")]
    Invalid {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error("graph `{0}` has no nodes")]
    Empty(String),
}
