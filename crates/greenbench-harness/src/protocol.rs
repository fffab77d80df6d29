//! The measuring protocol (DESIGN.md; MLPerf Tiny's median of windows, burn-bench's
//! warm-up by duration and cycled inputs).
//!
//! Per cell: run for `warmup`, then `windows` windows of at least `window` each (and at
//! least one batch); a window's value is its wall time / (batches * batch size). Inputs cycle
//! through `input_sets` distinct buffers so caches do not flatter.

use crate::energy::{Energy, Reading};
use greenbench_core::{BackendError, Prepared};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Durations of a run. `quick` and `full` differ only in durations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub warmup_s: f64,
    pub windows: usize,
    pub window_s: f64,
    pub input_sets: usize,
    /// Seconds of idle-power measurement before the run (measured meters only).
    #[serde(default)]
    pub idle_s: f64,
    /// Keep adding windows (beyond `windows`) until the 95 % interval's half-width is within
    /// this fraction of the median, for at most [`UNTIL_STABLE_CAP`] times the profile's
    /// window time (`--until-stable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_stable: Option<f64>,
}

/// `--until-stable` stops adding windows after this many times the profile's window time.
pub const UNTIL_STABLE_CAP: usize = 10;

/// Whether the windows so far pin the median down to `rel` (95 % interval half-width).
pub fn is_stable(per_example_s: &[f64], rel: f64) -> bool {
    if per_example_s.len() < 2 {
        return false;
    }
    let t = crate::stats::summarize(per_example_s);
    (t.ci95_high - t.ci95_low) / 2.0 <= rel * t.median
}

impl Profile {
    /// Minutes for the whole zoo on a laptop. Windows are too short for energy counters
    /// that update slowly; use `full` for committed baselines.
    pub fn quick() -> Self {
        Profile {
            name: "quick".into(),
            warmup_s: 0.25,
            windows: 5,
            window_s: 0.3,
            input_sets: 4,
            idle_s: 1.0,
            until_stable: None,
        }
    }
    /// Committed baselines: windows of seconds, so energy counters resolve.
    pub fn full() -> Self {
        Profile {
            name: "full".into(),
            warmup_s: 2.0,
            windows: 10,
            window_s: 2.0,
            input_sets: 8,
            idle_s: 5.0,
            until_stable: None,
        }
    }
    /// A profile by name.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "quick" => Some(Self::quick()),
            "full" => Some(Self::full()),
            _ => None,
        }
    }
}

/// Raw outcome of measuring one cell.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Seconds per example, one per window.
    pub per_example_s: Vec<f64>,
    /// Batches run in each window.
    pub batches: Vec<u64>,
    /// Device-only seconds per example per window, if the backend reported device time for
    /// every batch.
    pub device_per_example_s: Option<Vec<f64>>,
    /// Warm-up batches run.
    pub warmup_batches: u64,
    /// Energy readings at each window's start and end, with the window's seconds (empty
    /// without an energy source).
    pub energy: Vec<(Reading, Reading, f64)>,
    /// Why energy readings stopped, if they failed.
    pub energy_error: Option<String>,
    /// With `until_stable`: whether the interval got within it before the cap.
    pub stable: Option<bool>,
}

/// Why a measurement stopped.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Measure `p` by the protocol. `on_window` is called after each window (for progress).
#[allow(clippy::too_many_arguments)]
pub fn measure(
    p: &mut dyn Prepared,
    inputs: &[Vec<f32>],
    batch: usize,
    profile: &Profile,
    energy: Option<&Energy>,
    cancel: &AtomicBool,
    on_window: &mut dyn FnMut(usize),
) -> Result<Measurement, MeasureError> {
    assert!(!inputs.is_empty(), "at least one input buffer");
    let mut next = 0usize;
    let mut step = |p: &mut dyn Prepared| -> Result<Option<Duration>, BackendError> {
        let x = &inputs[next % inputs.len()];
        next += 1;
        p.run(x)?;
        Ok(p.device_time())
    };
    let warm = Duration::from_secs_f64(profile.warmup_s);
    let start = Instant::now();
    let mut warmup_batches = 0;
    while warmup_batches == 0 || start.elapsed() < warm {
        if cancel.load(Ordering::Relaxed) {
            return Err(MeasureError::Interrupted);
        }
        step(p)?;
        warmup_batches += 1;
    }
    let window = Duration::from_secs_f64(profile.window_s);
    let mut per_example_s = Vec::with_capacity(profile.windows);
    let mut batches = Vec::with_capacity(profile.windows);
    let mut device: Option<Vec<f64>> = Some(Vec::new());
    let mut readings = Vec::new();
    let mut energy_error = None;
    let read = |energy_error: &mut Option<String>| match energy {
        Some(e) if energy_error.is_none() => match e.read() {
            Ok(r) => Some(r),
            Err(msg) => {
                *energy_error = Some(msg);
                None
            }
        },
        _ => None,
    };
    let max_windows = match profile.until_stable {
        Some(_) => profile.windows * UNTIL_STABLE_CAP,
        None => profile.windows,
    };
    let mut stable = None;
    for w in 0..max_windows {
        if w >= profile.windows
            && let Some(rel) = profile.until_stable
        {
            if is_stable(&per_example_s, rel) {
                stable = Some(true);
                break;
            }
            stable = Some(false);
        }
        let mut n = 0u64;
        let mut dev = Some(Duration::ZERO);
        // Readings sit outside the timed region.
        let r0 = read(&mut energy_error);
        let t0 = Instant::now();
        loop {
            let d = step(p)?;
            n += 1;
            dev = match (dev, d) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            if t0.elapsed() >= window {
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(MeasureError::Interrupted);
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        if let (Some(a), Some(b)) = (r0, read(&mut energy_error)) {
            readings.push((a, b, elapsed));
        }
        let examples = (n as usize * batch) as f64;
        per_example_s.push(elapsed / examples);
        batches.push(n);
        device = match (device, dev) {
            (Some(mut v), Some(d)) => {
                v.push(d.as_secs_f64() / examples);
                Some(v)
            }
            _ => None,
        };
        on_window(w + 1);
    }
    if let Some(rel) = profile.until_stable {
        // The last window may have settled it.
        stable = Some(is_stable(&per_example_s, rel));
    }
    Ok(Measurement {
        per_example_s,
        batches,
        device_per_example_s: device,
        warmup_batches,
        energy: readings,
        energy_error,
        stable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake backend whose batch takes a known time and which records the inputs it saw.
    struct Sleepy {
        seen: Vec<f32>,
        out: Vec<f32>,
    }
    impl Prepared for Sleepy {
        fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError> {
            self.seen.push(input[0]);
            std::thread::sleep(Duration::from_millis(2));
            Ok(&self.out)
        }
    }

    #[test]
    fn windows_cycle_inputs_and_time_per_example() {
        let profile = Profile {
            name: "t".into(),
            warmup_s: 0.01,
            windows: 5,
            window_s: 0.02,
            input_sets: 3,
            idle_s: 0.0,
            until_stable: None,
        };
        let inputs: Vec<Vec<f32>> = (0..3).map(|i| vec![i as f32]).collect();
        let mut p = Sleepy {
            seen: vec![],
            out: vec![0.0],
        };
        let mut calls = 0;
        let m = measure(
            &mut p,
            &inputs,
            4,
            &profile,
            None,
            &AtomicBool::new(false),
            &mut |_| calls += 1,
        )
        .unwrap();
        assert_eq!(calls, 5);
        assert_eq!(m.per_example_s.len(), 5);
        // Each batch sleeps >= 2 ms for 4 examples: >= 0.5 ms per example.
        assert!(m.per_example_s.iter().all(|&t| t >= 0.0005), "{m:?}");
        assert!(m.device_per_example_s.is_none());
        // Inputs cycle 0, 1, 2, 0, ...
        for (i, v) in p.seen.iter().enumerate() {
            assert_eq!(*v, (i % 3) as f32);
        }
    }

    #[test]
    fn cancel_stops_measuring() {
        let mut p = Sleepy {
            seen: vec![],
            out: vec![0.0],
        };
        let r = measure(
            &mut p,
            &[vec![0.0]],
            1,
            &Profile::quick(),
            None,
            &AtomicBool::new(true),
            &mut |_| {},
        );
        assert!(matches!(r, Err(MeasureError::Interrupted)));
    }
}
