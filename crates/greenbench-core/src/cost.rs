//! Analytic work and size counts, per example, by the rules of `shared/FPO.md`.
//!
//! * MACs: multiply-accumulates of dense / conv / attention products.
//! * other FPO: floating-point operations not inside a MAC (bias, ReLU, pooling, softmax...).
//! * FPO = 2 * MACs + other FPO (1 MAC = 2 FPO).
//! * transcendentals (exp, tanh, erf, rsqrt) are a third tally, never folded into FPO.
//!
//! GELU (tanh approximation, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`) counts
//! 8 FPO per element (x^3: 2, * 0.044715: 1, + x: 1, * sqrt(2/pi): 1, 1 +: 1, 0.5 x: 1,
//! final product: 1) and 1 transcendental (tanh). The learned position embedding is an
//! elementwise add (1 FPO per output element); the lookups themselves are free.

use crate::graph::{Graph, Op};
use serde::Serialize;

/// Work and size of one node or graph, per example.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub macs: u64,
    /// FPO not from MACs.
    pub other_fpo: u64,
    pub transcendentals: u64,
    /// Weights + biases (+ layer-norm affine, embeddings). Batch-norm statistics excluded.
    pub params: u64,
}

impl Cost {
    /// FPO = 2 * MACs + other FPO.
    pub fn fpo(&self) -> u64 {
        2 * self.macs + self.other_fpo
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.macs += o.macs;
        self.other_fpo += o.other_fpo;
        self.transcendentals += o.transcendentals;
        self.params += o.params;
    }
}

/// One row of a per-layer breakdown.
#[derive(Clone, Debug, Serialize)]
pub struct NodeCost {
    pub name: String,
    /// Human label of the op, e.g. `conv 3x3/2, 8 + batch_norm (folded)`.
    pub label: String,
    pub output_shape: Vec<usize>,
    pub cost: Cost,
}

/// Totals and per-node rows of a graph.
#[derive(Clone, Debug, Serialize)]
pub struct GraphCost {
    pub total: Cost,
    pub nodes: Vec<NodeCost>,
}

fn prod(s: &[usize]) -> u64 {
    s.iter().map(|&d| d as u64).product()
}

/// Cost of node `i` of `g`, per example.
pub fn node_cost(g: &Graph, i: usize) -> Cost {
    let node = &g.nodes[i];
    let x = g.value_shape(g.node_inputs(i)[0]);
    let out = g.out_shape(i);
    let n_out = prod(out);
    let n_in = prod(x);
    let last_in = *x.last().expect("non-empty") as u64;
    match &node.op {
        Op::Conv2d { bias, .. } => {
            let c = g.conv_geom(i);
            let per_out = (c.cin / c.groups) as u64 * (c.kh * c.kw) as u64;
            let b = if *bias { c.cout as u64 } else { 0 };
            Cost {
                macs: n_out * per_out,
                other_fpo: if *bias { n_out } else { 0 },
                transcendentals: 0,
                params: per_out * c.cout as u64 + b,
            }
        }
        Op::Dense { units, bias } => {
            let units = *units as u64;
            let rows = n_out / units;
            Cost {
                macs: rows * units * last_in,
                other_fpo: if *bias { n_out } else { 0 },
                transcendentals: 0,
                params: last_in * units + if *bias { units } else { 0 },
            }
        }
        // Unfolded inference batch norm: scale and shift. Its statistics are not "params".
        Op::BatchNorm { .. } => Cost {
            other_fpo: 2 * n_out,
            ..Cost::default()
        },
        Op::Relu | Op::Add => Cost {
            other_fpo: n_out,
            ..Cost::default()
        },
        Op::Gelu => Cost {
            other_fpo: 8 * n_out,
            transcendentals: n_out,
            ..Cost::default()
        },
        Op::Softmax => {
            let rows = n_out / last_in;
            Cost {
                other_fpo: rows * (4 * last_in - 2),
                transcendentals: n_out,
                ..Cost::default()
            }
        }
        Op::LayerNorm { .. } => Cost {
            other_fpo: 5 * n_out,
            transcendentals: n_out / last_in,
            params: 2 * last_in,
            ..Cost::default()
        },
        // Per output, the whole window (padded and partial windows included: the dense
        // convention shared/FPO.md applies to convolutions).
        Op::MaxPool { kernel, .. } => Cost {
            other_fpo: n_out * (kernel[0] * kernel[1] - 1) as u64,
            ..Cost::default()
        },
        Op::AvgPool { kernel, .. } => Cost {
            other_fpo: n_out * (kernel[0] * kernel[1]) as u64,
            ..Cost::default()
        },
        op @ crate::unary_ops!() => {
            let (fpo, tr) = op.unary().expect("unary op").cost();
            Cost {
                other_fpo: fpo * n_out,
                transcendentals: tr * n_out,
                ..Cost::default()
            }
        }
        // One arithmetic operation per output element, whatever the broadcast (a division
        // counts 1, as shared/FPO.md counts softmax's).
        Op::Mul | Op::Binary { .. } => Cost {
            other_fpo: n_out,
            ..Cost::default()
        },
        // The constant is stored with the model: parameters.
        Op::BinaryConst { shape, .. } => Cost {
            other_fpo: n_out,
            params: prod(shape),
            ..Cost::default()
        },
        // A product of two activations: MACs like a dense layer's, no parameters.
        Op::MatMul => {
            let m = crate::graph::MatMulGeom::of(x, g.value_shape(g.node_inputs(i)[1]))
                .expect("validated matmul")
                .0;
            Cost {
                macs: (m.mats * m.m * m.k * m.n) as u64,
                ..Cost::default()
            }
        }
        // Stored with the model: parameters.
        Op::Constant { shape } => Cost {
            params: prod(shape),
            ..Cost::default()
        },
        Op::Concat { .. }
        | Op::Input { .. }
        | Op::Pack { .. }
        | Op::ChannelShuffle { .. }
        | Op::Slice { .. }
        | Op::Transpose { .. }
        | Op::Reshape { .. } => Cost::default(),
        Op::GlobalAvgPool => Cost {
            other_fpo: n_in,
            ..Cost::default()
        },
        Op::Flatten => Cost::default(),
        Op::Embedding {
            vocab,
            dim,
            positions,
        } => {
            let seq = x[0] as u64;
            let dim = *dim as u64;
            Cost {
                other_fpo: if *positions { n_out } else { 0 },
                params: *vocab as u64 * dim + if *positions { seq * dim } else { 0 },
                ..Cost::default()
            }
        }
        Op::Attention {
            heads,
            head_dim,
            causal,
            key_bias,
        } => {
            let s = x[0] as u64;
            let h = *heads as u64;
            let d = *head_dim as u64;
            // Each mask is one operation per score (FPO.md: the add of a padding mask's key
            // bias, the select of the causal mask), h * S^2 per call.
            let bias = (u64::from(*key_bias) + u64::from(*causal)) * h * s * s;
            Cost {
                macs: h * s * s * (d + d),
                // scale of the scores + softmax over each of the h * s rows of length s.
                other_fpo: h * s * s + h * s * (4 * s - 2) + bias,
                transcendentals: h * s * s,
                params: 0,
            }
        }
    }
}

/// Per-node and total cost of a graph, per example.
pub fn graph_cost(g: &Graph) -> GraphCost {
    let mut total = Cost::default();
    let nodes = (0..g.nodes.len())
        .map(|i| {
            let c = node_cost(g, i);
            total += c;
            let n = &g.nodes[i];
            let mut label = n.op.to_string();
            for f in &n.folded {
                label.push_str(&format!(" + {f} (folded)"));
            }
            NodeCost {
                name: n.name.clone(),
                label,
                output_shape: g.out_shape(i).clone(),
                cost: c,
            }
        })
        .collect();
    GraphCost { total, nodes }
}
