//! Running on more than one machine: a deterministic slice of the work (`--shard I/N`), and
//! what a Slurm job says about itself, read once from its environment variables (never by
//! asking the controller, which slows jobs and annoys admins) and recorded in the result file
//! so a result joins with `sacct -j`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The `index`-th of `count` deterministic, balanced slices of a list of work items: item `k`
/// belongs to slice `k % count`, so neighbouring items (the same model at other batch sizes,
/// say) spread over the slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Environment variables that carry an array task's index, in the order they are tried
/// for `--shard auto/N`: Slurm array jobs, Kubernetes Indexed Jobs.
pub const INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

impl Shard {
    /// `I/N` (0 <= I < N), or `auto/N` to take I from the environment ([`INDEX_VARIABLES`]).
    pub fn parse(spec: &str) -> Result<Shard, String> {
        Self::parse_with(spec, |k| std::env::var(k).ok())
    }

    /// [`Self::parse`] with the environment given (for tests).
    pub fn parse_with(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let usage = "use I/N with 0 <= I < N (e.g. --shard 0/4), or auto/N to take I from \
                     SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX";
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| format!("--shard `{spec}`: {usage}"))?;
        let count: usize = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("--shard `{spec}`: N must be a positive whole number; {usage}")
        })?;
        let index: usize = if i.trim() == "auto" {
            let (var, v) = INDEX_VARIABLES
                .iter()
                .find_map(|k| env(k).map(|v| (*k, v)))
                .ok_or_else(|| {
                    format!(
                        "--shard `{spec}`: neither {} is set (auto takes the index from an array job)",
                        INDEX_VARIABLES.join(" nor ")
                    )
                })?;
            v.trim()
                .parse()
                .map_err(|_| format!("--shard `{spec}`: {var}=`{v}` is not a whole number"))?
        } else {
            i.trim().parse().map_err(|_| {
                format!("--shard `{spec}`: I must be a whole number or auto; {usage}")
            })?
        };
        if index >= count {
            return Err(format!(
                "--shard `{spec}`: index {index} is not below {count}; {usage}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether work item `k` belongs to this slice.
    pub fn takes(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Set (to `1`) in a task's environment by the job script `greenbench slurm submit
/// --no-exclusive` writes: the task shares its node with other jobs.
pub const NODE_SHARED_VARIABLE: &str = "GREENBENCH_NODE_SHARED";

/// A Slurm job's view of itself, from its environment variables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJob {
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// CPUs Slurm gave the task (`SLURM_CPUS_PER_TASK`, else `SLURM_CPUS_ON_NODE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<usize>,
    /// Whether the node is shared with other jobs (then node-level energy is not the task's).
    #[serde(default)]
    pub node_shared: bool,
}

impl SlurmJob {
    /// The job this process runs in, if any (`SLURM_JOB_ID` set).
    pub fn from_env() -> Option<SlurmJob> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`Self::from_env`] with the environment given (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<SlurmJob> {
        Some(SlurmJob {
            job_id: var("SLURM_JOB_ID")?,
            array_job_id: var("SLURM_ARRAY_JOB_ID"),
            array_task_id: var("SLURM_ARRAY_TASK_ID"),
            partition: var("SLURM_JOB_PARTITION"),
            node: var("SLURMD_NODENAME"),
            cpus: var("SLURM_CPUS_PER_TASK")
                .or_else(|| var("SLURM_CPUS_ON_NODE"))
                .and_then(|v| v.trim().parse().ok()),
            node_shared: var(NODE_SHARED_VARIABLE).as_deref() == Some("1"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn shards_parse_and_split_evenly() {
        let s = Shard::parse_with("1/3", env(&[])).unwrap();
        assert_eq!((s.index, s.count, s.to_string()), (1, 3, "1/3".to_string()));
        let taken: Vec<usize> = (0..8).filter(|k| s.takes(*k)).collect();
        assert_eq!(taken, [1, 4, 7]);
        // Every item in exactly one slice.
        for k in 0..20 {
            let owners = (0..3)
                .filter(|i| {
                    Shard {
                        index: *i,
                        count: 3,
                    }
                    .takes(k)
                })
                .count();
            assert_eq!(owners, 1);
        }
        for bad in ["3/2", "0/0", "a/2", "1", "1/x", "-1/2", "2/2"] {
            let e = Shard::parse_with(bad, env(&[])).unwrap_err();
            assert!(e.contains(bad) && e.contains("I/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn auto_takes_the_array_index() {
        let s = Shard::parse_with("auto/4", env(&[("SLURM_ARRAY_TASK_ID", "2")])).unwrap();
        assert_eq!(s, Shard { index: 2, count: 4 });
        let k = Shard::parse_with("auto/4", env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap();
        assert_eq!(k.index, 3);
        let e = Shard::parse_with("auto/4", env(&[])).unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_ID"), "{e}");
        let e = Shard::parse_with("auto/2", env(&[("SLURM_ARRAY_TASK_ID", "5")])).unwrap_err();
        assert!(e.contains("not below 2"), "{e}");
    }

    #[test]
    fn slurm_job_from_its_variables() {
        assert_eq!(SlurmJob::from_vars(env(&[])), None);
        let j = SlurmJob::from_vars(env(&[
            ("SLURM_JOB_ID", "42"),
            ("SLURM_ARRAY_JOB_ID", "40"),
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_JOB_PARTITION", "cpu"),
            ("SLURMD_NODENAME", "n1"),
            ("SLURM_CPUS_ON_NODE", "8"),
            ("GREENBENCH_NODE_SHARED", "1"),
        ]))
        .unwrap();
        assert_eq!(j.cpus, Some(8));
        assert!(j.node_shared);
        assert_eq!(j.partition.as_deref(), Some("cpu"));
    }
}
