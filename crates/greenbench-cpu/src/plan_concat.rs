//! Concatenations along channels that need no copy: convolutions that write their output
//! straight into the concatenation's buffer, and running concatenations (DenseNet's dense
//! blocks) that share one buffer each new layer appends its channels to.

use crate::plan_fuse::{relu_fusable, residual_fusable};
use greenbench_core::graph::{Graph, Op};

/// A running concatenation (a DenseNet dense block): concatenations `nodes`, each of the
/// one before it (the first: of `base`) and one convolution's new channels. All of them
/// live in the last one's buffer of `width` channels per pixel: each earlier one is its
/// first channels (read with a pixel stride of `width`), each convolution writes its
/// channels in place, and `base` is copied in once, where the first concatenation was.
pub(crate) struct Chain {
    pub(crate) nodes: Vec<usize>,
    /// The value the block starts from, and its channels.
    pub(crate) base: usize,
    pub(crate) base_channels: usize,
    pub(crate) width: usize,
}

/// The concatenations of a graph that need no copy of their inputs.
pub(crate) struct Concats {
    /// Per node: where a convolution writes its output (after its fused activation):
    /// `(the concatenation whose buffer it is, the output's first channel in it, that
    /// buffer's channels)`.
    pub(crate) slots: Vec<Option<(usize, usize, usize)>>,
    /// Per node: the chain a concatenation belongs to.
    pub(crate) chain_of: Vec<Option<usize>>,
    pub(crate) chains: Vec<Chain>,
    /// Per value: the pixel stride it is read with when it lives in a chain's wider buffer.
    pub(crate) stride: Vec<Option<usize>>,
}

impl Concats {
    /// No concatenation written in place (the portable path).
    pub(crate) fn none(g: &Graph) -> Concats {
        Concats {
            slots: vec![None; g.nodes.len()],
            chain_of: vec![None; g.nodes.len()],
            chains: Vec::new(),
            stride: vec![None; g.nodes.len() + 1],
        }
    }

    /// The slots and chains of `g`, whose values are stored with the borders `want_border`
    /// (see `plan_fuse::wanted_borders`; chains keep to values stored without one).
    pub(crate) fn of(g: &Graph, want_border: &[Option<[usize; 4]>]) -> Concats {
        let mut c = Concats {
            slots: concat_slots(g),
            ..Concats::none(g)
        };
        let slotted: Vec<bool> = (0..g.nodes.len())
            .map(|j| c.slots.iter().flatten().any(|s| s.0 == j))
            .collect();
        // A link: a concatenation along channels of 3-D images of two values, the second
        // a convolution's output it may take in place: (first input, the convolution).
        let link = |j: usize| -> Option<(usize, usize)> {
            let Op::Concat { axis: 2 } = g.nodes[j].op else {
                return None;
            };
            let ins = g.node_inputs(j);
            if slotted[j] || g.out_shape(j).len() != 3 || ins.len() != 2 {
                return None;
            }
            let conv = slot_producer(g, ins, ins[1])?;
            (ins[0] != ins[1] && want_border[ins[0]].is_none()).then_some((ins[0], conv))
        };
        // The link that continues a chain ending with link `j`: the only concatenation
        // reading j's output, as its first input, while every other reader is a batch norm
        // (which reads it with a stride).
        let next = |j: usize| -> Option<usize> {
            let v = j + 1;
            let mut found = None;
            for (k, node) in g.nodes.iter().enumerate() {
                let ins = g.node_inputs(k);
                if !ins.contains(&v) {
                    continue;
                }
                match node.op {
                    Op::BatchNorm { .. } if ins == [v] => {}
                    Op::Concat { .. } if found.is_none() && link(k).is_some_and(|l| l.0 == v) => {
                        found = Some(k)
                    }
                    _ => return None,
                }
            }
            found
        };
        let mut continued = vec![false; g.nodes.len()];
        for j in 0..g.nodes.len() {
            if let Some(k) = link(j).and_then(|_| next(j)) {
                continued[k] = true;
            }
        }
        for (start, &cont) in continued.iter().enumerate() {
            let Some((base, _)) = link(start).filter(|_| !cont) else {
                continue;
            };
            let mut nodes = vec![start];
            while let Some(k) = next(*nodes.last().expect("non-empty")) {
                nodes.push(k);
            }
            let last = *nodes.last().expect("non-empty");
            if want_border[last + 1].is_some() {
                continue;
            }
            let width = g.out_shape(last)[2];
            let index = c.chains.len();
            for &j in &nodes {
                let (first, conv) = link(j).expect("chains are of links");
                c.slots[conv] = Some((last, g.value_shape(first)[2], width));
                c.chain_of[j] = Some(index);
                if j != last {
                    c.stride[j + 1] = Some(width);
                }
            }
            c.chains.push(Chain {
                nodes,
                base,
                base_channels: g.value_shape(base)[2],
                width,
            });
        }
        c
    }
}

/// The convolution producing value `u`, one input of a concatenation with inputs `ins`,
/// that may write it straight into the concatenation's buffer: an ungrouped convolution
/// with no fused residual whose output (after any fused activation) only the
/// concatenation reads, once.
fn slot_producer(g: &Graph, ins: &[usize], u: usize) -> Option<usize> {
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
}

/// Per node: where an ungrouped convolution writes its output (after its fused activation)
/// when that output's only reader is a concatenation along channels of 3-D images whose
/// every input is such a convolution: `(the concatenation's node, the output's first
/// channel in it, the concatenation's channels)`. Those convolutions then store straight
/// into the concatenation's buffer and the concatenation is no step (no copy: SqueezeNet's
/// fire modules copied every expand output once more).
fn concat_slots(g: &Graph) -> Vec<Option<(usize, usize, usize)>> {
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
        let producers: Option<Vec<usize>> = ins.iter().map(|&u| slot_producer(g, ins, u)).collect();
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
