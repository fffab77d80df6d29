//! The subcommands, one file each (or one per close family), each with its clap arguments
//! and a `run` that calls library code and prints. What several commands share (loading
//! models, resolving backends, progress bars) is here; how figures are written is
//! `greenbench_results::text`.

pub mod devices;
pub mod eval;
mod examples;
pub mod export;
pub mod list;
pub mod meters;
pub mod peak;
pub mod results;
pub mod run;
pub mod slurm;
mod steps;
pub mod track;
pub mod train;
pub mod verify;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use greenbench_core::{Backend, MODEL_NAMES, Model};
use greenbench_cpu::CpuBackend;
use greenbench_gpu::{GpuBackend, adapters};
use greenbench_harness::Profile;
use greenbench_harness::runner::Observer;
use indicatif::{ProgressBar, ProgressStyle};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An error and its causes in one line, each cause stated once: a cause whose text the
/// message already carries (an error that prints its source, wrapped in a context that does
/// too) is not repeated.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

/// `stem` made unique among this machine's processes: `<stem>-<pid>` (two runs started in the
/// same second on one host get different names).
pub fn unique_name(stem: &str) -> String {
    format!("{stem}-{}", std::process::id())
}

/// This binary: its version and the commit build.rs stamped (none outside a checkout).
pub fn build() -> greenbench_harness::env::Build {
    greenbench_harness::build_info!(VERSION)
}

/// Output format of the listing commands.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// The subcommands; each one's help is its arguments' doc comment.
#[derive(Subcommand)]
pub enum Command {
    List(list::ListArgs),
    Inspect(list::InspectArgs),
    Run(run::RunArgs),
    Export(export::ExportArgs),
    Train(train::TrainArgs),
    Eval(eval::EvalArgs),
    Report(results::ReportArgs),
    Compare(results::CompareArgs),
    Merge(results::MergeArgs),
    Cost(results::CostArgs),
    Meters(meters::MetersArgs),
    Devices(devices::DevicesArgs),
    Verify(verify::VerifyArgs),
    Peak(peak::PeakArgs),
    Slurm(slurm::SlurmArgs),
    Track(track::TrackArgs),
}

impl Command {
    /// Run the command; the exit code on success.
    pub fn run(self) -> Result<i32> {
        match self {
            Command::List(a) => list::list(a),
            Command::Inspect(a) => list::inspect(a),
            Command::Run(a) => run::run(a),
            Command::Export(a) => export::run(a),
            Command::Train(a) => train::run(a),
            Command::Eval(a) => eval::run(a),
            Command::Report(a) => results::report(a),
            Command::Compare(a) => results::compare(a),
            Command::Merge(a) => results::merge(a),
            Command::Cost(a) => results::cost(a),
            Command::Meters(a) => meters::run(a),
            Command::Devices(a) => devices::run(a),
            Command::Verify(a) => verify::run(a),
            Command::Peak(a) => peak::run(a),
            Command::Slurm(a) => slurm::run(a),
            Command::Track(a) => track::run(a),
        }
    }
}

/// The models named, or the whole zoo when none are.
pub fn names_or_zoo(models: &[String]) -> Vec<String> {
    if models.is_empty() {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        models.to_vec()
    }
}

/// Load models (zoo names, `.json` descriptions, `.onnx` files); a checkpoint applies to
/// exactly one model. `dims` are the `--dim NAME=SIZE[,SIZE..]` arguments: a file with
/// symbolic dimensions loads once per binding (`bert[sequence=128]`), and a name that no model
/// uses is an error. Two different files never share a name: when their stems collide, each
/// goes by its path as given (without the extension).
pub fn load_models(
    names: &[String],
    seed: u64,
    weights: Option<&std::path::Path>,
    dims: &[String],
) -> Result<Vec<Model>> {
    use greenbench_onnx::import::{DimSweep, bound_name};
    if weights.is_some() && names.len() != 1 {
        bail!("--weights holds one model's weights: give exactly one model with --models");
    }
    let sweep = DimSweep::parse(dims).map_err(anyhow::Error::msg)?;
    // (the name as given, the model's name before its bindings, the model)
    let mut loaded: Vec<(String, String, Model)> = vec![];
    for n in names {
        for m in greenbench_onnx::import::load_models_swept(n, seed, weights, &sweep)? {
            let stem = m
                .name
                .strip_suffix(&bound_name("", &m.dims))
                .unwrap_or(&m.name)
                .to_string();
            loaded.push((n.clone(), stem, m));
        }
    }
    let used: std::collections::BTreeSet<&str> = loaded
        .iter()
        .flat_map(|(_, _, m)| m.dims.keys().map(String::as_str))
        .collect();
    if let Some(unused) = sweep.names().into_iter().find(|n| !used.contains(n)) {
        let have = if used.is_empty() {
            "none of them has a symbolic dimension besides the batch".to_string()
        } else {
            format!(
                "theirs: {}",
                used.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        bail!(
            "--dim {unused}: no model given has a symbolic dimension `{unused}` ({have}); `greenbench inspect FILE` lists a file's inputs"
        );
    }
    let clashes: Vec<bool> = (0..loaded.len())
        .map(|i| {
            (0..loaded.len())
                .any(|j| loaded[j].0 != loaded[i].0 && loaded[j].2.name == loaded[i].2.name)
        })
        .collect();
    for ((given, stem, m), clash) in loaded.iter_mut().zip(clashes) {
        if clash && given != stem {
            let path = std::path::Path::new(given.as_str()).with_extension("");
            m.name = bound_name(&path.display().to_string(), &m.dims);
        }
    }
    for i in 0..loaded.len() {
        if let Some(j) = (0..i).find(|&j| loaded[j].2.name == loaded[i].2.name)
            && loaded[i].0 != loaded[j].0
        {
            bail!(
                "`{}` and `{}` would both be called `{}` in the results; rename one",
                loaded[j].0,
                loaded[i].0,
                loaded[i].2.name
            );
        }
    }
    Ok(loaded.into_iter().map(|(_, _, m)| m).collect())
}

/// One model, for the commands that take one (`inspect`, `eval`): each `--dim` must then
/// give one size.
pub fn load_one(
    name: &str,
    seed: u64,
    weights: Option<&std::path::Path>,
    dims: &[String],
) -> Result<Model> {
    let mut v = load_models(&[name.to_string()], seed, weights, dims)?;
    if v.len() != 1 {
        bail!(
            "this command takes one model, and --dim gives {} bindings of `{name}`: give one size per --dim",
            v.len()
        );
    }
    Ok(v.remove(0))
}

/// Value parsers for numeric flags: clap's error then names the flag, the value and the valid
/// range (`invalid value '0' for '--threads <THREADS>': must be ...`).
pub mod range {
    fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
        s.trim().parse().map_err(|_| format!("must be {what}"))
    }

    /// CPU threads: 1 to this machine's logical cores (greenbench never oversubscribes).
    pub fn threads(s: &str) -> Result<usize, String> {
        let max = std::thread::available_parallelism().map_or(1, |n| n.get());
        let what = format!("a whole number from 1 to {max} (this machine's logical cores)");
        let n: usize = number(s, &what)?;
        if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("must be {what}"))
        }
    }

    /// A count of at least 1 (batch sizes, epochs, matrix sizes, shards).
    pub fn count(s: &str) -> Result<usize, String> {
        let n: usize = number(s, "a whole number of at least 1")?;
        if n >= 1 {
            Ok(n)
        } else {
            Err("must be a whole number of at least 1".into())
        }
    }

    /// [`count`] as a `u64`.
    pub fn count64(s: &str) -> Result<u64, String> {
        count(s).map(|n| n as u64)
    }

    /// A finite number `>= min`.
    fn at_least(s: &str, min: f64, what: &str) -> Result<f64, String> {
        let x: f64 = number(s, what)?;
        if x.is_finite() && x >= min {
            Ok(x)
        } else {
            Err(format!("must be {what}"))
        }
    }

    /// Zero or more (grid intensity, prices, seconds, percentages).
    pub fn non_negative(s: &str) -> Result<f64, String> {
        at_least(s, 0.0, "a number of at least 0")
    }

    /// More than zero (watts, learning rates, tolerances).
    pub fn positive(s: &str) -> Result<f64, String> {
        let x = at_least(s, 0.0, "a number greater than 0")?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err("must be a number greater than 0".into())
        }
    }

    /// [`positive`] as an `f32`.
    pub fn positive32(s: &str) -> Result<f32, String> {
        positive(s).map(|x| x as f32)
    }

    /// A relative size in percent (every relative flag is in percent): from 0.1 to 100. A
    /// value below 0.1 is refused rather than read as a fraction: `--until-stable` took a
    /// fraction before December 2026 (0.02 for 2 %).
    pub fn percent(s: &str) -> Result<f64, String> {
        let what = "a percentage from 0.1 to 100 (2 means 2 %)";
        let x = at_least(s, 0.0, what)?;
        if (0.1..=100.0).contains(&x) {
            Ok(x)
        } else if x > 0.0 && x < 0.1 {
            Err(format!(
                "must be {what}; {x} would be {x} %: a fraction such as 0.02 is written 2"
            ))
        } else {
            Err(format!("must be {what}"))
        }
    }

    /// A power usage effectiveness: 1 or more.
    pub fn pue(s: &str) -> Result<f64, String> {
        at_least(
            s,
            1.0,
            "a number of at least 1.0 (1.0: no data-centre overhead)",
        )
    }
}

/// `--shard I/N` (or `auto/N`), when given.
pub fn parse_shard(spec: Option<&str>) -> Result<Option<greenbench_harness::cluster::Shard>> {
    spec.map(greenbench_harness::cluster::Shard::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// A measuring profile by name.
pub fn profile(name: &str) -> Result<Profile> {
    Profile::by_name(name).with_context(|| format!("unknown profile `{name}`; use quick or full"))
}

/// Resolve backend names. An empty list means: cpu, plus gpu if a hardware adapter exists
/// (said in one line when there is none); `software_ok` also accepts a software adapter
/// for the default (verify does, to check drivers).
pub fn make_backends(
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

/// Progress bars on stderr (hidden when stderr is not a terminal).
#[derive(Default)]
pub struct Bars {
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
