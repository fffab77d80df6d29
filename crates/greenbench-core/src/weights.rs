//! Seeded, deterministic weights and inputs.
//!
//! The generator is pinned: ChaCha8 (`rand_chacha`), seeded with `seed`, one stream per node
//! (`set_stream(node_index + 1)`), sampled through `ndarray-rand` with `rand`'s uniform
//! distribution; versions are pinned by `Cargo.lock`. ChaCha is defined on bytes, so the
//! same seed gives the same bits on every platform; [`Weights::fingerprint`] is tested
//! against golden values so a dependency update that changes them cannot pass unnoticed.

use crate::graph::{Graph, InputRole, Op};
use ndarray::{ArrayD, IxDyn};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::Uniform;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A weight tensor (ndarray, dynamic rank).
pub type Tensor = ArrayD<f32>;

/// The weights of a graph: for each node, its tensors in a fixed order.
///
/// * conv2d: kernel `[kh, kw, Cin/groups, Cout]` (HWIO), bias `[Cout]` if any
/// * dense: kernel `[K, units]`, bias `[units]` if any
/// * batch_norm: gamma, beta, mean, var, each `[C]`
/// * layer_norm: gamma, beta, each `[n]`
/// * embedding: table `[vocab, dim]`, positions `[S, dim]` if any
/// * binary_const: the constant, of its per-example shape
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub per_node: Vec<Vec<ArrayD<f32>>>,
}

impl Weights {
    /// Tensors of node `i`.
    pub fn node(&self, i: usize) -> &[ArrayD<f32>] {
        &self.per_node[i]
    }

    /// FNV-1a 64 over every weight's little-endian bytes, in node order: one number that
    /// says "these are the same weights" across machines and backends.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for t in self.per_node.iter().flatten() {
            for v in t.iter() {
                for b in v.to_le_bytes() {
                    h ^= b as u64;
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        h
    }
}

fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], lo: f32, hi: f32) -> ArrayD<f32> {
    ArrayD::random_using(IxDyn(shape), Uniform::new(lo, hi).expect("lo < hi"), rng)
}

/// The tensor shapes node `i` of `g` expects, in order.
pub fn weight_shapes(g: &Graph, i: usize) -> Vec<Vec<usize>> {
    let x = g.value_shape(g.node_inputs(i)[0]);
    let last = *x.last().expect("non-empty");
    match &g.nodes[i].op {
        Op::Conv2d {
            filters,
            kernel,
            groups,
            bias,
            ..
        } => {
            let mut v = vec![vec![kernel[0], kernel[1], x[2] / groups, *filters]];
            if *bias {
                v.push(vec![*filters]);
            }
            v
        }
        Op::Dense { units, bias } => {
            let mut v = vec![vec![last, *units]];
            if *bias {
                v.push(vec![*units]);
            }
            v
        }
        Op::BatchNorm { .. } => vec![vec![last]; 4],
        Op::LayerNorm { .. } => vec![vec![last]; 2],
        Op::Embedding {
            vocab,
            dim,
            positions,
        } => {
            let mut v = vec![vec![*vocab, *dim]];
            if *positions {
                v.push(vec![x[0], *dim]);
            }
            v
        }
        Op::BinaryConst { shape, .. } | Op::Constant { shape } => vec![shape.clone()],
        _ => vec![],
    }
}

/// Seeded weights for `g`. Kernels are He-uniform (`±sqrt(6 / fan_in)`) so activations keep
/// their scale through deep stacks; biases `±0.05`; batch-norm gamma in [0.8, 1.2], beta and
/// mean in [-0.1, 0.1], var in [0.5, 1.5]; layer-norm gamma in [0.9, 1.1], beta in [-0.1, 0.1];
/// embeddings `±0.5`; the constants of binary_const nodes in [0.5, 1.5].
pub fn generate_weights(g: &Graph, seed: u64) -> Weights {
    let per_node = (0..g.nodes.len())
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64 + 1);
            let shapes = weight_shapes(g, i);
            match &g.nodes[i].op {
                Op::Conv2d { .. } | Op::Dense { .. } => {
                    let k = &shapes[0];
                    let fan_in: usize = k[..k.len() - 1].iter().product();
                    let a = (6.0 / fan_in as f32).sqrt();
                    let mut v = vec![uniform(&mut rng, k, -a, a)];
                    if let Some(b) = shapes.get(1) {
                        v.push(uniform(&mut rng, b, -0.05, 0.05));
                    }
                    v
                }
                Op::BatchNorm { .. } => {
                    let c = &shapes[0];
                    vec![
                        uniform(&mut rng, c, 0.8, 1.2),
                        uniform(&mut rng, c, -0.1, 0.1),
                        uniform(&mut rng, c, -0.1, 0.1),
                        uniform(&mut rng, c, 0.5, 1.5),
                    ]
                }
                Op::LayerNorm { .. } => vec![
                    uniform(&mut rng, &shapes[0], 0.9, 1.1),
                    uniform(&mut rng, &shapes[1], -0.1, 0.1),
                ],
                Op::Embedding { .. } => shapes
                    .iter()
                    .map(|s| uniform(&mut rng, s, -0.5, 0.5))
                    .collect(),
                // Positive, so a division by it is safe.
                Op::BinaryConst { .. } => vec![uniform(&mut rng, &shapes[0], 0.5, 1.5)],
                Op::Constant { .. } => vec![uniform(&mut rng, &shapes[0], -0.5, 0.5)],
                _ => vec![],
            }
        })
        .collect();
    Weights { per_node }
}

/// Check that `w` has exactly the tensors `g` expects.
pub fn check_weights(g: &Graph, w: &Weights) -> Result<(), String> {
    if w.per_node.len() != g.nodes.len() {
        return Err(format!(
            "weights cover {} nodes, graph `{}` has {}",
            w.per_node.len(),
            g.name,
            g.nodes.len()
        ));
    }
    for i in 0..g.nodes.len() {
        let want = weight_shapes(g, i);
        let got: Vec<Vec<usize>> = w.per_node[i].iter().map(|t| t.shape().to_vec()).collect();
        if want != got {
            return Err(format!(
                "node `{}`: weight shapes {got:?}, expected {want:?}",
                g.nodes[i].name
            ));
        }
    }
    Ok(())
}

/// `batch` seeded example inputs for `g`, flattened (batch-major): uniform in [-1, 1), or
/// token ids in `0..token_vocab` for token inputs. `stream` picks one of several distinct
/// input sets. A model with several named inputs gets each by its role: values uniform in
/// [-1, 1), token ids uniform in the table they index, type ids zeros, attention masks all
/// ones (no padding: every token is priced).
pub fn generate_inputs(g: &Graph, batch: usize, seed: u64, stream: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_1a9b_7f00_0000);
    rng.set_stream(stream);
    let n = batch * g.input_len();
    if !g.input.parts.is_empty() {
        let mut x = Vec::with_capacity(n);
        for _ in 0..batch {
            for p in &g.input.parts {
                let len = p.len();
                match (p.role, p.vocab) {
                    (InputRole::TokenIds, Some(v)) => {
                        x.extend((0..len).map(|_| rng.random_range(0..v) as f32))
                    }
                    (InputRole::TokenIds | InputRole::TypeIds, _) => {
                        x.extend(std::iter::repeat_n(0.0, len))
                    }
                    (InputRole::AttentionMask, _) => x.extend(std::iter::repeat_n(1.0, len)),
                    (InputRole::Values, _) => x.extend(
                        uniform(&mut rng, &[len], -1.0, 1.0)
                            .into_raw_vec_and_offset()
                            .0,
                    ),
                }
            }
        }
        return x;
    }
    match g.input.token_vocab {
        Some(v) => (0..n).map(|_| rng.random_range(0..v) as f32).collect(),
        None => {
            uniform(&mut rng, &[n], -1.0, 1.0)
                .into_raw_vec_and_offset()
                .0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::{MODEL_NAMES, zoo_model};

    /// Golden values: the same seed must give the same bytes on every platform and after
    /// every dependency update. If this fails, weights changed: results are no longer
    /// comparable with earlier ones, so bump the result schema and say so.
    #[test]
    fn seeded_weights_and_inputs_are_pinned() {
        let golden = [
            ("ds-cnn", 0x8773745fe4a219d1u64),
            ("mobilenet-v1-0.25", 0x11e2fb891b5bf3b6),
            ("resnet8", 0xcd1c8b3c86951a66),
            ("autoencoder", 0x41d1828cb87d97c2),
            ("lenet5", 0x7fca5a0809aba187),
            ("mlp", 0xec3c1c7c75864ed2),
            ("tiny-transformer", 0xf3bb51d6f2144192),
        ];
        assert_eq!(golden.len(), MODEL_NAMES.len());
        for (n, fp) in golden {
            let g = zoo_model(n).unwrap();
            assert_eq!(generate_weights(&g, 0).fingerprint(), fp, "{n}");
        }
        let g = zoo_model("mlp").unwrap();
        let x = generate_inputs(&g, 2, 0, 1);
        let w = Weights {
            per_node: vec![vec![ArrayD::from_shape_vec(IxDyn(&[x.len()]), x).unwrap()]],
        };
        assert_eq!(w.fingerprint(), 0xe513cd0ad190f85c);
        // Another seed gives other weights; another stream other inputs.
        assert_ne!(generate_weights(&g, 1).fingerprint(), 0xec3c1c7c75864ed2);
        assert_ne!(generate_inputs(&g, 2, 0, 1), generate_inputs(&g, 2, 0, 2));
    }
}
