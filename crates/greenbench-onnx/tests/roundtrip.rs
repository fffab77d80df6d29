//! Export -> import round trips: the zoo's models come back as the identical graph with the
//! identical weights, so they compute the identical function.

use greenbench_core::{MODEL_NAMES, Model, Op, generate_inputs, reference::run_reference};
use greenbench_onnx::decode::decode_model;
use greenbench_onnx::import::import_model;

/// Every zoo model.
const ROUND_TRIP: &[&str] = &[
    "mlp",
    "lenet5",
    "ds-cnn",
    "mobilenet-v1-0.25",
    "resnet8",
    "autoencoder",
    "tiny-transformer",
];

#[test]
fn zoo_models_round_trip_to_the_identical_graph_and_weights() {
    for name in ROUND_TRIP {
        assert!(MODEL_NAMES.contains(name));
        let m = Model::load(name, 3).unwrap();
        let bytes = greenbench_onnx::export(&m);
        let proto = decode_model(&bytes, name).unwrap();
        let imp = import_model(&proto, name, name, None, 3).unwrap();
        let g = &imp.model.graph;
        assert_eq!(g.input, m.graph.input, "{name}: input");
        assert_eq!(g.nodes.len(), m.graph.nodes.len(), "{name}: node count");
        for (i, (a, b)) in g.nodes.iter().zip(&m.graph.nodes).enumerate() {
            // The ONNX node's name (a global pool exports as `pool_gap` + a Flatten `pool`).
            assert!(
                a.name.starts_with(&b.name),
                "{name}: {} for {}",
                a.name,
                b.name
            );
            match (&a.op, &b.op) {
                // "same" padding comes back as the explicit pads it resolves to.
                (Op::Conv2d { .. }, Op::Conv2d { .. }) => {
                    assert_eq!(g.conv_geom(i), m.graph.conv_geom(i), "{name}: {}", b.name)
                }
                _ => assert_eq!(a.op, b.op, "{name}: node {}", b.name),
            }
        }
        for i in 0..g.nodes.len() {
            assert_eq!(
                g.node_inputs(i),
                m.graph.node_inputs(i),
                "{name}: wiring of node {i}"
            );
        }
        assert_eq!(imp.model.weights, m.weights, "{name}: weights");
        assert_eq!(imp.model.cost.total, m.cost.total, "{name}: counted work");
        assert!(
            !imp.io.converts(),
            "{name}: greenbench's exports keep its own layout"
        );
        let x = generate_inputs(g, 2, 9, 0);
        assert_eq!(
            run_reference(g, &imp.model.weights, &x, 2),
            run_reference(&m.graph, &m.weights, &x, 2),
            "{name}: outputs"
        );
    }
}

/// A bf16 model (`export --precision bf16`) exports its weight layers' weights as BFLOAT16
/// initializers behind a `Cast` and each rounding as `Cast` to BFLOAT16 and back; it imports
/// as the same bf16 graph (a rounding before each weight layer) with the same (bf16) weights,
/// computing the same function, at half the weight bytes.
#[test]
fn bf16_models_round_trip() {
    for name in ROUND_TRIP {
        let m = greenbench_core::bf16::model(&Model::load(name, 3).unwrap()).unwrap();
        let bytes = greenbench_onnx::export(&m);
        let fp32 = greenbench_onnx::export(&Model::load(name, 3).unwrap());
        let proto = decode_model(&bytes, name).unwrap();
        let imp = import_model(&proto, name, name, None, 3).unwrap();
        let g = &imp.model.graph;
        assert!(
            greenbench_core::bf16::is_converted(g),
            "{name}: no roundings"
        );
        let rounds = |g: &greenbench_core::Graph| {
            (g.nodes.iter())
                .filter(|n| n.op.kind() == "round_bf16")
                .count()
        };
        assert_eq!(rounds(g), rounds(&m.graph), "{name}: roundings");
        let x = generate_inputs(g, 2, 9, 0);
        assert_eq!(
            run_reference(g, &imp.model.weights, &x, 2),
            run_reference(&m.graph, &m.weights, &x, 2),
            "{name}: outputs"
        );
        // The weight layers' weights are most of every zoo model's bytes.
        assert!(
            (bytes.len() as f64) < 0.75 * fp32.len() as f64,
            "{name}: {} bytes in bf16 against {} in fp32",
            bytes.len(),
            fp32.len()
        );
    }
}

/// A causal (decoder) attention exports as torch.onnx's per-head ops with an additive causal
/// mask and comes back as the same causal attention, computing the same function.
#[test]
fn causal_attention_round_trips() {
    use greenbench_core::graph::{Graph, InputSpec, Node};
    let g = Graph::new(
        "decoder",
        InputSpec {
            shape: vec![6, 8],
            token_vocab: None,
            parts: vec![],
        },
        vec![
            Node::new(
                "qkv",
                Op::Dense {
                    units: 24,
                    bias: true,
                },
            ),
            Node::new(
                "att",
                Op::Attention {
                    heads: 2,
                    head_dim: 4,
                    causal: true,
                    key_bias: false,
                },
            ),
        ],
    )
    .unwrap();
    let m = Model::from_parts(&g, &greenbench_core::generate_weights(&g, 5), 5).unwrap();
    let bytes = greenbench_onnx::export(&m);
    let proto = decode_model(&bytes, "decoder").unwrap();
    let imp = import_model(&proto, "decoder", "decoder.onnx", None, 5).unwrap();
    let ops: Vec<&Op> = imp.model.graph.nodes.iter().map(|n| &n.op).collect();
    assert_eq!(ops, m.graph.nodes.iter().map(|n| &n.op).collect::<Vec<_>>());
    let x = generate_inputs(&m.graph, 2, 5, 0);
    let want = run_reference(&m.graph, &m.weights, &x, 2);
    assert_eq!(
        run_reference(&imp.model.graph, &imp.model.weights, &x, 2),
        want
    );
    // Not the non-causal function.
    let mut open = m.graph.clone();
    open.nodes[1].op = Op::Attention {
        heads: 2,
        head_dim: 4,
        causal: false,
        key_bias: false,
    };
    assert_ne!(run_reference(&open, &m.weights, &x, 2), want);
}

/// Two named inputs, a key-biased attention and two named outputs export as ONNX inputs
/// `qkv` and `bias` and outputs `context` and `projected`, and import back as the same
/// function (the bias found again as the attention's key bias).
#[test]
fn named_inputs_outputs_and_key_bias_round_trip() {
    let g = greenbench_testkit::masked_attention_graph(5, 2, 3, false);
    let m = Model::from_parts(&g, &greenbench_core::generate_weights(&g, 7), 7).unwrap();
    let bytes = greenbench_onnx::export(&m);
    let proto = decode_model(&bytes, "masked").unwrap();
    let gp = proto.graph.as_ref().unwrap();
    let names = |v: &[greenbench_onnx::proto::ValueInfoProto]| -> Vec<String> {
        v.iter()
            .map(|i| i.name.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(names(&gp.input), ["qkv", "bias"]);
    assert_eq!(names(&gp.output), ["context", "projected"]);
    let imp = import_model(&proto, "masked", "masked.onnx", None, 7).unwrap();
    assert_eq!(imp.model.graph.input, m.graph.input);
    assert!(
        imp.model
            .graph
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::Attention { key_bias: true, .. }))
    );
    let x = generate_inputs(&m.graph, 2, 7, 0);
    let want = run_reference(&m.graph, &m.weights, &x, 2);
    let got = run_reference(&imp.model.graph, &imp.model.weights, &x, 2);
    let d = greenbench_core::reference::diff(&got, &want);
    assert!(d.max_rel < 1e-5, "{d:?}");
}

#[test]
fn a_model_with_ops_outside_the_ir_names_them_all() {
    use greenbench_onnx::proto::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto, tensor_shape_proto::Dimension, tensor_shape_proto::dimension::Value,
        type_proto,
    };
    let vi = |name: &str| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension {
                            value: Some(Value::DimParam("N".into())),
                            ..Default::default()
                        },
                        Dimension {
                            value: Some(Value::DimValue(4)),
                            ..Default::default()
                        },
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, name: &str, i: &str, o: &str| NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: vec![i.into()],
        output: vec![o.into()],
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![
                node("Relu", "relu", "x", "r"),
                node("TopK", "topk_7", "r", "t"),
                node("NonMaxSuppression", "nms", "t", "y"),
            ],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = import_model(&m, "t", "model.onnx", None, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "model.onnx: 2 operators greenbench cannot import: NonMaxSuppression (node \"nms\"), TopK (node \"topk_7\")"
        ),
        "{e}"
    );
    // The supported list is the op tables' names, sorted, each once, and every one of them is
    // dispatched: a file of that op alone never reports it as unknown.
    let supported = greenbench_onnx::import::supported_ops();
    let mut sorted = supported.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(supported, sorted);
    for op in [
        "Conv",
        "Gemm",
        "MatMul",
        "Softmax",
        "Reshape",
        "Shape",
        "Cast",
        "Unsqueeze",
    ] {
        assert!(supported.contains(&op), "{op} missing from {supported:?}");
    }
    assert!(
        e.ends_with(&format!(". Supported: {}", supported.join(", "))),
        "{e}"
    );
    for op in &supported {
        let mut one = m.clone();
        one.graph.as_mut().unwrap().node = vec![node(op, "only", "x", "y")];
        if let Err(e) = import_model(&one, "t", "model.onnx", None, 0) {
            let e = e.to_string();
            assert!(
                !e.contains("cannot import")
                    && !e.contains(&format!("operator {op} is not supported")),
                "{op}: {e}"
            );
        }
    }
}

/// The general tensor ops refuse what the IR cannot express with the node, the op and the
/// shapes: a transpose that moves the batch, operands of different ranks.
#[test]
fn general_ops_name_what_they_refuse() {
    use greenbench_onnx::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
        TypeProto, ValueInfoProto, tensor_shape_proto::Dimension,
        tensor_shape_proto::dimension::Value, type_proto,
    };
    let dim = |v: Value| Dimension {
        value: Some(v),
        ..Default::default()
    };
    let vi = |name: &str| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(Value::DimParam("N".into())),
                        dim(Value::DimValue(6)),
                        dim(Value::DimValue(8)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ints = |name: &str, v: &[i64]| AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(7),
        ..Default::default()
    };
    let node =
        |op: &str, name: &str, ins: &[&str], o: &str, attrs: Vec<AttributeProto>| NodeProto {
            op_type: Some(op.into()),
            name: Some(name.into()),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![o.into()],
            attribute: attrs,
            ..Default::default()
        };
    let model = |nodes: Vec<NodeProto>| ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: nodes,
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = |m: &ModelProto| {
        import_model(m, "t", "model.onnx", None, 0)
            .unwrap_err()
            .to_string()
    };
    let e = err(&model(vec![node(
        "Transpose",
        "t",
        &["x"],
        "y",
        vec![ints("perm", &[1, 0, 2])],
    )]));
    assert_eq!(
        e,
        "model.onnx: node \"t\" (Transpose, opset 13): transpose [1, 0, 2] of [N, 6, 8] must permute the axes after the batch"
    );
    let e = err(&model(vec![
        node(
            "ReduceMean",
            "r",
            &["x"],
            "r",
            vec![
                ints("axes", &[1]),
                AttributeProto {
                    name: Some("keepdims".into()),
                    i: Some(0),
                    r#type: Some(2),
                    ..Default::default()
                },
            ],
        ),
        node("Sub", "sub", &["x", "r"], "y", vec![]),
    ]));
    assert!(
        e.starts_with("model.onnx: node \"sub\" (Sub, opset 13): Sub of [N, ..] tensors of different ranks ([6, 8] and [8])"),
        "{e}"
    );
    // The same with equal ranks imports, and a general transpose too.
    let ok = model(vec![
        node("ReduceMean", "r", &["x"], "r", vec![ints("axes", &[1])]),
        node("Sub", "sub", &["x", "r"], "s", vec![]),
        node(
            "Transpose",
            "t",
            &["s"],
            "y",
            vec![ints("perm", &[0, 2, 1])],
        ),
    ]);
    let imp = import_model(&ok, "t", "model.onnx", None, 0).unwrap();
    assert_eq!(imp.model.graph.output_shape(), &vec![8, 6]);
}
