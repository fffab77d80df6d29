//! What the planner may fuse into one step, read off the graph: a following activation into
//! a convolution or dense layer, chains of batch norms (and their ReLU), a residual add
//! into the convolution before it; and the zero borders values are stored with so that the
//! convolutions reading them need no padded copy.

use crate::kernels::{Act, Relu};
use greenbench_core::graph::{Graph, Op};

/// The activation a conv or dense node `i` may apply in its epilogue, skipping the next node:
/// a ReLU, a Clip to `[0, max]` (ReLU6), an h-swish, a sigmoid or a GELU (tanh form) that is
/// its output's only consumer.
pub(crate) fn relu_fusable(g: &Graph, i: usize) -> Relu {
    let v = i + 1;
    let next = g.nodes.get(i + 1)?;
    if !matches!(g.nodes[i].op, Op::Conv2d { .. } | Op::Dense { .. })
        || g.node_inputs(i + 1) != [v]
        || g.consumers(v) != 1
    {
        return None;
    }
    match next.op {
        Op::Relu => Some(Act::RELU),
        Op::Clip { min, max } if min == 0.0 && max > 0.0 => Some(Act::Clamp(max)),
        Op::HardSwish => Some(Act::HardSwish),
        Op::Sigmoid => Some(Act::Sigmoid),
        Op::Gelu => Some(Act::Gelu),
        _ => None,
    }
}

/// Whether the node after node `last` is a 2x2 stride-2 max pool without padding reading
/// only `last`'s output, its only reader: a pool a convolution ending at `last` (itself, or
/// its fused activation) may apply as it stores (`direct::DirectPlan::with_max_pool2`).
pub(crate) fn max_pool2_after(g: &Graph, last: usize) -> bool {
    max_pool_after(g, last)
        && matches!(
            g.nodes[last + 1].op,
            Op::MaxPool {
                kernel: [2, 2],
                stride: [2, 2],
                padding: greenbench_core::graph::Padding::Valid,
                ..
            }
        )
}

/// Whether the node after node `last` is a max pool (any window, stride and padding)
/// reading only `last`'s output, its only reader: a pool the fp32 tile's convolution ending
/// at `last` may run band by band on its rows (`direct::DirectPlan::with_max_pool`).
pub(crate) fn max_pool_after(g: &Graph, last: usize) -> bool {
    let v = last + 1;
    g.nodes.get(v).is_some_and(|next| {
        g.node_inputs(v) == [v] && g.consumers(v) == 1 && matches!(next.op, Op::MaxPool { .. })
    })
}

/// For batch norm node `i`: how many batch norms follow it in a chain (each the only
/// reader of the value before it), and whether a ReLU, the only reader of the chain's
/// output, follows them.
pub(crate) fn bn_chain(g: &Graph, i: usize) -> (usize, bool) {
    let only_reader =
        |j: usize| g.nodes.get(j).is_some() && g.node_inputs(j) == [j] && g.consumers(j) == 1;
    let mut more = 0;
    while only_reader(i + more + 1) && matches!(g.nodes[i + more + 1].op, Op::BatchNorm { .. }) {
        more += 1;
    }
    let last = i + more;
    let relu = only_reader(last + 1) && matches!(g.nodes[last + 1].op, Op::Relu);
    (more, relu)
}

/// Whether node `i`, an ungrouped or grouped-pointwise convolution, is followed by an Add
/// that is its output's only consumer (a residual connection): then `(the other operand's
/// value, whether a ReLU that is the sum's only consumer follows)`, and the direct kernels
/// add the residual and apply the ReLU in the convolution's epilogue.
pub(crate) fn residual_fusable(g: &Graph, i: usize) -> Option<(usize, bool)> {
    let v = i + 1;
    if !matches!(g.nodes[i].op, Op::Conv2d { .. })
        || !(g.conv_geom(i).groups == 1 || g.conv_geom(i).is_grouped_pointwise())
    {
        return None;
    }
    if !matches!(g.nodes.get(i + 1)?.op, Op::Add) || g.consumers(v) != 1 {
        return None;
    }
    let ins = g.node_inputs(i + 1);
    let skip = match ins {
        [a, b] if *a == v && *b != v => *b,
        [a, b] if *b == v && *a != v => *a,
        _ => return None,
    };
    let relu = g.nodes.get(i + 2).is_some_and(|n| matches!(n.op, Op::Relu))
        && g.node_inputs(i + 2) == [v + 1]
        && g.consumers(v + 1) == 1;
    Some((skip, relu))
}

/// Per value: the zero border (top, bottom, left, right) to store it with, so that the
/// convolutions reading it need no padded copy. Only for values whose every consumer is a
/// convolution the direct kernels run (ungrouped or depthwise) with the same non-zero
/// padding; the producer is checked by the caller (only convolutions, and the loading of a
/// 3-D input, write borders).
pub(crate) fn wanted_borders(g: &Graph) -> Vec<Option<[usize; 4]>> {
    let nvals = g.nodes.len() + 1;
    let mut want = vec![None; nvals];
    for (u, slot) in want.iter_mut().enumerate() {
        let mut border = None;
        let mut ok = false;
        for j in 0..g.nodes.len() {
            if !g.node_inputs(j).contains(&u) {
                continue;
            }
            // A residual fused into the convolution before it reads any layout.
            if j > 0 && residual_fusable(g, j - 1).is_some_and(|(skip, _)| skip == u) {
                continue;
            }
            let this = match g.nodes[j].op {
                Op::Conv2d { .. } => {
                    let c = g.conv_geom(j);
                    let b = [c.pad_top, c.pad_bottom, c.pad_left, c.pad_right];
                    ((c.groups == 1 || c.is_depthwise()) && b != [0; 4] && g.node_inputs(j) == [u])
                        .then_some(b)
                }
                _ => None,
            };
            match (this, border) {
                (Some(b), None) if !ok => {
                    border = Some(b);
                    ok = true;
                }
                (Some(b), Some(prev)) if b == prev => {}
                _ => {
                    ok = false;
                    border = None;
                    break;
                }
            }
        }
        *slot = if ok { border } else { None };
    }
    want
}
