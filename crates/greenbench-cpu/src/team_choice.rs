//! Whether a batch-1 team pays on this machine, decided by timing both forms at prepare.
//!
//! A team (fp32 and bf16: `team`; int8: `int8::team`) splits a run's large steps across
//! threads and synchronises them at every step. Its planning rules estimate work per step;
//! what a synchronisation costs depends on the machine: earlier measurements on the dev VM
//! favoured the int8 team (`int8/mod.rs`: ds-cnn 27.0 us against 40.5 alone), while on the
//! Intel Xeon VM (2026-12-05) an empty phase of
//! the crew cost 0.5-0.6 us and `greenbench run --batch 1 --threads 2` read slower than
//! `--threads 1` for every int8 model (ds-cnn 32.8 / 23.0 us, resnet8 70.6 / 51.3, lenet5
//! 12.2 / 9.6, mobilenet 107.8 / 103.0) and every bf16 one (ds-cnn 43.7 / 30.3, resnet8 77.4
//! / 56.1, tiny-transformer 223 / 199), while fp32 resnet8 and tiny-transformer gained
//! (103-106 against 141-143; 179-188 against 253-262). So no fixed threshold is right on
//! both: a prepared model with a team times a few runs of each form, alternating, and keeps
//! the team only if its best run is faster; the cell's note says when it ran on one thread.
//! Tests that force teams (`CpuBackend::with_step_split_threshold`) skip the timing.

use std::time::{Duration, Instant};

/// Most trials (a trial: four runs, two of them timed).
const MAX_TRIALS: usize = 12;
/// The timing's budget at prepare for the trials after the first, which sets their number: a
/// large model takes one (VGG-19 at batch 1: ~90 ms a run, four runs in all).
const BUDGET: Duration = Duration::from_millis(250);

/// Both forms' best times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Choice {
    pub(crate) team: Duration,
    pub(crate) alone: Duration,
    pub(crate) trials: usize,
}

impl Choice {
    pub(crate) fn keep_team(&self) -> bool {
        self.team < self.alone
    }

    /// The cell's note when the team was dropped.
    pub(crate) fn note(&self, threads: usize) -> String {
        format!(
            "ran on one thread: at prepare a team of {threads} threads (the steps split) took {:.1} us a run against {:.1} us alone (best of {} alternating trials, each a form's second run back to back), so the team was dropped on this machine",
            self.team.as_secs_f64() * 1e6,
            self.alone.as_secs_f64() * 1e6,
            self.trials
        )
    }
}

/// Time `run(true)` (the team) and `run(false)` (one thread) alternately: one trial, then as
/// many more as fit in [`BUDGET`] (at most [`MAX_TRIALS`] in all). Each trial times the second of two
/// runs of a form, as a benchmark's back-to-back runs find it: a team run straight after a
/// run alone first wakes its sleeping helpers (tens of microseconds on a VM), which timing
/// single runs alternately charged to the team (mobilenet-v1-0.25 fp32: 164-171 us a team
/// run at prepare against 133 us in the benchmark, so the team was wrongly dropped).
pub(crate) fn time_both(mut run: impl FnMut(bool)) -> Choice {
    let second = |run: &mut dyn FnMut(bool), team: bool| {
        run(team);
        let t = Instant::now();
        run(team);
        t.elapsed()
    };
    let (mut team, mut alone) = (second(&mut run, true), second(&mut run, false));
    let per_trial = (2 * (team + alone)).max(Duration::from_nanos(1));
    let trials = ((BUDGET.as_secs_f64() / per_trial.as_secs_f64()) as usize + 1).min(MAX_TRIALS);
    for _ in 1..trials {
        team = team.min(second(&mut run, true));
        alone = alone.min(second(&mut run, false));
    }
    Choice {
        team,
        alone,
        trials,
    }
}

/// A batch-1 input for the timing runs: zeros, valid for every graph (token ids included);
/// the kernels' speed does not depend on the values.
pub(crate) fn probe_input(len: usize) -> Vec<f32> {
    vec![0.0; len]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The faster form wins, whichever it is; the trials stay within their bounds.
    #[test]
    fn the_faster_form_is_kept() {
        let spin = |us: u64| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(us) {
                std::hint::spin_loop();
            }
        };
        let c = time_both(|team| spin(if team { 50 } else { 400 }));
        assert!(c.keep_team(), "{c:?}");
        assert!((2..=MAX_TRIALS).contains(&c.trials), "{c:?}");
        let c = time_both(|team| spin(if team { 400 } else { 50 }));
        assert!(!c.keep_team(), "{c:?}");
        assert!(c.note(2).contains("one thread"));
        // A slow model takes one trial.
        let c = time_both(|_| spin(70_000));
        assert_eq!(c.trials, 1);
    }
}
