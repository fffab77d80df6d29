//! The `greenbench` command line. With no arguments it runs the quick suite (every zoo model
//! at batch 1 and 32 on the CPU) and prints the table.

mod table;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use greenbench_core::{Backend, MODEL_NAMES, Model};
use greenbench_cpu::CpuBackend;
use greenbench_energy::{CpuEstimate, MeterStatus, RealFs, SysFs, discover};
use greenbench_gpu::{GpuBackend, NO_ADAPTER_HELP, adapters};
use greenbench_harness::energy::{Energy, Prices};
use greenbench_harness::env::{fingerprint, hostname, now_utc};
use greenbench_harness::record::{Cell, CellStatus, Peak, ResultFile, check_writable};
use greenbench_harness::runner::{Observer, RunConfig, measure_peak, run_suite};
use greenbench_harness::{Profile, record::RunStatus};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use table::{Align, Table, duration, si, thousands};

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser)]
#[command(
    name = "greenbench",
    version,
    about = "Puts a price tag on small ML models: time, FPO and energy per example.",
    long_about = "Puts a price tag on small ML models: time, FPO and energy per example, \
                  measured on each backend, following the Green AI proposal \
                  (Schwartz et al., 2019). With no subcommand, runs the quick suite."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// List the models with input shape, parameters, MACs, FPO and transcendentals per example.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Per-layer breakdown of one model: op, output shape, params, MACs, FPO, share.
    Inspect {
        /// Zoo model name, or a path to a JSON model description.
        model: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Measure models on backends and write a result file.
    Run(RunArgs),
    /// Export models (the folded graph and its exact weights) with an ONNX test data set.
    Export {
        /// Zoo model names or JSON files, comma-separated, or `all`.
        #[arg(value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long, default_value = "onnx")]
        format: String,
        /// Output directory: one folder per model (model.onnx, test_data_set_0/, greenbench.json).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Trained weights (safetensors) for the one model given.
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Train a model on real data on the CPU; report accuracy, counted training FPO, time,
    /// energy and the price tag of the whole experiment (H = the sweep's runs).
    Train(TrainArgs),
    /// Markdown report, CSV and SVG plots from result files (any number, any machines).
    Report {
        /// Result files. Default: every file in results/runs/.
        files: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Name of the Markdown file inside --out.
        #[arg(long, default_value = "BASELINES.md")]
        name: String,
        /// Fail on the first unreadable file instead of skipping it.
        #[arg(long)]
        strict: bool,
    },
    /// Per-cell time ratios NEW / BASE with a verdict that respects the measured intervals.
    /// Exits 1 on a regression beyond --threshold (for CI).
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Percent slower that counts as a regression (when the intervals do not overlap).
        #[arg(long, default_value_t = 5.0)]
        threshold: f64,
    },
    /// Merge result files from many machines into one; conflicts are reported, nothing is lost.
    Merge {
        files: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        strict: bool,
    },
    /// The Green AI price tag Cost(R) ∝ E·D·H of a whole experiment, from measured cells.
    Cost {
        #[arg(long)]
        model: String,
        /// D: training-set size, in examples.
        #[arg(long)]
        examples: u64,
        #[arg(long, default_value_t = 1)]
        epochs: u64,
        /// H: hyperparameter runs.
        #[arg(long, default_value_t = 1)]
        runs: u64,
        /// Result files to take per-example figures from. Default: results/runs/*.json.
        #[arg(long = "from")]
        from: Vec<PathBuf>,
        #[arg(long)]
        backend: Option<String>,
        #[arg(long)]
        batch: Option<usize>,
        /// Power usage effectiveness (1.0: no data-centre overhead; data centres average 1.58).
        #[arg(long, default_value_t = greenbench_results::cost::DEFAULT_PUE)]
        pue: f64,
        /// Grid carbon intensity, g CO2e per kWh. Default: world average 2023, 480 (Ember).
        #[arg(long)]
        grid_g_per_kwh: Option<f64>,
        /// Electricity price, US dollars per kWh. Default: US residential average 2023, 0.16 (EIA).
        #[arg(long)]
        price_usd_per_kwh: Option<f64>,
        /// Price money by machine time instead of energy: US dollars per hour.
        #[arg(long)]
        cloud_usd_per_hour: Option<f64>,
    },
    /// List the energy meters: each one available or not, why, and how to enable it.
    Meters {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        energy: EnergyArgs,
    },
    /// List the GPU adapters wgpu can see (name, backend, device type, driver).
    Devices {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run models on every available backend from the same inputs and compare each output
    /// with the CPU backend's (and the CPU's with the plain-loop reference). Exits 1 on a
    /// mismatch beyond tolerance.
    Verify {
        /// Models (zoo names or JSON files). Default: the whole zoo.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long, default_value = "1,32", value_delimiter = ',')]
        batch: Vec<usize>,
        /// Backends to check. Default: cpu, plus gpu when any adapter (software included) exists.
        #[arg(long, value_delimiter = ',')]
        backends: Vec<String>,
        /// Largest accepted difference, relative to the output's largest magnitude.
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f32,
        #[arg(long)]
        gpu_adapter: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Trained weights (safetensors) for the one model given.
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Measure each backend's attainable peak with a large fp32 matmul.
    Peak {
        #[arg(long, default_value = "cpu", value_delimiter = ',')]
        backends: Vec<String>,
        /// Matrix size n of the n x n x n product.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value = "quick")]
        profile: String,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// GPU adapter: index or part of the name (see `greenbench devices`).
        #[arg(long)]
        gpu_adapter: Option<String>,
    },
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Models to run (zoo names or JSON files), comma-separated. Default: the whole zoo.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Backends, comma-separated (cpu, gpu). Default: cpu, plus gpu when a hardware GPU
    /// adapter exists (a software adapter only when asked for by name).
    #[arg(long, value_delimiter = ',')]
    backends: Vec<String>,
    /// GPU adapter: index or part of the name (see `greenbench devices`).
    #[arg(long)]
    gpu_adapter: Option<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    batch: Vec<usize>,
    /// Measuring profile: quick (minutes for the zoo) or full (committed baselines).
    #[arg(long, default_value = "quick")]
    profile: String,
    /// CPU worker threads (default: all cores). Recorded in the results.
    #[arg(long)]
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
    #[command(flatten)]
    energy: EnergyArgs,
}

/// Where energy comes from, and what it costs.
#[derive(clap::Args, Clone, Default)]
struct EnergyArgs {
    /// Root of the sysfs tree the meters read (also GREENBENCH_SYSFS_ROOT); default /.
    #[arg(long)]
    sysfs_root: Option<PathBuf>,
    /// CPU TDP in watts for the energy estimate (used only when no counter is readable).
    #[arg(long)]
    cpu_tdp_w: Option<f64>,
    /// Grid carbon intensity, g CO2e per kWh. Default: world average 2023, 480 (Ember).
    #[arg(long)]
    grid_g_per_kwh: Option<f64>,
    /// Electricity price, US dollars per kWh. Default: US residential average 2023, 0.16 (EIA).
    #[arg(long)]
    price_usd_per_kwh: Option<f64>,
    /// Seconds of idle-power measurement before the run (default: the profile's).
    #[arg(long)]
    idle_s: Option<f64>,
    /// Do not read NVIDIA's NVML.
    #[arg(long)]
    no_nvml: bool,
}

impl Default for RunArgs {
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
            energy: EnergyArgs::default(),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => cmd_run(RunArgs::default()),
        Some(Command::List { format }) => cmd_list(format),
        Some(Command::Inspect { model, format }) => cmd_inspect(&model, format),
        Some(Command::Run(args)) => cmd_run(args),
        Some(Command::Devices { format }) => cmd_devices(format),
        Some(Command::Train(args)) => cmd_train(args),
        Some(Command::Export {
            models,
            format,
            out,
            seed,
            weights,
        }) => cmd_export(&models, &format, &out, seed, weights.as_deref()),
        Some(Command::Report {
            files,
            out,
            name,
            strict,
        }) => cmd_report(files, &out, &name, strict),
        Some(Command::Compare {
            base,
            new,
            threshold,
        }) => cmd_compare(&base, &new, threshold),
        Some(Command::Merge { files, out, strict }) => cmd_merge(&files, &out, strict),
        Some(Command::Cost {
            model,
            examples,
            epochs,
            runs,
            from,
            backend,
            batch,
            pue,
            grid_g_per_kwh,
            price_usd_per_kwh,
            cloud_usd_per_hour,
        }) => {
            let prices = prices(grid_g_per_kwh, price_usd_per_kwh);
            let q = greenbench_results::cost::CostQuery {
                model,
                examples,
                epochs,
                runs,
                backend,
                batch,
                pue,
                grid_g_per_kwh: prices.grid_g_co2e_per_kwh,
                grid_source: prices.grid_source,
                usd_per_kwh: prices.usd_per_kwh,
                price_source: prices.price_source,
                cloud_usd_per_hour,
            };
            cmd_cost(from, &q)
        }
        Some(Command::Meters { format, energy }) => cmd_meters(format, &energy),
        Some(Command::Verify {
            models,
            batch,
            backends,
            tolerance,
            gpu_adapter,
            seed,
            weights,
        }) => cmd_verify(
            &models,
            &batch,
            &backends,
            tolerance,
            gpu_adapter.as_deref(),
            seed,
            weights.as_deref(),
        ),
        Some(Command::Peak {
            backends,
            size,
            profile,
            threads,
            gpu_adapter,
        }) => cmd_peak(&backends, size, &profile, threads, gpu_adapter.as_deref()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn cmd_list(format: Format) -> Result<i32> {
    let models: Vec<Model> = MODEL_NAMES
        .iter()
        .map(|n| Model::load(n, 0))
        .collect::<Result<_, _>>()?;
    match format {
        Format::Json => {
            let v: Vec<serde_json::Value> = models
                .iter()
                .map(|m| {
                    let c = m.cost.total;
                    serde_json::json!({
                        "name": m.name,
                        "input_shape": m.graph.input.shape,
                        "params": c.params,
                        "macs": c.macs,
                        "fpo": c.fpo(),
                        "transcendentals": c.transcendentals,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table => {
            let mut t = Table::new(&[
                ("model", Align::Left),
                ("input", Align::Left),
                ("params", Align::Right),
                ("MACs/example", Align::Right),
                ("FPO/example", Align::Right),
                ("transcendentals", Align::Right),
            ]);
            for m in &models {
                let c = m.cost.total;
                t.row(vec![
                    m.name.clone(),
                    shape(&m.graph.input.shape, m.graph.input.token_vocab),
                    thousands(c.params),
                    thousands(c.macs),
                    thousands(c.fpo()),
                    thousands(c.transcendentals),
                ]);
            }
            print!("{}", t.render());
            println!(
                "FPO = 2 x MACs + other FPO (bias, activations, pooling, softmax, norms); \
                 transcendentals (exp, tanh, rsqrt) counted apart. Batch norm folded."
            );
        }
    }
    Ok(0)
}

fn shape(s: &[usize], vocab: Option<usize>) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    match vocab {
        Some(v) => format!("{} tokens < {v}", dims.join("x")),
        None => dims.join("x"),
    }
}

fn cmd_inspect(name: &str, format: Format) -> Result<i32> {
    let m = Model::load(name, 0)?;
    if let Format::Json = format {
        println!("{}", serde_json::to_string_pretty(&m.cost)?);
        return Ok(0);
    }
    let total = m.cost.total;
    let mut t = Table::new(&[
        ("layer", Align::Left),
        ("op", Align::Left),
        ("output", Align::Left),
        ("params", Align::Right),
        ("MACs", Align::Right),
        ("FPO", Align::Right),
        ("share of FPO", Align::Right),
    ]);
    for n in &m.cost.nodes {
        t.row(vec![
            n.name.clone(),
            n.label.clone(),
            shape(&n.output_shape, None),
            thousands(n.cost.params),
            thousands(n.cost.macs),
            thousands(n.cost.fpo()),
            format!("{:.1} %", 100.0 * n.cost.fpo() as f64 / total.fpo() as f64),
        ]);
    }
    t.row(vec![
        "total".into(),
        String::new(),
        shape(m.graph.output_shape(), None),
        thousands(total.params),
        thousands(total.macs),
        thousands(total.fpo()),
        "100.0 %".into(),
    ]);
    println!(
        "{} — input {}, per example; FPO = 2 x MACs + other FPO",
        m.name,
        shape(&m.graph.input.shape, m.graph.input.token_vocab)
    );
    print!("{}", t.render());
    println!(
        "transcendentals per example: {}",
        thousands(total.transcendentals)
    );
    Ok(0)
}

/// Resolve backend names. An empty list means: cpu, plus gpu if a hardware adapter exists
/// (said in one line when there is none); `software_ok` also accepts a software adapter
/// for the default (verify does, to check drivers).
fn make_backends(
    names: &[String],
    threads: Option<usize>,
    gpu_adapter: Option<&str>,
    software_ok: bool,
) -> Result<Vec<Box<dyn Backend>>> {
    let mut out: Vec<Box<dyn Backend>> = Vec::new();
    if names.is_empty() {
        out.push(Box::new(CpuBackend::on_this_thread(threads.unwrap_or(0))?));
        let found = adapters();
        let usable = gpu_adapter.is_some() || found.iter().any(|a| software_ok || !a.software);
        if usable {
            out.push(Box::new(GpuBackend::new(gpu_adapter)?));
        } else if found.is_empty() {
            eprintln!(
                "no GPU adapter found; running on the CPU only (`greenbench devices` says why)"
            );
        } else {
            let names: Vec<String> = found.iter().map(|a| a.name.clone()).collect();
            eprintln!(
                "only software GPU adapters ({}); running on the CPU only. Add --backends cpu,gpu to measure them (labelled software)",
                names.join(", ")
            );
        }
        return Ok(out);
    }
    for n in names {
        match n.as_str() {
            "cpu" => out.push(Box::new(CpuBackend::on_this_thread(threads.unwrap_or(0))?)),
            "gpu" => out.push(Box::new(
                GpuBackend::new(gpu_adapter).context("the gpu backend is not available")?,
            )),
            other => bail!("unknown backend `{other}`. Available backends: cpu, gpu"),
        }
    }
    Ok(out)
}

/// The cited default grid intensity and price, overridden by the flags given.
fn prices(grid_g_per_kwh: Option<f64>, usd_per_kwh: Option<f64>) -> Prices {
    let mut p = Prices::default();
    if let Some(g) = grid_g_per_kwh {
        p.grid_g_co2e_per_kwh = g;
        p.grid_source = "--grid-g-per-kwh".into();
    }
    if let Some(u) = usd_per_kwh {
        p.usd_per_kwh = u;
        p.price_source = "--price-usd-per-kwh".into();
    }
    p
}

/// Load models; a checkpoint applies to exactly one model.
fn load_models(
    names: &[String],
    seed: u64,
    weights: Option<&std::path::Path>,
) -> Result<Vec<Model>> {
    if weights.is_some() && names.len() != 1 {
        bail!("--weights holds one model's weights: give exactly one model with --models");
    }
    Ok(names
        .iter()
        .map(|n| Model::load_with(n, seed, weights))
        .collect::<Result<_, _>>()?)
}

fn make_energy(args: &EnergyArgs) -> Result<(Energy, Vec<MeterStatus>)> {
    for (name, v) in [
        ("--cpu-tdp-w", args.cpu_tdp_w),
        ("--grid-g-per-kwh", args.grid_g_per_kwh),
        ("--price-usd-per-kwh", args.price_usd_per_kwh),
        ("--idle-s", args.idle_s),
    ] {
        if let Some(x) = v
            && !(x.is_finite() && x >= 0.0)
        {
            bail!("{name} must be a non-negative number, got {x}");
        }
    }
    let fs: Arc<dyn SysFs> = Arc::new(RealFs::new(args.sysfs_root.clone()));
    let (meters, status) = discover(fs, !args.no_nvml);
    let machine = fingerprint(VERSION);
    let estimate = CpuEstimate::for_cpu(
        &machine.cpu_model,
        machine.cpu_logical_cores,
        args.cpu_tdp_w,
    );
    let prices = prices(args.grid_g_per_kwh, args.price_usd_per_kwh);
    Ok((Energy::new(meters, estimate, prices), status))
}

fn cmd_meters(format: Format, args: &EnergyArgs) -> Result<i32> {
    let (energy, status) = make_energy(args)?;
    if let Format::Json = format {
        let v = serde_json::json!({
            "meters": status,
            "in_use": if energy.measured() { "measured" } else { "estimated" },
            "source": energy.source(),
            "estimate": energy.estimate,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut t = Table::new(&[
        ("meter", Align::Left),
        ("available", Align::Left),
        ("detail", Align::Left),
    ]);
    for s in &status {
        t.row(vec![
            s.name.clone(),
            if s.available { "yes" } else { "no" }.into(),
            s.detail.clone(),
        ]);
    }
    print!("{}", t.render());
    for s in status.iter().filter(|s| !s.available) {
        if let Some(h) = &s.how_to_enable {
            println!("to enable {}: {h}", s.name);
        }
    }
    if energy.measured() {
        println!("energy figures will be measured: {}", energy.source());
    } else {
        println!(
            "no counter is readable, so energy figures will be {}",
            energy.source()
        );
    }
    Ok(0)
}

/// `greenbench train` arguments.
#[derive(clap::Args)]
struct TrainArgs {
    #[arg(long)]
    model: String,
    /// digits (shipped), mnist or cifar10 (files in --data-dir).
    #[arg(long, default_value = "digits")]
    dataset: String,
    /// MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte) or CIFAR-10
    /// binary batches (data_batch_*.bin).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the shipped datasets live.
    #[arg(long, default_value = "datasets")]
    datasets_dir: PathBuf,
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// adam or sgd (momentum 0.9).
    #[arg(long, default_value = "adam")]
    optimizer: String,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// A hyperparameter sweep, e.g. lr=0.003,0.001,0.0003: one run per value (H runs).
    #[arg(long)]
    sweep: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Result file (one training cell per run).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Save the trained weights (the best test accuracy of the sweep) as safetensors.
    #[arg(long)]
    save: Option<PathBuf>,
    #[command(flatten)]
    energy: EnergyArgs,
}

fn cmd_train(a: TrainArgs) -> Result<i32> {
    use greenbench_harness::record::{CellStatus, RunStatus};
    use greenbench_harness::stats::summarize;
    use greenbench_train::{Optimizer, TrainConfig, data, nn::Net, train, train_cost};
    if a.epochs == 0 || a.batch == 0 || !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--epochs, --batch and --lr must be positive");
    }
    let optimizer = match a.optimizer.as_str() {
        "adam" => Optimizer::Adam,
        "sgd" => Optimizer::Sgd { momentum: 0.9 },
        o => bail!("unknown optimizer `{o}`; use adam or sgd"),
    };
    let lrs: Vec<f32> = match &a.sweep {
        None => vec![a.lr],
        Some(sw) => {
            let vals = sw
                .strip_prefix("lr=")
                .with_context(|| format!("--sweep `{sw}`: only lr=a,b,c sweeps are supported"))?;
            vals.split(',')
                .map(|v| v.trim().parse::<f32>().ok().filter(|x| *x > 0.0))
                .collect::<Option<Vec<_>>>()
                .with_context(|| {
                    format!("--sweep `{sw}`: learning rates must be positive numbers")
                })?
        }
    };
    let model = greenbench_core::load_model(&a.model)?;
    let net = Net::new(&model)?;
    let d = match a.dataset.as_str() {
        "digits" => data::load_digits(&data::digits_path(&a.datasets_dir))?,
        "mnist" => {
            let dir = a
                .data_dir
                .clone()
                .context("--dataset mnist needs --data-dir with the IDX files")?;
            data::load_mnist(
                &dir.join("train-images-idx3-ubyte"),
                &dir.join("train-labels-idx1-ubyte"),
            )?
        }
        "cifar10" => {
            let dir = a
                .data_dir
                .clone()
                .context("--dataset cifar10 needs --data-dir with data_batch_*.bin")?;
            let files: Vec<PathBuf> = (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .collect();
            data::load_cifar10(&files)?
        }
        o => bail!("unknown dataset `{o}`; use digits, mnist or cifar10"),
    };
    // Fit the data to the model's input: resize single-channel images to H x W (a vector
    // input of n x n values takes n x n images, flattened).
    let want = &model.input.shape;
    let (h, w) = match want.as_slice() {
        [h, w, _] => (*h, *w),
        [n] => {
            let side = (*n as f64).sqrt() as usize;
            (side, side)
        }
        _ => (0, 0),
    };
    let fitted = if d.shape[..2] == [h, w] {
        d
    } else {
        data::resize(&d, h, w)
    };
    if fitted.example_len() != model.input_len() || fitted.classes != net.classes {
        bail!(
            "{} examples ({} values, {} classes) do not fit {} (input {:?}, {} classes)",
            fitted.name,
            fitted.example_len(),
            fitted.classes,
            model.name,
            want,
            net.classes
        );
    }
    let (tr, te) = fitted.split(0.2, a.seed);
    let (energy, _) = make_energy(&a.energy)?;
    let cost = train_cost(&model, optimizer);
    let steps_per_epoch = tr.len().div_ceil(a.batch) as u64;
    // Per training example-pass: forward + loss + backward, plus the optimizer's share.
    let opt_share = cost.optimizer_fpo_per_step as f64 * steps_per_epoch as f64 / tr.len() as f64;
    let fpo_per_example =
        cost.forward_fpo + cost.loss_fpo + cost.backward_fpo + opt_share.round() as u64;
    eprintln!(
        "training {} on {} ({} train / {} test, {}x{}), {} epochs, batch {}, {:?}; energy: {}",
        model.name,
        fitted.name,
        tr.len(),
        te.len(),
        h,
        w,
        a.epochs,
        a.batch,
        optimizer,
        energy.source()
    );
    if let Some(p) = &a.save {
        check_writable(p, true).with_context(|| format!("cannot write {}", p.display()))?;
    }
    let mut best: Option<(f64, greenbench_core::Weights)> = None;
    let mut cells = Vec::new();
    let machine = fingerprint(VERSION);
    let started = now_utc();
    for &lr in &lrs {
        let cfg = TrainConfig {
            epochs: a.epochs,
            batch: a.batch,
            lr,
            optimizer,
            seed: a.seed,
        };
        let r0 = energy.read().map_err(anyhow::Error::msg)?;
        let t0 = std::time::Instant::now();
        let done = train(
            &net,
            greenbench_core::generate_weights(&model, a.seed),
            &tr,
            &te,
            &cfg,
            &mut |e| {
                eprintln!(
                    "  lr {lr}: epoch {:>2}: loss {:.4}, train accuracy {:.2} %, {:.2} s",
                    e.epoch,
                    e.loss,
                    100.0 * e.train_accuracy,
                    e.seconds
                )
            },
        );
        let secs = t0.elapsed().as_secs_f64();
        let r1 = energy.read().map_err(anyhow::Error::msg)?;
        if best.as_ref().is_none_or(|b| done.test_accuracy > b.0) {
            best = Some((done.test_accuracy, done.weights.clone()));
        }
        let joules = energy.joules_between(&r0, &r1, secs);
        let passes = (tr.len() * a.epochs) as f64;
        let per_epoch: Vec<f64> = done
            .epochs
            .iter()
            .map(|e| e.seconds / tr.len() as f64)
            .collect();
        let t = summarize(&per_epoch);
        let e_per = joules.map(|j| j / passes);
        println!(
            "lr {lr}: test accuracy {:.2} % ({} test examples), {:.1} s, {}",
            100.0 * done.test_accuracy,
            te.len(),
            secs,
            e_per.map_or("energy n/a".into(), |j| format!(
                "{:.3} mJ per training example-pass ({})",
                j * 1e3,
                if energy.measured() {
                    "measured"
                } else {
                    "estimated"
                }
            ))
        );
        let (g, usd) = e_per.map_or((None, None), |j| {
            let (g, u) = greenbench_energy::co2e_and_cost(
                j * 1e6,
                energy.prices.grid_g_co2e_per_kwh,
                energy.prices.usd_per_kwh,
            );
            (Some(g), Some(u))
        });
        cells.push(greenbench_harness::record::Cell {
            host: Some(machine.hostname.clone()),
            model: model.name.clone(),
            backend: "cpu-train".into(),
            device: machine.cpu_model.clone(),
            device_kind: greenbench_core::DeviceKind::Cpu,
            threads: Some(1),
            batch: a.batch,
            status: CellStatus::Ok,
            error: None,
            params: cost_params(&model),
            macs_per_example: cost.forward_macs + cost.backward_macs,
            fpo_per_example,
            transcendentals_per_example: cost.transcendentals,
            examples_per_s: Some(1.0 / t.median),
            gflops: Some(fpo_per_example as f64 / t.median / 1e9),
            time_per_example_s: Some(t),
            device_time_per_example_s: None,
            device_time_note: Some(
                "CPU training: wall-clock per training example-pass, one window per epoch".into(),
            ),
            pct_of_peak: None,
            energy_per_example_j: e_per,
            energy_source: energy.source(),
            energy_kind: e_per.map(|_| {
                if energy.measured() {
                    "measured"
                } else {
                    "estimated"
                }
                .to_string()
            }),
            energy_gross_per_example_j: e_per,
            energy_net_per_example_j: e_per,
            energy_samples_j: vec![],
            avg_power_w: joules.map(|j| j / secs),
            fpo_per_joule: e_per
                .filter(|j| *j > 0.0)
                .map(|j| fpo_per_example as f64 / j),
            co2e_g_per_million: g,
            cost_usd_per_million: usd,
            other_cpu_cores: None,
            warnings: vec![],
            peak_rss_bytes: greenbench_harness::env::peak_rss_bytes(),
            weights_seed: a.seed,
            weights_fingerprint: format!("{:016x}", done.weights.fingerprint()),
            warmup_batches: 0,
            window_batches: vec![steps_per_epoch; a.epochs],
            accuracy: Some(done.test_accuracy),
            train_passes: Some(passes as u64),
            train: Some(format!(
                "{} ({} train / {} test, seed {}), {} epochs, batch {}, {:?}, lr {lr}",
                fitted.name,
                tr.len(),
                te.len(),
                a.seed,
                a.epochs,
                a.batch,
                optimizer
            )),
        });
    }
    // The price tag of the whole experiment: H = the sweep's runs, every factor measured.
    let h = cells.len() as f64;
    let passes = (tr.len() * a.epochs) as f64;
    let total_fpo: f64 = cells
        .iter()
        .map(|c| c.fpo_per_example as f64 * passes)
        .sum();
    let total_s: f64 = cells
        .iter()
        .map(|c| c.time_per_example_s.as_ref().map_or(0.0, |t| t.median) * passes)
        .sum();
    let total_j: Option<f64> = cells
        .iter()
        .map(|c| c.energy_per_example_j.map(|j| j * passes))
        .sum();
    println!(
        "price tag: E·D·H = {} runs x {} examples x {} epochs: {:.3e} FPO counted (forward {} + loss {} + backward {} per example, optimizer {} per step), {:.1} s{}",
        h,
        tr.len(),
        a.epochs,
        total_fpo,
        cost.forward_fpo,
        cost.loss_fpo,
        cost.backward_fpo,
        cost.optimizer_fpo_per_step,
        total_s,
        total_j.map_or(String::new(), |j| {
            let (g, usd) = greenbench_energy::co2e_and_cost(
                j,
                energy.prices.grid_g_co2e_per_kwh,
                energy.prices.usd_per_kwh,
            );
            format!(
                ", {:.3} J = {:.3e} kWh ({}), {:.3e} g CO2e at {} g/kWh, ${:.3e} at ${}/kWh",
                j,
                j / greenbench_energy::J_PER_KWH,
                if energy.measured() {
                    "measured"
                } else {
                    "estimated"
                },
                g,
                energy.prices.grid_g_co2e_per_kwh,
                usd,
                energy.prices.usd_per_kwh
            )
        })
    );
    if let (Some(p), Some((acc, w))) = (&a.save, &best) {
        greenbench_core::checkpoint::save(&model, w, p)?;
        println!(
            "weights ({:.2} % test accuracy): {} (use with run/verify/export --weights)",
            100.0 * acc,
            p.display()
        );
    }
    if let Some(out) = &a.out {
        check_writable(out, true).with_context(|| format!("cannot write {}", out.display()))?;
        let file = ResultFile {
            schema_version: greenbench_harness::SCHEMA_VERSION,
            status: RunStatus::Complete,
            environment: greenbench_harness::record::Environment {
                machine,
                started_utc: started,
                finished_utc: Some(now_utc()),
                profile: Profile {
                    name: "train".into(),
                    warmup_s: 0.0,
                    windows: a.epochs,
                    window_s: 0.0,
                    input_sets: 1,
                    idle_s: 0.0,
                },
                seed: a.seed,
                command: std::env::args().collect(),
                peaks: vec![],
                energy: None,
            },
            cells,
            merged_from: vec![],
        };
        file.save(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("results: {}", out.display());
    }
    Ok(0)
}

fn cost_params(g: &greenbench_core::Graph) -> u64 {
    greenbench_core::cost::graph_cost(g).total.params
}

fn cmd_export(
    models: &[String],
    format: &str,
    out: &std::path::Path,
    seed: u64,
    weights: Option<&std::path::Path>,
) -> Result<i32> {
    use greenbench_harness::record::write_atomic;
    if format != "onnx" {
        bail!("unknown export format `{format}`; supported: onnx");
    }
    let names: Vec<String> = if models.is_empty() || models.iter().any(|m| m == "all") {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        models.to_vec()
    };
    let loaded = load_models(&names, seed, weights)?;
    let cpu = CpuBackend::on_this_thread(0)?;
    for m in &loaded {
        let dir = out.join(&m.name);
        let data = dir.join("test_data_set_0");
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let bytes = greenbench_onnx::export(m);
        let x = greenbench_core::generate_inputs(&m.graph, 1, seed, 0);
        let y = cpu.prepare(&m.graph, &m.weights, 1)?.run(&x)?.to_vec();
        let c = m.cost.total;
        let meta = serde_json::json!({
            "name": m.name, "input_shape": m.graph.input.shape,
            "token_vocab": m.graph.input.token_vocab, "output_shape": m.graph.output_shape(),
            "params": c.params, "macs": c.macs, "fpo": c.fpo(),
            "transcendentals": c.transcendentals, "weights_seed": seed,
            "weights_fingerprint": format!("{:016x}", m.weights.fingerprint()),
            "opset": greenbench_onnx::OPSET, "greenbench_version": VERSION,
        });
        write_atomic(&dir.join("model.onnx"), &bytes)?;
        write_atomic(
            &data.join("input_0.pb"),
            &greenbench_onnx::input_tensor(&m.graph, 1, &x),
        )?;
        write_atomic(
            &data.join("output_0.pb"),
            &greenbench_onnx::output_tensor(&m.graph, 1, &y),
        )?;
        write_atomic(
            &dir.join("greenbench.json"),
            serde_json::to_string_pretty(&meta)?.as_bytes(),
        )?;
        println!(
            "{}: {} ({} bytes)",
            m.name,
            dir.join("model.onnx").display(),
            bytes.len()
        );
    }
    Ok(0)
}

/// Result files given, or every JSON file of results/runs/ (sorted, so reports are stable).
fn files_or_default(files: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    if !files.is_empty() {
        return Ok(files);
    }
    let dir = PathBuf::from("results/runs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no files given and cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    if v.is_empty() {
        bail!(
            "no result files in {}; run `greenbench run` first or name files",
            dir.display()
        );
    }
    Ok(v)
}

fn load(files: &[PathBuf], strict: bool) -> Result<Vec<greenbench_results::Loaded>> {
    let (ok, bad) = greenbench_results::load_many(files, strict)?;
    for e in &bad {
        eprintln!("skipped: {e}");
    }
    if ok.is_empty() {
        bail!("none of the {} file(s) could be read", files.len());
    }
    Ok(ok)
}

fn cmd_report(files: Vec<PathBuf>, out: &std::path::Path, name: &str, strict: bool) -> Result<i32> {
    let files = load(&files_or_default(files)?, strict)?;
    let written = greenbench_results::report::write_report(&files, out, name)
        .with_context(|| format!("cannot write the report into {}", out.display()))?;
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(0)
}

fn cmd_compare(base: &std::path::Path, new: &std::path::Path, threshold: f64) -> Result<i32> {
    use greenbench_results::compare::{Verdict, compare};
    if !(threshold.is_finite() && threshold >= 0.0) {
        bail!("--threshold must be a non-negative percentage");
    }
    let b = load(&[base.to_path_buf()], true)?.remove(0);
    let n = load(&[new.to_path_buf()], true)?.remove(0);
    let c = compare(&b, &n, threshold / 100.0);
    let mut t = Table::new(&[
        ("cell", Align::Left),
        ("base time/ex", Align::Right),
        ("new time/ex", Align::Right),
        ("new / base", Align::Right),
        ("verdict", Align::Left),
    ]);
    for r in &c.rows {
        t.row(vec![
            r.key.clone(),
            duration(r.base_s),
            duration(r.new_s),
            format!("{:.3}", r.ratio),
            match r.verdict {
                Verdict::Regression => "REGRESSION".into(),
                Verdict::Improvement => "faster".into(),
                Verdict::NoChange => "no change (within noise or threshold)".to_string(),
            },
        ]);
    }
    print!("{}", t.render());
    for k in &c.only_base {
        println!("only in {}: {k}", base.display());
    }
    for k in &c.only_new {
        println!("only in {}: {k}", new.display());
    }
    let r = c.regressions();
    println!("{r} regression(s) beyond {threshold} % with non-overlapping 95 % intervals");
    Ok(if r > 0 { 1 } else { 0 })
}

fn cmd_merge(files: &[PathBuf], out: &std::path::Path, strict: bool) -> Result<i32> {
    if files.is_empty() {
        bail!("name the result files to merge");
    }
    check_writable(out, false)
        .with_context(|| format!("cannot write the merged file {}", out.display()))?;
    let loaded = load(files, strict)?;
    let m = greenbench_results::merge::merge(&loaded);
    for c in &m.conflicts {
        eprintln!("conflict: {c}");
    }
    m.file
        .save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "merged {} file(s), {} cell(s), {} conflict(s) -> {}",
        loaded.len(),
        m.file.cells.len(),
        m.conflicts.len(),
        out.display()
    );
    Ok(0)
}

fn cmd_cost(from: Vec<PathBuf>, q: &greenbench_results::cost::CostQuery) -> Result<i32> {
    if q.examples == 0 || q.epochs == 0 || q.runs == 0 {
        bail!("--examples, --epochs and --runs must be positive");
    }
    if !(q.pue.is_finite() && q.pue >= 1.0) {
        bail!("--pue must be at least 1.0");
    }
    let files = load(&files_or_default(from)?, false)?;
    let tag = greenbench_results::cost::price(&files, q).map_err(anyhow::Error::msg)?;
    print!("{}", tag.text);
    Ok(0)
}

fn cmd_devices(format: Format) -> Result<i32> {
    let list = adapters();
    if let Format::Json = format {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|a| {
                serde_json::json!({
                    "index": a.index, "name": a.name, "backend": a.backend,
                    "device_type": a.device_type, "driver": a.driver,
                    "software": a.software, "timestamp_queries": a.timestamps,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("{NO_ADAPTER_HELP}");
        return Ok(0);
    }
    let mut t = Table::new(&[
        ("index", Align::Right),
        ("name", Align::Left),
        ("backend", Align::Left),
        ("type", Align::Left),
        ("driver", Align::Left),
        ("device time", Align::Left),
    ]);
    for a in &list {
        t.row(vec![
            a.index.to_string(),
            a.name.clone(),
            a.backend.clone(),
            if a.software {
                format!("{} (software)", a.device_type)
            } else {
                a.device_type.clone()
            },
            a.driver.clone(),
            if a.timestamps {
                "timestamp queries"
            } else {
                "none"
            }
            .into(),
        ]);
    }
    print!("{}", t.render());
    Ok(0)
}

fn cmd_verify(
    models: &[String],
    batches: &[usize],
    backends: &[String],
    tolerance: f32,
    gpu_adapter: Option<&str>,
    seed: u64,
    weights: Option<&std::path::Path>,
) -> Result<i32> {
    use greenbench_core::reference::{diff, run_reference};
    if batches.is_empty() || batches.contains(&0) {
        bail!("--batch needs positive batch sizes, e.g. --batch 1,32");
    }
    let names: Vec<String> = if models.is_empty() {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        models.to_vec()
    };
    let models = load_models(&names, seed, weights)?;
    let mut backends = make_backends(backends, None, gpu_adapter, true)?;
    // The CPU backend is the baseline every other backend is compared with.
    if !backends.iter().any(|b| b.name() == "cpu") {
        backends.insert(0, Box::new(CpuBackend::on_this_thread(0)?));
    }
    for b in &backends {
        let d = b.device();
        eprintln!("{}: {} ({:?})", b.name(), d.name, d.kind);
    }
    let mut t = Table::new(&[
        ("model", Align::Left),
        ("batch", Align::Right),
        ("backend", Align::Left),
        ("compared with", Align::Left),
        ("max abs diff", Align::Right),
        ("max rel diff", Align::Right),
        ("verdict", Align::Left),
    ]);
    let mut bad = 0;
    for m in &models {
        for &batch in batches {
            let x = greenbench_core::generate_inputs(&m.graph, batch, seed, 0);
            let reference = run_reference(&m.graph, &m.weights, &x, batch);
            let mut cpu_out: Option<Vec<f32>> = None;
            for b in &backends {
                let out = b
                    .prepare(&m.graph, &m.weights, batch)
                    .and_then(|mut p| p.run(&x).map(|o| o.to_vec()));
                let (against, base) = match &cpu_out {
                    Some(c) if b.name() != "cpu" => ("cpu", c.as_slice()),
                    _ => ("reference", reference.as_slice()),
                };
                let row = |d: String, r: String, v: String| {
                    vec![
                        m.name.clone(),
                        batch.to_string(),
                        b.name().to_string(),
                        against.to_string(),
                        d,
                        r,
                        v,
                    ]
                };
                match out {
                    Ok(o) => {
                        let d = diff(&o, base);
                        let ok = d.max_rel <= tolerance;
                        if !ok {
                            bad += 1;
                        }
                        t.row(row(
                            format!("{:.2e}", d.max_abs),
                            format!("{:.2e}", d.max_rel),
                            if ok { "ok" } else { "MISMATCH" }.into(),
                        ));
                        if b.name() == "cpu" {
                            cpu_out = Some(o);
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        t.row(row("-".into(), "-".into(), format!("FAILED: {e}")));
                    }
                }
            }
        }
    }
    print!("{}", t.render());
    println!(
        "tolerance: {tolerance:e} of the output's largest magnitude; {} check(s) failed",
        bad
    );
    Ok(if bad > 0 { 1 } else { 0 })
}

fn profile(name: &str) -> Result<Profile> {
    Profile::by_name(name).with_context(|| format!("unknown profile `{name}`; use quick or full"))
}

/// Progress bars on stderr (hidden when stderr is not a terminal).
struct Bars {
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Observer for Bars {
    fn started(&self, label: &str, windows: usize) {
        let pb = ProgressBar::new(windows as u64);
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg:<36} [{bar:20}] {pos}/{len} windows")
                .expect("template")
                .progress_chars("=> "),
        );
        pb.set_message(label.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        *self.bar.lock().expect("lock") = Some(pb);
    }
    fn window(&self, done: usize) {
        if let Some(pb) = self.bar.lock().expect("lock").as_ref() {
            pb.set_position(done as u64);
        }
    }
    fn finished(&self, summary: &str) {
        if let Some(pb) = self.bar.lock().expect("lock").take() {
            pb.finish_and_clear();
        }
        eprintln!("  {summary}");
    }
    fn note(&self, msg: &str) {
        eprintln!("{msg}");
    }
}

fn cmd_run(args: RunArgs) -> Result<i32> {
    let profile = profile(&args.profile)?;
    if args.batch.is_empty() || args.batch.contains(&0) {
        bail!("--batch needs positive batch sizes, e.g. --batch 1,32");
    }
    let names: Vec<String> = if args.models.is_empty() {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        args.models.clone()
    };
    let models = load_models(&names, args.seed, args.weights.as_deref())?;
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
                "{}-{}.json",
                hostname(),
                now_utc().replace(':', "")
            )),
            true,
        ),
    };
    // Fail before measuring anything if the result cannot be written.
    check_writable(&out, default_out)
        .with_context(|| format!("cannot write the result file {}", out.display()))?;

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing up, keeping the cells already measured (Ctrl-C again to quit now)");
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let mut profile = profile;
    if let Some(s) = args.energy.idle_s {
        profile.idle_s = s;
    }
    let cfg = RunConfig {
        profile,
        seed: args.seed,
        batches: args.batch.clone(),
        out: out.clone(),
        command: std::env::args().collect(),
        machine: fingerprint(VERSION),
        peak_size: if args.no_peak { 0 } else { 1024 },
    };
    eprintln!(
        "greenbench {VERSION}: {} model(s) x {} batch size(s) x {} backend(s), {} profile -> {}",
        models.len(),
        cfg.batches.len(),
        backends.len(),
        cfg.profile.name,
        out.display()
    );
    let obs = Bars {
        bar: std::sync::Mutex::new(None),
    };
    let (mut energy, _) = make_energy(&args.energy)?;
    eprintln!("energy: {}", energy.source());
    let file = run_suite(&backends, &models, &cfg, Some(&mut energy), &cancel, &obs)?;
    print_run_table(&file);
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

fn print_run_table(file: &ResultFile) {
    let env = &file.environment;
    println!(
        "{} — {} ({} logical cores), {} profile: {} windows of {} s after {} s warm-up",
        env.machine.hostname,
        env.machine.cpu_model,
        env.machine.cpu_logical_cores,
        env.profile.name,
        env.profile.windows,
        env.profile.window_s,
        env.profile.warmup_s
    );
    for p in &env.peaks {
        println!("{}", peak_line(p));
    }
    let mut t = Table::new(&[
        ("model", Align::Left),
        ("backend", Align::Left),
        ("device", Align::Left),
        ("batch", Align::Right),
        ("MACs/ex", Align::Right),
        ("FPO/ex", Align::Right),
        ("time/ex (median)", Align::Right),
        ("95% interval", Align::Right),
        ("device time/ex", Align::Right),
        ("ex/s", Align::Right),
        ("GFPO/s", Align::Right),
        ("% peak", Align::Right),
        ("energy/ex", Align::Right),
    ]);
    for c in &file.cells {
        t.row(cell_row(c));
    }
    print!("{}", t.render());
    if let Some(e) = &env.energy {
        println!("energy/ex: {}", e.source);
    }
    let warned: Vec<String> = file
        .cells
        .iter()
        .flat_map(|c| {
            c.warnings
                .iter()
                .map(move |w| format!("{} {} b{}: {w}", c.model, c.backend, c.batch))
        })
        .collect();
    for w in warned {
        println!("warning: {w}");
    }
}

/// Joules with a readable unit.
fn joules(j: f64) -> String {
    if j >= 1.0 {
        format!("{j:.2} J")
    } else if j >= 1e-3 {
        format!("{:.2} mJ", j * 1e3)
    } else {
        format!("{:.2} uJ", j * 1e6)
    }
}

fn peak_line(p: &Peak) -> String {
    format!(
        "peak {} ({}{}): {:.1} GFPO/s [{:.1}, {:.1}] on a {}x{}x{} fp32 matmul, {} time{}",
        p.backend,
        p.device.name,
        p.device
            .threads
            .map(|t| format!(", {t} threads"))
            .unwrap_or_default(),
        p.gflops,
        p.gflops_ci95_low,
        p.gflops_ci95_high,
        p.m,
        p.k,
        p.n,
        p.time_basis.replace('_', "-"),
        if p.device.kind == greenbench_core::DeviceKind::Software {
            " (software adapter: a CPU emulating a GPU, not GPU speed)"
        } else {
            ""
        }
    )
}

fn device_label(c: &Cell) -> String {
    let kind = match c.device_kind {
        greenbench_core::DeviceKind::Cpu => "cpu",
        greenbench_core::DeviceKind::Gpu => "gpu",
        greenbench_core::DeviceKind::Software => "software",
    };
    match c.threads {
        Some(t) => format!("{kind}, {t} thr"),
        None => kind.to_string(),
    }
}

fn cell_row(c: &Cell) -> Vec<String> {
    let head = vec![
        c.model.clone(),
        c.backend.clone(),
        device_label(c),
        c.batch.to_string(),
        si(c.macs_per_example as f64),
        si(c.fpo_per_example as f64),
    ];
    let tail = match &c.time_per_example_s {
        Some(t) => vec![
            duration(t.median),
            format!("{} – {}", duration(t.ci95_low), duration(t.ci95_high)),
            c.device_time_per_example_s
                .as_ref()
                .map_or("-".into(), |d| duration(d.median)),
            si(c.examples_per_s.unwrap_or(0.0)),
            format!("{:.1}", c.gflops.unwrap_or(0.0)),
            c.pct_of_peak.map_or("n/a".into(), |p| format!("{p:.0} %")),
            match (c.energy_per_example_j, c.energy_kind.as_deref()) {
                (Some(j), Some("estimated")) => format!("{} (est.)", joules(j)),
                (Some(j), _) => joules(j),
                (None, _) => "n/a".into(),
            },
        ],
        None => vec![
            "FAILED".into(),
            c.error.clone().unwrap_or_default(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ],
    };
    head.into_iter().chain(tail).collect()
}

fn cmd_peak(
    names: &[String],
    size: usize,
    profile_name: &str,
    threads: Option<usize>,
    gpu_adapter: Option<&str>,
) -> Result<i32> {
    if size == 0 {
        bail!("--size must be positive");
    }
    let profile = profile(profile_name)?;
    let backends = make_backends(names, threads, gpu_adapter, false)?;
    let obs = Bars {
        bar: std::sync::Mutex::new(None),
    };
    let cancel = AtomicBool::new(false);
    for b in &backends {
        let p = measure_peak(b.as_ref(), size, &profile, &cancel, &obs)
            .map_err(|e| anyhow::anyhow!("peak of {}: {e}", b.name()))?;
        println!("{}", peak_line(&p));
    }
    Ok(0)
}
