//! Forward and backward passes for the ops `mlp` and `lenet5` use: dense, conv2d (ungrouped,
//! any stride and padding), max pool, ReLU, flatten, and softmax with cross-entropy. Tensors are
//! ndarray arrays; products go through ndarray's `dot`.

use greenbench_core::graph::{ConvGeom, Graph, Op, PoolGeom};
use greenbench_core::weights::Weights;
use ndarray::{Array2, ArrayView2, Axis};

/// Why a graph cannot be trained here.
#[derive(Debug, thiserror::Error)]
#[error(
    "training supports sequential graphs of dense, conv2d (groups = 1), max_pool, relu, flatten and a final softmax; node `{node}` ({op}) is not one: {why}"
)]
pub struct Unsupported {
    pub node: String,
    pub op: String,
    pub why: String,
}

#[derive(Clone, Debug)]
enum Layer {
    Dense { k: usize, u: usize },
    Conv { g: ConvGeom },
    MaxPool { g: PoolGeom },
    Relu,
    Flatten,
}

/// A trainable sequential network over a greenbench-core graph (its last node a softmax).
#[derive(Clone, Debug)]
pub struct Net {
    layers: Vec<Layer>,
    /// Per layer: node index in the graph (for weights).
    nodes: Vec<usize>,
    pub in_len: usize,
    pub classes: usize,
}

/// What the forward pass keeps for the backward pass.
pub struct Tape {
    /// Per layer: its input (for conv: the im2col patches).
    inputs: Vec<Vec<f32>>,
    /// Per max-pool layer: the flat input index of each output's maximum.
    argmax: Vec<Vec<usize>>,
    pub probs: Vec<f32>,
}

/// Every (input run, column run) pair of `cin` values that im2col copies: the input offset
/// of tap (ky, kx) of output pixel (n, oy, ox) and its offset in the column matrix. Taps in
/// the padding are skipped (their columns stay zero). Shared by `im2col` and its adjoint.
fn for_each_tap(b: usize, g: &ConvGeom, mut f: impl FnMut(usize, usize)) {
    let kk = g.kh * g.kw * g.cin;
    for n in 0..b {
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let r = (n * g.ho + oy) * g.wo + ox;
                for ky in 0..g.kh {
                    let iy = (oy * g.sh + ky) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    for kx in 0..g.kw {
                        let ix = (ox * g.sw + kx) as isize - g.pad_left as isize;
                        if ix < 0 || ix >= g.w as isize {
                            continue;
                        }
                        let src = ((n * g.h + iy as usize) * g.w + ix as usize) * g.cin;
                        f(src, r * kk + (ky * g.kw + kx) * g.cin);
                    }
                }
            }
        }
    }
}

fn im2col(x: &[f32], b: usize, g: &ConvGeom) -> Vec<f32> {
    let mut cols = vec![0f32; b * g.ho * g.wo * g.kh * g.kw * g.cin];
    for_each_tap(b, g, |src, dst| {
        cols[dst..dst + g.cin].copy_from_slice(&x[src..src + g.cin])
    });
    cols
}

fn col2im(dcols: &[f32], b: usize, g: &ConvGeom) -> Vec<f32> {
    let mut dx = vec![0f32; b * g.h * g.w * g.cin];
    for_each_tap(b, g, |d, s| {
        for c in 0..g.cin {
            dx[d + c] += dcols[s + c];
        }
    });
    dx
}

fn view(v: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), v).expect("shape")
}

/// `a [m, k] . b [k, n]` (+ bias per column).
fn affine(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let mut y: Array2<f32> = view(a, m, k).dot(&view(w, k, n));
    if let Some(b) = bias {
        for mut row in y.rows_mut() {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
    y.into_raw_vec_and_offset().0
}

impl Net {
    /// Build from a graph (BN-free, sequential, last node softmax).
    pub fn new(g: &Graph) -> Result<Net, Unsupported> {
        let mut layers = Vec::new();
        let mut nodes = Vec::new();
        let n = g.nodes.len();
        for (i, node) in g.nodes.iter().enumerate() {
            let bad = |why: &str| Unsupported {
                node: node.name.clone(),
                op: node.op.kind().into(),
                why: why.into(),
            };
            if g.node_inputs(i) != [i] {
                return Err(bad("not fed by the previous node"));
            }
            let x = g.value_shape(i);
            let layer = match &node.op {
                Op::Dense { units, bias: true } if x.len() == 1 => {
                    Layer::Dense { k: x[0], u: *units }
                }
                Op::Conv2d {
                    groups: 1,
                    bias: true,
                    ..
                } => Layer::Conv { g: g.conv_geom(i) },
                Op::MaxPool { .. } if g.pool_geom(i).is_unpadded() => {
                    Layer::MaxPool { g: g.pool_geom(i) }
                }
                Op::Relu => Layer::Relu,
                Op::Flatten => Layer::Flatten,
                Op::Softmax if i == n - 1 && x.len() == 1 => continue,
                _ => {
                    return Err(bad(
                        "unsupported op or shape (dense needs a bias and a 1-D input)",
                    ));
                }
            };
            layers.push(layer);
            nodes.push(i);
        }
        if !matches!(g.nodes.last().map(|n| &n.op), Some(Op::Softmax)) {
            return Err(Unsupported {
                node: g.nodes.last().map_or(String::new(), |n| n.name.clone()),
                op: "last".into(),
                why: "the last node must be a softmax over classes".into(),
            });
        }
        Ok(Net {
            layers,
            nodes,
            in_len: g.input_len(),
            classes: g.output_len(),
        })
    }

    /// Forward `b` examples; returns the tape (with softmax probabilities).
    pub fn forward(&self, w: &Weights, x: &[f32], b: usize) -> Tape {
        let mut cur = x.to_vec();
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut argmax = Vec::new();
        for (layer, &node) in self.layers.iter().zip(&self.nodes) {
            let t = w.node(node);
            let next = match layer {
                Layer::Dense { k, u } => {
                    let y = affine(
                        &cur,
                        b,
                        *k,
                        t[0].as_slice().expect("std"),
                        *u,
                        t[1].as_slice(),
                    );
                    inputs.push(std::mem::take(&mut cur));
                    y
                }
                Layer::Conv { g } => {
                    let cols = im2col(&cur, b, g);
                    let kk = g.kh * g.kw * g.cin;
                    let y = affine(
                        &cols,
                        b * g.ho * g.wo,
                        kk,
                        t[0].as_slice().expect("std"),
                        g.cout,
                        t[1].as_slice(),
                    );
                    inputs.push(cols);
                    y
                }
                Layer::MaxPool { g } => {
                    let mut y = vec![f32::NEG_INFINITY; b * g.ho * g.wo * g.c];
                    let mut am = vec![0usize; y.len()];
                    for n in 0..b {
                        for oy in 0..g.ho {
                            for ox in 0..g.wo {
                                for c in 0..g.c {
                                    let o = ((n * g.ho + oy) * g.wo + ox) * g.c + c;
                                    for ky in 0..g.kh {
                                        for kx in 0..g.kw {
                                            let i =
                                                ((n * g.h + oy * g.sh + ky) * g.w + ox * g.sw + kx)
                                                    * g.c
                                                    + c;
                                            if cur[i] > y[o] {
                                                y[o] = cur[i];
                                                am[o] = i;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    argmax.push(am);
                    inputs.push(Vec::new());
                    y
                }
                Layer::Relu => {
                    let y = cur.iter().map(|v| v.max(0.0)).collect();
                    inputs.push(std::mem::take(&mut cur));
                    y
                }
                Layer::Flatten => {
                    inputs.push(Vec::new());
                    std::mem::take(&mut cur)
                }
            };
            cur = next;
        }
        // Softmax over classes.
        for row in cur.chunks_mut(self.classes) {
            let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut z = 0.0;
            row.iter_mut().for_each(|v| {
                *v = (*v - m).exp();
                z += *v;
            });
            row.iter_mut().for_each(|v| *v /= z);
        }
        Tape {
            inputs,
            argmax,
            probs: cur,
        }
    }

    /// Mean cross-entropy of the tape's probabilities against `labels`.
    pub fn loss(&self, tape: &Tape, labels: &[u8]) -> f32 {
        let b = labels.len();
        -labels
            .iter()
            .enumerate()
            .map(|(i, &l)| tape.probs[i * self.classes + l as usize].max(1e-30).ln())
            .sum::<f32>()
            / b as f32
    }

    /// Gradients of the mean cross-entropy, per node and tensor (same layout as `Weights`).
    pub fn backward(&self, w: &Weights, tape: &Tape, labels: &[u8]) -> Vec<Vec<Vec<f32>>> {
        let b = labels.len();
        let mut grads: Vec<Vec<Vec<f32>>> = w
            .per_node
            .iter()
            .map(|ts| ts.iter().map(|t| vec![0f32; t.len()]).collect())
            .collect();
        // d loss / d logits = (p - onehot) / b.
        let mut d: Vec<f32> = tape.probs.clone();
        for (i, &l) in labels.iter().enumerate() {
            d[i * self.classes + l as usize] -= 1.0;
        }
        d.iter_mut().for_each(|v| *v /= b as f32);
        let mut pool_i = self
            .layers
            .iter()
            .filter(|l| matches!(l, Layer::MaxPool { .. }))
            .count();
        for (li, (layer, &node)) in self.layers.iter().zip(&self.nodes).enumerate().rev() {
            let t = w.node(node);
            let first = li == 0;
            let x = &tape.inputs[li];
            d = match layer {
                Layer::Dense { k, u } => {
                    let dy = view(&d, b, *u);
                    grads[node][0] = view(x, b, *k).t().dot(&dy).into_raw_vec_and_offset().0;
                    grads[node][1] = dy.sum_axis(Axis(0)).into_raw_vec_and_offset().0;
                    if first {
                        Vec::new()
                    } else {
                        dy.dot(&view(t[0].as_slice().expect("std"), *k, *u).t())
                            .into_raw_vec_and_offset()
                            .0
                    }
                }
                Layer::Conv { g } => {
                    let rows = b * g.ho * g.wo;
                    let kk = g.kh * g.kw * g.cin;
                    let dy = view(&d, rows, g.cout);
                    grads[node][0] = view(x, rows, kk).t().dot(&dy).into_raw_vec_and_offset().0;
                    grads[node][1] = dy.sum_axis(Axis(0)).into_raw_vec_and_offset().0;
                    if first {
                        Vec::new()
                    } else {
                        let dcols = dy.dot(&view(t[0].as_slice().expect("std"), kk, g.cout).t());
                        col2im(dcols.as_slice().expect("std"), b, g)
                    }
                }
                Layer::MaxPool { g } => {
                    pool_i -= 1;
                    let mut dx = vec![0f32; b * g.h * g.w * g.c];
                    for (o, &i) in tape.argmax[pool_i].iter().enumerate() {
                        dx[i] += d[o];
                    }
                    dx
                }
                Layer::Relu => d
                    .iter()
                    .zip(x)
                    .map(|(g, &v)| if v > 0.0 { *g } else { 0.0 })
                    .collect(),
                Layer::Flatten => d,
            };
        }
        grads
    }
}
