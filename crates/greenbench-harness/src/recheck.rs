//! Measurements taken again after a backend's cells, and what their disagreement means: the
//! matmul peak (a changed machine makes % of peak unsound) and the run's first cell (a
//! sustained slowdown at the start of an invocation passes every within-cell check: its
//! windows agree with each other, they are all slow).

use crate::record::{Cell, Peak, PeakAgain, Remeasured};
use crate::stats::Summary;

/// The first cell and its measurement after the other cells must differ by more than this
/// share of the faster median (beyond disjoint 95 % intervals) to flag the run: two tight
/// intervals a few percent apart are the ordinary drift of a shared machine, not a verdict.
pub const FIRST_CELL_TOLERANCE: f64 = 0.10;

/// The start of the warning a flagged first cell carries.
pub const FIRST_CELL_WARNING: &str = "first cell of the run disagrees with itself";

/// Whether two 95 % intervals do not overlap.
fn disjoint(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 > b.1 || a.1 < b.0
}

/// Record the peak measured again after the cells in `p`, warning when the two 95 %
/// intervals do not overlap.
pub fn recheck_peak(p: &mut Peak, again: &Peak) {
    p.after = Some(PeakAgain {
        gflops: again.gflops,
        gflops_ci95_low: again.gflops_ci95_low,
        gflops_ci95_high: again.gflops_ci95_high,
        best_gflops: again.best_gflops,
    });
    let apart = disjoint(
        (again.gflops_ci95_low, again.gflops_ci95_high),
        (p.gflops_ci95_low, p.gflops_ci95_high),
    );
    p.warning = apart.then(|| {
        format!(
            "the peak measured after the cells ({:.1} GFPO/s [{:.1}, {:.1}]) disagrees with the one before ({:.1} [{:.1}, {:.1}]): the machine's state changed during the run; % of peak is taken against the better",
            again.gflops,
            again.gflops_ci95_low,
            again.gflops_ci95_high,
            p.gflops,
            p.gflops_ci95_low,
            p.gflops_ci95_high
        )
    });
}

/// Whether a first cell measured `before` was slowed down against its measurement `after`
/// the other cells: 95 % intervals apart and the first median more than
/// [`FIRST_CELL_TOLERANCE`] above the second. The other way round (the machine got slower
/// later) says nothing against the first cell: the later cells carry their own checks (CV,
/// steal, other processes), and the note in [`Remeasured`] keeps the figure.
pub fn first_cell_disagrees(before: &Summary, after: &Summary) -> bool {
    disjoint(
        (before.ci95_low, before.ci95_high),
        (after.ci95_low, after.ci95_high),
    ) && before.median > (1.0 + FIRST_CELL_TOLERANCE) * after.median
}

/// Record `again` (the run's first cell on this backend, measured after its other cells) in
/// `first`; when the two disagree, flag the cell unstable (its mark in every table, `compare`
/// and the report) with a warning saying which way and by how much. The cell keeps its first
/// figure: neither measurement is preferred after the fact.
pub fn recheck_first_cell(first: &mut Cell, again: &Cell) {
    let (Some(before), Some(after)) = (&first.time_per_example_s, &again.time_per_example_s) else {
        return;
    };
    let disagrees = first_cell_disagrees(before, after);
    first.remeasured = Some(Remeasured {
        time_per_example_s: after.clone(),
        energy_per_example_j: again.energy_per_example_j,
        cpu_mhz: again.cpu_mhz,
        disagrees,
    });
    if !disagrees {
        return;
    }
    first.unstable = true;
    let ratio = before.median / after.median;
    first.warnings.push(format!(
        "{FIRST_CELL_WARNING}: measured first it took {} us/example [{}, {}], measured again after the run's other cells {} us/example [{}, {}] ({ratio:.2}x slower at the start): the machine was slower when the run began (a virtual machine's host or the CPU clock ramping up from idle, a job that ended meanwhile); every cell measured before the change is suspect, so re-run before publishing",
        us(before.median),
        us(before.ci95_low),
        us(before.ci95_high),
        us(after.median),
        us(after.ci95_low),
        us(after.ci95_high),
    ));
    if let (Some(a), Some(b), Some(slower)) = (
        &first.machine_reference,
        &again.machine_reference,
        // The first measurement's reference time over the second's.
        crate::reference::reference_ratio(again, first),
    ) {
        let w = first.warnings.last_mut().expect("pushed above");
        w.push_str(&format!(
            "; the machine reference ({n}^3 matmul beside the windows) read {:.1} GFPO/s during the first measurement and {:.1} during the second ({slower:.2}x): {}",
            a.gflops,
            b.gflops,
            if crate::reference::beyond_tolerance(slower) {
                "the whole machine was slower"
            } else {
                "not the whole machine's speed, so rather this cell's start (a cold cache, page faults, the clock of its cores, another process)"
            },
            n = a.n,
        ));
    }
}

fn us(s: f64) -> String {
    format!("{:.2}", s * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(median: f64, lo: f64, hi: f64) -> Summary {
        Summary {
            median,
            ci95_low: lo,
            ci95_high: hi,
            ci_coverage: 0.95,
            cv: 0.01,
            samples: vec![median; 5],
        }
    }

    #[test]
    fn disagreement_needs_disjoint_intervals_and_a_real_gap() {
        // 2x slower at the start, tight intervals: flagged.
        assert!(first_cell_disagrees(
            &summary(2.0, 1.95, 2.05),
            &summary(1.0, 0.98, 1.02)
        ));
        // Faster at the start: the machine slowed down later, which is the later cells'
        // matter, not the first one's.
        assert!(!first_cell_disagrees(
            &summary(1.0, 0.98, 1.02),
            &summary(1.5, 1.45, 1.55)
        ));
        // Overlapping intervals: not flagged, however far the medians.
        assert!(!first_cell_disagrees(
            &summary(2.0, 0.9, 2.1),
            &summary(1.0, 0.95, 1.05)
        ));
        // Disjoint but 3 % apart: ordinary drift, not flagged.
        assert!(!first_cell_disagrees(
            &summary(1.03, 1.025, 1.035),
            &summary(1.0, 0.995, 1.005)
        ));
    }
}
