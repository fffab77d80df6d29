//! `greenbench run` (and the bare `greenbench`): measure models on backends, write the
//! result file cell by cell, print the table. Ctrl-C keeps the cells already measured.

use super::meters::{EnergyArgs, make_energy};
use super::{Bars, VERSION, load_models, make_backends, names_or_zoo, profile};
use anyhow::{Context, Result, bail};
use greenbench_core::Precision;
use greenbench_core::quant::{Calibration, QuantConfig, Requantizer};
use greenbench_harness::cluster::SlurmJob;
use greenbench_harness::env::{fingerprint, hostname, now_utc};
use greenbench_harness::record::{CellStatus, ResultFile, RunStatus, check_writable};
use greenbench_harness::runner::{RunConfig, resumable, run_suite};
use greenbench_results::text::run_table;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Measure models on backends and write a result file.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Models to run (zoo names, ONNX files or JSON files), comma-separated. Default: the whole zoo.
    #[arg(long, alias = "model", value_delimiter = ',')]
    models: Vec<String>,
    /// Backends, comma-separated (cpu, gpu). Default: cpu, plus gpu when a hardware GPU
    /// adapter exists (a software adapter only when asked for by name).
    #[arg(long, alias = "backend", value_delimiter = ',')]
    backends: Vec<String>,
    /// GPU adapter: index or part of the name (see `greenbench devices`).
    #[arg(long)]
    gpu_adapter: Option<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,32", value_delimiter = ',', value_parser = super::range::count)]
    batch: Vec<usize>,
    /// Measuring profile: quick (minutes for the zoo) or full (committed baselines).
    #[arg(long, default_value = "quick")]
    profile: String,
    /// CPU worker threads (default: all cores). Recorded in the results.
    #[arg(long, value_parser = super::range::threads)]
    threads: Option<usize>,
    /// Result file. Default: results/runs/<host>-<UTC timestamp>.json
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of weights and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip measuring each backend's matmul peak (the % peak column is then n/a).
    #[arg(long)]
    no_peak: bool,
    /// Trained weights (a safetensors checkpoint from `greenbench train --save`) for the one
    /// model given, instead of seeded ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Bind a symbolic dimension of an ONNX model's inputs: NAME=SIZE, repeatable and
    /// comma-separated (`--dim sequence=128`); a list sweeps it like --batch
    /// (`--dim sequence=64,128,256`), each size a model of its own (`bert[sequence=128]`).
    /// The leading dimension stays the batch.
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    pub dim: Vec<String>,
    /// Time these examples instead of generated ones: a test data directory in the ONNX
    /// layout (`input_0.pb`, `input_1.pb`, ... one per input of the one ONNX model given),
    /// cycled to fill each batch. Without --dim, its shapes bind the symbolic dimensions.
    #[arg(long, value_name = "DIR")]
    pub inputs: Option<PathBuf>,
    /// Measure only slice I of N of the cells (models x backends x batches, deterministic and
    /// balanced): `I/N`, or `auto/N` to take I from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX. Run every I (anywhere) and `greenbench merge` the files.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Keep adding windows to each cell until the 95 % interval's half-width is within PCT
    /// percent of the median (default 2), for at most 10 times the profile's windows; each
    /// cell records whether it got there.
    #[arg(long, value_name = "PCT", num_args = 0..=1, default_missing_value = "2", value_parser = super::range::percent)]
    until_stable: Option<f64>,
    /// Continue the interrupted run in --out: its finished cells are kept as they are, the
    /// rest are measured and appended. Refused if it came from another machine, greenbench
    /// version, seed or profile.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Replace an existing --out file (without it, an existing file is refused: results are
    /// never overwritten by accident); with --resume, start over when it cannot be continued.
    #[arg(long, requires = "out")]
    force: bool,
    /// Precisions, comma-separated: fp32 (default), int8 (post-training static quantization,
    /// CPU backend; docs/INT8.md), bf16 (weight layers on bf16 operands with fp32 sums, on
    /// AVX-512 BF16 where the CPU has it, emulated elsewhere; docs/BF16.md). Each model runs
    /// once per precision.
    #[arg(long, default_value = "fp32", value_delimiter = ',', value_parser = parse_precision)]
    precision: Vec<Precision>,
    /// Seeded examples int8 calibration reads activation ranges from.
    #[arg(long, default_value_t = 32, value_parser = super::range::count)]
    calibration: usize,
    /// How calibration turns those examples into ranges: minmax, or percentile:P (e.g.
    /// percentile:99.99, clipping outliers).
    #[arg(long, default_value = "minmax", value_parser = parse_calibration)]
    calibration_method: Calibration,
    /// How int8 layers turn int32 sums back into uint8: fixed (a fixed-point multiplier and
    /// shift, TFLite's single rounding, ties rounded up) or fp32 (an fp32
    /// multiplier rounding half to even, as XNNPACK and ONNX Runtime do).
    #[arg(long, default_value = "fixed", value_parser = parse_requantizer)]
    requantizer: Requantizer,
    #[command(flatten)]
    energy: EnergyArgs,
}

pub(crate) fn parse_precision(s: &str) -> Result<Precision, String> {
    if s.contains(',') {
        return Err(
            "this command takes one precision, fp32 or int8 (run, verify and eval take a comma-separated list)"
                .into(),
        );
    }
    s.parse()
}

pub(crate) fn parse_calibration(s: &str) -> Result<Calibration, String> {
    s.parse()
}

pub(crate) fn parse_requantizer(s: &str) -> Result<Requantizer, String> {
    s.parse()
}

impl Default for RunArgs {
    /// What the bare `greenbench` runs: the quick profile over the zoo at batch 1 and 32.
    fn default() -> Self {
        RunArgs {
            models: vec![],
            backends: vec![],
            gpu_adapter: None,
            batch: vec![1, 32],
            profile: "quick".into(),
            threads: None,
            out: None,
            seed: 0,
            no_peak: false,
            weights: None,
            dim: vec![],
            inputs: None,
            shard: None,
            until_stable: None,
            resume: false,
            force: false,
            precision: vec![Precision::Fp32],
            calibration: 32,
            calibration_method: Calibration::MinMax,
            requantizer: Requantizer::Fixed,
            energy: EnergyArgs::default(),
        }
    }
}

/// A Ctrl-C handler: the first interrupt asks the run to finish the cell in hand and keep
/// what it measured; a second quits at once.
fn cancel_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing up, keeping the cells already measured (Ctrl-C again to quit now; continue later with --out FILE --resume)");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(cancel)
}

pub fn run(args: RunArgs) -> Result<i32> {
    let mut profile = profile(&args.profile)?;
    let shard = super::parse_shard(args.shard.as_deref())?;
    let names = names_or_zoo(&args.models);
    let dims = match &args.inputs {
        Some(dir) => super::examples::dims_for(&names, dir, &args.dim)?,
        None => args.dim.clone(),
    };
    let mut models = load_models(&names, args.seed, args.weights.as_deref(), &dims)?;
    if let Some(dir) = &args.inputs {
        super::examples::attach(&mut models, &names[0], dir)?;
    }
    let backends = make_backends(
        &args.backends,
        args.threads,
        args.gpu_adapter.as_deref(),
        false,
    )?;
    let (out, default_out) = match &args.out {
        Some(p) => (p.clone(), false),
        None => (
            PathBuf::from("results/runs").join(format!(
                "{}.json",
                super::unique_name(&format!("{}-{}", hostname(), now_utc().replace(':', "")))
            )),
            true,
        ),
    };
    // Never replace a result file by accident.
    if out.exists() && !args.resume && !args.force {
        bail!(
            "{} exists: greenbench does not replace a result file. Continue it with --resume, replace it with --force, or give another --out",
            out.display()
        );
    }
    // Fail before measuring anything if the result cannot be written.
    check_writable(&out, default_out)
        .with_context(|| format!("cannot write the result file {}", out.display()))?;
    let cancel = cancel_on_ctrl_c()?;
    if let Some(s) = args.energy.idle_s {
        profile.idle_s = s;
    }
    profile.until_stable = args.until_stable.map(|pct| pct / 100.0);
    let cfg = RunConfig {
        profile,
        seed: args.seed,
        batches: args.batch.clone(),
        out: out.clone(),
        command: std::env::args().collect(),
        machine: fingerprint(&super::build()),
        peak_size: if args.no_peak { 0 } else { 1024 },
        shard,
        slurm: SlurmJob::from_env(),
        resume: None,
        host_load: Default::default(),
        precisions: dedup(&args.precision),
        quant: QuantConfig {
            calibration: args.calibration_method,
            requantizer: args.requantizer,
        },
        calibration_examples: args.calibration,
    };
    let mut cfg = cfg;
    if args.resume {
        let prev = ResultFile::load(&out)
            .with_context(|| format!("cannot resume from {}", out.display()))?;
        match resumable(&prev, &cfg) {
            Ok(()) => cfg.resume = Some(prev),
            Err(why) if args.force => {
                eprintln!(
                    "not resuming {} ({why}); starting over (--force)",
                    out.display()
                )
            }
            Err(why) => bail!(
                "cannot resume {}: {why}. Use another --out, or --force to start over",
                out.display()
            ),
        }
    }
    eprintln!(
        "greenbench {VERSION}: {} model(s) x {} batch size(s) x {} precision(s) x {} backend(s), {} profile{} -> {}",
        models.len(),
        cfg.batches.len(),
        cfg.precisions.len(),
        backends.len(),
        cfg.profile.name,
        shard.map(|s| format!(", shard {s}")).unwrap_or_default(),
        out.display()
    );
    if let Some(s) = shard {
        let cells = models.len() * cfg.batches.len() * cfg.precisions.len() * backends.len();
        if s.index >= cells {
            eprintln!(
                "shard {s}: the run has {cells} cell(s), so this slice has none (the result file will hold no cells)"
            );
        }
    }
    let obs = Bars::default();
    let (mut energy, _) = make_energy(&args.energy)?;
    eprintln!("energy: {}", energy.source());
    let file = run_suite(&backends, &models, &cfg, Some(&mut energy), &cancel, &obs)?;
    print!("{}", run_table(&file));
    println!("results: {}", out.display());
    let failed = file
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Failed)
        .count();
    Ok(match file.status {
        RunStatus::Interrupted => 130,
        _ if failed > 0 => {
            eprintln!("{failed} cell(s) failed; see their `error` in the result file");
            1
        }
        _ => 0,
    })
}

/// The precisions in the order given, each once.
fn dedup(p: &[Precision]) -> Vec<Precision> {
    let mut v: Vec<Precision> = Vec::new();
    for &x in p {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    if v.is_empty() {
        v.push(Precision::Fp32);
    }
    v
}
