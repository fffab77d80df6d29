//! The runner against fake backends: incremental, atomic saving; interrupted runs keep
//! finished cells; a failing cell does not stop the run; result files are validated.

use greenbench_core::{Backend, Model};
use greenbench_harness::record::{CellStatus, LoadError, ResultFile, RunStatus};
use greenbench_harness::runner::run_suite;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

mod common;
use common::*;

#[test]
fn full_run_writes_every_cell_and_reloads() {
    let _timing = common::timing();
    let (dir, out) = scratch();
    let models = models(&["mlp", "lenet5"], 3);
    let backends = fake(&["lenet5"], Arc::default());
    let file = run_plain(&backends, &models, &config(out.clone()), None);
    assert_eq!(file.status, RunStatus::Complete);
    assert_eq!(file.cells.len(), 4);
    let back = ResultFile::load(&out).unwrap();
    assert_eq!(back, file);
    let mlp1 = &back.cells[0];
    assert_eq!(
        (mlp1.model.as_str(), mlp1.batch, mlp1.status),
        ("mlp", 1, CellStatus::Ok)
    );
    let t = mlp1.time_per_example_s.as_ref().unwrap();
    assert_eq!(t.samples.len(), 5);
    // >= 200 us of waiting per batch of 1.
    assert!(t.median >= 2e-4, "{t:?}");
    assert_eq!(mlp1.fpo_per_example, 538_672);
    assert!(mlp1.energy_per_example_j.is_none());
    assert!(mlp1.pct_of_peak.is_some());
    // A failing backend marks its cells failed with the reason; the run goes on.
    let lenet = &back.cells[2];
    assert_eq!(lenet.status, CellStatus::Failed);
    assert!(lenet.error.as_deref().unwrap().contains("shader exploded"));
    assert_eq!(back.environment.peaks.len(), 1);
    // No temp files left beside the result.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn interrupted_run_keeps_finished_cells() {
    let _timing = common::timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp", "autoencoder"], 3);
    let prepares = Arc::new(AtomicUsize::new(0));
    let backends = fake(&[], prepares.clone());
    // Peak + 2 cells finish, then the flag is raised: the third cell is abandoned.
    let (cancel, obs) = cancel_after(3);
    let file = run_suite(
        &backends,
        &models,
        &config(out.clone()),
        None,
        &cancel,
        &obs,
    )
    .unwrap();
    assert_eq!(file.status, RunStatus::Interrupted);
    let back = ResultFile::load(&out).unwrap();
    assert_eq!(back.status, RunStatus::Interrupted);
    assert_eq!(back.cells.len(), 2);
    assert!(back.cells.iter().all(|c| c.model == "mlp"));
    assert_eq!(
        prepares.load(Ordering::SeqCst),
        2,
        "nothing measured after the interrupt"
    );
}

#[test]
fn bad_result_files_name_path_and_field() {
    let _timing = common::timing();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.json");
    std::fs::write(&p, "{\"schema_version\": 99}").unwrap();
    let e = ResultFile::load(&p).unwrap_err();
    assert!(matches!(e, LoadError::Version { found: 99, .. }));
    assert!(
        e.to_string().contains("bad.json") && e.to_string().contains("[1, 2]"),
        "{e}"
    );

    // Truncated.
    std::fs::write(&p, "{\"schema_version\": 1, \"status\": \"complete\"").unwrap();
    let e = ResultFile::load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.json"), "{e}");

    // A valid file with one field broken: the message names that field's path.
    let out = dir.path().join("ok.json");
    let models = vec![Model::load("mlp", 1).unwrap()];
    let backends = fake(&[], Arc::default());
    let cfg = config(out.clone());
    run_plain(&backends, &models, &cfg, None);
    let text =
        std::fs::read_to_string(&out)
            .unwrap()
            .replacen("\"batch\": 4", "\"batch\": \"four\"", 1);
    std::fs::write(&p, text).unwrap();
    let e = ResultFile::load(&p).unwrap_err().to_string();
    assert!(e.contains("cells[1].batch"), "{e}");
}

/// A sharded run measures only its slice and says so; on a node shared with other jobs a
/// node-level (measured) reading is withheld from the cells, with the reason, while the
/// per-process estimate would stay.
#[test]
fn shards_and_shared_nodes() {
    let _timing = common::timing();
    use greenbench_harness::cluster::{Shard, SlurmJob};
    let (_dir, out) = scratch();
    let models = models(&["mlp", "autoencoder"], 3);
    let backends = fake(&[], Arc::default());
    let mut cfg = config(out.clone());
    cfg.shard = Some(Shard { index: 1, count: 3 });
    cfg.slurm = SlurmJob::from_vars(|k| {
        [("SLURM_JOB_ID", "7"), ("GREENBENCH_NODE_SHARED", "1")]
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    });
    let mut energy = energy_with(20.0, None);
    let file = run_plain(&backends, &models, &cfg, Some(&mut energy));
    // Cells in order: mlp b1, mlp b4, autoencoder b1, autoencoder b4; slice 1 of 3 is cell 1.
    let cells: Vec<_> = file
        .cells
        .iter()
        .map(|c| (c.model.as_str(), c.batch))
        .collect();
    assert_eq!(cells, [("mlp", 4)]);
    let back = ResultFile::load(&out).unwrap();
    assert_eq!(back.environment.shard, cfg.shard);
    assert!(back.environment.slurm.as_ref().unwrap().node_shared);
    let c = &back.cells[0];
    assert_eq!(
        (c.energy_per_example_j, c.energy_kind.as_deref()),
        (None, None)
    );
    assert!(
        c.energy_gross_per_example_j.is_some(),
        "the reading stays on record"
    );
    assert!(
        c.energy_source.contains("shared with other jobs"),
        "{}",
        c.energy_source
    );
    assert!(
        c.warnings.iter().any(|w| w.contains("not attributable")),
        "{:?}",
        c.warnings
    );
}

/// Interrupted after the peak and one cell, then resumed: the first cell and the peak are
/// kept byte for byte (not re-measured), the other cells are measured and appended, and the
/// file ends complete. A different seed or a complete file is refused, saying why.
#[test]
fn resume_keeps_finished_cells_and_measures_the_rest() {
    let _timing = common::timing();
    use greenbench_harness::runner::resumable;
    let (_dir, out) = scratch();
    let models = models(&["mlp", "autoencoder"], 3);
    let prepares = Arc::new(AtomicUsize::new(0));
    let backends = fake(&[], prepares.clone());
    let (cancel, obs) = cancel_after(2);
    run_suite(
        &backends,
        &models,
        &config(out.clone()),
        None,
        &cancel,
        &obs,
    )
    .unwrap();
    let first = ResultFile::load(&out).unwrap();
    assert_eq!(
        (first.status, first.cells.len()),
        (RunStatus::Interrupted, 1)
    );
    assert_eq!(prepares.load(Ordering::SeqCst), 1);

    let mut cfg = config(out.clone());
    assert!(resumable(&first, &cfg).is_ok());
    let mut other_seed = config(out.clone());
    other_seed.seed = 4;
    let e = resumable(&first, &other_seed).unwrap_err();
    assert!(e.contains("seed `3` there, `4` here"), "{e}");

    cfg.resume = Some(first.clone());
    let done = run_plain(&backends, &models, &cfg, None);
    assert_eq!(done.status, RunStatus::Complete);
    assert_eq!(done.cells.len(), 4);
    assert_eq!(
        prepares.load(Ordering::SeqCst),
        5,
        "only the 3 missing cells measured, and the first of them again after the others"
    );
    assert!(
        done.cells[0].remeasured.is_none(),
        "a kept cell is not re-measured"
    );
    assert!(
        done.cells[1].remeasured.is_some(),
        "the first measured by the resume is"
    );
    let json = |c: &greenbench_harness::Cell| serde_json::to_string(c).unwrap();
    assert_eq!(
        json(&done.cells[0]),
        json(&first.cells[0]),
        "kept byte for byte"
    );
    assert_eq!(
        done.environment.peaks, first.environment.peaks,
        "peak not re-measured"
    );
    assert_eq!(done.environment.started_utc, first.environment.started_utc);
    let cells: Vec<_> = done
        .cells
        .iter()
        .map(|c| (c.model.as_str(), c.batch))
        .collect();
    assert_eq!(
        cells,
        [
            ("mlp", 1),
            ("mlp", 4),
            ("autoencoder", 1),
            ("autoencoder", 4)
        ]
    );
    let back = ResultFile::load(&out).unwrap();
    assert_eq!(back, done);
    assert!(resumable(&back, &cfg).unwrap_err().contains("complete"));
}

/// A backend whose prepared model computes with fewer multiplies than the counted FPO (a fast
/// convolution algorithm) has its note kept with the cell, and a cell above the peak then
/// names that cause instead of blaming the peak.
#[test]
fn fast_algorithms_are_named_above_the_peak() {
    let _timing = common::timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let note = "2 3x3 stride-1 convolutions (40 % of the counted FPO) ran as Winograd";
    let exec = "ran on one thread: a team measured slower here";
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(Fake {
        note: Some(note.into()),
        exec_note: Some(exec.into()),
        ..Fake::plain(Arc::default())
    })];
    let f = run_plain(&backends, &models, &config(out), None);
    assert!(!f.cells.is_empty());
    for c in &f.cells {
        assert_eq!(c.algorithm_note.as_deref(), Some(note));
        // The execution note travels beside it, in its own field (not a cause of the above-
        // peak reading).
        assert_eq!(c.execution_note.as_deref(), Some(exec));
        // The fake's 16^3 matmul takes as long as a whole mlp batch: far "above" the peak.
        assert!(c.pct_of_peak.unwrap() > 100.0);
        let above: Vec<_> = c
            .warnings
            .iter()
            .filter(|w| w.contains("of the measured peak:"))
            .collect();
        assert_eq!(above.len(), 1, "{:?}", c.warnings);
        assert!(
            above[0].contains("fewer multiplies") && above[0].contains(note),
            "{above:?}"
        );
        assert!(!above[0].contains("disturbed"), "{above:?}");
    }
}

/// Noisy windows flag a cell `unstable` (with the causes named); steady ones do not. A cell
/// above 100 % of the peak says the peak was disturbed; `% of peak` is taken against the best
/// peak window.
#[test]
fn unstable_cells_and_impossible_peaks_are_flagged() {
    let _timing = common::timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    // Long windows (about 250 runs each) average out timer jitter. The fake spins to its
    // deadline, but a loaded machine (the whole test suite beside a fuzzer) can still take
    // its core often enough to make one run noisy: a steady run must come out clean in one
    // of three tries (a flag that fired on every run would fail all three).
    let mut cfg = config(out.clone());
    cfg.profile.window_s = 0.05;
    let clean = |f: &ResultFile| f.cells.iter().all(|c| !c.is_unstable() && !c.unstable);
    let mut tries = vec![];
    for _ in 0..3 {
        let f = run_plain(&fake(&[], Arc::default()), &models, &cfg, None);
        let ok = clean(&f);
        tries.push(f);
        if ok {
            break;
        }
    }
    let steady = tries.pop().unwrap();
    assert!(
        clean(&steady),
        "a steady fake flagged unstable in {} tries: {:?}",
        tries.len() + 1,
        steady
            .cells
            .iter()
            .map(|c| &c.time_per_example_s)
            .collect::<Vec<_>>()
    );
    for c in &steady.cells {
        // The fake's 16^3 matmul takes as long as a whole mlp batch: far "above" the peak.
        assert!(c.pct_of_peak.unwrap() > 100.0);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("peak matmul was disturbed")),
            "{:?}",
            c.warnings
        );
    }
    let p = &steady.environment.peaks[0];
    assert!(
        p.best_gflops.unwrap() >= p.gflops,
        "the best window is at least the median"
    );
    let noisy = run_plain(&drifting(), &models, &config(out.clone()), None);
    for c in &noisy.cells {
        let cv = c.time_per_example_s.as_ref().unwrap().cv;
        assert!(cv > greenbench_harness::stats::UNSTABLE_CV, "cv {cv}");
        assert!(c.unstable && c.is_unstable());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("unstable:") && w.contains("steal")),
            "{:?}",
            c.warnings
        );
    }
    let saved = ResultFile::load(&out).unwrap();
    assert!(
        saved.cells.iter().all(|c| c.unstable),
        "the flag is saved in the file"
    );
}

/// The run's first cell is measured again after the others: a slowdown injected into it
/// alone (5x, its windows agreeing) flags it unstable with a warning in the file, the table
/// and compare; a steady run records the second measurement and flags nothing.
#[test]
fn a_slow_first_cell_is_flagged_and_a_steady_one_is_not() {
    let _timing = common::timing();
    use greenbench_harness::recheck::FIRST_CELL_WARNING;
    let (_dir, out) = scratch();
    let models = models(&["mlp", "autoencoder"], 3);
    let mut cfg = config(out.clone());
    cfg.profile.window_s = 0.02;
    // A steady run must come out clean in one of three tries (a loaded machine can take the
    // fake's core; a flag that fired on every run would fail all three).
    let mut tries = 0;
    let steady = loop {
        tries += 1;
        let prepares = Arc::new(AtomicUsize::new(0));
        let f = run_plain(&fake(&[], prepares.clone()), &models, &cfg, None);
        assert_eq!(
            prepares.load(Ordering::SeqCst),
            5,
            "4 cells + the first again"
        );
        let flagged = |c: &greenbench_harness::Cell| {
            c.warnings.iter().any(|w| w.starts_with(FIRST_CELL_WARNING))
        };
        if !f.cells.iter().any(flagged) || tries == 3 {
            break f;
        }
    };
    let first = &steady.cells[0];
    let again = first
        .remeasured
        .as_ref()
        .expect("the first cell is measured again");
    assert!(
        !again.disagrees,
        "steady fake flagged in {tries} tries: {first:?}"
    );
    assert!(again.time_per_example_s.median >= 2e-4);
    assert!(steady.cells[1..].iter().all(|c| c.remeasured.is_none()));
    assert!(
        (steady.cells.iter())
            .all(|c| !c.warnings.iter().any(|w| w.starts_with(FIRST_CELL_WARNING))),
        "{:?}",
        steady.cells[0].warnings
    );

    let slow = run_plain(&slow_first(Arc::default()), &models, &cfg, None);
    let first = &slow.cells[0];
    let again = first.remeasured.as_ref().unwrap();
    assert!(again.disagrees);
    let t = first.time_per_example_s.as_ref().unwrap();
    assert!(
        t.median > 3.0 * again.time_per_example_s.median,
        "{t:?} vs {again:?}"
    );
    assert!(first.unstable && first.is_unstable());
    let w = first
        .warnings
        .iter()
        .find(|w| w.starts_with(FIRST_CELL_WARNING))
        .expect("warned");
    assert!(w.contains("slower at the start"), "{w}");
    // The fake's reference product was not slowed with its first model: the warning says so.
    assert!(
        w.contains("machine reference") && w.contains("not the whole machine's speed"),
        "{w}"
    );
    assert!(
        (slow.cells[1..].iter())
            .all(|c| !c.warnings.iter().any(|w| w.starts_with(FIRST_CELL_WARNING)))
    );
    let saved = ResultFile::load(&out).unwrap();
    assert_eq!(saved.cells[0], *first, "flag and second measurement saved");

    // The whole machine 3x slower during the first cell (its reference too): said so.
    let machine = run_plain(&slowed_machine(1, Arc::default()), &models, &cfg, None);
    let w = (machine.cells[0].warnings.iter())
        .find(|w| w.starts_with(FIRST_CELL_WARNING))
        .expect("warned");
    assert!(w.contains("the whole machine was slower"), "{w}");
}

/// A machine 3x slower during one cell (its windows and the reference matmul beside them
/// alike: the windows agree, every within-cell check passes): that cell alone is flagged
/// unstable with the reference warning, saved in the file; a steady run flags none, and
/// every cell carries its reference.
#[test]
fn a_cell_measured_on_a_slowed_machine_is_flagged_and_a_steady_run_is_not() {
    let _timing = common::timing();
    use greenbench_harness::reference::{REFERENCE_N, REFERENCE_WARNING};
    let (_dir, out) = scratch();
    let models = models(&["mlp", "autoencoder"], 3);
    let mut cfg = config(out.clone());
    cfg.profile.window_s = 0.02;
    cfg.peak_size = 0;
    let flagged =
        |c: &greenbench_harness::Cell| c.warnings.iter().any(|w| w.starts_with(REFERENCE_WARNING));
    // A steady run must come out clean in one of three tries (a loaded machine can take
    // the fake's core; a flag that fired on every run would fail all three).
    let mut tries = 0;
    let steady = loop {
        tries += 1;
        let f = run_plain(&fake(&[], Arc::default()), &models, &cfg, None);
        if !f.cells.iter().any(flagged) || tries == 3 {
            break f;
        }
    };
    assert!(
        !steady.cells.iter().any(flagged),
        "steady fake flagged in {tries} tries"
    );
    for c in &steady.cells {
        let r = c
            .machine_reference
            .as_ref()
            .expect("a reference beside each cell");
        assert_eq!(r.n, REFERENCE_N);
        assert_eq!(r.time_s.samples.len(), 5, "one per window");
        // The fake's product takes 200 us: 2 x 256^3 FPO in >= 200 us.
        assert!(r.gflops <= 2.0 * (REFERENCE_N as f64).powi(3) / 2e-4 / 1e9);
    }

    let slow = run_plain(&slowed_machine(2, Arc::default()), &models, &cfg, None);
    let c = &slow.cells[1];
    assert!(
        flagged(c) && c.unstable && c.is_unstable(),
        "{:?}",
        c.warnings
    );
    let w = c
        .warnings
        .iter()
        .find(|w| w.starts_with(REFERENCE_WARNING))
        .unwrap();
    assert!(w.contains("x slower") && w.contains("re-run"), "{w}");
    let (r, best) = (
        c.machine_reference.as_ref().unwrap().gflops,
        slow.cells[0].machine_reference.as_ref().unwrap().gflops,
    );
    assert!(best > 2.0 * r, "{best} vs {r}");
    // Its windows agree (the slowdown lasted through the cell): only the reference shows it.
    assert!(c.time_per_example_s.as_ref().unwrap().cv < greenbench_harness::stats::UNSTABLE_CV);
    for (i, c) in slow.cells.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert!(!flagged(c), "cell {i}: {:?}", c.warnings);
    }
    let saved = ResultFile::load(&out).unwrap();
    assert_eq!(saved.cells[1], *c, "flag and reference saved");
}

/// A fake /proc/stat whose steal rises while cells run: every cell records the share and
/// warns; with steal standing still, none does.
#[test]
fn steal_time_is_recorded_and_warned() {
    let _timing = common::timing();
    let dir = tempfile::tempdir().unwrap();
    let stat = dir.path().join("stat");
    let write = |total: u64, steal: u64| {
        let tmp = dir.path().join("stat.tmp");
        // user nice system idle iowait irq softirq steal guest guest_nice
        let line = format!("cpu  {} 0 0 0 0 0 0 {steal} 0 0\n", total - steal);
        std::fs::write(&tmp, line).unwrap();
        std::fs::rename(&tmp, &stat).unwrap();
    };
    write(1000, 0);
    let models = models(&["mlp"], 3);
    let run_with = |rising: bool| {
        let (_d, out) = scratch();
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let stop = stop.clone();
            let stat = stat.clone();
            std::thread::spawn(move || {
                let (mut total, mut steal) = (1000u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    total += 20;
                    if rising {
                        steal += 5;
                    }
                    let tmp = stat.with_extension("tick");
                    let line = format!("cpu  {} 0 0 0 0 0 0 {steal} 0 0\n", total - steal);
                    std::fs::write(&tmp, line).unwrap();
                    std::fs::rename(&tmp, &stat).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
        };
        let mut cfg = config(out);
        cfg.host_load.proc_stat = stat.clone();
        let f = run_plain(&fake(&[], Arc::default()), &models, &cfg, None);
        stop.store(true, Ordering::SeqCst);
        ticker.join().unwrap();
        f
    };
    let noisy = run_with(true);
    for c in &noisy.cells {
        let s = c.steal_share.unwrap();
        assert!((s - 0.25).abs() < 0.01, "steal {s}");
        assert!(
            c.warnings.iter().any(|w| w.contains("(steal")),
            "{:?}",
            c.warnings
        );
    }
    let quiet = run_with(false);
    for c in &quiet.cells {
        assert_eq!(c.steal_share, Some(0.0));
        assert!(
            !c.warnings.iter().any(|w| w.contains("(steal")),
            "{:?}",
            c.warnings
        );
    }
}

/// `--until-stable`: a steady backend settles and records it; a drifting one runs to the cap
/// (10x the profile's windows), records that it did not settle, and says so.
#[test]
fn until_stable_adds_windows_until_the_interval_is_narrow() {
    let _timing = common::timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let mut cfg = config(out.clone());
    cfg.batches = vec![1];
    cfg.profile.until_stable = Some(0.2);
    let steady = run_plain(&fake(&[], Arc::default()), &models, &cfg, None);
    let c = &steady.cells[0];
    assert_eq!(c.stable, Some(true));
    assert!(c.window_batches.len() >= cfg.profile.windows);
    assert!(!c.warnings.iter().any(|w| w.contains("did not settle")));
    cfg.profile.until_stable = Some(0.001);
    let noisy = run_plain(&drifting(), &models, &cfg, None);
    let c = &noisy.cells[0];
    assert_eq!(c.stable, Some(false));
    assert_eq!(
        c.window_batches.len(),
        cfg.profile.windows * 10,
        "ran to the cap"
    );
    assert!(
        c.warnings.iter().any(|w| w.contains("did not settle")),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        ResultFile::load(&out)
            .unwrap()
            .environment
            .profile
            .until_stable,
        Some(0.001)
    );
}

/// The peak is measured again after the cells: recorded beside the first, % of peak taken
/// against the better, and a warning when the two intervals do not overlap.
#[test]
fn the_peak_is_measured_before_and_after_the_cells() {
    let _timing = common::timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let steady = run_plain(
        &fake(&[], Arc::default()),
        &models,
        &config(out.clone()),
        None,
    );
    let p = &steady.environment.peaks[0];
    assert!(p.after.is_some(), "measured again");
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(Fake {
        matmuls: Some(Arc::default()),
        ..Fake::plain(Arc::default())
    })];
    let changed = run_plain(&backends, &models, &config(out.clone()), None);
    let p = &changed.environment.peaks[0];
    let after = p.after.as_ref().unwrap();
    assert!(
        after.gflops < p.gflops / 5.0,
        "{} vs {}",
        after.gflops,
        p.gflops
    );
    assert!(
        p.warning.as_ref().unwrap().contains("disagrees"),
        "{:?}",
        p.warning
    );
    assert_eq!(
        p.attainable(),
        p.best_gflops.unwrap(),
        "the better of the two"
    );
    for c in &changed.cells {
        let want = 100.0 * c.gflops.unwrap() / p.attainable();
        assert!((c.pct_of_peak.unwrap() - want).abs() < 1e-9);
    }
    let table = ResultFile::load(&out).unwrap();
    assert_eq!(table.environment.peaks[0], *p, "saved");
}

/// Precision is a cell dimension: fp32 and int8 cells side by side on the real CPU backend,
/// int8 counting only its floating-point part as FPO and its integer work apart; a backend
/// without int8 records a failed cell that names its precisions; shards split the
/// precisions too; a version 1 file (no precision field) reads as fp32.
#[test]
fn precisions_are_cells_of_their_own() {
    let _timing = common::timing();
    use greenbench_core::Precision;
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let mut cfg = config(out.clone());
    cfg.precisions = vec![Precision::Fp32, Precision::Int8];
    cfg.peak_size = 0;
    let cpu: Vec<Box<dyn Backend>> = vec![Box::new(greenbench_cpu::CpuBackend::new(1).unwrap())];
    let file = run_plain(&cpu, &models, &cfg, None);
    let cells = &file.cells;
    assert_eq!(cells.len(), 4, "2 batches x 2 precisions");
    let (fp, q) = (&cells[0], &cells[1]);
    assert_eq!((fp.batch, fp.precision), (1, Precision::Fp32));
    assert_eq!((q.batch, q.precision), (1, Precision::Int8));
    assert!(
        cells.iter().all(|c| c.status == CellStatus::Ok),
        "{cells:?}"
    );
    assert_eq!(q.macs_per_example, fp.macs_per_example);
    assert!(q.fpo_per_example < fp.fpo_per_example / 10, "{q:?}");
    assert!(q.int_ops_per_example > 2 * q.macs_per_example);
    assert_eq!(fp.int_ops_per_example, 0);
    assert!(
        q.pct_of_peak.is_none(),
        "an fp32 peak says nothing of int8 work"
    );
    assert_eq!(ResultFile::load(&out).unwrap(), file);

    // The fake backend runs fp32 only: its int8 cells fail and say which precisions it has.
    let file = run_plain(&fake(&[], Arc::default()), &models, &cfg, None);
    let failed: Vec<_> = file
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|c| c.precision == Precision::Int8
        && c.error.as_deref().unwrap().contains("precision fp32 only")));

    // Two shards take disjoint halves of the 4 cells.
    let mut seen = vec![];
    for i in 0..2 {
        let mut cfg = config(out.clone());
        cfg.precisions = vec![Precision::Fp32, Precision::Int8];
        cfg.shard = Some(greenbench_harness::cluster::Shard { index: i, count: 2 });
        let f = run_plain(&fake(&[], Arc::default()), &models, &cfg, None);
        seen.extend(f.cells.iter().map(|c| (c.batch, c.precision)));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (1, Precision::Fp32),
            (1, Precision::Int8),
            (4, Precision::Fp32),
            (4, Precision::Int8)
        ]
    );

    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../results/baseline/vm-full.json");
    let v1 = ResultFile::load(&old).unwrap();
    assert_eq!(v1.schema_version, 1);
    assert!(
        v1.cells
            .iter()
            .all(|c| c.precision == Precision::Fp32 && c.int_ops_per_example == 0)
    );
}
