//! Import the committed fixtures (tests/fixtures/onnx/, written as torch.onnx, tf2onnx and
//! older exporters write files; made by scripts/onnx/make_fixtures.py) and check every backend
//! against the output ONNX Runtime recorded, and the MACs against the hand count.
//!
//! The GPU backend runs where an adapter exists (lavapipe in CI, GREENBENCH_REQUIRE_GPU=1
//! makes a missing one a failure).

use greenbench_core::Backend;
use greenbench_cpu::CpuBackend;
use greenbench_gpu::GpuBackend;
use greenbench_onnx::import::{DimSweep, Dims, import_file, import_file_swept, import_file_with};
use greenbench_onnx::testdata;
use std::path::PathBuf;

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    assert!(v.len() >= 7, "fixtures missing under {}", root.display());
    v
}

fn gpu() -> Option<GpuBackend> {
    match GpuBackend::new(None) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("GREENBENCH_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("GREENBENCH_REQUIRE_GPU=1 but no GPU backend: {e}");
            }
            eprintln!("skipping the GPU backend: {e}");
            None
        }
    }
}

#[test]
fn every_fixture_matches_onnx_runtime_on_every_backend() {
    let cpu = CpuBackend::on_this_thread(0).unwrap();
    let gpu = gpu();
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        // A fixture exported with dynamic axes is bound by its test data's shapes.
        let dims = testdata::dims_from(&dir.join("model.onnx"), &dir.join("test_data_set_0"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let imp =
            import_file_with(&dir.join("model.onnx"), 0, &dims).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            imp.model.name,
            greenbench_onnx::import::bound_name(&name, &dims),
            "a model.onnx is named by its folder"
        );
        let expect: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expect.json")).unwrap())
                .unwrap();
        assert_eq!(
            imp.model.cost.total.macs,
            expect["macs_per_example"].as_u64().unwrap(),
            "{name}: MACs per example"
        );
        let td = testdata::read(&imp, &dir.join("test_data_set_0")).unwrap();
        let mut backends: Vec<(&str, Option<&dyn Backend>)> =
            vec![("reference", None), ("cpu", Some(&cpu))];
        if let Some(g) = &gpu {
            backends.push(("gpu", Some(g)));
        }
        for (b, backend) in backends {
            let d =
                testdata::check(&imp, &td, backend).unwrap_or_else(|e| panic!("{name} {b}: {e}"));
            assert!(
                d.max_rel < 1e-4,
                "{name} on {b}: max rel diff {:e} against ONNX Runtime",
                d.max_rel
            );
        }
    }
}

#[test]
fn layouts_and_batches_are_as_the_files_declare() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let imp = import_file(&root.join("nchw_output/model.onnx"), 0).unwrap();
    assert!(imp.io.converts(), "NCHW in and out");
    assert_eq!(imp.io.output_dims, vec![5, 7, 6]);
    let fixed = import_file(&root.join("torch_flatten_fixed1/model.onnx"), 0).unwrap();
    assert_eq!(fixed.io.fixed_batch, Some(1));
    let e = fixed.io.check_batch(3).unwrap_err();
    assert!(e.contains("fixed leading dimension 1"), "{e}");
    let nhwc = import_file(&root.join("tf_nhwc/model.onnx"), 0).unwrap();
    assert!(!nhwc.io.converts(), "an NHWC model runs in its own layout");
    let tokens = import_file(&root.join("embed_ln/model.onnx"), 0).unwrap();
    assert!(tokens.io.input_int);
    assert_eq!(tokens.model.graph.input.token_vocab, Some(50));
}

/// Every imported fixture also runs in int8: quantized in the IR it was imported into, the
/// CPU's int8 path agrees with the quantized reference within one step of the last uint8
/// value (the zoo's test, on files as exporters write them: SE blocks, fire modules, shuffles,
/// a BERT layer), at batch 1 and at 6 (split across two threads).
#[test]
fn every_fixture_runs_in_int8() {
    use greenbench_core::quant::{QuantConfig, quantize, run_reference_q};
    let cpu = CpuBackend::new(2).unwrap();
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let dims =
            testdata::dims_from(&dir.join("model.onnx"), &dir.join("test_data_set_0")).unwrap();
        let m = import_file_with(&dir.join("model.onnx"), 0, &dims)
            .unwrap()
            .model;
        let calib = greenbench_core::generate_inputs(&m.graph, 8, 0, 5);
        let qm = quantize(&m.graph, &m.weights, &calib, &QuantConfig::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(qm.int8_macs() > 0, "{name}: no int8 layer");
        let step = qm.output_step();
        for batch in [1, 6] {
            let x = greenbench_core::generate_inputs(&m.graph, batch, 0, 1);
            let want = run_reference_q(&qm, &x, batch);
            let got = cpu
                .prepare_quantized(&qm, batch)
                .unwrap()
                .run(&x)
                .unwrap()
                .to_vec();
            let d = greenbench_core::reference::diff(&got, &want);
            assert!(
                d.max_abs <= step * 1.01 + 1e-5,
                "{name} b{batch}: {d:?}, step {step}"
            );
        }
    }
}

/// The CPU backend against the reference interpreter on seeded inputs, at batch 2.
fn cpu_matches_reference(cpu: &CpuBackend, m: &greenbench_core::Model, what: &str) {
    let x = greenbench_core::generate_inputs(&m.graph, 2, 0, 1);
    let want = greenbench_core::reference::run_reference(&m.graph, &m.weights, &x, 2);
    let got = cpu
        .prepare(&m.graph, &m.weights, 2)
        .unwrap()
        .run(&x)
        .unwrap()
        .to_vec();
    let diff = greenbench_core::reference::diff(&got, &want);
    assert!(diff.max_rel < 1e-4, "{what}: {diff:?}");
}

/// A BERT layer exported with a symbolic sequence (`["batch", "sequence", 32]`): refused
/// unbound with an error that names the dimension, its input and the flag; bound by its test
/// data (sequence 8) it matches ONNX Runtime (the fixture test above); swept over other
/// sequence lengths, each binding is a model of its own whose MACs follow the count (S x the
/// projections, S^2 x the attention) and whose CPU output matches the reference interpreter.
#[test]
fn a_symbolic_sequence_is_bound_by_name_and_swept() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let path = root.join("bert_layer_dynamic/model.onnx");
    let e = import_file(&path, 0).unwrap_err().to_string();
    assert!(
        e.contains("1 symbolic dimension unbound: `sequence` (input `x` dimension 1)")
            && e.contains("--dim sequence="),
        "{e}"
    );
    let td = testdata::dims_from(&path, &root.join("bert_layer_dynamic/test_data_set_0")).unwrap();
    assert_eq!(td, Dims::from([("sequence".to_string(), 8)]));
    let sweep = DimSweep::parse(&["sequence=4,16,33"]).unwrap();
    let models = import_file_swept(&path, 0, &sweep).unwrap();
    let cpu = CpuBackend::on_this_thread(0).unwrap();
    let (d, h, dh, ffn) = (32u64, 4u64, 8u64, 64u64);
    for (imp, s) in models.iter().zip([4u64, 16, 33]) {
        let m = &imp.model;
        assert_eq!(m.name, format!("bert_layer_dynamic[sequence={s}]"));
        assert_eq!(m.dims["sequence"], s as usize);
        assert_eq!(
            m.cost.total.macs,
            4 * s * d * d + h * s * s * 2 * dh + s * d * ffn * 2,
            "sequence {s}"
        );
        cpu_matches_reference(&cpu, m, &format!("sequence {s}"));
    }
    // The batch is not a --dim.
    let e = import_file_swept(
        &path,
        0,
        &DimSweep::parse(&["batch=2", "sequence=4"]).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--batch"), "{e}");
}

/// A GPT-2 block as torch.onnx writes it (Range position ids, Split Q/K/V, the causal mask
/// sliced from a tril buffer and applied with Where, tanh GELU, tied lm_head): matched against
/// ONNX Runtime at sequence 8 above; here at other sequence lengths, each its own count and
/// the CPU against the reference; beyond the position table, a clear error.
#[test]
fn gpt2_runs_at_any_sequence_its_position_table_holds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let path = root.join("gpt2_block/model.onnx");
    let cpu = CpuBackend::on_this_thread(0).unwrap();
    let (v, d, h, dh) = (50u64, 16u64, 2u64, 8u64);
    for s in [1u64, 5, 32] {
        let dims = Dims::from([("sequence_length".to_string(), s as usize)]);
        let m = import_file_with(&path, 0, &dims).unwrap().model;
        assert_eq!(m.tokens_per_example(), Some(s), "token ids per example");
        assert_eq!(
            m.cost.total.macs,
            s * d * 3 * d + 2 * h * s * s * dh + s * d * d + 2 * s * d * 4 * d + s * d * v,
            "sequence {s}"
        );
        cpu_matches_reference(&cpu, &m, &format!("sequence {s}"));
    }
    let dims = Dims::from([("sequence_length".to_string(), 33)]);
    let e = import_file_with(&path, 0, &dims).unwrap_err().to_string();
    assert!(
        e.contains("wpe/Gather") && e.contains("outside 0..32"),
        "{e}"
    );
}

/// Optimum's optimised exports write `com.microsoft` operators: refused, each named with its
/// domain and node among everything that cannot be imported (the default-domain ops beside
/// them import).
#[test]
fn com_microsoft_operators_are_refused_naming_the_domain() {
    use greenbench_onnx::proto::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
        TypeProto, ValueInfoProto, tensor_shape_proto::Dimension,
        tensor_shape_proto::dimension::Value, type_proto,
    };
    let vi = |name: &str, dims: &[i64]| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(if d < 0 {
                                Value::DimParam("batch".into())
                            } else {
                                Value::DimValue(d)
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, domain: &str, name: &str, ins: &[&str], out: &str| NodeProto {
        op_type: Some(op.into()),
        domain: Some(domain.into()),
        name: Some(name.into()),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    };
    let g = GraphProto {
        node: vec![
            node(
                "MultiHeadAttention",
                "com.microsoft",
                "mha_0",
                &["x", "w"],
                "a",
            ),
            node(
                "EmbedLayerNormalization",
                "com.microsoft",
                "emb_0",
                &["a", "x"],
                "s",
            ),
            node("Relu", "", "relu", &["s"], "y"),
        ],
        input: vec![vi("x", &[-1, 4, 8])],
        output: vec![vi("y", &[-1, 4, 8])],
        initializer: vec![TensorProto {
            name: Some("w".into()),
            dims: vec![8, 24],
            data_type: Some(1),
            float_data: vec![0.0; 192],
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![
            OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            },
            OperatorSetIdProto {
                domain: Some("com.microsoft".into()),
                version: Some(1),
            },
        ],
        graph: Some(g),
        ..Default::default()
    };
    let e = greenbench_onnx::import::import_model(&m, "bert-opt", "bert-opt.onnx", None, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("bert-opt.onnx: 2 operators greenbench cannot import: com.microsoft.EmbedLayerNormalization (node \"emb_0\"), com.microsoft.MultiHeadAttention (node \"mha_0\")"),
        "{e}"
    );
    assert!(e.contains("without `--optimize`"), "{e}");
    assert!(
        e.contains("greenbench imports its Attention, BiasGelu, FastGelu, SkipLayerNormalization"),
        "{e}"
    );
}
