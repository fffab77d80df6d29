//! Property tests: every CPU kernel against the plain-loop reference of greenbench-core,
//! over random shapes, strides, paddings and groups; and every zoo model at batch 1 and 32;
//! each in every configuration of the backend (direct or portable kernels, steps split or not).

use greenbench_core::graph::{BinOp, Graph, GraphError, InputSpec, Node, Op, Padding};
use greenbench_core::reference::diff;
use greenbench_core::zoo::zoo_model;
use greenbench_core::{Backend, Model, generate_inputs, generate_weights};
use greenbench_cpu::CpuBackend;
use greenbench_testkit::{
    self as testkit, chain, clipped_math_ops, data_movement_case, padding, pool_op, reference_case,
    run_case, tensor_op_case, tensor_op_graph, unary_op, zoo_cases,
};
use proptest::prelude::*;

/// The CPU backend's configurations that take different code paths on this machine: the
/// default (direct AVX-512 kernels where the CPU has them), the portable im2col + `gemm`
/// crate path, and (with 2 threads) every direct step split across the team.
fn configurations(threads: usize) -> Vec<(String, CpuBackend)> {
    let mut v = vec![
        (
            format!("default, {threads} threads"),
            CpuBackend::new(threads).unwrap(),
        ),
        (
            format!("portable, {threads} threads"),
            CpuBackend::new(threads).unwrap().with_direct_kernels(false),
        ),
    ];
    if threads > 1 {
        v.push((
            format!("every step split, {threads} threads"),
            CpuBackend::new(threads)
                .unwrap()
                .with_step_split_threshold(0),
        ));
    }
    v
}

/// Largest |cpu - reference| relative to max(1, |reference|), over every configuration.
fn max_rel_err(g: &Graph, batch: usize, seed: u64, threads: usize) -> f32 {
    let case = reference_case(g, batch, seed);
    configurations(threads)
        .into_iter()
        .map(|(_, cpu)| testkit::max_rel_err(&run_case(&cpu, g, &case, batch), &case.want))
        .fold(0.0, f32::max)
}

const TOL: f32 = 2e-5;

/// Winograd F(4x4, 3x3)'s bound: its transforms' coefficients (up to 8, and 1/24 on the
/// weights) round more than the other kernels' sums, up to 3.3e-5 in the Winograd property
/// test (two stacked layers and a residual, 21 input channels). Held to `greenbench
/// verify`'s tolerance, 1e-4; on the onnx package's VGG-19 and ResNet-50 `verify` measured
/// 2.5e-6 and 1.3e-6 of the output's largest magnitude, as with F(2x2, 3x3).
const TOL_F4: f32 = 1e-4;

/// The activation after a convolution or dense layer, by number: none, ReLU, a ReLU6-style
/// Clip(0, max), h-swish, sigmoid, GELU (the CPU fuses each into the layer's epilogue).
fn epilogue(which: usize) -> Option<Op> {
    match which {
        1 => Some(Op::Relu),
        2 => Some(Op::Clip {
            min: 0.0,
            max: 0.25,
        }),
        3 => Some(Op::HardSwish),
        4 => Some(Op::Sigmoid),
        5 => Some(Op::Gelu),
        _ => None,
    }
}

/// Push `epilogue(which)`, if any, as node `name` after the last node; returns the name of
/// the value the nodes now end on (`last` when there is no activation).
fn push_epilogue(nodes: &mut Vec<Node>, which: usize, name: &str, last: &str) -> String {
    match epilogue(which) {
        Some(op) => {
            nodes.push(Node::new(name, op));
            name.to_string()
        }
        None => last.to_string(),
    }
}

/// A graph of `nodes` over an `[h, w, c]` image input.
fn image_graph(name: &str, [h, w, c]: [usize; 3], nodes: Vec<Node>) -> Result<Graph, GraphError> {
    Graph::new(
        name,
        InputSpec {
            shape: vec![h, w, c],
            token_vocab: None,
            parts: vec![],
        },
        nodes,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv2d_matches_reference(
        h in 1usize..12, w in 1usize..12, gdiv in 1usize..4, cin_g in 1usize..5,
        cout_g in 1usize..6, kh in 1usize..6, kw in 1usize..6, sh in 1usize..4, sw in 1usize..4,
        pad in padding(), relu in 0usize..6, batch in 1usize..4, threads in 1usize..3,
    ) {
        let groups = gdiv;
        let op = Op::Conv2d { filters: cout_g * groups, kernel: [kh, kw], stride: [sh, sw],
            padding: pad, groups, bias: true };
        let mut ops = vec![op];
        // none, ReLU, ReLU6-style Clip(0, max), h-swish, sigmoid or GELU (fused into the epilogue)
        ops.extend(epilogue(relu));
        let g = chain(vec![h, w, cin_g * groups], ops);
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 3, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Single-channel convolutions of stride 1 and up to 16 outputs (LeNet-5's first layer):
    /// the direct kernels' pixels-in-lanes form, rows of 1 to 40 pixels (whole and partial
    /// 16-pixel chunks), every fused activation, a team's pixel ranges; with a 2x2 stride-2
    /// max pool after them (LeNet-5's conv1 -> pool1), pooled as the form stores where the
    /// output's sides are even and the channels at most 12, else a step of its own.
    #[test]
    fn single_channel_convolutions_match_reference(
        h in 1usize..12, w in 1usize..40, cout in 1usize..18, kh in 1usize..6, kw in 1usize..8,
        pad in padding(), relu in 0usize..6, pool in any::<bool>(), batch in 1usize..3,
        threads in 1usize..3,
    ) {
        let op = Op::Conv2d { filters: cout, kernel: [kh, kw], stride: [1, 1], padding: pad,
            groups: 1, bias: true };
        let mut ops = vec![op];
        ops.extend(epilogue(relu));
        if pool {
            ops.push(Op::MaxPool { kernel: [2, 2], stride: [2, 2], padding: Padding::Valid,
                ceil_mode: false });
        }
        let g = chain(vec![h, w, 1], ops);
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 13, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Reductions longer than one block of the direct kernel's weights (256 KiB: 1,024 to
    /// 4,096 values for 64 to 16 output channels), so tiles reload their accumulators between
    /// blocks and add the bias, the residual and the activation only after the last one: a
    /// k x k convolution over many channels with a residual add fused into it, and a dense
    /// layer with a long reduction.
    #[test]
    fn long_reductions_match_reference(
        h in 1usize..4, w in 1usize..4, cin in 340usize..1500, cout in 1usize..70, k in 1usize..4,
        residual in any::<bool>(), relu in 0usize..6, batch in 1usize..3, threads in 1usize..3,
    ) {
        let mut nodes = vec![Node::new("c1", conv_op(cout, k, 1, Padding::Same, 1))];
        if residual {
            // y = act(conv(x) + skip), skip a 1x1 convolution of x (the fused residual).
            nodes.push(Node::with_inputs("skip", conv_op(cout, 1, 1, Padding::Valid, 1), &["input"]));
            nodes.push(Node::with_inputs("sum", Op::Add, &["c1", "skip"]));
        }
        push_epilogue(&mut nodes, relu, "act", "");
        let g = image_graph("long", [h, w, cin], nodes);
        prop_assert!(g.is_ok(), "{:?}", g.err());
        let err = max_rel_err(&g.unwrap(), batch, 13, threads);
        prop_assert!(err < TOL, "err {err}");
        let dense = chain(vec![k * 1700], vec![Op::Dense { units: cout, bias: true }]).unwrap();
        let err = max_rel_err(&dense, batch, 17, threads);
        prop_assert!(err < TOL, "dense: err {err}");
    }

    /// Concatenations along channels whose inputs are convolutions (each with or without a
    /// fused activation), written in place by those convolutions: at any channel offsets
    /// (widths not multiples of 16), read by a padded convolution (the concatenation stored
    /// with a zero border) or by a pool; and one input that is not a convolution (the copy).
    #[test]
    fn concatenated_convolutions_match_reference(
        h in 2usize..9, w in 2usize..9, cin in 1usize..20, c1 in 1usize..40, c2 in 1usize..40,
        k2 in 1usize..4, act1 in 0usize..6, act2 in 0usize..6, reader in 0usize..3,
        plain_input in any::<bool>(), batch in 1usize..4, threads in 1usize..3,
    ) {
        let conv = |f, k| conv_op(f, k, 1, Padding::Same, 1);
        let mut nodes = vec![Node::with_inputs("a", conv(c1, 1), &["input"])];
        let a_out = push_epilogue(&mut nodes, act1, "a_act", "a");
        nodes.push(Node::with_inputs("b", conv(c2, k2), &["input"]));
        let b_out = push_epilogue(&mut nodes, act2, "b_act", "b");
        // The input itself as a third part: not a convolution, so that concatenation copies.
        let mut parts = vec![a_out.as_str(), b_out.as_str()];
        if plain_input {
            parts.push("input");
        }
        nodes.push(Node::with_inputs("cat", Op::Concat { axis: 2 }, &parts));
        match reader {
            0 => nodes.push(Node::new("next", conv(5, 3))),
            1 => nodes.push(Node::new("next", Op::MaxPool { kernel: [2, 2], stride: [1, 1],
                padding: Padding::Valid, ceil_mode: false })),
            _ => {}
        }
        let g = image_graph("cat", [h, w, cin], nodes);
        prop_assume!(g.is_ok());
        let err = max_rel_err(&g.unwrap(), batch, 19, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// DenseNet-style dense blocks: a base (a pool's output, or the input itself), then
    /// layers of batch norm + ReLU, 1x1 convolution + ReLU, 3x3 convolution, each
    /// concatenated after the running concatenation (which shares one buffer: earlier ones
    /// read with a pixel stride, the base copied in once); a transition (batch norm, 1x1
    /// convolution, average pool) into a second block; or a running value with a reader that
    /// is no batch norm (the chain stops there).
    #[test]
    fn dense_blocks_match_reference(
        h in 2usize..9, w in 2usize..9, c0 in 1usize..20, growth in 1usize..20,
        layers in 1usize..5, extra in 0usize..3, pool_base in any::<bool>(), batch in 1usize..3,
        threads in 1usize..3,
    ) {
        let mut nodes = vec![];
        let mut x = "input".to_string();
        if pool_base {
            nodes.push(Node::with_inputs("stem", Op::MaxPool { kernel: [2, 2], stride: [1, 1],
                padding: Padding::Valid, ceil_mode: false }, &["input"]));
            x = "stem".into();
        }
        let block = |nodes: &mut Vec<Node>, x: &mut String, b: usize| {
            for l in 0..layers {
                let n = |s: &str| format!("b{b}l{l}{s}");
                nodes.push(Node::with_inputs(n("bn"), Op::BatchNorm { eps: 1e-5 }, &[x.as_str()]));
                nodes.push(Node::new(n("relu"), Op::Relu));
                nodes.push(Node::new(n("c1"), conv_op(2 * growth, 1, 1, Padding::Valid, 1)));
                nodes.push(Node::new(n("relu2"), Op::Relu));
                nodes.push(Node::new(n("c3"), conv_op(growth, 3, 1, Padding::Same, 1)));
                nodes.push(Node::with_inputs(n("cat"), Op::Concat { axis: 2 },
                    &[x.as_str(), n("c3").as_str()]));
                *x = n("cat");
            }
        };
        block(&mut nodes, &mut x, 0);
        let first_cat = "b0l0cat".to_string();
        match extra {
            1 => {
                nodes.push(Node::with_inputs("tbn", Op::BatchNorm { eps: 1e-5 }, &[x.as_str()]));
                nodes.push(Node::new("tconv", conv_op(c0 + growth, 1, 1, Padding::Valid, 1)));
                nodes.push(Node::new("tpool", Op::AvgPool { kernel: [1, 1], stride: [1, 1],
                    padding: Padding::Valid, ceil_mode: false, count_include_pad: false }));
                x = "tpool".into();
                block(&mut nodes, &mut x, 1);
            }
            2 => {
                // The first running value also read by a ReLU, joined at the end.
                nodes.push(Node::with_inputs("side", Op::Relu, &[first_cat.as_str()]));
                nodes.push(Node::with_inputs("out", Op::Concat { axis: 2 }, &[x.as_str(), "side"]));
            }
            _ => {}
        }
        let g = image_graph("dense", [h, w, c0], nodes);
        prop_assert!(g.is_ok(), "{:?}", g.err());
        let err = max_rel_err(&g.unwrap(), batch, 31, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Grouped 1x1 convolutions (one direct GEMM per group into the shared output), with
    /// group widths that leave a ragged last channel block (e.g. 68 = 64 + 4), and with a
    /// residual add (+ ReLU) fused into them, its skip stored plain or with a zero border
    /// (when a padded convolution also reads it).
    #[test]
    fn grouped_pointwise_matches_reference(
        h in 1usize..8, w in 1usize..8, groups in 2usize..5, cin_g in 1usize..40,
        cout_g in 1usize..80, relu in 0usize..6, residual in 0usize..3, batch in 1usize..3,
        threads in 1usize..3,
    ) {
        let conv = |f, k, groups, pad| conv_op(f, k, 1, pad, groups);
        let cout = cout_g * groups;
        let mut nodes = vec![];
        if residual > 0 {
            // skip: a 3x3 convolution of the input (a value other convolutions read too when
            // `residual == 2`, so that it is stored with a border).
            nodes.push(Node::with_inputs("skip", conv(cout, 3, 1, Padding::Same), &["input"]));
            nodes.push(Node::with_inputs("g", conv(cout, 1, groups, Padding::Valid), &["input"]));
            nodes.push(Node::with_inputs("sum", Op::Add, &["g", "skip"]));
            nodes.push(Node::new("relu", Op::Relu));
            if residual == 2 {
                nodes.push(Node::with_inputs("other", conv(3, 3, 1, Padding::Same), &["skip"]));
                nodes.push(Node::with_inputs("out", Op::Concat { axis: 2 }, &["relu", "other"]));
            }
        } else {
            nodes.push(Node::new("g", conv(cout, 1, groups, Padding::Valid)));
            push_epilogue(&mut nodes, relu, "act", "g");
        }
        let g = image_graph("gp", [h, w, cin_g * groups], nodes);
        prop_assert!(g.is_ok(), "{:?}", g.err());
        let err = max_rel_err(&g.unwrap(), batch, 23, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// ShuffleNet units: a grouped 1x1 convolution (+ activation) and a channel shuffle of as
    /// many groups (or of another group count), read by a padded depthwise convolution, by a
    /// 1x1 convolution, or by nothing.
    #[test]
    fn shuffled_grouped_pointwise_matches_reference(
        h in 1usize..8, w in 1usize..8, groups in 2usize..5, cin_g in 1usize..12,
        cout_g in 1usize..40, act in 0usize..3, reader in 0usize..3, other_groups in any::<bool>(),
        batch in 1usize..3, threads in 1usize..3,
    ) {
        let cout = cout_g * groups;
        let mut nodes = vec![Node::new("g", conv_op(cout, 1, 1, Padding::Valid, groups))];
        let last = push_epilogue(&mut nodes, act, "act", "g");
        let sg = if other_groups && cout % (groups + 1) == 0 { groups + 1 } else { groups };
        nodes.push(Node::with_inputs("shuffle", Op::ChannelShuffle { groups: sg }, &[last.as_str()]));
        match reader {
            0 => nodes.push(Node::new("dw", conv_op(cout, 3, 1, Padding::Same, cout))),
            1 => nodes.push(Node::new("pw", conv_op(5, 1, 1, Padding::Valid, 1))),
            _ => {}
        }
        let g = image_graph("shuffle", [h, w, cin_g * groups], nodes);
        prop_assert!(g.is_ok(), "{:?}", g.err());
        let err = max_rel_err(&g.unwrap(), batch, 37, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Chains of batch norms (composed into one scale and shift) with a ReLU after them (in
    /// the same pass), after a convolution (the first one folds into it); and a chain whose
    /// middle value has a second reader (not composed past it).
    #[test]
    fn batch_norm_chains_match_reference(
        h in 1usize..6, w in 1usize..6, c in 1usize..20, n in 1usize..4, relu in any::<bool>(),
        shared in any::<bool>(), batch in 1usize..3, threads in 1usize..3,
    ) {
        let mut nodes = vec![Node::new("conv", Op::conv(c, [3, 3], [1, 1], Padding::Same))];
        // The first batch norm folds into the convolution; a ReLU between keeps the rest.
        nodes.push(Node::new("r0", Op::Relu));
        for k in 0..n {
            nodes.push(Node::new(format!("bn{k}"), Op::BatchNorm { eps: 1e-5 }));
        }
        if relu {
            nodes.push(Node::new("r1", Op::Relu));
        }
        if shared {
            // bn0's output read twice: by bn1 (or what follows) and by this add.
            let last = nodes.last().unwrap().name.clone();
            nodes.push(Node::with_inputs("sum", Op::Add, &[last.as_str(), "bn0"]));
        }
        let g = image_graph("bn", [h, w, c], nodes);
        prop_assume!(g.is_ok());
        let err = max_rel_err(&g.unwrap(), batch, 29, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Stride-1 3x3 depthwise layers of 4 or 8 channels (mobilenet-v1-0.25's first depthwise
    /// layer has 8): the kernel with 16 / c pixels in each vector, rows of 1 to 40 pixels
    /// (whole and masked last vectors, blocks of up to 8 vectors), every fused activation, row
    /// pairs, a team's rows.
    #[test]
    fn packed_depthwise_matches_reference(
        h in 1usize..10, w in 1usize..40, c in prop::sample::select(vec![4usize, 8]),
        sh in 1usize..3, pad in padding(), relu in 0usize..6, batch in 1usize..4,
        threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Conv2d { filters: c, kernel: [3, 3], stride: [sh, 1], padding: pad,
            groups: c, bias: true }];
        ops.extend(epilogue(relu));
        let g = chain(vec![h, w, c], ops);
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 17, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn depthwise_matches_reference(
        // Widths past two strips of 12 (stride 1) and 8 (stride 2); channels in whole chunks
        // of 16-64 with and without a remainder of fewer than 16.
        h in 1usize..14, w in 1usize..28, c in prop_oneof![2usize..20, 30usize..82],
        k in 1usize..5, s in 1usize..3,
        pad in padding(), relu in 0usize..6, batch in 1usize..4,
    ) {
        let mut ops = vec![Op::Conv2d { filters: c, kernel: [k, k], stride: [s, s], padding: pad,
            groups: c, bias: true }];
        // none, ReLU, ReLU6-style Clip(0, max), h-swish, sigmoid or GELU (fused into the epilogue)
        ops.extend(epilogue(relu));
        let g = chain(vec![h, w, c], ops);
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 5, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn dense_and_pointwise_match_reference(
        lead in 1usize..6, k in 1usize..70, units in 1usize..70, bias in any::<bool>(),
        relu in 0usize..6, batch in 1usize..5, image in any::<bool>(),
    ) {
        let (shape, op) = if image {
            (vec![lead, 3, k], Op::Conv2d { filters: units, kernel: [1, 1], stride: [1, 1],
                padding: Padding::Valid, groups: 1, bias })
        } else {
            (vec![lead, k], Op::Dense { units, bias })
        };
        let mut ops = vec![op];
        // none, ReLU, ReLU6-style Clip(0, max), h-swish, sigmoid or GELU (fused into the epilogue)
        ops.extend(epilogue(relu));
        let err = max_rel_err(&chain(shape, ops).unwrap(), batch, 7, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn pools_match_reference(
        h in 1usize..16, w in 1usize..16, c in 1usize..9, k in 1usize..5, s in 1usize..4,
        max in any::<bool>(), batch in 1usize..4,
    ) {
        let op = if max { Op::max_pool([k, k], [s, s]) }
            else { Op::avg_pool([k, k], [s, s]) };
        let g = chain(vec![h, w, c], vec![op]);
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 9, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn padded_and_ceil_mode_pools_match_reference(
        h in 1usize..12, w in 1usize..12, c in 1usize..20, op in pool_op(), batch in 1usize..4,
    ) {
        let g = chain(vec![h, w, c], vec![op]);
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 9, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    /// A max pool (any window, stride, padding, ceil mode) after a convolution on the fp32
    /// tile, run band by band inside it (`direct/conv/pool_fused.rs`): forced on every size
    /// (`with_fused_pool_min(0)`), with one and two threads and every step split, against
    /// the reference; and the pool is in the convolution's step wherever that form runs.
    #[test]
    fn max_pools_fused_into_convolutions_match_reference(
        h in 1usize..14, w in 1usize..14, cin in 2usize..5, cout in 1usize..80, k in 1usize..4,
        s in 1usize..3, pad in padding(), relu in 0usize..3, pool in pool_op(),
        batch in 1usize..4,
    ) {
        let pool = match pool {
            Op::AvgPool { kernel, stride, padding, ceil_mode, .. } =>
                Op::MaxPool { kernel, stride, padding, ceil_mode },
            p => p,
        };
        let conv = Op::Conv2d { filters: cout, kernel: [k, k], stride: [s, s], padding: pad,
            groups: 1, bias: true };
        let mut ops = vec![conv];
        ops.extend(epilogue(relu));
        ops.push(pool);
        let g = chain(vec![h, w, cin], ops);
        prop_assume!(g.is_some());
        let g = g.unwrap();
        let case = reference_case(&g, batch, 5);
        for threads in 1..3 {
            let cpu = || CpuBackend::new(threads).unwrap().with_fused_pool_min(0);
            let mut backends = vec![cpu()];
            if threads > 1 {
                backends.push(cpu().with_step_split_threshold(0));
            }
            for cpu in backends {
                let err = testkit::max_rel_err(&run_case(&cpu, &g, &case, batch), &case.want);
                prop_assert!(err < TOL, "err {err}, {threads} threads");
            }
        }
        // The plan (one thread: a team's steps are not timed) puts the pool in the
        // convolution's step.
        if greenbench_cpu::direct_kernels_available() {
            let cpu = CpuBackend::new(1).unwrap().with_fused_pool_min(0);
            let mut p = cpu.prepare(&g, &generate_weights(&g, 5), batch).unwrap();
            p.time_steps().unwrap();
            p.run(&generate_inputs(&g, batch, 0, 0)).unwrap();
            let last = g.nodes.len() - 1;
            let times = p.step_times();
            let fused = times.iter().find(|t| t.nodes.contains(&last)).unwrap();
            prop_assert!(
                fused.nodes.contains(&0) && fused.kernel.contains("max pool fused"),
                "{:?}: {}", fused.nodes, fused.kernel
            );
        }
    }

    #[test]
    fn activations_match_reference(
        rows in 1usize..9, n in 1usize..70, op in unary_op(), batch in 1usize..4,
    ) {
        let err = max_rel_err(&chain(vec![rows, n], vec![op]).unwrap(), batch, 17, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn clipped_math_matches_reference(
        rows in 1usize..9, n in 1usize..70, ops in clipped_math_ops(), batch in 1usize..4,
    ) {
        let err = max_rel_err(&chain(vec![rows, n], ops).unwrap(), batch, 29, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn broadcast_transpose_reshape_and_matmul_match_reference(
        g in tensor_op_graph(), batch in 1usize..4,
    ) {
        prop_assume!(g.is_some());
        let err = max_rel_err(&g.unwrap(), batch, 23, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn mul_concat_and_shuffle_match_reference(
        h in 1usize..6, w in 1usize..6, c in 1usize..5, g in 1usize..10, which in 0usize..7,
        batch in 1usize..4,
    ) {
        let graph = data_movement_case(which, h, w, c, g);
        let err = max_rel_err(&graph.unwrap(), batch, 19, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn rowwise_ops_match_reference(
        rows in 1usize..9, n in 1usize..80, which in 0usize..6, batch in 1usize..4,
    ) {
        let op = match which {
            0 => Op::Softmax,
            1 => Op::LayerNorm { eps: 1e-5 },
            2 => Op::Gelu,
            3 => Op::Relu,
            4 => Op::BatchNorm { eps: 1e-3 },
            _ => Op::GlobalAvgPool,
        };
        let shape = if which == 5 { vec![rows.max(1), 2, n] } else { vec![rows, n] };
        let err = max_rel_err(&chain(shape, vec![op]).unwrap(), batch, 11, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Heads up to 69 tokens and 69 values: score rows past the softmax's groups of 8 rows
    /// and past several vectors, values past one vector.
    #[test]
    fn attention_matches_reference(
        s in 1usize..70, heads in 1usize..4, d in 1usize..70, batch in 1usize..3,
        causal in any::<bool>(),
    ) {
        let op = Op::Attention { heads, head_dim: d, causal, key_bias: false };
        let g = chain(vec![s, 3 * heads * d], vec![op]);
        let err = max_rel_err(&g.unwrap(), batch, 13, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    /// Two named inputs, a key bias on the attention, two packed outputs.
    #[test]
    fn masked_attention_and_packed_io_match_reference(
        s in 1usize..20, heads in 1usize..5, d in 1usize..9, batch in 1usize..4,
        causal in any::<bool>(),
    ) {
        let g = testkit::masked_attention_graph(s, heads, d, causal);
        let err = max_rel_err(&g, batch, 23, 2);
        prop_assert!(err < TOL, "err {err}");
    }

    #[test]
    fn embedding_and_residual_match_reference(
        s in 1usize..20, vocab in 1usize..50, dim in 1usize..20, positions in any::<bool>(),
        batch in 1usize..4,
    ) {
        let nodes = vec![
            Node::new("e", Op::Embedding { vocab, dim, positions }),
            Node::new("d", Op::Dense { units: dim, bias: true }),
            Node::with_inputs("r", Op::Add, &["e", "d"]),
        ];
        let g = Graph::new("emb", InputSpec { shape: vec![s], token_vocab: Some(vocab), parts: vec![] }, nodes)
            .unwrap();
        let err = max_rel_err(&g, batch, 17, 2);
        prop_assert!(err < TOL, "err {err}");
    }
}

fn conv_op(filters: usize, k: usize, s: usize, padding: Padding, groups: usize) -> Op {
    Op::Conv2d {
        filters,
        kernel: [k, k],
        stride: [s, s],
        padding,
        groups,
        bias: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Winograd F(2x2, 3x3) and F(4x4, 3x3) (3x3, stride 1, at least 16 channels in and out)
    /// against the reference, with Winograd on (every configuration; each form forced on every
    /// layer) and off: output sizes of every residue mod 4
    /// (tiles past the image's edge), every padding, a fused residual, an activation, an
    /// output stored with the border of a second Winograd convolution that reads it, 1 to 3
    /// images; two threads split one image's tiles across a team.
    #[test]
    fn winograd_convolutions_match_reference(
        h in 2usize..14, w in 2usize..14, cin in 16usize..40, cout in 16usize..100,
        pad in padding(), residual in any::<bool>(), act in 0usize..6, next in any::<bool>(),
        batch in 1usize..4, threads in 1usize..3,
    ) {
        let pad = if residual { Padding::Same } else { pad };
        let mut nodes = vec![Node::new("c1", conv_op(cout, 3, 1, pad, 1))];
        let mut last = "c1".to_string();
        if residual {
            nodes.push(Node::with_inputs("skip", conv_op(cout, 1, 1, Padding::Valid, 1), &["input"]));
            nodes.push(Node::with_inputs("sum", Op::Add, &["c1", "skip"]));
            last = "sum".to_string();
        }
        let last = push_epilogue(&mut nodes, act, "act", &last);
        if next {
            nodes.push(Node::with_inputs("c2", conv_op(cout, 3, 1, Padding::Same, 1), &[last.as_str()]));
        }
        let g = image_graph("wino", [h, w, cin], nodes);
        prop_assume!(g.is_ok());
        let g = g.unwrap();
        let case = reference_case(&g, batch, 41);
        // Each configuration with its bound: F(4x4, 3x3) may run in any but the last two.
        let mut backends: Vec<(String, CpuBackend, f32)> =
            configurations(threads).into_iter().map(|(n, b)| (n, b, TOL_F4)).collect();
        // Each form on every Winograd layer, whatever its tile count.
        backends.push(("F(4x4, 3x3) everywhere".into(), CpuBackend::new(threads).unwrap().with_winograd_f4_min_tiles(0), TOL_F4));
        backends.push(("F(2x2, 3x3) only".into(), CpuBackend::new(threads).unwrap().with_winograd_f4_min_tiles(usize::MAX), TOL));
        backends.push(("winograd off".into(), CpuBackend::new(threads).unwrap().with_winograd(false), TOL));
        for (name, cpu, tol) in &backends {
            let err = testkit::max_rel_err(&run_case(cpu, &g, &case, batch), &case.want);
            prop_assert!(err < *tol, "{name}: err {err}");
        }
        // The default configuration did run Winograd where it applies (outputs of at least
        // 2 x 2), and says so with the cell.
        let cpu = CpuBackend::new(threads).unwrap();
        let out = g.out_shape(0);
        let want = if out[0] >= 2 && out[1] >= 2 { 1 + next as usize } else { 0 };
        if cpu.uses_winograd() {
            let prepared = cpu.prepare(&g, &generate_weights(&g, 1), batch).unwrap();
            let note = prepared.algorithm_note();
            match want {
                0 => prop_assert!(note.is_none(), "{note:?}"),
                n => prop_assert!(note.as_deref().unwrap_or("").starts_with(&format!("{n} ")), "{note:?}"),
            }
        }
    }

    /// Chains that exercise what the planner fuses and lays out: activations stored with the
    /// zero border of the convolutions that read them (also when several convolutions with
    /// different paddings, or a fused residual, read one value), residual add + ReLU fused
    /// into a convolution, depthwise between convolutions.
    #[test]
    fn conv_chains_match_reference(
        h in 2usize..12, w in 2usize..12, c in 1usize..20, k in 1usize..4, s in 1usize..3,
        pad_a in padding(), relu in any::<bool>(), dw in any::<bool>(),
        batch in 1usize..4, threads in 1usize..3,
    ) {
        let mut nodes = vec![
            Node::new("a", conv_op(c, k, 1, pad_a, 1)),
            Node::new("a_relu", Op::Relu),
        ];
        if dw {
            nodes.push(Node::new("dw", conv_op(c, 3, 1, Padding::Same, c)));
        }
        nodes.push(Node::new("b", conv_op(c, 3, 1, Padding::Same, 1)));
        nodes.push(Node::with_inputs("sum", Op::Add, &["b", "a_relu"]));
        if relu {
            nodes.push(Node::new("sum_relu", Op::Relu));
        }
        let last = if relu { "sum_relu" } else { "sum" };
        // Two readers of one value with different geometry (a strided 3x3 with TF "same"
        // padding and an unpadded 1x1), then a residual of one onto the other.
        nodes.push(Node::with_inputs("c", conv_op(c + 1, 3, s, Padding::Same, 1), &[last]));
        nodes.push(Node::with_inputs("p", conv_op(c + 1, 1, s, Padding::Valid, 1), &[last]));
        nodes.push(Node::with_inputs("out", Op::Add, &["c", "p"]));
        let g = image_graph("chain", [h, w, c], nodes);
        // Paddings that leave no output are skipped.
        prop_assume!(g.is_ok());
        let err = max_rel_err(&g.unwrap(), batch, 5, threads);
        prop_assert!(err < TOL, "err {err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Dense layers large enough for the packed GEMM (every side >= 256), with ragged
    /// edges: rows not a multiple of the 12-row tile, reductions across the 512-row blocks,
    /// columns across the 256-column blocks and inside a 32-column strip.
    #[test]
    fn large_dense_matches_reference(
        rows in 256usize..300, k in 256usize..700, units in 256usize..300,
        bias in any::<bool>(), relu in 0usize..6, threads in 1usize..4,
    ) {
        let mut ops = vec![Op::Dense { units, bias }];
        // none, ReLU, ReLU6-style Clip(0, max), h-swish, sigmoid or GELU (fused into the epilogue)
        ops.extend(epilogue(relu));
        let err = max_rel_err(&chain(vec![rows, k], ops).unwrap(), 1, 11, threads);
        prop_assert!(err < TOL, "err {err}");
    }

    /// The peak's prepared matmul (packed GEMM on AVX-512, the `gemm` crate elsewhere) at
    /// any size, including fewer rows than threads and than one tile; square ones against the
    /// machine reference's (`prepare_reference`) too, bit for bit.
    #[test]
    fn prepared_matmul_matches_reference(
        m in 1usize..40, k in 1usize..600, n in 1usize..300, threads in 1usize..4,
        square in proptest::bool::weighted(0.3),
    ) {
        let (k, n) = if square { (m, m) } else { (k, n) };
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 11.0).collect();
        // The right-hand side `prepare_matmul` documents: value i is ((i % 17) - 8) / 8.
        let b: Vec<f64> = (0..k * n).map(|i| ((i % 17) as f64 - 8.0) / 8.0).collect();
        for (config, cpu) in configurations(threads) {
            let mut p = cpu.prepare_matmul(m, k, n).unwrap();
            let got = p.run(&a).unwrap().to_vec();
            prop_assert_eq!(got.len(), m * n);
            if m == k && k == n {
                // The machine reference (one thread, a pool of its own): the same product.
                let mut r = cpu.prepare_reference(n).unwrap();
                prop_assert_eq!(r.run(&a).unwrap(), &got[..], "{}: reference", config);
            }
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|t| a[i * k + t] as f64 * b[t * n + j]).sum();
                    let e = (got[i * n + j] as f64 - want).abs() / want.abs().max(1.0);
                    prop_assert!(e < 1e-5, "{config}: ({i}, {j}) {} vs {want}", got[i * n + j]);
                }
            }
        }
    }
}

/// Every zoo model (BN folded, as the harness runs it) at batch 1 and 32.
#[test]
fn zoo_models_match_reference_at_batch_1_and_32() {
    for (m, batch, case) in zoo_cases(&[1, 32], 42) {
        for threads in [1, 2] {
            for (config, cpu) in configurations(threads) {
                let d = diff(&run_case(&cpu, &m.graph, &case, batch), &case.want);
                // 1e-4 of the output's scale: the tolerance `greenbench verify` uses.
                assert!(
                    d.max_rel < 1e-4,
                    "{} batch {batch}, {config}: {d:?}",
                    m.name
                );
            }
        }
    }
}

/// LeNet-5's first layer takes its pool: one step computes conv1, its ReLU and pool1 (the
/// step profile's nodes), in fp32 and in bf16 (where it runs on the rounded input).
#[test]
fn lenet5_first_layer_pools_as_it_stores() {
    let m = Model::load("lenet5", 0).unwrap();
    let b = greenbench_core::bf16::model(&m).unwrap();
    for (g, w) in [(&m.graph, &m.weights), (&b.graph, &b.weights)] {
        let mut p = CpuBackend::new(1).unwrap().prepare(g, w, 2).unwrap();
        p.time_steps().unwrap();
        p.run(&generate_inputs(g, 2, 0, 0)).unwrap();
        let names = |s: &greenbench_core::backend::StepTime| -> Vec<String> {
            s.nodes.iter().map(|&n| g.nodes[n].name.clone()).collect()
        };
        let steps: Vec<Vec<String>> = p.step_times().iter().map(names).collect();
        assert!(
            steps.iter().any(|s| s == &["conv1", "relu1", "pool1"]),
            "{}: {steps:?}",
            g.nodes.len()
        );
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let g = zoo_model("tiny-transformer").unwrap();
    let w = generate_weights(&g, 0);
    let cpu = CpuBackend::new(1).unwrap();
    let mut p = cpu.prepare(&g, &w, 1).unwrap();
    let err = p.run(&[0.0; 3]).unwrap_err().to_string();
    assert!(err.contains("64"), "{err}");
    let mut x = vec![1.0; 64];
    x[5] = 1000.0;
    let err = p.run(&x).unwrap_err().to_string();
    assert!(err.contains("1000") && err.contains("vocabulary"), "{err}");
}

/// The general tensor-op cases the property test draws from all build (so it is not vacuous),
/// and a product broadcasting one matrix runs at batch 3 on 1 and 2 threads.
#[test]
fn tensor_op_cases_build_and_run() {
    for which in 0..6 {
        for mask in [0, 5, 6] {
            let g = tensor_op_case(which, vec![2, 3, 4], mask, 1, 1, BinOp::Div, mask == 5);
            let g = g.unwrap_or_else(|| panic!("case {which} mask {mask} builds"));
            for threads in [1, 2] {
                let err = max_rel_err(&g, 3, 29, threads);
                assert!(err < TOL, "case {which} mask {mask}: err {err}");
            }
        }
    }
}

/// A key whose bias is finfo.min gets no weight: changing its value vector changes nothing
/// on the CPU or in the reference, while the same change without the bias does (so the check
/// cannot pass on a kernel that ignores the bias).
#[test]
fn a_masked_key_contributes_nothing() {
    let (s, h, d) = (5, 2, 3);
    let g = testkit::masked_attention_graph(s, h, d, false);
    let w = generate_weights(&g, 3);
    let per = g.input_len();
    let mut x = greenbench_core::generate_inputs(&g, 1, 3, 0);
    let bias_at = s * 3 * h * d;
    let masked_key = s - 1;
    let v_of = |x: &mut Vec<f32>| {
        for j in 0..h * d {
            x[masked_key * 3 * h * d + 2 * h * d + j] += 5.0;
        }
    };
    let context = |x: &[f32]| -> (Vec<f32>, Vec<f32>) {
        let mut p = CpuBackend::new(2).unwrap().prepare(&g, &w, 1).unwrap();
        let cpu = p.run(x).unwrap()[..s * h * d].to_vec();
        let want = greenbench_core::reference::run_reference(&g, &w, x, 1)[..s * h * d].to_vec();
        (cpu, want)
    };
    assert_eq!(x.len(), per);
    for b in &mut x[bias_at..bias_at + s] {
        *b = 0.0;
    }
    x[bias_at + masked_key] = f32::MIN;
    let (before, want_before) = context(&x);
    let mut y = x.clone();
    v_of(&mut y);
    let (after, want_after) = context(&y);
    assert!(
        testkit::max_rel_err(&before, &after) < 1e-6,
        "a masked key counted"
    );
    assert!(testkit::max_rel_err(&want_before, &want_after) < 1e-6);
    assert!(testkit::max_rel_err(&before, &want_before) < TOL);
    // Unmasked, the same change moves the output.
    let mut z = y.clone();
    z[bias_at + masked_key] = 0.0;
    let (unmasked, _) = context(&z);
    assert!(testkit::max_rel_err(&unmasked, &after) > 1e-2);
}

/// An attention mask holds 0s and 1s: anything else is refused before running.
#[test]
fn a_mask_of_other_values_is_refused() {
    use greenbench_core::graph::{DType, InputPart, InputRole};
    let mut g = testkit::masked_attention_graph(4, 1, 2, false);
    let mut input = g.input.clone();
    input.parts[1] = InputPart {
        role: InputRole::AttentionMask,
        dtype: DType::I64,
        ..input.parts[1].clone()
    };
    g = Graph::new("masked", input, g.nodes.clone()).unwrap();
    let mut x = greenbench_core::generate_inputs(&g, 2, 0, 0);
    assert!(g.check_input(&x, 2).is_ok(), "generated masks are all ones");
    let at = g.input_len() + g.input.part_offset(1) + 2;
    x[at] = 0.5;
    let err = g.check_input(&x, 2).unwrap_err();
    assert!(err.contains("`bias`") && err.contains("0.5"), "{err}");
}
