//! The Green AI price tag, Cost(R) ∝ E · D · H: a whole experiment's FPO, time, energy, CO2e
//! and money, from *measured* per-example figures of a result file. Every figure says where
//! it comes from.

use crate::{Loaded, host_of, ok_cells, short};
use greenbench_core::Precision;
use std::fmt::Write;

/// Training work per example relative to inference, until training is measured: backward
/// ≈ 2 x forward for matmul/conv (shared/FPO.md's rule of thumb), so forward + backward ≈ 3.
pub const TRAIN_FACTOR: f64 = 3.0;
/// Default power usage effectiveness: 1.0, no data-centre overhead (a laptop or desktop).
/// Data centres averaged 1.58 in 2023 (Uptime Institute, Global Data Center Survey 2023):
/// pass `--pue` for a data-centre run.
pub const DEFAULT_PUE: f64 = 1.0;

/// What to price.
#[derive(Clone, Debug)]
pub struct CostQuery {
    pub model: String,
    /// D: training-set size (examples).
    pub examples: u64,
    /// Passes over the data.
    pub epochs: u64,
    /// H: hyperparameter runs.
    pub runs: u64,
    pub backend: Option<String>,
    pub batch: Option<usize>,
    /// The precision priced (cells of other precisions are not candidates).
    pub precision: Precision,
    pub pue: f64,
    pub grid_g_per_kwh: f64,
    pub grid_source: String,
    pub usd_per_kwh: f64,
    pub price_source: String,
    /// If set, money = hours x this cloud price instead of energy x electricity price.
    pub cloud_usd_per_hour: Option<f64>,
}

/// What a whole experiment costs: counted FPO, measured time, and (when the cells have an
/// energy figure) energy, kWh, CO2e and money.
#[derive(Clone, Debug, PartialEq)]
pub struct Totals {
    /// Counted floating-point operations of the whole experiment.
    pub total_fpo: f64,
    /// Measured wall-clock, in seconds.
    pub seconds: f64,
    /// Energy in joules (PUE applied where the query gives one).
    pub joules: Option<f64>,
    /// The same energy in kilowatt-hours.
    pub kwh: Option<f64>,
    /// Grams of CO2-equivalent at the query's grid intensity.
    pub co2e_g: Option<f64>,
    /// US dollars: energy at the electricity price, or machine time at a cloud price.
    pub usd: Option<f64>,
}

/// The computed price tag.
#[derive(Clone, Debug)]
pub struct PriceTag {
    pub totals: Totals,
    /// The explained figures, one per line.
    pub text: String,
}

/// Price `q` from the cheapest matching measured cell (lowest energy per example, else
/// lowest time). Errors name what is missing.
pub fn price(files: &[Loaded], q: &CostQuery) -> Result<PriceTag, String> {
    let cands: Vec<_> = ok_cells(files)
        .into_iter()
        .filter(|(_, c)| c.model == q.model)
        .filter(|(_, c)| q.backend.as_ref().is_none_or(|b| &c.backend == b))
        .filter(|(_, c)| q.batch.is_none_or(|b| c.batch == b))
        .filter(|(_, c)| c.precision == q.precision)
        .collect();
    let (l, c) = cands
        .iter()
        .min_by(|a, b| {
            let k = |c: &greenbench_harness::record::Cell| {
                c.energy_per_example_j
                    .unwrap_or(c.time_per_example_s.as_ref().expect("ok").median * 1e9)
            };
            k(a.1).partial_cmp(&k(b.1)).expect("finite")
        })
        .ok_or_else(|| {
            format!(
                "no measured cell for model `{}`{}{}, precision {} in the given result files; run `greenbench run --models {}{}` first",
                q.model,
                q.backend.as_ref().map(|b| format!(", backend {b}")).unwrap_or_default(),
                q.batch.map(|b| format!(", batch {b}")).unwrap_or_default(),
                q.precision,
                q.model,
                match q.precision {
                    Precision::Fp32 => String::new(),
                    p => format!(" --precision {p}"),
                }
            )
        })?;
    let t = c.time_per_example_s.as_ref().expect("ok cells have times");
    let passes = q.examples as f64 * q.epochs as f64 * q.runs as f64;
    // A training cell's figures are per training example-pass already (measured); an
    // inference cell's are scaled by TRAIN_FACTOR.
    let trained = c.backend.ends_with("-train");
    let factor = if trained { 1.0 } else { TRAIN_FACTOR };
    let work = factor * passes;
    let total_fpo = c.fpo_per_example as f64 * work;
    let seconds = t.median * work;
    let joules = c.energy_per_example_j.map(|j| j * work * q.pue);
    let kwh = joules.map(|j| j / greenbench_energy::J_PER_KWH);
    let co2e_g = kwh.map(|k| k * q.grid_g_per_kwh);
    let usd = match q.cloud_usd_per_hour {
        Some(p) => Some(seconds / 3600.0 * p),
        None => kwh.map(|k| k * q.usd_per_kwh),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Price tag of training {}: D = {} examples x {} epochs x H = {} runs = {:.3e} example-passes",
        q.model, q.examples, q.epochs, q.runs, passes
    );
    let _ = writeln!(
        s,
        "from the measured cell: host {}, {} on {} ({:?}{}), batch {}, {}, in {}",
        host_of(l, c),
        c.backend,
        c.device,
        c.device_kind,
        c.threads
            .map(|t| format!(", {t} threads"))
            .unwrap_or_default(),
        c.batch,
        c.precision,
        short(&l.path)
    );
    let _ = writeln!(
        s,
        "  per example ({}; time measured): {:.3e} s [95% {:.3e}, {:.3e}], {} FPO, energy {}",
        if trained {
            "a training pass: forward + backward + optimizer share, FPO counted"
        } else {
            "inference"
        },
        t.median,
        t.ci95_low,
        t.ci95_high,
        c.fpo_per_example,
        match c.energy_per_example_j {
            Some(j) => format!("{j:.3e} J ({})", c.energy_source),
            None => format!("not available ({})", c.energy_source),
        }
    );
    if trained {
        let _ = writeln!(
            s,
            "  training: measured ({}), test accuracy {}",
            c.train.as_deref().unwrap_or("?"),
            c.accuracy
                .map_or("?".into(), |a| format!("{:.2} %", 100.0 * a))
        );
    } else {
        let _ = writeln!(
            s,
            "  training factor: {TRAIN_FACTOR} x inference (forward + backward ~ 2 x forward): an APPROXIMATION until training is measured"
        );
    }
    let _ = writeln!(
        s,
        "  total FPO   = {factor} x {} x {passes:.3e} = {total_fpo:.3e}",
        c.fpo_per_example
    );
    let _ = writeln!(
        s,
        "  time        = {factor} x {:.3e} s x {passes:.3e} = {seconds:.3e} s = {:.2} h",
        t.median,
        seconds / 3600.0
    );
    match (joules, kwh, co2e_g) {
        (Some(j), Some(k), Some(g)) => {
            let _ = writeln!(
                s,
                "  energy      = {factor} x {:.3e} J x {passes:.3e} x PUE {} = {j:.3e} J = {k:.4} kWh",
                c.energy_per_example_j.unwrap_or(0.0),
                q.pue
            );
            let _ = writeln!(
                s,
                "  CO2e        = {k:.4} kWh x {} g/kWh ({}) = {:.1} g",
                q.grid_g_per_kwh, q.grid_source, g
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "  energy, CO2e: not available (the cell has no energy figure)"
            );
        }
    }
    match (q.cloud_usd_per_hour, usd, kwh) {
        (Some(p), Some(u), _) => {
            let _ = writeln!(
                s,
                "  money       = {:.2} h x ${p}/h (--cloud-usd-per-hour) = ${u:.2}",
                seconds / 3600.0
            );
        }
        (None, Some(u), Some(k)) => {
            let _ = writeln!(
                s,
                "  money       = {k:.4} kWh x ${}/kWh ({}) = ${u:.4}",
                q.usd_per_kwh, q.price_source
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "  money: not available (no energy figure; pass --cloud-usd-per-hour)"
            );
        }
    }
    Ok(PriceTag {
        totals: Totals {
            total_fpo,
            seconds,
            joules,
            kwh,
            co2e_g,
            usd,
        },
        text: s,
    })
}

/// The price tag of a measured training sweep: every run's cells summed, every factor
/// measured (H = the runs, D = `passes` example-passes per run, E = each run's figures).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPrice {
    /// H: the runs priced.
    pub runs: usize,
    /// Energy only when every run has an energy figure.
    pub totals: Totals,
}

/// Price a sweep from its cells (`cpu-train` cells, each with its example-passes) at the
/// given grid intensity and electricity price.
pub fn price_sweep(
    cells: &[greenbench_harness::record::Cell],
    grid_g_per_kwh: f64,
    usd_per_kwh: f64,
) -> SweepPrice {
    let passes = |c: &greenbench_harness::record::Cell| c.train_passes.unwrap_or(0) as f64;
    let sum = |f: &dyn Fn(&greenbench_harness::record::Cell) -> f64| -> f64 {
        cells.iter().map(|c| f(c) * passes(c)).sum()
    };
    let joules: Option<f64> = cells
        .iter()
        .map(|c| c.energy_per_example_j.map(|j| j * passes(c)))
        .sum();
    let priced = joules.map(|j| greenbench_energy::co2e_and_cost(j, grid_g_per_kwh, usd_per_kwh));
    SweepPrice {
        runs: cells.len(),
        totals: Totals {
            total_fpo: sum(&|c| c.fpo_per_example as f64),
            seconds: sum(&|c| c.time_per_example_s.as_ref().map_or(0.0, |t| t.median)),
            joules,
            kwh: joules.map(|j| j / greenbench_energy::J_PER_KWH),
            co2e_g: priced.map(|p| p.0),
            usd: priced.map(|p| p.1),
        },
    }
}

/// The price tag of a measured sweep read back from result files (one per run, as a Slurm
/// fleet writes them, or merged): every training cell of `model` is one of the H runs, each
/// priced by its own measured figures. Slices of a sharded sweep that are absent are named.
pub fn price_measured_sweep(
    files: &[Loaded],
    q: &CostQuery,
) -> Result<(SweepPrice, String), String> {
    let runs: Vec<_> = ok_cells(files)
        .into_iter()
        .filter(|(_, c)| c.model == q.model && c.backend.ends_with("-train"))
        .collect();
    if runs.is_empty() {
        return Err(format!(
            "no measured training run of `{}` in the given result files; give --examples to price it from an inference cell, or train it (`greenbench train --model {}`)",
            q.model, q.model
        ));
    }
    // Shards a sweep was cut into, per file environment (merged files keep each one's).
    let mut shards: Vec<greenbench_harness::cluster::Shard> = Vec::new();
    for l in files {
        let envs: Vec<_> = if l.file.merged_from.is_empty() {
            vec![&l.file.environment]
        } else {
            l.file.merged_from.iter().collect()
        };
        shards.extend(envs.iter().filter_map(|e| e.shard));
    }
    let expected = shards.iter().map(|s| s.count).max();
    let missing: Vec<String> = match expected {
        Some(n) => (0..n)
            .filter(|i| !shards.iter().any(|s| s.index == *i))
            .map(|i| format!("{i}/{n}"))
            .collect(),
        None => vec![],
    };
    let cells: Vec<_> = runs.iter().map(|(_, c)| (*c).clone()).collect();
    let p = price_sweep(&cells, q.grid_g_per_kwh, q.usd_per_kwh);
    let t = &p.totals;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Price tag of the measured sweep of {}: H = {} run(s) present{}; time measured, FPO counted, energy as each run says",
        q.model,
        p.runs,
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                " of {}; MISSING shard(s) {} are not in this price",
                expected.unwrap_or(0),
                missing.join(", ")
            )
        }
    );
    for (l, c) in &runs {
        let _ = writeln!(
            s,
            "  run: {} on {} ({}), {} example-passes, test accuracy {}, energy {}",
            c.train.as_deref().unwrap_or("?"),
            host_of(l, c),
            short(&l.path),
            c.train_passes.unwrap_or(0),
            c.accuracy
                .map_or("?".into(), |a| format!("{:.2} %", 100.0 * a)),
            match (c.energy_per_example_j, c.energy_kind.as_deref()) {
                (Some(j), Some(k)) => format!("{j:.3e} J per example-pass ({k})"),
                _ => format!("not available ({})", c.energy_source),
            }
        );
    }
    let _ = writeln!(s, "  total FPO   = {:.3e} (counted)", t.total_fpo);
    let _ = writeln!(
        s,
        "  time        = {:.3e} s = {:.2} h (measured)",
        t.seconds,
        t.seconds / 3600.0
    );
    match (t.joules, t.kwh, t.co2e_g, t.usd) {
        (Some(j), Some(k), Some(g), Some(u)) => {
            let kinds: std::collections::BTreeSet<&str> = runs
                .iter()
                .filter_map(|(_, c)| c.energy_kind.as_deref())
                .collect();
            let kind = match kinds.len() {
                1 => kinds.iter().next().copied().unwrap_or("?").to_string(),
                _ => format!(
                    "partly {}",
                    kinds.into_iter().collect::<Vec<_>>().join(", partly ")
                ),
            };
            let _ = writeln!(s, "  energy      = {j:.3e} J = {k:.3e} kWh ({kind})");
            let _ = writeln!(
                s,
                "  CO2e        = {k:.3e} kWh x {} g/kWh ({}) = {g:.3e} g",
                q.grid_g_per_kwh, q.grid_source
            );
            let _ = writeln!(
                s,
                "  money       = {k:.3e} kWh x ${}/kWh ({}) = ${u:.3e}",
                q.usd_per_kwh, q.price_source
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "  energy, CO2e, money: not available (a run has no energy figure)"
            );
        }
    }
    Ok((p, s))
}
