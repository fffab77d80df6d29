//! The step profile (`Prepared::time_steps` / `step_times`, shown by `greenbench inspect
//! --time`): on every zoo model and precision, each computing graph node is in exactly one
//! timed step per example, the times are real (positive), the timed plan still computes the
//! same outputs; a plan whose steps a thread team shares reports the team's wall time and each
//! thread's busy time in every step.

use greenbench_core::backend::StepTime;
use greenbench_core::graph::Op;
use greenbench_core::quant::{QuantConfig, quantize};
use greenbench_core::{Backend, MODEL_NAMES, Model, Prepared, generate_inputs};
use greenbench_cpu::CpuBackend;

const RUNS: u64 = 3;

/// The prepared model of `m` in `precision` (fp32, bf16 or int8).
fn prepared(cpu: &CpuBackend, m: &Model, precision: &str, batch: usize) -> Box<dyn Prepared> {
    match precision {
        "fp32" => cpu.prepare(&m.graph, &m.weights, batch).expect("prepares"),
        "bf16" => {
            let b = greenbench_core::bf16::model(m).expect("bf16 model");
            cpu.prepare(&b.graph, &b.weights, batch).expect("prepares")
        }
        _ => {
            let x = generate_inputs(&m.graph, 8, m.seed, 7);
            let qm =
                quantize(&m.graph, &m.weights, &x, &QuantConfig::default()).expect("quantizes");
            cpu.prepare_quantized(&qm, batch).expect("prepares")
        }
    }
}

/// Per graph node, the examples the timed steps computed it for (int8's border conversions,
/// listed under the node whose input or output they convert, left out).
fn examples_per_node(steps: &[StepTime], nodes: usize) -> Vec<u64> {
    let mut per = vec![0u64; nodes];
    for s in steps.iter().filter(|s| !s.kernel.contains("(border)")) {
        for &n in &s.nodes {
            per[n] += s.examples;
        }
    }
    per
}

/// Whether node `op` must be computed by a step of its own or with others (it does
/// arithmetic on a value): convolutions and dense layers.
fn weight_layer(op: &Op) -> bool {
    matches!(op, Op::Conv2d { .. } | Op::Dense { .. })
}

#[test]
fn every_weight_layer_is_in_one_timed_step_per_example() {
    for (threads, batch) in [(1, 1), (1, 5), (2, 6)] {
        let cpu = CpuBackend::new(threads).expect("cpu");
        for name in MODEL_NAMES {
            let m = Model::load(name, 0).expect("zoo model");
            for precision in ["fp32", "bf16", "int8"] {
                let mut p = prepared(&cpu, &m, precision, batch);
                let x = generate_inputs(&m.graph, batch, 0, 0);
                let want = p.run(&x).expect("runs").to_vec();
                p.time_steps()
                    .expect("a one-thread or split plan times its steps");
                for _ in 0..RUNS {
                    let got = p.run(&x).expect("runs");
                    assert_eq!(
                        got,
                        &want[..],
                        "{name} {precision}: timing changed the outputs"
                    );
                }
                let steps = p.step_times();
                let what = format!("{name} {precision} batch {batch}, {threads} thread(s)");
                assert!(!steps.is_empty(), "{what}: no step timed");
                for s in &steps {
                    assert!(s.seconds > 0.0, "{what}: step `{}` took no time", s.kernel);
                    // Batches of 5 and 6 split across the threads (one worker each).
                    let workers = if batch > 1 { threads } else { 1 };
                    assert_eq!(
                        s.threads, workers,
                        "{what}: threads summed in `{}`",
                        s.kernel
                    );
                    assert!(!s.kernel.is_empty());
                    assert!(
                        s.nodes.windows(2).all(|w| w[0] < w[1]),
                        "{what}: nodes in order"
                    );
                }
                // bf16 inserts rounding nodes: count on the graph that ran.
                let g = match precision {
                    "bf16" => greenbench_core::bf16::model(&m).expect("bf16").graph,
                    _ => m.graph.clone(),
                };
                let per = examples_per_node(&steps, g.nodes.len());
                for (i, node) in g.nodes.iter().enumerate() {
                    assert!(
                        per[i] <= RUNS * batch as u64,
                        "{what}: node `{}` timed in {} examples of {}",
                        node.name,
                        per[i],
                        RUNS * batch as u64
                    );
                    if weight_layer(&node.op) {
                        assert_eq!(
                            per[i],
                            RUNS * batch as u64,
                            "{what}: layer `{}` not in exactly one step per example",
                            node.name
                        );
                    }
                }
            }
        }
    }
}

/// LeNet-5's first max pool runs inside its first convolution's step where the int8
/// pixels-in-lanes kernel runs (AVX-512 with VNNI and VBMI), as its own step elsewhere.
#[test]
fn lenet5_int8_pools_in_its_first_convolution_where_the_lanes_kernel_runs() {
    let cpu = CpuBackend::new(1).expect("cpu");
    let m = Model::load("lenet5", 0).expect("zoo model");
    let mut p = prepared(&cpu, &m, "int8", 2);
    p.time_steps().expect("one thread times its steps");
    p.run(&generate_inputs(&m.graph, 2, 0, 0)).expect("runs");
    let steps = p.step_times();
    let node = |name: &str| m.graph.nodes.iter().position(|n| n.name == name).unwrap();
    let (conv1, pool1) = (node("conv1"), node("pool1"));
    let step = steps
        .iter()
        .find(|s| s.nodes.contains(&conv1))
        .expect("conv1 timed");
    #[cfg(target_arch = "x86_64")]
    let lanes = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vnni")
        && std::arch::is_x86_feature_detected!("avx512vbmi");
    #[cfg(not(target_arch = "x86_64"))]
    let lanes = false;
    assert_eq!(step.nodes.contains(&pool1), lanes, "{step:?}");
    assert_eq!(step.kernel.contains("max pool"), lanes, "{}", step.kernel);
}

#[test]
fn untimed_plans_report_no_steps() {
    let cpu = CpuBackend::new(1).expect("cpu");
    let m = Model::load("lenet5", 0).expect("zoo model");
    let mut p = cpu.prepare(&m.graph, &m.weights, 4).expect("prepares");
    p.run(&generate_inputs(&m.graph, 4, 0, 0)).expect("runs");
    assert!(p.step_times().is_empty(), "no clock was started");
}

#[test]
fn team_plans_time_each_threads_part() {
    // Every step split across the two threads of a batch-1 run (a team), fp32 and int8.
    let cpu = CpuBackend::new(2)
        .expect("cpu")
        .with_step_split_threshold(0);
    if !cpu.uses_direct_kernels() {
        return; // teams are planned for the direct kernels only
    }
    let m = Model::load("resnet8", 0).expect("zoo model");
    let x = generate_inputs(&m.graph, 1, 0, 0);
    for precision in ["fp32", "int8"] {
        let mut p = prepared(&cpu, &m, precision, 1);
        let want = p.run(&x).expect("runs").to_vec();
        p.run(&x).expect("runs");
        assert!(p.step_times().is_empty(), "no clock started");
        p.time_steps().expect("a team times its steps");
        for _ in 0..RUNS {
            assert_eq!(
                p.run(&x).expect("runs"),
                &want[..],
                "{precision}: timing changed the outputs"
            );
        }
        let steps = p.step_times();
        assert!(!steps.is_empty(), "{precision}: no step timed");
        let (mut wall, mut busy) = (0.0, [0.0; 2]);
        for s in &steps {
            let what = format!("{precision} `{}` {:?}", s.kernel, s.nodes);
            assert_eq!(s.thread_busy.len(), 2, "{what}: a busy time per thread");
            assert_eq!(s.threads, 1, "{what}: a wall time, not summed threads");
            assert_eq!(s.examples, RUNS, "{what}");
            assert!(s.seconds > 0.0, "{what}: took no time");
            // The calling thread computes its parts inside the step's wall time.
            assert!(s.thread_busy[0] <= s.seconds, "{what}: {s:?}");
            assert!(
                s.thread_busy.iter().sum::<f64>() > 0.0,
                "{what}: nobody computed it"
            );
            wall += s.seconds;
            busy.iter_mut()
                .zip(&s.thread_busy)
                .for_each(|(a, b)| *a += b);
        }
        // Both threads' work lies inside the runs' wall time.
        assert!(
            busy.iter().all(|&b| b <= wall * (1.0 + 1e-9)),
            "{precision}: {busy:?} of {wall}"
        );
        let per = examples_per_node(&steps, m.graph.nodes.len());
        for (i, node) in m.graph.nodes.iter().enumerate() {
            assert!(
                per[i] <= RUNS,
                "{precision}: `{}` in {} examples",
                node.name,
                per[i]
            );
            if weight_layer(&node.op) {
                assert_eq!(per[i], RUNS, "{precision}: `{}` untimed", node.name);
            }
        }
    }
}
