//! `greenbench slurm submit`: write the job script and fleet.json, then one `sbatch` per
//! partition.

use crate::fleet::{DEFAULT_PARTITION, Fleet, FleetError, Job, Kind, SCRIPT_FILE, io, shell_quote};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to submit.
#[derive(Clone, Debug)]
pub struct SubmitSpec {
    pub dir: PathBuf,
    /// Partitions, one array job each; empty: Slurm's default partition.
    pub partitions: Vec<String>,
    /// Tasks per array job; `None`: 1 for `run`, one per sweep point for `train`.
    pub shards: Option<usize>,
    pub sbatch_args: Vec<String>,
    /// Nodes held exclusively; `None`: yes for `run` (benchmarks want a quiet node), no for
    /// `train`.
    pub exclusive: Option<bool>,
    pub time: Option<String>,
    /// The binary each task runs.
    pub binary: PathBuf,
    /// `run ...` or `train ...`.
    pub command: Vec<String>,
    /// Replace an earlier fleet in `dir`.
    pub force: bool,
    pub greenbench_version: String,
    pub git_commit: Option<String>,
    pub now_utc: String,
}

/// Points of a `--sweep lr=a,b,c` among `args` (1 when there is no sweep).
fn sweep_points(args: &[String]) -> usize {
    let value = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--sweep=")
            .map(str::to_string)
            .or_else(|| (a == "--sweep").then(|| args.get(i + 1).cloned()).flatten())
    });
    value.map_or(1, |v| v.split(',').count())
}

/// The flag `name` among `args` (as `--name v` or `--name=v`).
fn has_flag(args: &[String], name: &str) -> bool {
    args.iter()
        .any(|a| a == name || a.starts_with(&format!("{name}=")))
}

/// Check `spec`, write `job.sbatch` and `fleet.json` into its directory (no job submitted
/// yet), and return the fleet and the script.
pub fn prepare(spec: &SubmitSpec) -> Result<(Fleet, String), FleetError> {
    let invalid = |m: String| Err(FleetError::Invalid(m));
    let kind = match spec.command.first().map(String::as_str) {
        Some("run") => Kind::Run,
        Some("train") => Kind::Train,
        _ => {
            return invalid(
                "give the greenbench command each task runs after `--`: `-- run <args>` or `-- train <args>`"
                    .into(),
            );
        }
    };
    let args = &spec.command[1..];
    for owned in ["--shard", "--out"] {
        if has_flag(args, owned) {
            return invalid(format!(
                "{owned} is set for each task by `slurm submit` (one slice and one result file per task); leave it out"
            ));
        }
    }
    let shards = match (spec.shards, kind) {
        (Some(0), _) => return invalid("--shards must be at least 1".into()),
        (Some(n), _) => n,
        (None, Kind::Run) => 1,
        (None, Kind::Train) => sweep_points(args),
    };
    if kind == Kind::Train && shards > sweep_points(args) {
        return invalid(format!(
            "--shards {shards}: the sweep has {} point(s), so some tasks would have nothing to train",
            sweep_points(args)
        ));
    }
    if let Some(bad) = spec.partitions.iter().find(|p| {
        p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    }) {
        return invalid(format!(
            "partition name `{bad}`: use the names `sinfo` lists"
        ));
    }
    let dir = std::path::absolute(&spec.dir).map_err(io(&spec.dir))?;
    let used = ["fleet.json", "job.sbatch", "results", "logs"];
    if used.iter().any(|f| dir.join(f).exists()) {
        if !spec.force {
            return invalid(format!(
                "{} already holds a fleet (fleet.json, results/ or logs/); choose another --dir, or --force to replace it",
                dir.display()
            ));
        }
        for f in used {
            let p = dir.join(f);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(io(&p))?;
            } else if p.exists() {
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
    }
    for sub in ["results", "logs"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let fleet = Fleet {
        greenbench_version: spec.greenbench_version.clone(),
        git_commit: spec.git_commit.clone(),
        binary: std::path::absolute(&spec.binary).map_err(io(&spec.binary))?,
        kind,
        command: spec.command.clone(),
        partitions: if spec.partitions.is_empty() {
            vec![DEFAULT_PARTITION.to_string()]
        } else {
            spec.partitions.clone()
        },
        shards,
        exclusive: spec.exclusive.unwrap_or(kind == Kind::Run),
        time: spec.time.clone(),
        sbatch_args: spec.sbatch_args.clone(),
        submitted_utc: spec.now_utc.clone(),
        jobs: vec![],
    };
    let text = script(&fleet, &dir);
    let p = dir.join(SCRIPT_FILE);
    greenbench_harness::record::write_atomic(&p, text.as_bytes()).map_err(io(&p))?;
    fleet.save(&dir)?;
    Ok((fleet, text))
}

/// The array-job script every partition's job runs.
pub fn script(f: &Fleet, dir: &Path) -> String {
    let d = dir.display().to_string();
    let name = match f.kind {
        Kind::Run => "run",
        Kind::Train => "train",
    };
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "# greenbench fleet: `greenbench {}` in {} task(s) per partition ({}).\n",
        f.command.join(" "),
        f.shards,
        f.partitions.join(", ")
    );
    s += &format!(
        "# Written by `greenbench slurm submit` (greenbench {}, commit {}) at {}; fleet.json\n\
         # beside it records the job ids. To submit it by hand, once per partition P:\n\
         #   sbatch --partition=P --export=ALL,GREENBENCH_FLEET_PARTITION=P {d}/job.sbatch\n\
         # Task I runs slice I of {} and writes {d}/results/P-I.json (a filesystem every node\n\
         # shares); its log is {d}/logs/<job>_I.out.\n",
        f.greenbench_version,
        f.git_commit.as_deref().unwrap_or("unknown"),
        f.submitted_utc,
        f.shards,
    );
    s += &format!("#SBATCH --job-name=greenbench-{name}\n");
    s += &format!("#SBATCH --array=0-{}\n", f.shards - 1);
    s += "#SBATCH --ntasks=1\n";
    s += &format!("#SBATCH --output={d}/logs/%A_%a.out\n");
    if f.exclusive {
        s += "#SBATCH --exclusive\n";
    }
    if let Some(t) = &f.time {
        s += &format!("#SBATCH --time={t}\n");
    }
    for a in &f.sbatch_args {
        s += &format!("#SBATCH {a}\n");
    }
    s += if f.exclusive {
        "# Nodes held exclusively: benchmarks want a quiet node, and node-level meters\n\
         # (RAPL, NVML) then measure this task alone.\n"
    } else {
        "# Nodes shared with other jobs: node-level meters (RAPL, NVML) cannot attribute energy\n\
         # to one task, so measured energy is withheld from the cells (and said so).\n"
    };
    s += "set -eu\n";
    s += "partition=\"${GREENBENCH_FLEET_PARTITION:-${SLURM_JOB_PARTITION:-default}}\"\n";
    s += &format!(
        "export GREENBENCH_NODE_SHARED={}\n",
        if f.exclusive { 0 } else { 1 }
    );
    let mut cmd: Vec<String> = vec![shell_quote(&f.binary.display().to_string())];
    cmd.extend(f.command.iter().map(|a| shell_quote(a)));
    if f.kind == Kind::Run && !has_flag(&f.command, "--threads") {
        s += "threads=\"${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-0}}\"\n";
        cmd.push("--threads \"$threads\"".into());
    }
    cmd.push(format!("--shard \"$SLURM_ARRAY_TASK_ID/{}\"", f.shards));
    s += &format!(
        "out={}/results/\"$partition-$SLURM_ARRAY_TASK_ID.json\"\n",
        shell_quote(&d)
    );
    cmd.push("--out \"$out\"".into());
    // A requeued task's file exists: run continues it, train starts over (both refuse to
    // replace a result file otherwise).
    let again = if f.kind == Kind::Run {
        "--resume --force"
    } else {
        "--force"
    };
    s += &format!("again=()\n[ -e \"$out\" ] && again=({again})\n");
    cmd.push("\"${again[@]}\"".into());
    s += &format!("exec {}\n", cmd.join(" "));
    s
}

/// Run a Slurm command, telling a missing command apart from a failing one.
pub(crate) fn slurm_command(program: &str, args: &[String]) -> Result<String, FleetError> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FleetError::NoSlurm(program.into())
        } else {
            FleetError::Slurm {
                command: program.into(),
                partition: String::new(),
                message: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        return Err(FleetError::Slurm {
            command: format!("{program} {}", args.join(" ")),
            partition: String::new(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `sbatch` is on PATH (checked before anything is written).
pub fn sbatch_available() -> Result<(), FleetError> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("sbatch").is_file()));
    if found {
        Ok(())
    } else {
        Err(FleetError::NoSlurm("sbatch".into()))
    }
}

/// Submit the prepared fleet in `dir`: one `sbatch --parsable` per partition, each job id
/// recorded in fleet.json as soon as it is known.
pub fn submit(dir: &Path, mut fleet: Fleet) -> Result<Fleet, FleetError> {
    let script = dir.join(SCRIPT_FILE);
    for p in fleet.partitions.clone() {
        let mut args = vec!["--parsable".to_string()];
        if p != DEFAULT_PARTITION {
            args.push(format!("--partition={p}"));
        }
        args.push(format!("--export=ALL,GREENBENCH_FLEET_PARTITION={p}"));
        args.push(script.display().to_string());
        let out = slurm_command("sbatch", &args).map_err(|e| match e {
            FleetError::Slurm { message, .. } => FleetError::Slurm {
                command: "sbatch".into(),
                partition: format!(" for partition `{p}`"),
                message,
            },
            other => other,
        })?;
        let job_id = out.trim().split(';').next().unwrap_or("").to_string();
        if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(FleetError::Slurm {
                command: "sbatch --parsable".into(),
                partition: format!(" for partition `{p}`"),
                message: format!("printed `{}`, not a job id", out.trim()),
            });
        }
        fleet.jobs.push(Job {
            partition: p.clone(),
            job_id,
        });
        fleet.save(dir)?;
    }
    Ok(fleet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, command: &[&str]) -> SubmitSpec {
        SubmitSpec {
            dir: dir.into(),
            partitions: vec!["cpu".into(), "gpu-a100".into()],
            shards: None,
            sbatch_args: vec!["--mem=4G".into()],
            exclusive: None,
            time: Some("00:30:00".into()),
            binary: "/opt/greenbench".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            force: false,
            greenbench_version: "0.1.0".into(),
            git_commit: Some("abc".into()),
            now_utc: "2026-11-29T00:00:00Z".into(),
        }
    }

    #[test]
    fn scripts_say_what_each_task_runs() {
        let t = tempfile::tempdir().unwrap();
        let mut s = spec(
            t.path(),
            &["run", "--models", "mlp,lenet5", "--profile", "full"],
        );
        s.shards = Some(4);
        let (f, text) = prepare(&s).unwrap();
        assert_eq!((f.shards, f.exclusive, f.kind), (4, true, Kind::Run));
        for want in [
            "#SBATCH --array=0-3",
            "#SBATCH --exclusive",
            "#SBATCH --time=00:30:00",
            "#SBATCH --mem=4G",
            "--threads \"$threads\"",
            "--shard \"$SLURM_ARRAY_TASK_ID/4\"",
            "/results/\"$partition-$SLURM_ARRAY_TASK_ID.json\"",
            "exec /opt/greenbench run --models mlp,lenet5 --profile full",
            "export GREENBENCH_NODE_SHARED=0",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        assert_eq!(Fleet::load(t.path()).unwrap(), f);
        // A second submit into the same directory is refused, unless forced.
        let e = prepare(&s).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        s.force = true;
        prepare(&s).unwrap();
    }

    #[test]
    fn sweeps_get_one_task_per_point_and_share_nodes() {
        let t = tempfile::tempdir().unwrap();
        let s = spec(
            t.path(),
            &["train", "--model", "mlp", "--sweep", "lr=0.01,0.003,0.001"],
        );
        let (f, text) = prepare(&s).unwrap();
        assert_eq!((f.shards, f.exclusive), (3, false));
        assert!(text.contains("export GREENBENCH_NODE_SHARED=1"), "{text}");
        assert!(!text.contains("--threads"), "{text}");
        let mut too_many = spec(
            &t.path().join("b"),
            &["train", "--model", "mlp", "--sweep=lr=1,2"],
        );
        too_many.shards = Some(3);
        assert!(
            prepare(&too_many)
                .unwrap_err()
                .to_string()
                .contains("2 point(s)")
        );
    }

    #[test]
    fn bad_submissions_are_refused() {
        let t = tempfile::tempdir().unwrap();
        for (cmd, want) in [
            (vec!["list"], "-- run <args>"),
            (
                vec!["run", "--shard", "0/2"],
                "--shard is set for each task",
            ),
            (vec!["run", "--out=x.json"], "--out is set for each task"),
        ] {
            let e = prepare(&spec(t.path(), &cmd)).unwrap_err().to_string();
            assert!(e.contains(want), "{cmd:?}: {e}");
        }
        let mut s = spec(t.path(), &["run"]);
        s.partitions = vec!["cpu;rm".into()];
        assert!(
            prepare(&s)
                .unwrap_err()
                .to_string()
                .contains("partition name")
        );
        s.partitions = vec![];
        s.shards = Some(0);
        assert!(prepare(&s).unwrap_err().to_string().contains("at least 1"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("lr=0.1,0.2"), "lr=0.1,0.2");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
