//! The suite runner: peaks, then every model x batch on every backend, saving the result
//! file atomically after each finished cell.

use crate::cluster::{Shard, SlurmJob};
use crate::energy::Energy;
use crate::env::{Fingerprint, now_utc, peak_rss_bytes, reset_peak_rss};
use crate::host_load::{HostLoad, STEAL_WARN, steal_share, steal_warning};
pub use crate::observer::{Observer, Silent};
pub use crate::peak::measure_peak;
use crate::protocol::{MeasureError, Profile, measure};
use crate::record::{Cell, CellStatus, EnergyEnv, Environment, ResultFile, RunStatus};
use crate::stats::summarize;
use greenbench_core::quant::{QModel, QuantConfig, quantize};
use greenbench_core::{Backend, BackendError, Model, Precision, generate_inputs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why there is no energy figure when the run has no energy source at all.
pub const NO_ENERGY_METER: &str = "none: no energy source configured for this run";

/// Other processes keeping more than this many cores busy make a window not quiet.
const QUIET_OTHER_CORES: f64 = 0.1;

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
    /// Measure only this slice of the cells (backend-major order: backends x models x
    /// batches); each backend's peak only where the slice has cells on it.
    pub shard: Option<Shard>,
    /// The Slurm job this run is part of (recorded; on a shared node, measured energy is
    /// withheld from the cells).
    pub slurm: Option<SlurmJob>,
    /// An interrupted run of the same configuration to continue (see [`resumable`]): its
    /// finished cells and peaks are kept as they are, the rest are measured and appended.
    pub resume: Option<ResultFile>,
    /// Where steal time and core clocks are read (the real /proc and sysfs by default).
    pub host_load: HostLoad,
    /// The precisions each model runs in (cells per precision).
    pub precisions: Vec<Precision>,
    /// How int8 models are quantized (calibration method, requantizer), and from how many
    /// seeded inputs (input set [`CALIBRATION_SET`], never a measured one).
    pub quant: QuantConfig,
    pub calibration_examples: usize,
}

/// The seeded input set int8 calibration reads (measurements use sets 0, 1, ...).
pub const CALIBRATION_SET: u64 = 1_000_000;

/// Quantize `model` for int8 as `cfg` says, calibrated on `examples` seeded inputs.
pub fn quantize_model(model: &Model, cfg: &QuantConfig, examples: usize) -> Result<QModel, String> {
    let x = generate_inputs(&model.graph, examples.max(1), model.seed, CALIBRATION_SET);
    quantize(&model.graph, &model.weights, &x, cfg)
        .map_err(|e| format!("{}: quantization failed: {e}", model.name))
}

/// Why `prev` cannot be continued by a run of `cfg`, if it cannot: it must be unfinished and
/// come from this machine, this greenbench version, the same seed and profile.
pub fn resumable(prev: &ResultFile, cfg: &RunConfig) -> Result<(), String> {
    if prev.status == RunStatus::Complete {
        return Err("it is complete: nothing to resume".into());
    }
    let (a, b) = (&prev.environment, &cfg.machine);
    let differs = [
        ("machine", a.machine.hostname.clone(), b.hostname.clone()),
        ("CPU", a.machine.cpu_model.clone(), b.cpu_model.clone()),
        (
            "greenbench version",
            a.machine.greenbench_version.clone(),
            b.greenbench_version.clone(),
        ),
        ("seed", a.seed.to_string(), cfg.seed.to_string()),
        ("profile", a.profile.name.clone(), cfg.profile.name.clone()),
    ];
    let bad: Vec<String> = differs
        .iter()
        .filter(|(_, was, now)| was != now)
        .map(|(what, was, now)| format!("{what} `{was}` there, `{now}` here"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("it was measured differently: {}", bad.join("; ")))
    }
}

/// Whether a resumed file already holds a finished measurement of `model` (weights
/// `fingerprint`) at `batch` on backend `backend` and device `device`.
#[allow(clippy::too_many_arguments)]
fn has_cell(
    cells: &[Cell],
    model: &Model,
    fingerprint: &str,
    batch: usize,
    precision: Precision,
    backend: &str,
    device: &str,
) -> bool {
    cells.iter().any(|c| {
        c.status == CellStatus::Ok
            && c.model == model.name
            && c.precision == precision
            && c.weights_fingerprint == fingerprint
            && c.backend == backend
            && c.device == device
            && c.batch == batch
    })
}

/// What a cell runs: the model as it is (fp32), its quantized form, or its bf16 form
/// (`greenbench_core::bf16`); a form that could not be made is the cell's error.
#[derive(Clone, Copy)]
pub enum Variant<'a> {
    Fp32,
    Int8(&'a Result<QModel, String>),
    Bf16(&'a Result<Model, String>),
}

impl Variant<'_> {
    pub fn precision(&self) -> Precision {
        match self {
            Variant::Fp32 => Precision::Fp32,
            Variant::Int8(_) => Precision::Int8,
            Variant::Bf16(_) => Precision::Bf16,
        }
    }
}

/// `model` in bf16, or why not (the cell's error).
pub fn bf16_model(model: &Model) -> Result<Model, String> {
    greenbench_core::bf16::model(model)
        .map_err(|e| format!("{}: bf16 conversion failed: {e}", model.name))
}

/// Prepare and measure one cell: `model` as `variant` says (fp32, its quantized form, its bf16
/// form; `Err`: why that form could not be made, recorded as a failed cell). Backend failures
/// become a failed cell, not an error.
#[allow(clippy::too_many_arguments)]
pub fn measure_cell(
    backend: &dyn Backend,
    model: &Model,
    variant: Variant<'_>,
    batch: usize,
    profile: &Profile,
    peak_gflops: Option<f64>,
    energy: Option<&Energy>,
    cancel: &AtomicBool,
    obs: &dyn Observer,
) -> Result<Cell, MeasureError> {
    let dev = backend.device();
    let total = model.cost.total;
    let qcost = match variant {
        Variant::Int8(Ok(q)) => Some(q.cost().0),
        _ => None,
    };
    let precision = variant.precision();
    let fpo = qcost.map_or(total.fpo(), |q| q.fpo);
    let mut cell = Cell {
        host: Some(crate::env::hostname()),
        model: model.name.clone(),
        dims: model.dims.clone(),
        tokens_per_example: model.tokens_per_example(),
        inputs: model.inputs.as_ref().map(|e| e.source.clone()),
        backend: backend.name().to_string(),
        device: dev.name.clone(),
        device_kind: dev.kind,
        threads: dev.threads,
        batch,
        precision,
        status: CellStatus::Ok,
        error: None,
        params: total.params,
        macs_per_example: total.macs,
        fpo_per_example: fpo,
        transcendentals_per_example: qcost.map_or(total.transcendentals, |q| q.transcendentals),
        int_ops_per_example: qcost.map_or(0, |q| q.int_ops),
        time_per_example_s: None,
        device_time_per_example_s: None,
        device_time_note: None,
        examples_per_s: None,
        gflops: None,
        pct_of_peak: None,
        energy_per_example_j: None,
        energy_source: NO_ENERGY_METER.to_string(),
        energy_kind: None,
        energy_gross_per_example_j: None,
        energy_net_per_example_j: None,
        energy_samples_j: vec![],
        avg_power_w: None,
        fpo_per_joule: None,
        co2e_g_per_million: None,
        cost_usd_per_million: None,
        other_cpu_cores: None,
        steal_share: None,
        cpu_mhz: None,
        warnings: vec![],
        unstable: false,
        stable: None,
        accuracy: None,
        train: None,
        train_passes: None,
        peak_rss_bytes: None,
        weights_seed: model.weights_source.is_none().then_some(model.seed),
        weights_source: model.weights_source.clone(),
        weights_fingerprint: format!("{:016x}", model.weights.fingerprint()),
        warmup_batches: 0,
        window_batches: vec![],
        cpu_s: None,
        power_series_w: vec![],
        remeasured: None,
        machine_reference: None,
        precision_note: backend.precision_note(precision),
        algorithm_note: None,
        execution_note: None,
    };
    reset_peak_rss();
    let label = match precision {
        Precision::Fp32 => format!("{} {} b{batch}", model.name, backend.name()),
        p => format!("{} {} b{batch} {p}", model.name, backend.name()),
    };
    obs.started(&label, profile.windows);
    let inputs: Vec<Vec<f32>> = (0..profile.input_sets.max(1))
        .map(|s| match &model.inputs {
            Some(ex) => ex.batch(batch, s),
            None => generate_inputs(&model.graph, batch, model.seed, s as u64),
        })
        .collect();
    let prepared = match variant {
        Variant::Fp32 => backend.prepare(&model.graph, &model.weights, batch),
        Variant::Int8(Ok(qm)) => backend.prepare_quantized(qm, batch),
        Variant::Bf16(Ok(m)) if backend.precisions().contains(&Precision::Bf16) => {
            backend.prepare(&m.graph, &m.weights, batch)
        }
        Variant::Bf16(Ok(_)) => Err(BackendError::Invalid(format!(
            "the {} backend does not run bf16 (it runs {}); bf16 runs on the cpu backend",
            backend.name(),
            (backend.precisions().iter().map(|p| p.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Variant::Int8(Err(why)) | Variant::Bf16(Err(why)) => {
            Err(BackendError::Invalid(why.clone()))
        }
    };
    // The machine's speed beside the cell (`crate::reference`): a backend that cannot run
    // the reference product has the cell measured without it.
    let mut reference = prepared
        .is_ok()
        .then(|| crate::reference::Reference::new(backend).ok())
        .flatten();
    let outcome = prepared.map_err(MeasureError::from).and_then(|mut p| {
        cell.algorithm_note = p.algorithm_note();
        cell.execution_note = p.execution_note();
        measure(
            p.as_mut(),
            &inputs,
            batch,
            profile,
            energy,
            cancel,
            &mut |w| {
                if let Some(r) = reference.as_mut()
                    && r.sample().is_err()
                {
                    reference = None;
                }
                obs.window(w)
            },
        )
    });
    cell.machine_reference = reference.and_then(|r| r.finish());
    match outcome {
        Ok(m) => {
            let t = summarize(&m.per_example_s);
            let gflops = fpo as f64 / t.median / 1e9;
            cell.examples_per_s = Some(1.0 / t.median);
            cell.gflops = Some(gflops);
            if let Some(p) = peak_gflops {
                set_pct_of_peak(&mut cell, p);
            }
            cell.stable = m.stable;
            if let (Some(false), Some(rel)) = (m.stable, profile.until_stable) {
                cell.warnings.push(format!(
                    "did not settle: after {} windows (the --until-stable cap) the 95 % interval is still wider than +/-{:.1} % of the median",
                    m.per_example_s.len(),
                    100.0 * rel
                ));
            }
            if t.cv > crate::stats::UNSTABLE_CV {
                cell.unstable = true;
                cell.warnings.push(crate::stats::unstable_warning(t.cv));
            }
            cell.time_per_example_s = Some(t);
            match &m.device_per_example_s {
                Some(d) => cell.device_time_per_example_s = Some(summarize(d)),
                None => {
                    cell.device_time_note = Some(format!(
                        "{} reports no device-only time; end-to-end time only",
                        backend.name()
                    ))
                }
            }
            cell.warmup_batches = m.warmup_batches;
            if let Some(e) = energy {
                fill_energy(&mut cell, e, &m, batch);
            }
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

/// What a cell says when its node is shared with other jobs.
pub const NODE_SHARED_ENERGY: &str = "none: the node is shared with other jobs (slurm submit --no-exclusive); its meters (RAPL, NVML) measure the whole node, so no energy is attributed to this task";

/// On a shared node, a node-level (measured) reading is every job's energy, not this task's:
/// the per-example figure is withheld (the gross and net readings stay in the cell for the
/// record) and a warning says why. The labelled estimate is per process and stays.
pub(crate) fn withhold_node_energy(cell: &mut Cell) {
    if cell.energy_kind.as_deref() == Some("measured") {
        cell.energy_per_example_j = None;
        cell.energy_kind = None;
        cell.fpo_per_joule = None;
        cell.co2e_g_per_million = None;
        cell.cost_usd_per_million = None;
        cell.energy_source = NODE_SHARED_ENERGY.into();
        cell.warnings.push(
            "energy not attributable: the node is shared with other jobs (run with exclusive nodes to measure it)"
                .into(),
        );
    }
}

/// The start of the warning a cell above 100 % of the peak carries.
const ABOVE_PEAK: &str = "of the measured peak:";

/// `% of peak` of a measured fp32 cell against `attainable` GFPO/s (an fp32 matmul's), with
/// its warning when above 100 % (replacing an earlier one). int8 and bf16 cells get none: the
/// fp32 peak says nothing of integer or bf16 arithmetic.
fn set_pct_of_peak(cell: &mut Cell, attainable: f64) {
    if cell.precision != Precision::Fp32 {
        return;
    }
    let Some(g) = cell.gflops else { return };
    let pct = 100.0 * g / attainable;
    cell.pct_of_peak = Some(pct);
    cell.warnings.retain(|w| !w.contains(ABOVE_PEAK));
    if pct > 100.0 {
        let why = match &cell.algorithm_note {
            Some(note) => format!(
                "the backend did fewer multiplies than the FPO counted for the model ({note}); % of peak here is counted work per second against the matmul's peak, not the share of the machine in use"
            ),
            None => "either the peak matmul was disturbed while it was measured, or this backend's matmul does not reach this CPU's peak (its kernels were tuned on another CPU); either way % of peak is not a sound figure for this cell".to_string(),
        };
        cell.warnings.push(format!("{pct:.0} % {ABOVE_PEAK} {why}"));
    }
}

/// Per-window energy -> the cell's energy fields.
fn fill_energy(cell: &mut Cell, e: &Energy, m: &crate::protocol::Measurement, batch: usize) {
    use crate::stats::median;
    if let Some(err) = &m.energy_error {
        cell.energy_source = format!("none: energy reading failed: {err}");
        return;
    }
    let mut gross = Vec::new();
    let mut net = Vec::new();
    let mut power = Vec::new();
    let mut others = Vec::new();
    let mut clamped = false;
    for ((a, b, secs), &n) in m.energy.iter().zip(&m.batches) {
        let examples = (n as usize * batch) as f64;
        let cpu = match (a.process_cpu_s, b.process_cpu_s) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        };
        if let (Some(x), Some(y), Some(c)) = (a.machine_busy_s, b.machine_busy_s, cpu) {
            others.push(((y - x - c) / secs).max(0.0));
        }
        let j = match (a.measured_j, b.measured_j) {
            (Some(x), Some(y)) => y - x,
            _ => match cpu {
                Some(c) => e.estimate.joules(c),
                None => continue,
            },
        };
        power.push(j / secs);
        gross.push(j / examples);
        let n_j = match e.idle_w {
            Some(w) if e.measured() => {
                let v = j - w * secs;
                if v < 0.0 {
                    clamped = true;
                }
                v.max(0.0)
            }
            _ => j,
        };
        net.push(n_j / examples);
    }
    if gross.is_empty() {
        cell.energy_source = "none: no energy reading (process CPU time unreadable)".into();
        return;
    }
    let per_example = median(&net);
    cell.energy_kind = Some(e.kind().into());
    cell.energy_source = e.source();
    cell.energy_gross_per_example_j = Some(median(&gross));
    cell.energy_net_per_example_j = Some(per_example);
    cell.energy_per_example_j = Some(per_example);
    cell.energy_samples_j = net;
    cell.avg_power_w = Some(median(&power));
    if per_example > 0.0 {
        cell.fpo_per_joule = Some(cell.fpo_per_example as f64 / per_example);
    }
    let (g, usd) = greenbench_energy::co2e_and_cost(
        per_example * 1e6,
        e.prices.grid_g_co2e_per_kwh,
        e.prices.usd_per_kwh,
    );
    cell.co2e_g_per_million = Some(g);
    cell.cost_usd_per_million = Some(usd);
    if !others.is_empty() {
        let o = median(&others);
        cell.other_cpu_cores = Some(o);
        if o > QUIET_OTHER_CORES {
            cell.warnings.push(format!(
                "machine not quiet: other processes kept {o:.2} cores busy during the windows"
            ));
        }
    }
    if clamped {
        cell.warnings.push(
            "some windows used less than the idle power; their net energy is reported as 0".into(),
        );
    }
}

/// A one-line summary of a cell for logs.
pub fn cell_line(c: &Cell) -> String {
    let p = match c.precision {
        Precision::Fp32 => String::new(),
        p => format!(" {p}"),
    };
    match (&c.time_per_example_s, &c.error) {
        (Some(t), _) => format!(
            "{} {} b{}{p}: {:.2} us/example, {:.1} GFPO/s",
            c.model,
            c.backend,
            c.batch,
            t.median * 1e6,
            c.gflops.unwrap_or(0.0)
        ),
        (None, Some(e)) => format!("{} {} b{}{p}: FAILED: {e}", c.model, c.backend, c.batch),
        (None, None) => format!("{} {} b{}{p}: no result", c.model, c.backend, c.batch),
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
    mut energy: Option<&mut Energy>,
    cancel: &AtomicBool,
    obs: &dyn Observer,
) -> Result<ResultFile, RunError> {
    let resumed = cfg.resume.clone();
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
            energy: None,
            shard: cfg.shard,
            slurm: cfg.slurm.clone(),
        },
        cells: vec![],
        merged_from: vec![],
    };
    if let Some(prev) = &resumed {
        // Keep what was measured: its start, its peaks and its finished cells.
        file.environment.started_utc = prev.environment.started_utc.clone();
        file.environment.peaks = prev.environment.peaks.clone();
        file.cells = (prev.cells.iter())
            .filter(|c| c.status == CellStatus::Ok)
            .cloned()
            .collect();
        obs.note(&format!(
            "resuming: {} finished cell(s) kept from {}",
            file.cells.len(),
            cfg.out.display()
        ));
    }
    let save = |file: &ResultFile| {
        file.save(&cfg.out).map_err(|source| RunError::Write {
            path: cfg.out.display().to_string(),
            source,
        })
    };
    // Other greenbench runs measuring on this machine meanwhile are named in every cell
    // measured beside them (and this run in theirs): announced before idle is measured, so
    // a run starting now sees this one busy.
    let presence = crate::presence::Presence::announce(crate::presence::default_dir());
    let mut idle_warnings = Vec::new();
    if let Some(e) = energy.as_deref_mut() {
        if e.measured() && cfg.profile.idle_s > 0.0 {
            obs.note(&format!(
                "measuring idle power for {} s...",
                cfg.profile.idle_s
            ));
            match e.measure_idle(cfg.profile.idle_s) {
                Ok(idle) => {
                    let others = presence.others();
                    if !others.is_empty() {
                        idle_warnings.push(format!(
                            "idle power: {} (the idle figure includes its work)",
                            crate::presence::warning(&others)
                        ));
                    }
                    idle_warnings.extend(idle.and_then(|i| i.noisy()));
                }
                Err(msg) => obs.note(&format!(
                    "idle power unreadable ({msg}); reporting gross energy"
                )),
            }
            for w in &idle_warnings {
                obs.note(&format!("warning: {w}"));
            }
        }
        file.environment.energy = Some(EnergyEnv {
            kind: e.kind().into(),
            source: e.source(),
            meters: e.measured_names.clone(),
            idle_power_w: e.idle_w,
            idle_after_w: None,
            idle_warnings: idle_warnings.clone(),
            idle_s: cfg.profile.idle_s,
            prices: e.prices.clone(),
        });
    }
    let energy = energy.as_deref();
    save(&file)?;
    // Cell k of the backend-major order (backends x models x batches x precisions) belongs
    // to slice k % N.
    let precisions: Vec<Precision> = if cfg.precisions.is_empty() {
        vec![Precision::Fp32]
    } else {
        cfg.precisions.clone()
    };
    let np = precisions.len();
    let per_backend = models.len() * cfg.batches.len() * np;
    // Each model quantized (converted to bf16) once, when an int8 (bf16) cell first needs it.
    let mut quantized: Vec<Option<Result<QModel, String>>> = vec![None; models.len()];
    let mut halved: Vec<Option<Result<Model, String>>> = vec![None; models.len()];
    let in_shard = |k: usize| cfg.shard.is_none_or(|s| s.takes(k));
    let node_shared = cfg.slurm.as_ref().is_some_and(|j| j.node_shared);
    'outer: for (bi, backend) in backends.iter().enumerate() {
        let first = bi * per_backend;
        if !(first..first + per_backend).any(in_shard) {
            continue;
        }
        let kept_peak = (file.environment.peaks.iter())
            .find(|p| p.backend == backend.name() && p.device.name == backend.device().name)
            .cloned();
        let resumed_peak = kept_peak.is_some();
        let peak = if let Some(p) = kept_peak {
            Some(p)
        } else if cfg.peak_size == 0 {
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
        let peak_gflops = peak.as_ref().map(|p| p.attainable());
        if !resumed_peak {
            file.environment.peaks.extend(peak);
        }
        save(&file)?;
        let mut measured_here: Vec<usize> = Vec::new();
        // What the first cell measured here was: model index, batch, precision.
        let mut first_here: Option<(usize, usize, Precision)> = None;
        // Hashing a model's weights reads all of them: once per backend, not once per check.
        let device = backend.device().name;
        let fingerprints: Vec<String> = if resumed.is_some() {
            (models.iter())
                .map(|m| format!("{:016x}", m.weights.fingerprint()))
                .collect()
        } else {
            vec![String::new(); models.len()]
        };
        for (mi, model) in models.iter().enumerate() {
            for (j, &batch) in cfg.batches.iter().enumerate() {
                for (pi, &precision) in precisions.iter().enumerate() {
                    if !in_shard(first + (mi * cfg.batches.len() + j) * np + pi) {
                        continue;
                    }
                    if cancel.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    if resumed.is_some()
                        && has_cell(
                            &file.cells,
                            model,
                            &fingerprints[mi],
                            batch,
                            precision,
                            backend.name(),
                            &device,
                        )
                    {
                        continue;
                    }
                    let before = presence.others();
                    let (times0, mhz0) = (cfg.host_load.cpu_times(), cfg.host_load.mean_mhz());
                    let variant = match precision {
                        Precision::Fp32 => Variant::Fp32,
                        Precision::Int8 => Variant::Int8(quantized[mi].get_or_insert_with(|| {
                            obs.note(&format!(
                                "quantizing {} for int8 ({} calibration examples)",
                                model.name, cfg.calibration_examples
                            ));
                            quantize_model(model, &cfg.quant, cfg.calibration_examples)
                        })),
                        Precision::Bf16 => {
                            Variant::Bf16(halved[mi].get_or_insert_with(|| bf16_model(model)))
                        }
                    };
                    match measure_cell(
                        backend.as_ref(),
                        model,
                        variant,
                        batch,
                        &cfg.profile,
                        peak_gflops,
                        energy,
                        cancel,
                        obs,
                    ) {
                        Ok(mut cell) => {
                            let times1 = cfg.host_load.cpu_times();
                            cell.steal_share =
                                times0.zip(times1).and_then(|(a, b)| steal_share(a, b));
                            cell.cpu_mhz = match (mhz0, cfg.host_load.mean_mhz()) {
                                (Some(a), Some(b)) => Some((a + b) / 2.0),
                                (a, b) => a.or(b),
                            };
                            if let Some(s) = cell.steal_share.filter(|s| *s > STEAL_WARN) {
                                cell.warnings.push(steal_warning(s));
                            }
                            let mut beside = before.clone();
                            beside.extend(presence.others());
                            beside.sort_unstable();
                            beside.dedup();
                            if !beside.is_empty() {
                                cell.warnings.push(crate::presence::warning(&beside));
                            }
                            if node_shared {
                                withhold_node_energy(&mut cell);
                            }
                            file.cells.push(cell);
                            measured_here.push(file.cells.len() - 1);
                            first_here.get_or_insert((mi, batch, precision));
                            save(&file)?;
                        }
                        Err(_) => break 'outer,
                    }
                }
            }
        }
        // The first cell again, after the others: a slowdown that lasted through it (the
        // windows agree, all slow) shows only against a later measurement of the same cell.
        if let (Some((mi, batch, precision)), true) = (first_here, measured_here.len() > 1) {
            if cancel.load(Ordering::Relaxed) {
                break 'outer;
            }
            obs.note("measuring the run's first cell again, after the others");
            let variant = match (precision, &quantized[mi], &halved[mi]) {
                (Precision::Int8, Some(q), _) => Variant::Int8(q),
                (Precision::Bf16, _, Some(m)) => Variant::Bf16(m),
                _ => Variant::Fp32,
            };
            let mhz0 = cfg.host_load.mean_mhz();
            match measure_cell(
                backend.as_ref(),
                &models[mi],
                variant,
                batch,
                &cfg.profile,
                None,
                energy,
                cancel,
                obs,
            ) {
                Ok(mut again) => {
                    again.cpu_mhz = mhz0.or(cfg.host_load.mean_mhz());
                    let first = &mut file.cells[measured_here[0]];
                    crate::recheck::recheck_first_cell(first, &again);
                    if first.remeasured.as_ref().is_some_and(|r| r.disagrees) {
                        obs.note(&format!(
                            "warning: {}",
                            first.warnings.last().expect("pushed with the flag")
                        ));
                    }
                    save(&file)?;
                }
                Err(_) => break 'outer,
            }
        }
        // Cells measured while the machine ran slower than beside the fastest of them.
        for i in crate::reference::flag_slowed_cells(&mut file.cells, &measured_here) {
            obs.note(&format!(
                "warning: {}",
                file.cells[i].warnings.last().expect("pushed with the flag")
            ));
        }
        save(&file)?;
        // The peak again, after the cells: a disturbed measurement shows as disagreement,
        // and % of peak is taken against the better of the two.
        if !resumed_peak && cfg.peak_size > 0 && !measured_here.is_empty() {
            match measure_peak(backend.as_ref(), cfg.peak_size, &cfg.profile, cancel, obs) {
                Ok(again) => {
                    let p = file.environment.peaks.last_mut().expect("measured above");
                    crate::recheck::recheck_peak(p, &again);
                    let attainable = p.attainable();
                    for &i in &measured_here {
                        set_pct_of_peak(&mut file.cells[i], attainable);
                    }
                    save(&file)?;
                }
                Err(MeasureError::Interrupted) => break 'outer,
                Err(MeasureError::Backend(source)) => {
                    return Err(RunError::Peak {
                        backend: backend.name().to_string(),
                        source,
                    });
                }
            }
        }
    }
    // Idle again after the cells: a machine whose idle draw moved (another job started,
    // the clock or fans changed) makes every net figure uncertain by that much.
    if let (Some(e), false) = (energy, cancel.load(Ordering::Relaxed))
        && let Some(before) = e.idle_w
    {
        obs.note(&format!(
            "measuring idle power again for {} s...",
            cfg.profile.idle_s
        ));
        match e.idle_power(cfg.profile.idle_s) {
            Ok(Some(after)) => {
                let env = file.environment.energy.as_mut().expect("set with idle");
                env.idle_after_w = Some(after.w);
                let new: Vec<String> = after
                    .noisy()
                    .map(|w| format!("after the cells: {w}"))
                    .into_iter()
                    .chain(crate::energy::idle_moved(before, after.w))
                    .collect();
                for w in &new {
                    obs.note(&format!("warning: {w}"));
                }
                env.idle_warnings.extend(new);
            }
            Ok(None) => {}
            Err(msg) => obs.note(&format!("idle power after the cells unreadable ({msg})")),
        }
    }
    file.status = if cancel.load(Ordering::Relaxed) {
        obs.note(&format!(
            "interrupted: {} finished cells kept in {} (continue with --resume)",
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
