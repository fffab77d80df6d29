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

/// Label every cell's host `host/partition`, so the merged file and its report keep one row
/// per partition (node type) even where partitions share hosts.
fn label_partition(file: &mut greenbench_harness::record::ResultFile, partition: &str) {
    let host = file.environment.machine.hostname.clone();
    for c in &mut file.cells {
        let h = c.host.clone().unwrap_or_else(|| host.clone());
        c.host = Some(format!("{h}/{partition}"));
    }
}

/// Gather the fleet in `dir`; each collected cell's host reads `host/partition`.
pub fn collect(dir: &Path) -> Result<Collected, FleetError> {
    let tasks = status(dir)?;
    let n = tasks.len();
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for t in tasks {
        match (t.state, read_result(&t.result)) {
            (TaskState::Done, Ok(mut file)) => {
                label_partition(&mut file, &t.partition);
                loaded.push(Loaded {
                    path: t.result.clone(),
                    file,
                })
            }
            _ => problems.push(t),
        }
    }
    Ok(Collected {
        loaded,
        problems,
        tasks: n,
    })
}
