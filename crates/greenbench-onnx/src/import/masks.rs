//! Padding masks as Hugging Face exports write them: the `attention_mask` input cast,
//! compared and turned into an additive key bias (BERT's `(1 - mask) * min` added to the
//! scores, DistilBERT's `masked_fill(mask == 0, min)`), folded into the attention's
//! `key_bias`. Casts of activations and comparisons of a mask are the identities and
//! complements they are on values that are 0 or 1.

use super::error::ImportError;
use super::values::*;
use crate::proto::{NodeProto, tensor_proto::DataType};

/// A fill that masks a score out: at most -1e30 (finfo.min) or -inf.
fn masks_out(v: f32) -> bool {
    v <= -1e30
}

impl Importer<'_> {
    /// `Cast` of an activation: to a float type the values are unchanged (greenbench computes
    /// in f32); to an integer type only integer inputs (ids, masks) are, and to bool only
    /// masks (0 or 1).
    pub(super) fn cast(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let to = attr_i(n, "to", 1) as i32;
        // To bfloat16 and (later) back: the value rounded to the nearest bf16, as greenbench's
        // bf16 precision rounds a weight layer's input (`greenbench_core::bf16`).
        if to == DataType::Bfloat16 as i32 {
            return self.unary(
                n,
                greenbench_core::Op::Math {
                    f: greenbench_core::graph::MathFn::RoundBf16,
                },
            );
        }
        let x = self.need_act(n, 0)?;
        let ok = match DataType::try_from(to) {
            Ok(DataType::Float | DataType::Double | DataType::Float16) => true,
            Ok(DataType::Int64 | DataType::Int32) => self.integral.contains(&x.ir),
            Ok(DataType::Bool) => self.masks.contains(&x.ir),
            _ => false,
        };
        if !ok {
            return Err(self.node_err(
                n,
                format!(
                    "a cast of an activation to type {to} changes its values; greenbench casts activations to float, and integer inputs (ids, masks) to integers"
                ),
            ));
        }
        self.set(n, Val::Act(x));
        Ok(())
    }

    /// `Equal(mask, 0 or 1)` and `Not(mask)` of an attention mask (0 or 1): its complement
    /// `1 - mask`, or the mask itself.
    pub(super) fn mask_logic(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        if !self.masks.contains(&x.ir) {
            return Err(self.node_err(
                n,
                "on activations this is supported for attention masks (inputs named `*mask*`, 0 or 1) only",
            ));
        }
        let complement = match n.op_type.as_deref() {
            Some("Not") => true,
            _ => {
                let c = self.need_const(n, 1, "the value compared with")?;
                match c.to_f32()[..] {
                    [0.0] => true,
                    [1.0] => false,
                    _ => {
                        return Err(self.node_err(
                            n,
                            "an attention mask compared with anything but a scalar 0 or 1",
                        ));
                    }
                }
            }
        };
        let v = if complement {
            let name = Self::node_name(n);
            let c = *x.ir_shape.last().expect("non-empty");
            let y = self.affine(&name, &x, vec![-1.0; c], vec![1.0; c]);
            // The complement of a mask is a mask.
            self.masks.insert(y.ir.clone());
            Val::Act(y)
        } else {
            Val::Act(x)
        };
        self.set(n, v);
        Ok(())
    }

    /// When `n` adds a padding mask's key bias to attention scores not yet masked, scaled
    /// later or softmaxed — `scores + bias` with `bias` an activation of one value per key
    /// (`[N, 1, 1, S]`), or `Where(mask, min, scores)` with `mask` a 0/1 activation per key —
    /// those scores with the bias.
    pub(super) fn padding_scores(&mut self, n: &NodeProto) -> Option<Attn> {
        let val = |me: &Self, k: usize| n.input.get(k).and_then(|i| me.vals.get(i)).cloned();
        let scores = |v: &Option<Val>| match v {
            Some(Val::Attn(a)) => match &**a {
                Attn::Scores {
                    probs: false,
                    mask: None,
                    ..
                } => Some((**a).clone()),
                _ => None,
            },
            _ => None,
        };
        let per_key = |a: &Act, s: usize| {
            matches!(a.layout, super::boundary::Layout::Plain)
                && a.dims.last() == Some(&s)
                && a.dims.iter().product::<usize>() == s
                && a.ir_shape.iter().product::<usize>() == s
        };
        let (a, bias) = match n.op_type.as_deref()? {
            "Add" => {
                let (x, y) = (val(self, 0), val(self, 1));
                let (a, m) = match (scores(&x), scores(&y)) {
                    (Some(a), None) => (a, y),
                    (None, Some(a)) => (a, x),
                    _ => return None,
                };
                let Some(Val::Act(m)) = m else { return None };
                (a, m)
            }
            "Where" => {
                let a = scores(&val(self, 2))?;
                let (Some(Val::Act(c)), Some(Val::Const(f))) = (val(self, 0), val(self, 1)) else {
                    return None;
                };
                let fill = match f.to_f32()[..] {
                    [v] if masks_out(v) => v.max(f32::MIN),
                    _ => return None,
                };
                if !self.masks.contains(&c.ir) {
                    return None;
                }
                let s = *c.ir_shape.last()?;
                let name = Self::node_name(n);
                (
                    a,
                    self.affine(&format!("{name}_bias"), &c, vec![fill; s], vec![0.0; s]),
                )
            }
            _ => return None,
        };
        let Attn::Scores {
            q,
            k,
            h,
            d,
            scale,
            causal,
            ..
        } = a
        else {
            return None;
        };
        if !per_key(&bias, q.dims[0]) {
            return None;
        }
        Some(Attn::Scores {
            q,
            k,
            h,
            d,
            scale,
            probs: false,
            causal,
            mask: Some(bias),
        })
    }
}
