//! Counting a quantized model's work by docs/INT8.md's rules: MACs, the floating-point part's
//! FPO, and integer operations apart.

use super::model::{QModel, QNode};
use serde::Serialize;

/// Per-example work of a quantized model, by the rules of docs/INT8.md: MACs as in fp32
/// (all of them); FPO of the floating-point part only (fp32 nodes, and the float half of each
/// quantize / dequantize border); integer operations separately, never called FPO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QCost {
    pub macs: u64,
    /// The MACs done in int8.
    pub int8_macs: u64,
    pub fpo: u64,
    pub int_ops: u64,
    pub transcendentals: u64,
    pub params: u64,
}

impl std::ops::AddAssign for QCost {
    fn add_assign(&mut self, o: QCost) {
        self.macs += o.macs;
        self.int8_macs += o.int8_macs;
        self.fpo += o.fpo;
        self.int_ops += o.int_ops;
        self.transcendentals += o.transcendentals;
        self.params += o.params;
    }
}

/// Integer operations of a conv / dense epilogue per output: bias add, multiply, rounding
/// shift (add + shift), zero-point add, clamp (min + max).
pub const EPILOGUE_INT_OPS: u64 = 7;

/// A residual add on uint8 per element: two zero-point subtractions, two multiplies, the
/// sum, the rounding shift (2), the zero-point add, the clamp (2).
pub const ADD_INT_OPS: u64 = 10;

/// Quantizing one value: divide by the scale and round (2 FPO); add the zero point and
/// clamp (3 integer ops).
pub const QUANTIZE_COST: (u64, u64) = (2, 3);

/// Dequantizing one value: subtract the zero point (1 integer op), multiply by the scale
/// (1 FPO).
pub const DEQUANTIZE_COST: (u64, u64) = (1, 1);

impl QModel {
    /// Per node (its own work plus the borders it causes: the quantize after an fp32 node
    /// whose output is held as uint8, the dequantize before the first fp32 reader of a uint8
    /// value), and the total. The input's quantize counts in the total only.
    pub fn cost(&self) -> (QCost, Vec<QCost>) {
        let g = &self.graph;
        let len = |v: usize| g.value_shape(v).iter().product::<usize>() as u64;
        let mut per = vec![QCost::default(); g.nodes.len()];
        let mut total = QCost::default();
        if self.values[0].is_some() {
            total.fpo += QUANTIZE_COST.0 * len(0);
            total.int_ops += QUANTIZE_COST.1 * len(0);
        }
        let mut dequantized = vec![false; g.nodes.len() + 1];
        for (i, q) in per.iter_mut().enumerate() {
            let c = crate::cost::node_cost(g, i);
            let out = len(i + 1);
            q.macs = c.macs;
            q.params = c.params;
            match &self.nodes[i] {
                QNode::Fp32 => {
                    q.fpo = c.fpo();
                    q.transcendentals = c.transcendentals;
                    for &u in g.node_inputs(i) {
                        if self.values[u].is_some() && !dequantized[u] {
                            dequantized[u] = true;
                            q.fpo += DEQUANTIZE_COST.0 * len(u);
                            q.int_ops += DEQUANTIZE_COST.1 * len(u);
                        }
                    }
                    if self.values[i + 1].is_some() {
                        q.fpo += QUANTIZE_COST.0 * out;
                        q.int_ops += QUANTIZE_COST.1 * out;
                    }
                }
                QNode::Alias => {}
                QNode::Linear(_) => {
                    q.int8_macs = c.macs;
                    q.int_ops = 2 * c.macs + EPILOGUE_INT_OPS * out;
                }
                QNode::MaxPool => q.int_ops = c.other_fpo,
                // The fp32 rule's sums and divide, plus the rounding add and zero-point add.
                QNode::AvgPool => q.int_ops = c.other_fpo + 2 * out,
                QNode::Add { .. } => q.int_ops = ADD_INT_OPS * out,
            }
            total += *q;
        }
        let last = g.nodes.len();
        if self.values[last].is_some() && !dequantized[last] {
            total.fpo += DEQUANTIZE_COST.0 * len(last);
            total.int_ops += DEQUANTIZE_COST.1 * len(last);
        }
        (total, per)
    }
}
