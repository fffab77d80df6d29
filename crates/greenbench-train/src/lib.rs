//! greenbench-train: training small models on real data on the CPU, with every unit of work
//! counted.
//!
//! It owns the datasets ([`data`]: the shipped 8x8 digits, MNIST IDX and CIFAR-10 binary
//! loaders), the backward passes of the ops `mlp` and `lenet5` use ([`nn`]), SGD with momentum
//! and Adam, and the analytic count of training FPO (forward + loss + backward + optimizer,
//! by the rules of shared/FPO.md extended in docs/TRAINING_FPO.md), and the set-up of an
//! experiment by name ([`setup`]: dataset, optimizer, the learning rates of a sweep).
//!
//! It knows nothing of timing, energy or result files: greenbench-harness's `training`
//! measures a sweep of [`train`] runs, greenbench-results prices it.

pub mod data;
pub mod nn;
pub mod setup;

use greenbench_core::cost::node_cost;
use greenbench_core::graph::{Graph, Op};
use greenbench_core::weights::Weights;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// SGD with momentum `mu`.
    Sgd { momentum: f32 },
    /// Adam (beta1 0.9, beta2 0.999, eps 1e-8).
    Adam,
}

impl Optimizer {
    /// FPO per parameter per step: SGD-momentum 4 (v = mu v + g: 2; w -= lr v: 2);
    /// Adam 13 (m: 3, v: 4, bias corrections: 2, update: 4) plus 1 sqrt (a transcendental).
    pub fn fpo_per_param(&self) -> (u64, u64) {
        match self {
            Optimizer::Sgd { .. } => (4, 0),
            Optimizer::Adam => (13, 1),
        }
    }
}

/// Training work, counted from the graph (per example unless said otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainCost {
    pub forward_fpo: u64,
    /// Cross-entropy: 1 log (transcendental) and 2 FPO per example.
    pub loss_fpo: u64,
    pub backward_fpo: u64,
    pub backward_macs: u64,
    pub forward_macs: u64,
    /// Per optimizer step, over all parameters.
    pub optimizer_fpo_per_step: u64,
    pub transcendentals: u64,
}

impl TrainCost {
    /// FPO per training example-pass over `examples` examples in batches of `batch`:
    /// forward + loss + backward, plus the optimizer's per-step work spread over the
    /// examples of an epoch (rounded to a whole FPO).
    pub fn fpo_per_example_pass(&self, examples: usize, batch: usize) -> u64 {
        let steps_per_epoch = examples.div_ceil(batch) as f64;
        let opt_share = self.optimizer_fpo_per_step as f64 * steps_per_epoch / examples as f64;
        self.forward_fpo + self.loss_fpo + self.backward_fpo + opt_share.round() as u64
    }
}

/// Count backward FPO per example for `g` (docs/TRAINING_FPO.md): dense and conv2d have two
/// products (input gradient, skipped for the first layer; weight gradient) of the forward's
/// MACs each, plus bias-gradient sums; col2im adds one FPO per patch element; ReLU's mask is one
/// per element; max pool's routing and flatten are free; softmax + cross-entropy is 2 per class.
pub fn train_cost(g: &Graph, opt: Optimizer) -> TrainCost {
    let mut c = TrainCost::default();
    let mut params = 0u64;
    for i in 0..g.nodes.len() {
        let f = node_cost(g, i);
        c.forward_fpo += f.fpo();
        c.forward_macs += f.macs;
        c.transcendentals += f.transcendentals;
        params += f.params;
        let out: u64 = g.out_shape(i).iter().product::<usize>() as u64;
        let first = i == 0;
        match &g.nodes[i].op {
            Op::Dense { .. } => {
                let back_macs = f.macs * if first { 1 } else { 2 };
                c.backward_macs += back_macs;
                c.backward_fpo += 2 * back_macs + out;
            }
            Op::Conv2d { .. } => {
                let geo = g.conv_geom(i);
                let back_macs = f.macs * if first { 1 } else { 2 };
                let col2im = if first {
                    0
                } else {
                    (geo.ho * geo.wo * geo.kh * geo.kw * geo.cin) as u64
                };
                c.backward_macs += back_macs;
                c.backward_fpo += 2 * back_macs + out + col2im;
            }
            Op::Relu => c.backward_fpo += out,
            Op::Softmax => c.backward_fpo += 2 * out,
            _ => {}
        }
    }
    c.loss_fpo = 2;
    c.transcendentals += 1;
    let (per_param, _) = opt.fpo_per_param();
    c.optimizer_fpo_per_step = per_param * params;
    c
}

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub optimizer: Optimizer,
    pub seed: u64,
}

/// One epoch's figures.
#[derive(Clone, Debug)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f32,
    pub train_accuracy: f64,
    pub seconds: f64,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Trained {
    pub weights: Weights,
    pub epochs: Vec<EpochLog>,
    pub test_accuracy: f64,
    pub steps: u64,
}

/// Index of the largest value (the predicted class).
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |p| p.0)
}

/// Fraction of `d` that `w` classifies right.
pub fn accuracy(net: &nn::Net, w: &Weights, d: &data::Dataset) -> f64 {
    let mut right = 0;
    let n = d.example_len();
    for start in (0..d.len()).step_by(256) {
        let end = (start + 256).min(d.len());
        let tape = net.forward(w, &d.images[start * n..end * n], end - start);
        for (j, row) in tape.probs.chunks(net.classes).enumerate() {
            let pred = argmax(row);
            right += usize::from(pred == d.labels[start + j] as usize);
        }
    }
    right as f64 / d.len().max(1) as f64
}

/// Train `w` on `train`, report on `test`. Deterministic for a seed (one thread, fixed
/// shuffles). `on_epoch` sees each epoch's log.
pub fn train(
    net: &nn::Net,
    mut w: Weights,
    train: &data::Dataset,
    test: &data::Dataset,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Trained {
    let n = train.example_len();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7a11);
    let mut order: Vec<usize> = (0..train.len()).collect();
    // Optimizer state, per tensor.
    let zeros = |w: &Weights| -> Vec<Vec<Vec<f32>>> {
        w.per_node
            .iter()
            .map(|ts| ts.iter().map(|t| vec![0f32; t.len()]).collect())
            .collect()
    };
    let mut m1 = zeros(&w);
    let mut m2 = zeros(&w);
    let mut steps = 0u64;
    let mut logs = Vec::new();
    let mut xb = Vec::with_capacity(cfg.batch * n);
    let mut yb = Vec::with_capacity(cfg.batch);
    for epoch in 1..=cfg.epochs {
        let t0 = std::time::Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut right = 0usize;
        for chunk in order.chunks(cfg.batch) {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&train.images[i * n..(i + 1) * n]);
                yb.push(train.labels[i]);
            }
            let tape = net.forward(&w, &xb, chunk.len());
            loss_sum += net.loss(&tape, &yb) * chunk.len() as f32;
            for (j, row) in tape.probs.chunks(net.classes).enumerate() {
                let pred = argmax(row);
                right += usize::from(pred == yb[j] as usize);
            }
            let grads = net.backward(&w, &tape, &yb);
            steps += 1;
            let t = steps as i32;
            for (node, gs) in grads.iter().enumerate() {
                for (k, g) in gs.iter().enumerate() {
                    let p = w.per_node[node][k].as_slice_mut().expect("std");
                    let (a, b) = (&mut m1[node][k], &mut m2[node][k]);
                    match cfg.optimizer {
                        Optimizer::Sgd { momentum } => {
                            for j in 0..p.len() {
                                a[j] = momentum * a[j] + g[j];
                                p[j] -= cfg.lr * a[j];
                            }
                        }
                        Optimizer::Adam => {
                            let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                            let c1 = 1.0 - b1.powi(t);
                            let c2 = 1.0 - b2.powi(t);
                            for j in 0..p.len() {
                                a[j] = b1 * a[j] + (1.0 - b1) * g[j];
                                b[j] = b2 * b[j] + (1.0 - b2) * g[j] * g[j];
                                p[j] -= cfg.lr * (a[j] / c1) / ((b[j] / c2).sqrt() + eps);
                            }
                        }
                    }
                }
            }
        }
        let log = EpochLog {
            epoch,
            loss: loss_sum / train.len() as f32,
            train_accuracy: right as f64 / train.len() as f64,
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_epoch(&log);
        logs.push(log);
    }
    let test_accuracy = accuracy(net, &w, test);
    Trained {
        weights: w,
        epochs: logs,
        test_accuracy,
        steps,
    }
}
