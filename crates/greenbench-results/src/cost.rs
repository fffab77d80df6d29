//! The Green AI price tag, Cost(R) ∝ E · D · H: a whole experiment's FPO, time, energy, CO2e
//! and money, from *measured* per-example figures of a result file. Every figure says where
//! it comes from.

use crate::{Loaded, host_of, ok_cells, short};
use greenbench_core::Precision;
use greenbench_harness::record::Cell;
use std::fmt::Write;

/// Training work per example relative to inference, until training is measured: backward
/// ≈ 2 x forward for matmul/conv (shared/FPO.md's rule of thumb), so forward + backward ≈ 3.
pub const TRAIN_FACTOR: f64 = 3.0;
/// Default power usage effectiveness: 1.0, no data-centre overhead (a laptop or desktop).
/// Data centres averaged 1.58 in 2023 (Uptime Institute, Global Data Center Survey 2023):
/// pass `--pue` for a data-centre run.
pub const DEFAULT_PUE: f64 = 1.0;

/// Which energy figure a price tag prices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnergyBasis {
    /// Everything the meters saw while the cells ran, idle draw included: what the meter and
    /// the electricity bill see. The default.
    #[default]
    Gross,
    /// What the model added above the idle power measured before the run (idle subtracted).
    Net,
}

impl EnergyBasis {
    pub fn name(self) -> &'static str {
        match self {
            EnergyBasis::Gross => "gross",
            EnergyBasis::Net => "net",
        }
    }

    /// A cell's joules per example on this basis; `None` when it has no usable figure (none
    /// was read, or it was withheld on a shared node). An estimate has no idle draw to
    /// subtract: its gross and net are one figure.
    pub fn of(self, c: &Cell) -> Option<f64> {
        let headline = c.energy_per_example_j?;
        Some(match self {
            EnergyBasis::Gross => c.energy_gross_per_example_j.unwrap_or(headline),
            EnergyBasis::Net => c.energy_net_per_example_j.unwrap_or(headline),
        })
    }
}

impl std::str::FromStr for EnergyBasis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gross" => Ok(EnergyBasis::Gross),
            "net" => Ok(EnergyBasis::Net),
            _ => Err(format!("`{s}` is not an energy basis: gross or net")),
        }
    }
}

/// How energy becomes a price: data-centre overhead, grid intensity, electricity or machine
/// price, and which energy figure is priced.
#[derive(Clone, Debug)]
pub struct Pricing {
    pub pue: f64,
    pub grid_g_per_kwh: f64,
    pub grid_source: String,
    pub usd_per_kwh: f64,
    pub price_source: String,
    /// If set, money = hours x this cloud price instead of energy x electricity price.
    pub cloud_usd_per_hour: Option<f64>,
    pub basis: EnergyBasis,
}

impl Pricing {
    /// Pricing at a run's (or the flags') grid intensity and electricity price, with `pue`
    /// and the energy `basis`; money by energy (set `cloud_usd_per_hour` for machine time).
    pub fn at(prices: greenbench_harness::energy::Prices, pue: f64, basis: EnergyBasis) -> Pricing {
        Pricing {
            pue,
            grid_g_per_kwh: prices.grid_g_co2e_per_kwh,
            grid_source: prices.grid_source,
            usd_per_kwh: prices.usd_per_kwh,
            price_source: prices.price_source,
            cloud_usd_per_hour: None,
            basis,
        }
    }

    /// The totals of `items`: each cell's figures times its example-passes. FPO and time are
    /// summed; energy (x PUE) only when every cell has a figure on the basis, else unknown
    /// rather than understated; money by machine time when a cloud price is set.
    pub fn totals(&self, items: &[(&Cell, f64)]) -> Totals {
        let total_fpo = items
            .iter()
            .map(|(c, w)| c.fpo_per_example as f64 * w)
            .sum();
        let seconds = items
            .iter()
            .map(|(c, w)| c.time_per_example_s.as_ref().map_or(0.0, |t| t.median) * w)
            .sum();
        let raw: Option<f64> = items
            .iter()
            .map(|(c, w)| self.basis.of(c).map(|j| j * w))
            .sum();
        let joules = raw.map(|j| j * self.pue);
        let kwh = joules.map(|j| j / greenbench_energy::J_PER_KWH);
        let co2e_g = kwh.map(|k| k * self.grid_g_per_kwh);
        let usd = match self.cloud_usd_per_hour {
            Some(p) => Some(seconds / 3600.0 * p),
            None => kwh.map(|k| k * self.usd_per_kwh),
        };
        Totals {
            total_fpo,
            seconds,
            joules,
            kwh,
            co2e_g,
            usd,
        }
    }

    /// The energy, CO2e and money lines of a price tag; `raw_j` is the energy before PUE,
    /// `how` how it was summed (`"3 x 1e-3 J x 3e7 = "`, or empty) and `kind` what it is
    /// (measured, estimated).
    fn explain(&self, t: &Totals, raw_j: Option<f64>, how: &str, kind: &str, s: &mut String) {
        match (raw_j, t.joules, t.kwh, t.co2e_g) {
            (Some(r), Some(j), Some(k), Some(g)) => {
                let _ = writeln!(
                    s,
                    "  energy      = {how}{r:.4e} J ({} energy, {kind}) x PUE {} = {j:.4e} J = {k:.4e} kWh",
                    self.basis.name(),
                    self.pue
                );
                let _ = writeln!(
                    s,
                    "  CO2e        = {k:.4e} kWh x {} g/kWh ({}) = {g:.4e} g",
                    self.grid_g_per_kwh, self.grid_source
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "  energy, CO2e: not available (a priced cell has no energy figure)"
                );
            }
        }
        match (self.cloud_usd_per_hour, t.usd, t.kwh) {
            (Some(p), Some(u), _) => {
                let _ = writeln!(
                    s,
                    "  money       = {:.4e} h x ${p}/h (--cloud-usd-per-hour, machine time) = ${u:.4e}",
                    t.seconds / 3600.0
                );
            }
            (None, Some(u), Some(k)) => {
                let _ = writeln!(
                    s,
                    "  money       = {k:.4e} kWh x ${}/kWh ({}) = ${u:.4e}",
                    self.usd_per_kwh, self.price_source
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "  money: not available (no energy figure; pass --cloud-usd-per-hour)"
                );
            }
        }
    }
}

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
    pub pricing: Pricing,
}

impl CostQuery {
    /// Whether cell `c` is one this query may price (model, backend, batch, precision).
    fn matches(&self, c: &Cell) -> bool {
        c.model == self.model
            && self.backend.as_ref().is_none_or(|b| &c.backend == b)
            && self.batch.is_none_or(|b| c.batch == b)
            && c.precision == self.precision
    }

    fn describe(&self) -> String {
        format!(
            "`{}`{}{}, precision {}",
            self.model,
            self.backend
                .as_ref()
                .map(|b| format!(", backend {b}"))
                .unwrap_or_default(),
            self.batch
                .map(|b| format!(", batch {b}"))
                .unwrap_or_default(),
            self.precision
        )
    }
}

/// What a whole experiment costs: counted FPO, measured time, and (when the cells have an
/// energy figure) energy, kWh, CO2e and money.
#[derive(Clone, Debug, PartialEq)]
pub struct Totals {
    /// Counted floating-point operations of the whole experiment.
    pub total_fpo: f64,
    /// Measured wall-clock, in seconds.
    pub seconds: f64,
    /// Energy in joules (PUE applied).
    pub joules: Option<f64>,
    /// The same energy in kilowatt-hours.
    pub kwh: Option<f64>,
    /// Grams of CO2-equivalent at the query's grid intensity.
    pub co2e_g: Option<f64>,
    /// US dollars: energy at the electricity price, or machine time at a cloud price.
    pub usd: Option<f64>,
}

/// The cell a price is taken from, among `cands`: the lowest positive energy per example on
/// the basis, compared only among cells of one kind (measured ones where any is measured,
/// else estimated ones); with no positive energy figure at all, the lowest time. Returns it
/// and a sentence saying how it was chosen.
pub(crate) fn cheapest<'a>(
    cands: &[(&'a Loaded, &'a Cell)],
    basis: EnergyBasis,
) -> Option<((&'a Loaded, &'a Cell), String)> {
    let energy = |c: &Cell| basis.of(c).filter(|j| *j > 0.0);
    let kind_of = |c: &Cell| c.energy_kind.clone().unwrap_or_default();
    let with: Vec<_> = cands.iter().filter(|(_, c)| energy(c).is_some()).collect();
    let kind = if with.iter().any(|(_, c)| kind_of(c) == "measured") {
        "measured".to_string()
    } else {
        with.first().map(|(_, c)| kind_of(c)).unwrap_or_default()
    };
    let same: Vec<_> = with.iter().filter(|(_, c)| kind_of(c) == kind).collect();
    if let Some(best) = same.iter().min_by(|a, b| {
        energy(a.1)
            .partial_cmp(&energy(b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    }) {
        let mut why = format!(
            "chosen: the lowest {} energy per example of {} {kind} cell(s)",
            basis.name(),
            same.len()
        );
        let other = with.len() - same.len();
        if other > 0 {
            let _ = write!(
                why,
                "; {other} cell(s) of another kind not compared with them"
            );
        }
        let none = cands.len() - with.len();
        if none > 0 {
            let _ = write!(
                why,
                "; {none} cell(s) without a positive energy figure left out"
            );
        }
        return Some(((best.0, best.1), why));
    }
    let best = cands.iter().min_by(|a, b| {
        let t = |c: &Cell| {
            c.time_per_example_s
                .as_ref()
                .map_or(f64::INFINITY, |t| t.median)
        };
        t(a.1)
            .partial_cmp(&t(b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    })?;
    Some((
        *best,
        format!(
            "chosen: the lowest time per example of {} cell(s) (none has a positive energy figure)",
            cands.len()
        ),
    ))
}

/// Whether a cell is one run of a measured experiment: a training run greenbench measured
/// (`cpu-train`), or a tracked command (`greenbench track`).
pub fn is_run(c: &Cell) -> bool {
    c.backend.ends_with("-train") || c.backend == greenbench_harness::tracking::TRACK_BACKEND
}

/// The one name the measured runs (training or tracked) in `files` carry, for pricing them
/// without naming it; an error listing the names when there are several, or saying how to
/// measure a run when there is none.
pub fn only_run_model(files: &[Loaded]) -> Result<String, String> {
    let names: std::collections::BTreeSet<String> = ok_cells(files)
        .into_iter()
        .filter(|(_, c)| is_run(c))
        .map(|(_, c)| c.model.clone())
        .collect();
    match names.len() {
        1 => Ok(names.into_iter().next().expect("one")),
        0 => Err("no measured run (training or tracked) in the given files: measure one with `greenbench train` or `greenbench track -- CMD`, or name the model and give the examples to price it from an inference cell".into()),
        _ => Err(format!(
            "the files hold runs of {}: name one model",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

impl Totals {
    /// Every total times `k` (H runs like the mean of the ones measured).
    fn scaled(&self, k: f64) -> Totals {
        Totals {
            total_fpo: self.total_fpo * k,
            seconds: self.seconds * k,
            joules: self.joules.map(|v| v * k),
            kwh: self.kwh.map(|v| v * k),
            co2e_g: self.co2e_g.map(|v| v * k),
            usd: self.usd.map(|v| v * k),
        }
    }
}

/// The computed price tag.
#[derive(Clone, Debug)]
pub struct PriceTag {
    pub totals: Totals,
    /// The explained figures, one per line.
    pub text: String,
}

/// Price `q` from the cheapest matching cell ([`cheapest`]: lowest positive energy among
/// cells of one kind, else lowest time). Errors name what is missing.
pub fn price(files: &[Loaded], q: &CostQuery) -> Result<PriceTag, String> {
    let cands: Vec<_> = ok_cells(files)
        .into_iter()
        .filter(|(_, c)| q.matches(c))
        .collect();
    let ((l, c), why) = cheapest(&cands, q.pricing.basis).ok_or_else(|| {
        format!(
            "no measured cell for model {} in the given result files; run `greenbench run --models {}{}` first",
            q.describe(),
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
    let trained = is_run(c);
    let factor = if trained { 1.0 } else { TRAIN_FACTOR };
    let work = factor * passes;
    let totals = q.pricing.totals(&[(c, work)]);
    let e = q.pricing.basis.of(c);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Price tag of training {}: D = {} examples x {} epochs x H = {} runs = {:.3e} example-passes",
        q.model, q.examples, q.epochs, q.runs, passes
    );
    let _ = writeln!(
        s,
        "from the measured cell: host {}, {} on {} ({:?}{}), batch {}, {}, in {} ({why})",
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
        "  per example ({}; time measured): {:.3e} s [95% {:.3e}, {:.3e}], {} FPO, {} energy {}",
        if trained {
            "a training pass: forward + backward + optimizer share, FPO counted"
        } else {
            "inference"
        },
        t.median,
        t.ci95_low,
        t.ci95_high,
        c.fpo_per_example,
        q.pricing.basis.name(),
        match e {
            Some(j) => format!("{j:.4e} J ({})", c.energy_source),
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
        "  total FPO   = {factor} x {} x {passes:.3e} = {:.4e}",
        c.fpo_per_example, totals.total_fpo
    );
    let _ = writeln!(
        s,
        "  time        = {factor} x {:.4e} s x {passes:.3e} = {:.4e} s = {:.4} h",
        t.median,
        totals.seconds,
        totals.seconds / 3600.0
    );
    let kind = c.energy_kind.as_deref().unwrap_or("none");
    let how = e.map_or(String::new(), |j| {
        format!("{factor} x {j:.4e} J x {passes:.3e} = ")
    });
    q.pricing
        .explain(&totals, e.map(|j| j * work), &how, kind, &mut s);
    Ok(PriceTag { totals, text: s })
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

/// Price a sweep from its cells (`cpu-train` cells, each with its example-passes).
pub fn price_sweep(cells: &[Cell], pricing: &Pricing) -> SweepPrice {
    let items: Vec<(&Cell, f64)> = cells
        .iter()
        .map(|c| (c, c.train_passes.unwrap_or(0) as f64))
        .collect();
    SweepPrice {
        runs: cells.len(),
        totals: pricing.totals(&items),
    }
}

/// The price tag of a measured sweep read back from result files (one per run, as a Slurm
/// fleet writes them, or merged): every training cell of `q`'s model (and backend, batch,
/// precision where given) is one of the H runs, each priced by its own measured figures.
/// Slices of a sharded sweep that are absent are named.
pub fn price_measured_sweep(
    files: &[Loaded],
    q: &CostQuery,
) -> Result<(SweepPrice, String), String> {
    let runs: Vec<_> = ok_cells(files)
        .into_iter()
        .filter(|(_, c)| q.matches(c) && is_run(c))
        .collect();
    if runs.is_empty() {
        return Err(format!(
            "no measured training run or tracked command of {} in the given result files; give --examples to price it from an inference cell, train it (`greenbench train --model {}`), or measure your own run (`greenbench track -- CMD`)",
            q.describe(),
            q.model
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
    let mut p = price_sweep(&cells, &q.pricing);
    // --runs H: H runs like the mean of the ones measured.
    let h = if q.runs > 1 {
        let k = q.runs as f64 / p.runs as f64;
        p.totals = p.totals.scaled(k);
        format!(
            "H = {} runs like the {} measured (their mean x {})",
            q.runs, p.runs, q.runs
        )
    } else {
        format!("H = {} run(s) present", p.runs)
    };
    let t = &p.totals;
    let tracked = cells
        .iter()
        .all(|c| c.backend == greenbench_harness::tracking::TRACK_BACKEND);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Price tag of the measured {} of {}: {h}{}; time measured, {}, energy as each run says",
        if tracked { "runs" } else { "sweep" },
        q.model,
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                " of {}; MISSING shard(s) {} are not in this price",
                expected.unwrap_or(0),
                missing.join(", ")
            )
        },
        if tracked {
            "work not counted (a tracked command)"
        } else {
            "FPO counted"
        }
    );
    for (l, c) in &runs {
        let _ = writeln!(
            s,
            "  run: {} on {} ({}), {} example-passes, {}, energy {}",
            c.train.as_deref().unwrap_or("?"),
            host_of(l, c),
            short(&l.path),
            c.train_passes.unwrap_or(0),
            match (c.accuracy, c.cpu_s) {
                (Some(a), _) => format!("test accuracy {:.2} %", 100.0 * a),
                (None, Some(cpu)) => format!("CPU time {cpu:.4e} s"),
                (None, None) => "test accuracy ?".into(),
            },
            match (q.pricing.basis.of(c), c.energy_kind.as_deref()) {
                (Some(j), Some(k)) => format!("{j:.4e} J per example-pass ({k})"),
                _ => format!("not available ({})", c.energy_source),
            }
        );
    }
    if tracked {
        let _ = writeln!(
            s,
            "  total FPO   = not counted (greenbench counts the work of the models it runs, not of a tracked command)"
        );
    } else {
        let _ = writeln!(s, "  total FPO   = {:.4e} (counted)", t.total_fpo);
    }
    let _ = writeln!(
        s,
        "  time        = {:.4e} s = {:.4} h (measured)",
        t.seconds,
        t.seconds / 3600.0
    );
    let kinds: std::collections::BTreeSet<&str> = runs
        .iter()
        .filter_map(|(_, c)| c.energy_kind.as_deref())
        .collect();
    let kind = match kinds.len() {
        0 => "none".to_string(),
        1 => kinds.iter().next().copied().unwrap_or("?").to_string(),
        _ => format!(
            "partly {}",
            kinds.into_iter().collect::<Vec<_>>().join(", partly ")
        ),
    };
    let raw = t.joules.map(|j| j / q.pricing.pue);
    let how = if q.runs > 1 {
        format!("{} x the runs' mean ", q.runs)
    } else {
        "the runs' sum ".into()
    };
    q.pricing.explain(t, raw, &how, &kind, &mut s);
    Ok((p, s))
}
