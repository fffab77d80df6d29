//! Kernel microbenches at the zoo's real shapes, on each backend: matmul (dense and 1x1
//! convolutions), conv2d, depthwise, pooling, a residual block's fused conv + add + ReLU, and
//! the 1024^3 sgemm behind `greenbench peak`. On a CPU with AVX-512 the CPU backend runs them
//! twice: `cpu` (the direct AVX-512 kernels) and `cpu-portable` (im2col + the `gemm` crate,
//! what AVX2 laptops and aarch64 run), so a regression in either path shows. Throughput is in
//! criterion's "elements", where **one element is one FPO** (2 per MAC, plus bias and fused
//! ReLU, counted by greenbench-core), so "Gelem/s" reads as GFPO/s.

mod common;

use criterion::{BenchmarkId, Throughput};
use greenbench_core::graph::{Graph, InputSpec, Node, Op, Padding};
use greenbench_core::{Backend, cost::graph_cost, generate_inputs, generate_weights};
use greenbench_cpu::CpuBackend;
use std::time::Instant;

fn conv(filters: usize, k: usize, s: usize, groups: usize) -> Op {
    Op::Conv2d {
        filters,
        kernel: [k, k],
        stride: [s, s],
        padding: Padding::Same,
        groups,
        bias: true,
    }
}

/// (bench id, input shape, op): layers as they occur in the zoo, each followed by ReLU
/// where the model has one (fused by both backends).
fn cases() -> Vec<(&'static str, Vec<usize>, Op, bool)> {
    vec![
        (
            "matmul/mlp-fc1-784x256",
            vec![784],
            Op::Dense {
                units: 256,
                bias: true,
            },
            true,
        ),
        (
            "matmul/ds-cnn-pw-25x5x64",
            vec![25, 5, 64],
            conv(64, 1, 1, 1),
            true,
        ),
        (
            "matmul/mobilenet-pw13-3x3x256",
            vec![3, 3, 256],
            conv(256, 1, 1, 1),
            true,
        ),
        (
            "matmul/transformer-qkv-64x64",
            vec![64, 64],
            Op::Dense {
                units: 192,
                bias: true,
            },
            false,
        ),
        (
            "conv2d/resnet8-s1-32x32x16",
            vec![32, 32, 16],
            conv(16, 3, 1, 1),
            true,
        ),
        (
            "conv2d/resnet8-s3-8x8x64",
            vec![8, 8, 64],
            conv(64, 3, 1, 1),
            false,
        ),
        (
            "conv2d/mobilenet-conv1-96x96x3",
            vec![96, 96, 3],
            conv(8, 3, 2, 1),
            true,
        ),
        (
            "depthwise/mobilenet-dw1-48x48x8",
            vec![48, 48, 8],
            conv(8, 3, 1, 8),
            true,
        ),
        (
            "depthwise/mobilenet-dw6-12x12x128",
            vec![12, 12, 128],
            conv(128, 3, 2, 128),
            true,
        ),
        (
            "depthwise/ds-cnn-dw-25x5x64",
            vec![25, 5, 64],
            conv(64, 3, 1, 64),
            true,
        ),
        (
            "pool/lenet5-pool1-28x28x6",
            vec![28, 28, 6],
            Op::max_pool([2, 2], [2, 2]),
            false,
        ),
    ]
}

/// A resnet8 block's second half: conv, residual add, ReLU (fused into one step by the
/// direct kernels).
fn residual_case() -> Graph {
    let nodes = vec![
        Node::new("conv1", conv(16, 3, 1, 1)),
        Node::new("relu1", Op::Relu),
        Node::new("conv2", conv(16, 3, 1, 1)),
        Node::with_inputs("add", Op::Add, &["conv2", "relu1"]),
        Node::new("relu", Op::Relu),
    ];
    Graph::new(
        "residual/resnet8-s1-32x32x16",
        InputSpec::new(vec![32, 32, 16], None),
        nodes,
    )
    .expect("valid")
}

fn main() {
    let mut c = common::criterion();
    let mut backends: Vec<(String, Box<dyn Backend>)> = common::backends()
        .into_iter()
        .map(|b| (b.name().to_string(), b))
        .collect();
    if greenbench_cpu::direct_kernels_available() {
        let portable = CpuBackend::new(0)
            .expect("cpu backend")
            .with_direct_kernels(false);
        backends.insert(1, ("cpu-portable".to_string(), Box::new(portable)));
    }
    let mut group = c.benchmark_group("kernels");
    let mut graphs: Vec<Graph> = cases()
        .into_iter()
        .map(|(id, shape, op, relu)| {
            let mut nodes = vec![Node::new("op", op)];
            if relu {
                nodes.push(Node::new("relu", Op::Relu));
            }
            Graph::new(id, InputSpec::new(shape, None), nodes).expect("valid")
        })
        .collect();
    graphs.push(residual_case());
    for g in &graphs {
        let id = g.name.as_str();
        let w = generate_weights(g, 0);
        let fpo = graph_cost(g).total.fpo();
        for batch in [1usize, 32] {
            let x = generate_inputs(g, batch, 0, 0);
            for (label, backend) in &backends {
                let Ok(mut p) = backend.prepare(g, &w, batch) else {
                    eprintln!("{id}: prepare failed on {label}");
                    continue;
                };
                group.throughput(Throughput::Elements(fpo * batch as u64));
                group.bench_function(BenchmarkId::new(format!("{id}/{label}"), batch), |b| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            std::hint::black_box(p.run(&x).expect("run"));
                        }
                        start.elapsed()
                    })
                });
            }
        }
    }
    // The sgemm behind `greenbench peak` (its right-hand side prepared once): the packed GEMM
    // on `cpu`, the `gemm` crate on `cpu-portable`.
    let n = 1024;
    for (label, backend) in &backends {
        let Ok(mut p) = backend.prepare_matmul(n, n, n) else {
            eprintln!("sgemm: prepare failed on {label}");
            continue;
        };
        let a = vec![0.5f32; n * n];
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        group.bench_function(BenchmarkId::new(format!("sgemm/1024^3/{label}"), 1), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(p.run(&a).expect("run"));
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    c.final_summary();
}
