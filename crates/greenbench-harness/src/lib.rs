//! greenbench-harness: how greenbench measures, and what it writes down.
//!
//! It owns the measuring protocol of DESIGN.md ([`protocol`]: warm-up by duration, K >= 5
//! windows, several distinct input buffers), its statistics ([`stats`]: median, a
//! distribution-free 95 % interval, coefficient of variation), the environment fingerprint
//! ([`env`]), the versioned result schema with atomic, incremental saving ([`record`]), the
//! suite runner that ties them together ([`runner`]), the measurements it takes again after the
//! cells ([`recheck`]: the peak, the run's first cell), parity between backends
//! ([`parity`]: every backend against the CPU, the CPU against the reference interpreter), and
//! the measured training sweep whose cells price an experiment's E·D·H ([`training`]), and the
//! measurement of any other program's run ([`tracking`]: `greenbench track -- CMD`).
//!
//! It drives backends only through `greenbench_core::Backend`: it knows nothing of ndarray,
//! wgpu, or how a table is drawn.

pub mod cluster;
pub mod energy;
pub mod env;
pub mod host_load;
pub mod observer;
pub mod parity;
pub mod peak;
pub mod presence;
pub mod protocol;
pub mod recheck;
pub mod record;
pub mod reference;
pub mod runner;
pub mod stats;
pub mod tracking;
pub mod training;

pub use protocol::Profile;
pub use record::{Cell, Environment, ResultFile, SCHEMA_VERSION};
