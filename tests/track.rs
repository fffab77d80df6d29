//! `greenbench track -- CMD`: the CPU time of a child that burns a known amount, the exit
//! code passed through, a signal passed on with the partial result written, and energy from a
//! fake RAPL counter rising at known rates before and while the command runs.

mod common;

use greenbench_harness::record::{CellStatus, ResultFile, RunStatus};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `greenbench track` with `args` (the command after `--` included).
fn track(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .arg("track")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// This process's CPU seconds (user + system).
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut u), 0);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
        t(u.ru_utime) + t(u.ru_stime)
    }
}

/// Not a test of its own: run as the tracked child (this test binary, with
/// GREENBENCH_TEST_BURN_S set), it burns that many seconds of CPU time and exits.
#[test]
fn burn_helper() {
    let Ok(s) = std::env::var("GREENBENCH_TEST_BURN_S") else {
        return;
    };
    let want: f64 = s.parse().unwrap();
    let mut x = 0u64;
    while own_cpu_seconds() < want {
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
}

/// Whether process `pid` has a child (from /proc).
fn has_child(pid: u32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| greenbench_harness::tracking::parse_stat(&t))
        .any(|(_, ppid, _)| ppid == pid)
}

fn load(p: &Path) -> ResultFile {
    ResultFile::load(p).unwrap()
}

#[test]
fn cpu_time_of_a_known_burn_and_exit_code_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let me = std::env::current_exe().unwrap();
    let (code, err) = track(
        &[
            "--out",
            out.to_str().unwrap(),
            "--label",
            "burn",
            "--examples",
            "100",
            "--interval",
            "0.1",
            "--",
            me.to_str().unwrap(),
            "--exact",
            "burn_helper",
            "--test-threads=1",
            "--quiet",
        ],
        &[("GREENBENCH_TEST_BURN_S", "1.0")],
    );
    assert_eq!(code, 0, "{err}");
    let f = load(&out);
    assert_eq!(f.status, RunStatus::Complete);
    let c = &f.cells[0];
    assert_eq!(c.backend, "track");
    assert_eq!(c.model, "burn");
    assert_eq!(c.status, CellStatus::Ok);
    let cpu = c.cpu_s.unwrap();
    // 1.0 s burned, plus the test harness starting: within 10 %.
    assert!((1.0..1.1).contains(&cpu), "CPU time {cpu}");
    let per = c.time_per_example_s.as_ref().unwrap().median;
    assert!(
        per * 100.0 >= cpu * 0.9,
        "wall {} vs CPU {cpu}",
        per * 100.0
    );
    assert_eq!(c.train_passes, Some(100));
    assert!(c.peak_rss_bytes.unwrap() > 0);
    assert!(!c.power_series_w.is_empty(), "a power sample every 0.1 s");
    // No counter in the test's sysfs: the labelled estimate, from the tree's CPU time.
    if c.energy_kind.as_deref() == Some("estimated") {
        let j = c.energy_per_example_j.unwrap() * 100.0;
        assert!(c.energy_source.starts_with("estimated:"));
        assert!(j > 0.0);
    }
}

#[test]
fn the_commands_exit_code_is_passed_through_and_never_priced_as_finished() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let (code, err) = track(
        &["--out", out.to_str().unwrap(), "--", "sh", "-c", "exit 3"],
        &[],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("exited with code 3"), "{err}");
    let c = &load(&out).cells[0];
    assert_eq!(c.status, CellStatus::Failed);
    assert!(c.error.as_deref().unwrap().contains("exited with code 3"));
    // `cost` prices finished runs only.
    let (code, _, err) = common::greenbench(&["cost", "--from", out.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("no measured run"), "{err}");
    // A command that cannot start is greenbench's error, with what to do.
    let (code, err) = track(
        &[
            "--out",
            dir.path().join("u.json").to_str().unwrap(),
            "--",
            "/nonexistent/program",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot run `/nonexistent/program`"), "{err}");
}

#[test]
fn a_signal_is_passed_on_and_the_partial_run_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .args(["track", "--out", out.to_str().unwrap(), "--", "sleep", "30"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the command runs (greenbench catches signals before it spawns it), however
    // slowly a loaded machine starts greenbench.
    let waited = Instant::now();
    while !has_child(child.id()) {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill with the pid of the process we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "sleep 30 was ended"
    );
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let f = load(&out);
    assert_eq!(f.status, RunStatus::Interrupted);
    let c = &f.cells[0];
    assert_eq!(c.status, CellStatus::Failed);
    let e = c.error.as_deref().unwrap();
    assert!(e.contains("SIGTERM") && e.contains("interrupted"), "{e}");
    assert!(c.time_per_example_s.as_ref().unwrap().median < 10.0);
}

#[test]
fn measured_energy_from_a_counter_gross_net_and_idle() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("sys/class/powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let counter = zone.join("energy_uj");
    std::fs::write(&counter, "0\n").unwrap();
    let mark = dir.path().join("started");
    // The counter rises at 10 W until the command touches `mark`, then at 30 W.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (counter, mark, stop) = (counter.clone(), mark.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut uj = 0f64;
            let mut last = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
                let now = Instant::now();
                let w = if mark.exists() { 30.0 } else { 10.0 };
                uj += w * (now - last).as_secs_f64() * 1e6;
                last = now;
                let tmp = counter.with_extension("tmp");
                std::fs::write(&tmp, format!("{}\n", uj as u64)).unwrap();
                std::fs::rename(&tmp, &counter).unwrap();
            }
        })
    };
    let out = dir.path().join("t.json");
    let script = format!("touch {}; sleep 1.5", mark.display());
    let (code, err) = track(
        &[
            "--out",
            out.to_str().unwrap(),
            "--sysfs-root",
            dir.path().join("sys").to_str().unwrap(),
            "--no-nvml",
            "--idle-s",
            "0.5",
            "--interval",
            "0.25",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(code, 0, "{err}");
    let f = load(&out);
    let env = f.environment.energy.as_ref().unwrap();
    assert_eq!(env.kind, "measured");
    let idle = env.idle_power_w.unwrap();
    assert!((idle - 10.0).abs() < 0.5, "idle {idle} W");
    let c = &f.cells[0];
    assert_eq!(c.energy_kind.as_deref(), Some("measured"));
    let wall = c.time_per_example_s.as_ref().unwrap().median;
    let gross = c.energy_gross_per_example_j.unwrap();
    let net = c.energy_net_per_example_j.unwrap();
    assert!(
        (gross / (30.0 * wall) - 1.0).abs() < 0.05,
        "gross {gross} J over {wall} s, expected 30 W"
    );
    assert!(
        (net - (gross - idle * wall)).abs() < 0.02 * gross,
        "net {net} = gross {gross} - idle {idle} x {wall}"
    );
    assert_eq!(c.energy_per_example_j, Some(net));
    // The power series: 30 W while the command ran.
    let mid: Vec<f64> = c
        .power_series_w
        .iter()
        .filter(|p| p[0] > 0.3 && p[0] < 1.2)
        .map(|p| p[1])
        .collect();
    assert!(!mid.is_empty());
    // Each interval reads the counter as last written (every 5 ms, later on a loaded
    // machine): single samples jitter, their mean does not.
    for w in &mid {
        assert!(
            (w - 30.0).abs() < 9.0,
            "{w} W: not the 30 W the counter rose at"
        );
    }
    let mean = mid.iter().sum::<f64>() / mid.len() as f64;
    assert!((mean - 30.0).abs() < 3.0, "mean {mean} W of {mid:?}");
    // And its price tag: H such runs.
    let (code, text, err) =
        common::greenbench(&["cost", "--from", out.to_str().unwrap(), "--runs", "20"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("H = 20 runs like the 1 measured"), "{text}");
    assert!(text.contains("not counted"), "{text}");
    let kwh = 20.0 * gross / 3.6e6;
    assert!(
        text.contains(&format!("{kwh:.4e} kWh")),
        "{text} vs {kwh:.4e}"
    );
}
