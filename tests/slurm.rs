//! `greenbench slurm` on a real (single-node) Slurm: a sharded suite across two partitions,
//! a two-point training sweep, and a job with one task cancelled while running; then status,
//! collect, merge, the sweep's price tag and every exit code.
//!
//! Needs a running Slurm (`eval "$(scripts/slurm/local-cluster.sh start)"`, root) and
//! GREENBENCH_SLURM=1, as `.ci/run` sets; without it the test says so and checks nothing.

mod common;

/// greenbench with whitespace-separated arguments (the paths here have no spaces).
fn gb(args: &str) -> (i32, String, String) {
    common::greenbench(&args.split_whitespace().collect::<Vec<_>>())
}
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("slurm command");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The job id `slurm submit` printed for `partition`.
fn job_id(stdout: &str, partition: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{partition}: job ")))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job for {partition} in {stdout}"))
        .to_string()
}

/// Wait until `cond` holds (polling every 0.3 s), failing after `limit`.
fn wait(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether every task of the fleet in `dir` has finished one way or another.
fn settled(dir: &Path) -> bool {
    let (code, out, _) = gb(&format!("slurm status {}", dir.to_str().unwrap()));
    code == 0 && !out.contains(" pending ") && !out.contains(" running ")
}

#[test]
fn fleets_on_a_real_slurm() {
    if std::env::var("GREENBENCH_SLURM").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set GREENBENCH_SLURM=1 with a Slurm running (scripts/slurm/local-cluster.sh start)"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let d = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let limit = Duration::from_secs(300);

    // A sharded suite: 2 partitions x 2 tasks, one cell each, exclusive nodes (the default).
    let (code, out, err) = gb(&format!(
        "slurm submit --dir {} --partitions cpu,cpu2 --shards 2 -- run --models mlp --batch 1,2 --no-peak --backends cpu",
        d("suite")
    ));
    assert_eq!(code, 0, "{err}");
    job_id(&out, "cpu");
    job_id(&out, "cpu2");
    let script = std::fs::read_to_string(tmp.path().join("suite/job.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-1") && script.contains("#SBATCH --exclusive"));

    // A two-point training sweep: one task per point, on the default partition.
    let datasets = root.join("datasets");
    let (code, _, err) = gb(&format!(
        "slurm submit --dir {} -- train --model mlp --epochs 1 --sweep lr=0.01,0.001 --datasets-dir {}",
        d("sweep"),
        datasets.display()
    ));
    assert_eq!(code, 0, "{err}");

    // A job whose task 1 is cancelled while it runs (full profile: long enough to catch).
    let (code, out, err) = gb(&format!(
        "slurm submit --dir {} --partitions cpu2 --shards 2 --no-exclusive -- run --models mlp --batch 1,2 --profile full --no-peak --backends cpu",
        d("cancel")
    ));
    assert_eq!(code, 0, "{err}");
    let job = job_id(&out, "cpu2");
    let task1 = format!("{job}_1");
    wait("task 1 to run", limit, || {
        slurm(
            "squeue",
            &["-h", "-r", "-t", "all", "-j", &task1, "-o", "%T"],
        )
        .trim()
            == "RUNNING"
    });
    std::thread::sleep(Duration::from_millis(500));
    slurm("scancel", &[&task1]);

    for f in ["suite", "sweep", "cancel"] {
        wait(f, limit, || settled(&tmp.path().join(f)));
    }

    // The suite: every task done, collected into one file and a cross-partition report.
    let (code, out, _) = gb(&format!("slurm status {}", d("suite")));
    assert_eq!(code, 0);
    assert!(out.contains("4 task(s): 4 done"), "{out}");
    let (code, out, err) = gb(&format!(
        "slurm collect {} --out {} --report {}",
        d("suite"),
        d("suite.json"),
        d("report")
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("collected 4 of 4 task(s), 4 cell(s)"), "{out}");
    let md = std::fs::read_to_string(tmp.path().join("report/BASELINES.md")).unwrap();
    assert!(md.contains("/cpu |") && md.contains("/cpu2 |"), "{md}");
    let merged = std::fs::read_to_string(tmp.path().join("suite.json")).unwrap();
    assert!(merged.contains("\"array_task_id\"") && merged.contains("\"partition\": \"cpu2\""));

    // The sweep: its price tag sums both measured runs; one file alone names the other.
    let results = tmp.path().join("sweep/results");
    let files: Vec<String> = ["default-0.json", "default-1.json"]
        .iter()
        .map(|f| results.join(f).to_str().unwrap().to_string())
        .collect();
    let (code, out, err) = gb(&format!(
        "cost --model mlp --from {} {}",
        files[0], files[1]
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("H = 2 run(s) present;"), "{out}");
    let (_, out, _) = gb(&format!("cost --model mlp --from {}", files[0]));
    assert!(out.contains("MISSING shard(s) 1/2"), "{out}");

    // The cancelled task is named, with its log; what finished is still written.
    let (_, out, _) = gb(&format!("slurm status {}", d("cancel")));
    assert!(
        out.contains("1 done") && out.contains("1 cancelled"),
        "{out}"
    );
    let (code, out, err) = gb(&format!(
        "slurm collect {} --out {}",
        d("cancel"),
        d("c.json")
    ));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("task 1 of partition cpu2") && err.contains("cancelled"),
        "{err}"
    );
    assert!(err.contains("CANCELLED"), "the log's tail: {err}");
    assert!(out.contains("collected 1 of 2 task(s)"), "{out}");
    // On shared nodes (--no-exclusive) the estimate (per process) stays; only node-level
    // readings are withheld.
    let c = std::fs::read_to_string(tmp.path().join("c.json")).unwrap();
    assert!(c.contains("\"node_shared\": true"), "{c}");

    // Bad input: an unknown partition is Slurm's refusal, with the partition named; a
    // second submit into a fleet directory is refused.
    let (code, _, err) = gb(&format!(
        "slurm submit --dir {} --partitions nope -- run",
        d("bad")
    ));
    assert_eq!(code, 2);
    assert!(err.contains("partition `nope`"), "{err}");
    let (code, _, err) = gb(&format!("slurm submit --dir {} -- run", d("suite")));
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");
}
