//! The fleet directory: its layout, `fleet.json`, and the job script.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What went wrong with a fleet; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "Slurm was not found (no `{0}` on PATH). Without a cluster, `greenbench run --shard I/N` \
         runs slice I of N anywhere; run every I and `greenbench merge` the files"
    )]
    NoSlurm(String),
    #[error("{command} failed{partition}: {message}")]
    Slurm {
        command: String,
        partition: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} is not a fleet directory (no readable fleet.json); give the --dir of a `greenbench slurm submit`"
    )]
    NotAFleet(PathBuf),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What each task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `greenbench run`: a shard of the cell matrix.
    Run,
    /// `greenbench train --sweep`: a shard of the sweep's points.
    Train,
}

/// One submitted array job: every task of the fleet on one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The partition asked for (`default`: Slurm's default partition).
    pub partition: String,
    pub job_id: String,
}

/// What `fleet.json` records of a submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub greenbench_version: String,
    pub git_commit: Option<String>,
    /// The greenbench binary every task runs (on the shared filesystem).
    pub binary: PathBuf,
    pub kind: Kind,
    /// The greenbench arguments, from `run` or `train` on (without the added --shard/--out).
    pub command: Vec<String>,
    /// Partitions, one array job each (`default` when none was named).
    pub partitions: Vec<String>,
    /// Tasks per array job (N of --shard I/N).
    pub shards: usize,
    pub exclusive: bool,
    pub time: Option<String>,
    pub sbatch_args: Vec<String>,
    pub submitted_utc: String,
    /// Empty after `--dry-run`.
    pub jobs: Vec<Job>,
}

pub const FLEET_FILE: &str = "fleet.json";
pub const SCRIPT_FILE: &str = "job.sbatch";

/// The label used for Slurm's default partition when none is named.
pub const DEFAULT_PARTITION: &str = "default";

impl Fleet {
    /// Read `dir/fleet.json`.
    pub fn load(dir: &Path) -> Result<Fleet, FleetError> {
        let p = dir.join(FLEET_FILE);
        let text = std::fs::read_to_string(&p).map_err(|_| FleetError::NotAFleet(dir.into()))?;
        serde_json::from_str(&text).map_err(|e| {
            FleetError::Invalid(format!(
                "{} is not a fleet file greenbench can read: {e}",
                p.display()
            ))
        })
    }

    /// Write `dir/fleet.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), FleetError> {
        let p = dir.join(FLEET_FILE);
        let text = serde_json::to_string_pretty(self).expect("serializable");
        greenbench_harness::record::write_atomic(&p, text.as_bytes()).map_err(io(&p))
    }

    /// Task `task`'s result file on `partition`.
    pub fn result_path(dir: &Path, partition: &str, task: usize) -> PathBuf {
        dir.join("results").join(format!("{partition}-{task}.json"))
    }

    /// Task `task`'s Slurm log in job `job_id`.
    pub fn log_path(dir: &Path, job_id: &str, task: usize) -> PathBuf {
        dir.join("logs").join(format!("{job_id}_{task}.out"))
    }
}

/// `s` quoted for a POSIX shell (single quotes; kept bare when only safe characters).
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
