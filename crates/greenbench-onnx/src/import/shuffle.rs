//! ShuffleNet's channel shuffle as exporters write it (Reshape to groups, Transpose, Reshape
//! back), recognised node by node and emitted as the IR's one channel-shuffle op.

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::proto::NodeProto;
use greenbench_core::graph::Op;

impl Importer<'_> {
    /// ShuffleNet's channel shuffle, `Reshape [N, g, C/g, H, W] -> Transpose (0, 2, 1, 3, 4)
    /// -> Reshape [N, C, H, W]`, followed step by step.
    pub(super) fn try_shuffle(&mut self, n: &NodeProto) -> Result<Option<Val>, ImportError> {
        let op = n.op_type.as_deref().unwrap_or("");
        let Some(v) = n.input.first().and_then(|i| self.vals.get(i)).cloned() else {
            return Ok(None);
        };
        let target = |me: &Self| -> Option<Vec<i64>> {
            match n.input.get(1).and_then(|i| me.vals.get(i)) {
                Some(Val::Const(t)) => t.to_i64().ok(),
                _ => None,
            }
        };
        let lead_ok = |d: i64| {
            d == BATCH || d == 0 || d == -1 || Some(d) == self.fixed_batch.map(|b| b as i64)
        };
        match (op, v) {
            ("Reshape", Val::Act(x))
                if matches!(x.layout, Layout::Plain)
                    && x.dims.len() == 1
                    && x.ir_shape == x.dims =>
            {
                // [N, C] -> [N, g, C / g]
                let Some(t) = target(self) else {
                    return Ok(None);
                };
                if t.len() == 3
                    && lead_ok(t[0])
                    && t[1] > 0
                    && t[2] > 0
                    && (t[1] * t[2]) as usize == x.dims[0]
                {
                    return Ok(Some(Val::Shuffle {
                        x,
                        groups: t[1] as usize,
                        swapped: false,
                    }));
                }
                Ok(None)
            }
            ("Reshape", Val::Act(x)) => {
                let Layout::Chw { c, h, w } = x.layout else {
                    return Ok(None);
                };
                let Some(t) = target(self) else {
                    return Ok(None);
                };
                if t.len() == 5
                    && lead_ok(t[0])
                    && t[1] > 0
                    && t[2] > 0
                    && (t[1] * t[2]) as usize == c
                    && t[3] as usize == h
                    && t[4] as usize == w
                {
                    return Ok(Some(Val::Shuffle {
                        x,
                        groups: t[1] as usize,
                        swapped: false,
                    }));
                }
                Ok(None)
            }
            (
                "Transpose",
                Val::Shuffle {
                    x,
                    groups,
                    swapped: false,
                },
            ) => {
                let want: &[i64] = if x.dims.len() == 1 {
                    &[0, 2, 1]
                } else {
                    &[0, 2, 1, 3, 4]
                };
                if attr_ints(n, "perm").as_deref() == Some(want) {
                    Ok(Some(Val::Shuffle {
                        x,
                        groups,
                        swapped: true,
                    }))
                } else {
                    // Not a channel shuffle: the general ops take it.
                    Ok(None)
                }
            }
            (
                "Reshape",
                Val::Shuffle {
                    x,
                    groups,
                    swapped: true,
                },
            ) => {
                let t = target(self).unwrap_or_default();
                let back = t.len() == x.dims.len() + 1
                    && lead_ok(t[0])
                    && t[1..]
                        .iter()
                        .zip(&x.dims)
                        .all(|(&a, &b)| a == b as i64 || a == -1 || a == 0);
                if !back {
                    return Ok(None);
                }
                let ir = self.emit(
                    &Self::node_name(n),
                    Op::ChannelShuffle { groups },
                    vec![x.ir.clone()],
                    vec![],
                );
                Ok(Some(Val::Act(Act { ir, ..x })))
            }
            _ => Ok(None),
        }
    }
}
