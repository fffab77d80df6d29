//! The command line as users meet it: stable JSON names, clear errors on bad input, and a
//! real (small) run that writes a valid result file.

use greenbench_harness::record::{CellStatus, ResultFile, RunStatus};
mod common;
use common::{greenbench, greenbench_env};

#[test]
fn list_json_has_stable_names() {
    let (code, out, _) = greenbench(&["list", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 7);
    let resnet = arr.iter().find(|m| m["name"] == "resnet8").unwrap();
    assert_eq!(resnet["macs"], 12_501_632);
    assert_eq!(resnet["params"], 77_706);
    assert_eq!(resnet["input_shape"], serde_json::json!([32, 32, 3]));
    for key in ["fpo", "transcendentals"] {
        assert!(resnet[key].is_u64(), "{key}");
    }
}

#[test]
fn unknown_model_lists_valid_ones() {
    let (code, _, err) = greenbench(&["inspect", "resnet9"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown model `resnet9`"), "{err}");
    assert!(
        err.contains("mobilenet-v1-0.25") && err.contains("tiny-transformer"),
        "{err}"
    );
    let (code, _, err) = greenbench(&["run", "--models", "mlp,nope", "--out", "/tmp/x.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("`nope`"), "{err}");
}

#[test]
fn malformed_model_json_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.json");
    std::fs::write(
        &p,
        r#"{"name":"m","input":{"shape":[8]},"nodes":[{"name":"fc","op":{"type":"dense","unit":4}}]}"#,
    )
    .unwrap();
    let (code, _, err) = greenbench(&["inspect", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("m.json") && err.contains("unit"), "{err}");
    // The cause is stated once (it was repeated: "...: unknown field ...: unknown field ...").
    assert_eq!(err.matches("unknown field").count(), 1, "{err}");
}

#[test]
fn unwritable_out_fails_before_measuring() {
    let t = std::time::Instant::now();
    let (code, out, err) =
        greenbench(&["run", "--models", "mlp", "--out", "/nonexistent-dir/r.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent-dir/r.json"), "{err}");
    assert!(!err.contains("peak"), "measured before failing: {err}");
    assert!(out.is_empty());
    assert!(t.elapsed().as_secs() < 5);
    let (code, _, err) = greenbench(&["run", "--backends", "tpu", "--out", "/tmp/x.json"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown backend `tpu`") && err.contains("cpu"),
        "{err}"
    );
}

#[test]
fn user_model_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.json");
    std::fs::write(
        &model,
        r#"{"name":"tiny-cnn","input":{"shape":[12,12,2]},"nodes":[
            {"name":"c1","op":{"type":"conv2d","filters":4,"kernel":[3,3],"stride":[2,2],"padding":"same"}},
            {"name":"r1","op":{"type":"relu"}},
            {"name":"gap","op":{"type":"global_avg_pool"}},
            {"name":"fc","op":{"type":"dense","units":3}},
            {"name":"sm","op":{"type":"softmax"}}]}"#,
    )
    .unwrap();
    let out = dir.path().join("r.json");
    let (code, stdout, err) = greenbench(&[
        "run",
        "--models",
        model.to_str().unwrap(),
        "--batch",
        "1,3",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("tiny-cnn"), "{stdout}");
    let f = ResultFile::load(&out).unwrap();
    assert_eq!(f.status, RunStatus::Complete);
    assert_eq!(f.cells.len(), 2);
    for c in &f.cells {
        assert_eq!(c.status, CellStatus::Ok);
        assert_eq!(c.threads, Some(1));
        // conv: 6*6*4*(2*9) MACs; dense: 4*3.
        assert_eq!(c.macs_per_example, 2_592 + 12);
        let t = c.time_per_example_s.as_ref().unwrap();
        assert!(t.samples.len() >= 5 && t.median > 0.0);
        // Measured where a counter is readable, else the labelled estimate: never unlabelled.
        assert!(c.energy_per_example_j.unwrap() > 0.0);
        match c.energy_kind.as_deref() {
            Some("estimated") => assert!(c.energy_source.starts_with("estimated:")),
            Some("measured") => assert!(c.energy_source.starts_with("measured:")),
            other => panic!("energy kind {other:?}"),
        }
    }
    // The stable names of the result schema, as scripts read them.
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for key in ["schema_version", "environment", "cells"] {
        assert!(raw.get(key).is_some(), "{key}");
    }
    let cell = &raw["cells"][0];
    for key in [
        "model",
        "backend",
        "device",
        "batch",
        "macs_per_example",
        "fpo_per_example",
        "examples_per_s",
        "gflops",
        "energy_per_example_j",
        "energy_source",
    ] {
        assert!(cell.get(key).is_some(), "{key}");
    }
    for key in ["median", "ci95_low", "ci95_high", "cv", "samples"] {
        assert!(cell["time_per_example_s"].get(key).is_some(), "{key}");
    }
}

/// WGPU_BACKEND names a backend this platform lacks (Metal on Linux), so no adapter exists.
#[cfg(target_os = "linux")]
#[test]
fn no_gpu_adapter_is_explained() {
    let hide = [("WGPU_BACKEND", "metal")];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let out = out.to_str().unwrap();
    let (code, _, err) = greenbench_env(&["run", "--backends", "gpu", "--out", out], &hide);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no GPU adapter") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
    // The default backends carry on with the CPU after one line.
    let (code, stdout, err) = greenbench_env(
        &[
            "run",
            "--models",
            "mlp",
            "--batch",
            "1",
            "--no-peak",
            "--out",
            out,
        ],
        &hide,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("no GPU adapter found; running on the CPU only"),
        "{err}"
    );
    assert!(
        stdout.contains("mlp") && !stdout.contains(" gpu "),
        "{stdout}"
    );
    let (code, stdout, _) = greenbench_env(&["devices"], &hide);
    assert_eq!(code, 0);
    assert!(stdout.contains("no GPU adapter"), "{stdout}");
}

#[test]
fn verify_passes_on_every_available_backend() {
    let (code, stdout, err) = greenbench(&[
        "verify",
        "--models",
        "resnet8,tiny-transformer",
        "--batch",
        "1,2",
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("0 check(s) failed"), "{stdout}");
    assert!(
        stdout.lines().filter(|l| l.contains(" ok")).count() >= 4,
        "{stdout}"
    );
    // A tolerance no float computation meets turns agreement into a reported mismatch.
    let (code, stdout, _) = greenbench(&[
        "verify",
        "--models",
        "resnet8",
        "--batch",
        "1",
        "--tolerance",
        "1e-12",
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("MISMATCH"), "{stdout}");
}

#[test]
fn meters_read_the_configured_sysfs_root() {
    let dir = tempfile::tempdir().unwrap();
    // DIR is where sysfs is mounted (node_exporter's --path.sysfs convention).
    let zone = dir.path().join("class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("energy_uj"), "123456\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let root = dir.path().to_str().unwrap();
    let (code, out, err) = greenbench(&[
        "meters",
        "--no-nvml",
        "--sysfs-root",
        root,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["in_use"], "measured");
    assert!(v["source"].as_str().unwrap().contains("package-0"));
    // Without counters: the estimate, labelled, and why nothing is measured.
    let empty = tempfile::tempdir().unwrap();
    let (code, out, _) = greenbench(&[
        "meters",
        "--no-nvml",
        "--sysfs-root",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("no powercap tree") && out.contains("estimated:"),
        "{out}"
    );
    // Every flag meters takes is honoured: --idle-s measures idle power now (a fixed counter:
    // 0 W), or is refused where nothing is readable; the prices it would use are shown.
    let (code, out, err) = greenbench(&[
        "meters",
        "--no-nvml",
        "--sysfs-root",
        root,
        "--idle-s",
        "0.1",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["idle_power_w"].as_f64(), Some(0.0));
    let (code, _, err) = greenbench(&[
        "meters",
        "--no-nvml",
        "--sysfs-root",
        empty.path().to_str().unwrap(),
        "--idle-s",
        "0.1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no energy counter is readable"), "{err}");
    let (code, out, _) = greenbench(&["meters", "--no-nvml", "--grid-g-per-kwh", "123"]);
    assert_eq!(code, 0);
    assert!(out.contains("123 g CO2e/kWh (--grid-g-per-kwh)"), "{out}");
    let (code, _, err) = greenbench(&["meters", "--cpu-tdp-w=-5"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--cpu-tdp-w") && err.contains("greater than 0"),
        "{err}"
    );
}

#[test]
fn export_writes_model_and_test_data() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = greenbench(&[
        "export",
        "lenet5,tiny-transformer",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lenet5") && out.contains("tiny-transformer"));
    for m in ["lenet5", "tiny-transformer"] {
        let d = dir.path().join(m);
        let onnx = std::fs::read(d.join("model.onnx")).unwrap();
        // A ModelProto starts with ir_version (field 1, varint): 0x08, then 8.
        assert_eq!(&onnx[..2], &[0x08, 0x08]);
        assert!(onnx.windows(10).any(|w| w == b"greenbench"));
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("greenbench.json")).unwrap())
                .unwrap();
        assert_eq!(meta["name"], m);
        for f in ["input_0.pb", "output_0.pb"] {
            assert!(d.join("test_data_set_0").join(f).metadata().unwrap().len() > 8);
        }
    }
    let (code, _, err) = greenbench(&["export", "mlp", "--format", "tflite", "--out", "/tmp/x"]);
    assert_eq!(code, 2);
    assert!(err.contains("supported: onnx"), "{err}");
}

#[test]
fn train_save_and_reuse_trained_weights() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("mlp.safetensors");
    let out = dir.path().join("train.json");
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, stdout, err) = greenbench(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--datasets-dir",
        &format!("{root}/datasets"),
        "--sweep",
        "lr=0.003,0.001",
        "--save",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--precision",
        "int8",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("test accuracy") && stdout.contains("price tag: E·D·H = 2 runs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("best weights in int8: test accuracy"),
        "{stdout}"
    );
    let f = ResultFile::load(&out).unwrap();
    assert_eq!(f.cells.len(), 2);
    for c in &f.cells {
        assert_eq!(c.backend, "cpu-train");
        assert!(c.accuracy.unwrap() > 0.5, "{c:?}");
        assert_eq!(c.train_passes, Some(1438 * 2));
    }
    let (code, stdout, err) = greenbench(&[
        "verify",
        "--models",
        "mlp",
        "--batch",
        "1",
        "--weights",
        ck.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    let (code, stdout, _) = greenbench(&[
        "cost",
        "--model",
        "mlp",
        "--examples",
        "1438",
        "--epochs",
        "2",
        "--backend",
        "cpu-train",
        "--from",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("training: measured") && !stdout.contains("APPROXIMATION"),
        "{stdout}"
    );
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        "lenet5",
        "--weights",
        ck.to_str().unwrap(),
        "--out",
        "/tmp/x.json",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not `lenet5`"), "{err}");
    // Cells measured with the trained weights say so, not a seed that made none of them.
    let wout = dir.path().join("trained.json");
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        "mlp",
        "--batch",
        "1",
        "--threads",
        "1",
        "--weights",
        ck.to_str().unwrap(),
        "--out",
        wout.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let wf = ResultFile::load(&wout).unwrap();
    assert!(wf.cells.iter().all(|c| {
        c.weights_seed.is_none()
            && c.weights_source
                .as_deref()
                .is_some_and(|s| s.contains("checkpoint"))
    }));

    // The trained weights' accuracy in fp32 and int8 (calibrated on training examples): the
    // fp32 figure is the one training reported for the same split; int8 stays close.
    let best = f
        .cells
        .iter()
        .map(|c| c.accuracy.unwrap())
        .fold(0.0, f64::max);
    let (code, stdout, err) = greenbench(&[
        "eval",
        "--model",
        "mlp",
        "--weights",
        ck.to_str().unwrap(),
        "--datasets-dir",
        &format!("{root}/datasets"),
        "--precision",
        "fp32,int8",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let (fp, q) = (&v[0], &v[1]);
    assert_eq!(
        (fp["precision"].as_str(), q["precision"].as_str()),
        (Some("fp32"), Some("int8"))
    );
    assert_eq!(fp["examples"], 359);
    let (a, b) = (
        fp["accuracy"].as_f64().unwrap(),
        q["accuracy"].as_f64().unwrap(),
    );
    assert!((a - best).abs() < 1e-9, "eval {a} vs train {best}");
    assert!((a - b).abs() <= 0.03, "int8 {b} vs fp32 {a}");
    assert_eq!(q["calibration_examples"], 256);
}

#[test]
fn precision_flags_name_the_valid_precisions() {
    for args in [
        &[
            "run",
            "--models",
            "mlp",
            "--precision",
            "int4",
            "--out",
            "/tmp/x.json",
        ][..],
        &["inspect", "mlp", "--precision", "fp16"],
        &["eval", "--model", "mlp", "--precision", "int4"],
        &["cost", "--model", "mlp", "--precision", "bf8"],
    ] {
        let (code, _, err) = greenbench(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.contains("valid precisions are fp32, int8, bf16"),
            "{args:?}: {err}"
        );
    }
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        "mlp",
        "--requantizer",
        "float",
        "--out",
        "/tmp/x.json",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("`fixed`") && err.contains("`fp32`"), "{err}");
    // inspect in int8: every layer has a precision, FPO is the floating-point part only.
    let (code, out, err) = greenbench(&[
        "inspect",
        "ds-cnn",
        "--precision",
        "int8",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["precision"], "int8");
    assert_eq!(v["total"]["macs"], 2_656_768);
    assert_eq!(v["total"]["int8_macs"], 2_656_768);
    assert!(v["total"]["fpo"].as_u64().unwrap() < 2_000);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(
        nodes.last().unwrap()["precision"],
        "fp32",
        "the softmax stays fp32"
    );
    assert_eq!(nodes[0]["precision"], "int8");
}

#[test]
fn shard_and_slurm_bad_input() {
    for (spec, want) in [
        ("3/2", "not below 2"),
        ("0/0", "N must be a positive"),
        ("x/2", "I must be a whole number"),
    ] {
        let (code, _, err) = greenbench(&["run", "--shard", spec, "--out", "/tmp/x.json"]);
        assert_eq!(code, 2, "{spec}");
        assert!(err.contains(want) && err.contains("I/N"), "{spec}: {err}");
    }
    // No Slurm on PATH: one line saying so, and how --shard works without it.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = greenbench_env(
        &[
            "slurm",
            "submit",
            "--dir",
            dir.path().to_str().unwrap(),
            "--",
            "run",
        ],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("Slurm was not found") && err.contains("--shard I/N"),
        "{err}"
    );
    assert!(
        !dir.path().join("fleet.json").exists(),
        "nothing written without Slurm"
    );
    // A dry run needs no Slurm and writes a script a user could submit by hand.
    let (code, out, err) = greenbench_env(
        &[
            "slurm",
            "submit",
            "--dir",
            dir.path().to_str().unwrap(),
            "--dry-run",
            "--shards",
            "3",
            "--",
            "run",
            "--models",
            "mlp",
        ],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("#SBATCH --array=0-2") && out.contains("--shard \"$SLURM_ARRAY_TASK_ID/3\"")
    );
    let (code, _, err) = greenbench(&["slurm", "collect", "/tmp", "--out", "/tmp/y.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a fleet directory"), "{err}");
}

/// A run's cells split over shards: together they are the whole matrix, each exactly once.
#[test]
fn shards_partition_the_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("s{i}.json"));
        let (code, _, err) = greenbench(&[
            "run",
            "--models",
            "mlp,autoencoder",
            "--batch",
            "1,2",
            "--backends",
            "cpu",
            "--no-peak",
            "--threads",
            "1",
            "--shard",
            &format!("{i}/2"),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let f = ResultFile::load(&out).unwrap();
        assert_eq!(
            f.environment.shard.map(|s| s.to_string()),
            Some(format!("{i}/2"))
        );
        assert_eq!(f.cells.len(), 2);
        seen.extend(f.cells.iter().map(|c| (c.model.clone(), c.batch)));
    }
    seen.sort();
    let want = [
        ("autoencoder", 1),
        ("autoencoder", 2),
        ("mlp", 1),
        ("mlp", 2),
    ];
    assert_eq!(seen, want.map(|(m, b)| (m.to_string(), b)));
}

/// Every numeric flag is range-checked as it is parsed: the error names the flag, the value
/// and the valid range, and nothing runs.
#[test]
fn numeric_flags_name_their_range() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let too_many = (cores + 1).to_string();
    for (args, want) in [
        (vec!["run", "--threads", "0"], "from 1 to"),
        (vec!["run", "--threads", &too_many], "logical cores"),
        (vec!["peak", "--threads", "0"], "from 1 to"),
        (vec!["run", "--batch", "1,0"], "at least 1"),
        (vec!["verify", "--tolerance", "0"], "greater than 0"),
        (
            vec!["train", "--model", "mlp", "--epochs", "0"],
            "at least 1",
        ),
        (vec!["train", "--model", "mlp", "--lr=-1"], "greater than 0"),
        (
            vec!["cost", "--model", "mlp", "--pue", "0.5"],
            "at least 1.0",
        ),
        (
            vec!["cost", "--model", "mlp", "--examples", "0"],
            "at least 1",
        ),
        (vec!["compare", "a", "b", "--threshold=-1"], "at least 0"),
        (vec!["run", "--grid-g-per-kwh=-3"], "at least 0"),
        (vec!["peak", "--size", "0"], "at least 1"),
        (vec!["run", "--idle-s", "nan"], "at least 0"),
        // Relative sizes are percentages everywhere; a fraction is refused, not misread.
        (vec!["run", "--until-stable", "0.02"], "would be 0.02 %"),
        (vec!["run", "--until-stable", "200"], "from 0.1 to 100"),
        // A command that takes one precision says so for a list.
        (
            vec!["inspect", "mlp", "--precision", "fp32,int8"],
            "takes one precision",
        ),
    ] {
        let (code, _, err) = greenbench(&args);
        assert_eq!(code, 2, "{args:?}");
        // The flag is the last option named.
        let flag = args.iter().rev().find(|a| a.starts_with("--")).unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(err.contains(flag) && err.contains(want), "{args:?}: {err}");
    }
}

/// Two runs measuring at once on one machine: each result names the other run.
#[test]
fn concurrent_runs_warn_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let run = |out: &std::path::Path, batches: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_greenbench"))
            .args([
                "run",
                "--models",
                "mlp",
                "--backends",
                "cpu",
                "--no-peak",
                "--threads",
                "1",
            ])
            .args(["--batch", batches, "--out", out.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = run(&a, "1,2,3");
    let first_pid = first.id();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut second = run(&b, "1");
    let second_pid = second.id();
    assert!(second.wait().unwrap().success());
    assert!(first.wait().unwrap().success());
    let warned = |p: &std::path::Path, pid: u32| {
        let f = ResultFile::load(p).unwrap();
        f.cells.iter().any(|c| {
            c.warnings
                .iter()
                .any(|w| w.contains("another greenbench run") && w.contains(&format!("pid {pid}")))
        })
    };
    assert!(warned(&b, first_pid), "the second run names the first");
    assert!(warned(&a, second_pid), "the first run names the second");
}

/// `--resume` continues an interrupted file and refuses what it cannot continue.
#[test]
fn resume_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = out.to_str().unwrap();
    let base = [
        "run",
        "--models",
        "mlp",
        "--batch",
        "1,2",
        "--backends",
        "cpu",
        "--no-peak",
    ];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(&["--threads", "1", "--out", o]);
        args.extend_from_slice(extra);
        greenbench(&args)
    };
    let (code, _, err) = run(&[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["--resume"]);
    assert_eq!(code, 2);
    assert!(err.contains("complete: nothing to resume"), "{err}");
    // Make it look interrupted after its first cell, as Ctrl-C leaves it.
    let mut f = ResultFile::load(&out).unwrap();
    let kept = serde_json::to_string(&f.cells[0]).unwrap();
    f.cells.truncate(1);
    f.status = RunStatus::Interrupted;
    f.save(&out).unwrap();
    let (code, _, err) = run(&["--resume", "--seed", "9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("seed `0` there, `9` here") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = run(&["--resume"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming: 1 finished cell(s) kept"), "{err}");
    let f = ResultFile::load(&out).unwrap();
    assert_eq!(f.status, RunStatus::Complete);
    assert_eq!(f.cells.len(), 2);
    assert_eq!(serde_json::to_string(&f.cells[0]).unwrap(), kept);
    let (code, _, err) = greenbench(&["run", "--resume"]);
    assert_eq!(code, 2);
    assert!(err.contains("--out"), "{err}");
}

/// A model too big for this machine is an error naming the node and the bytes, in `run`
/// (a failed cell, exit 1) and `verify` (a failed check), never an allocation abort.
#[test]
fn models_too_big_for_memory_are_named_not_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("huge.json");
    std::fs::write(
        &model,
        r#"{"name":"huge","input":{"shape":[4096,4096,1]},"nodes":[{"name":"wide","op":{"type":"conv2d","filters":65536,"kernel":[1,1],"stride":[1,1],"padding":"same"}}]}"#,
    )
    .unwrap();
    let m = model.to_str().unwrap();
    let out = dir.path().join("r.json");
    let (code, stdout, err) = greenbench(&[
        "run",
        "--models",
        m,
        "--batch",
        "1",
        "--backends",
        "cpu",
        "--no-peak",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{err}");
    let f = ResultFile::load(&out).unwrap();
    let e = f.cells[0].error.as_deref().unwrap();
    assert!(e.contains("node `wide`") && e.contains("4.0 TiB"), "{e}");
    let (code, stdout, _) =
        greenbench(&["verify", "--models", m, "--batch", "1", "--backends", "cpu"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("FAILED") && stdout.contains("4.0 TiB"),
        "{stdout}"
    );
}

#[test]
fn inspect_time_profiles_the_steps() {
    // Table: every layer of lenet5 appears, int8's border conversions and rate say so.
    let (code, out, err) = greenbench(&[
        "inspect",
        "lenet5",
        "--time",
        "--batch",
        "4",
        "--seconds",
        "0.05",
        "--precision",
        "int8",
    ]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "conv1",
        "fc3",
        "int8 quantize (border)",
        "Gop/s",
        "untimed",
        "not a measured cell",
    ] {
        assert!(out.contains(want), "missing `{want}`:\n{out}");
    }
    // JSON: shares add up to one, each step has its kernel and layers, times are positive.
    let (code, out, err) = greenbench(&[
        "inspect",
        "ds-cnn",
        "--time",
        "--batch",
        "2",
        "--seconds",
        "0.05",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let share: f64 = steps.iter().map(|s| s["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9, "{share}");
    assert!(
        steps
            .iter()
            .all(|s| s["seconds_per_example"].as_f64().unwrap() > 0.0)
    );
    assert!(steps.iter().any(|s| s["layers"][0] == "conv1"), "{out}");
    assert!(v["untimed_seconds_per_example"].as_f64().unwrap() > 0.0);
    // A team (batch 1 on two threads, every step split): wall and busy time by thread.
    let (code, out, err) = greenbench(&[
        "inspect",
        "resnet8",
        "--time",
        "--batch",
        "1",
        "--threads",
        "2",
        "--seconds",
        "0.05",
    ]);
    assert_eq!(code, 0, "{err}");
    // The team is kept where timing both forms at prepare finds it faster; dropped, the
    // profile is one thread's and says why.
    let wants: &[&str] = if out.contains("so the team was dropped") {
        &["note: ran on one thread", "us/ex"]
    } else {
        &[
            "busy us/ex by thread",
            "use",
            "a team of 2 threads shared each step",
        ]
    };
    for want in wants {
        assert!(out.contains(want), "missing `{want}`:\n{out}");
    }
    // The timing flags need --time.
    let (code, _, err) = greenbench(&["inspect", "lenet5", "--batch", "4"]);
    assert_eq!(code, 2);
    assert!(err.contains("--time"), "{err}");
}
