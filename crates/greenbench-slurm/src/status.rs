//! `greenbench slurm status`: each task's state, from `squeue` (which also remembers recently
//! finished jobs), `sacct` where accounting exists, and the task's files otherwise.

use crate::fleet::{Fleet, FleetError};
use crate::submit::slurm_command;
use greenbench_harness::record::{ResultFile, RunStatus};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Running,
    /// Finished, with a complete result file.
    Done,
    Failed,
    Cancelled,
    /// Not known to Slurm any more and no trace on disk.
    Missing,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Missing => "missing",
        })
    }
}

/// One task of one array job.
#[derive(Clone, Debug)]
pub struct TaskStatus {
    pub partition: String,
    pub job_id: String,
    pub task: usize,
    pub state: TaskState,
    /// What told the state (`squeue`, `sacct`, `files`) and anything else worth saying.
    pub detail: String,
    pub result: PathBuf,
    pub log: PathBuf,
}

impl TaskStatus {
    /// The last `n` lines of the task's Slurm log (empty when it has none).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Scheduler state names -> ours.
fn from_slurm(state: &str) -> TaskState {
    let s = state.split_whitespace().next().unwrap_or("");
    match s {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "RESV_DEL_HOLD" | "SUSPENDED" => {
            TaskState::Pending
        }
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => TaskState::Running,
        "COMPLETED" => TaskState::Done,
        s if s.starts_with("CANCELLED") => TaskState::Cancelled,
        _ => TaskState::Failed,
    }
}

/// Task index -> scheduler state, from `program args` printing lines `<id>|<STATE>`, where
/// `<id>` is the task index or `<job>_<task>`; `None` when the command fails or says nothing.
fn task_states(program: &str, args: &[&str]) -> Option<HashMap<usize, String>> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = slurm_command(program, &args).ok()?;
    let m: HashMap<usize, String> = out
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once('|')?;
            let task = id.rsplit('_').next()?;
            Some((task.trim().parse().ok()?, state.trim().to_string()))
        })
        .collect();
    (!m.is_empty()).then_some(m)
}

/// From `squeue -t all` (which keeps finished jobs for the controller's MinJobAge), else
/// `sacct` (where accounting exists): the states and which command told them.
fn scheduler_states(job: &str) -> Option<(HashMap<usize, String>, &'static str)> {
    let squeue = ["-h", "-r", "-t", "all", "-j", job, "-o", "%K|%T"];
    let sacct = ["-n", "-P", "-X", "-j", job, "-o", "JobID,State"];
    task_states("squeue", &squeue)
        .map(|m| (m, "squeue"))
        .or_else(|| task_states("sacct", &sacct).map(|m| (m, "sacct")))
}

/// A task's result file: `Ok` when complete, else why not.
pub(crate) fn read_result(path: &Path) -> Result<ResultFile, String> {
    if !path.exists() {
        return Err("no result file".into());
    }
    let f = ResultFile::load(path).map_err(|e| format!("result file unreadable: {e}"))?;
    match f.status {
        RunStatus::Complete => Ok(f),
        other => Err(format!(
            "result file says {other:?} (interrupted or still being written)"
        )),
    }
}

/// Every task of every job of the fleet in `dir`.
pub fn status(dir: &Path) -> Result<Vec<TaskStatus>, FleetError> {
    let fleet = Fleet::load(dir)?;
    if fleet.jobs.is_empty() {
        return Err(FleetError::Invalid(format!(
            "{}: nothing was submitted (a --dry-run); submit with `greenbench slurm submit`",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    for job in &fleet.jobs {
        let (states, source) =
            scheduler_states(&job.job_id).unwrap_or_else(|| (HashMap::new(), "files"));
        for task in 0..fleet.shards {
            let result = Fleet::result_path(dir, &job.partition, task);
            let log = Fleet::log_path(dir, &job.job_id, task);
            let file = read_result(&result);
            let (state, detail) = match states.get(&task) {
                Some(s) => {
                    let st = from_slurm(s);
                    match (st, &file) {
                        (TaskState::Done, Err(why)) => {
                            (TaskState::Failed, format!("{source}: {s}, but {why}"))
                        }
                        _ => (st, format!("{source}: {s}")),
                    }
                }
                None => match &file {
                    Ok(_) => (TaskState::Done, "files: complete result".into()),
                    Err(why) if log.exists() => {
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        if text.contains("CANCELLED") {
                            (
                                TaskState::Cancelled,
                                format!("files: log says cancelled; {why}"),
                            )
                        } else {
                            (TaskState::Failed, format!("files: log but {why}"))
                        }
                    }
                    Err(_) => (
                        TaskState::Missing,
                        "unknown to Slurm, no log, no result file".into(),
                    ),
                },
            };
            out.push(TaskStatus {
                partition: job.partition.clone(),
                job_id: job.job_id.clone(),
                task,
                state,
                detail,
                result,
                log,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_states() {
        assert_eq!(from_slurm("COMPLETED"), TaskState::Done);
        assert_eq!(from_slurm("CANCELLED by 0"), TaskState::Cancelled);
        assert_eq!(from_slurm("OUT_OF_MEMORY"), TaskState::Failed);
        assert_eq!(from_slurm("TIMEOUT"), TaskState::Failed);
        assert_eq!(from_slurm("PENDING"), TaskState::Pending);
        assert_eq!(from_slurm("COMPLETING"), TaskState::Running);
    }
}
