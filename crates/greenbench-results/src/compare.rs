//! `greenbench compare BASE NEW`: per-cell time ratios with a verdict that accounts for the
//! variation between runs, not only within one.
//!
//! One run's 95 % interval describes the windows of that run; two invocations of the same
//! binary on a VM differ by more than that (other tenants, frequency, memory placement), so
//! intervals alone cry wolf. A verdict therefore needs the change to exceed the **margin**,
//! the larger of the threshold and the run-to-run variation (`noise`, measured on the dev VM:
//! [`DEFAULT_NOISE`]; `--noise` for another machine), and the two runs' intervals to be
//! disjoint. Where neither a change beyond the margin nor its absence can be told, the
//! verdict is **inconclusive**, never "no change".

use crate::{Loaded, key, ok_cells};
use std::collections::BTreeMap;

/// Run-to-run variation of a cell's median time per example between back-to-back
/// invocations of one binary on the 2-core dev VM (AMD EPYC, 2026-12-03, a day of noisy
/// neighbours): the largest |new / base - 1| over the 14 cells of 10 back-to-back quick
/// suites, each against the next (140 pairs): 0.745 ([`run_to_run_noise`]; docs/COMPARE.md).
/// Measure yours with `compare --noise-from`.
pub const DEFAULT_NOISE: f64 = 0.745;

/// Two cells' machine references agree when their ratio is within this of 1
/// (`greenbench_harness::reference`): the machine ran at the same speed for both.
pub const REFERENCE_AGREE: f64 = 0.05;

/// Run-to-run variation of cells whose machine references agree ([`REFERENCE_AGREE`]): the
/// largest |new / base - 1| over such pairs of two batches of 10 back-to-back quick suites
/// (Xeon with AMX, 2026-12-06): 41.6 % over the first batch's 48, 47.4 % over the second's 79
/// (all 140 pairs of each: 92.9 % and 73.2 %) ([`steady_run_to_run_noise`]; docs/COMPARE.md).
pub const DEFAULT_STEADY_NOISE: f64 = 0.474;

/// The run-to-run variation shown by repeated runs of one suite (`files`, in the order they
/// ran): the largest |next / this - 1| of any cell's median over each run and the next (the
/// last with the first), and how many pairs it rests on. The largest, not a percentile: a
/// compare of a whole suite (14 cells) must rarely raise a false alarm, and with 140 pairs the
/// largest is exceeded by about one identical pair in 140, so by about one compare in 20
/// (measured: docs/COMPARE.md). `None` with fewer than two files or no cell in common.
pub fn run_to_run_noise(files: &[Loaded]) -> Option<(f64, usize)> {
    largest_change(files, false)
}

/// As [`run_to_run_noise`], over the pairs of cells whose machine references agree
/// ([`REFERENCE_AGREE`]): the variation left when the machine ran at the same speed.
pub fn steady_run_to_run_noise(files: &[Loaded]) -> Option<(f64, usize)> {
    largest_change(files, true)
}

/// The largest |next / this - 1| of the cells' medians over consecutive files (the last
/// with the first), of every pair or of those whose references agree (`steady`).
fn largest_change(files: &[Loaded], steady: bool) -> Option<(f64, usize)> {
    let cells: Vec<BTreeMap<String, &greenbench_harness::Cell>> = files
        .iter()
        .map(|l| {
            ok_cells(std::slice::from_ref(l))
                .into_iter()
                .map(|(l, c)| (key(l, c), c))
                .collect()
        })
        .collect();
    if cells.len() < 2 {
        return None;
    }
    let median = |c: &greenbench_harness::Cell| {
        c.time_per_example_s
            .as_ref()
            .expect("ok cells have times")
            .median
    };
    let mut devs: Vec<f64> = Vec::new();
    for i in 0..cells.len() {
        let (a, b) = (&cells[i], &cells[(i + 1) % cells.len()]);
        if cells.len() == 2 && i == 1 {
            break;
        }
        devs.extend(a.iter().filter_map(|(k, x)| {
            let y = b.get(k)?;
            let agree = greenbench_harness::reference::reference_ratio(x, y)
                .is_some_and(|r| (r - 1.0).abs() <= REFERENCE_AGREE);
            (!steady || agree).then(|| (median(y) / median(x) - 1.0).abs())
        }));
    }
    if devs.is_empty() {
        return None;
    }
    let max = devs.iter().copied().fold(0.0, f64::max);
    Some((max, devs.len()))
}

/// The verdict on one cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Slower beyond the margin, and the 95 % intervals do not overlap.
    Regression,
    /// Faster beyond the margin, and the intervals do not overlap.
    Improvement,
    /// The ratio's whole range (from the two intervals) lies within +-margin: no change
    /// larger than the margin.
    NoChange,
    /// Neither: the data cannot tell a change beyond the margin from none.
    Inconclusive,
    /// Slower or faster beyond the margin, but the machine's reference matmul (timed beside
    /// both cells, `greenbench_harness::reference`) changed speed by as much: once the
    /// reference's ratio is divided out, what is left lies within the margin. Not counted as
    /// a regression; re-run both on a steady machine.
    MachineChanged,
}

/// How a comparison decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// The smallest change that matters, as a fraction (0.05 = 5 %).
    pub threshold: f64,
    /// Run-to-run variation of this machine, as a fraction ([`DEFAULT_NOISE`] on the dev VM).
    pub noise: f64,
    /// Run-to-run variation of cells whose machine references agree
    /// ([`DEFAULT_STEADY_NOISE`]): the margin's share for them, when below `noise`.
    pub steady_noise: f64,
}

impl Rule {
    /// The smallest change this rule can call: the larger of threshold and noise.
    pub fn margin(&self) -> f64 {
        self.threshold.max(self.noise)
    }

    /// The margin for a cell whose references' ratio is `reference_ratio`: with agreeing
    /// references ([`REFERENCE_AGREE`]) the larger of threshold and the steady noise (never
    /// above [`Rule::margin`]), else [`Rule::margin`].
    pub fn margin_for(&self, reference_ratio: Option<f64>) -> f64 {
        match reference_ratio {
            Some(r) if (r - 1.0).abs() <= REFERENCE_AGREE => {
                self.threshold.max(self.steady_noise.min(self.noise))
            }
            _ => self.margin(),
        }
    }

    /// The verdict on base and new medians and 95 % intervals `(median, low, high)`.
    pub fn verdict(&self, b: (f64, f64, f64), n: (f64, f64, f64)) -> Verdict {
        verdict_within(self.margin(), b, n)
    }

    /// The verdict with [`Rule::margin_for`]'s margin, then: a regression or an improvement
    /// that the machine's change of speed explains (`reference_ratio`, new's reference time
    /// over base's: the time ratio divided by it lies within the margin) is
    /// [`Verdict::MachineChanged`].
    pub fn verdict_beside(
        &self,
        b: (f64, f64, f64),
        n: (f64, f64, f64),
        reference_ratio: Option<f64>,
    ) -> Verdict {
        let m = self.margin_for(reference_ratio);
        let v = verdict_within(m, b, n);
        match (v, reference_ratio) {
            (Verdict::Regression | Verdict::Improvement, Some(r))
                if r > 0.0 && ((n.0 / b.0) / r - 1.0).abs() <= m =>
            {
                Verdict::MachineChanged
            }
            _ => v,
        }
    }
}

/// [`Rule::verdict`] with margin `m`.
fn verdict_within(m: f64, b: (f64, f64, f64), n: (f64, f64, f64)) -> Verdict {
    let ratio = n.0 / b.0;
    // The range of the ratio the two intervals allow.
    let (lo, hi) = (n.1 / b.2, n.2 / b.1);
    if ratio > 1.0 + m && n.1 > b.2 {
        Verdict::Regression
    } else if ratio < 1.0 - m && n.2 < b.1 {
        Verdict::Improvement
    } else if lo >= 1.0 - m && hi <= 1.0 + m {
        Verdict::NoChange
    } else {
        Verdict::Inconclusive
    }
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
    /// New's reference matmul time over base's, where both cells carry one (above 1: the
    /// machine ran slower for the new file).
    pub reference_ratio: Option<f64>,
    /// The margin the verdict used ([`Rule::margin_for`]).
    pub margin: f64,
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
    pub fn count(&self, v: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == v).count()
    }

    pub fn regressions(&self) -> usize {
        self.count(Verdict::Regression)
    }
}

/// Compare `new` against `base` under `rule`. Two files with no cell in common (another
/// host, other models) are an error: there is nothing to decide.
pub fn compare(base: &Loaded, new: &Loaded, rule: Rule) -> Result<Comparison, String> {
    type Entry<'a> = ((f64, f64, f64), bool, &'a greenbench_harness::Cell);
    fn index(l: &Loaded) -> BTreeMap<String, Entry<'_>> {
        ok_cells(std::slice::from_ref(l))
            .into_iter()
            .map(|(l, c)| {
                let t = c.time_per_example_s.as_ref().expect("ok cells have times");
                (
                    key(l, c),
                    ((t.median, t.ci95_low, t.ci95_high), c.is_unstable(), c),
                )
            })
            .collect()
    }
    let b = index(base);
    let n = index(new);
    let mut out = Comparison::default();
    for (k, &(bt, bu, bc)) in &b {
        let Some(&(nt, nu, nc)) = n.get(k) else {
            out.only_base.push(k.clone());
            continue;
        };
        let reference_ratio = greenbench_harness::reference::reference_ratio(bc, nc);
        out.rows.push(Row {
            key: k.clone(),
            base_s: bt.0,
            new_s: nt.0,
            ratio: nt.0 / bt.0,
            verdict: rule.verdict_beside(bt, nt, reference_ratio),
            unstable: bu || nu,
            reference_ratio,
            margin: rule.margin_for(reference_ratio),
        });
    }
    out.only_new = n.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    if out.rows.is_empty() {
        let hosts = |m: &BTreeMap<String, _>| {
            let mut h: Vec<&str> = m
                .keys()
                .filter_map(|k: &String| k.split(" | ").next())
                .collect();
            h.dedup();
            h.join(", ")
        };
        return Err(format!(
            "nothing to compare: no cell (host, model, backend, device, batch, threads) is in both files ({} cell(s) on {} against {} cell(s) on {}); compare runs of the same suite on the same host",
            b.len(),
            hosts(&b),
            n.len(),
            hosts(&n)
        ));
    }
    Ok(out)
}
