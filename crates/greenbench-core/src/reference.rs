//! A plain-loop reference interpreter: one example at a time, the textbook loop of every op,
//! f64 accumulation. Slow on purpose and obviously right; the fast backends are tested
//! against it (property tests of every kernel, parity tests of every model).

use crate::graph::{Graph, MatMulGeom, Op, broadcast_strides};
use crate::weights::Weights;

/// Run `g` on `batch` examples (`input` batch-major, flattened). Returns the flattened output.
pub fn run_reference(g: &Graph, w: &Weights, input: &[f32], batch: usize) -> Vec<f32> {
    assert_eq!(input.len(), batch * g.input_len(), "input length");
    let mut out = Vec::with_capacity(batch * g.output_len());
    for b in 0..batch {
        let x = &input[b * g.input_len()..(b + 1) * g.input_len()];
        out.extend(run_one(g, w, x));
    }
    out
}

fn run_one(g: &Graph, w: &Weights, x: &[f32]) -> Vec<f32> {
    run_values(g, w, x).pop().expect("graph has nodes")
}

/// Every value of one example (`x`): the input, then each node's output, in node order.
/// Calibration reads the ranges of these.
pub fn run_values(g: &Graph, w: &Weights, x: &[f32]) -> Vec<Vec<f32>> {
    let mut vals: Vec<Vec<f32>> = vec![x.to_vec()];
    for i in 0..g.nodes.len() {
        let y = eval_node(g, w, i, &vals);
        vals.push(y);
    }
    vals
}

/// Each element of an output of shape `out`, as `f(offset in a, offset in b)` of two operands
/// of shapes `a`, `b` broadcast to it (numpy's rule), in row-major order.
fn broadcast_map(
    out: &[usize],
    a: &[usize],
    b: &[usize],
    f: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    let (sa, sb) = (broadcast_strides(out, a), broadcast_strides(out, b));
    (0..out.iter().product::<usize>())
        .map(|j| {
            let (mut pa, mut pb, mut rest) = (0, 0, j);
            for ax in (0..out.len()).rev() {
                let ix = rest % out[ax];
                rest /= out[ax];
                pa += ix * sa[ax];
                pb += ix * sb[ax];
            }
            f(pa, pb)
        })
        .collect()
}

/// Node `i`'s output for one example, its inputs read from `vals` (indexed by value id: 0 is
/// the graph input, `j + 1` node `j`'s output).
pub fn eval_node(g: &Graph, w: &Weights, i: usize, vals: &[Vec<f32>]) -> Vec<f32> {
    {
        let ins = g.node_inputs(i);
        let a = &vals[ins[0]];
        let in_shape = g.value_shape(ins[0]);
        let last = *in_shape.last().expect("non-empty");
        let t = w.node(i);
        let y: Vec<f32> = match &g.nodes[i].op {
            Op::Conv2d { .. } => {
                let c = g.conv_geom(i);
                let k = t[0].as_slice().expect("standard layout");
                let cin_g = c.cin / c.groups;
                let cout_g = c.cout / c.groups;
                let mut y = vec![0f32; c.ho * c.wo * c.cout];
                for oy in 0..c.ho {
                    for ox in 0..c.wo {
                        for co in 0..c.cout {
                            let grp = co / cout_g;
                            let mut acc = t.get(1).map_or(0.0, |b| b[co] as f64);
                            for ky in 0..c.kh {
                                for kx in 0..c.kw {
                                    let iy = (oy * c.sh + ky) as isize - c.pad_top as isize;
                                    let ix = (ox * c.sw + kx) as isize - c.pad_left as isize;
                                    if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize
                                    {
                                        continue;
                                    }
                                    for ci in 0..cin_g {
                                        let xv = a[(iy as usize * c.w + ix as usize) * c.cin
                                            + grp * cin_g
                                            + ci];
                                        let wv = k[((ky * c.kw + kx) * cin_g + ci) * c.cout + co];
                                        acc += xv as f64 * wv as f64;
                                    }
                                }
                            }
                            y[(oy * c.wo + ox) * c.cout + co] = acc as f32;
                        }
                    }
                }
                y
            }
            Op::Dense { units, .. } => {
                let k = t[0].as_slice().expect("standard layout");
                let rows = a.len() / last;
                let mut y = vec![0f32; rows * units];
                for r in 0..rows {
                    for u in 0..*units {
                        let mut acc = t.get(1).map_or(0.0, |b| b[u] as f64);
                        for j in 0..last {
                            acc += a[r * last + j] as f64 * k[j * units + u] as f64;
                        }
                        y[r * units + u] = acc as f32;
                    }
                }
                y
            }
            Op::BatchNorm { eps } => a
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let c = j % last;
                    (v - t[2][c]) / (t[3][c] + eps).sqrt() * t[0][c] + t[1][c]
                })
                .collect(),
            Op::Relu => a.iter().map(|&v| v.max(0.0)).collect(),
            Op::Gelu => a.iter().map(|&v| gelu(v as f64) as f32).collect(),
            Op::Softmax => {
                let mut y = a.clone();
                for row in y.chunks_mut(last) {
                    let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                    let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                    for v in row.iter_mut() {
                        *v = ((*v as f64 - m).exp() / s) as f32;
                    }
                }
                y
            }
            Op::LayerNorm { eps } => {
                let mut y = a.clone();
                for row in y.chunks_mut(last) {
                    let n = last as f64;
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
                    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                    let inv = 1.0 / (var + *eps as f64).sqrt();
                    for (c, v) in row.iter_mut().enumerate() {
                        *v = ((*v as f64 - mean) * inv * t[0][c] as f64 + t[1][c] as f64) as f32;
                    }
                }
                y
            }
            op @ (Op::MaxPool { .. } | Op::AvgPool { .. }) => {
                let p = g.pool_geom(i);
                let is_max = matches!(op, Op::MaxPool { .. });
                let mut y = vec![0f32; p.ho * p.wo * p.c];
                for oy in 0..p.ho {
                    for ox in 0..p.wo {
                        for c in 0..p.c {
                            let mut m = f64::NEG_INFINITY;
                            let mut s = 0f64;
                            // The window clipped to the image: padding never wins a max
                            // and adds nothing to a sum.
                            for iy in p.rows(oy) {
                                for ix in p.cols(ox) {
                                    let v = a[(iy * p.w + ix) * p.c + c] as f64;
                                    m = m.max(v);
                                    s += v;
                                }
                            }
                            y[(oy * p.wo + ox) * p.c + c] = if is_max {
                                m as f32
                            } else {
                                (s / p.divisor(oy, ox) as f64) as f32
                            };
                        }
                    }
                }
                y
            }
            Op::GlobalAvgPool => {
                let rows = a.len() / last;
                (0..last)
                    .map(|c| {
                        ((0..rows).map(|r| a[r * last + c] as f64).sum::<f64>() / rows as f64)
                            as f32
                    })
                    .collect()
            }
            Op::Flatten | Op::Reshape { .. } => a.clone(),
            Op::Input { index } => {
                let at = g.input.part_offset(*index);
                a[at..at + g.input.parts[*index].len()].to_vec()
            }
            Op::Pack { .. } => ins.iter().flat_map(|&v| vals[v].iter().copied()).collect(),
            Op::Constant { .. } => t[0].iter().copied().collect(),
            Op::Binary { op } => {
                let b = &vals[ins[1]];
                broadcast_map(g.out_shape(i), in_shape, g.value_shape(ins[1]), |pa, pb| {
                    op.apply64(a[pa] as f64, b[pb] as f64) as f32
                })
            }
            Op::BinaryConst { op, shape, left } => {
                let c = t[0].as_slice().expect("standard layout");
                broadcast_map(g.out_shape(i), in_shape, shape, |pa, pc| {
                    let (x, k) = (a[pa] as f64, c[pc] as f64);
                    let y = if *left {
                        op.apply64(k, x)
                    } else {
                        op.apply64(x, k)
                    };
                    y as f32
                })
            }
            Op::MatMul => {
                let b = &vals[ins[1]];
                let (m, _) = MatMulGeom::of(in_shape, g.value_shape(ins[1])).expect("validated");
                let mut y = vec![0f32; m.mats * m.m * m.n];
                for t in 0..m.mats {
                    for r in 0..m.m {
                        for c in 0..m.n {
                            let acc: f64 = (0..m.k)
                                .map(|j| {
                                    a[t * m.a_step + r * m.k + j] as f64
                                        * b[t * m.b_step + j * m.n + c] as f64
                                })
                                .sum();
                            y[(t * m.m + r) * m.n + c] = acc as f32;
                        }
                    }
                }
                y
            }
            Op::Transpose { perm } => {
                let out = g.out_shape(i);
                // Row-major strides of the input, read along each output axis.
                let mut st = vec![1; in_shape.len()];
                for ax in (0..in_shape.len().saturating_sub(1)).rev() {
                    st[ax] = st[ax + 1] * in_shape[ax + 1];
                }
                (0..a.len())
                    .map(|j| {
                        let (mut p, mut rest) = (0, j);
                        for ax in (0..out.len()).rev() {
                            p += (rest % out[ax]) * st[perm[ax]];
                            rest /= out[ax];
                        }
                        a[p]
                    })
                    .collect()
            }
            Op::Add => a.iter().zip(&vals[ins[1]]).map(|(p, q)| p + q).collect(),
            op @ crate::unary_ops!() => {
                let f = op.unary().expect("unary op");
                a.iter().map(|&v| f.eval(v as f64) as f32).collect()
            }
            Op::Mul => {
                let b = &vals[ins[1]];
                a.iter()
                    .enumerate()
                    .map(|(k, &p)| (p as f64 * b[k % b.len()] as f64) as f32)
                    .collect()
            }
            Op::Concat { axis } => {
                let out = g.out_shape(i);
                let outer: usize = out[..*axis].iter().product();
                let mut y = Vec::with_capacity(out.iter().product());
                for o in 0..outer {
                    for &v in ins {
                        let part: usize = g.value_shape(v)[*axis..].iter().product();
                        y.extend_from_slice(&vals[v][o * part..(o + 1) * part]);
                    }
                }
                y
            }
            Op::Slice { axis, start, len } => {
                let outer: usize = in_shape[..*axis].iter().product();
                let inner: usize = in_shape[axis + 1..].iter().product();
                let mut y = Vec::with_capacity(outer * len * inner);
                for o in 0..outer {
                    let base = (o * in_shape[*axis] + start) * inner;
                    y.extend_from_slice(&a[base..base + len * inner]);
                }
                y
            }
            Op::ChannelShuffle { groups } => {
                let k = last / groups;
                let mut y = vec![0f32; a.len()];
                for (r, row) in a.chunks(last).enumerate() {
                    for gi in 0..*groups {
                        for j in 0..k {
                            y[r * last + j * groups + gi] = row[gi * k + j];
                        }
                    }
                }
                y
            }
            Op::Embedding { dim, .. } => {
                let mut y = Vec::with_capacity(a.len() * dim);
                for (s, &tok) in a.iter().enumerate() {
                    for d in 0..*dim {
                        let mut v = t[0][[tok as usize, d]];
                        if let Some(pos) = t.get(1) {
                            v += pos[[s, d]];
                        }
                        y.push(v);
                    }
                }
                y
            }
            Op::Attention {
                heads,
                head_dim,
                causal,
                key_bias,
            } => {
                let bias = |c: usize| {
                    if *key_bias {
                        vals[ins[1]][c] as f64
                    } else {
                        0.0
                    }
                };
                let (h, d) = (*heads, *head_dim);
                let s = in_shape[0];
                let stride = 3 * h * d;
                let scale = 1.0 / (d as f64).sqrt();
                let mut y = vec![0f32; s * h * d];
                for hh in 0..h {
                    let q = |r: usize, j: usize| a[r * stride + hh * d + j] as f64;
                    let k = |r: usize, j: usize| a[r * stride + h * d + hh * d + j] as f64;
                    let v = |r: usize, j: usize| a[r * stride + 2 * h * d + hh * d + j] as f64;
                    for r in 0..s {
                        // A causal row sees keys 0..=r only.
                        let keys = if *causal { r + 1 } else { s };
                        let scores: Vec<f64> = (0..keys)
                            .map(|c| {
                                (0..d).map(|j| q(r, j) * k(c, j)).sum::<f64>() * scale + bias(c)
                            })
                            .collect();
                        let m = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                        let e: Vec<f64> = scores.iter().map(|&v| (v - m).exp()).collect();
                        let z: f64 = e.iter().sum();
                        for j in 0..d {
                            let acc: f64 = (0..keys).map(|c| e[c] * v(c, j)).sum();
                            y[r * h * d + hh * d + j] = (acc / z) as f32;
                        }
                    }
                }
                y
            }
        };
        y
    }
}

/// GELU, tanh approximation.
pub fn gelu(x: f64) -> f64 {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::fold_batch_norm;
    use crate::weights::{generate_inputs, generate_weights};
    use crate::zoo::{MODEL_NAMES, zoo_model};

    #[test]
    fn folding_preserves_outputs() {
        for name in MODEL_NAMES {
            let g = zoo_model(name).unwrap();
            let w = generate_weights(&g, 7);
            let (fg, fw) = fold_batch_norm(&g, &w).unwrap();
            let x = generate_inputs(&g, 2, 7, 0);
            let a = run_reference(&g, &w, &x, 2);
            let b = run_reference(&fg, &fw, &x, 2);
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 1e-4 * scale, "{name}: {p} vs {q}");
            }
            assert!(a.iter().all(|v| v.is_finite()), "{name}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let g = zoo_model("lenet5").unwrap();
        let w = generate_weights(&g, 1);
        let x = generate_inputs(&g, 3, 1, 0);
        let y = run_reference(&g, &w, &x, 3);
        for row in y.chunks(10) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
            // Random weights should not saturate the classifier completely.
            assert!(row.iter().all(|&p| p < 0.9999));
        }
    }
}

/// How far two outputs are apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    /// Largest absolute difference.
    pub max_abs: f32,
    /// Largest absolute difference divided by the reference's largest magnitude: the error
    /// relative to the tensor's scale, which stays meaningful for outputs near zero.
    pub max_rel: f32,
}

/// Cosine similarity of two outputs (1 for the same direction; 1 when both are zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na * nb).max(f64::MIN_POSITIVE)
    }
}

/// Compare `got` against the reference `want` (same length).
pub fn diff(got: &[f32], want: &[f32]) -> Diff {
    assert_eq!(got.len(), want.len(), "outputs differ in length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_abs = got
        .iter()
        .zip(want)
        .map(|(a, b)| {
            if a.is_nan() || b.is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0f32, f32::max);
    Diff {
        max_abs,
        max_rel: if scale > 0.0 {
            max_abs / scale
        } else {
            max_abs
        },
    }
}
