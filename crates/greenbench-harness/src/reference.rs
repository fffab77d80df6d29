//! The machine's speed beside every cell: a fixed reference matmul on the cell's backend (on
//! one thread where it has threads: `Backend::prepare_reference`), timed between the cell's measurement windows (outside them: their times and energy
//! readings do not include it). A machine that changes speed during a run (a virtual
//! machine's host, power or thermal limits) passes every within-cell check — the windows
//! agree, they are all slow — and only a fixed workload measured beside each cell shows it.
//! The run flags the cells measured while the reference ran slower than in its fastest cell
//! on that backend, and `compare` does not call a slowdown a regression when the machine's
//! reference slowed down as much.
//!
//! Measured on this project's development VM (Xeon with AMX, 2026-12-06): it swung between
//! two speeds for minutes at a time; a 256^3 matmul read ~170 GFPO/s in the fast one and
//! ~118 in the slow one while lenet5 at batch 32 read ~11 and ~20 us an example. A register
//! FMA loop and a dependent scalar chain did not move: the reference is a matmul, whose
//! loads the slowdown touches.

use crate::record::{Cell, MachineReference};
use crate::stats::summarize;
use greenbench_core::{Backend, BackendError, Prepared};
use std::time::Instant;

/// The reference product's size: `n x n x n`.
pub const REFERENCE_N: usize = 256;

/// Runs of the reference after each window; the fastest is kept (an interrupt or a page
/// fault lengthens one run, not all of them).
pub const REFERENCE_RUNS: usize = 3;

/// A cell's reference median and the run's fastest must be more than this share apart to
/// flag the cell. Medians, not disjoint intervals: on a steady machine the per-window
/// references agree within a few percent, and a cell during which the machine changed speed
/// has a wide interval that would hide it (measured: ds-cnn b32 with references of 126, 130,
/// 177, 128, 116 GFPO/s by window, its interval [116, 177] touching the fastest cell's).
pub const REFERENCE_TOLERANCE: f64 = 0.20;

/// The start of the warning a cell measured on a slowed machine carries.
pub const REFERENCE_WARNING: &str = "machine slower during this cell";

/// The reference matmul, prepared on a backend, and the times it took so far.
pub struct Reference {
    prepared: Box<dyn Prepared>,
    input: Vec<f32>,
    /// Per window: the fastest of [`REFERENCE_RUNS`] runs, seconds.
    times: Vec<f64>,
}

impl Reference {
    /// Prepare the reference on `backend` and run it once (untimed: first-run costs).
    pub fn new(backend: &dyn Backend) -> Result<Reference, BackendError> {
        let n = REFERENCE_N;
        let mut prepared = backend.prepare_reference(n)?;
        let input: Vec<f32> = (0..n * n).map(|i| ((i % 11) as f32 - 5.0) / 5.0).collect();
        prepared.run(&input)?;
        Ok(Reference {
            prepared,
            input,
            times: vec![],
        })
    }

    /// Time the reference (after a window).
    pub fn sample(&mut self) -> Result<(), BackendError> {
        let mut best = f64::INFINITY;
        for _ in 0..REFERENCE_RUNS {
            let t = Instant::now();
            self.prepared.run(&self.input)?;
            // A backend that times its device reports that time (the GPU's own).
            let s = match self.prepared.device_time() {
                Some(d) => d.as_secs_f64(),
                None => t.elapsed().as_secs_f64(),
            };
            best = best.min(s);
        }
        self.times.push(best);
        Ok(())
    }

    /// What the samples say (`None` before any).
    pub fn finish(self) -> Option<MachineReference> {
        if self.times.is_empty() {
            return None;
        }
        let t = summarize(&self.times);
        let fpo = 2.0 * (REFERENCE_N as f64).powi(3);
        Some(MachineReference {
            n: REFERENCE_N,
            gflops: fpo / t.median / 1e9,
            gflops_ci95_low: fpo / t.ci95_high / 1e9,
            gflops_ci95_high: fpo / t.ci95_low / 1e9,
            time_s: t,
        })
    }
}

/// Flag the cells (`idx` into `cells`, one backend's) whose reference's median ran more than
/// [`REFERENCE_TOLERANCE`] slower than the fastest of them: each is
/// marked unstable with a warning naming both speeds. The others are untouched; a cell
/// flagged before (a resumed run) is not flagged twice.
pub fn flag_slowed_cells(cells: &mut [Cell], idx: &[usize]) -> Vec<usize> {
    let fastest = idx
        .iter()
        .filter_map(|&i| cells[i].machine_reference.as_ref())
        .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
        .cloned();
    let Some(best) = fastest else {
        return vec![];
    };
    let mut flagged = vec![];
    for &i in idx {
        let c = &mut cells[i];
        let Some(r) = &c.machine_reference else {
            continue;
        };
        let slower = beyond_tolerance(best.gflops / r.gflops);
        if !slower || c.warnings.iter().any(|w| w.starts_with(REFERENCE_WARNING)) {
            continue;
        }
        let w = format!(
            "{REFERENCE_WARNING}: the reference {n}^3 matmul timed between its windows ran at {:.1} GFPO/s [{:.1}, {:.1}], against {:.1} [{:.1}, {:.1}] beside the run's fastest cell ({:.2}x slower): the machine changed speed during the run (a virtual machine's host, power or thermal limits), so this cell's times read high against the others; re-run before publishing",
            r.gflops,
            r.gflops_ci95_low,
            r.gflops_ci95_high,
            best.gflops,
            best.gflops_ci95_low,
            best.gflops_ci95_high,
            best.gflops / r.gflops,
            n = r.n,
        );
        c.unstable = true;
        c.warnings.push(w);
        flagged.push(i);
    }
    flagged
}

/// Whether a ratio of two machine references' speeds (the faster's over the slower's, or a
/// [`reference_ratio`]) says the machine changed speed: more than [`REFERENCE_TOLERANCE`] apart.
pub fn beyond_tolerance(ratio: f64) -> bool {
    ratio > 1.0 + REFERENCE_TOLERANCE
}

/// New's reference time over base's for one cell (above 1: the machine ran slower in the
/// new file), where both cells carry a reference of the same size.
pub fn reference_ratio(base: &Cell, new: &Cell) -> Option<f64> {
    let (b, n) = (
        base.machine_reference.as_ref()?,
        new.machine_reference.as_ref()?,
    );
    (b.n == n.n && n.gflops > 0.0).then(|| b.gflops / n.gflops)
}
