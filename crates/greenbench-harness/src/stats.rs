//! Statistics over measurement windows.

use serde::{Deserialize, Serialize};

/// Windows whose coefficient of variation exceeds this make a cell `unstable`. A quiet
/// machine stays well below it: the committed full-profile baseline's worst cell is 5.4 %,
/// the README's quick sample's 3.9 %; on a shared cloud VM with noisy neighbours cells read
/// 8 % to 38 % (issue 18's three back-to-back runs).
pub const UNSTABLE_CV: f64 = 0.10;

/// The warning an unstable cell carries: its CV, and what usually causes it.
pub fn unstable_warning(cv: f64) -> String {
    format!(
        "unstable: the windows' coefficient of variation is {:.0} % (above {:.0} %); likely causes: other load on this machine or its host (a VM's steal time), CPU frequency scaling or thermal throttling. Re-run on a quiet machine, or with a longer profile",
        100.0 * cv,
        100.0 * UNSTABLE_CV
    )
}

/// Summary of per-window values (e.g. seconds per example), with the raw values kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    /// Lower end of a distribution-free interval for the median (order statistics).
    pub ci95_low: f64,
    /// Upper end of that interval.
    pub ci95_high: f64,
    /// Actual coverage of the interval: order statistics give exact binomial coverage, which
    /// is 93.75 % with 5 windows (the interval is then [min, max]) and >= 95 % from 6 on.
    pub ci_coverage: f64,
    /// Coefficient of variation: sample standard deviation / mean.
    pub cv: f64,
    /// The raw per-window values, in measurement order.
    pub samples: Vec<f64>,
}

fn binom_cdf_half(k: usize, n: usize) -> f64 {
    // P(B <= k), B ~ Binomial(n, 1/2).
    let mut c = 1.0f64; // C(n, 0)
    let mut sum = 0.0;
    for i in 0..=k {
        if i > 0 {
            c = c * (n - i + 1) as f64 / i as f64;
        }
        sum += c;
    }
    sum / 2f64.powi(n as i32)
}

/// Median of a slice (NaN-free).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Summarise `samples` (at least one).
pub fn summarize(samples: &[f64]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    let n = samples.len();
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    // Largest j >= 1 with P(B <= j - 1) <= 0.025: [x_(j), x_(n+1-j)] covers the median with
    // probability 1 - 2 P(B <= j - 1). Falls back to [min, max] when n is too small.
    let mut j = 1;
    while j < n / 2 && binom_cdf_half(j, n) <= 0.025 {
        j += 1;
    }
    let coverage = 1.0 - 2.0 * binom_cdf_half(j - 1, n);
    let mean = s.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    Summary {
        median: median(&s),
        ci95_low: s[j - 1],
        ci95_high: s[n - j],
        ci_coverage: coverage,
        cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        samples: samples.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_windows_give_min_max_at_93_75() {
        let s = summarize(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(s.median, 3.0);
        assert_eq!((s.ci95_low, s.ci95_high), (1.0, 5.0));
        assert!((s.ci_coverage - 0.9375).abs() < 1e-12);
        assert_eq!(s.samples, vec![5.0, 1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn ten_windows_trim_one_each_side() {
        let v: Vec<f64> = (1..=10).map(|x| x as f64).collect();
        let s = summarize(&v);
        // P(B <= 1) = 11/1024 <= 0.025, P(B <= 2) = 56/1024 > 0.025 -> j = 2.
        assert_eq!((s.ci95_low, s.ci95_high), (2.0, 9.0));
        assert!((s.ci_coverage - (1.0 - 22.0 / 1024.0)).abs() < 1e-12);
        assert_eq!(s.median, 5.5);
        // cv of 1..10: sd 3.0277 / mean 5.5.
        assert!((s.cv - 3.027_650_354 / 5.5).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn interval_brackets_median(v in proptest::collection::vec(0.001f64..10.0, 5..40)) {
            let s = summarize(&v);
            prop_assert!(s.ci95_low <= s.median && s.median <= s.ci95_high);
            prop_assert!(s.ci_coverage >= 0.93 && s.ci_coverage < 1.0);
            if v.len() >= 6 { prop_assert!(s.ci_coverage >= 0.95); }
        }
    }
}
