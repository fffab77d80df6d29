//! The suite runner: peaks, then every model x batch on every backend, saving the result
//! file atomically after each finished cell.

use crate::env::{Fingerprint, now_utc, peak_rss_bytes, reset_peak_rss};
use crate::protocol::{MeasureError, Profile, measure};
use crate::record::{Cell, CellStatus, Environment, Peak, ResultFile, RunStatus};
use crate::stats::summarize;
use greenbench_core::{Backend, BackendError, Model, generate_inputs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why there is no energy figure: no meter exists in this build yet. Never an estimate
/// in disguise.
pub const NO_ENERGY_METER: &str = "none: this build has no energy meter";

/// Progress callbacks (the CLI draws bars from them; tests ignore them).
pub trait Observer {
    /// A measurement of `windows` windows starts; `label` names it.
    fn started(&self, _label: &str, _windows: usize) {}
    /// `done` windows of the current measurement are finished.
    fn window(&self, _done: usize) {}
    /// The current measurement ended (its cell or peak is recorded).
    fn finished(&self, _summary: &str) {}
    /// A one-line note for the user.
    fn note(&self, _msg: &str) {}
}

/// Observes nothing.
pub struct Silent;
impl Observer for Silent {}

/// What to run and where to write it.
pub struct RunConfig {
    pub profile: Profile,
    pub seed: u64,
    pub batches: Vec<usize>,
    /// The result file, rewritten atomically after each cell.
    pub out: PathBuf,
    pub command: Vec<String>,
    pub machine: Fingerprint,
    /// Square matmul size for each backend's peak; 0 skips the peak.
    pub peak_size: usize,
}

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
    let m = measure(p.as_mut(), &inputs, 1, profile, cancel, &mut |w| {
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
        gflops_ci95_low: fpo / t.ci95_high / 1e9,
        gflops_ci95_high: fpo / t.ci95_low / 1e9,
        time_s: t,
        time_basis: time_basis.to_string(),
    };
    obs.finished(&format!(
        "peak {}: {:.1} GFPO/s ({n}^3 fp32 matmul)",
        peak.backend, peak.gflops
    ));
    Ok(peak)
}

/// Prepare and measure one cell. Backend failures become a failed cell, not an error.
pub fn measure_cell(
    backend: &dyn Backend,
    model: &Model,
    batch: usize,
    profile: &Profile,
    peak_gflops: Option<f64>,
    cancel: &AtomicBool,
    obs: &dyn Observer,
) -> Result<Cell, MeasureError> {
    let dev = backend.device();
    let total = model.cost.total;
    let mut cell = Cell {
        model: model.name.clone(),
        backend: backend.name().to_string(),
        device: dev.name.clone(),
        device_kind: dev.kind,
        threads: dev.threads,
        batch,
        status: CellStatus::Ok,
        error: None,
        params: total.params,
        macs_per_example: total.macs,
        fpo_per_example: total.fpo(),
        transcendentals_per_example: total.transcendentals,
        time_per_example_s: None,
        device_time_per_example_s: None,
        device_time_note: None,
        examples_per_s: None,
        gflops: None,
        pct_of_peak: None,
        energy_per_example_j: None,
        energy_source: NO_ENERGY_METER.to_string(),
        peak_rss_bytes: None,
        weights_seed: model.seed,
        weights_fingerprint: format!("{:016x}", model.weights.fingerprint()),
        warmup_batches: 0,
        window_batches: vec![],
    };
    reset_peak_rss();
    obs.started(
        &format!("{} {} b{batch}", model.name, backend.name()),
        profile.windows,
    );
    let inputs: Vec<Vec<f32>> = (0..profile.input_sets.max(1))
        .map(|s| generate_inputs(&model.graph, batch, model.seed, s as u64))
        .collect();
    let outcome = backend
        .prepare(&model.graph, &model.weights, batch)
        .map_err(MeasureError::from)
        .and_then(|mut p| {
            measure(p.as_mut(), &inputs, batch, profile, cancel, &mut |w| {
                obs.window(w)
            })
        });
    match outcome {
        Ok(m) => {
            let t = summarize(&m.per_example_s);
            let gflops = total.fpo() as f64 / t.median / 1e9;
            cell.examples_per_s = Some(1.0 / t.median);
            cell.gflops = Some(gflops);
            cell.pct_of_peak = peak_gflops.map(|p| 100.0 * gflops / p);
            cell.time_per_example_s = Some(t);
            match m.device_per_example_s {
                Some(d) => cell.device_time_per_example_s = Some(summarize(&d)),
                None => {
                    cell.device_time_note = Some(format!(
                        "{} reports no device-only time; end-to-end time only",
                        backend.name()
                    ))
                }
            }
            cell.warmup_batches = m.warmup_batches;
            cell.window_batches = m.batches;
        }
        Err(MeasureError::Interrupted) => return Err(MeasureError::Interrupted),
        Err(MeasureError::Backend(e)) => {
            cell.status = CellStatus::Failed;
            cell.error = Some(e.to_string());
        }
    }
    cell.peak_rss_bytes = peak_rss_bytes();
    obs.finished(&cell_line(&cell));
    Ok(cell)
}

/// A one-line summary of a cell for logs.
pub fn cell_line(c: &Cell) -> String {
    match (&c.time_per_example_s, &c.error) {
        (Some(t), _) => format!(
            "{} {} b{}: {:.2} us/example, {:.1} GFPO/s",
            c.model,
            c.backend,
            c.batch,
            t.median * 1e6,
            c.gflops.unwrap_or(0.0)
        ),
        (None, Some(e)) => format!("{} {} b{}: FAILED: {e}", c.model, c.backend, c.batch),
        (None, None) => format!("{} {} b{}: no result", c.model, c.backend, c.batch),
    }
}

/// Errors that stop a run (a failing cell does not).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot write the result file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("measuring the peak of {backend} failed: {source}")]
    Peak {
        backend: String,
        source: BackendError,
    },
}

/// Run the suite. The file at `cfg.out` is rewritten after the peaks and after every cell;
/// on cancel (Ctrl-C) the current cell is dropped, the file is marked `interrupted`, and the
/// finished cells stay.
pub fn run_suite(
    backends: &[Box<dyn Backend>],
    models: &[Model],
    cfg: &RunConfig,
    cancel: &AtomicBool,
    obs: &dyn Observer,
) -> Result<ResultFile, RunError> {
    let mut file = ResultFile {
        schema_version: crate::SCHEMA_VERSION,
        status: RunStatus::Running,
        environment: Environment {
            machine: cfg.machine.clone(),
            started_utc: now_utc(),
            finished_utc: None,
            profile: cfg.profile.clone(),
            seed: cfg.seed,
            command: cfg.command.clone(),
            peaks: vec![],
        },
        cells: vec![],
    };
    let save = |file: &ResultFile| {
        file.save(&cfg.out).map_err(|source| RunError::Write {
            path: cfg.out.display().to_string(),
            source,
        })
    };
    save(&file)?;
    'outer: for backend in backends {
        let peak = if cfg.peak_size == 0 {
            None
        } else {
            match measure_peak(backend.as_ref(), cfg.peak_size, &cfg.profile, cancel, obs) {
                Ok(p) => Some(p),
                Err(MeasureError::Interrupted) => break 'outer,
                Err(MeasureError::Backend(source)) => {
                    return Err(RunError::Peak {
                        backend: backend.name().to_string(),
                        source,
                    });
                }
            }
        };
        let peak_gflops = peak.as_ref().map(|p| p.gflops);
        file.environment.peaks.extend(peak);
        save(&file)?;
        for model in models {
            for &batch in &cfg.batches {
                if cancel.load(Ordering::Relaxed) {
                    break 'outer;
                }
                match measure_cell(
                    backend.as_ref(),
                    model,
                    batch,
                    &cfg.profile,
                    peak_gflops,
                    cancel,
                    obs,
                ) {
                    Ok(cell) => {
                        file.cells.push(cell);
                        save(&file)?;
                    }
                    Err(_) => break 'outer,
                }
            }
        }
    }
    file.status = if cancel.load(Ordering::Relaxed) {
        obs.note(&format!(
            "interrupted: {} finished cells kept in {}",
            file.cells.len(),
            cfg.out.display()
        ));
        RunStatus::Interrupted
    } else {
        RunStatus::Complete
    };
    file.environment.finished_utc = Some(now_utc());
    save(&file)?;
    Ok(file)
}
