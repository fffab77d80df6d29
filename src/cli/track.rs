//! `greenbench track [OPTIONS] -- CMD [ARGS...]`: run any command (a training script, a
//! notebook's export, a build) and write its price tag's measurements as a result file that
//! `report`, `merge`, `compare` and `cost` read. greenbench's own lines go to standard error,
//! so the command's standard output stays its own; greenbench exits with the command's code.

use super::meters::{EnergyArgs, make_energy};
use anyhow::{Context, Result, bail};
use greenbench_harness::env::{fingerprint, hostname, now_utc};
use greenbench_harness::record::{CellStatus, check_writable};
use greenbench_harness::tracking::{TrackConfig, catch_signals, cell, result_file, track};
use greenbench_results::text::{duration, energy_marked};
use std::path::PathBuf;

/// Run a command and measure it: wall time, CPU time of its process tree, peak memory, energy
/// (counters with idle power measured first, or the labelled estimate) and a power time
/// series; the result file prices it with `greenbench cost --from FILE`.
#[derive(clap::Args)]
pub struct TrackArgs {
    /// Result file. Default: results/runs/track-<host>-<UTC timestamp>.json
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long, requires = "out")]
    force: bool,
    /// A name for the run in tables and price tags. Default: the program's name.
    #[arg(long)]
    label: Option<String>,
    /// Examples the command processes (e.g. training-set size x epochs): every per-example
    /// figure divides by it. Default: 1, so they are per run.
    #[arg(long, value_parser = super::range::count64)]
    examples: Option<u64>,
    /// Seconds between power samples in the file's time series.
    #[arg(long, default_value_t = 1.0, value_parser = super::range::positive)]
    interval: f64,
    #[command(flatten)]
    energy: EnergyArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Seconds of idle power measured before the command when a counter is readable and
/// `--idle-s` is not given.
const DEFAULT_IDLE_S: f64 = 2.0;

pub fn run(a: TrackArgs) -> Result<i32> {
    let (out, default_out) = match &a.out {
        Some(p) => (p.clone(), false),
        None => (
            PathBuf::from("results/runs").join(format!(
                "{}.json",
                super::unique_name(&format!(
                    "track-{}-{}",
                    hostname(),
                    now_utc().replace(':', "")
                ))
            )),
            true,
        ),
    };
    if out.exists() && !a.force {
        bail!(
            "{} exists: greenbench does not replace a result file. Replace it with --force, or give another --out",
            out.display()
        );
    }
    check_writable(&out, default_out)
        .with_context(|| format!("cannot write the result file {}", out.display()))?;
    let label = a.label.clone().unwrap_or_else(|| {
        std::path::Path::new(&a.command[0])
            .file_name()
            .map_or(a.command[0].clone(), |n| n.to_string_lossy().into_owned())
    });
    let (mut energy, _) = make_energy(&a.energy)?;
    let idle_s = a.energy.idle_s.unwrap_or(if energy.measured() {
        DEFAULT_IDLE_S
    } else {
        0.0
    });
    let idle = if energy.measured() && idle_s > 0.0 {
        eprintln!("greenbench track: measuring idle power for {idle_s} s before the command");
        energy
            .measure_idle(idle_s)
            .map_err(|e| anyhow::anyhow!("idle power unreadable: {e}"))?
    } else {
        None
    };
    let machine = fingerprint(&super::build());
    eprintln!(
        "greenbench track: running `{}` (energy: {})",
        a.command.join(" "),
        energy.source()
    );
    catch_signals().map_err(anyhow::Error::msg)?;
    let started = now_utc();
    let cfg = TrackConfig {
        command: a.command.clone(),
        interval_s: a.interval,
        host_load: Default::default(),
    };
    let t = track(&cfg, &energy).map_err(anyhow::Error::msg)?;
    let c = cell(&t, &label, a.examples, &energy, idle, &machine.cpu_model);
    let file = result_file(
        &t,
        c.clone(),
        &energy,
        idle,
        idle_s,
        machine,
        started,
        std::env::args().collect(),
    );
    file.save(&out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let energy_text = match (t.gross_j, t.net_j, energy.measured()) {
        (Some(g), Some(n), true) => format!(
            "{} gross, {} net of {:.2} W idle (measured)",
            greenbench_results::text::joules(g),
            greenbench_results::text::joules(n),
            energy.idle_w.unwrap_or(0.0)
        ),
        (Some(g), _, false) => energy_marked(Some(g), Some("estimated")),
        _ => format!("not available ({})", c.energy_source),
    };
    eprintln!(
        "greenbench track: `{label}` {} after {}; CPU time {}; peak memory {}; energy {energy_text}",
        t.exit.describe(),
        duration(t.wall_s),
        t.cpu_s.map_or("n/a".into(), duration),
        t.peak_rss_bytes
            .map_or("n/a".into(), greenbench_core::host::bytes),
    );
    if c.status == CellStatus::Failed {
        eprintln!(
            "greenbench track: {}",
            c.error.as_deref().unwrap_or("the command failed")
        );
    }
    eprintln!(
        "greenbench track: wrote {} (price it: greenbench cost --from {} [--runs H])",
        out.display(),
        out.display()
    );
    Ok(t.exit.shell_code())
}
