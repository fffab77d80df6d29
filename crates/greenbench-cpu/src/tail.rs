//! A graph's *dense tail*: the chain of dense layers (and the row-wise steps between them)
//! that ends a convolutional network, cut off so that a split batch's worker runs it once
//! over all of its examples instead of once per L2-sized sub-batch (`split`).
//!
//! Why: a sub-batch is sized by the largest activation (lenet5's first convolution: 8
//! examples of 22 KB), so the dense layers after the pooling ran 4 to 8 rows at a time. Each
//! such run reads all of the layer's weights (lenet5's 400 -> 120: 192 KB in fp32, 96 KB in
//! bf16) for those few rows, and a bf16 layer of fewer than 8 rows is too small for AMX tiles
//! and falls back to `vdpbf16ps`, which this Xeon runs at a third of its FMA rate. Measured
//! before the cut (`greenbench inspect lenet5 --time --batch 32 --threads 1`, the dev VM as an
//! Intel Xeon with AMX): fc1 1.17-1.24 us an example in bf16, 0.63 in fp32; with the whole
//! batch as one sub-batch 0.15 and 0.55 (docs/BF16.md).

use greenbench_core::graph::{Graph, InputSpec, Op};
use greenbench_core::weights::Weights;

/// Most activation bytes per worker the tail may hold at once (its largest step's input and
/// output, times the worker's examples): the sub-batch budget's size (`split`), so the tail
/// stays in L2 as the sub-batches do.
const TAIL_BYTES: usize = 256 * 1024;

/// Whether node `i` may be in a tail: a dense layer, or a step that works on each row alone
/// (activations, softmax, elementwise math, bf16 rounding) or only renames (flatten, reshape).
fn row_wise(g: &Graph, i: usize) -> bool {
    matches!(
        g.nodes[i].op,
        Op::Dense { .. }
            | Op::Flatten
            | Op::Reshape { .. }
            | Op::Relu
            | Op::Gelu
            | Op::GeluErf
            | Op::Softmax
            | Op::Sigmoid
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Clip { .. }
            | Op::Tanh
            | Op::LeakyRelu { .. }
            | Op::Math { .. }
    )
}

/// The first node of `g`'s dense tail, when it has one worth cutting: the longest run of
/// [`row_wise`] nodes at the graph's end, each reading only the node before it, holding at
/// least one dense layer, after a node that is not row-wise (the head's last), and whose activations for
/// `examples` rows fit [`TAIL_BYTES`].
pub(crate) fn start(g: &Graph, examples: usize) -> Option<usize> {
    let n = g.nodes.len();
    let mut t = n;
    while t > 0 && row_wise(g, t - 1) && g.node_inputs(t - 1) == [t - 1] {
        t -= 1;
    }
    let dense = (t..n).any(|i| matches!(g.nodes[i].op, Op::Dense { .. }));
    let bytes = example_bytes(g, t..n) * examples;
    (t > 0 && t < n && dense && bytes <= TAIL_BYTES).then_some(t)
}

/// The largest activation bytes one example's step among `nodes` holds at once (its first
/// input and its output, fp32): what the split's sub-batch and the tail are sized by.
pub(crate) fn example_bytes(g: &Graph, nodes: std::ops::Range<usize>) -> usize {
    nodes
        .map(|i| {
            let ins: usize = g.value_shape(g.node_inputs(i)[0]).iter().product();
            ins + g.out_shape(i).iter().product::<usize>()
        })
        .max()
        .unwrap_or(0)
        * std::mem::size_of::<f32>()
}

/// `g` cut before node `t`: the head (nodes `..t`, its output value `t`) and the tail (nodes
/// `t..`, reading that value as its input), each with its nodes' weights.
pub(crate) fn cut(g: &Graph, w: &Weights, t: usize) -> Result<[(Graph, Weights); 2], String> {
    let head = Graph::new(g.name.clone(), g.input.clone(), g.nodes[..t].to_vec())
        .map_err(|e| format!("the head of `{}` before node {t}: {e}", g.name))?;
    // Every tail node reads the node before it (`start`): with no named inputs the first
    // reads the tail's input and each later one its predecessor.
    let nodes = g.nodes[t..]
        .iter()
        .map(|node| {
            let mut node = node.clone();
            node.inputs.clear();
            node
        })
        .collect();
    let input = InputSpec::new(g.value_shape(t).clone(), None);
    let tail = Graph::new(g.name.clone(), input, nodes)
        .map_err(|e| format!("the tail of `{}` from node {t}: {e}", g.name))?;
    let part = |r: std::ops::Range<usize>| Weights {
        per_node: w.per_node[r].to_vec(),
    };
    Ok([(head, part(0..t)), (tail, part(t..g.nodes.len()))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenbench_core::reference::run_reference;
    use greenbench_core::weights::{generate_inputs, generate_weights};
    use greenbench_core::zoo::zoo_model;

    fn graph(name: &str) -> Graph {
        zoo_model(name).expect("a zoo model")
    }

    #[test]
    fn lenet5_tail_is_its_dense_layers() {
        let g = graph("lenet5");
        let t = start(&g, 16).expect("lenet5 ends in dense layers");
        let names: Vec<&str> = g.nodes[t..].iter().map(|n| n.name.as_str()).collect();
        assert!(matches!(g.nodes[t - 1].op, Op::MaxPool { .. }), "{names:?}");
        assert!(
            names.contains(&"fc1") && names.contains(&"fc3"),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with("conv")), "{names:?}");
    }

    #[test]
    fn no_tail_where_the_graph_is_all_dense_or_too_wide() {
        // mlp: every node is row-wise, so there is no head to cut it from.
        assert_eq!(start(&graph("mlp"), 16), None);
        // A tail bigger than the budget at this many rows stays in the sub-batches.
        let g = graph("lenet5");
        assert_eq!(start(&g, 1 << 20), None);
    }

    #[test]
    fn cut_graphs_compose_to_the_whole() {
        for name in ["lenet5", "resnet8", "ds-cnn"] {
            let g = graph(name);
            let Some(t) = start(&g, 4) else {
                panic!("{name}: no tail")
            };
            let w = generate_weights(&g, 7);
            let [(hg, hw), (tg, tw)] = cut(&g, &w, t).unwrap();
            assert_eq!(hg.output_len(), tg.input_len(), "{name}");
            let x = generate_inputs(&g, 2, 7, 0);
            let whole = run_reference(&g, &w, &x, 2);
            let mid = run_reference(&hg, &hw, &x, 2);
            let out = run_reference(&tg, &tw, &mid, 2);
            assert_eq!(out, whole, "{name}: head then tail is the graph");
        }
    }
}
