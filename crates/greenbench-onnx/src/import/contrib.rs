//! The `com.microsoft` operators of Optimum's and onnxruntime's optimised transformer exports,
//! mapped onto the IR where they are what the IR already computes: `FastGelu` and `BiasGelu`
//! (a bias, then the tanh or erf GELU), `SkipLayerNormalization` (input + skip (+ bias), then a
//! layer norm; its optional sum output too) and `Attention` (the fused QKV projection and the
//! attention core, with a raw `[N, S]` mask as the core's key bias and `unidirectional` as
//! causal). Forms outside that are refused naming what is not supported.

use super::boundary::Layout;
use super::error::ImportError;
use super::values::*;
use crate::proto::NodeProto;
use greenbench_core::graph::Op;
use ndarray::{ArrayD, IxDyn};

/// The operators this file imports, by name (domain `com.microsoft`).
pub(super) const CONTRIB: &[(&str, ImportFn)] = &[
    ("Attention", |i, n| i.ms_attention(n)),
    ("BiasGelu", |i, n| i.bias_gelu(n, Op::GeluErf)),
    ("FastGelu", |i, n| i.bias_gelu(n, Op::Gelu)),
    ("SkipLayerNormalization", |i, n| i.skip_layer_norm(n)),
];

impl Importer<'_> {
    /// `x + bias` for a constant per-channel `bias` (input `k` of `n`, if present): into the
    /// layer before when it is a bias that layer can take, else a shift of its own.
    fn with_bias(&mut self, n: &NodeProto, x: Act, k: usize) -> Result<Act, ImportError> {
        let Some(v) = self.input_val(n, k)?.cloned() else {
            return Ok(x);
        };
        let Val::Const(c) = v else {
            return Err(self.node_err(n, format!("the bias (input {k}) must be a constant")));
        };
        let sole = self.sole_reader(&n.input[0]);
        match self.add_const(n, &x, sole, &c) {
            Ok(y) => Ok(y),
            Err(_) => {
                let b = c.to_f32();
                let ch = *x.ir_shape.last().expect("non-empty");
                if b.len() != ch {
                    return Err(
                        self.node_err(n, format!("the bias has {} values, not {ch}", b.len()))
                    );
                }
                Ok(self.affine(
                    &format!("{}_bias", Self::node_name(n)),
                    &x,
                    vec![1.0; ch],
                    b,
                ))
            }
        }
    }

    /// `FastGelu(x, bias)` (the tanh GELU) and `BiasGelu(x, bias)` (the erf GELU).
    fn bias_gelu(&mut self, n: &NodeProto, gelu: Op) -> Result<(), ImportError> {
        self.only_first_output(n)?;
        let x = self.need_act(n, 0)?;
        let x = self.with_bias(n, x, 1)?;
        self.emit_same(n, gelu, x, vec![])
    }

    /// `SkipLayerNormalization(input, skip, gamma, beta?, bias?)`: the layer norm of
    /// `input + skip (+ bias)`; output 3, when read, is that sum.
    fn skip_layer_norm(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        for (k, o) in n.output.iter().enumerate().skip(1).take(2) {
            if !o.is_empty() && self.readers.get(o).copied().unwrap_or(0) > 0 {
                return Err(self.node_err(
                    n,
                    format!("output {k} (`{o}`, the mean or inverse deviation) is read: only the normalized output and the sum are supported"),
                ));
            }
        }
        let (x, skip) = (self.need_act(n, 0)?, self.need_act(n, 1)?);
        if x.dims != skip.dims || x.ir_shape != skip.ir_shape || x.layout != skip.layout {
            return Err(self.node_err(n, "input and skip differ in shape"));
        }
        // The bias added to the input (into the layer before it when that layer takes it).
        let x = self.with_bias(n, x, 4)?;
        let name = Self::node_name(n);
        let sum = self.emit(
            &format!("{name}_sum"),
            Op::Add,
            vec![x.ir.clone(), skip.ir],
            vec![],
        );
        let sum = Act { ir: sum, ..x };
        self.last_axis(n, &sum, -1)?;
        let d = *sum.dims.last().expect("non-empty");
        let gamma = self.need_const(n, 2, "gamma")?.to_f32();
        let beta = match self.input_val(n, 3)? {
            Some(Val::Const(t)) => t.to_f32(),
            Some(_) => return Err(self.node_err(n, "beta must be a constant")),
            None => vec![0.0; d],
        };
        if gamma.len() != d || beta.len() != d {
            return Err(self.node_err(n, format!("gamma and beta must have {d} values")));
        }
        let ws = vec![
            ArrayD::from_shape_vec(IxDyn(&[d]), gamma).expect("sized"),
            ArrayD::from_shape_vec(IxDyn(&[d]), beta).expect("sized"),
        ];
        let eps = attr_f(n, "epsilon", 1e-12);
        let ir = self.emit(&name, Op::LayerNorm { eps }, vec![sum.ir.clone()], ws);
        self.set(n, Val::Act(Act { ir, ..sum.clone() }));
        if let Some(o) = n.output.get(3).filter(|o| !o.is_empty()) {
            self.vals.insert(o.clone(), Val::Act(sum));
        }
        Ok(())
    }

    /// `Attention(input, weights, bias, mask_index?)`: the fused QKV projection (`weights`
    /// `[D, 3 D]`, Q | K | V each head-major, as the IR's attention core reads them) and the
    /// core; a raw `[N, S]` mask (1 keep, 0 pad) becomes the core's key bias
    /// `(1 - mask) * mask_filter_value`; `unidirectional` makes it causal; a `scale` other
    /// than 1/sqrt(d) is taken into the Q columns.
    fn ms_attention(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        self.only_first_output(n)?;
        for (k, what) in [
            (4, "past"),
            (5, "attention_bias"),
            (6, "past_sequence_length"),
        ] {
            if n.input.get(k).is_some_and(|s| !s.is_empty()) {
                return Err(self.node_err(n, format!("input {k} ({what}) is not supported")));
            }
        }
        if attr_ints(n, "qkv_hidden_sizes").is_some_and(|v| v.windows(2).any(|w| w[0] != w[1])) {
            return Err(self.node_err(n, "unequal qkv_hidden_sizes"));
        }
        let x = self.need_act(n, 0)?;
        let w = self.need_const(n, 1, "weights")?;
        let b = self.need_const(n, 2, "bias")?;
        let heads = attr_i(n, "num_heads", 0);
        let (k_in, units) = match w.dims[..] {
            [k, u] => (k, u),
            _ => return Err(self.node_err(n, "weights must be [hidden, 3 x hidden]")),
        };
        let plain = matches!(x.layout, Layout::Plain) && x.ir_shape == x.dims;
        if !plain || x.dims.len() != 2 || x.dims[1] != k_in {
            return Err(self.node_err(
                n,
                format!("input must be [N, S, {k_in}] (got [N, {:?}])", x.dims),
            ));
        }
        if heads <= 0 || units % 3 != 0 || (units / 3) % heads as usize != 0 || b.len() != units {
            return Err(self.node_err(n, "num_heads, weights and bias do not agree"));
        }
        let (h, hd) = (heads as usize, units / 3);
        let d = hd / h;
        let scale = attr_f(n, "scale", 0.0);
        // The IR's core divides by sqrt(d): another scale goes into Q's columns.
        let alpha = if scale == 0.0 {
            1.0
        } else {
            scale * (d as f32).sqrt()
        };
        let mut wv = w.to_f32();
        let mut bv = b.to_f32();
        if alpha != 1.0 {
            for r in 0..k_in {
                wv[r * units..r * units + hd]
                    .iter_mut()
                    .for_each(|v| *v *= alpha);
            }
            bv[..hd].iter_mut().for_each(|v| *v *= alpha);
        }
        let name = Self::node_name(n);
        let ws = vec![
            ArrayD::from_shape_vec(IxDyn(&[k_in, units]), wv).expect("sized"),
            ArrayD::from_shape_vec(IxDyn(&[units]), bv).expect("sized"),
        ];
        let qkv = self.emit(
            &format!("{name}_qkv"),
            Op::Dense { units, bias: true },
            vec![x.ir.clone()],
            ws,
        );
        let s = x.dims[0];
        let mut inputs = vec![qkv];
        if let Some(m) = self.input_val(n, 3)?.cloned() {
            let Val::Act(m) = m else {
                return Err(self.node_err(n, "mask_index must come from an input"));
            };
            if m.dims != [s] {
                return Err(self.node_err(
                    n,
                    format!(
                        "mask_index of per-example dims {:?}: the raw [N, S] mask (1 keep, 0 pad) is supported, not end positions or a 3-D mask",
                        m.dims
                    ),
                ));
            }
            if !self.masks.contains(&m.ir) {
                return Err(self.node_err(
                    n,
                    "mask_index is not an attention mask input (an integer input named `*mask*`)",
                ));
            }
            let filter = attr_f(n, "mask_filter_value", -10000.0);
            let bias = self.affine(
                &format!("{name}_mask"),
                &m,
                vec![-filter; s],
                vec![filter; s],
            );
            inputs.push(bias.ir);
        }
        let op = Op::Attention {
            heads: h,
            head_dim: d,
            causal: attr_i(n, "unidirectional", 0) != 0,
            key_bias: inputs.len() == 2,
        };
        let ir = self.emit(&name, op, inputs, vec![]);
        self.set(
            n,
            Val::Act(Act {
                ir,
                dims: vec![s, hd],
                layout: Layout::Plain,
                ir_shape: vec![s, hd],
            }),
        );
        Ok(())
    }
}
