//! Gradient checks (central finite differences) for every backward op, and determinism.

use greenbench_core::graph::{Graph, Op, Padding};
use greenbench_core::{generate_inputs, generate_weights};
use greenbench_train::nn::Net;

/// Compare analytic gradients with central differences at up to `per_tensor` coordinates of
/// every tensor.
#[allow(clippy::needless_range_loop)]
fn check(g: &Graph, batch: usize, per_tensor: usize) {
    let net = Net::new(g).unwrap();
    let mut w = generate_weights(g, 3);
    let x = generate_inputs(g, batch, 3, 0);
    let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % net.classes) as u8).collect();
    let tape = net.forward(&w, &x, batch);
    let grads = net.backward(&w, &tape, &labels);
    // f32 forward passes: eps must move the loss by many ulps, and the tiny graphs below keep
    // it from crossing ReLU / max-pool kinks (on lenet5's 4,704 ReLUs it does, and central
    // differences stop meaning anything, so whole-model checks use these op-level graphs).
    let eps = 1e-2f32;
    let mut checked = 0;
    for node in 0..w.per_node.len() {
        for k in 0..w.per_node[node].len() {
            let len = w.per_node[node][k].len();
            for s in 0..per_tensor.min(len) {
                let j = (s * 7919) % len;
                let orig = w.per_node[node][k].as_slice().unwrap()[j];
                let at = |v: f32, w: &mut greenbench_core::Weights| {
                    w.per_node[node][k].as_slice_mut().unwrap()[j] = v;
                    let t = net.forward(w, &x, batch);
                    net.loss(&t, &labels) as f64
                };
                let num = (at(orig + eps, &mut w) - at(orig - eps, &mut w)) / (2.0 * eps as f64);
                at(orig, &mut w);
                let ana = grads[node][k][j] as f64;
                let tol = 2e-2 * num.abs().max(ana.abs()) + 2e-4;
                assert!(
                    (num - ana).abs() <= tol,
                    "node {} tensor {k} [{j}]: numeric {num:.6} vs analytic {ana:.6}",
                    g.nodes[node].name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

fn graph(input: Vec<usize>, ops: Vec<Op>) -> Graph {
    greenbench_testkit::chain(input, ops).expect("a valid test graph")
}

#[test]
fn dense_relu_softmax_ce() {
    let g = graph(
        vec![6],
        vec![
            Op::Dense {
                units: 5,
                bias: true,
            },
            Op::Relu,
            Op::Dense {
                units: 4,
                bias: true,
            },
            Op::Softmax,
        ],
    );
    check(&g, 3, 12);
}

#[test]
fn conv_stride_padding_maxpool_flatten() {
    let g = graph(
        vec![7, 6, 2],
        vec![
            Op::conv(3, [3, 2], [2, 1], Padding::Same),
            Op::Relu,
            Op::conv(4, [2, 2], [1, 1], Padding::explicit(1, 0, 0, 1)),
            Op::max_pool([2, 2], [2, 2]),
            Op::Flatten,
            Op::Dense {
                units: 3,
                bias: true,
            },
            Op::Softmax,
        ],
    );
    check(&g, 2, 10);
}

#[test]
fn backward_is_about_twice_forward_as_a_check() {
    let g = greenbench_core::zoo::zoo_model("lenet5").unwrap();
    let c = greenbench_train::train_cost(&g, greenbench_train::Optimizer::Adam);
    // Two products per layer, minus the first layer's input gradient (117,600 MACs).
    assert_eq!(c.backward_macs, 2 * c.forward_macs - 117_600);
    let r = c.backward_macs as f64 / c.forward_macs as f64;
    assert!(r > 1.6 && r <= 2.0, "{r}");
    assert_eq!(c.optimizer_fpo_per_step, 13 * 61_706);
}

#[test]
fn unsupported_graphs_are_refused() {
    let g = greenbench_core::zoo::zoo_model("resnet8").unwrap();
    let e = Net::new(&g).unwrap_err().to_string();
    assert!(
        e.contains("batch_norm") || e.contains("previous node"),
        "{e}"
    );
}

#[test]
fn seeded_training_is_reproducible_and_learns() {
    use greenbench_train::{Optimizer, TrainConfig, data, train};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let d = data::load_digits(&data::digits_path(&root)).unwrap();
    let (tr, te) = d.split(0.2, 0);
    let g = greenbench_core::zoo::zoo_model("mlp").unwrap();
    // mlp takes 784 = 28 x 28 inputs.
    let (tr, te) = (
        data::resize(&tr.subset(&(0..300).collect::<Vec<_>>()), 28, 28),
        data::resize(&te, 28, 28),
    );
    let net = Net::new(&g).unwrap();
    let cfg = TrainConfig {
        epochs: 3,
        batch: 32,
        lr: 1e-3,
        optimizer: Optimizer::Adam,
        seed: 9,
    };
    let a = train(&net, generate_weights(&g, 9), &tr, &te, &cfg, &mut |_| {});
    let b = train(&net, generate_weights(&g, 9), &tr, &te, &cfg, &mut |_| {});
    assert_eq!(a.test_accuracy, b.test_accuracy);
    assert_eq!(a.weights, b.weights);
    assert!(a.epochs[2].loss < a.epochs[0].loss, "{:?}", a.epochs);
    assert!(a.test_accuracy > 0.5, "{}", a.test_accuracy);
    let sgd = TrainConfig {
        optimizer: Optimizer::Sgd { momentum: 0.9 },
        lr: 0.05,
        ..cfg
    };
    let c = train(&net, generate_weights(&g, 9), &tr, &te, &sgd, &mut |_| {});
    assert!(c.epochs[2].loss < c.epochs[0].loss, "{:?}", c.epochs);
}
