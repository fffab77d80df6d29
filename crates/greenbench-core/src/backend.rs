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

/// One step of a prepared model's plan with the time its runs spent in it
/// ([`Prepared::step_times`]): where a model's time goes, by the backend's own steps (a step
/// may compute several graph nodes, fused; a node folded into another computes in none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    /// The kernel that ran it, e.g. `direct conv (fp32 tile)`, `depthwise`, `int8 gemm`.
    pub kernel: String,
    /// The graph nodes it computes, in graph order (empty for a border step of no node,
    /// e.g. quantizing the model's input).
    pub nodes: Vec<usize>,
    /// Seconds spent in it, summed over the timed runs (and over the threads of a batch split
    /// across them).
    pub seconds: f64,
    /// Threads whose time `seconds` sums: the workers of a batch split across threads, each
    /// running its own examples; 1 where one thread runs the step at a time.
    pub threads: usize,
    /// Examples it computed over those runs.
    pub examples: u64,
    /// A step shared by a thread team (every thread takes parts of it, a batch too small to
    /// split): each thread's time inside its parts (seconds, summed over the runs; the calling
    /// thread first), while `seconds` is the team's wall time in the step. Empty where one
    /// thread ran each step (or each worker its own examples).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thread_busy: Vec<f64>,
}

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
    /// Time each step of the runs from now on (a clock read around every step, which the
    /// measured cells never pay), or say why this prepared model cannot.
    fn time_steps(&mut self) -> Result<(), String> {
        Err("this backend does not time its steps".into())
    }
    /// The steps timed since [`Prepared::time_steps`], in plan order; steps of the same
    /// kernel over the same nodes (the sub-batch plans of a split batch) summed into one.
    fn step_times(&self) -> Vec<StepTime> {
        Vec::new()
    }
}

/// Adds `t` to `acc`, summed into the entry of the same kernel and nodes if there is one.
pub fn add_step_time(acc: &mut Vec<StepTime>, t: StepTime) {
    match acc
        .iter_mut()
        .find(|a| a.kernel == t.kernel && a.nodes == t.nodes)
    {
        Some(a) => {
            a.seconds += t.seconds;
            a.examples += t.examples;
            if a.thread_busy.len() < t.thread_busy.len() {
                a.thread_busy.resize(t.thread_busy.len(), 0.0);
            }
            a.thread_busy
                .iter_mut()
                .zip(&t.thread_busy)
                .for_each(|(a, t)| *a += t);
        }
        None => acc.push(t),
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
    /// The `n x n x n` product of [`Backend::prepare_matmul`] as the reference of the
    /// machine's speed timed beside each cell (`greenbench_harness::reference`): on one
    /// thread where the backend has threads, so that it reads the machine, not the state of
    /// the cells' thread pool (a 2-thread reference read up to 1.47x slower after a batch-1
    /// cell than after a batch-32 one on the dev VM, 2026-12-06).
    fn prepare_reference(&self, n: usize) -> PrepareResult {
        self.prepare_matmul(n, n, n)
    }
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
