//! Concatenations along channels that need no copy: convolutions that write their output
//! straight into the concatenation's buffer, and running concatenations (DenseNet's dense
//! blocks) that share one buffer each new layer appends its channels to.

use crate::plan_fuse::{relu_fusable, residual_fusable};
use greenbench_core::graph::{Graph, Op};

/// Per node: where an ungrouped convolution writes its output (after its fused activation)
/// when that output's only reader is a concatenation along channels of 3-D images whose
/// every input is such a convolution: `(the concatenation's node, the output's first
/// channel in it, the concatenation's channels)`. Those convolutions then store straight
/// into the concatenation's buffer and the concatenation is no step (no copy: SqueezeNet's
/// fire modules and DenseNet's blocks copied every expand output once more).
pub(crate) fn concat_slots(g: &Graph) -> Vec<Option<(usize, usize, usize)>> {
    let mut slots = vec![None; g.nodes.len()];
    for (j, node) in g.nodes.iter().enumerate() {
        let Op::Concat { axis } = node.op else {
            continue;
        };
        let out = g.out_shape(j);
        if out.len() != 3 || axis != 2 {
            continue;
        }
        let ins = g.node_inputs(j);
        // The convolution producing value u, with u its output after any fused activation.
        let producer = |u: usize| -> Option<usize> {
            let plain = |c: usize| {
                matches!(g.nodes[c].op, Op::Conv2d { .. })
                    && g.conv_geom(c).groups == 1
                    && residual_fusable(g, c).is_none()
            };
            if u == 0 || g.consumers(u) != 1 || ins.iter().filter(|&&x| x == u).count() != 1 {
                return None;
            }
            let c = u - 1;
            if plain(c) && relu_fusable(g, c).is_none() {
                return Some(c);
            }
            (c >= 1 && plain(c - 1) && relu_fusable(g, c - 1).is_some()).then(|| c - 1)
        };
        let producers: Option<Vec<usize>> = ins.iter().map(|&u| producer(u)).collect();
        let Some(producers) = producers else {
            continue;
        };
        let mut offset = 0;
        for (&u, c) in ins.iter().zip(producers) {
            slots[c] = Some((j, offset, out[2]));
            offset += g.value_shape(u)[2];
        }
    }
    slots
}
