//! greenbench's Python extension (`greenbench._native`): the same library code the CLI runs,
//! behind a few functions the Python package (`greenbench/__init__.py`, beside this crate)
//! wraps in `Tracker`, `inspect`, `run` and `price`. Results cross as the result file's JSON,
//! so Python sees exactly what the CLI writes. Long calls release the GIL; errors are
//! `greenbench.GreenbenchError` with the CLI's messages.

use greenbench_core::{Backend, Model, Precision};
use greenbench_cpu::CpuBackend;
use greenbench_energy::estimate::rusage;
use greenbench_harness::energy::{Energy, Idle, Prices, Reading};
use greenbench_harness::env::{Build, fingerprint, now_utc};
use greenbench_harness::host_load::{CpuTimes, HostLoad, steal_share};
use greenbench_harness::record::{CellStatus, ResultFile};
use greenbench_harness::runner::{RunConfig, Silent, run_suite};
use greenbench_harness::tracking::{Exit, Tracked, cell, result_file};
use greenbench_results::Loaded;
use greenbench_results::cost::{CostQuery, Pricing};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

create_exception!(
    _native,
    GreenbenchError,
    PyRuntimeError,
    "An error greenbench reports, with the message the CLI gives for it."
);

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn err(e: impl std::fmt::Display) -> PyErr {
    GreenbenchError::new_err(e.to_string())
}

fn machine() -> greenbench_harness::env::Fingerprint {
    fingerprint(&Build::unstamped(VERSION))
}

/// CPU seconds of this process (all threads) and the children it has waited for.
fn own_cpu_seconds() -> f64 {
    [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(rusage)
        .map(|u| u.0)
        .sum()
}

/// A tracking session in this Python process: idle measured at its start (counters), power
/// sampled in the background, windows read on demand, the result file at its end.
#[pyclass(module = "greenbench._native")]
struct Session {
    energy: Arc<Energy>,
    idle: Option<Idle>,
    idle_s: f64,
    start: Instant,
    started_utc: String,
    a: Reading,
    cpu0: f64,
    load_a: Option<CpuTimes>,
    series: Arc<Mutex<Vec<[f64; 2]>>>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

#[pymethods]
impl Session {
    #[new]
    #[pyo3(signature = (idle_s=None, interval=1.0, sysfs_root=None, cpu_tdp_w=None, grid_g_per_kwh=None, price_usd_per_kwh=None, nvml=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        idle_s: Option<f64>,
        interval: f64,
        sysfs_root: Option<PathBuf>,
        cpu_tdp_w: Option<f64>,
        grid_g_per_kwh: Option<f64>,
        price_usd_per_kwh: Option<f64>,
        nvml: bool,
    ) -> PyResult<Self> {
        if interval.is_nan() || interval <= 0.0 {
            return Err(err(format!("interval {interval}: give seconds > 0")));
        }
        let m = machine();
        let (mut energy, _) = Energy::from_system(
            sysfs_root,
            nvml,
            &m.cpu_model,
            cpu_tdp_w,
            Prices::overridden(grid_g_per_kwh, price_usd_per_kwh),
        );
        let idle_s = idle_s.unwrap_or(if energy.measured() { 2.0 } else { 0.0 });
        let idle = if energy.measured() && idle_s > 0.0 {
            py.detach(|| energy.measure_idle(idle_s))
                .map_err(|e| err(format!("idle power unreadable: {e}")))?
        } else {
            None
        };
        let energy = Arc::new(energy);
        let a = energy.read().map_err(err)?;
        let start = Instant::now();
        let series: Arc<Mutex<Vec<[f64; 2]>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (energy, series, stop) = (energy.clone(), series.clone(), stop.clone());
            let every = Duration::from_secs_f64(interval);
            std::thread::Builder::new()
                .name("greenbench-power".into())
                .spawn(move || {
                    let (mut t0, mut j0, mut c0) = (start, a.measured_j, own_cpu_seconds());
                    while !stop.load(Ordering::SeqCst) {
                        // Sleep in short steps so stop() returns at once.
                        let until = Instant::now() + every;
                        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        let Ok(r) = energy.read() else { break };
                        let now = r.at.unwrap_or_else(Instant::now);
                        let dt = (now - t0).as_secs_f64().max(1e-6);
                        let c = own_cpu_seconds();
                        let w = match (r.measured_j, j0) {
                            (Some(j), Some(p)) => (j - p) / dt,
                            _ => energy.estimate.joules(c - c0) / dt,
                        };
                        series
                            .lock()
                            .expect("lock")
                            .push([(now - start).as_secs_f64(), w]);
                        (t0, j0, c0) = (now, r.measured_j, c);
                    }
                })
                .ok()
        };
        Ok(Session {
            energy,
            idle,
            idle_s,
            start,
            started_utc: now_utc(),
            a,
            cpu0: own_cpu_seconds(),
            load_a: HostLoad::default().cpu_times(),
            series,
            stop,
            sampler,
        })
    }

    /// `measured` or `estimated`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.energy.kind()
    }

    /// Where the energy figures come from.
    #[getter]
    fn source(&self) -> String {
        self.energy.source()
    }

    /// Idle power measured at the start, watts (counters only).
    #[getter]
    fn idle_w(&self) -> Option<f64> {
        self.energy.idle_w
    }

    /// A reading now: (seconds since the start, the counters' joules or None, CPU seconds).
    fn reading(&self) -> PyResult<(f64, Option<f64>, f64)> {
        let r = self.energy.read().map_err(err)?;
        Ok((
            self.start.elapsed().as_secs_f64(),
            r.measured_j,
            own_cpu_seconds(),
        ))
    }

    /// The figures between two readings: (seconds, gross joules, net joules).
    fn between(
        &self,
        a: (f64, Option<f64>, f64),
        b: (f64, Option<f64>, f64),
    ) -> (f64, Option<f64>, Option<f64>) {
        let secs = b.0 - a.0;
        match (a.1, b.1) {
            (Some(x), Some(y)) => {
                let gross = (y - x).max(0.0);
                let net = (gross - self.energy.idle_w.unwrap_or(0.0) * secs).max(0.0);
                (secs, Some(gross), Some(net))
            }
            _ => {
                let j = self.energy.estimate.joules((b.2 - a.2).max(0.0));
                (secs, Some(j), Some(j))
            }
        }
    }

    /// End the session: its result file's JSON (written to `out` when given). `failed`: why
    /// the tracked code did not finish (an exception), making the cell a failed one.
    #[pyo3(signature = (label, examples=None, failed=None, out=None))]
    fn finish(
        &mut self,
        label: String,
        examples: Option<u64>,
        failed: Option<String>,
        out: Option<PathBuf>,
    ) -> PyResult<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        let wall_s = self.start.elapsed().as_secs_f64();
        let b = self.energy.read();
        let cpu_s = (own_cpu_seconds() - self.cpu0).max(0.0);
        let (gross_j, net_j, fault) = match (&b, self.energy.measured()) {
            (Ok(b), true) => {
                let (_, g, n) =
                    self.between((0.0, self.a.measured_j, 0.0), (wall_s, b.measured_j, 0.0));
                (g, n, None)
            }
            (Err(e), true) => (None, None, Some(e.clone())),
            (_, false) => {
                let j = self.energy.estimate.joules(cpu_s);
                (Some(j), Some(j), None)
            }
        };
        let steal = match (self.load_a, HostLoad::default().cpu_times()) {
            (Some(x), Some(y)) => steal_share(x, y),
            _ => None,
        };
        let t = Tracked {
            exit: Exit::Code(if failed.is_some() { 1 } else { 0 }),
            signals: vec![],
            wall_s,
            cpu_s: Some(cpu_s),
            peak_rss_bytes: rusage(libc::RUSAGE_SELF).map(|u| u.1).filter(|b| *b > 0),
            gross_j,
            net_j,
            energy_fault: fault,
            series: self.series.lock().expect("lock").clone(),
            steal_share: steal,
            other_cpu_cores: None,
        };
        let m = machine();
        let mut c = cell(&t, &label, examples, &self.energy, self.idle, &m.cpu_model);
        c.device_time_note = Some(format!(
            "a tracked Python block (greenbench.Tracker): {wall_s:.3} s, CPU time of the whole process; work not counted"
        ));
        if let Some(why) = failed {
            c.status = CellStatus::Failed;
            c.error = Some(format!(
                "the tracked code raised {why}: its figures are those of a run that did not finish, never a finished run's"
            ));
        }
        let file = result_file(
            &t,
            c,
            &self.energy,
            self.idle,
            self.idle_s,
            m,
            self.started_utc.clone(),
            std::env::args().collect(),
        );
        if let Some(p) = out {
            file.save(&p)
                .map_err(|e| err(format!("cannot write {}: {e}", p.display())))?;
        }
        serde_json::to_string(&file).map_err(err)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
    }
}

/// Per-layer and total work of a zoo name, a model JSON or an ONNX file, as `greenbench
/// inspect --format json` prints it.
#[pyfunction]
fn inspect_json(py: Python<'_>, model: String) -> PyResult<String> {
    let m = py
        .detach(|| greenbench_onnx::load_model(&model, 0, None))
        .map_err(err)?;
    // FPO as greenbench-core counts it (Cost::fpo), next to each row's other counts.
    let with_fpo = |c: &greenbench_core::Cost| {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        v["fpo"] = c.fpo().into();
        v
    };
    let v = serde_json::json!({
        "name": m.name,
        "input_shape": m.graph.input.shape,
        "output_shape": m.graph.output_shape(),
        "total": with_fpo(&m.cost.total),
        "layers": m.cost.nodes.iter().map(|n| serde_json::json!({
            "name": n.name,
            "op": n.label,
            "output_shape": n.output_shape,
            "cost": with_fpo(&n.cost),
        })).collect::<Vec<_>>(),
    });
    Ok(v.to_string())
}

/// Measure `models` on the CPU backend (`run`'s protocol) into `out`; the result file's
/// JSON. Ctrl-C stops after the cell in hand and raises KeyboardInterrupt; `out` keeps the
/// finished cells.
#[pyfunction]
#[pyo3(signature = (models, batch, profile, out, threads=None, seed=0, precisions=vec!["fp32".to_string()], peak=true))]
#[allow(clippy::too_many_arguments)]
fn run_json(
    py: Python<'_>,
    models: Vec<String>,
    batch: Vec<usize>,
    profile: String,
    out: PathBuf,
    threads: Option<usize>,
    seed: u64,
    precisions: Vec<String>,
    peak: bool,
) -> PyResult<String> {
    let profile = greenbench_harness::Profile::by_name(&profile)
        .ok_or_else(|| err(format!("unknown profile `{profile}`; use quick or full")))?;
    if batch.is_empty() || batch.contains(&0) {
        return Err(err("batch sizes must be whole numbers of at least 1"));
    }
    let precisions: Vec<Precision> = precisions
        .iter()
        .map(|p| p.parse().map_err(err))
        .collect::<PyResult<_>>()?;
    if out.exists() {
        return Err(err(format!(
            "{} exists: greenbench does not replace a result file; give another out",
            out.display()
        )));
    }
    let loaded: Vec<Model> = models
        .iter()
        .map(|n| greenbench_onnx::load_model(n, seed, None).map_err(err))
        .collect::<PyResult<_>>()?;
    let m = machine();
    let (mut energy, _) = Energy::from_system(None, true, &m.cpu_model, None, Prices::default());
    let cfg = RunConfig {
        profile,
        seed,
        batches: batch,
        out: out.clone(),
        command: vec!["greenbench.run (Python)".into()],
        machine: m,
        peak_size: if peak { 1024 } else { 0 },
        shard: None,
        slurm: None,
        resume: None,
        host_load: Default::default(),
        precisions,
        quant: Default::default(),
        calibration_examples: 32,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let worker = {
        let cancel = cancel.clone();
        std::thread::spawn(move || -> Result<ResultFile, String> {
            // The backend runs on this thread (its pool includes it).
            let backend =
                CpuBackend::on_this_thread(threads.unwrap_or(0)).map_err(|e| e.to_string())?;
            let backends: Vec<Box<dyn Backend>> = vec![Box::new(backend)];
            run_suite(
                &backends,
                &loaded,
                &cfg,
                Some(&mut energy),
                &cancel,
                &Silent,
            )
            .map_err(|e| e.to_string())
        })
    };
    // Wait without the GIL, checking for Ctrl-C (Python's handler runs in check_signals).
    let mut interrupted = None;
    while !worker.is_finished() {
        py.detach(|| std::thread::sleep(Duration::from_millis(50)));
        if interrupted.is_none()
            && let Err(e) = py.check_signals()
        {
            cancel.store(true, Ordering::SeqCst);
            interrupted = Some(e);
        }
    }
    let file = worker
        .join()
        .map_err(|_| err("the run's thread panicked"))?
        .map_err(err)?;
    if let Some(e) = interrupted {
        return Err(if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            PyKeyboardInterrupt::new_err(format!(
                "interrupted: the {} finished cell(s) are kept in {}",
                file.cells.len(),
                out.display()
            ))
        } else {
            e
        });
    }
    serde_json::to_string(&file).map_err(err)
}

/// The E·D·H price tag of the runs (training or tracked) in `files`, or of `model` from its
/// cheapest cell with `examples`; `{"text", "runs", "total_fpo", "seconds", "joules",
/// "kwh", "co2e_g", "usd"}` (JSON).
#[pyfunction]
#[pyo3(signature = (files, model=None, runs=None, examples=None, epochs=None, pue=1.0, grid_g_per_kwh=None, price_usd_per_kwh=None, energy="gross".to_string()))]
#[allow(clippy::too_many_arguments)]
fn price_json(
    files: Vec<PathBuf>,
    model: Option<String>,
    runs: Option<u64>,
    examples: Option<u64>,
    epochs: Option<u64>,
    pue: f64,
    grid_g_per_kwh: Option<f64>,
    price_usd_per_kwh: Option<f64>,
    energy: String,
) -> PyResult<String> {
    if files.is_empty() {
        return Err(err("give at least one result file"));
    }
    if pue.is_nan() || pue < 1.0 {
        return Err(err(format!("pue {pue}: it is at least 1")));
    }
    let (loaded, bad) = greenbench_results::load_many(&files, true).map_err(err)?;
    debug_assert!(bad.is_empty());
    let model = match model {
        Some(m) => m,
        None if examples.is_some() => {
            return Err(err(
                "examples prices a model from its cells: name the model",
            ));
        }
        None => greenbench_results::cost::only_run_model(&loaded).map_err(err)?,
    };
    let prices = Prices::overridden(grid_g_per_kwh, price_usd_per_kwh);
    let q = CostQuery {
        model,
        examples: examples.unwrap_or(0),
        epochs: epochs.unwrap_or(1),
        runs: runs.unwrap_or(1),
        backend: None,
        batch: None,
        precision: Precision::Fp32,
        pricing: Pricing::at(prices, pue, energy.parse().map_err(err)?),
    };
    let (totals, text, n) = if examples.is_some() {
        let t = greenbench_results::cost::price(&loaded, &q).map_err(err)?;
        (t.totals, t.text, q.runs as usize)
    } else {
        let (p, text) = greenbench_results::cost::price_measured_sweep(&loaded, &q).map_err(err)?;
        (p.totals, text, runs.map_or(p.runs, |h| h as usize))
    };
    Ok(serde_json::json!({
        "text": text,
        "runs": n,
        "total_fpo": totals.total_fpo,
        "seconds": totals.seconds,
        "joules": totals.joules,
        "kwh": totals.kwh,
        "co2e_g": totals.co2e_g,
        "usd": totals.usd,
        "files": loaded.iter().map(|l: &Loaded| l.path.display().to_string()).collect::<Vec<_>>(),
    })
    .to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", VERSION)?;
    m.add("GreenbenchError", m.py().get_type::<GreenbenchError>())?;
    m.add_class::<Session>()?;
    m.add_function(wrap_pyfunction!(inspect_json, m)?)?;
    m.add_function(wrap_pyfunction!(run_json, m)?)?;
    m.add_function(wrap_pyfunction!(price_json, m)?)?;
    Ok(())
}
