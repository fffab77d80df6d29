//! greenbench-core: the one model description that everything else is derived from.
//!
//! It owns the graph IR ([`Graph`], [`Op`]), shape inference, the analytic FPO / MAC /
//! transcendental count of every node (the rules of `shared/FPO.md`, see [`cost`]), parameter
//! counts, seeded deterministic weights ([`weights`]), the batch-norm folding pass ([`fold`]),
//! the reference model zoo ([`zoo`]) and a plain-loop reference interpreter ([`reference`])
//! that backends are tested against.
//!
//! It knows nothing of ndarray-based execution speed, GPUs, energy or tables: backends
//! (greenbench-cpu, greenbench-gpu) execute a [`Graph`], the harness measures them.

pub mod backend;
pub mod bf16;
pub mod checkpoint;
pub mod cost;
pub mod fold;
pub mod graph;
pub mod host;
pub mod memory;
pub mod model;
pub mod quant;
pub mod reference;
pub mod strided;
pub mod weights;
pub mod zoo;

pub use backend::{Backend, BackendError, DeviceInfo, DeviceKind, PrepareResult, Prepared};
pub use cost::{Cost, GraphCost, NodeCost};
pub use graph::{Graph, GraphError, InputSpec, Node, Op, Padding, Shape};
pub use model::{Examples, Model};
pub use quant::{Precision, QModel};
pub use weights::{Weights, generate_inputs, generate_weights};
pub use zoo::{MODEL_NAMES, ModelError, load_model};
