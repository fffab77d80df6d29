//! Graph pass: fold inference batch norm into the preceding conv2d / dense.
//!
//! Every backend runs the folded graph, so a model has one FPO count. A folded node keeps a
//! note (`folded: ["batch_norm"]`) that the per-layer breakdown prints.

use crate::graph::{Graph, GraphError, Node, Op};
use crate::weights::Weights;
use ndarray::{ArrayD, Axis, IxDyn};

/// Inference batch norm as a per-channel affine map `x * scale + shift`, from its tensors
/// (gamma, beta, mean, var): scale = gamma / sqrt(var + eps), shift = beta - mean * scale.
/// Folding and every backend that runs an unfolded batch norm use this one formula.
pub fn bn_scale_shift(t: &[crate::weights::Tensor], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let (gamma, beta, mean, var) = (&t[0], &t[1], &t[2], &t[3]);
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var.iter())
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean.iter())
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// Fold every batch norm whose input is a conv2d or dense used only by that batch norm, or a
/// batch norm folded so, used only by this one (a chain of them composes into the layer: the
/// onnx package's DenseNet-121 has two after its first convolution). Other batch norms stay
/// (and are counted as 2 FPO per element).
pub fn fold_batch_norm(g: &Graph, w: &Weights) -> Result<(Graph, Weights), GraphError> {
    let mut nodes: Vec<Node> = Vec::with_capacity(g.nodes.len());
    let mut tensors: Vec<Vec<ArrayD<f32>>> = Vec::with_capacity(g.nodes.len());
    // Old node index -> name of the node that now produces its value.
    let mut renamed: Vec<String> = Vec::with_capacity(g.nodes.len());
    let name_of = |v: usize, renamed: &[String]| -> String {
        if v == 0 {
            "input".to_string()
        } else {
            renamed[v - 1].clone()
        }
    };
    // Per old node: whether its value is a conv2d's or dense layer's output (a batch norm
    // folded into one included).
    let mut layer_out: Vec<bool> = Vec::with_capacity(g.nodes.len());
    for (i, node) in g.nodes.iter().enumerate() {
        let src = g.node_inputs(i)[0];
        let foldable = matches!(node.op, Op::BatchNorm { .. })
            && src > 0
            && layer_out[src - 1]
            && g.consumers(src) == 1;
        layer_out.push(foldable || matches!(node.op, Op::Conv2d { .. } | Op::Dense { .. }));
        if let (true, Op::BatchNorm { eps }) = (foldable, &node.op) {
            let target = &renamed[src - 1];
            let pos = nodes
                .iter()
                .position(|n| &n.name == target)
                .expect("producer was emitted");
            let bn = w.node(i);
            let (scale, _) = bn_scale_shift(bn, *eps);
            let t = &mut tensors[pos];
            let kernel = &mut t[0];
            let last = kernel.ndim() - 1;
            for mut lane in kernel.lanes_mut(Axis(last)) {
                for (x, s) in lane.iter_mut().zip(&scale) {
                    *x *= s;
                }
            }
            let c = scale.len();
            let old_bias: Vec<f32> = match t.get(1) {
                Some(b) => b.iter().copied().collect(),
                None => vec![0.0; c],
            };
            let (beta, mean) = (&bn[1], &bn[2]);
            let bias: Vec<f32> = (0..c)
                .map(|k| (old_bias[k] - mean[k]) * scale[k] + beta[k])
                .collect();
            let bias = ArrayD::from_shape_vec(IxDyn(&[c]), bias).expect("shape");
            if t.len() == 2 {
                t[1] = bias;
            } else {
                t.push(bias);
                match &mut nodes[pos].op {
                    Op::Conv2d { bias, .. } | Op::Dense { bias, .. } => *bias = true,
                    _ => unreachable!("foldable producers are conv2d or dense"),
                }
            }
            nodes[pos].folded.push("batch_norm".into());
            renamed.push(target.clone());
            continue;
        }
        let mut n = node.clone();
        n.inputs = g
            .node_inputs(i)
            .iter()
            .map(|&v| name_of(v, &renamed))
            .collect();
        renamed.push(n.name.clone());
        nodes.push(n);
        tensors.push(w.node(i).to_vec());
    }
    let folded = Graph::new(g.name.clone(), g.input.clone(), nodes)?;
    Ok((folded, Weights { per_node: tensors }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{InputSpec, Padding};
    use crate::reference::run_reference;
    use crate::weights::{generate_inputs, generate_weights};

    /// A chain of batch norms after a convolution (and after a dense layer) folds whole into
    /// it, with the outputs kept; a batch norm whose input has another reader stays.
    #[test]
    fn batch_norm_chains_fold_into_the_layer() {
        let bn = || Op::BatchNorm { eps: 1e-5 };
        let conv = Op::Conv2d {
            filters: 5,
            kernel: [3, 3],
            stride: [1, 1],
            padding: Padding::Same,
            groups: 1,
            bias: false,
        };
        let nodes = vec![
            Node::new("conv", conv),
            Node::new("bn1", bn()),
            Node::new("bn2", bn()),
            Node::new("bn3", bn()),
            Node::new("relu", Op::Relu),
            Node::new("flat", Op::Flatten),
            Node::new(
                "fc",
                Op::Dense {
                    units: 4,
                    bias: true,
                },
            ),
            Node::new("bn4", bn()),
            Node::new("bn5", bn()),
            // Read by bn6 and by the add: stays.
            Node::new("bn6", bn()),
            Node::with_inputs("add", Op::Add, &["bn5", "bn6"]),
        ];
        let input = InputSpec {
            shape: vec![6, 6, 2],
            token_vocab: None,
            parts: vec![],
        };
        let g = Graph::new("chain", input, nodes).unwrap();
        let w = generate_weights(&g, 3);
        let (fg, fw) = fold_batch_norm(&g, &w).unwrap();
        let names: Vec<&str> = fg.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["conv", "relu", "flat", "fc", "bn6", "add"]);
        assert_eq!(fg.nodes[0].folded.len(), 3);
        assert_eq!(fg.nodes[3].folded.len(), 2);
        let x = generate_inputs(&g, 2, 3, 0);
        let (a, b) = (run_reference(&g, &w, &x, 2), run_reference(&fg, &fw, &x, 2));
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-4 * scale, "{p} vs {q}");
        }
    }
}
