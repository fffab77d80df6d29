//! The bf16 precision, defined once for every backend.
//!
//! A model runs in bf16 as mixed-precision inference runs it (`torch.autocast`'s bfloat16
//! rule for linear layers and convolutions): the **weight layers** (dense layers and
//! ungrouped convolutions) multiply bf16 operands, their weights stored as bf16 and their
//! input rounded to bf16, and accumulate in fp32 (a bf16 x bf16 product has at most 16
//! significant bits, so it is exact in fp32). Everything else stays fp32: biases,
//! normalisations, activations, softmax, attention's own products, embeddings, residual adds,
//! and depthwise and grouped convolutions (a few multiply-adds per value they read: bound by
//! memory traffic, where bf16 arithmetic buys nothing and a rounding pass costs a copy).
//!
//! [`convert`] writes exactly that into the graph: a [`MathFn::RoundBf16`] node before each
//! weight layer's input (one per value, shared by the layers that read it) and the layers'
//! weight tensors rounded. The reference interpreter then defines the numbers (it runs the
//! converted graph like any other); a backend with bf16 arithmetic (AVX-512 BF16's
//! `vdpbf16ps`) fuses a rounding node into the layers after it, one without runs the graph as
//! written: the same rounded operands, fp32 products and sums. Rounding is to nearest, ties
//! to even; NaN stays NaN.

use crate::graph::{Graph, GraphError, MathFn, Node, Op};
use crate::weights::Weights;
use std::collections::{HashMap, HashSet};

/// The bfloat16 nearest to `x` (ties to even), as its 16 bits.
#[inline(always)]
pub fn to_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        // Quiet, sign and payload's top bits kept.
        return ((b >> 16) | 0x0040) as u16;
    }
    let lsb = (b >> 16) & 1;
    (b.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// The fp32 value of bfloat16 bits (exact).
#[inline(always)]
pub fn from_bits(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `x` rounded to the nearest bfloat16 (ties to even), as fp32.
#[inline(always)]
pub fn round(x: f32) -> f32 {
    from_bits(to_bits(x))
}

/// Whether node op `op` is a weight layer, whose operands bf16 rounds: a dense layer or an
/// ungrouped convolution.
pub fn is_weight_layer(op: &Op) -> bool {
    matches!(op, Op::Dense { .. } | Op::Conv2d { groups: 1, .. })
}

/// Whether a graph was written by [`convert`] (it has rounding nodes).
pub fn is_converted(g: &Graph) -> bool {
    g.nodes.iter().any(|n| {
        matches!(
            n.op,
            Op::Math {
                f: MathFn::RoundBf16
            }
        )
    })
}

/// The graph and weights of `g` in bf16 (see the module): a rounding node before each weight
/// layer's input, the layers' weight tensors (not their biases) rounded. Every other node
/// keeps its weights; every node's inputs are written out by name.
pub fn convert(g: &Graph, w: &Weights) -> Result<(Graph, Weights), GraphError> {
    let value_name = |v: usize| -> String {
        if v == 0 {
            "input".to_string()
        } else {
            g.nodes[v - 1].name.clone()
        }
    };
    let mut taken: HashSet<String> = g.nodes.iter().map(|n| n.name.clone()).collect();
    taken.insert("input".into());
    let mut rounded: HashMap<usize, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(g.nodes.len() * 2);
    let mut per_node = Vec::with_capacity(g.nodes.len() * 2);
    for (i, node) in g.nodes.iter().enumerate() {
        let srcs = g.node_inputs(i);
        let mut inputs: Vec<String> = if node.inputs.is_empty()
            && matches!(node.op, Op::Input { .. } | Op::Constant { .. })
        {
            Vec::new()
        } else {
            srcs.iter().map(|&v| value_name(v)).collect()
        };
        let mut tensors = w.node(i).to_vec();
        if is_weight_layer(&node.op) {
            let v = srcs[0];
            let name = match rounded.get(&v) {
                Some(n) => n.clone(),
                None => {
                    let mut n = format!("{}.bf16", value_name(v));
                    while taken.contains(&n) {
                        n.push('_');
                    }
                    taken.insert(n.clone());
                    nodes.push(Node::with_inputs(
                        n.clone(),
                        Op::Math {
                            f: MathFn::RoundBf16,
                        },
                        &[value_name(v).as_str()],
                    ));
                    per_node.push(Vec::new());
                    rounded.insert(v, n.clone());
                    n
                }
            };
            inputs[0] = name;
            if let Some(k) = tensors.first_mut() {
                k.mapv_inplace(round);
            }
        }
        let mut out = node.clone();
        out.inputs = inputs;
        nodes.push(out);
        per_node.push(tensors);
    }
    let graph = Graph::new(g.name.clone(), g.input.clone(), nodes)?;
    Ok((graph, Weights { per_node }))
}

/// `m` in bf16: its graph and weights [`convert`]ed, its work counted on that graph (the
/// same totals: a rounding is a conversion, 0 FPO); name, seed and inputs as `m`'s.
pub fn model(m: &crate::Model) -> Result<crate::Model, GraphError> {
    let (graph, weights) = convert(&m.graph, &m.weights)?;
    Ok(crate::Model {
        cost: crate::cost::graph_cost(&graph),
        graph,
        weights,
        ..m.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::run_reference;
    use crate::weights::{generate_inputs, generate_weights};

    #[test]
    fn rounding_is_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even one, 1.
        assert_eq!(round(1.0 + 2f32.powi(-8)), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        // Just above halfway rounds up.
        assert_eq!(
            round(f32::from_bits(1f32.to_bits() + 0x8001)),
            1.0 + 2f32.powi(-7)
        );
        assert_eq!(round(-2.5), -2.5);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        // The largest finite values round to infinity past bf16's range.
        assert_eq!(round(f32::MAX), f32::INFINITY);
        // Every bf16 is its own rounding.
        for h in (0u16..=u16::MAX).step_by(7) {
            let x = from_bits(h);
            if !x.is_nan() {
                assert_eq!(to_bits(x), h);
            }
        }
    }

    #[test]
    fn conversion_rounds_weight_layer_operands_only() {
        let m = crate::zoo::load_model("resnet8").expect("zoo");
        let w = generate_weights(&m, 3);
        let (g, wb) = convert(&m, &w).expect("converts");
        // One rounding per value a weight layer reads (resnet8's shortcut convolutions read
        // the value the block's first convolution reads: shared).
        let layers = m.nodes.iter().filter(|n| is_weight_layer(&n.op)).count();
        let rounds = g.nodes.len() - m.nodes.len();
        assert!(
            rounds > 0 && rounds < layers,
            "{rounds} rounds for {layers} layers"
        );
        for (i, n) in g.nodes.iter().enumerate() {
            if is_weight_layer(&n.op) {
                let src = g.node_inputs(i)[0];
                assert!(matches!(
                    g.nodes[src - 1].op,
                    Op::Math {
                        f: MathFn::RoundBf16
                    }
                ));
                assert!(wb.node(i)[0].iter().all(|&x| round(x) == x));
            }
        }
        // Same work: a rounding is a conversion.
        let (a, b) = (crate::cost::graph_cost(&m), crate::cost::graph_cost(&g));
        assert_eq!(a.total.fpo(), b.total.fpo());
        assert_eq!(a.total.params, b.total.params);
        // Close to fp32, not equal to it.
        let x = generate_inputs(&m, 2, 1, 0);
        let (y32, y16) = (run_reference(&m, &w, &x, 2), run_reference(&g, &wb, &x, 2));
        let d = crate::reference::diff(&y16, &y32);
        assert!(d.max_rel > 1e-5 && d.max_rel < 0.1, "{d:?}");
    }
}
