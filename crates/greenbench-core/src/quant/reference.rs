//! The reference interpreter of a quantized model: plain loops over the scheme's arithmetic,
//! the ground truth every int8 kernel is tested against bit for bit.

use super::model::{QLinear, QModel, QNode};
use super::scheme::{add_q, avg_round};
use crate::graph::{Graph, Op};
use crate::reference::eval_node;

/// Run the quantized model with the reference arithmetic on `batch` examples: the integer
/// nodes exactly as specified above, the fp32 nodes by the fp32 reference on dequantized
/// inputs. Backends are checked against this.
pub fn run_reference_q(qm: &QModel, input: &[f32], batch: usize) -> Vec<f32> {
    let g = &qm.graph;
    assert_eq!(input.len(), batch * g.input_len(), "input length");
    let mut out = Vec::with_capacity(batch * g.output_len());
    for x in input.chunks(g.input_len()) {
        out.extend(run_one_q(qm, x));
    }
    out
}

pub(super) fn run_one_q(qm: &QModel, x: &[f32]) -> Vec<f32> {
    let g = &qm.graph;
    let nv = g.nodes.len() + 1;
    // uint8 values, and every value's fp32 view (dequantized for uint8 ones).
    let mut q: Vec<Vec<u8>> = vec![vec![]; nv];
    let mut f: Vec<Vec<f32>> = vec![vec![]; nv];
    let settle = |v: usize, y: Vec<f32>, q: &mut Vec<Vec<u8>>, f: &mut Vec<Vec<f32>>| {
        if let Some(p) = qm.values[v] {
            q[v] = y.iter().map(|&a| p.quantize(a)).collect();
            f[v] = q[v].iter().map(|&a| p.dequantize(a)).collect();
        } else {
            f[v] = y;
        }
    };
    settle(0, x.to_vec(), &mut q, &mut f);
    for i in 0..g.nodes.len() {
        let ins = g.node_inputs(i);
        let v = i + 1;
        let a = &q[ins[0]];
        let yq: Vec<u8> = match &qm.nodes[i] {
            QNode::Fp32 => {
                let y = eval_node(g, &qm.weights, i, &f);
                settle(v, y, &mut q, &mut f);
                continue;
            }
            QNode::Alias => a.clone(),
            QNode::Linear(l) => linear_ref(g, i, l, a),
            QNode::MaxPool | QNode::AvgPool => {
                let z = qm.values[ins[0]].expect("uint8 input").zero;
                pool_ref(g, i, &qm.nodes[i], a, z)
            }
            QNode::Add {
                ma,
                mb,
                shift,
                lo,
                hi,
                ..
            } => {
                let (pa, pb) = (qm.values[ins[0]].unwrap(), qm.values[ins[1]].unwrap());
                let zy = qm.values[v].unwrap().zero;
                a.iter()
                    .zip(&q[ins[1]])
                    .map(|(&p, &r)| add_q(p, r, pa.zero, pb.zero, zy, (*ma, *mb, *shift, *lo, *hi)))
                    .collect()
            }
        };
        let p = qm.values[v].expect("an int8 node's output is uint8");
        f[v] = yq.iter().map(|&a| p.dequantize(a)).collect();
        q[v] = yq;
    }
    f.pop().expect("graph has nodes")
}

pub(super) fn linear_ref(g: &Graph, i: usize, l: &QLinear, a: &[u8]) -> Vec<u8> {
    let zx = l.x.zero;
    match g.nodes[i].op {
        Op::Dense { units, .. } => {
            let k = *g
                .value_shape(g.node_inputs(i)[0])
                .last()
                .expect("non-empty");
            let rows = a.len() / k;
            let mut y = vec![0u8; rows * units];
            for r in 0..rows {
                for u in 0..units {
                    let mut acc = l.bias[u];
                    for j in 0..k {
                        acc += (a[r * k + j] as i32 - zx) * l.w[j * units + u] as i32;
                    }
                    y[r * units + u] = l.finish(acc, u);
                }
            }
            y
        }
        _ => {
            let c = g.conv_geom(i);
            let cin_g = c.cin / c.groups;
            let cout_g = c.cout / c.groups;
            let mut y = vec![0u8; c.ho * c.wo * c.cout];
            for oy in 0..c.ho {
                for ox in 0..c.wo {
                    for co in 0..c.cout {
                        let grp = co / cout_g;
                        let mut acc = l.bias[co];
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let iy = (oy * c.sh + ky) as isize - c.pad_top as isize;
                                let ix = (ox * c.sw + kx) as isize - c.pad_left as isize;
                                // Padding holds the zero point: (z - z) w adds nothing.
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                for ci in 0..cin_g {
                                    let xv = a[(iy as usize * c.w + ix as usize) * c.cin
                                        + grp * cin_g
                                        + ci] as i32;
                                    let wv = l.w[((ky * c.kw + kx) * cin_g + ci) * c.cout + co];
                                    acc += (xv - zx) * wv as i32;
                                }
                            }
                        }
                        y[(oy * c.wo + ox) * c.cout + co] = l.finish(acc, co);
                    }
                }
            }
            y
        }
    }
}

pub(super) fn pool_ref(g: &Graph, i: usize, node: &QNode, a: &[u8], z: i32) -> Vec<u8> {
    if let Op::GlobalAvgPool = g.nodes[i].op {
        let last = *g.value_shape(g.node_inputs(i)[0]).last().unwrap();
        let rows = a.len() / last;
        return (0..last)
            .map(|c| {
                let s: i64 = (0..rows).map(|r| a[r * last + c] as i64 - z as i64).sum();
                avg_round(s, rows, z)
            })
            .collect();
    }
    let p = g.pool_geom(i);
    let mut y = vec![0u8; p.ho * p.wo * p.c];
    for oy in 0..p.ho {
        for ox in 0..p.wo {
            for c in 0..p.c {
                let mut m = 0u8;
                let mut s = 0i64;
                for iy in p.rows(oy) {
                    for ix in p.cols(ox) {
                        let v = a[(iy * p.w + ix) * p.c + c];
                        m = m.max(v);
                        s += v as i64 - z as i64;
                    }
                }
                y[(oy * p.wo + ox) * p.c + c] = match node {
                    QNode::MaxPool => m,
                    // Padding inside a count_include_pad window is a zero: (z - z) = 0.
                    _ => avg_round(s, p.divisor(oy, ox), z),
                };
            }
        }
    }
    y
}
