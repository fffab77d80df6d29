//! Planning a bf16 graph (`greenbench_core::bf16::convert`) onto the bf16 direct kernels: a
//! rounding node whose every reader is a weight layer those kernels run is not a step of its
//! own; the layers after it read its fp32 source and round as they copy their input in
//! (`direct::DirectPlan::gemm_bf16` / `conv_bf16`), then multiply on `vdpbf16ps`. Without
//! AVX-512 BF16 (or where a reader is another layer) the rounding is a step and the fp32
//! kernels multiply the rounded values: the same products, exact in fp32.

use crate::Settings;
#[cfg(target_arch = "x86_64")]
use crate::direct::DirectPlan;
#[cfg(target_arch = "x86_64")]
use crate::kernels::Relu;
use greenbench_core::graph::{Graph, MathFn, Op};

/// Whether node `j` is a weight layer the bf16 direct kernels run: a dense layer, or an
/// ungrouped convolution over more than one channel. (The kernels pair consecutive channels
/// of a pixel; one channel would be paired with a zero, half of every `vdpbf16ps` wasted: no
/// faster than the fp32 kernel on the rounded input, plus the conversion. lenet5's first
/// layer, measured: see docs/BF16.md.)
fn bf16_layer(g: &Graph, j: usize) -> bool {
    match g.nodes[j].op {
        Op::Dense { .. } => true,
        Op::Conv2d { .. } => {
            let c = g.conv_geom(j);
            c.groups == 1 && c.cin > 1
        }
        _ => false,
    }
}

/// Whether value `v` is a bf16 rounding's output. A convolution reading one multiplies bf16
/// values: with the bf16 kernels off it runs the direct fp32 tile, not Winograd, whose
/// transformed weights and inputs are no longer bf16 values (the products would differ from
/// the bf16 graph's, and F(4x4, 3x3)'s larger transform errors flipped downstream
/// roundings past the bf16 tolerance: resnet8 at batch 32, 0.0071 against 2^-8).
pub(crate) fn is_bf16_rounding(g: &Graph, v: usize) -> bool {
    v > 0
        && matches!(
            g.nodes[v - 1].op,
            Op::Math {
                f: MathFn::RoundBf16
            }
        )
}

/// Per value: whether it is a bf16 rounding that the layers reading it do themselves (`s`
/// has the bf16 kernels; every reader is a [`bf16_layer`] reading it as its only input).
pub(crate) fn fused_rounds(g: &Graph, s: &Settings) -> Vec<bool> {
    let mut fused = vec![false; g.nodes.len() + 1];
    if !(s.bf16 && s.direct) {
        return fused;
    }
    for (v, f) in fused.iter_mut().enumerate() {
        if !is_bf16_rounding(g, v) {
            continue;
        }
        let readers: Vec<usize> = (0..g.nodes.len())
            .filter(|&j| g.node_inputs(j).contains(&v))
            .collect();
        *f = !readers.is_empty()
            && readers
                .iter()
                .all(|&j| bf16_layer(g, j) && g.node_inputs(j) == [v]);
    }
    fused
}

/// Node `i` (a [`bf16_layer`] whose input is a fused rounding) planned on the bf16 direct
/// kernels, over an unbordered input; `out_border` as for the fp32 plan.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn bf16_plan(
    g: &Graph,
    i: usize,
    batch: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    relu: Relu,
    out_border: Option<[usize; 4]>,
) -> Option<DirectPlan> {
    match g.nodes[i].op {
        Op::Dense { units, .. } => {
            let shape = g.value_shape(g.node_inputs(i)[0]);
            let k = *shape.last().expect("non-empty");
            let rows = batch * shape.iter().product::<usize>() / k;
            Some(DirectPlan::gemm_bf16(rows, k, units, w, bias, relu))
        }
        Op::Conv2d { .. } => {
            DirectPlan::conv_bf16(&g.conv_geom(i), batch, w, bias, relu, out_border)
        }
        _ => None,
    }
}
