//! The CLI's trust checks: provenance, results never overwritten, reports that leave committed
//! files alone, shipped data found anywhere, errors stating their cause once, the price tag as
//! docs/PRICE.md derives it, one vocabulary of flags.

mod common;

use common::greenbench;
use greenbench_harness::record::ResultFile;

/// The commit a result file records is the one the binary was built from (stamped by
/// build.rs), not that of the git repository the run starts in.
#[test]
fn result_files_record_the_binarys_commit_wherever_the_run_starts() {
    let Some(ours) = option_env!("GREENBENCH_GIT_COMMIT") else {
        eprintln!("skipped: this build is not from a git checkout, so it stamps no commit");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "another project",
    ]);
    let theirs = git(&["rev-parse", "HEAD"]);
    assert_ne!(theirs, ours);
    let out = dir.path().join("r.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .args(["run", "--models", "mlp", "--batch", "1", "--threads", "1"])
        .args(["--backends", "cpu", "--out", out.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let f = ResultFile::load(&out).unwrap();
    assert_eq!(f.environment.machine.git_commit.as_deref(), Some(ours));
    assert_eq!(
        f.environment.machine.git_dirty,
        option_env!("GREENBENCH_GIT_DIRTY").map(|d| d == "true")
    );
}

/// A result file is never replaced by accident: a plain --out naming an existing file is
/// refused before anything is measured (--resume continues it, --force replaces it), and two
/// default names made in the same second differ (they carry the process id).
#[test]
fn existing_result_files_are_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    std::fs::write(&out, "{\"precious\": true}").unwrap();
    let (code, _, err) = greenbench(&["run", "--models", "mlp", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("exists") && err.contains("--resume") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = greenbench(&["train", "--model", "mlp", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "{\"precious\": true}"
    );
}

/// `report` without --out writes a fresh directory under results/reports/ and leaves the
/// committed results/BASELINES.md, cells.csv and plots/ alone.
#[test]
fn report_without_out_leaves_committed_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join("BASELINES.md"), "committed").unwrap();
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/samples/readme-quick.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .args(["report", sample.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(results.join("BASELINES.md")).unwrap(),
        "committed"
    );
    assert!(stdout.contains("results/reports/"), "{stdout}");
    let reports: Vec<_> = std::fs::read_dir(results.join("reports"))
        .unwrap()
        .collect();
    assert_eq!(reports.len(), 1);
}

/// The shipped digits are built into the binary: `train` works from any directory; a
/// --datasets-dir that does not hold them is an error that states its cause once.
#[test]
fn training_works_outside_the_checkout_and_errors_state_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_greenbench"))
            .args([
                "train",
                "--model",
                "mlp",
                "--dataset",
                "digits",
                "--epochs",
                "1",
            ])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let ok = run(&[]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("test accuracy"));
    let bad = run(&["--datasets-dir", "/nonexistent"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/digits/digits.csv.gz"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// docs/PRICE.md derives a price tag by hand; the CLI prints exactly the output shown there
/// for each command it shows (run from the checkout, on the committed result file).
#[test]
fn price_md_matches_the_cli() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/PRICE.md")).unwrap();
    let mut checked = 0;
    for block in doc.split("```console\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let (cmd, expected) = block.split_once('\n').unwrap();
        let args: Vec<&str> = cmd
            .strip_prefix("$ greenbench ")
            .expect("a command")
            .split_whitespace()
            .collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_greenbench"))
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{cmd}");
        checked += 1;
    }
    assert_eq!(checked, 2);
}

/// `verify --precision` takes a list, as `run` and `eval` do: both paths in one call.
#[test]
fn verify_takes_a_list_of_precisions() {
    let (code, stdout, err) = greenbench(&[
        "verify",
        "--models",
        "mlp",
        "--batch",
        "1",
        "--backends",
        "cpu",
        "--precision",
        "fp32,int8",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("reference"), "{stdout}");
    assert!(stdout.to_lowercase().contains("int8"), "{stdout}");
}

/// One name per concept, both spellings accepted: `--model` and `--models`, `--backend` and
/// `--backends` work on every command that takes models or backends (the other spelling is a
/// hidden alias).
#[test]
fn model_and_backend_flags_take_both_spellings() {
    let (code, _, err) = greenbench(&["run", "--model", "no-such-model", "--out", "/tmp/x.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-model"), "{err}");
    let (code, out, err) = greenbench(&[
        "cost",
        "--models",
        "mlp",
        "--backends",
        "cpu",
        "--examples",
        "100",
        "--from",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/price/mlp-b32.json"
        ),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Price tag of training mlp"), "{out}");
    // inspect and export take their models positionally or by the flag.
    let (code, a, _) = greenbench(&["inspect", "mlp"]);
    let (code2, b, err) = greenbench(&["inspect", "--model", "mlp"]);
    assert_eq!((code, code2), (0, 0), "{err}");
    assert_eq!(a, b);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = greenbench(&[
        "export",
        "--models",
        "mlp",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("mlp/model.onnx").exists());
}

/// `compare` through the binary: every cell of NEW twice as slow as BASE is a regression
/// (exit 1) beside an unchanged machine reference, and "machine slower" (exit 0) when the
/// reference matmul timed beside each cell slowed down as much; the table shows the
/// reference's ratio.
#[test]
fn compare_shows_the_machine_reference_and_does_not_blame_the_code_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        "mlp",
        "--batch",
        "1,8",
        "--threads",
        "1",
        "--no-peak",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut f = ResultFile::load(&base).unwrap();
    assert!(f.cells.iter().all(|c| c.machine_reference.is_some()));
    for c in &mut f.cells {
        let t = c.time_per_example_s.as_mut().unwrap();
        (t.ci95_low, t.ci95_high) = (0.99 * t.median, 1.01 * t.median);
    }
    f.save(&base).unwrap();
    let slower = |machine_too: bool| {
        let mut n = f.clone();
        for c in &mut n.cells {
            let t = c.time_per_example_s.as_mut().unwrap();
            for v in [&mut t.median, &mut t.ci95_low, &mut t.ci95_high] {
                *v *= 2.0;
            }
            if machine_too {
                c.machine_reference.as_mut().unwrap().gflops /= 2.0;
            }
        }
        let p = dir.path().join(format!("new-{machine_too}.json"));
        n.save(&p).unwrap();
        greenbench(&["compare", base.to_str().unwrap(), p.to_str().unwrap()])
    };
    let (code, out, err) = slower(false);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("REGRESSION") && out.contains("machine new / base"),
        "{out}"
    );
    assert!(out.contains("1.000"), "{out}");
    let (code, out, err) = slower(true);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("REGRESSION"), "{out}");
    assert!(
        out.contains("machine slower") && out.contains("2.000"),
        "{out}"
    );
    assert!(
        out.contains("0 regression(s)") && out.contains("2 machine changed"),
        "{out}"
    );
}
