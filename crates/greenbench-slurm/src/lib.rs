//! greenbench-slurm: the step from one machine to many on the scheduler research clusters
//! already run. A thin layer over the real Slurm commands (`sbatch --parsable`, `squeue`,
//! `sacct` where accounting exists, `scancel`): no job runner, daemon or protocol of ours.
//!
//! A *fleet directory* holds one submission: `job.sbatch` (a readable array-job script a user
//! could submit by hand), `fleet.json` (what was submitted: command, partitions, shards, job
//! ids, greenbench version and commit), `logs/` (one Slurm log per task) and `results/` (one
//! result file per task, `<partition>-<task>.json`: tasks never overwrite each other). Every
//! task runs the same greenbench binary with `--shard <task>/<N>`; a shared filesystem is
//! assumed. [`fleet`] writes and reads the directory, [`submit`] submits it, [`status`] tells
//! each task's state and [`collect`] merges what finished, naming what did not.
//!
//! It knows nothing of measuring: each task is a plain `greenbench run` or `train`.

pub mod collect;
pub mod fleet;
pub mod status;
pub mod submit;

pub use collect::{Collected, collect};
pub use fleet::{Fleet, FleetError, Job, Kind};
pub use status::{TaskState, TaskStatus, status};
pub use submit::{SubmitSpec, prepare, submit};
