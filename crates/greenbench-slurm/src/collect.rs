//! `greenbench slurm collect`: merge every finished task's result file; name every task that
//! did not finish (with the tail of its log), keeping all that did.

use crate::fleet::FleetError;
use crate::status::{TaskState, TaskStatus, read_result, status};
use greenbench_results::Loaded;
use std::path::Path;

/// What a fleet measured, and what it did not.
pub struct Collected {
    /// Complete result files of finished tasks.
    pub loaded: Vec<Loaded>,
    /// Tasks without a complete result (pending, running, failed, cancelled, missing).
    pub problems: Vec<TaskStatus>,
    /// Tasks in all.
    pub tasks: usize,
}

/// Gather the fleet in `dir`.
pub fn collect(dir: &Path) -> Result<Collected, FleetError> {
    let tasks = status(dir)?;
    let n = tasks.len();
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for t in tasks {
        match (t.state, read_result(&t.result)) {
            (TaskState::Done, Ok(file)) => loaded.push(Loaded {
                path: t.result.clone(),
                file,
            }),
            _ => problems.push(t),
        }
    }
    Ok(Collected {
        loaded,
        problems,
        tasks: n,
    })
}
