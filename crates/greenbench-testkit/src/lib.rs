//! greenbench-testkit: what the tests of several crates share, written once (dev-only,
//! never published): small graphs built from a list of ops, proptest strategies for their
//! parameters, reference cases (seeded weights and inputs with the plain-loop reference's
//! output) and the error measures backends are held to.
//!
//! It knows greenbench-core only; each backend's tests bring their own backend.

use greenbench_core::graph::{
    DType, Graph, InputPart, InputRole, InputSpec, MathFn, Node, Op, Padding,
};
use greenbench_core::reference::run_reference;
use greenbench_core::weights::Weights;
use greenbench_core::zoo::MODEL_NAMES;
use greenbench_core::{Backend, Model, generate_inputs, generate_weights};
use proptest::prelude::*;

/// A graph of `ops` applied one after the other to an input of `shape` (nodes `n0`, `n1`,
/// ...); `None` when the shapes do not work out (e.g. a window larger than its input).
pub fn chain(shape: Vec<usize>, ops: Vec<Op>) -> Option<Graph> {
    let nodes = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| Node::new(format!("n{i}"), op))
        .collect();
    Graph::new(
        "chain",
        InputSpec {
            shape,
            token_vocab: None,
            parts: vec![],
        },
        nodes,
    )
    .ok()
}

/// Any activation of the [`Unary`](greenbench_core::graph::Unary) family, with its
/// parameters.
pub fn unary_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Sigmoid),
        (0.05f32..0.5, -0.5f32..1.0).prop_map(|(alpha, beta)| Op::HardSigmoid { alpha, beta }),
        Just(Op::HardSwish),
        (-2.0f32..0.5, 0.5f32..6.0).prop_map(|(min, max)| Op::Clip { min, max }),
        Just(Op::Tanh),
        (0.0f32..0.5).prop_map(|alpha| Op::LeakyRelu { alpha }),
        Just(Op::GeluErf),
        // (Unbounded ones, exp and powers, are in `clipped_math_ops`, after a clip: chained
        // through dense layers they overflow to inf and NaN.)
        prop_oneof![
            Just(MathFn::Neg),
            Just(MathFn::Abs),
            Just(MathFn::Sign),
            Just(MathFn::Erf),
        ]
        .prop_map(|f| Op::Math { f }),
    ]
}

/// ONNX's math functions defined on the positive numbers only (sqrt, log, reciprocal,
/// fractional and negative powers), each after a clip to [0.25, 8], and those that grow
/// without bound (exp, an odd power of negative numbers too), after a clip to [-2, 2]: the ops
/// to chain.
pub fn clipped_math_ops() -> impl Strategy<Value = Vec<Op>> {
    let clipped = |min: f32, max: f32, f: MathFn| vec![Op::Clip { min, max }, Op::Math { f }];
    prop_oneof![
        Just(clipped(0.25, 8.0, MathFn::Sqrt)),
        Just(clipped(0.25, 8.0, MathFn::Log)),
        Just(clipped(0.25, 8.0, MathFn::Reciprocal)),
        Just(clipped(0.25, 8.0, MathFn::Pow { exponent: 0.5 })),
        Just(clipped(0.25, 8.0, MathFn::Pow { exponent: -1.5 })),
        Just(clipped(-2.0, 2.0, MathFn::Exp)),
        Just(clipped(-2.0, 2.0, MathFn::Pow { exponent: 3.0 })),
    ]
}

/// The ops that join branches, over an input of `shape`: `a = relu(input)`, `b = tanh(input)`
/// (or, for `mul` with `per_channel`, `b = global average of input` over its last axis), then
/// `op(a, b)` (for concat also `input` itself as a third part, along the op's axis).
pub fn join(shape: Vec<usize>, op: Op, per_channel: bool) -> Option<Graph> {
    let mut nodes = vec![Node::with_inputs("a", Op::Relu, &["input"])];
    if per_channel && shape.len() > 1 {
        nodes.push(Node::with_inputs("b", Op::GlobalAvgPool, &["input"]));
    } else {
        nodes.push(Node::with_inputs("b", Op::Tanh, &["input"]));
    }
    let ins: &[&str] = match op {
        Op::Concat { .. } => &["a", "b", "input"],
        _ => &["a", "b"],
    };
    nodes.push(Node::with_inputs("join", op, ins));
    Graph::new(
        "join",
        InputSpec {
            shape,
            token_vocab: None,
            parts: vec![],
        },
        nodes,
    )
    .ok()
}

/// Case `which` (0..7) of the ops that join, split or move data, over an `[h, w, c * g]`
/// input: per-channel and same-shape mul, concat on channels and on rows, a channel shuffle
/// of `g` groups, a channel slice and a row slice.
pub fn data_movement_case(which: usize, h: usize, w: usize, c: usize, g: usize) -> Option<Graph> {
    let shape = vec![h, w, c * g];
    match which {
        0 => join(shape, Op::Mul, true),
        1 => join(shape, Op::Mul, false),
        2 => join(shape, Op::Concat { axis: 2 }, false),
        3 => join(shape, Op::Concat { axis: 0 }, false),
        4 => chain(shape, vec![Op::ChannelShuffle { groups: g }]),
        5 => chain(
            shape,
            vec![Op::Slice {
                axis: 2,
                start: c * g / 2,
                len: (c * g).div_ceil(2),
            }],
        ),
        _ => chain(
            shape,
            vec![Op::Slice {
                axis: 0,
                start: h / 2,
                len: h.div_ceil(2),
            }],
        ),
    }
}

/// Case `which` (0..6) of the general tensor ops over an input of per-example shape `dims`
/// (rank 1 to 4): a broadcasting `op` of `tanh(input)` with a part of the input whose axes
/// in `mask` are cut to 1 and whose first `drop` axes are then removed (its sigmoid: positive,
/// so a division is safe; `swap` puts it on the left); a transpose by the `rot`-th rotation of
/// the axes, reversed when `mask` is odd; a reshape to the reversed dims, then that
/// transpose; batched products of the input (`[.., m, k]`) with its own transpose, with
/// the right-hand side one shared matrix (`which` 3) or the left-hand side (`which` 4); `op`
/// with a constant shaped like the broadcast part (`which` 5, the constant first when `swap`).
pub fn tensor_op_case(
    which: usize,
    dims: Vec<usize>,
    mask: u32,
    drop: usize,
    rot: usize,
    op: greenbench_core::graph::BinOp,
    swap: bool,
) -> Option<Graph> {
    let r = dims.len();
    let mut perm: Vec<usize> = (0..r).map(|a| (a + rot) % r).collect();
    if mask % 2 == 1 {
        perm.reverse();
    }
    let mut nodes = vec![Node::with_inputs("a", Op::Tanh, &["input"])];
    let mut prev = "input".to_string();
    let push = |nodes: &mut Vec<Node>, name: String, op: Op, ins: &[&str]| {
        nodes.push(Node::with_inputs(name.clone(), op, ins));
        name
    };
    match which {
        0 => {
            let mut part = dims.clone();
            for (a, d) in part.iter_mut().enumerate() {
                if mask & (1 << a) != 0 && *d > 1 {
                    prev = push(
                        &mut nodes,
                        format!("cut{a}"),
                        Op::Slice {
                            axis: a,
                            start: *d / 2,
                            len: 1,
                        },
                        &[&prev],
                    );
                    *d = 1;
                }
            }
            let drop = drop.min(r - 1);
            if part[..drop].iter().all(|&d| d == 1) && drop > 0 {
                prev = push(
                    &mut nodes,
                    "drop".into(),
                    Op::Reshape {
                        shape: part[drop..].to_vec(),
                    },
                    &[&prev],
                );
            }
            let b = push(&mut nodes, "b".into(), Op::Sigmoid, &[&prev]);
            let ins: [&str; 2] = if swap { [&b, "a"] } else { ["a", &b] };
            push(&mut nodes, "y".into(), Op::Binary { op }, &ins);
        }
        1 => {
            push(&mut nodes, "t".into(), Op::Transpose { perm }, &["a"]);
        }
        5 => {
            // A constant of the input's shape with the `mask` axes cut to 1 and the first
            // `drop` axes removed.
            let mut shape: Vec<usize> = (0..r)
                .map(|a| if mask & (1 << a) != 0 { 1 } else { dims[a] })
                .collect();
            shape.drain(..drop.min(r - 1));
            push(
                &mut nodes,
                "y".into(),
                Op::BinaryConst {
                    op,
                    shape,
                    left: swap,
                },
                &["a"],
            );
        }
        2 => {
            let rev: Vec<usize> = dims.iter().rev().copied().collect();
            push(&mut nodes, "r".into(), Op::Reshape { shape: rev }, &["a"]);
            push(&mut nodes, "t".into(), Op::Transpose { perm }, &["r"]);
        }
        _ => {
            if r < 2 {
                return None;
            }
            let mut swap_last: Vec<usize> = (0..r).collect();
            swap_last.swap(r - 1, r - 2);
            let t = push(
                &mut nodes,
                "t".into(),
                Op::Transpose { perm: swap_last },
                &["a"],
            );
            // One matrix of the transpose (or of the input), as a 2-D value.
            let one = |nodes: &mut Vec<Node>, src: &str, m: usize, k: usize| {
                let mut cur = src.to_string();
                for a in 0..r - 2 {
                    cur = push(
                        nodes,
                        format!("{src}_first{a}"),
                        Op::Slice {
                            axis: a,
                            start: 0,
                            len: 1,
                        },
                        &[&cur],
                    );
                }
                push(
                    nodes,
                    format!("{src}_mat"),
                    Op::Reshape { shape: vec![m, k] },
                    &[&cur],
                )
            };
            let (m, k) = (dims[r - 2], dims[r - 1]);
            match which {
                3 => {
                    let b = if r > 2 {
                        one(&mut nodes, &t, k, m)
                    } else {
                        t.clone()
                    };
                    push(&mut nodes, "y".into(), Op::MatMul, &["a", &b]);
                }
                _ => {
                    let a = if r > 2 {
                        one(&mut nodes, "a", m, k)
                    } else {
                        "a".into()
                    };
                    push(&mut nodes, "y".into(), Op::MatMul, &[&a, &t]);
                }
            }
        }
    }
    Graph::new(
        "tensor_ops",
        InputSpec {
            shape: dims,
            token_vocab: None,
            parts: vec![],
        },
        nodes,
    )
    .ok()
}

/// A graph of [`tensor_op_case`] with every parameter drawn (dims of 1 to 5 on 1 to 4 axes);
/// `None` where the case does not apply (a product needs two axes).
pub fn tensor_op_graph() -> impl Strategy<Value = Option<Graph>> {
    (
        proptest::collection::vec(1usize..6, 1..5),
        0usize..6,
        0u32..16,
        0usize..3,
        0usize..4,
        0usize..4,
        any::<bool>(),
    )
        .prop_map(|(dims, which, mask, drop, rot, op, swap)| {
            let op = greenbench_core::graph::BinOp::ALL[op];
            tensor_op_case(which, dims, mask, drop, rot, op, swap)
        })
}

/// Any convolution padding: `same`, `valid`, or explicit borders of 0 to 2 on each side.
pub fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Same),
        Just(Padding::Valid),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3)
            .prop_map(|(top, bottom, left, right)| Padding::explicit(top, bottom, left, right)),
    ]
}

/// Any pooling op: max or average, `k`x`k` window, stride 1 to 3, any [`padding`], floor or
/// ceil mode, with or without `count_include_pad`.
pub fn pool_op() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        1usize..5,
        1usize..4,
        padding(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(max, k, s, padding, ceil_mode, count_include_pad)| {
            if max {
                Op::MaxPool {
                    kernel: [k, k],
                    stride: [s, s],
                    padding,
                    ceil_mode,
                }
            } else {
                Op::AvgPool {
                    kernel: [k, k],
                    stride: [s, s],
                    padding,
                    ceil_mode,
                    count_include_pad,
                }
            }
        })
}

/// A graph's seeded weights and inputs (input set `set`) with the reference's output.
pub struct Case {
    pub weights: Weights,
    pub input: Vec<f32>,
    pub want: Vec<f32>,
}

/// The reference case of `g` at `batch`: weights and inputs from `seed` (input set 0).
/// A model with two named inputs and two outputs around a masked attention: `qkv`
/// (`[s, 3 h d]`, values) and `bias` (`[1, s]`, the key bias, values), the attention core
/// reading both, a dense layer of `qkv` beside it, and both packed as outputs `context` and
/// `projected`.
pub fn masked_attention_graph(s: usize, heads: usize, d: usize, causal: bool) -> Graph {
    let part = |name: &str, shape: Vec<usize>| InputPart {
        name: name.into(),
        shape,
        dtype: DType::F32,
        role: InputRole::Values,
        vocab: None,
    };
    let input = InputSpec::packed(vec![
        part("qkv", vec![s, 3 * heads * d]),
        part("bias", vec![1, s]),
    ]);
    let nodes = vec![
        Node::new("x", Op::Input { index: 0 }),
        Node::new("b", Op::Input { index: 1 }),
        Node::with_inputs(
            "att",
            Op::Attention {
                heads,
                head_dim: d,
                causal,
                key_bias: true,
            },
            &["x", "b"],
        ),
        Node::with_inputs(
            "proj",
            Op::Dense {
                units: 3,
                bias: true,
            },
            &["x"],
        ),
        Node::with_inputs(
            "outputs",
            Op::Pack {
                names: vec!["context".into(), "projected".into()],
            },
            &["att", "proj"],
        ),
    ];
    Graph::new("masked", input, nodes).expect("a valid graph")
}

pub fn reference_case(g: &Graph, batch: usize, seed: u64) -> Case {
    let weights = generate_weights(g, seed);
    reference_case_with(g, weights, batch, seed, 0)
}

/// The reference case of `g` with the given weights, inputs from `seed` and input set `set`.
pub fn reference_case_with(g: &Graph, weights: Weights, batch: usize, seed: u64, set: u64) -> Case {
    let input = generate_inputs(g, batch, seed, set);
    let want = run_reference(g, &weights, &input, batch);
    Case {
        weights,
        input,
        want,
    }
}

/// Every zoo model as the harness runs it (weights from `seed`, batch norm folded) at each
/// batch size, with inputs from `seed`, input set 1, and the reference's output.
pub fn zoo_cases(batches: &[usize], seed: u64) -> Vec<(Model, usize, Case)> {
    let mut v = Vec::new();
    for name in MODEL_NAMES {
        let m = Model::load(name, seed).expect("zoo models load");
        for &batch in batches {
            let case = reference_case_with(&m.graph, m.weights.clone(), batch, seed, 1);
            v.push((m.clone(), batch, case));
        }
    }
    v
}

/// `b`'s output for `case` on `g` (prepared at `batch`, run once).
pub fn run_case(b: &dyn Backend, g: &Graph, case: &Case, batch: usize) -> Vec<f32> {
    let mut p = b.prepare(g, &case.weights, batch).expect("prepares");
    p.run(&case.input).expect("runs").to_vec()
}

/// Largest |got - want| relative to max(1, |want|), element by element: relative where the
/// values are large, absolute where they are small.
pub fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "outputs differ in length");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_and_cases() {
        assert!(chain(vec![2, 2, 1], vec![Op::max_pool([3, 3], [1, 1])]).is_none());
        let g = chain(
            vec![4],
            vec![
                Op::Dense {
                    units: 3,
                    bias: true,
                },
                Op::Relu,
            ],
        )
        .unwrap();
        let c = reference_case(&g, 2, 1);
        assert_eq!((c.input.len(), c.want.len()), (8, 6));
        assert!(c.want.iter().all(|v| *v >= 0.0));
        // |1 - 0.5| / max(1, 0.5) = 0.5 beats |10 - 12| / 12.
        assert_eq!(max_rel_err(&[1.0, 10.0], &[0.5, 12.0]), 0.5);
    }
}
