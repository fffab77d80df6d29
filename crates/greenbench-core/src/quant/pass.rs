//! The quantization pass: calibration over sample inputs, then each value's parameters, each
//! conv / dense layer's int8 weights, bias and requantizer, and the adds' multipliers.

use super::model::{Calibration, QLinear, QModel, QNode, QuantConfig, QuantError};
use super::scheme::{QParams, Requant, Requantizer};
use crate::graph::{Graph, Op};
use crate::reference::run_values;
use crate::weights::Weights;

/// Observed range of every value over the calibration examples.
pub(super) fn calibrate(
    g: &Graph,
    w: &Weights,
    inputs: &[f32],
    how: Calibration,
) -> Result<Vec<(f32, f32)>, QuantError> {
    let n = g.input_len();
    if inputs.is_empty() || !inputs.len().is_multiple_of(n) {
        return Err(QuantError::NoCalibration(inputs.len(), n));
    }
    let nv = g.nodes.len() + 1;
    let mut seen: Vec<Vec<f32>> = vec![vec![]; nv];
    let mut range = vec![(f32::INFINITY, f32::NEG_INFINITY); nv];
    for (e, x) in inputs.chunks(n).enumerate() {
        if x.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NotFinite(e));
        }
        for (v, vals) in run_values(g, w, x).into_iter().enumerate() {
            let r = &mut range[v];
            for &q in &vals {
                if q.is_finite() {
                    r.0 = r.0.min(q);
                    r.1 = r.1.max(q);
                }
            }
            if matches!(how, Calibration::Percentile { .. }) {
                seen[v].extend(vals.into_iter().filter(|q| q.is_finite()));
            }
        }
    }
    if let Calibration::Percentile { p } = how {
        for (v, vals) in seen.iter_mut().enumerate() {
            if vals.is_empty() {
                continue;
            }
            vals.sort_by(f32::total_cmp);
            let at = |q: f64| vals[((q / 100.0) * (vals.len() - 1) as f64).round() as usize];
            range[v] = (at(100.0 - p), at(p));
        }
    }
    Ok(range
        .into_iter()
        .map(|(a, b)| if a <= b { (a, b) } else { (0.0, 0.0) })
        .collect())
}

/// Quantize `g` (batch norm already folded) with weights `w`, reading activation ranges from
/// `inputs` (whole examples, batch-major) as `cfg` says.
pub fn quantize(
    g: &Graph,
    w: &Weights,
    inputs: &[f32],
    cfg: &QuantConfig,
) -> Result<QModel, QuantError> {
    let how = cfg.calibration;
    let requantizer = cfg.requantizer;
    let range = calibrate(g, w, inputs, how)?;
    let params = |v: usize| QParams::from_range(range[v].0, range[v].1);
    let n = g.nodes.len();
    let mut values: Vec<Option<QParams>> = vec![None; n + 1];
    let mut nodes = vec![QNode::Fp32; n];
    // A ReLU / Clip(0, c) that is the only reader of node i's output, and what it clamps to.
    let fusable_act = |i: usize| -> Option<(usize, f32)> {
        let j = i + 1;
        let next = g.nodes.get(j)?;
        if g.node_inputs(j) != [i + 1] || g.consumers(i + 1) != 1 {
            return None;
        }
        match next.op {
            Op::Relu => Some((j, f32::INFINITY)),
            Op::Clip { min, max } if min == 0.0 && max > 0.0 => Some((j, max)),
            _ => None,
        }
    };
    let mut i = 0;
    while i < n {
        let ins = g.node_inputs(i);
        let quantized_input = values[ins[0]].is_some();
        match &g.nodes[i].op {
            Op::Conv2d { .. } | Op::Dense { .. } => {
                let x = *values[ins[0]].get_or_insert_with(|| params(ins[0]));
                let act = fusable_act(i);
                let out_v = act.map_or(i + 1, |(j, _)| j + 1);
                let y = params(out_v);
                let (lo, hi, fused) = clamp_of(act.map(|(_, c)| c), y);
                nodes[i] = QNode::Linear(quantize_linear(w, i, x, y, lo, hi, fused, requantizer));
                values[i + 1] = Some(y);
                if let Some((j, _)) = act {
                    nodes[j] = QNode::Alias;
                    values[j + 1] = Some(y);
                    i = j;
                }
            }
            Op::MaxPool { .. } if quantized_input => {
                nodes[i] = QNode::MaxPool;
                values[i + 1] = values[ins[0]];
            }
            Op::AvgPool { .. } | Op::GlobalAvgPool if quantized_input => {
                nodes[i] = QNode::AvgPool;
                values[i + 1] = values[ins[0]];
            }
            Op::Flatten | Op::Reshape { .. } if quantized_input => {
                nodes[i] = QNode::Alias;
                values[i + 1] = values[ins[0]];
            }
            Op::Add if quantized_input && values[ins[1]].is_some() => {
                let (a, b) = (values[ins[0]].unwrap(), values[ins[1]].unwrap());
                let act = fusable_act(i);
                let out_v = act.map_or(i + 1, |(j, _)| j + 1);
                let y = params(out_v);
                let (lo, hi, fused) = clamp_of(act.map(|(_, c)| c), y);
                let (ma, mb, shift) = add_multipliers(a.scale / y.scale, b.scale / y.scale);
                nodes[i] = QNode::Add {
                    ma,
                    mb,
                    shift,
                    lo,
                    hi,
                    fused,
                };
                values[i + 1] = Some(y);
                if let Some((j, _)) = act {
                    nodes[j] = QNode::Alias;
                    values[j + 1] = Some(y);
                    i = j;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(QModel {
        graph: g.clone(),
        weights: w.clone(),
        values,
        nodes,
        calibration: how,
        requantizer,
        calibration_examples: inputs.len() / g.input_len(),
    })
}

/// The uint8 clamp of an output with parameters `y` and a fused activation clamping at
/// `cap` (ReLU: infinite, `Clip(0, c)`: `c`), and the activation's name; `[0, 255]` without.
pub(super) fn clamp_of(cap: Option<f32>, y: QParams) -> (u8, u8, Option<&'static str>) {
    match cap {
        None => (0, 255, None),
        Some(c) if c.is_finite() => (y.quantize(0.0), y.quantize(c), Some("clip")),
        Some(_) => (y.quantize(0.0), 255, Some("relu")),
    }
}

/// Two multipliers over one shift, each below `2^31`, for an add's two inputs.
pub(super) fn add_multipliers(ra: f32, rb: f32) -> (i64, i64, u32) {
    let big = (ra as f64).max(rb as f64);
    // The largest multiplier gets 30 significant bits.
    let e = big.log2().floor() as i32 + 1;
    let shift = (30 - e).clamp(1, 62) as u32;
    let f = 2f64.powi(shift as i32);
    (
        (ra as f64 * f).round() as i64,
        (rb as f64 * f).round() as i64,
        shift,
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn quantize_linear(
    w: &Weights,
    i: usize,
    x: QParams,
    y: QParams,
    lo: u8,
    hi: u8,
    fused: Option<&'static str>,
    requantizer: Requantizer,
) -> QLinear {
    let t = w.node(i);
    let k = t[0].as_slice().expect("standard layout");
    let cout = *t[0].shape().last().expect("rank >= 2");
    let mut w_scale = vec![0f32; cout];
    for (j, v) in k.iter().enumerate() {
        let c = j % cout;
        w_scale[c] = w_scale[c].max(v.abs());
    }
    for s in &mut w_scale {
        *s = if *s > 0.0 && s.is_finite() {
            *s / 127.0
        } else {
            1.0
        };
    }
    let wq = k
        .iter()
        .enumerate()
        .map(|(j, v)| (v / w_scale[j % cout]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let bias = (0..cout)
        .map(|c| {
            t.get(1).map_or(0, |b| {
                (b[c] as f64 / (x.scale as f64 * w_scale[c] as f64))
                    .round()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
        })
        .collect();
    let reals: Vec<f64> = (0..cout)
        .map(|c| x.scale as f64 * w_scale[c] as f64 / y.scale as f64)
        .collect();
    let requant = Requant::uniform(&reals);
    let scale = (0..cout)
        .map(|c| (x.scale as f64 * w_scale[c] as f64 / y.scale as f64) as f32)
        .collect();
    QLinear {
        w: wq,
        w_scale,
        bias,
        requant,
        scale,
        requantizer,
        x,
        y,
        lo,
        hi,
        fused,
    }
}
