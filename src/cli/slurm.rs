//! `greenbench slurm submit|status|collect`: the suite's shards and training sweeps as Slurm
//! array jobs (greenbench-slurm does the work; this prints it).

use super::VERSION;
use super::results::load_report_files;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use greenbench_harness::env::{fingerprint, now_utc};
use greenbench_harness::record::check_writable;
use greenbench_results::text::Table;
use greenbench_slurm::{SubmitSpec, TaskState, prepare, submit};
use std::path::PathBuf;

/// Run the suite's shards or a training sweep as Slurm array jobs, follow them, and collect
/// their result files into one (a shared filesystem is assumed).
#[derive(clap::Args)]
pub struct SlurmArgs {
    #[command(subcommand)]
    command: SlurmCommand,
}

#[derive(Subcommand)]
enum SlurmCommand {
    Submit(SubmitArgs),
    Status(StatusArgs),
    Collect(CollectArgs),
}

/// Write DIR/job.sbatch and DIR/fleet.json and submit one array job per partition; each task
/// runs `greenbench <run|train> <args> --shard I/N --out DIR/results/<partition>-<I>.json`.
#[derive(clap::Args)]
struct SubmitArgs {
    /// The fleet directory (on a filesystem every node shares): job.sbatch, fleet.json,
    /// logs/, results/ (as `status DIR` and `collect DIR` take it).
    #[arg(required_unless_present = "dir_flag")]
    dir: Option<PathBuf>,
    /// The fleet directory, the old spelling (`--dir DIR`).
    #[arg(long = "dir", hide = true, conflicts_with = "dir")]
    dir_flag: Option<PathBuf>,
    /// Partitions, comma-separated: one array job each (default: Slurm's default partition).
    #[arg(long, value_delimiter = ',')]
    partitions: Vec<String>,
    /// Tasks per array job (default: 1 for run; one per sweep point for train --sweep).
    #[arg(long, value_parser = super::range::count)]
    shards: Option<usize>,
    /// Another #SBATCH line for the script, e.g. --sbatch-arg=--mem=8G (repeatable).
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
    /// Hold each node alone (the default for run: benchmarks want a quiet node, and
    /// node-level energy meters then measure one task).
    #[arg(long, conflicts_with = "no_exclusive")]
    exclusive: bool,
    /// Share nodes with other jobs (the default for train); measured energy is then withheld
    /// from the cells, since node-level meters cannot attribute it.
    #[arg(long)]
    no_exclusive: bool,
    /// Time limit per task (Slurm's format, e.g. 00:30:00).
    #[arg(long)]
    time: Option<String>,
    /// Write job.sbatch and fleet.json and print the script; submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace a fleet already in DIR (its results and logs are removed).
    #[arg(long)]
    force: bool,
    /// The greenbench command each task runs, after `--`: `run <args>` or `train <args>`.
    #[arg(last = true, required = true, value_name = "run|train ARGS")]
    command: Vec<String>,
}

/// Each task's state: pending, running, done, failed, cancelled or missing.
#[derive(clap::Args)]
struct StatusArgs {
    /// The fleet directory of a `greenbench slurm submit`.
    dir: PathBuf,
}

/// Merge every finished task's result file into --out (and a report with --report-dir); exits 1
/// naming each task that did not finish, after writing what the others measured.
#[derive(clap::Args)]
struct CollectArgs {
    /// The fleet directory of a `greenbench slurm submit`.
    dir: PathBuf,
    /// The merged result file.
    #[arg(long)]
    out: PathBuf,
    /// Also write the cross-machine report (Markdown, CSV, plots) into this directory.
    #[arg(long = "report-dir", alias = "report", value_name = "DIR")]
    report: Option<PathBuf>,
}

pub fn run(a: SlurmArgs) -> Result<i32> {
    match a.command {
        SlurmCommand::Submit(s) => cmd_submit(s),
        SlurmCommand::Status(s) => cmd_status(s),
        SlurmCommand::Collect(c) => cmd_collect(c),
    }
}

fn cmd_submit(a: SubmitArgs) -> Result<i32> {
    let machine = fingerprint(&super::build());
    let dir = a
        .dir
        .clone()
        .or(a.dir_flag.clone())
        .expect("clap requires one");
    let spec = SubmitSpec {
        dir: dir.clone(),
        partitions: a.partitions,
        shards: a.shards,
        sbatch_args: a.sbatch_args,
        exclusive: match (a.exclusive, a.no_exclusive) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        time: a.time,
        binary: std::env::current_exe().context("cannot tell where this greenbench binary is")?,
        command: a.command,
        force: a.force,
        greenbench_version: VERSION.into(),
        git_commit: machine.git_commit,
        now_utc: now_utc(),
    };
    if !a.dry_run {
        greenbench_slurm::submit::sbatch_available()?;
    }
    let (fleet, script) = prepare(&spec)?;
    let dir = std::path::absolute(&dir)?;
    if a.dry_run {
        print!("{script}");
        eprintln!(
            "dry run: wrote {}/job.sbatch and fleet.json; nothing submitted ({} partition(s) x {} task(s), {})",
            dir.display(),
            fleet.partitions.len(),
            fleet.shards,
            if fleet.exclusive {
                "exclusive nodes"
            } else {
                "shared nodes"
            }
        );
        return Ok(0);
    }
    let fleet = submit(&dir, fleet)?;
    for j in &fleet.jobs {
        println!(
            "{}: job {} ({} task(s))",
            j.partition, j.job_id, fleet.shards
        );
    }
    eprintln!(
        "follow with `greenbench slurm status {d}`, gather with `greenbench slurm collect {d} --out merged.json`",
        d = dir.display()
    );
    Ok(0)
}

fn cmd_status(a: StatusArgs) -> Result<i32> {
    let tasks = greenbench_slurm::status(&a.dir)?;
    let mut t = Table::new("partition|>task|job|state|detail");
    for s in &tasks {
        t.row(vec![
            s.partition.clone(),
            s.task.to_string(),
            format!("{}_{}", s.job_id, s.task),
            s.state.to_string(),
            s.detail.clone(),
        ]);
    }
    print!("{}", t.render());
    let count = |st: TaskState| tasks.iter().filter(|s| s.state == st).count();
    println!(
        "{} task(s): {} done, {} running, {} pending, {} failed, {} cancelled, {} missing",
        tasks.len(),
        count(TaskState::Done),
        count(TaskState::Running),
        count(TaskState::Pending),
        count(TaskState::Failed),
        count(TaskState::Cancelled),
        count(TaskState::Missing)
    );
    Ok(0)
}

fn cmd_collect(a: CollectArgs) -> Result<i32> {
    check_writable(&a.out, true)
        .with_context(|| format!("cannot write the merged file {}", a.out.display()))?;
    let c = greenbench_slurm::collect(&a.dir)?;
    for p in &c.problems {
        eprintln!(
            "not collected: task {} of partition {} (job {}_{}): {} ({})",
            p.task, p.partition, p.job_id, p.task, p.state, p.detail
        );
        let tail = p.log_tail(5);
        if !tail.is_empty() {
            for line in tail.lines() {
                eprintln!("    | {line}");
            }
        }
    }
    if c.loaded.is_empty() {
        bail!(
            "none of the {} task(s) finished with a complete result file; nothing written",
            c.tasks
        );
    }
    let m = greenbench_results::merge::merge(&c.loaded);
    for conflict in &m.conflicts {
        eprintln!("conflict: {conflict}");
    }
    m.file
        .save(&a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "collected {} of {} task(s), {} cell(s) -> {}",
        c.loaded.len(),
        c.tasks,
        m.file.cells.len(),
        a.out.display()
    );
    if let Some(dir) = &a.report {
        load_report_files(&c.loaded, dir)?;
    }
    Ok(if c.problems.is_empty() { 0 } else { 1 })
}
