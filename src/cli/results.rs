//! The commands that read result files: `report`, `compare`, `merge` and `cost`
//! (greenbench-results does the work; this prints it).

use super::meters::prices;
use anyhow::{Context, Result, bail};
use greenbench_harness::record::check_writable;
use greenbench_results::Loaded;
use greenbench_results::compare::Verdict;
use greenbench_results::cost::{CostQuery, Pricing};
use greenbench_results::text::{Table, duration};
use std::path::PathBuf;

/// What `report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The Markdown report, cells.csv and plots/*.svg.
    Md,
    /// index.html (self-contained), models/*.html and labels/*.svg.
    Html,
    /// Both (the default).
    Both,
}

/// The report of result files (any number, any machines): a self-contained HTML page with a
/// page per model and a price-tag label per model and machine, and the Markdown report with
/// CSV and SVG plots (docs/REPORT.md).
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Result files. Default: every file in results/runs/.
    files: Vec<PathBuf>,
    /// Output directory. Default: a fresh results/reports/<UTC timestamp>-<pid>/, so the
    /// committed results/BASELINES.md, cells.csv and plots/ are only rewritten when asked for
    /// with `--out-dir results` (as scripts/baselines.sh does).
    #[arg(long = "out-dir", alias = "out", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Name of the Markdown file inside --out-dir.
    #[arg(long, default_value = "BASELINES.md")]
    name: String,
    /// What to write: md (BASELINES.md, cells.csv, plots/), html (index.html, models/,
    /// labels/) or both.
    #[arg(long, value_enum, default_value = "both")]
    format: ReportFormat,
    /// Also write the price-tag labels (labels/<model>--<host>.svg) with --format md (html
    /// always writes them).
    #[arg(long)]
    labels: bool,
    /// Fail on the first unreadable file instead of skipping it.
    #[arg(long)]
    strict: bool,
}

/// Per-cell time ratios NEW / BASE with a verdict that accounts for run-to-run variation
/// (docs/COMPARE.md). Exits 1 on a regression (for CI), 2 when the files share no cell.
#[derive(clap::Args)]
pub struct CompareArgs {
    base: PathBuf,
    new: PathBuf,
    /// The smallest change that matters, in percent.
    #[arg(long, default_value_t = 5.0, value_parser = super::range::non_negative)]
    threshold: f64,
    /// This machine's run-to-run variation of a cell's time, in percent: no change smaller
    /// than it gets a verdict. Default: measured on the dev VM (docs/COMPARE.md); measure
    /// yours the same way.
    #[arg(long, default_value_t = 100.0 * greenbench_results::compare::DEFAULT_NOISE, value_parser = super::range::non_negative, conflicts_with = "noise_from")]
    noise: f64,
    /// The run-to-run variation, in percent, of cells whose machine references (timed beside
    /// each cell) agree within 5 %: their margin when below --noise. Default: measured on
    /// the dev VM (docs/COMPARE.md).
    #[arg(long, default_value_t = 100.0 * greenbench_results::compare::DEFAULT_STEADY_NOISE, value_parser = super::range::non_negative, conflicts_with = "noise_from")]
    steady_noise: f64,
    /// Measure --noise and --steady-noise from these result files instead: repeated runs of
    /// one suite on this machine, in the order they ran (the largest change of any cell
    /// between a run and the next; of cells whose references agree, for the steady one).
    #[arg(long, num_args = 2..)]
    noise_from: Vec<PathBuf>,
}

/// Merge result files from many machines into one; conflicts are reported, nothing is lost.
#[derive(clap::Args)]
pub struct MergeArgs {
    files: Vec<PathBuf>,
    /// The merged result file to write.
    #[arg(long)]
    out: PathBuf,
    /// Fail on the first unreadable file instead of skipping it.
    #[arg(long)]
    strict: bool,
}

/// The Green AI price tag Cost(R) ∝ E·D·H of a whole experiment, from measured cells.
#[derive(clap::Args)]
pub struct CostArgs {
    /// The model to price: a zoo name, or the name an ONNX/JSON model's cells carry (an .onnx
    /// path is taken by its name), or a tracked run's label. Without --examples it may be
    /// left out when the --from files' runs are all of one name.
    #[arg(long, alias = "models")]
    model: Option<String>,
    /// D: training-set size, in examples (priced from the cheapest inference or training
    /// cell). Without it, the measured training runs of --model in --from are summed instead:
    /// H = the runs present (a sweep's result files, e.g. a Slurm fleet's results/*.json).
    #[arg(long, value_parser = super::range::count64)]
    examples: Option<u64>,
    /// Passes over the data (with --examples; default 1).
    #[arg(long, value_parser = super::range::count64)]
    epochs: Option<u64>,
    /// H: hyperparameter runs (default 1). With --examples, of the priced cell's experiment;
    /// without, H runs like the measured ones in --from (their mean x H: e.g. a tracked
    /// run's price tag for the H runs a sweep will make).
    #[arg(long, value_parser = super::range::count64)]
    runs: Option<u64>,
    /// Result files to take per-example figures from (space- or comma-separated). Default:
    /// results/runs/*.json.
    #[arg(long = "from", num_args = 1.., value_delimiter = ',')]
    from: Vec<PathBuf>,
    /// Price only cells of this backend (cpu, gpu, cpu-train, onnxruntime-cpu, ...).
    #[arg(long, alias = "backends")]
    backend: Option<String>,
    /// Price only cells of this batch size.
    #[arg(long, value_parser = super::range::count)]
    batch: Option<usize>,
    /// Price cells of this precision (fp32, int8, bf16).
    #[arg(long, default_value = "fp32", value_parser = super::run::parse_precision)]
    precision: greenbench_core::Precision,
    /// Power usage effectiveness (1.0: no data-centre overhead; data centres average 1.58).
    #[arg(long, default_value_t = greenbench_results::cost::DEFAULT_PUE, value_parser = super::range::pue)]
    pue: f64,
    /// Grid carbon intensity, g CO2e per kWh. Default: world average 2023, 480 (Ember).
    #[arg(long, value_parser = super::range::non_negative)]
    grid_g_per_kwh: Option<f64>,
    /// Electricity price, US dollars per kWh. Default: US residential average 2023, 0.16 (EIA).
    #[arg(long, value_parser = super::range::non_negative)]
    price_usd_per_kwh: Option<f64>,
    /// Price money by machine time instead of energy: US dollars per hour.
    #[arg(long, value_parser = super::range::non_negative)]
    cloud_usd_per_hour: Option<f64>,
    /// Which energy to price: gross (everything the meters saw, idle draw included: what the
    /// bill sees) or net (what the model added above idle).
    #[arg(long, default_value = "gross", value_parser = ["gross", "net"])]
    energy: String,
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

/// Load result files, saying which were skipped; at least one must load.
fn load(files: &[PathBuf], strict: bool) -> Result<Vec<Loaded>> {
    let (ok, bad) = greenbench_results::load_many(files, strict)?;
    for e in &bad {
        eprintln!("skipped: {e}");
    }
    if ok.is_empty() {
        bail!("none of the {} file(s) could be read", files.len());
    }
    Ok(ok)
}

pub fn report(a: ReportArgs) -> Result<i32> {
    let files = load(&files_or_default(a.files)?, a.strict)?;
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("results/reports").join(super::unique_name(
            &greenbench_harness::env::now_utc().replace(':', ""),
        ))
    });
    write_report(&files, &out, &a.name, a.format, a.labels)
}

/// Write the report of `files` into `out` (BASELINES.md and index.html), saying what was
/// written.
pub fn load_report_files(files: &[Loaded], out: &std::path::Path) -> Result<i32> {
    write_report(files, out, "BASELINES.md", ReportFormat::Both, false)
}

fn write_report(
    files: &[Loaded],
    out: &std::path::Path,
    name: &str,
    format: ReportFormat,
    labels: bool,
) -> Result<i32> {
    let cannot = || format!("cannot write the report into {}", out.display());
    let mut written = Vec::new();
    if format != ReportFormat::Html {
        written.extend(
            greenbench_results::report::write_report(files, out, name).with_context(cannot)?,
        );
    }
    if format != ReportFormat::Md {
        written.extend(greenbench_results::html::write(files, out).with_context(cannot)?);
    } else if labels {
        let dir = out.join("labels");
        std::fs::create_dir_all(&dir).with_context(cannot)?;
        for l in greenbench_results::label::labels(files) {
            let p = dir.join(&l.file_name);
            greenbench_harness::record::write_atomic(&p, l.svg.as_bytes()).with_context(cannot)?;
            written.push(p);
        }
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(0)
}

pub fn compare(a: CompareArgs) -> Result<i32> {
    let (noise, steady) = if a.noise_from.is_empty() {
        (a.noise, a.steady_noise)
    } else {
        use greenbench_results::compare::{run_to_run_noise, steady_run_to_run_noise};
        let runs = load(&a.noise_from, true)?;
        let (n, pairs) = run_to_run_noise(&runs)
            .context("--noise-from: the files share no cell; give repeated runs of one suite")?;
        println!(
            "run-to-run variation: {:.1} % (the largest of {pairs} cell pairs of {} runs)",
            100.0 * n,
            runs.len()
        );
        let steady = match steady_run_to_run_noise(&runs) {
            Some((s, pairs)) => {
                println!(
                    "run-to-run variation with agreeing machine references: {:.1} % (the largest of {pairs} such pairs)",
                    100.0 * s
                );
                s
            }
            None => {
                println!(
                    "no cell pair with agreeing machine references (files without them, or a machine that never held its speed): every cell gets the margin of the run-to-run variation"
                );
                n
            }
        };
        (100.0 * n, 100.0 * steady)
    };
    let rule = greenbench_results::compare::Rule {
        threshold: a.threshold / 100.0,
        noise: noise / 100.0,
        steady_noise: steady / 100.0,
    };
    let b = load(std::slice::from_ref(&a.base), true)?.remove(0);
    let n = load(std::slice::from_ref(&a.new), true)?.remove(0);
    let c = greenbench_results::compare::compare(&b, &n, rule).map_err(anyhow::Error::msg)?;
    let margin = 100.0 * rule.margin();
    let mut t =
        Table::new("cell|>base time/ex|>new time/ex|>new / base|>machine new / base|verdict");
    for r in &c.rows {
        t.row(vec![
            r.key.clone(),
            duration(r.base_s),
            duration(r.new_s),
            format!("{:.3}", r.ratio),
            r.reference_ratio
                .map_or_else(|| "-".to_string(), |m| format!("{m:.3}")),
            format!(
                "{}{}",
                match r.verdict {
                    Verdict::Regression => "REGRESSION".to_string(),
                    Verdict::Improvement => "faster".to_string(),
                    Verdict::NoChange => format!("no change beyond +-{:.0} %", 100.0 * r.margin),
                    Verdict::Inconclusive => "inconclusive".to_string(),
                    Verdict::MachineChanged => format!(
                        "machine {}: the reference matmul changed as much; re-run both",
                        if r.ratio > 1.0 { "slower" } else { "faster" }
                    ),
                },
                if r.unstable {
                    " (unstable: see the cells' warnings)"
                } else {
                    ""
                }
            ),
        ]);
    }
    print!("{}", t.render());
    for k in &c.only_base {
        println!("only in {}: {k}", a.base.display());
    }
    for k in &c.only_new {
        println!("only in {}: {k}", a.new.display());
    }
    let r = c.regressions();
    if c.rows.iter().any(|r| r.reference_ratio.is_some()) {
        println!(
            "machine new / base: the time of the reference {}^3 matmul timed beside each cell, new over base (above 1: the machine ran slower for the new file); a change it explains is not a verdict on the code; where it is within 5 % of 1 the margin is +-{:.0} % (the larger of --threshold and --steady-noise {:.1} %, the run-to-run variation when the machine held its speed)",
            greenbench_harness::reference::REFERENCE_N,
            100.0 * rule.margin_for(Some(1.0)),
            (steady * 10.0).round() / 10.0
        );
    }
    println!(
        "{r} regression(s), {} improvement(s), {} no change, {} inconclusive, {} machine changed: a verdict needs a change beyond +-{margin:.0} % (the larger of --threshold {} % and this machine's run-to-run variation --noise {} %) and disjoint 95 % intervals",
        c.count(Verdict::Improvement),
        c.count(Verdict::NoChange),
        c.count(Verdict::Inconclusive),
        c.count(Verdict::MachineChanged),
        a.threshold,
        (noise * 10.0).round() / 10.0
    );
    Ok(if r > 0 { 1 } else { 0 })
}

pub fn merge(a: MergeArgs) -> Result<i32> {
    if a.files.is_empty() {
        bail!("name the result files to merge");
    }
    let out = &a.out;
    check_writable(out, false)
        .with_context(|| format!("cannot write the merged file {}", out.display()))?;
    let loaded = load(&a.files, a.strict)?;
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

pub fn cost(a: CostArgs) -> Result<i32> {
    let prices = prices(a.grid_g_per_kwh, a.price_usd_per_kwh);
    if a.examples.is_none() && a.epochs.is_some() {
        bail!(
            "--epochs describes an experiment priced from --examples; without --examples the measured runs in --from are priced with their own measured passes: leave --epochs out, or give --examples"
        );
    }
    let from = files_or_default(a.from)?;
    let model = match a.model {
        // An ONNX file is priced under the name its cells carry (its stem, or its folder).
        Some(m) if m.to_ascii_lowercase().ends_with(".onnx") => {
            greenbench_onnx::import::model_name(std::path::Path::new(&m))
        }
        Some(m) => m,
        None if a.examples.is_some() => {
            bail!("--examples prices a model from its inference cells: name it with --model")
        }
        None => {
            let files = load(&from, false)?;
            greenbench_results::cost::only_run_model(&files)
                .map_err(|e| anyhow::anyhow!("{e} (--model)"))?
        }
    };
    let q = CostQuery {
        model,
        examples: a.examples.unwrap_or(0),
        epochs: a.epochs.unwrap_or(1),
        runs: a.runs.unwrap_or(1),
        backend: a.backend,
        batch: a.batch,
        precision: a.precision,
        pricing: Pricing {
            cloud_usd_per_hour: a.cloud_usd_per_hour,
            ..Pricing::at(prices, a.pue, a.energy.parse().map_err(anyhow::Error::msg)?)
        },
    };
    if a.examples.is_none() {
        let files = load(&from, false)?;
        let (_, text) = greenbench_results::cost::price_measured_sweep(&files, &q)
            .map_err(anyhow::Error::msg)?;
        print!("{text}");
        return Ok(0);
    }
    let files = load(&from, false)?;
    let tag = greenbench_results::cost::price(&files, &q).map_err(anyhow::Error::msg)?;
    print!("{}", tag.text);
    Ok(0)
}
