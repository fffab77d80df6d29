//! Transformers as Hugging Face exports them, through the command line: several named inputs
//! (ids, an attention mask, type ids) and outputs, real examples timed with `run --inputs`,
//! other sequence lengths than the test data's, and the export of such a model.

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
fn inspect_lists_each_named_input_with_its_role() {
    let m = fixture("bert_model/model.onnx");
    let m = m.to_str().unwrap();
    let (code, out, err) = greenbench(&["inspect", m, "--dim", "sequence=8"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "bert_model[sequence=8] — input input_ids 8 ids < 60, attention_mask 8 mask, token_type_ids 8 type ids < 2,"
        ),
        "{out}"
    );
    assert!(out.contains("attention 4x8 masked"), "{out}");
    assert!(
        out.contains("outputs last_hidden_state, pooler_output"),
        "{out}"
    );
    let (code, out, err) = greenbench(&["inspect", m, "--dim", "sequence=16", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Two layers at S = 16 (D = 32, h = 4, d = 8, F = 64) and the pooler's D x D.
    let (s, d, h, f) = (16u64, 32u64, 4u64, 64u64);
    let layer = 4 * s * d * d + h * s * s * 2 * (d / h) + 2 * s * d * f;
    assert_eq!(v["total"]["macs"], 2 * layer + d * d);
}

#[test]
fn run_times_real_examples_and_other_sequence_lengths() {
    let dir = fixture("bert_model");
    let m = dir.join("model.onnx");
    let m = m.to_str().unwrap();
    let data = dir.join("test_data_set_0");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("r.json");
    let (code, table, err) = greenbench(&[
        "run",
        "--models",
        m,
        "--inputs",
        data.to_str().unwrap(),
        "--backends",
        "cpu",
        "--batch",
        "1,3",
        "--no-peak",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = ResultFile::load(&out).unwrap();
    assert_eq!(r.cells.len(), 2, "{table}");
    for c in &r.cells {
        // The sequence bound from the examples' shapes.
        assert_eq!(c.model, "bert_model[sequence=8]");
        assert_eq!(c.tokens_per_example, Some(8));
        let src = c.inputs.as_deref().unwrap();
        assert!(
            src.contains("test_data_set_0") && src.contains("2 examples"),
            "{src}"
        );
    }
    // At another sequence length, with generated inputs (ids in the table, masks all ones).
    let out2 = t.path().join("r2.json");
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        m,
        "--dim",
        "sequence=16",
        "--precision",
        "fp32,int8",
        "--backends",
        "cpu",
        "--batch",
        "2",
        "--no-peak",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = ResultFile::load(&out2).unwrap();
    assert_eq!(r.cells.len(), 2);
    for c in &r.cells {
        assert_eq!(c.dims["sequence"], 16);
        assert_eq!(c.tokens_per_example, Some(16));
        assert!(c.inputs.is_none());
        assert!(c.error.is_none(), "{:?}", c.error);
    }
    // Examples of another length than the bound one are refused, naming both.
    let (code, _, err) = greenbench(&[
        "run",
        "--models",
        m,
        "--inputs",
        data.to_str().unwrap(),
        "--dim",
        "sequence=9",
        "--no-peak",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("input_0.pb has dims [2, 8]") && err.contains("`input_ids` is [N, 9]"),
        "{err}"
    );
    let (code, _, err) = greenbench(&["run", "--models", "mlp", "--inputs", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("not an .onnx file"), "{err}");

    // The report has the per-token figures, in Markdown and HTML.
    let rep = t.path().join("report");
    let (code, _, err) = greenbench(&[
        "report",
        out2.to_str().unwrap(),
        "--out-dir",
        rep.to_str().unwrap(),
        "--format",
        "both",
    ]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(rep.join("BASELINES.md")).unwrap();
    assert!(md.contains("## Time and energy per token"), "{md}");
    let row = md
        .lines()
        .find(|l| l.contains("bert_model[sequence=16]") && l.contains("| int8 | 16 |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains("(est.)") || row.contains("estimate"), "{row}");
    let html = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(
        html.contains("id=\"per-token\""),
        "per-token section missing"
    );
}

#[test]
fn a_model_with_several_inputs_and_outputs_exports_and_verifies() {
    let m = fixture("bert_model/model.onnx");
    let t = tempfile::tempdir().unwrap();
    let (code, out, err) = greenbench(&[
        "export",
        m.to_str().unwrap(),
        "--dim",
        "sequence=8",
        "--out-dir",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let dir = t.path().join("bert_model[sequence=8]");
    let data = dir.join("test_data_set_0");
    for f in [
        "input_0.pb",
        "input_1.pb",
        "input_2.pb",
        "output_0.pb",
        "output_1.pb",
    ] {
        assert!(data.join(f).is_file(), "{f} missing in {}", data.display());
    }
    let exported = dir.join("model.onnx");
    let (code, out, err) = greenbench(&[
        "verify",
        "--models",
        exported.to_str().unwrap(),
        "--test-data",
        data.to_str().unwrap(),
        "--backends",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 check(s) failed"), "{out}");
}

/// ViT's class token (a constant expanded to the batch, concatenated before the patches)
/// exports as an Expand of an initializer to the input's batch, and verifies at another batch.
#[test]
fn a_class_token_constant_exports_and_verifies() {
    let m = fixture("vit_model/model.onnx");
    let t = tempfile::tempdir().unwrap();
    let (code, out, err) = greenbench(&[
        "export",
        m.to_str().unwrap(),
        "--out-dir",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let dir = t.path().join("vit_model");
    let (code, out, err) = greenbench(&[
        "verify",
        "--models",
        dir.join("model.onnx").to_str().unwrap(),
        "--test-data",
        dir.join("test_data_set_0").to_str().unwrap(),
        "--backends",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = greenbench(&[
        "verify",
        "--models",
        dir.join("model.onnx").to_str().unwrap(),
        "--batch",
        "3",
        "--backends",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// int8 on a transformer states what it costs against fp32: cosine similarity and max
/// relative error of the last hidden state.
#[test]
fn int8_states_its_error_against_fp32() {
    let m = fixture("bert_model/model.onnx");
    let (code, out, err) = greenbench(&[
        "verify",
        "--models",
        m.to_str().unwrap(),
        "--dim",
        "sequence=8",
        "--precision",
        "int8",
        "--batch",
        "4",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("on the first output (last_hidden_state)"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("bert_model[sequence=8]"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    // Each output checked within the step of its own last uint8 value: the last hidden
    // state's is coarser than the pooler's.
    let steps: Vec<f64> = cols[4].split('/').map(|s| s.parse().unwrap()).collect();
    assert_eq!(steps.len(), 2, "{row}");
    assert!(steps[0] != steps[1], "{row}");
    assert_eq!(cols[5], "ok", "{row}");
    let cos: f64 = cols[cols.len() - 2].parse().unwrap();
    let rel: f64 = cols[cols.len() - 1].parse().unwrap();
    assert!(cos > 0.99 && cos < 1.0, "{row}");
    assert!(rel > 0.0 && rel < 0.2, "{row}");
}
