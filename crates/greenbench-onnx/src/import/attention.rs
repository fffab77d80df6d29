//! Multi-head self-attention as torch.onnx writes it, followed through its lazy stages and
//! emitted as the IR's fused-QKV dense layer and attention core; or, where the pattern does
//! not complete, written back as plain products.

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::proto::NodeProto;
use greenbench_core::graph::{BinOp, Op};
use ndarray::{ArrayD, IxDyn};

impl Importer<'_> {
    /// An attention stage that did not complete as the fused pattern, as the general ops it
    /// stands for (per-head reshape and transposes, products, scale, softmax).
    pub(super) fn materialize_attn(&mut self, name: &str, a: Attn) -> Act {
        // Each operand's stages named after the IR value they start from; the last stage
        // after the ONNX node that made the value.
        let heads = |me: &mut Self, x: Act, h: usize, d: usize, head_major: bool, key_t: bool| {
            let s = x.dims[0];
            let base = format!("{}_heads", x.ir);
            let x = me.plain_of(&base, x);
            let y = me.reshape_plain(&base, x, vec![s, h, d]);
            match (head_major, key_t) {
                (false, _) => y,
                (true, false) => me.transpose_plain(&format!("{base}_t"), y, vec![1, 0, 2]),
                (true, true) => me.transpose_plain(&format!("{base}_kt"), y, vec![1, 2, 0]),
            }
        };
        if let Attn::Heads {
            x,
            h,
            d,
            head_major: false,
            ..
        } = a
        {
            let s = x.dims[0];
            let x = self.plain_of(name, x);
            return self.reshape_plain(name, x, vec![s, h, d]);
        }
        let scores = |me: &mut Self,
                      q: Act,
                      k: Act,
                      (h, d): (usize, usize),
                      scale: f64,
                      probs: bool,
                      (causal, mask): (bool, Option<Act>)| {
            let qh = heads(me, q, h, d, true, false);
            let kh = heads(me, k, h, d, true, true);
            let mut sc = me.matmul_plain(&format!("{name}_scores"), qh, kh);
            if scale != 1.0 {
                let c = *sc.ir_shape.last().expect("non-empty");
                sc = me.affine(
                    &format!("{name}_scale"),
                    &sc,
                    vec![scale as f32; c],
                    vec![0.0; c],
                );
            }
            if causal {
                sc = me.causal_mask(&format!("{name}_causal"), sc);
            }
            if let Some(m) = mask {
                // The key bias [S] broadcast over heads and query rows.
                let ir = me.emit(
                    &format!("{name}_masked"),
                    Op::Binary { op: BinOp::Add },
                    vec![sc.ir.clone(), m.ir],
                    vec![],
                );
                sc = Act { ir, ..sc };
            }
            if probs {
                let ir = me.emit(
                    &format!("{name}_probs"),
                    Op::Softmax,
                    vec![sc.ir.clone()],
                    vec![],
                );
                sc = Act { ir, ..sc };
            }
            sc
        };
        match a {
            Attn::Heads {
                x,
                h,
                d,
                head_major,
                key_t,
            } => heads(self, x, h, d, head_major, key_t),
            Attn::Scores {
                q,
                k,
                h,
                d,
                scale,
                probs,
                causal,
                mask,
            } => scores(self, q, k, (h, d), scale, probs, (causal, mask)),
            Attn::Context {
                q,
                k,
                v,
                h,
                d,
                scale,
                merged,
                causal,
                mask,
            } => {
                let p = scores(self, q, k, (h, d), scale, true, (causal, mask));
                let vh = heads(self, v, h, d, true, false);
                let c = self.matmul_plain(&format!("{name}_context"), p, vh);
                if merged {
                    self.transpose_plain(&format!("{name}_merged"), c, vec![1, 0, 2])
                } else {
                    c
                }
            }
        }
    }

    /// Multi-head self-attention as torch.onnx writes it (HuggingFace's BertSelfAttention,
    /// nn.MultiheadAttention's math): followed node by node through the lazy [`Attn`] stages
    /// and, at the final Reshape to `[N, S, D]`, emitted as the IR's fused-QKV dense layer and
    /// attention core. The scale becomes part of the Q projection (the IR's core divides by
    /// sqrt(d)).
    pub(super) fn try_attention(&mut self, n: &NodeProto) -> Result<Option<Val>, ImportError> {
        let op = n.op_type.as_deref().unwrap_or("");
        let get = |me: &Self, k: usize| n.input.get(k).and_then(|i| me.vals.get(i)).cloned();
        // Unboxed views of the operands, to match on.
        #[allow(clippy::large_enum_variant)] // a local view, two values at a time
        enum V {
            A(Attn),
            O(Val),
        }
        let view = |v: Option<Val>| {
            v.map(|v| match v {
                Val::Attn(b) => V::A(*b),
                other => V::O(other),
            })
        };
        let (a, b) = (view(get(self, 0)), view(get(self, 1)));
        let target = |v: &Option<V>| -> Option<Vec<i64>> {
            match v {
                Some(V::O(Val::Const(t))) => t.to_i64().ok(),
                _ => None,
            }
        };
        let fixed = self.fixed_batch.map(|b| b as i64);
        let lead_ok = |d: i64| d == BATCH || d == 0 || d == -1 || Some(d) == fixed;
        let perm = attr_ints(n, "perm");
        let perm = perm.as_deref();
        let attn = |v: Attn| Ok(Some(Val::Attn(Box::new(v))));
        // A causal mask on the scaled scores: `Where(tril, scores, min)` (GPT-2's) or
        // `scores + mask` (0 on and below the diagonal, min above).
        if let Some(masked) = self.causal_scores(n) {
            return attn(masked);
        }
        // A padding mask's key bias on the scores.
        if let Some(masked) = self.padding_scores(n) {
            return attn(masked);
        }
        match (op, a, b) {
            ("Reshape", Some(V::O(Val::Act(x))), t) => {
                let Some(t) = target(&t) else { return Ok(None) };
                let plain = matches!(x.layout, Layout::Plain) && x.ir_shape == x.dims;
                if !(plain && x.dims.len() == 2 && t.len() == 4 && lead_ok(t[0])) {
                    return Ok(None);
                }
                let (s, dm) = (x.dims[0] as i64, x.dims[1] as i64);
                let seq_ok = t[1] == s || t[1] == 0 || (t[1] == -1 && t[2] > 0 && t[3] > 0);
                let (h, d) = match (t[2], t[3]) {
                    (-1, d) if d > 0 && dm % d == 0 => (dm / d, d),
                    (h, -1) if h > 0 && dm % h == 0 => (h, dm / h),
                    (h, d) => (h, d),
                };
                if !seq_ok || h <= 0 || d <= 0 || h * d != dm {
                    return Ok(None);
                }
                attn(Attn::Heads {
                    x,
                    h: h as usize,
                    d: d as usize,
                    head_major: false,
                    key_t: false,
                })
            }
            (
                "Transpose",
                Some(V::A(Attn::Heads {
                    x,
                    h,
                    d,
                    head_major,
                    key_t,
                })),
                _,
            ) => {
                let (hm, kt) = match (head_major, key_t, perm) {
                    (false, false, Some([0, 2, 1, 3])) => (true, false),
                    (false, false, Some([0, 2, 3, 1])) => (true, true),
                    (true, false, Some([0, 1, 3, 2])) => (true, true),
                    // Not attention's: the general ops take it.
                    _ => return Ok(None),
                };
                attn(Attn::Heads {
                    x,
                    h,
                    d,
                    head_major: hm,
                    key_t: kt,
                })
            }
            // Q scaled before the product (DistilBERT's `q / sqrt(d)`): the scale taken into a
            // copy of its projection.
            (
                "Div" | "Mul",
                Some(V::A(Attn::Heads {
                    x,
                    h,
                    d,
                    head_major,
                    key_t: false,
                })),
                Some(V::O(Val::Const(c))),
            ) if c.len() == 1 => {
                let v = c.to_f32()[0];
                let f = if op == "Div" { 1.0 / v } else { v };
                match self.scaled_projection(n, &x, f) {
                    Some(x) => attn(Attn::Heads {
                        x,
                        h,
                        d,
                        head_major,
                        key_t: false,
                    }),
                    None => Ok(None),
                }
            }
            (
                "MatMul",
                Some(V::A(Attn::Heads {
                    x: q,
                    h,
                    d,
                    head_major: true,
                    key_t: false,
                })),
                Some(V::A(Attn::Heads {
                    x: k,
                    h: h2,
                    d: d2,
                    head_major: true,
                    key_t: true,
                })),
            ) if h == h2 && d == d2 && q.dims == k.dims => attn(Attn::Scores {
                q,
                k,
                h,
                d,
                scale: 1.0,
                probs: false,
                causal: false,
                mask: None,
            }),
            (
                "Div" | "Mul",
                Some(V::A(Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    probs: false,
                    causal: false,
                    mask: None,
                })),
                Some(V::O(Val::Const(c))),
            )
            | (
                "Mul",
                Some(V::O(Val::Const(c))),
                Some(V::A(Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    probs: false,
                    causal: false,
                    mask: None,
                })),
            ) if c.len() == 1 => {
                let v = c.to_f32()[0] as f64;
                let scale = if op == "Div" { scale / v } else { scale * v };
                attn(Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    probs: false,
                    causal: false,
                    mask: None,
                })
            }
            (
                "Softmax",
                Some(V::A(Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    probs: false,
                    causal,
                    mask,
                })),
                _,
            ) => {
                let ax = attr_i(n, "axis", if self.opset < 13 { 1 } else { -1 });
                if !(ax == -1 || ax == 3) {
                    return Ok(None);
                }
                attn(Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    probs: true,
                    causal,
                    mask,
                })
            }
            (
                "MatMul",
                Some(V::A(Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    probs: true,
                    causal,
                    mask,
                })),
                Some(V::A(Attn::Heads {
                    x: v,
                    h: h2,
                    d: d2,
                    head_major: true,
                    key_t: false,
                })),
            ) if h == h2 && d == d2 && v.dims == q.dims => attn(Attn::Context {
                q,
                k,
                v,
                h,
                d,
                scale,
                merged: false,
                causal,
                mask,
            }),
            (
                "Transpose",
                Some(V::A(Attn::Context {
                    q,
                    k,
                    v,
                    h,
                    d,
                    scale,
                    merged: false,
                    causal,
                    mask,
                })),
                _,
            ) if perm == Some(&[0, 2, 1, 3]) => attn(Attn::Context {
                q,
                k,
                v,
                h,
                d,
                scale,
                merged: true,
                causal,
                mask,
            }),
            (
                "Reshape",
                Some(V::A(Attn::Context {
                    q,
                    k,
                    v,
                    h,
                    d,
                    scale,
                    merged: true,
                    causal,
                    mask,
                })),
                t,
            ) => {
                let t = target(&t).unwrap_or_default();
                let s = q.dims[0] as i64;
                let ok = t.len() == 3
                    && lead_ok(t[0])
                    && (t[1] == s || t[1] == 0 || t[1] == -1)
                    && (t[2] == (h * d) as i64 || (t[2] == -1 && t[1] != -1));
                if !ok {
                    return Ok(None);
                }
                self.emit_attention(n, [q, k, v], (h, d), scale, (causal, mask))
                    .map(|a| Some(Val::Act(a)))
            }
            ("Dropout" | "Identity", Some(V::A(v)), _) => attn(v),
            _ => Ok(None),
        }
    }

    /// A copy of dense projection `x` with its weights and bias multiplied by `f` (the
    /// original stays for any other reader, and is dropped when it has none).
    fn scaled_projection(&mut self, n: &NodeProto, x: &Act, f: f32) -> Option<Act> {
        let i = *self.index.get(&x.ir)?;
        let Op::Dense { units, bias } = self.nodes[i].op else {
            return None;
        };
        if !f.is_finite() {
            return None;
        }
        let ws: Vec<ArrayD<f32>> = self.weights[i].iter().map(|t| t * f).collect();
        let inputs = self.nodes[i].inputs.clone();
        let name = format!("{}_scaled", Self::node_name(n));
        let ir = self.emit(&name, Op::Dense { units, bias }, inputs, ws);
        Some(Act { ir, ..x.clone() })
    }

    pub(super) fn emit_attention(
        &mut self,
        n: &NodeProto,
        qkv: [Act; 3],
        (h, d): (usize, usize),
        scale: f64,
        (causal, mask): (bool, Option<Act>),
    ) -> Result<Act, ImportError> {
        let key_bias = mask.is_some();
        let bias_in: Vec<String> = mask.map(|m| m.ir).into_iter().collect();
        let alpha = (scale * (d as f64).sqrt()) as f32;
        // Q, K and V sliced in turn from one [S, 3 h d] value (greenbench's own export): the
        // attention core reads that value as it is when the scale is the core's own.
        let slices: Option<Vec<(String, usize)>> = qkv
            .iter()
            .map(|a| {
                let i = *self.index.get(&a.ir)?;
                match self.nodes[i].op {
                    Op::Slice {
                        axis: 1,
                        start,
                        len,
                    } if len == h * d => Some((self.nodes[i].inputs[0].clone(), start)),
                    _ => None,
                }
            })
            .collect();
        if let Some(sl) = slices
            && sl.iter().all(|(src, _)| *src == sl[0].0)
            && sl
                .iter()
                .enumerate()
                .all(|(k, (_, start))| *start == k * h * d)
            && (alpha - 1.0).abs() < 1e-6
        {
            let name = Self::node_name(n);
            let q = &qkv[0];
            let ir = self.emit(
                &name,
                Op::Attention {
                    heads: h,
                    head_dim: d,
                    causal,
                    key_bias,
                },
                [vec![sl[0].0.clone()], bias_in].concat(),
                vec![],
            );
            return Ok(Act {
                ir,
                dims: q.dims.clone(),
                layout: Layout::Plain,
                ir_shape: q.ir_shape.clone(),
            });
        }
        // Q, K and V must be dense layers of the same input: fused into one, Q scaled so
        // the IR's 1/sqrt(d) gives the file's scale.
        let mut parts = vec![];
        for a in &qkv {
            let i = *self.index.get(&a.ir).ok_or_else(|| {
                self.node_err(n, "attention whose Q, K or V is not a dense projection")
            })?;
            let Op::Dense { units, bias } = self.nodes[i].op else {
                return Err(self.node_err(n, "attention whose Q, K or V is not a dense projection"));
            };
            parts.push((i, units, bias));
        }
        let src = self.nodes[parts[0].0].inputs.clone();
        if parts
            .iter()
            .any(|p| self.nodes[p.0].inputs != src || p.1 != h * d)
        {
            return Err(self.node_err(
                n,
                "attention whose Q, K and V do not project the same input",
            ));
        }
        let k_in = self.weights[parts[0].0][0].shape()[0];
        let units = 3 * h * d;
        let mut w = vec![0f32; k_in * units];
        let mut b = vec![0f32; units];
        for (j, &(i, u, has_bias)) in parts.iter().enumerate() {
            let f = if j == 0 { alpha } else { 1.0 };
            let wj = self.weights[i][0]
                .as_slice()
                .expect("standard layout")
                .to_vec();
            for r in 0..k_in {
                for c in 0..u {
                    w[r * units + j * u + c] = wj[r * u + c] * f;
                }
            }
            if has_bias {
                let bj = self.weights[i][1]
                    .as_slice()
                    .expect("standard layout")
                    .to_vec();
                for c in 0..u {
                    b[j * u + c] = bj[c] * f;
                }
            }
        }
        let name = Self::node_name(n);
        let ws = vec![
            ArrayD::from_shape_vec(IxDyn(&[k_in, units]), w).expect("sized"),
            ArrayD::from_shape_vec(IxDyn(&[units]), b).expect("sized"),
        ];
        let fused = self.emit(
            &format!("{name}_qkv"),
            Op::Dense { units, bias: true },
            src,
            ws,
        );
        let q = &qkv[0];
        let ir = self.emit(
            &name,
            Op::Attention {
                heads: h,
                head_dim: d,
                causal,
                key_bias,
            },
            [vec![fused], bias_in].concat(),
            vec![],
        );
        Ok(Act {
            ir,
            dims: q.dims.clone(),
            layout: Layout::Plain,
            ir_shape: q.ir_shape.clone(),
        })
    }
}
