//! Property tests of the bf16 precision on the CPU: each weight layer of a bf16 graph
//! (`greenbench_core::bf16::convert`) against the reference interpreter running the same
//! graph (inputs and weights rounded alike, exact products, fp32 sums: the fp32 kernels'
//! tolerance), on the AVX-512 BF16 kernels where this CPU has them and on the fp32 kernels
//! over rounded operands; and every zoo model in bf16.

use greenbench_core::graph::{Graph, GraphError, InputSpec, Node, Op, Padding};
use greenbench_core::reference::{diff, run_reference};
use greenbench_core::{Backend, Model, bf16, generate_inputs, generate_weights};
use greenbench_cpu::CpuBackend;
use greenbench_testkit::max_rel_err;
use proptest::prelude::*;

const TOL: f32 = 2e-5;

/// The configurations a bf16 graph runs in here: bf16 kernels (where the CPU has them),
/// rounding steps on the fp32 direct kernels, the portable path; every step split.
fn configurations(threads: usize) -> Vec<(String, CpuBackend)> {
    let mut v = vec![
        ("default".to_string(), CpuBackend::new(threads).unwrap()),
        (
            "bf16 kernels off".to_string(),
            CpuBackend::new(threads).unwrap().with_bf16_kernels(false),
        ),
        (
            "portable".to_string(),
            CpuBackend::new(threads).unwrap().with_direct_kernels(false),
        ),
    ];
    if threads > 1 {
        v.push((
            "every step split".to_string(),
            CpuBackend::new(threads)
                .unwrap()
                .with_step_split_threshold(0),
        ));
    }
    v
}

/// `g` converted to bf16 (weights seeded from `seed`), run by every configuration against the
/// reference: the largest error, and the configuration it came from.
fn bf16_err(g: &Graph, batch: usize, seed: u64, threads: usize) -> (f32, String) {
    let (g, w) = bf16::convert(g, &generate_weights(g, seed)).expect("converts");
    let x = generate_inputs(&g, batch, seed, 0);
    let want = run_reference(&g, &w, &x, batch);
    let mut worst = (0.0f32, String::new());
    for (name, cpu) in configurations(threads) {
        let got = cpu
            .prepare(&g, &w, batch)
            .unwrap()
            .run(&x)
            .unwrap()
            .to_vec();
        let e = max_rel_err(&got, &want);
        if e >= worst.0 {
            worst = (e, name);
        }
    }
    worst
}

fn image_graph([h, w, c]: [usize; 3], nodes: Vec<Node>) -> Result<Graph, GraphError> {
    Graph::new(
        "bf16",
        InputSpec {
            shape: vec![h, w, c],
            token_vocab: None,
            parts: vec![],
        },
        nodes,
    )
}

fn conv(filters: usize, k: usize, s: usize, padding: Padding) -> Op {
    Op::Conv2d {
        filters,
        kernel: [k, k],
        stride: [s, s],
        padding,
        groups: 1,
        bias: true,
    }
}

/// A convolution (`same` or valid padding), with a fused residual (a 1x1 convolution of the
/// same input, where the shapes allow) and an activation: `act` 0 none, 1 ReLU, 2 a clip to
/// 0..0.25 (ReLU6 with a bound these small outputs reach), 3 h-swish, 4 GELU (each fused into
/// the convolution's epilogue).
#[allow(clippy::too_many_arguments)]
fn conv_graph(
    hwc: [usize; 3],
    cout: usize,
    k: usize,
    s: usize,
    same: bool,
    residual: bool,
    act: usize,
) -> Result<Graph, GraphError> {
    let pad = if same { Padding::Same } else { Padding::Valid };
    let mut nodes = vec![Node::new("c1", conv(cout, k, s, pad))];
    if residual && s == 1 && same {
        nodes.push(Node::with_inputs(
            "skip",
            conv(cout, 1, 1, Padding::Valid),
            &["input"],
        ));
        nodes.push(Node::with_inputs("sum", Op::Add, &["c1", "skip"]));
    }
    match act {
        0 => {}
        1 => nodes.push(Node::new("act", Op::Relu)),
        2 => nodes.push(Node::new(
            "act",
            Op::Clip {
                min: 0.0,
                max: 0.25,
            },
        )),
        3 => nodes.push(Node::new("act", Op::HardSwish)),
        _ => nodes.push(Node::new("act", Op::Gelu)),
    }
    image_graph(hwc, nodes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Convolutions over odd and even channel counts (the bf16 copy pads a pixel's channels
    /// to even), strides, paddings, output widths past one vector block, a fused residual
    /// (another convolution of the same rounded input) and an activation (ReLU, a clip, h-swish, GELU).
    #[test]
    fn bf16_convolutions_match_reference(
        h in 1usize..10, w in 1usize..10, cin in 1usize..20, cout in 1usize..70,
        k in 1usize..4, s in 1usize..3, same in any::<bool>(), residual in any::<bool>(),
        act in 0usize..5, batch in 1usize..4, threads in 1usize..3,
    ) {
        let g = conv_graph([h, w, cin], cout, k, s, same, residual, act);
        prop_assume!(g.is_ok());
        let (err, cfg) = bf16_err(&g.unwrap(), batch, 5, threads);
        prop_assert!(err < TOL, "err {err} ({cfg})");
    }

    /// Single-channel convolutions of stride 1 (LeNet-5's first layer): a rounding step, then
    /// the direct kernels' pixels-in-lanes form on the rounded input, rows of 1 to 40 pixels,
    /// up to 16 outputs, one to four rows at once, a 2x2 max pool after it (fused where the
    /// output's sides are even, 12 channels at most).
    #[test]
    fn bf16_single_channel_convolutions_match_reference(
        h in 1usize..10, w in 1usize..40, cout in 1usize..18, kh in 1usize..6,
        kw in 1usize..8, same in any::<bool>(), relu in any::<bool>(), pool in any::<bool>(),
        batch in 1usize..3, threads in 1usize..3,
    ) {
        let pad = if same { Padding::Same } else { Padding::Valid };
        let mut nodes = vec![Node::new("c1", Op::Conv2d { filters: cout, kernel: [kh, kw],
            stride: [1, 1], padding: pad, groups: 1, bias: true })];
        if relu {
            nodes.push(Node::new("act", Op::Relu));
        }
        if pool {
            nodes.push(Node::new("pool", Op::MaxPool { kernel: [2, 2], stride: [2, 2],
                padding: Padding::Valid, ceil_mode: false }));
        }
        let g = image_graph([h, w, 1], nodes);
        prop_assume!(g.is_ok());
        let (err, cfg) = bf16_err(&g.unwrap(), batch, 6, threads);
        prop_assert!(err < TOL, "err {err} ({cfg})");
    }

    /// Convolutions whose kernel rows pair up across pixels (`kw * cin` even with `cin` odd,
    /// three or five channels under a 2- or 4-wide kernel): the bf16 copy keeps `cin`
    /// channels a pixel and the kernels pair consecutive values of a kernel row. (One channel
    /// runs as a rounding step on the fp32 kernels: `plan_bf16::bf16_layer`.)
    #[test]
    fn bf16_convolutions_pairing_pixels_match_reference(
        h in 1usize..12, w in 4usize..12, cin in prop::sample::select(vec![1usize, 3, 5]),
        cout in 1usize..40, kh in 1usize..5, kw in prop::sample::select(vec![2usize, 4]),
        s in 1usize..3, same in any::<bool>(), relu in any::<bool>(), batch in 1usize..4,
        threads in 1usize..3,
    ) {
        let pad = if same { Padding::Same } else { Padding::Valid };
        let mut nodes = vec![Node::new("c1", Op::Conv2d {
            filters: cout,
            kernel: [kh, kw],
            stride: [s, s],
            padding: pad,
            groups: 1,
            bias: true,
        })];
        if relu {
            nodes.push(Node::new("act", Op::Relu));
        }
        let g = image_graph([h, w, cin], nodes);
        prop_assume!(g.is_ok());
        let (err, cfg) = bf16_err(&g.unwrap(), batch, 5, threads);
        prop_assert!(err < TOL, "err {err} ({cfg})");
    }

    /// Layers wide and long enough for AMX-BF16's 16-pixel groups where the CPU has it
    /// (`direct::amx`): output rows of 16 and more pixels (groups inside a row, groups that
    /// would straddle two rows left to the AVX-512 tile), kernel-row runs in 8..32-value
    /// chunks, a fused residual and an activation (GELU among them: the AMX epilogue runs the
    /// vector form, `kernels::gelu16`); dense layers of 16 and more rows, with ReLU or GELU.
    #[test]
    fn bf16_wide_layers_match_reference(
        h in 1usize..5, w in 14usize..40, cin in prop::sample::select(vec![4usize, 8, 12, 16, 24, 32, 40]),
        cout in 1usize..70, k in 1usize..4, s in 1usize..3, same in any::<bool>(),
        residual in any::<bool>(), act in 0usize..5, batch in 1usize..3, threads in 1usize..3,
        dense_k in prop::sample::select(vec![16usize, 24, 64, 96, 200, 1000]),
    ) {
        let g = conv_graph([h, w, cin], cout, k, s, same, residual, act);
        prop_assume!(g.is_ok());
        let (err, cfg) = bf16_err(&g.unwrap(), batch, 5, threads);
        prop_assert!(err < TOL, "conv err {err} ({cfg})");
        let g = Graph::new(
            "dense",
            InputSpec { shape: vec![h * 8, dense_k], token_vocab: None, parts: vec![] },
            vec![
                Node::new("d", Op::Dense { units: cout, bias: true }),
                Node::new("r", if act == 4 { Op::Gelu } else { Op::Relu }),
            ],
        ).unwrap();
        let (err, cfg) = bf16_err(&g, batch, 9, threads);
        prop_assert!(err < TOL, "dense err {err} ({cfg})");
    }

    /// Dense layers with odd and even, short and long reductions (past one weight block of
    /// the direct kernel: the bf16 blocks are cut at even lengths).
    #[test]
    fn bf16_dense_layers_match_reference(
        k in 1usize..2000, units in 1usize..80, rows in 1usize..5, batch in 1usize..4,
        threads in 1usize..3,
    ) {
        let g = Graph::new(
            "dense",
            InputSpec { shape: vec![rows, k], token_vocab: None, parts: vec![] },
            vec![Node::new("d", Op::Dense { units, bias: true }), Node::new("r", Op::Relu)],
        ).unwrap();
        let (err, cfg) = bf16_err(&g, batch, 9, threads);
        prop_assert!(err < TOL, "err {err} ({cfg})");
    }
}

/// The bf16 kernels multiply bf16 operands: on rounded inputs they agree with the fp32
/// kernels (same exact products), and a layer's output moves when its input moves by less
/// than half a bf16 step only where the rounding crosses a step.
#[test]
fn bf16_kernels_are_used_where_the_cpu_has_them() {
    let cpu = CpuBackend::new(1).unwrap();
    assert_eq!(
        cpu.uses_bf16_kernels(),
        greenbench_cpu::bf16_kernels_available() && cpu.uses_direct_kernels()
    );
    let note = cpu
        .precision_note(greenbench_core::Precision::Bf16)
        .unwrap();
    if cpu.uses_bf16_kernels() {
        assert!(
            note.contains("vdpbf16ps") || note.contains("tdpbf16ps"),
            "{note}"
        );
    } else {
        assert!(note.contains("emulated"), "{note}");
    }
    // An input of values that bf16 cannot hold: the layer sees them rounded, so the output
    // equals that of the rounded input, not that of the exact one.
    let g = Graph::new(
        "d",
        InputSpec {
            shape: vec![64],
            token_vocab: None,
            parts: vec![],
        },
        vec![Node::new(
            "d",
            Op::Dense {
                units: 16,
                bias: false,
            },
        )],
    )
    .unwrap();
    let (g, w) = bf16::convert(&g, &generate_weights(&g, 1)).unwrap();
    let x: Vec<f32> = (0..64)
        .map(|i| 1.0 + (i as f32 + 0.3) * 2f32.powi(-10))
        .collect();
    let xr: Vec<f32> = x.iter().map(|&v| bf16::round(v)).collect();
    let mut p = cpu.prepare(&g, &w, 1).unwrap();
    let y = p.run(&x).unwrap().to_vec();
    let yr = p.run(&xr).unwrap().to_vec();
    assert_eq!(y, yr);
}

/// Every zoo model in bf16 at batch 1 and 32: within one bf16 step (2^-8) of the output's
/// scale of the reference (a pre-rounding value one fp32 bit off the reference's rounds to
/// the neighbouring bf16 now and then, and that moves the output by up to a step), and within
/// bf16's own error of fp32.
#[test]
fn zoo_models_in_bf16_match_reference() {
    for name in greenbench_core::MODEL_NAMES {
        let m = Model::load(name, 2).unwrap();
        let b = bf16::model(&m).unwrap();
        for batch in [1usize, 32] {
            let x = generate_inputs(&m.graph, batch, 2, 1);
            let want = run_reference(&b.graph, &b.weights, &x, batch);
            let fp32 = run_reference(&m.graph, &m.weights, &x, batch);
            for (cfg, cpu) in configurations(2) {
                let got = cpu
                    .prepare(&b.graph, &b.weights, batch)
                    .unwrap()
                    .run(&x)
                    .unwrap()
                    .to_vec();
                let d = diff(&got, &want);
                assert!(d.max_rel < 2f32.powi(-8), "{name} b{batch} {cfg}: {d:?}");
                let e = diff(&got, &fp32);
                assert!(e.max_rel < 0.05, "{name} b{batch} {cfg} vs fp32: {e:?}");
            }
        }
    }
}
