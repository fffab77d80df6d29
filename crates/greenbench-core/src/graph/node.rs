//! The IR's small vocabulary: a graph's input, a named node and the
//! errors of building a graph.

use super::ops::Op;
use super::shape::Shape;
use serde::{Deserialize, Serialize};

/// What the graph's input holds.
///
/// A model with several inputs (a transformer's `input_ids`, `attention_mask`,
/// `token_type_ids`) lists them in `parts`: each example's input is then the parts' values
/// one after the other (`shape` is `[sum of the parts' lengths]`), and an [`Op::Input`] node
/// reads one part under its own shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Per-example shape.
    pub shape: Shape,
    /// If set, the input holds token ids in `0..token_vocab` (stored as f32, exact below 2^24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_vocab: Option<usize>,
    /// The named inputs packed into this one, in order (empty: one input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<InputPart>,
}

impl InputSpec {
    /// One input of `shape` (token ids if `token_vocab`).
    pub fn new(shape: Shape, token_vocab: Option<usize>) -> Self {
        InputSpec {
            shape,
            token_vocab,
            parts: vec![],
        }
    }
    /// Several named inputs packed per example.
    pub fn packed(parts: Vec<InputPart>) -> Self {
        let len = parts.iter().map(InputPart::len).sum();
        InputSpec {
            shape: vec![len],
            token_vocab: None,
            parts,
        }
    }
    /// Where part `index` starts in an example's packed values.
    pub fn part_offset(&self, index: usize) -> usize {
        self.parts[..index].iter().map(InputPart::len).sum()
    }
    /// The parts, or the one input as a part named `input` (for code that treats both alike).
    pub fn parts_or_whole(&self) -> Vec<InputPart> {
        if !self.parts.is_empty() {
            return self.parts.clone();
        }
        let role = match self.token_vocab {
            Some(_) => InputRole::TokenIds,
            None => InputRole::Values,
        };
        vec![InputPart {
            name: "input".into(),
            shape: self.shape.clone(),
            dtype: if self.token_vocab.is_some() {
                DType::I64
            } else {
                DType::F32
            },
            role,
            vocab: self.token_vocab,
        }]
    }
}

/// What one of a model's named inputs holds: how `run` generates it and how its values are
/// checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRole {
    /// Real numbers (an image, audio, features): generated normal.
    #[default]
    Values,
    /// Token ids indexing an embedding table of `vocab` rows: generated uniform in it.
    TokenIds,
    /// Segment (token type) ids: generated zeros, checked inside `vocab`.
    TypeIds,
    /// An attention mask, 1 for a real token and 0 for padding: generated all ones, checked
    /// to hold 0s and 1s only.
    AttentionMask,
}

/// The element type an input has in the file the model came from (greenbench computes in
/// f32; ids and masks are exact in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    #[default]
    F32,
    I64,
    I32,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }
}

/// One named input of a model with several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputPart {
    pub name: String,
    /// Per-example shape.
    pub shape: Shape,
    #[serde(default)]
    pub dtype: DType,
    #[serde(default)]
    pub role: InputRole,
    /// For ids: the size of the table they index (`0..vocab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<usize>,
}

impl InputPart {
    /// Per-example element count.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the part holds no values (never, in a valid graph).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Check one example's values of this part: ids inside their table, masks 0 or 1.
    pub fn check(&self, values: &[f32]) -> Result<(), String> {
        if let Some(v) = self.vocab
            && let Some(bad) = values
                .iter()
                .find(|&&t| !(t >= 0.0 && (t as usize) < v && t.fract() == 0.0))
        {
            return Err(format!(
                "`{}`: id {bad} is outside the table 0..{v}",
                self.name
            ));
        }
        if self.role == InputRole::AttentionMask
            && let Some(bad) = values.iter().find(|&&t| t != 0.0 && t != 1.0)
        {
            return Err(format!(
                "`{}`: an attention mask holds 1 (token) or 0 (padding), not {bad}",
                self.name
            ));
        }
        Ok(())
    }
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
