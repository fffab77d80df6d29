//! The integer arithmetic of the scheme, exactly as every kernel must reproduce it: a value's
//! scale and zero point, the fixed-point and fp32 requantizers and their roundings, the
//! average pool's and the residual add's integer steps.

use serde::{Deserialize, Serialize};

/// The numeric precision a model runs in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Fp32,
    Int8,
    /// Weight layers on bf16 operands with fp32 accumulation ([`crate::bf16`]).
    Bf16,
}

impl Precision {
    /// Every precision, in the order tables list them.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Int8, Precision::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown precision `{s}`: valid precisions are {}",
                    Precision::ALL.map(|p| p.name()).join(", ")
                )
            })
    }
}

/// Scale and zero point of a uint8 tensor: `x = (q - zero) * scale`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    pub scale: f32,
    pub zero: i32,
}

impl QParams {
    /// The parameters for values in `[min, max]` (widened to contain 0).
    pub fn from_range(min: f32, max: f32) -> QParams {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let range = hi - lo;
        if !(range.is_finite() && range > f32::MIN_POSITIVE * 255.0) {
            return QParams {
                scale: 1.0,
                zero: 0,
            };
        }
        let scale = range / 255.0;
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as i32;
        QParams { scale, zero }
    }

    /// `clamp(round(x / scale) + zero, 0, 255)`, half to even (ONNX `QuantizeLinear`'s rule;
    /// it also vectorises). NaN maps to the zero point.
    #[inline]
    pub fn quantize(&self, x: f32) -> u8 {
        let q = (x / self.scale).round_ties_even();
        let q = if q.is_nan() { 0.0 } else { q };
        (q + self.zero as f32).clamp(0.0, 255.0) as u8
    }

    #[inline]
    pub fn dequantize(&self, q: u8) -> f32 {
        (q as i32 - self.zero) as f32 * self.scale
    }
}

/// A positive real multiplier as `multiplier * 2^-shift`, `multiplier` in `[2^30, 2^31)`
/// (or 0 for a multiplier below `2^-31`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: u32,
}

impl Requant {
    /// The fixed-point form of `real` (> 0; `real` up to `2^30` is representable). Relative
    /// error below `2^-31`.
    pub fn new(real: f64) -> Requant {
        if !(real.is_finite() && real > 0.0) {
            return Requant {
                multiplier: 0,
                shift: 1,
            };
        }
        // real = f * 2^e, f in [0.5, 1).
        let e = real.log2().floor() as i32 + 1;
        let mut f = real / 2f64.powi(e);
        let mut e = e;
        // Guard log2's rounding at exact powers of two.
        if f >= 1.0 {
            f /= 2.0;
            e += 1;
        } else if f < 0.5 {
            f *= 2.0;
            e -= 1;
        }
        let mut m = (f * 2f64.powi(31)).round() as i64;
        if m == 1 << 31 {
            m = 1 << 30;
            e += 1;
        }
        let shift = 31 - e;
        if shift > 62 {
            return Requant {
                multiplier: 0,
                shift: 1,
            };
        }
        Requant {
            multiplier: m as i32,
            shift: shift.max(1) as u32,
        }
    }

    /// Fixed-point forms of `reals` (> 0) sharing one shift: the largest gets a multiplier in
    /// `[2^30, 2^31)`, the others the same scale (`round(real * 2^shift)`), so kernels shift a
    /// whole vector by one count. A real far below the largest keeps fewer bits (one
    /// `2^-20` of it still has 10); the relative error stays below `2^-31` of the largest.
    pub fn uniform(reals: &[f64]) -> Vec<Requant> {
        let top = reals
            .iter()
            .copied()
            .filter(|r| r.is_finite() && *r > 0.0)
            .fold(0.0, f64::max);
        if top == 0.0 {
            return reals.iter().map(|&r| Requant::new(r)).collect();
        }
        let shift = Requant::new(top).shift;
        let f = 2f64.powi(shift as i32);
        reals
            .iter()
            .map(|&r| {
                let m = if r.is_finite() && r > 0.0 {
                    (r * f).round().min(i32::MAX as f64) as i32
                } else {
                    0
                };
                Requant {
                    multiplier: m,
                    shift,
                }
            })
            .collect()
    }

    /// `round(acc * multiplier / 2^shift)`, ties up (toward +inf), exact for `|acc| < 2^32`:
    /// `(acc * multiplier + 2^(shift-1)) >> shift`, TFLite's single rounding. (Half up rather
    /// than half away from zero: it needs no sign correction, two vector instructions fewer
    /// per 8 products in the kernels' epilogues.)
    #[inline]
    pub fn apply(&self, acc: i64) -> i64 {
        round_shift_up(acc * self.multiplier as i64, self.shift)
    }

    /// The real multiplier this stands for.
    pub fn real(&self) -> f64 {
        self.multiplier as f64 / 2f64.powi(self.shift as i32)
    }
}

/// `round(p / 2^s)`, half away from zero (`s` in 1..=62).
#[inline]
pub fn round_shift(p: i64, s: u32) -> i64 {
    let half = 1i64 << (s - 1);
    if p >= 0 {
        (p + half) >> s
    } else {
        -((half - p) >> s)
    }
}

/// `round(p / 2^s)`, ties up (toward +inf): `(p + 2^(s-1)) >> s` (`s` in 1..=62, `|p| <
/// 2^62`). The fixed-point requantizer's rounding.
#[inline]
pub fn round_shift_up(p: i64, s: u32) -> i64 {
    (p + (1i64 << (s - 1))) >> s
}

/// How an int32 accumulator becomes a uint8 output (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requantizer {
    /// Fixed-point multiplier and shift, 64-bit exact, one rounding half up.
    #[default]
    Fixed,
    /// fp32 multiplier, half to even.
    Fp32,
}

impl std::str::FromStr for Requantizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "fixed" => Ok(Requantizer::Fixed),
            "fp32" => Ok(Requantizer::Fp32),
            _ => Err(format!(
                "unknown requantizer `{s}`: use `fixed` (fixed-point multiplier and shift) or `fp32`"
            )),
        }
    }
}

impl Requantizer {
    pub fn name(self) -> &'static str {
        match self {
            Requantizer::Fixed => "fixed",
            Requantizer::Fp32 => "fp32",
        }
    }
}

/// The average-pool requantization: `z + round(sum / n)`, half away from zero.
#[inline]
pub fn avg_round(sum: i64, n: usize, zero: i32) -> u8 {
    let n = n as i64;
    let q = if sum >= 0 {
        (2 * sum + n) / (2 * n)
    } else {
        -((n - 2 * sum) / (2 * n))
    };
    (q + zero as i64).clamp(0, 255) as u8
}

/// The residual add's integer arithmetic on one element.
#[inline]
pub fn add_q(a: u8, b: u8, za: i32, zb: i32, zy: i32, node: (i64, i64, u32, u8, u8)) -> u8 {
    let (ma, mb, shift, lo, hi) = node;
    let p = (a as i64 - za as i64) * ma + (b as i64 - zb as i64) * mb;
    (round_shift(p, shift) + zy as i64).clamp(lo as i64, hi as i64) as u8
}
