//! Property test: random small graphs of the ops both directions support, exported by
//! greenbench and imported again, come back as the same graph (same ops, wiring and counted
//! work; "same" padding as the explicit pads it resolves to) with the same weights, computing
//! the same outputs.

use greenbench_core::Model;
use greenbench_core::graph::{Graph, Op};
use greenbench_core::reference::run_reference;
use greenbench_core::{generate_inputs, generate_weights};
use greenbench_onnx::decode::decode_model;
use greenbench_onnx::import::{Imported, import_model};
use greenbench_testkit::{chain, join, padding, pool_op, tensor_op_graph, unary_op};
use proptest::prelude::*;

fn image_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..6, 1usize..4, 1usize..3, padding(), any::<bool>()).prop_map(
            |(filters, k, s, padding, bias)| Op::Conv2d {
                filters,
                kernel: [k, k],
                stride: [s, s],
                padding,
                groups: 1,
                bias,
            }
        ),
        pool_op(),
        unary_op(),
        Just(Op::Relu),
        (1usize..4).prop_map(|groups| Op::ChannelShuffle { groups }),
        (0usize..3, 0usize..2, 1usize..3).prop_map(|(axis, start, len)| Op::Slice {
            axis,
            start,
            len
        }),
    ]
}

/// `g` with seeded weights, exported by greenbench and imported again.
fn export_import(g: &Graph, seed: u64) -> Result<(Model, Imported), TestCaseError> {
    let w = generate_weights(g, seed);
    let m = Model::from_parts(g, &w, seed).unwrap();
    let bytes = greenbench_onnx::export(&m);
    let proto = decode_model(&bytes, "p").unwrap();
    let imp = import_model(&proto, "p", "p.onnx", None, seed)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{}", m.graph.to_json())))?;
    Ok((m, imp))
}

fn check(g: &Graph, seed: u64) -> Result<(), TestCaseError> {
    let (m, imp) = export_import(g, seed)?;
    let (a, b) = (&imp.model.graph, &m.graph);
    prop_assert_eq!(a.nodes.len(), b.nodes.len(), "{}", b.to_json());
    for i in 0..a.nodes.len() {
        match (&a.nodes[i].op, &b.nodes[i].op) {
            (Op::Conv2d { .. }, Op::Conv2d { .. }) => {
                prop_assert_eq!(a.conv_geom(i), b.conv_geom(i))
            }
            (Op::MaxPool { .. } | Op::AvgPool { .. }, _) => {
                prop_assert_eq!(a.pool_geom(i), b.pool_geom(i))
            }
            (x, y) => prop_assert_eq!(x, y),
        }
        prop_assert_eq!(a.node_inputs(i), b.node_inputs(i));
    }
    prop_assert_eq!(&imp.model.weights, &m.weights);
    prop_assert_eq!(imp.model.cost.total, m.cost.total);
    let x = generate_inputs(a, 2, seed, 0);
    prop_assert_eq!(
        run_reference(a, &imp.model.weights, &x, 2),
        run_reference(b, &m.weights, &x, 2)
    );
    Ok(())
}

/// The general tensor ops come back as the same function with the same MACs (the importer
/// may write them with other ops: an `Add` of equal shapes is the IR's add, a reshape that
/// only adds unit axes is no node at all, a scalar or per-channel constant an affine).
fn check_function(g: &Graph, seed: u64) -> Result<(), TestCaseError> {
    let (m, imp) = export_import(g, seed)?;
    let a = &imp.model.graph;
    prop_assert_eq!(imp.model.cost.total.macs, m.cost.total.macs);
    // (Other FPO may differ: the importer writes `x + scalar` as an exact affine, which the
    // batch-norm rule counts as 2 FPO per element where the add counted 1.)
    // The file holds greenbench's own order; the importer may relabel an image (its `Io`
    // converts at the boundary).
    let x = generate_inputs(&m.graph, 2, seed, 0);
    let y = run_reference(a, &imp.model.weights, &imp.io.input_to_ir(&x, 2), 2);
    // Within rounding: a division by a constant comes back as a multiplication by its
    // reciprocal (the importer's per-channel scale).
    let d = greenbench_core::reference::diff(
        &imp.io.output_from_ir(&y, 2),
        &run_reference(&m.graph, &m.weights, &x, 2),
    );
    prop_assert!(
        d.max_rel < 1e-6,
        "max rel diff {:e}\n{}",
        d.max_rel,
        m.graph.to_json()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tensor_ops_round_trip(g in tensor_op_graph(), seed in 0u64..1000) {
        prop_assume!(g.is_some());
        check_function(&g.unwrap(), seed)?;
    }

    #[test]
    fn image_chains_round_trip(
        h in 3usize..9, w in 3usize..9, c in 1usize..5,
        ops in proptest::collection::vec(image_op(), 1..5), seed in 0u64..1000,
    ) {
        // A channel shuffle needs channels its groups divide: scale C by 6.
        let g = chain(vec![h, w, c * 6], ops);
        prop_assume!(g.is_some());
        let g = g.unwrap();
        // A slice of a whole axis is a no-op the importer drops.
        let whole = |i: usize| match g.nodes[i].op {
            Op::Slice { axis, start: 0, len } => len == g.value_shape(g.node_inputs(i)[0])[axis],
            _ => false,
        };
        prop_assume!(!(0..g.nodes.len()).any(whole));
        check(&g, seed)?;
    }

    #[test]
    fn joins_round_trip(
        h in 1usize..6, w in 1usize..6, c in 1usize..6, which in 0usize..4, seed in 0u64..1000,
    ) {
        let shape = vec![h, w, c];
        let g = match which {
            0 => join(shape, Op::Mul, true),
            1 => join(shape, Op::Mul, false),
            2 => join(shape, Op::Concat { axis: 2 }, false),
            _ => join(shape, Op::Add, false),
        };
        check(&g.unwrap(), seed)?;
    }

    #[test]
    fn vector_chains_round_trip(
        k in 1usize..20, units in proptest::collection::vec(1usize..12, 1..4),
        act in unary_op(), seed in 0u64..1000,
    ) {
        let mut ops = vec![];
        for u in units {
            ops.push(Op::Dense { units: u, bias: true });
            ops.push(act.clone());
        }
        ops.push(Op::Softmax);
        check(&chain(vec![k], ops).unwrap(), seed)?;
    }
}
