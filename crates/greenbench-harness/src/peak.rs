//! A backend's attainable peak: an `n x n x n` fp32 matmul measured by the protocol, before
//! a backend's cells and again after them (`crate::recheck`).

use crate::observer::Observer;
use crate::protocol::{MeasureError, Profile, measure};
use crate::record::Peak;
use crate::stats::summarize;
use greenbench_core::Backend;
use std::sync::atomic::AtomicBool;

/// Measure a backend's attainable peak with an `n x n x n` fp32 matmul.
pub fn measure_peak(
    backend: &dyn Backend,
    n: usize,
    profile: &Profile,
    cancel: &AtomicBool,
    obs: &dyn Observer,
) -> Result<Peak, MeasureError> {
    let mut p = backend.prepare_matmul(n, n, n)?;
    let inputs: Vec<Vec<f32>> = (0..2)
        .map(|s| {
            (0..n * n)
                .map(|i| (((i + s) % 13) as f32 - 6.0) / 6.0)
                .collect()
        })
        .collect();
    obs.started(
        &format!("peak {}: {n}^3 matmul", backend.name()),
        profile.windows,
    );
    let m = measure(p.as_mut(), &inputs, 1, profile, None, cancel, &mut |w| {
        obs.window(w)
    })?;
    let (t, time_basis) = match &m.device_per_example_s {
        Some(d) => (summarize(d), "device"),
        None => (summarize(&m.per_example_s), "end_to_end"),
    };
    let fpo = 2.0 * (n as f64).powi(3);
    let peak = Peak {
        backend: backend.name().to_string(),
        device: backend.device(),
        m: n,
        k: n,
        n,
        gflops: fpo / t.median / 1e9,
        best_gflops: t
            .samples
            .iter()
            .copied()
            .fold(None, |b: Option<f64>, s| Some(b.map_or(s, |b| b.min(s))))
            .map(|s| fpo / s / 1e9),
        gflops_ci95_low: fpo / t.ci95_high / 1e9,
        gflops_ci95_high: fpo / t.ci95_low / 1e9,
        time_s: t,
        time_basis: time_basis.to_string(),
        after: None,
        warning: None,
    };
    obs.finished(&format!(
        "peak {}: {:.1} GFPO/s ({n}^3 fp32 matmul)",
        peak.backend, peak.gflops
    ));
    Ok(peak)
}
