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

/// Fold every batch norm whose input is a conv2d or dense used only by that batch norm.
/// Other batch norms stay (and are counted as 2 FPO per element).
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
    for (i, node) in g.nodes.iter().enumerate() {
        let src = g.node_inputs(i)[0];
        let foldable = matches!(node.op, Op::BatchNorm { .. })
            && src > 0
            && matches!(g.nodes[src - 1].op, Op::Conv2d { .. } | Op::Dense { .. })
            && g.consumers(src) == 1;
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
