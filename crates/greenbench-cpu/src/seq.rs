//! Kernels over token sequences (rows of a `[tokens, features]` activation): row softmax,
//! layer norm, token and position embedding, and the multi-head attention core. The
//! transformer's own kernels; they use the general ones (`kernels`) and nothing else.

use crate::kernels::{Mat, SendPtr, Simd, Threads, min_len, sgemm, simd};
use rayon::prelude::*;

/// Softmax of each row of length `n`.
pub fn softmax_rows(x: &[f32], n: usize, y: &mut [f32]) {
    let level = Simd::detect();
    y[..x.len()]
        .par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .with_min_len(min_len())
        .for_each(|(o, i)| simd(level, || softmax_row(i, o)));
}

fn softmax_row(i: &[f32], o: &mut [f32]) {
    let m = i.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut s = 0.0;
    for (o, &v) in o.iter_mut().zip(i) {
        *o = (v - m).exp();
        s += *o;
    }
    let inv = 1.0 / s;
    o.iter_mut().for_each(|v| *v *= inv);
}

/// Layer norm of each row of length `n`, with affine `gamma`, `beta`.
pub fn layer_norm_rows(x: &[f32], n: usize, gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32]) {
    let level = Simd::detect();
    y[..x.len()]
        .par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .with_min_len(min_len())
        .for_each(|(o, i)| {
            simd(level, || {
                let mean = i.iter().sum::<f32>() / n as f32;
                let var = i.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for j in 0..n {
                    o[j] = (i[j] - mean) * inv * gamma[j] + beta[j];
                }
            })
        });
}

/// Token embedding plus optional positions: `tokens` holds `batch * seq` ids.
pub fn embedding(
    tokens: &[f32],
    seq: usize,
    table: &[f32],
    pos: Option<&[f32]>,
    dim: usize,
    y: &mut [f32],
) {
    y[..tokens.len() * dim]
        .par_chunks_mut(dim)
        .zip(tokens.par_iter())
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(r, (o, &t))| {
            let row = &table[t as usize * dim..(t as usize + 1) * dim];
            match pos {
                Some(p) => {
                    let s = r % seq;
                    let pr = &p[s * dim..(s + 1) * dim];
                    o.iter_mut()
                        .zip(row.iter().zip(pr))
                        .for_each(|(o, (a, b))| *o = a + b);
                }
                None => o.copy_from_slice(row),
            }
        });
}

/// Multi-head self-attention core over fused QKV `[batch * s, 3 * h * d]` into
/// `[batch * s, h * d]`. `scratch` holds `batch * h * s * s` scores. Each (example, head)
/// is one task: two GEMMs with strided operands (no copies) and a row softmax between.
/// `bias` (`batch * s` values, a padding mask) is added to each example's scores at each key.
pub fn attention(
    qkv: &[f32],
    batch: usize,
    (s, h, d): (usize, usize, usize),
    causal: bool,
    bias: Option<&[f32]>,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let level = Simd::detect();
    let stride = 3 * h * d;
    let scale = 1.0 / (d as f32).sqrt();
    let yp = SendPtr(y.as_mut_ptr());
    let y_len = y.len();
    scratch[..batch * h * s * s]
        .par_chunks_mut(s * s)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(t, scores)| {
            simd(level, || {
                let (n, hh) = (t / h, t % h);
                let base = n * s * stride;
                let q = Mat {
                    data: &qkv[base + hh * d..],
                    rs: stride,
                    cs: 1,
                };
                // K^T as a [d, s] operand: element (j, c) = K[c, j].
                let kt = Mat {
                    data: &qkv[base + h * d + hh * d..],
                    rs: 1,
                    cs: stride,
                };
                sgemm(s, s, d, q, kt, scores, s, Threads::One);
                let key_bias = bias.map(|b| &b[n * s..(n + 1) * s]);
                for (r, row) in scores.chunks_mut(s).enumerate() {
                    match key_bias {
                        Some(b) => row
                            .iter_mut()
                            .zip(b)
                            .for_each(|(v, &k)| *v = *v * scale + k),
                        None => row.iter_mut().for_each(|v| *v *= scale),
                    }
                    if causal {
                        // Keys after the query's own row get no weight: exp(-inf - m) = 0.
                        row[r + 1..].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
                    }
                    let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let mut z = 0.0;
                    row.iter_mut().for_each(|v| {
                        *v = (*v - m).exp();
                        z += *v;
                    });
                    let inv = 1.0 / z;
                    row.iter_mut().for_each(|v| *v *= inv);
                }
                let v = Mat {
                    data: &qkv[base + 2 * h * d + hh * d..],
                    rs: stride,
                    cs: 1,
                };
                let off = n * s * h * d + hh * d;
                let len = (s - 1) * h * d + d;
                assert!(off + len <= y_len);
                // SAFETY: task (n, hh) writes only rows n*s..(n+1)*s, columns hh*d..(hh+1)*d of
                // `y`; tasks write disjoint elements, and the range is checked above.
                let out = unsafe { std::slice::from_raw_parts_mut(yp.get().add(off), len) };
                sgemm(s, d, s, Mat::rows(scores, s), v, out, h * d, Threads::One);
            })
        });
}
