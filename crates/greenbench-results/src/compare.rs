//! `greenbench compare BASE NEW`: per-cell time ratios with a verdict that respects the
//! measured intervals, so noise gets no verdict.

use crate::{Loaded, key, ok_cells};
use std::collections::BTreeMap;

/// The verdict on one cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Slower beyond the threshold, and the 95 % intervals do not overlap.
    Regression,
    /// Faster beyond the threshold, and the intervals do not overlap.
    Improvement,
    /// The intervals overlap, or the change is under the threshold: no verdict on noise.
    NoChange,
}

/// One compared cell.
#[derive(Clone, Debug)]
pub struct Row {
    pub key: String,
    pub base_s: f64,
    pub new_s: f64,
    /// new / base median time per example.
    pub ratio: f64,
    pub verdict: Verdict,
    /// Either side is flagged unstable: a verdict on it says little.
    pub unstable: bool,
}

/// The whole comparison.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Cells only in the base file.
    pub only_base: Vec<String>,
    /// Cells only in the new file.
    pub only_new: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count()
    }
}

/// Compare `new` against `base`; `threshold` is a fraction (0.05 = 5 %).
pub fn compare(base: &Loaded, new: &Loaded, threshold: f64) -> Comparison {
    let index = |l: &Loaded| -> BTreeMap<String, (f64, f64, f64, bool)> {
        ok_cells(std::slice::from_ref(l))
            .into_iter()
            .map(|(l, c)| {
                let t = c.time_per_example_s.as_ref().expect("ok cells have times");
                (
                    key(l, c),
                    (t.median, t.ci95_low, t.ci95_high, c.is_unstable()),
                )
            })
            .collect()
    };
    let b = index(base);
    let n = index(new);
    let mut out = Comparison::default();
    for (k, &(bm, blo, bhi, bu)) in &b {
        let Some(&(nm, nlo, nhi, nu)) = n.get(k) else {
            out.only_base.push(k.clone());
            continue;
        };
        let ratio = nm / bm;
        let verdict = if ratio > 1.0 + threshold && nlo > bhi {
            Verdict::Regression
        } else if ratio < 1.0 - threshold && nhi < blo {
            Verdict::Improvement
        } else {
            Verdict::NoChange
        };
        out.rows.push(Row {
            key: k.clone(),
            base_s: bm,
            new_s: nm,
            ratio,
            verdict,
            unstable: bu || nu,
        });
    }
    out.only_new = n.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    out
}
