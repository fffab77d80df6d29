//! The backend contract that the harness drives (DESIGN.md, "The backend contract").
//!
//! `prepare` does every one-off cost (weight packing or upload, pipeline compilation, buffer
//! allocation); [`Prepared::run`] does one batch and returns only when the work is complete.
//! Backends know nothing of timing protocols, energy or tables.

use crate::graph::Graph;
use crate::quant::{Precision, QModel};
use crate::weights::Weights;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What kind of device executes a backend's work. A `Software` device (a CPU emulating a
/// GPU API, e.g. Mesa's lavapipe / llvmpipe) is never to be presented as GPU speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Gpu,
    Software,
}

/// The device a backend runs on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Human name, e.g. the CPU model or the GPU adapter name.
    pub name: String,
    pub kind: DeviceKind,
    /// Worker threads used (CPU backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Driver / implementation details (GEMM kernel, graphics driver...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// A backend failure. The message says what failed and, where possible, what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{backend} does not support node `{node}` ({op}): {why}")]
    Unsupported {
        backend: String,
        node: String,
        op: String,
        why: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{backend} failed: {message}")]
    Failed { backend: String, message: String },
}

/// What [`Backend::prepare`] and [`Backend::prepare_matmul`] return.
pub type PrepareResult = Result<Box<dyn Prepared>, BackendError>;

/// A model (or kernel) ready to run at a fixed batch size.
pub trait Prepared {
    /// Run one batch. `input` is batch-major, flattened, `batch * input_len` values. Returns
    /// the flattened output once the work is complete.
    fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError>;
    /// How this prepared model computes where its arithmetic differs from the FPO counted
    /// for it (e.g. a fast convolution algorithm doing fewer multiplies than the model's
    /// counted work): shown with the cell, and named when a cell reads above the peak.
    fn algorithm_note(&self) -> Option<String> {
        None
    }
    /// How this prepared model uses the machine where that differs from what was asked (e.g.
    /// a batch-1 run kept on one thread because splitting it measured slower here): shown
    /// with the cell.
    fn execution_note(&self) -> Option<String> {
        None
    }
    /// Device-only time of the last `run`, where the device can tell (GPU timestamp queries).
    fn device_time(&self) -> Option<Duration> {
        None
    }
}

/// An executor of model graphs.
pub trait Backend {
    /// Short name used in tables and result files, e.g. `cpu`.
    fn name(&self) -> &str;
    /// The device it runs on.
    fn device(&self) -> DeviceInfo;
    /// Prepare `graph` (already folded) with `weights` at `batch`.
    fn prepare(&self, graph: &Graph, weights: &Weights, batch: usize) -> PrepareResult;
    /// Prepare a plain `[m, k] x [k, n]` fp32 matrix product with a fixed right-hand side
    /// (used to measure the backend's attainable peak): value `i` (row-major) is
    /// `((i % 17) - 8) / 8`. Input is the `[m, k]` matrix.
    fn prepare_matmul(&self, m: usize, k: usize, n: usize) -> PrepareResult;
    /// The precisions this backend runs.
    fn precisions(&self) -> Vec<Precision> {
        vec![Precision::Fp32]
    }
    /// How this backend runs `p`, where that needs saying (shown with each cell of it): e.g.
    /// bf16 on the CPU's bf16 instructions, or emulated (operands rounded, fp32 arithmetic).
    fn precision_note(&self, p: Precision) -> Option<String> {
        let _ = p;
        None
    }
    /// Prepare a quantized model (`greenbench_core::quant`) at `batch`. Backends without an
    /// int8 path refuse, naming the precisions they run.
    fn prepare_quantized(&self, qm: &QModel, batch: usize) -> PrepareResult {
        let _ = (qm, batch);
        Err(BackendError::Invalid(format!(
            "the {} backend runs precision {} only; int8 runs on the cpu backend",
            self.name(),
            self.precisions()
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
