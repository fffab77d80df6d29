//! Measuring someone else's program (`greenbench track -- CMD`): run it as a child process
//! and measure wall time, the CPU time of its whole process tree, its peak memory, and its
//! energy — counters where readable, with idle power measured before the command starts
//! (gross and net), else the labelled estimate from the tree's CPU time — with a power time
//! series at a fixed interval. Signals greenbench receives are passed on to the command; the
//! measurement is kept whatever way the command ends, and says how it ended.

use crate::energy::{Energy, Idle};
use crate::host_load::{HostLoad, steal_share, steal_warning};
use crate::record::{Cell, CellStatus};
use crate::stats::Summary;
use greenbench_core::{DeviceKind, Precision};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The backend name tracked runs carry in result files.
pub const TRACK_BACKEND: &str = "track";

/// What to run and how often to sample power.
#[derive(Clone, Debug)]
pub struct TrackConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Seconds between power samples.
    pub interval_s: f64,
    pub host_load: HostLoad,
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    pub fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exited with code {c}"),
            Exit::Signal(s) => format!("was ended by signal {s} ({})", signal_name(s)),
        }
    }
}

/// A signal's name, for messages.
pub fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        _ => "signal",
    }
}

/// What a tracked run measured.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub exit: Exit,
    /// Signals greenbench received while the command ran (each passed on to it).
    pub signals: Vec<i32>,
    pub wall_s: f64,
    /// CPU time (user + system) of the command and every descendant it waited for.
    pub cpu_s: Option<f64>,
    /// Peak resident memory of the largest process of the tree.
    pub peak_rss_bytes: Option<u64>,
    /// Everything the meters saw (measured), or the estimate.
    pub gross_j: Option<f64>,
    /// Gross minus idle power x time (measured meters with idle measured); the estimate has
    /// no idle, so it is the gross figure there.
    pub net_j: Option<f64>,
    /// Why there is no energy figure, when a meter failed.
    pub energy_fault: Option<String>,
    /// Power at each interval: [seconds since start, watts] (gross for counters, the
    /// estimate's for the estimate).
    pub series: Vec<[f64; 2]>,
    pub steal_share: Option<f64>,
    /// CPU cores other processes kept busy meanwhile.
    pub other_cpu_cores: Option<f64>,
}

/// Signals received and not yet passed on, one bit per signal number.
static PENDING: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING.fetch_or(1 << sig, Ordering::SeqCst);
}

/// Catch SIGINT, SIGTERM and SIGHUP from now on (to pass them on to the command instead of
/// dying with it unmeasured).
pub fn catch_signals() -> Result<(), String> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a plain handler that only touches an atomic, which
        // is async-signal-safe; the signal numbers are valid.
        let ok = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
        };
        if !ok {
            return Err(format!(
                "cannot catch {}: {}",
                signal_name(sig),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The signals received since the last call.
fn take_pending() -> Vec<i32> {
    let bits = PENDING.swap(0, Ordering::SeqCst);
    (1..64).filter(|s| bits & (1 << s) != 0).collect()
}

/// CPU seconds and peak RSS (bytes) of the children this process has waited for.
fn children_usage() -> Option<(f64, u64)> {
    greenbench_energy::estimate::rusage(libc::RUSAGE_CHILDREN)
}

/// (pid, parent pid, CPU ticks of it and its waited-for children) from `/proc/PID/stat`.
pub fn parse_stat(text: &str) -> Option<(u32, u32, u64)> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    // The command name is in parentheses and may hold spaces: fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let ppid = f.get(1)?.parse().ok()?;
    let ticks: u64 = (11..15)
        .map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum::<Option<u64>>()?;
    Some((pid, ppid, ticks))
}

/// CPU seconds the process tree under `root` has used so far (live processes and what they
/// have reaped), from /proc; `None` where /proc is not readable.
pub fn tree_cpu_seconds(root: u32) -> Option<f64> {
    let mut procs = Vec::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(p) = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            procs.push(p);
        }
    }
    let mut tree = vec![root];
    let mut total = 0u64;
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        for (p, pp, ticks) in &procs {
            if *p == pid {
                total += ticks;
            }
            if *pp == pid && !tree.contains(p) {
                tree.push(*p);
            }
        }
        i += 1;
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(total as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// Whether standard input is a terminal: a Ctrl-C typed there reaches the command directly
/// (same process group), so greenbench does not send it a second time.
fn stdin_is_terminal() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(0) == 1 }
}

/// Run `cfg.command` and measure it with `energy` (idle already measured, if it was). The
/// command's standard streams are greenbench's.
pub fn track(cfg: &TrackConfig, energy: &Energy) -> Result<Tracked, String> {
    let (program, args) = cfg
        .command
        .split_first()
        .ok_or("no command given: put it after `--`, e.g. greenbench track -- python train.py")?;
    let before_usage = children_usage();
    let load_a = cfg.host_load.cpu_times();
    let a = energy
        .read()
        .map_err(|e| format!("energy unreadable: {e}"))?;
    let start = Instant::now();
    let mut child = Command::new(program).args(args).spawn().map_err(|e| {
        format!(
            "cannot run `{program}`: {e}; give the program and its arguments after `--` (a program on PATH or a path to one)"
        )
    })?;
    let pid = child.id();
    let mut signals = Vec::new();
    let mut series = Vec::new();
    let mut fault = None;
    let every = Duration::from_secs_f64(cfg.interval_s.max(0.01));
    let mut next = start + every;
    let (mut last_t, mut last_j) = (start, a.measured_j);
    let mut last_cpu = tree_cpu_seconds(pid).unwrap_or(0.0);
    let terminal = stdin_is_terminal();
    let status = loop {
        for sig in take_pending() {
            signals.push(sig);
            if !(sig == libc::SIGINT && terminal) {
                // SAFETY: kill with a pid we spawned and a valid signal number.
                unsafe {
                    libc::kill(pid as libc::pid_t, sig);
                }
            }
        }
        if let Some(s) = child
            .try_wait()
            .map_err(|e| format!("cannot wait for the command: {e}"))?
        {
            break s;
        }
        let now = Instant::now();
        if now >= next {
            next += every;
            let dt = (now - last_t).as_secs_f64();
            if energy.measured() {
                match energy.read() {
                    Ok(r) => {
                        if let (Some(j), Some(prev), Some(at)) = (r.measured_j, last_j, r.at) {
                            let dt = (at - last_t).as_secs_f64().max(1e-6);
                            series.push([(at - start).as_secs_f64(), (j - prev) / dt]);
                            last_t = at;
                        }
                        last_j = r.measured_j;
                    }
                    Err(e) => {
                        fault.get_or_insert(e);
                    }
                }
            } else if let Some(cpu) = tree_cpu_seconds(pid) {
                series.push([
                    (now - start).as_secs_f64(),
                    energy.estimate.joules(cpu - last_cpu) / dt.max(1e-6),
                ]);
                last_cpu = cpu;
                last_t = now;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall_s = start.elapsed().as_secs_f64();
    let exit = match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(-1),
    };
    let b = energy.read();
    let after_usage = children_usage();
    let cpu_s = match (before_usage, after_usage) {
        (Some((x, _)), Some((y, _))) => Some((y - x).max(0.0)),
        _ => None,
    };
    let peak_rss_bytes = after_usage.map(|u| u.1).filter(|b| *b > 0);
    let (gross_j, net_j) = match (&b, energy.measured()) {
        (Ok(b), true) => match (a.measured_j, b.measured_j) {
            (Some(x), Some(y)) => {
                let secs = match (a.at, b.at) {
                    (Some(p), Some(q)) => (q - p).as_secs_f64(),
                    _ => wall_s,
                };
                let gross = (y - x).max(0.0);
                (
                    Some(gross),
                    Some((gross - energy.idle_w.unwrap_or(0.0) * secs).max(0.0)),
                )
            }
            _ => (None, None),
        },
        (Err(e), true) => {
            fault.get_or_insert(e.clone());
            (None, None)
        }
        (_, false) => {
            let j = cpu_s.map(|c| energy.estimate.joules(c));
            (j, j)
        }
    };
    let (gross_j, net_j) = if fault.is_some() {
        (None, None)
    } else {
        (gross_j, net_j)
    };
    let load_b = cfg.host_load.cpu_times();
    let steal = match (load_a, load_b) {
        (Some(x), Some(y)) => steal_share(x, y),
        _ => None,
    };
    let other_cpu_cores = match (
        a.machine_busy_s,
        b.as_ref().ok().and_then(|b| b.machine_busy_s),
    ) {
        (Some(x), Some(y)) if wall_s > 0.0 => {
            Some(((y - x - cpu_s.unwrap_or(0.0)) / wall_s).max(0.0))
        }
        _ => None,
    };
    Ok(Tracked {
        exit,
        signals,
        wall_s,
        cpu_s,
        peak_rss_bytes,
        gross_j,
        net_j,
        energy_fault: fault,
        series,
        steal_share: steal,
        other_cpu_cores,
    })
}

/// The result-file cell of a tracked run: `examples` (examples processed, e.g. D x epochs;
/// 1 when not given, so "per example" is per run) divide every total; a command that did not
/// exit with 0 is a failed cell (never priced as a finished run) that keeps its figures.
pub fn cell(
    t: &Tracked,
    label: &str,
    examples: Option<u64>,
    energy: &Energy,
    idle: Option<Idle>,
    device: &str,
) -> Cell {
    let n = examples.unwrap_or(1).max(1) as f64;
    let per = |v: f64| v / n;
    let per_example = per(t.wall_s);
    let headline = if energy.measured() {
        t.net_j
    } else {
        t.gross_j
    };
    let mut warnings = Vec::new();
    let (status, error) = if t.exit.success() && t.signals.is_empty() {
        (CellStatus::Ok, None)
    } else if t.signals.is_empty() {
        (
            CellStatus::Failed,
            Some(format!(
                "the command {}: its figures are those of a run that did not finish as it should, never a finished run's",
                t.exit.describe()
            )),
        )
    } else {
        (
            CellStatus::Failed,
            Some(format!(
                "interrupted: greenbench received {} and passed it on; the command {} after {:.1} s: the figures are of the part that ran",
                t.signals
                    .iter()
                    .map(|s| signal_name(*s))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.exit.describe(),
                t.wall_s
            )),
        )
    };
    if let Some(w) = idle.and_then(|i| i.noisy()) {
        warnings.push(w);
    }
    if let Some(s) = t.steal_share.filter(|s| *s > 0.05) {
        warnings.push(steal_warning(s));
    }
    if examples.is_none() {
        warnings
            .push("no --examples given: every per-example figure is per run (examples = 1)".into());
    }
    let source = match &t.energy_fault {
        Some(f) => format!("unavailable: {f}"),
        None if energy.measured() => format!(
            "{}; the command's whole run, every process on the machine included",
            energy.source()
        ),
        None => format!("{} of the command's process tree", energy.estimate.label()),
    };
    let (co2e, usd) = match headline {
        Some(j) => {
            let (g, u) = greenbench_energy::co2e_and_cost(
                per(j) * 1e6,
                energy.prices.grid_g_co2e_per_kwh,
                energy.prices.usd_per_kwh,
            );
            (Some(g), Some(u))
        }
        None => (None, None),
    };
    Cell {
        host: None,
        model: label.to_string(),
        dims: Default::default(),
        tokens_per_example: None,
        inputs: None,
        backend: TRACK_BACKEND.into(),
        device: device.to_string(),
        device_kind: DeviceKind::Cpu,
        threads: None,
        batch: 1,
        precision: Precision::Fp32,
        status,
        error,
        params: 0,
        macs_per_example: 0,
        fpo_per_example: 0,
        transcendentals_per_example: 0,
        int_ops_per_example: 0,
        time_per_example_s: Some(Summary {
            median: per_example,
            ci95_low: per_example,
            ci95_high: per_example,
            ci_coverage: 0.0,
            cv: 0.0,
            samples: vec![per_example],
        }),
        device_time_per_example_s: None,
        device_time_note: Some(format!(
            "a tracked command: one run of {:.3} s over {} example(s), measured once (no interval); work not counted",
            t.wall_s, n
        )),
        examples_per_s: (t.wall_s > 0.0).then(|| n / t.wall_s),
        gflops: None,
        pct_of_peak: None,
        energy_per_example_j: headline.map(per),
        energy_source: source,
        energy_kind: headline.map(|_| energy.kind().to_string()),
        energy_gross_per_example_j: t.gross_j.map(per),
        energy_net_per_example_j: t.net_j.map(per),
        energy_samples_j: vec![],
        avg_power_w: t.gross_j.filter(|_| t.wall_s > 0.0).map(|j| j / t.wall_s),
        fpo_per_joule: None,
        co2e_g_per_million: co2e,
        cost_usd_per_million: usd,
        other_cpu_cores: t.other_cpu_cores,
        steal_share: t.steal_share,
        cpu_mhz: None,
        warnings,
        unstable: false,
        stable: None,
        accuracy: None,
        train: Some(format!("tracked command: {}", label)),
        train_passes: Some(n as u64),
        peak_rss_bytes: t.peak_rss_bytes,
        weights_seed: None,
        weights_source: None,
        weights_fingerprint: String::new(),
        warmup_batches: 0,
        window_batches: vec![],
        cpu_s: t.cpu_s,
        power_series_w: t.series.clone(),
        remeasured: None,
        machine_reference: None,
        precision_note: None,
        algorithm_note: None,
        execution_note: None,
    }
}

#[allow(clippy::too_many_arguments)] // each is one fact the file records
/// The result file of a tracked run: its one cell, the machine, the energy source and
/// prices, the command line that made it; marked interrupted when a signal ended it.
pub fn result_file(
    t: &Tracked,
    cell: Cell,
    energy: &Energy,
    idle: Option<Idle>,
    idle_s: f64,
    machine: crate::env::Fingerprint,
    started_utc: String,
    command: Vec<String>,
) -> crate::record::ResultFile {
    use crate::record::{EnergyEnv, Environment, ResultFile, RunStatus};
    ResultFile {
        schema_version: crate::SCHEMA_VERSION,
        status: if t.signals.is_empty() {
            RunStatus::Complete
        } else {
            RunStatus::Interrupted
        },
        environment: Environment {
            machine,
            started_utc,
            finished_utc: Some(crate::env::now_utc()),
            profile: crate::Profile {
                name: "track".into(),
                warmup_s: 0.0,
                windows: 1,
                window_s: t.wall_s,
                input_sets: 0,
                idle_s,
                until_stable: None,
            },
            seed: 0,
            command,
            peaks: vec![],
            energy: Some(EnergyEnv {
                kind: energy.kind().into(),
                source: energy.source(),
                meters: energy.measured_names.clone(),
                idle_power_w: energy.idle_w,
                idle_after_w: None,
                idle_warnings: idle.and_then(|i| i.noisy()).into_iter().collect(),
                idle_s,
                prices: energy.prices.clone(),
            }),
            shard: None,
            slurm: crate::cluster::SlurmJob::from_env(),
        },
        cells: vec![cell],
        merged_from: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines() {
        let line = "4242 (my (odd) prog) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some((4242, 17, 250 + 50 + 7 + 3)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn this_process_tree_has_cpu_time() {
        let busy = Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let t = tree_cpu_seconds(std::process::id()).unwrap();
        assert!(t >= 0.03, "{t}");
    }

    #[test]
    fn exit_codes_as_a_shell_reports_them() {
        assert_eq!(Exit::Code(3).shell_code(), 3);
        assert_eq!(Exit::Signal(libc::SIGTERM).shell_code(), 143);
        assert!(Exit::Code(0).success() && !Exit::Signal(2).success());
        assert!(Exit::Signal(libc::SIGINT).describe().contains("SIGINT"));
    }
}
