//! `greenbench train`: set up (greenbench-train), measure each run of the sweep
//! (greenbench-harness), price the whole experiment (greenbench-results), print.

use super::meters::{EnergyArgs, make_energy};
use anyhow::{Context, Result, bail};
use greenbench_harness::env::{fingerprint, now_utc};
use greenbench_harness::record::check_writable;
use greenbench_harness::training::{Experiment, run_sweep, sweep_result_file};
use greenbench_results::cost::{EnergyBasis, Pricing, price_sweep};
use greenbench_train::nn::Net;
use greenbench_train::setup::{
    fit_to_model, load_dataset, optimizer_by_name, sweep_learning_rates,
};
use std::path::PathBuf;

/// Train a model on real data on the CPU; report accuracy, counted training FPO, time,
/// energy and the price tag of the whole experiment (H = the sweep's runs).
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The model to train: mlp or lenet5 (or a JSON/zoo model the training ops cover).
    #[arg(long, alias = "models")]
    model: String,
    /// digits (shipped), mnist or cifar10 (files in --data-dir).
    #[arg(long, default_value = "digits")]
    dataset: String,
    /// MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte) or CIFAR-10
    /// binary batches (data_batch_*.bin).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A folder holding the shipped datasets (digits/digits.csv.gz) to read instead of the
    /// copy built into the binary.
    #[arg(long)]
    datasets_dir: Option<PathBuf>,
    /// Passes over the training split.
    #[arg(long, default_value_t = 15, value_parser = super::range::count)]
    epochs: usize,
    /// Learning rate (overridden per run by --sweep lr=...).
    #[arg(long, default_value_t = 1e-3, value_parser = super::range::positive32)]
    lr: f32,
    /// adam or sgd (momentum 0.9).
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Mini-batch size of training (examples per optimizer step).
    #[arg(long, default_value_t = 32, value_parser = super::range::count)]
    batch: usize,
    /// A hyperparameter sweep, e.g. lr=0.003,0.001,0.0003: one run per value (H runs).
    #[arg(long)]
    sweep: Option<String>,
    /// Seed of the initial weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Result file (one training cell per run).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing --out file (without it, an existing file is refused before
    /// training starts: results are never overwritten by accident).
    #[arg(long, requires = "out")]
    force: bool,
    /// Save the trained weights (the best test accuracy of the sweep) as safetensors.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Train only slice I of N of the sweep's points (`I/N`, or `auto/N` from
    /// SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX): point k belongs to slice k % N.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Also score the best trained weights in these precisions on the test split (int8:
    /// quantized and calibrated on 256 training examples, as `greenbench eval` does).
    #[arg(long, value_delimiter = ',', value_parser = super::run::parse_precision)]
    precision: Vec<greenbench_core::Precision>,
    #[command(flatten)]
    energy: EnergyArgs,
}

pub fn run(a: TrainArgs) -> Result<i32> {
    let optimizer = optimizer_by_name(&a.optimizer)?;
    let shard = super::parse_shard(a.shard.as_deref())?;
    let all_lrs = sweep_learning_rates(a.sweep.as_deref(), a.lr)?;
    let lrs: Vec<f32> = (all_lrs.iter().enumerate())
        .filter(|(k, _)| shard.is_none_or(|s| s.takes(*k)))
        .map(|(_, lr)| *lr)
        .collect();
    if lrs.is_empty() {
        bail!(
            "--shard {}: the sweep has {} point(s), so this slice is empty; use N <= {}",
            shard.map(|s| s.to_string()).unwrap_or_default(),
            all_lrs.len(),
            all_lrs.len()
        );
    }
    let model = greenbench_core::load_model(&a.model)?;
    let net = Net::new(&model)?;
    let d = load_dataset(&a.dataset, a.data_dir.as_deref(), a.datasets_dir.as_deref())?;
    let (fitted, (h, w)) = fit_to_model(d, &model, net.classes)?;
    let (tr, te) = fitted.split(0.2, a.seed);
    let (energy, _) = make_energy(&a.energy)?;
    let exp = Experiment {
        model: &model,
        net: &net,
        train: &tr,
        test: &te,
        epochs: a.epochs,
        batch: a.batch,
        optimizer,
        seed: a.seed,
        learning_rates: lrs,
    };
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
    // The result file: refused before training if it exists (unless --force) or cannot be
    // written.
    if let Some(out) = &a.out {
        if out.exists() && !a.force {
            anyhow::bail!(
                "{} exists: greenbench does not replace a result file. Replace it with --force, or give another --out",
                out.display()
            );
        }
        check_writable(out, true).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let machine = fingerprint(&super::build());
    let started = now_utc();
    let kind = energy.kind();
    let sweep = run_sweep(
        &exp,
        &energy,
        &machine,
        &mut |lr, e| {
            eprintln!(
                "  lr {lr}: epoch {:>2}: loss {:.4}, train accuracy {:.2} %, {:.2} s",
                e.epoch,
                e.loss,
                100.0 * e.train_accuracy,
                e.seconds
            )
        },
        &mut |r| {
            println!(
                "lr {}: test accuracy {:.2} % ({} test examples), {:.1} s, {}",
                r.lr,
                100.0 * r.test_accuracy,
                te.len(),
                r.seconds,
                r.energy_per_pass_j.map_or("energy n/a".into(), |j| format!(
                    "{:.3} mJ per training example-pass ({kind})",
                    j * 1e3
                ))
            );
        },
    )
    .map_err(anyhow::Error::msg)?;
    let cells = sweep.cells();
    // The price tag of the whole experiment: H = the sweep's runs, every factor measured.
    let prices = &energy.prices;
    let p = price_sweep(
        &cells,
        &Pricing {
            pue: greenbench_results::cost::DEFAULT_PUE,
            grid_g_per_kwh: prices.grid_g_co2e_per_kwh,
            grid_source: prices.grid_source.clone(),
            usd_per_kwh: prices.usd_per_kwh,
            price_source: prices.price_source.clone(),
            cloud_usd_per_hour: None,
            basis: EnergyBasis::Gross,
        },
    );
    let cost = exp.cost();
    let t = &p.totals;
    println!(
        "price tag: E·D·H = {} runs x {} examples x {} epochs: {:.3e} FPO counted (forward {} + loss {} + backward {} per example, optimizer {} per step), {:.1} s{}",
        p.runs as f64,
        tr.len(),
        a.epochs,
        p.totals.total_fpo,
        cost.forward_fpo,
        cost.loss_fpo,
        cost.backward_fpo,
        cost.optimizer_fpo_per_step,
        p.totals.seconds,
        match (t.joules, t.kwh, t.co2e_g, t.usd) {
            (Some(j), Some(kwh), Some(g), Some(usd)) => format!(
                ", {:.3} J = {:.3e} kWh ({kind}), {:.3e} g CO2e at {} g/kWh, ${:.3e} at ${}/kWh",
                j, kwh, g, prices.grid_g_co2e_per_kwh, usd, prices.usd_per_kwh
            ),
            _ => String::new(),
        }
    );
    if let Some((_, w)) = &sweep.best
        && !a.precision.is_empty()
    {
        let cpu = greenbench_cpu::CpuBackend::new(1)?;
        for &p in &a.precision {
            let m = greenbench_core::Model::from_parts(&model, w, a.seed)?;
            let acc = super::eval::score(&cpu, &m, p, &tr, &te, &Default::default(), 256)?;
            println!(
                "best weights in {p}: test accuracy {:.2} % ({} test examples)",
                100.0 * acc,
                te.len()
            );
        }
    }
    if let (Some(path), Some((acc, w))) = (&a.save, &sweep.best) {
        greenbench_core::checkpoint::save(&model, w, path)?;
        println!(
            "weights ({:.2} % test accuracy): {} (use with run/verify/export --weights)",
            100.0 * acc,
            path.display()
        );
    }
    if let Some(out) = &a.out {
        check_writable(out, true).with_context(|| format!("cannot write {}", out.display()))?;
        let file = sweep_result_file(
            machine,
            started,
            &exp,
            std::env::args().collect(),
            cells,
            shard,
        );
        file.save(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("results: {}", out.display());
    }
    Ok(0)
}
