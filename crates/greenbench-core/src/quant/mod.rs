//! Post-training static int8 quantization: a graph pass next to batch-norm folding, so every
//! backend, the exporter and the reference interpreter see one quantized model.
//!
//! The scheme (TFLite's / ONNX Runtime's QDQ scheme; every rounding stated):
//!
//! * **Weights**: symmetric int8 per output channel, `q = round(w / s_w)` in `[-127, 127]`,
//!   `s_w = max|w| / 127` over the channel (1 for an all-zero channel).
//! * **Activations**: asymmetric uint8 per tensor, `q = clamp(round(x / s) + z, 0, 255)`
//!   rounding half to even (as ONNX `QuantizeLinear` does), with
//!   `[min, max]` from calibration widened to contain 0 (so zero padding is exact) and
//!   `s = (max - min) / 255`, `z = round(-min / s)`. A zero range (a constant-zero tensor)
//!   gets `s = 1, z = 0` rather than a division by zero.
//! * **Products**: int32 accumulation of `(q_x - z_x) * q_w`; the bias in int32 at scale
//!   `s_x * s_w` (`round(b / (s_x s_w))`, saturated).
//! * **Requantization**, two ways ([`Requantizer`]), each exactly reproducible so every
//!   kernel is checked bit for bit:
//!   - `fixed` (TFLite's single-rounding `MultiplyByQuantizedMultiplier`, XNNPACK's
//!     `rndnu`): the real multiplier `s_x s_w / s_y` as a fixed-point `m * 2^-shift` with `m`
//!     in `[2^30, 2^31)`, applied exactly in 64 bits with one rounding, **half up** (ties
//!     toward +inf): `(acc * m + 2^(shift-1)) >> shift`;
//!   - `fp32` (XNNPACK's and ONNX Runtime's): `acc` converted to fp32 (round to nearest
//!     even), multiplied by the fp32 multiplier, clamped, rounded **half to even** (what
//!     `cvtps2dq` does, `f32::round_ties_even` in the reference).
//!
//!   then `+ z_y` and a clamp that is also the fused ReLU / ReLU6.
//! * Elsewhere (weights, biases, zero points, pools, adds) `round` is half away from zero.
//!
//! Which nodes run in int8: convolutions (incl. depthwise and grouped) and dense layers, with a
//! following ReLU or `Clip(0, c)` fused; max pooling, average pooling, global average pooling,
//! flatten and residual adds on uint8 values. Everything else (softmax, layer norm, GELU,
//! attention, embeddings, ...) stays fp32; a uint8 value read by an fp32 node is dequantized
//! at that border, and an fp32 value read by an int8 node is quantized at it.

//!
//! By concern: [`scheme`] (the arithmetic), [`model`] (the quantized model's types),
//! [`pass`] (calibration and quantization), [`cost`] (counting), [`reference`] (the plain-loop
//! interpreter). Everything is re-exported here as `greenbench_core::quant::X`.

mod cost;
mod model;
mod pass;
mod reference;
mod scheme;

pub use cost::*;
pub use model::*;
pub use pass::*;
pub use reference::*;
pub use scheme::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::fold_batch_norm;
    use crate::graph::Op;
    use crate::reference::run_reference;
    use crate::weights::{generate_inputs, generate_weights};
    use crate::zoo::{MODEL_NAMES, zoo_model};
    use proptest::prelude::*;

    #[test]
    fn precision_names_parse_and_bad_ones_list_the_valid() {
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert_eq!(" fp32".parse::<Precision>(), Ok(Precision::Fp32));
        let e = "int4".parse::<Precision>().unwrap_err();
        assert!(e.contains("int4") && e.contains("fp32, int8"), "{e}");
        assert_eq!(
            "percentile:99.9".parse::<Calibration>(),
            Ok(Calibration::Percentile { p: 99.9 })
        );
        assert!("percentile:20".parse::<Calibration>().is_err());
        assert!("max".parse::<Calibration>().is_err());
    }

    #[test]
    fn zero_and_degenerate_ranges_do_not_divide_by_zero() {
        for (lo, hi) in [
            (0.0, 0.0),
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
            (3.0, 3.0),
        ] {
            let p = QParams::from_range(lo, hi);
            assert!(p.scale.is_finite() && p.scale > 0.0, "{lo} {hi}: {p:?}");
            assert!((0..=255).contains(&p.zero));
            assert_eq!(p.dequantize(p.quantize(0.0)), 0.0, "0 is exact");
        }
        // A constant positive tensor still gets a usable step (the range is widened to 0).
        let p = QParams::from_range(3.0, 3.0);
        assert!((p.dequantize(p.quantize(3.0)) - 3.0).abs() <= p.scale / 2.0);
    }

    proptest! {
        #[test]
        fn quantize_dequantize_round_trips(lo in -100f32..0.0, span in 1e-3f32..200.0, t in 0f32..1.0) {
            let p = QParams::from_range(lo, lo + span);
            for q in 0..=255u8 {
                prop_assert_eq!(p.quantize(p.dequantize(q)), q);
            }
            // Inside the range, the error is at most half a step (plus float rounding).
            let x = lo.min(0.0) + t * (lo + span).max(0.0) - t * lo.min(0.0);
            let x = x.clamp(lo.min(0.0), (lo + span).max(0.0));
            let back = p.dequantize(p.quantize(x));
            prop_assert!((back - x).abs() <= p.scale * 0.5001 + 1e-6, "{} -> {}", x, back);
            prop_assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        }

        #[test]
        fn requantizer_matches_a_wide_integer_reference(
            log2 in -40f64..8.0, frac in 0f64..1.0, acc in any::<i32>(),
        ) {
            let real = 2f64.powf(log2) * (1.0 + frac);
            let r = Requant::new(real);
            if r.multiplier != 0 {
                prop_assert!((1 << 30..1i64 << 31).contains(&(r.multiplier as i64)));
                prop_assert!(((r.real() - real) / real).abs() < 2f64.powi(-30));
            }
            // The exact rounding, ties up (toward +inf), in 128 bits: the quotient rounded
            // down, plus one where the remainder is half the divisor or more.
            let p = acc as i128 * r.multiplier as i128;
            let d = 1i128 << r.shift;
            let (n, rem) = (p.div_euclid(d), p.rem_euclid(d));
            let want = if 2 * rem >= d { n + 1 } else { n };
            prop_assert_eq!(r.apply(acc as i64) as i128, want);
        }

        #[test]
        fn uniform_multipliers_share_a_shift(reals in proptest::collection::vec(1e-6f64..0.9, 1..20)) {
            let rq = Requant::uniform(&reals);
            let top = reals.iter().copied().fold(0.0, f64::max);
            let shift = rq[0].shift;
            for (r, q) in reals.iter().zip(&rq) {
                prop_assert_eq!(q.shift, shift);
                prop_assert!(q.multiplier >= 0 && (q.multiplier as i64) < 1i64 << 31);
                prop_assert!((q.real() - r).abs() <= top * 2f64.powi(-30));
            }
        }

        #[test]
        fn avg_round_is_half_away_from_zero(sum in -100_000i64..100_000, n in 1usize..500) {
            let exact = sum as f64 / n as f64;
            let want = (exact.round() as i64).clamp(-1000, 1000);
            let got = avg_round(sum, n, 0) as i64;
            prop_assert_eq!(got, want.clamp(0, 255));
        }
    }

    #[test]
    fn zoo_models_quantize_and_stay_close_to_fp32() {
        for name in MODEL_NAMES {
            for requantizer in [Requantizer::Fixed, Requantizer::Fp32] {
                let g = zoo_model(name).unwrap();
                let w = generate_weights(&g, 3);
                let (g, w) = fold_batch_norm(&g, &w).unwrap();
                // Calibrated on the examples it runs, so the check is of the arithmetic, not
                // of how well 8 random inputs cover another's ranges.
                let x = generate_inputs(&g, 2, 3, 0);
                let cfg = QuantConfig {
                    requantizer,
                    ..Default::default()
                };
                let qm = quantize(&g, &w, &x, &cfg).unwrap();
                let (int8, fp32) = qm.counts();
                assert!(int8 > 0, "{name}: nothing quantized");
                assert!(qm.int8_macs() > 0, "{name}");
                let want = run_reference(&g, &w, &x, 2);
                let got = run_reference_q(&qm, &x, 2);
                let d = crate::reference::diff(&got, &want);
                // Random weights and 8-bit steps: a few percent of the output's scale.
                assert!(
                    d.max_rel < 0.1,
                    "{name} {requantizer:?} ({int8} int8, {fp32} fp32 nodes): {d:?}"
                );
                assert!(got.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn the_two_requantizers_agree_within_one_step() {
        // Same scales, two roundings: outputs differ by at most one step, and rarely.
        let l = |requantizer| QLinear {
            w: vec![],
            w_scale: vec![],
            bias: vec![],
            requant: vec![Requant::new(0.0123)],
            scale: vec![0.0123],
            requantizer,
            x: QParams {
                scale: 1.0,
                zero: 0,
            },
            y: QParams {
                scale: 1.0,
                zero: 128,
            },
            lo: 0,
            hi: 255,
            fused: None,
        };
        let (a, b) = (l(Requantizer::Fixed), l(Requantizer::Fp32));
        let mut differ = 0;
        for acc in -20_000..20_000 {
            let (p, q) = (a.finish(acc, 0), b.finish(acc, 0));
            assert!((p as i32 - q as i32).abs() <= 1, "{acc}: {p} vs {q}");
            differ += (p != q) as usize;
        }
        assert!(differ < 400, "{differ} of 40000 differ");
    }

    #[test]
    fn int8_work_is_counted_apart_from_fpo() {
        let g = zoo_model("mlp").unwrap();
        let w = generate_weights(&g, 1);
        let qm = quantize(
            &g,
            &w,
            &generate_inputs(&g, 2, 1, 0),
            &QuantConfig::default(),
        )
        .unwrap();
        let (q, per) = qm.cost();
        let fp = crate::cost::graph_cost(&g).total;
        assert_eq!(q.macs, fp.macs, "MACs are the same work");
        assert_eq!(q.int8_macs, fp.macs, "every MAC of the mlp is int8");
        assert_eq!(q.params, fp.params);
        // What is left as FPO: the softmax, the input's quantize, the dequantize before the
        // softmax; far below the fp32 model's 2 x MACs.
        let inl = g.input_len() as u64;
        let logits = g.value_shape(g.nodes.len() - 1).iter().product::<usize>() as u64;
        let softmax = crate::cost::node_cost(&g, g.nodes.len() - 1).fpo();
        assert_eq!(q.fpo, softmax + 2 * inl + logits);
        assert!(q.int_ops > 2 * q.int8_macs);
        assert_eq!(per.len(), g.nodes.len());
    }

    #[test]
    fn relu_and_clip_fuse_into_the_producer() {
        let g = zoo_model("ds-cnn").unwrap();
        let w = generate_weights(&g, 1);
        let (g, w) = fold_batch_norm(&g, &w).unwrap();
        let qm = quantize(
            &g,
            &w,
            &generate_inputs(&g, 2, 1, 0),
            &QuantConfig::default(),
        )
        .unwrap();
        for (i, n) in qm.nodes.iter().enumerate() {
            if matches!(g.nodes[i].op, Op::Relu) {
                assert_eq!(*n, QNode::Alias, "{}", g.nodes[i].name);
                let QNode::Linear(l) = &qm.nodes[i - 1] else {
                    panic!("relu after a non-linear node")
                };
                assert_eq!(l.fused, Some("relu"));
                assert_eq!(l.lo as i32, l.y.zero);
            }
        }
    }

    #[test]
    fn percentile_calibration_narrows_ranges() {
        let g = zoo_model("mlp").unwrap();
        let w = generate_weights(&g, 1);
        let x = generate_inputs(&g, 16, 1, 0);
        let a = quantize(&g, &w, &x, &QuantConfig::default()).unwrap();
        let b = quantize(
            &g,
            &w,
            &x,
            &QuantConfig {
                calibration: Calibration::Percentile { p: 99.0 },
                ..Default::default()
            },
        )
        .unwrap();
        let mut narrower = 0;
        for (p, q) in a.values.iter().zip(&b.values) {
            if let (Some(p), Some(q)) = (p, q) {
                assert!(q.scale <= p.scale * 1.0001);
                narrower += (q.scale < p.scale) as usize;
            }
        }
        assert!(narrower > 0);
    }
}
