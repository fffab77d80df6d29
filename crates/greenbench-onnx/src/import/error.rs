//! What went wrong importing a file: the operators that cannot be imported (all of them, with
//! nodes and counts), one node's unsupported form, a malformed model or graph.

use crate::decode::DecodeError;
use greenbench_core::ModelError;
use greenbench_core::graph::GraphError;

/// What went wrong importing a file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(
        "{file}: {count} operator{s} greenbench cannot import: {list}. Supported: {supported}",
        s = if *count == 1 { "" } else { "s" },
    )]
    Unsupported {
        file: String,
        count: usize,
        list: String,
        /// The operators that can be imported, comma-separated ([`super::supported_ops`]).
        supported: String,
    },
    #[error("{file}: node \"{node}\" ({op}, opset {opset}): {message}")]
    Node {
        file: String,
        node: String,
        op: String,
        opset: i64,
        message: String,
    },
    #[error("{file}: {message}")]
    Model { file: String, message: String },
    #[error("{file}: the imported graph is not valid: {err}")]
    Graph { file: String, err: Box<GraphError> },
    #[error("{file}: {err}")]
    Fold { file: String, err: Box<ModelError> },
}
