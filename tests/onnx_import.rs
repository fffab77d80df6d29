//! ONNX files through the command line, as a user brings them: inspect, run, verify against
//! recorded test data (and its failure), naming, and the errors for bad files.

mod common;
use common::greenbench;
use greenbench_harness::record::ResultFile;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

#[test]
fn inspect_names_layers_after_the_file_and_counts_exactly() {
    let m = fixture("bert_layer/model.onnx");
    let (code, out, err) = greenbench(&["inspect", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bert_layer — input 8x32"), "{out}");
    assert!(
        out.contains("/intermediate/intermediate_act_fn/Mul_1  gelu_erf"),
        "{out}"
    );
    assert!(out.contains("attention 4x8"), "{out}");
    let (code, out, _) = greenbench(&["inspect", m.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"]["macs"], 69_632);
    assert!(v["nodes"].as_array().unwrap().len() >= 10);
}

#[test]
fn verify_test_data_passes_and_a_wrong_output_fails() {
    let dir = fixture("torch_cnn");
    let m = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    let (code, out, err) = greenbench(&[
        "verify",
        "--models",
        m.to_str().unwrap(),
        "--test-data",
        data.to_str().unwrap(),
        "--backends",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("reference") && out.contains("cpu") && out.contains(" ok"),
        "{out}"
    );
    // Another model's recorded output: the shapes disagree, named.
    let other = fixture("tf_nhwc/test_data_set_0");
    let (code, _, err) = greenbench(&[
        "verify",
        "--models",
        m.to_str().unwrap(),
        "--test-data",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("input_0.pb has dims [3, 10, 10, 3]"), "{err}");
    // The right input with a perturbed output: a mismatch, exit 1.
    let t = tempfile::tempdir().unwrap();
    std::fs::copy(data.join("input_0.pb"), t.path().join("input_0.pb")).unwrap();
    let mut y = std::fs::read(data.join("output_0.pb")).unwrap();
    let n = y.len();
    y[n - 2] ^= 0x40; // a high bit of the last float
    std::fs::write(t.path().join("output_0.pb"), &y).unwrap();
    let (code, out, _) = greenbench(&[
        "verify",
        "--models",
        m.to_str().unwrap(),
        "--test-data",
        t.path().to_str().unwrap(),
        "--backends",
        "cpu",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISMATCH"), "{out}");
}

#[test]
fn run_measures_an_onnx_file_under_its_folder_name() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("r.json");
    let m = fixture("mobilenetv2_block/model.onnx");
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        m.to_str().unwrap(),
        "--backends",
        "cpu",
        "--batch",
        "2",
        "--profile",
        "quick",
        "--no-peak",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = ResultFile::load(&out).unwrap();
    assert_eq!(r.cells.len(), 1);
    assert_eq!(r.cells[0].model, "mobilenetv2_block");
    assert_eq!(r.cells[0].macs_per_example, 771_456);
}

#[test]
fn two_files_with_one_name_keep_their_paths() {
    let t = tempfile::tempdir().unwrap();
    for d in ["a/net", "b/net"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
        std::fs::copy(
            fixture("external_mlp/model.onnx"),
            t.path().join(d).join("model.onnx"),
        )
        .unwrap();
        std::fs::copy(
            fixture("external_mlp/weights.bin"),
            t.path().join(d).join("weights.bin"),
        )
        .unwrap();
    }
    let a = t.path().join("a/net/model.onnx");
    let b = t.path().join("b/net/model.onnx");
    let out = t.path().join("r.json");
    let models = format!("{},{}", a.display(), b.display());
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        &models,
        "--backends",
        "cpu",
        "--batch",
        "1",
        "--no-peak",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = ResultFile::load(&out).unwrap();
    let names: Vec<&str> = r.cells.iter().map(|c| c.model.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1], "{names:?}");
    assert!(
        names[0].ends_with("a/net/model") && names[1].ends_with("b/net/model"),
        "{names:?}"
    );
}

#[test]
fn bad_files_get_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("junk.onnx");
    std::fs::write(&junk, b"not a protobuf \xff\xff\xff").unwrap();
    let (code, _, err) = greenbench(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("junk.onnx") && err.contains("is it an ONNX file?"),
        "{err}"
    );
    let missing = t.path().join("nope.onnx");
    let (code, _, err) = greenbench(&["inspect", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("nope.onnx"), "{err}");
    // External data that is not there.
    std::fs::copy(
        fixture("external_mlp/model.onnx"),
        t.path().join("ext.onnx"),
    )
    .unwrap();
    let (code, _, err) = greenbench(&["inspect", t.path().join("ext.onnx").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("weights.bin"), "{err}");
    // --weights is for zoo and JSON models.
    let m = fixture("torch_cnn/model.onnx");
    let (code, _, err) = greenbench(&[
        "verify",
        "--models",
        m.to_str().unwrap(),
        "--weights",
        "w.safetensors",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("carries its own weights"), "{err}");
}

/// A model exported with a symbolic sequence: every command that takes a model refuses it
/// unbound (naming the dimension, its input and the flag), `--dim` binds it, a list sweeps it
/// into cells of their own that record their bindings, `verify --test-data` binds it from the
/// test data (and refuses a `--dim` that contradicts it), and a name no model uses is refused.
#[test]
fn symbolic_dims_are_bound_swept_and_refused_clearly() {
    let dir = fixture("bert_layer_dynamic");
    let m = dir.join("model.onnx");
    let m = m.to_str().unwrap();
    for cmd in [
        vec!["inspect", m],
        vec!["run", "--models", m, "--no-peak"],
        vec!["verify", "--models", m],
        vec!["export", m, "--out-dir", "/nonexistent-greenbench"],
    ] {
        let (code, _, err) = greenbench(&cmd);
        assert_ne!(code, 0, "{cmd:?}");
        assert!(
            err.contains("symbolic dimension unbound: `sequence` (input `x` dimension 1)")
                && err.contains("--dim sequence=128"),
            "{cmd:?}: {err}"
        );
    }
    let (code, out, err) = greenbench(&["inspect", m, "--dim", "sequence=16", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // 4 S D^2 + h S^2 2 d + 2 S D F at S = 16, D = 32, h = 4, d = 8, F = 64.
    assert_eq!(
        v["total"]["macs"],
        4 * 16 * 32 * 32 + 4 * 16 * 16 * 2 * 8 + 16 * 32 * 64 * 2
    );
    let (code, _, err) = greenbench(&["inspect", m, "--dim", "sequence=16,32"]);
    assert_ne!(code, 0);
    assert!(err.contains("one size per --dim"), "{err}");

    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("r.json");
    let (code, table, err) = greenbench(&[
        "run",
        "--models",
        m,
        "--dim",
        "sequence=4,16",
        "--backends",
        "cpu",
        "--batch",
        "1",
        "--no-peak",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = ResultFile::load(&out).unwrap();
    let cells: Vec<(String, usize)> = (r.cells.iter())
        .map(|c| (c.model.clone(), c.dims["sequence"]))
        .collect();
    assert_eq!(
        cells,
        [
            ("bert_layer_dynamic[sequence=4]".to_string(), 4),
            ("bert_layer_dynamic[sequence=16]".to_string(), 16)
        ]
    );
    assert!(r.cells[1].macs_per_example > 4 * r.cells[0].macs_per_example);
    // Per-token figures: the bound sequence is the tokens per example.
    assert_eq!(r.cells[1].tokens_per_example, Some(16));
    let per = r.cells[1].time_per_token_s().unwrap();
    let t = r.cells[1].time_per_example_s.as_ref().unwrap().median;
    assert!(
        (per * 16.0 - t).abs() < 1e-12 * t.max(1.0),
        "{per} x 16 vs {t}"
    );
    assert!(
        table.contains("per token (per example / tokens per example):")
            && table.contains("tokens/ex")
            && table.contains("bert_layer_dynamic[sequence=16]"),
        "{table}"
    );

    let (code, _, err) = greenbench(&["run", "--models", m, "--dim", "sequence=4,seq=2"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "--dim seq: no model given has a symbolic dimension `seq` (theirs: `sequence`)"
        ),
        "{err}"
    );

    let data = dir.join("test_data_set_0");
    let (code, out, err) = greenbench(&[
        "verify",
        "--models",
        m,
        "--test-data",
        data.to_str().unwrap(),
        "--backends",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("bert_layer_dynamic[sequence=8]"), "{out}");
    let (code, _, err) = greenbench(&[
        "verify",
        "--models",
        m,
        "--test-data",
        data.to_str().unwrap(),
        "--dim",
        "sequence=9",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("the test data in") && err.contains("sequence=8"),
        "{err}"
    );
}
