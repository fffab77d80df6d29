//! The int8 path against the quantized reference (`greenbench_core::quant::run_reference_q`):
//! single int8 layers bit for bit on every GEMM path the CPU has (forced), and every zoo model
//! within one quantization step of its output.

use greenbench_core::graph::{Graph, InputSpec, Node, Op};
use greenbench_core::quant::{
    QModel, QNode, QuantConfig, Requant, Requantizer, quantize, run_reference_q,
};
use greenbench_core::{Backend, Model, generate_inputs, generate_weights};
use greenbench_cpu::{CpuBackend, QPath};
use greenbench_testkit::{chain, padding, pool_op};
use proptest::prelude::*;

fn paths() -> Vec<QPath> {
    [QPath::Portable, QPath::Avx2, QPath::Vnni, QPath::Amx]
        .into_iter()
        .filter(|p| p.available())
        .collect()
}

fn quantized(g: &Graph, seed: u64, calib: usize) -> QModel {
    let w = generate_weights(g, seed);
    let x = generate_inputs(g, calib, seed, 7);
    quantize(g, &w, &x, &QuantConfig::default()).expect("quantizes")
}

/// The same quantized model with the other requantizer (same scales and weights).
fn requantized(qm: &QModel, requantizer: Requantizer) -> QModel {
    let mut q = qm.clone();
    q.requantizer = requantizer;
    for n in &mut q.nodes {
        if let QNode::Linear(l) = n {
            l.requantizer = requantizer;
        }
    }
    q
}

/// The same model with every layer's fixed-point multipliers moved so the kernels' other
/// epilogue forms run (calibrated multipliers are small: one shift above 32 for the layer):
/// the largest moved into [1/4, 1/2), one shift of exactly 32 (`common`), or each channel its
/// own shift (its real multiplier times 1, 2 or 4 by channel). The reference follows the
/// same multipliers, so the outputs must still agree bit for bit.
fn reshifted(qm: &QModel, common: bool) -> QModel {
    let mut q = qm.clone();
    for n in &mut q.nodes {
        if let QNode::Linear(l) = n {
            let reals: Vec<f64> = l
                .requant
                .iter()
                .map(|r| r.multiplier as f64 * 2f64.powi(-(r.shift as i32)))
                .collect();
            let top = reals.iter().copied().fold(0.0, f64::max);
            if top == 0.0 {
                continue;
            }
            l.requant = if common {
                let moved: Vec<f64> = reals.iter().map(|r| r * 0.375 / top).collect();
                Requant::uniform(&moved)
            } else {
                let each = reals.iter().enumerate();
                each.map(|(i, &r)| Requant::new(r * (1 << (i % 3)) as f64))
                    .collect()
            };
        }
    }
    q
}

/// The CPU backends a test runs on `threads` threads: as configured, and (with more than one
/// thread) with every step of a batch-1 run split across the team, however small.
fn backends(threads: usize) -> Vec<(CpuBackend, &'static str)> {
    let mut b = vec![(CpuBackend::new(threads).unwrap(), "default split")];
    if threads > 1 {
        let every = CpuBackend::new(threads)
            .unwrap()
            .with_step_split_threshold(0);
        b.push((every, "every step split"));
    }
    b
}

/// Every path's output for `batch` examples, checked equal to the reference bit for bit,
/// with either requantizer.
fn exact_on_every_path(qm: &QModel, batch: usize, threads: usize) -> Result<(), TestCaseError> {
    let x = generate_inputs(&qm.graph, batch, 11, 3);
    for (cpu, how) in backends(threads) {
        let variants = [
            (requantized(qm, Requantizer::Fixed), "fixed"),
            (requantized(qm, Requantizer::Fp32), "fp32"),
            (
                reshifted(&requantized(qm, Requantizer::Fixed), true),
                "fixed, shift 32",
            ),
            (
                reshifted(&requantized(qm, Requantizer::Fixed), false),
                "fixed, shift per channel",
            ),
        ];
        for (qm, requantizer) in &variants {
            let want = run_reference_q(qm, &x, batch);
            for path in paths() {
                let mut p = cpu.prepare_quantized_on(qm, batch, path).unwrap();
                let got = p.run(&x).unwrap();
                prop_assert_eq!(
                    got,
                    &want[..],
                    "{} {:?}, batch {}, {} threads, {}",
                    requantizer,
                    path,
                    batch,
                    threads,
                    how
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn int8_conv_is_bit_exact(
        h in 1usize..10, w in 1usize..10, groups in 1usize..4, cin_g in 1usize..6,
        cout_g in 1usize..20, kh in 1usize..5, kw in 1usize..5, sh in 1usize..3, sw in 1usize..3,
        pad in padding(), act in 0usize..3, batch in 1usize..5, threads in 1usize..3,
    ) {
        let op = Op::Conv2d { filters: cout_g * groups, kernel: [kh, kw], stride: [sh, sw],
            padding: pad, groups, bias: true };
        let mut ops = vec![op];
        match act { 1 => ops.push(Op::Relu), 2 => ops.push(Op::Clip { min: 0.0, max: 0.5 }), _ => {} }
        let g = chain(vec![h, w, cin_g * groups], ops);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 5, 3), batch, threads)?;
    }

    #[test]
    fn int8_depthwise_is_bit_exact(
        h in 1usize..12, w in 1usize..12, c in 2usize..40, k in 1usize..5, sh in 1usize..3,
        sw in 1usize..3, pad in padding(), relu in any::<bool>(), batch in 1usize..4,
    ) {
        let mut ops = vec![Op::Conv2d { filters: c, kernel: [k, k], stride: [sh, sw],
            padding: pad, groups: c, bias: true }];
        if relu { ops.push(Op::Relu); }
        let g = chain(vec![h, w, c], ops);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 2, 2), batch, 2)?;
    }

    /// Stride-2 depthwise convolutions over 8, 16 and 32 channels (the column split's
    /// fixed-size copies, `int8/conv.rs` `deal`) and 24 (its general copy): rows of up to 40
    /// pixels, odd and even left padding (which swap the halves), odd widths (a last pixel
    /// with no pair).
    #[test]
    fn int8_stride2_depthwise_column_split_is_bit_exact(
        h in 1usize..8, w in 1usize..40, c in prop::sample::select(vec![8usize, 16, 24, 32]),
        k in 1usize..4, pad in padding(), batch in 1usize..3, threads in 1usize..3,
    ) {
        let g = chain(vec![h, w, c], vec![Op::Conv2d { filters: c, kernel: [k, k],
            stride: [2, 2], padding: pad, groups: c, bias: true }]);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 4, 2), batch, threads)?;
    }

    /// Tall, flat and wide kernels (up to 27 taps: seven quads of taps in the VNNI rows),
    /// channel counts whose cycle with 64 values is long (e.g. 48, 72), both strides.
    #[test]
    fn int8_depthwise_tall_kernels_are_bit_exact(
        h in 1usize..16, w in 1usize..14, c in 1usize..80, kh in 1usize..10, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..3, pad in padding(), batch in 1usize..3,
        threads in 1usize..3,
    ) {
        let g = chain(vec![h, w, c], vec![Op::Conv2d { filters: c, kernel: [kh, kw],
            stride: [sh, sw], padding: pad, groups: c, bias: true }]);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 4, 2), batch, threads)?;
    }

    #[test]
    fn int8_dense_is_bit_exact(
        rows in 1usize..4, k in 1usize..200, units in 1usize..150, relu in any::<bool>(),
        batch in 1usize..9, threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Dense { units, bias: true }];
        if relu { ops.push(Op::Relu); }
        let g = chain(vec![rows, k], ops).unwrap();
        exact_on_every_path(&quantized(&g, 9, 4), batch, threads)?;
    }

    /// Pointwise convolutions over 32 and more channels: 16-pixel blocks on AMX-INT8 where the
    /// CPU has it (its K in tile chunks, a call of 2^18 multiply-adds or more: most of these),
    /// the epilogue fused; the rest on VNNI.
    #[test]
    fn int8_wide_pointwise_is_bit_exact(
        h in 6usize..14, w in 6usize..14, cin in 32usize..160, cout in 17usize..70,
        relu in any::<bool>(), batch in 1usize..4, threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Conv2d { filters: cout, kernel: [1, 1], stride: [1, 1],
            padding: greenbench_core::Padding::Valid, groups: 1, bias: true }];
        if relu { ops.push(Op::Relu); }
        let g = chain(vec![h, w, cin], ops).unwrap();
        exact_on_every_path(&quantized(&g, 8, 3), batch, threads)?;
    }

    /// Pointwise convolutions too shallow for AMX tiles (under 12 input channels): on AMX
    /// paths two to four neighbouring pixels as one GEMM row with block-diagonal weights where
    /// the image's pixel count allows, the plain GEMM otherwise.
    #[test]
    fn int8_shallow_pointwise_is_bit_exact(
        h in 1usize..9, w in 1usize..12, cin in 1usize..12, cout in 1usize..40,
        relu in any::<bool>(), batch in 1usize..3, threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Conv2d { filters: cout, kernel: [1, 1], stride: [1, 1],
            padding: greenbench_core::Padding::Valid, groups: 1, bias: true }];
        if relu { ops.push(Op::Relu); }
        let g = chain(vec![h, w, cin], ops).unwrap();
        exact_on_every_path(&quantized(&g, 7, 3), batch, threads)?;
    }

    /// Convolutions read in place over runs of 12..64-byte chunks (AMX-INT8 where the CPU has
    /// it, for calls of 2^18 multiply-adds or more: most of these): output rows of 16 and more
    /// pixels (evenly spaced 16-pixel blocks on the tiles, blocks across two output rows and
    /// the remainder on VNNI) and narrower ones (blocks of one row).
    #[test]
    fn int8_wide_conv_in_place_is_bit_exact(
        h in 3usize..8, w in 14usize..40, cin in prop::sample::select(vec![12usize, 16, 20, 32, 64]),
        k in 2usize..4, s in 1usize..3, cout in 8usize..40, pad in padding(), batch in 1usize..3,
        threads in 1usize..3,
    ) {
        let g = chain(vec![h, w, cin], vec![Op::Conv2d { filters: cout, kernel: [k, k],
            stride: [s, s], padding: pad, groups: 1, bias: true }, Op::Relu]);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 8, 3), batch, threads)?;
    }

    /// Single-channel convolutions of stride 1 and at most 8 output channels (LeNet-5's first
    /// layer): the pixels-in-lanes kernel on the VNNI paths where the CPU has AVX-512 VBMI
    /// (rows of 1 to 40 pixels: whole and partial 16-pixel chunks; 1 to 9 taps a kernel row:
    /// one to three quads), the in-place GEMM elsewhere and at 9 channels.
    #[test]
    fn int8_single_channel_conv_is_bit_exact(
        h in 1usize..12, w in 1usize..40, cout in 1usize..10, kh in 1usize..6, kw in 1usize..10,
        pad in padding(), act in 0usize..3, batch in 1usize..3, threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Conv2d { filters: cout, kernel: [kh, kw], stride: [1, 1],
            padding: pad, groups: 1, bias: true }];
        match act { 1 => ops.push(Op::Relu), 2 => ops.push(Op::Clip { min: 0.0, max: 0.5 }), _ => {} }
        let g = chain(vec![h, w, 1], ops);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 4, 3), batch, threads)?;
    }

    /// Convolutions of few input channels and at most 8 output channels over wide rows
    /// (MobileNet's first layer: 3x3 stride 2 over 3 channels, 8 outputs): the pixels-in-lanes
    /// kernel where 16 pixels' windows fit 128 bytes (one 64-byte load and `vpermb`, or two
    /// and `vpermt2b`, the second masked at the image's end), the GEMM forms elsewhere; rows
    /// of 16 to 47 pixels (whole and partial 16-pixel chunks).
    #[test]
    fn int8_few_channel_conv_is_bit_exact(
        h in 1usize..7, w in 16usize..48, cin in 1usize..5, cout in 1usize..10,
        kh in 1usize..4, kw in 1usize..5, s in 1usize..3, pad in padding(), act in 0usize..2,
        batch in 1usize..3, threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Conv2d { filters: cout, kernel: [kh, kw], stride: [s, s],
            padding: pad, groups: 1, bias: true }];
        if act == 1 { ops.push(Op::Relu); }
        let g = chain(vec![h, w, cin], ops);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 9, 3), batch, threads)?;
    }

    /// Single-channel convolutions with a 2x2 stride-2 max pool after them (through a ReLU, a
    /// clip or nothing): the pool fused into the pixels-in-lanes kernel on the VNNI paths
    /// where the CPU has AVX-512 VBMI and both output sides are even (pooled rows of 1 to 35
    /// pixels: one to three 16-pixel chunks, whole and partial; the team's pixel ranges at
    /// batch 1 on two threads), the pool step elsewhere (odd sides: the pool's last row or
    /// column dropped).
    #[test]
    fn int8_single_channel_conv_max_pool_is_bit_exact(
        h in 2usize..14, w in 2usize..72, cout in 1usize..10, kh in 1usize..6, kw in 1usize..10,
        pad in padding(), act in 0usize..3, batch in 1usize..3, threads in 1usize..3,
    ) {
        let mut ops = vec![Op::Conv2d { filters: cout, kernel: [kh, kw], stride: [1, 1],
            padding: pad, groups: 1, bias: true }];
        match act { 1 => ops.push(Op::Relu), 2 => ops.push(Op::Clip { min: 0.0, max: 0.5 }), _ => {} }
        ops.push(Op::MaxPool { kernel: [2, 2], stride: [2, 2],
            padding: greenbench_core::Padding::Valid, ceil_mode: false });
        let g = chain(vec![h, w, 1], ops);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 4, 3), batch, threads)?;
    }

    /// A max pool as the model's last int8 step (its output compared directly, not through a
    /// global average that can hide a wrong maximum): narrow channel counts (the vector
    /// gather form where every window is inside the image and the CPU has AVX-512 VBMI, the
    /// per-pixel loop otherwise) and wide ones, rows of up to 40 pixels.
    #[test]
    fn int8_max_pools_are_bit_exact(
        h in 1usize..12, w in 1usize..40, c in 1usize..20, k in 1usize..5, s in 1usize..4,
        pad in padding(), ceil_mode in any::<bool>(), batch in 1usize..3,
    ) {
        let ops = vec![Op::Conv2d { filters: c, kernel: [1, 1], stride: [1, 1],
            padding: greenbench_core::Padding::Valid, groups: 1, bias: true },
            Op::MaxPool { kernel: [k, k], stride: [s, s], padding: pad, ceil_mode }];
        let g = chain(vec![h, w, c], ops);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 6, 3), batch, 1)?;
    }

    /// Batch 1 on two threads, where the team splits each step: a convolution (in place or
    /// im2col, by pixel ranges, after its padded image by rows), a depthwise convolution of
    /// stride 1 or 2 (by output rows, after its padded image and column split) and a
    /// pointwise one (GEMM rows), on images big enough for several units of each.
    #[test]
    fn int8_team_steps_are_bit_exact(
        h in 4usize..20, w in 4usize..20, cin in 1usize..8, c in 2usize..24, k in 1usize..5,
        s1 in 1usize..3, s2 in 1usize..3, cout in 1usize..40, pad in padding(),
    ) {
        let g = chain(vec![h, w, cin], vec![
            Op::Conv2d { filters: c, kernel: [k, k], stride: [s1, s1], padding: pad.clone(),
                groups: 1, bias: true },
            Op::Relu,
            Op::Conv2d { filters: c, kernel: [3, 3], stride: [s2, s2], padding: pad,
                groups: c, bias: true },
            Op::Conv2d { filters: cout, kernel: [1, 1], stride: [1, 1],
                padding: greenbench_core::Padding::Valid, groups: 1, bias: true },
        ]);
        prop_assume!(g.is_some());
        exact_on_every_path(&quantized(&g.unwrap(), 6, 3), 1, 2)?;
    }

    /// Pools on uint8 values (after a conv, so their input is quantized), and a residual add
    /// with a fused ReLU. Channels on both sides of 16 (max pooling has a form for each).
    #[test]
    fn int8_pools_and_adds_are_bit_exact(
        h in 2usize..10, w in 2usize..10, c in 1usize..40, pool in pool_op(), batch in 1usize..4,
    ) {
        let conv = |f| Op::Conv2d { filters: f, kernel: [3, 3], stride: [1, 1],
            padding: greenbench_core::Padding::Same, groups: 1, bias: true };
        let nodes = vec![
            Node::new("a", conv(c)),
            Node::new("b", conv(c)),
            Node::with_inputs("sum", Op::Add, &["a", "b"]),
            Node::new("sum_relu", Op::Relu),
            Node::new("pool", pool),
            Node::new("gap", Op::GlobalAvgPool),
        ];
        let g = Graph::new("pools", InputSpec { shape: vec![h, w, c], token_vocab: None, parts: vec![] }, nodes);
        prop_assume!(g.is_ok());
        let qm = quantized(&g.unwrap(), 4, 3);
        prop_assert!(qm.nodes.iter().all(|n| n.precision() == greenbench_core::Precision::Int8));
        exact_on_every_path(&qm, batch, 2)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// A unary elementwise node between two int8 convolutions (both its input and output held
    /// as uint8: the int8 plan's table of 256 results, `lut.rs`) bit for bit against the
    /// quantized reference, for every unary activation the graph has; channels on both sides
    /// of 64 (the table's 64-byte blocks and their masked tail), one and two threads.
    #[test]
    fn int8_unary_nodes_between_int8_layers_are_bit_exact(
        h in 1usize..8, w in 1usize..8, c in 1usize..80, op in 0usize..8, batch in 1usize..3,
        threads in 1usize..3,
    ) {
        let unary = [
            Op::Gelu,
            Op::Sigmoid,
            Op::Tanh,
            Op::HardSwish,
            Op::HardSigmoid { alpha: 0.2, beta: 0.5 },
            Op::LeakyRelu { alpha: 0.1 },
            Op::GeluErf,
            Op::Math { f: greenbench_core::graph::MathFn::Abs },
        ];
        let conv = |f| Op::Conv2d { filters: f, kernel: [1, 1], stride: [1, 1],
            padding: greenbench_core::Padding::Same, groups: 1, bias: true };
        let nodes = vec![
            Node::new("a", conv(c)),
            Node::new("act", unary[op].clone()),
            Node::new("b", conv(c)),
        ];
        let g = Graph::new("unary", InputSpec { shape: vec![h, w, c], token_vocab: None, parts: vec![] }, nodes).unwrap();
        let qm = quantized(&g, 4, 3);
        // The activation's input and output are uint8: the plan's table runs it.
        prop_assert!(qm.values[1].is_some() && qm.values[2].is_some(), "{:?}", qm.values);
        exact_on_every_path(&qm, batch, threads)?;
    }
}

/// Every zoo model, at batch 1 and 32 (split across two threads): within one quantization
/// step of the last uint8 value before the output (fp32 nodes run on the CPU's kernels and
/// the reference in f64, so a value can round to the neighbouring step), on every path.
#[test]
fn zoo_models_in_int8_match_the_quantized_reference() {
    for name in greenbench_core::MODEL_NAMES {
        let m = Model::load(name, 3).unwrap();
        let calib = generate_inputs(&m.graph, 16, 3, 1);
        let qm = quantize(&m.graph, &m.weights, &calib, &QuantConfig::default()).unwrap();
        let step = qm.output_step();
        // (Batch 11 on 2 threads: shares of 6 and 5, run in sub-batches with a remainder.)
        for (batch, requantizer) in [
            (1, Requantizer::Fixed),
            (11, Requantizer::Fixed),
            (32, Requantizer::Fixed),
            (32, Requantizer::Fp32),
        ] {
            let qm = requantized(&qm, requantizer);
            let x = generate_inputs(&m.graph, batch, 3, 2);
            let want = run_reference_q(&qm, &x, batch);
            for (cpu, how) in backends(2) {
                for path in paths() {
                    let got = cpu
                        .prepare_quantized_on(&qm, batch, path)
                        .unwrap()
                        .run(&x)
                        .unwrap()
                        .to_vec();
                    let d = greenbench_core::reference::diff(&got, &want);
                    assert!(
                        d.max_abs <= step * 1.01 + 1e-5,
                        "{name} b{batch} {path:?} ({how}): {d:?}, step {step}"
                    );
                }
            }
        }
    }
}

#[test]
fn other_backends_refuse_int8_naming_the_precisions() {
    struct Fp32Only;
    impl Backend for Fp32Only {
        fn name(&self) -> &str {
            "gpu"
        }
        fn device(&self) -> greenbench_core::DeviceInfo {
            unimplemented!()
        }
        fn prepare(
            &self,
            _: &Graph,
            _: &greenbench_core::Weights,
            _: usize,
        ) -> greenbench_core::PrepareResult {
            unimplemented!()
        }
        fn prepare_matmul(&self, _: usize, _: usize, _: usize) -> greenbench_core::PrepareResult {
            unimplemented!()
        }
    }
    let g = chain(
        vec![4],
        vec![Op::Dense {
            units: 2,
            bias: true,
        }],
    )
    .unwrap();
    let Err(e) = Fp32Only.prepare_quantized(&quantized(&g, 1, 1), 1) else {
        panic!("prepared")
    };
    assert!(e.to_string().contains("precision fp32 only"), "{e}");
    assert_eq!(CpuBackend::new(1).unwrap().precisions().len(), 3);
}

/// A transformer block's int8 model (layer norm, QKV, attention, projection, residual add,
/// feed-forward with GELU, softmax) on `s` tokens of `h` heads of `d` features.
fn transformer_block(s: usize, h: usize, d: usize, ffn: usize, causal: bool) -> Graph {
    let dense = |units| Op::Dense { units, bias: true };
    let nodes = vec![
        Node::new("ln", Op::LayerNorm { eps: 1e-5 }),
        Node::new("qkv", dense(3 * h * d)),
        Node::new(
            "attn",
            Op::Attention {
                heads: h,
                head_dim: d,
                causal,
                key_bias: false,
            },
        ),
        Node::new("proj", dense(h * d)),
        Node::with_inputs("res", Op::Add, &["input", "proj"]),
        Node::new("ff1", dense(ffn)),
        Node::new("gelu", Op::Gelu),
        Node::new("ff2", dense(h * d)),
        Node::new("relu", Op::Relu),
        Node::new("softmax", Op::Softmax),
    ];
    let input = InputSpec {
        shape: vec![s, h * d],
        token_vocab: None,
        parts: vec![],
    };
    Graph::new("block", input, nodes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Batch 1 on a team that splits every step, the fp32 ones between the int8 layers too
    /// (attention by head, layer norm and softmax by row, GELU, ReLU and the residual add by
    /// value): the same output, bit for bit, as one thread running the steps whole.
    #[test]
    fn int8_team_fp32_steps_match_one_thread(
        s in 1usize..20, h in 1usize..5, d in 1usize..9, ffn in 1usize..40, causal in any::<bool>(),
    ) {
        let qm = quantized(&transformer_block(s, h, d, ffn, causal), 7, 3);
        let x = generate_inputs(&qm.graph, 1, 5, 1);
        let every = CpuBackend::new(2).unwrap().with_step_split_threshold(0);
        let one = CpuBackend::new(1).unwrap();
        for path in paths() {
            let want = one.prepare_quantized_on(&qm, 1, path).unwrap().run(&x).unwrap().to_vec();
            let got = every.prepare_quantized_on(&qm, 1, path).unwrap().run(&x).unwrap().to_vec();
            prop_assert_eq!(got, want, "{:?}", path);
        }
    }
}
