//! Reports, comparisons, merges and price tags over real (small) result files.

use greenbench_core::{Backend, Model};
use greenbench_cpu::CpuBackend;
use greenbench_harness::Profile;
use greenbench_harness::env::fingerprint;
use greenbench_harness::record::ResultFile;
use greenbench_harness::runner::{RunConfig, Silent, run_suite};
use greenbench_results::compare::{Rule, Verdict, compare};

/// 5 % threshold, no run-to-run variation: the intervals decide (as the fixtures set them).
const RULE: Rule = Rule {
    threshold: 0.05,
    noise: 0.0,
    steady_noise: 0.0,
};
use greenbench_results::cost::{CostQuery, EnergyBasis, Pricing, price, price_measured_sweep};
use greenbench_results::{Loaded, load_many};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// A real run of mlp and lenet5 at batch 1 and 4 on the CPU, with a short profile.
fn run(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let cfg = RunConfig {
        profile: Profile {
            name: "test".into(),
            warmup_s: 0.01,
            windows: 6,
            window_s: 0.02,
            input_sets: 2,
            idle_s: 0.0,
            until_stable: None,
        },
        seed: 1,
        batches: vec![1, 4],
        out: out.clone(),
        command: vec!["test".into()],
        machine: fingerprint(&greenbench_harness::env::Build::unstamped("test")),
        peak_size: 64,
        shard: None,
        slurm: None,
        resume: None,
        host_load: Default::default(),
        precisions: vec![greenbench_core::Precision::Fp32],
        quant: Default::default(),
        calibration_examples: 8,
    };
    let models = vec![
        Model::load("mlp", 1).unwrap(),
        Model::load("lenet5", 1).unwrap(),
    ];
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(CpuBackend::new(1).unwrap())];
    let mut energy = greenbench_harness::energy::Energy::new(
        vec![],
        greenbench_energy::CpuEstimate::for_cpu(
            "test",
            greenbench_energy::Topology {
                package_cpus: 1,
                threads_per_core: 1,
            },
            Some(10.0),
        ),
        Default::default(),
    );
    run_suite(
        &backends,
        &models,
        &cfg,
        Some(&mut energy),
        &AtomicBool::new(false),
        &Silent,
    )
    .unwrap();
    out
}

/// Test prices: 400 g/kWh, $0.2/kWh, gross energy.
fn pricing(pue: f64, cloud: Option<f64>) -> Pricing {
    Pricing {
        pue,
        grid_g_per_kwh: 400.0,
        grid_source: "test".into(),
        usd_per_kwh: 0.2,
        price_source: "test".into(),
        cloud_usd_per_hour: cloud,
        basis: EnergyBasis::Gross,
    }
}

fn loaded(p: &Path) -> Loaded {
    Loaded {
        path: p.to_path_buf(),
        file: ResultFile::load(p).unwrap(),
    }
}

/// `src` with every interval set to median x [1 - w, 1 + w], so verdicts do not depend on how
/// noisy the machine was while the tests measured it.
fn with_intervals(src: &Path, w: f64) {
    let mut f = ResultFile::load(src).unwrap();
    for c in &mut f.cells {
        if let Some(t) = c.time_per_example_s.as_mut() {
            t.ci95_low = t.median * (1.0 - w);
            t.ci95_high = t.median * (1.0 + w);
        }
    }
    f.save(src).unwrap();
}

/// `f` with every time scaled by `k` (intervals too).
fn scaled(src: &Path, dst: &Path, k: f64) {
    let mut f = ResultFile::load(src).unwrap();
    for c in &mut f.cells {
        if let Some(t) = c.time_per_example_s.as_mut() {
            t.median *= k;
            t.ci95_low *= k;
            t.ci95_high *= k;
            t.samples.iter_mut().for_each(|s| *s *= k);
        }
    }
    f.save(dst).unwrap();
}

#[test]
fn compare_self_is_clean_and_doubled_times_regress() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    with_intervals(&a, 0.02);
    let c = compare(&loaded(&a), &loaded(&a), RULE).unwrap();
    assert_eq!(c.rows.len(), 4);
    assert!(
        c.rows
            .iter()
            .all(|r| r.verdict == Verdict::NoChange && r.ratio == 1.0)
    );
    let slow = dir.path().join("slow.json");
    scaled(&a, &slow, 2.0);
    let c = compare(&loaded(&a), &loaded(&slow), RULE).unwrap();
    assert_eq!(c.regressions(), 4);
    assert!(c.rows.iter().all(|r| (r.ratio - 2.0).abs() < 1e-9));
    // Within noise: 2 % slower with overlapping intervals gets no verdict.
    let noise = dir.path().join("noise.json");
    scaled(&a, &noise, 1.02);
    assert_eq!(
        compare(&loaded(&a), &loaded(&noise), RULE)
            .unwrap()
            .regressions(),
        0
    );
    // 10 % slower is beyond the threshold, but with intervals of +-8 % they overlap: no verdict.
    let wide = dir.path().join("wide.json");
    std::fs::copy(&a, &wide).unwrap();
    with_intervals(&wide, 0.08);
    let wide_slow = dir.path().join("wide-slow.json");
    scaled(&wide, &wide_slow, 1.10);
    let c = compare(&loaded(&wide), &loaded(&wide_slow), RULE).unwrap();
    assert_eq!(c.regressions(), 0);
    assert!(c.rows.iter().all(|r| r.verdict == Verdict::Inconclusive));
    // Cells in one file only are listed, not dropped.
    let mut f = ResultFile::load(&a).unwrap();
    f.cells.truncate(3);
    let fewer = dir.path().join("fewer.json");
    f.save(&fewer).unwrap();
    let c = compare(&loaded(&a), &loaded(&fewer), RULE).unwrap();
    assert_eq!(
        (c.rows.len(), c.only_base.len(), c.only_new.len()),
        (3, 1, 0)
    );
}

#[test]
fn merge_keeps_everything_and_reports_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    // The same run, as if from another host.
    let mut f = ResultFile::load(&a).unwrap();
    f.environment.machine.hostname = "other-host".into();
    for c in &mut f.cells {
        c.host = Some("other-host".into());
    }
    let b = dir.path().join("b.json");
    f.save(&b).unwrap();
    // A re-run of host a with different numbers: a conflict.
    let c2 = dir.path().join("c.json");
    scaled(&a, &c2, 1.5);
    let files = vec![loaded(&a), loaded(&b), loaded(&a), loaded(&c2)];
    let m = greenbench_results::merge::merge(&files);
    // a (4) + b (4) + a again (identical, kept once) + c (4 conflicting, kept).
    assert_eq!(m.file.cells.len(), 12);
    assert_eq!(m.conflicts.len(), 4, "{:?}", m.conflicts);
    assert_eq!(m.file.merged_from.len(), 4);
    let out = dir.path().join("merged.json");
    m.file.save(&out).unwrap();
    assert_eq!(ResultFile::load(&out).unwrap().cells.len(), 12);
}

#[test]
fn bad_files_are_skipped_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"cells\": [").unwrap();
    let (ok, errs) = load_many(&[a.clone(), bad.clone()], false).unwrap();
    assert_eq!((ok.len(), errs.len()), (1, 1));
    assert!(errs[0].to_string().contains("bad.json"));
    let e = load_many(&[a, bad], true).unwrap_err();
    assert!(e.to_string().contains("bad.json"));
}

#[test]
fn report_is_deterministic_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let files = vec![loaded(&a)];
    let out1 = dir.path().join("r1");
    let out2 = dir.path().join("r2");
    greenbench_results::report::write_report(&files, &out1, "R.md").unwrap();
    greenbench_results::report::write_report(&files, &out2, "R.md").unwrap();
    let md = std::fs::read_to_string(out1.join("R.md")).unwrap();
    assert_eq!(md, std::fs::read_to_string(out2.join("R.md")).unwrap());
    assert!(md.contains("| mlp |") && md.contains("| lenet5 |"));
    assert!(md.contains("estimated"));
    assert!(md.contains("No host has both CPU and GPU cells"));
    for m in ["mlp", "lenet5"] {
        for k in ["time", "energy"] {
            let svg =
                std::fs::read_to_string(out1.join("plots").join(format!("{m}-{k}.svg"))).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("batch size"),
                "{m}-{k}"
            );
            assert!(md.contains(&format!("plots/{m}-{k}.svg")));
        }
    }
    let csv = std::fs::read_to_string(out1.join("cells.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
}

#[test]
fn price_tag_traces_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let files = vec![loaded(&a)];
    let q = greenbench_results::cost::CostQuery {
        model: "mlp".into(),
        examples: 50_000,
        epochs: 30,
        runs: 20,
        backend: Some("cpu".into()),
        batch: Some(4),
        precision: greenbench_core::Precision::Fp32,
        pricing: pricing(1.5, None),
    };
    let tag = greenbench_results::cost::price(&files, &q).unwrap();
    let cell = files[0]
        .file
        .cells
        .iter()
        .find(|c| c.model == "mlp" && c.batch == 4)
        .unwrap();
    let work = 3.0 * 50_000.0 * 30.0 * 20.0;
    assert_eq!(tag.totals.total_fpo, cell.fpo_per_example as f64 * work);
    let t = cell.time_per_example_s.as_ref().unwrap().median;
    assert!((tag.totals.seconds - t * work).abs() < 1e-9 * tag.totals.seconds);
    let j = cell.energy_gross_per_example_j.unwrap() * work * 1.5;
    assert!((tag.totals.joules.unwrap() - j).abs() < 1e-9 * j);
    let kwh = j / 3.6e6;
    assert!((tag.totals.co2e_g.unwrap() - kwh * 400.0).abs() < 1e-9);
    assert!((tag.totals.usd.unwrap() - kwh * 0.2).abs() < 1e-12);
    assert!(tag.text.contains("APPROXIMATION") && tag.text.contains("a.json"));
    let mut q2 = q.clone();
    q2.model = "resnet8".into();
    let e = greenbench_results::cost::price(&files, &q2).unwrap_err();
    assert!(e.contains("resnet8"));
}

/// A sweep's price is the sum of its runs' measured figures; one run without an energy
/// figure leaves the energy total (and CO2e, money) unknown rather than understated.
#[test]
fn sweep_price_sums_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let passes = 1_000.0;
    let cells: Vec<_> = (loaded(&a).file.cells.into_iter().take(3))
        .map(|mut c| {
            c.train_passes = Some(passes as u64);
            c
        })
        .collect();
    let p = greenbench_results::cost::price_sweep(&cells, &pricing(1.0, None));
    assert_eq!(p.runs, 3);
    let fpo: f64 = cells.iter().map(|c| c.fpo_per_example as f64).sum();
    assert_eq!(p.totals.total_fpo, fpo * passes);
    let s: f64 = cells
        .iter()
        .map(|c| c.time_per_example_s.as_ref().unwrap().median)
        .sum();
    assert!((p.totals.seconds - s * passes).abs() < 1e-9 * p.totals.seconds);
    let j: f64 = cells
        .iter()
        .map(|c| c.energy_per_example_j.unwrap())
        .sum::<f64>()
        * passes;
    assert!((p.totals.joules.unwrap() - j).abs() < 1e-9 * j);
    let kwh = j / 3.6e6;
    assert!((p.totals.co2e_g.unwrap() - kwh * 400.0).abs() < 1e-9 * kwh * 400.0);
    let mut partial = cells.clone();
    partial[1].energy_per_example_j = None;
    let q = greenbench_results::cost::price_sweep(&partial, &pricing(1.0, None));
    assert_eq!(
        (q.totals.joules, q.totals.co2e_g, q.totals.usd),
        (None, None, None)
    );
    assert_eq!(q.totals.total_fpo, p.totals.total_fpo);
}

/// An unstable cell is marked wherever it is shown: the run table (mark and footnote), the
/// report (mark and footnote) and `compare`'s rows.
#[test]
fn unstable_cells_are_marked_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let mut base = loaded(&a);
    // Steady by construction, whatever this machine did while the fixture measured.
    for c in &mut base.file.cells {
        c.unstable = false;
        c.time_per_example_s.as_mut().unwrap().cv = 0.01;
    }
    let mut noisy = base.clone();
    noisy.file.cells[0].unstable = true;
    assert!(!base.file.cells[0].is_unstable());
    let table = greenbench_results::text::run_table(&noisy.file);
    assert!(
        table.contains(" (!)") && table.contains("(!) unstable"),
        "{table}"
    );
    assert!(!greenbench_results::text::run_table(&base.file).contains("(!)"));
    let md = greenbench_results::report::markdown(std::slice::from_ref(&noisy), &[]);
    assert!(
        md.contains(" (unstable) |") && md.contains("(unstable) unstable:"),
        "{md}"
    );
    let c = compare(&base, &noisy, RULE).unwrap();
    assert_eq!(c.rows.iter().filter(|r| r.unstable).count(), 1);
    // A peak measured again after the cells, and disagreeing: both shown, with the warning.
    let mut moved = base.clone();
    let p = &mut moved.file.environment.peaks[0];
    p.after = Some(greenbench_harness::record::PeakAgain {
        gflops: 1.5,
        gflops_ci95_low: 1.4,
        gflops_ci95_high: 1.6,
        best_gflops: Some(1.7),
    });
    p.warning = Some("the peak measured after the cells disagrees".into());
    let table = greenbench_results::text::run_table(&moved.file);
    assert!(
        table.contains("; after the cells: 1.5 [1.4, 1.6]"),
        "{table}"
    );
    assert!(
        table.contains("warning: peak cpu: the peak measured after"),
        "{table}"
    );
    let md = greenbench_results::report::markdown(std::slice::from_ref(&moved), &[]);
    assert!(md.contains("**Warning:** the peak measured after"), "{md}");
    // Files written before the flag: judged by their windows' CV.
    let mut old = base.clone();
    let t = old.file.cells[1].time_per_example_s.as_mut().unwrap();
    t.cv = 0.2;
    assert!(old.file.cells[1].is_unstable());
}

/// A measured sweep priced from result files honours every pricing flag, as a price from an
/// inference cell does (issue: `cost` without --examples ignored --pue and
/// --cloud-usd-per-hour, and --backend, --batch, --precision).
#[test]
fn measured_sweep_price_honours_pue_cloud_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let mut l = loaded(&a);
    l.file.cells.retain(|c| c.model == "mlp");
    for c in &mut l.file.cells {
        c.backend = "cpu-train".into();
        c.train_passes = Some(10_000);
    }
    let files = vec![l];
    let q = |pue: f64, cloud: Option<f64>| CostQuery {
        model: "mlp".into(),
        examples: 0,
        epochs: 1,
        runs: 1,
        backend: None,
        batch: None,
        precision: greenbench_core::Precision::Fp32,
        pricing: pricing(pue, cloud),
    };
    let (one, _) = price_measured_sweep(&files, &q(1.0, None)).unwrap();
    let (dc, text) = price_measured_sweep(&files, &q(1.58, None)).unwrap();
    assert_eq!(one.runs, 2);
    let (j1, j2) = (one.totals.joules.unwrap(), dc.totals.joules.unwrap());
    assert!((j2 / j1 - 1.58).abs() < 1e-12, "{j1} {j2}");
    assert!((dc.totals.co2e_g.unwrap() / one.totals.co2e_g.unwrap() - 1.58).abs() < 1e-12);
    assert!(text.contains("x PUE 1.58"), "{text}");
    let (cloud, text) = price_measured_sweep(&files, &q(1.0, Some(2.0))).unwrap();
    let usd = cloud.totals.usd.unwrap();
    assert!((usd - cloud.totals.seconds / 3600.0 * 2.0).abs() < 1e-12 * usd.max(1e-30));
    assert!(text.contains("--cloud-usd-per-hour"), "{text}");
    // The filters select runs: batch 4 only is one run; another backend is none.
    let mut b = q(1.0, None);
    b.batch = Some(4);
    assert_eq!(price_measured_sweep(&files, &b).unwrap().0.runs, 1);
    let mut g = q(1.0, None);
    g.backend = Some("gpu-train".into());
    let e = price_measured_sweep(&files, &g).unwrap_err();
    assert!(e.contains("backend gpu-train"), "{e}");
    let mut p = q(1.0, None);
    p.precision = greenbench_core::Precision::Int8;
    assert!(price_measured_sweep(&files, &p).is_err());
}

/// The cheapest cell is chosen among cells of one kind with a positive energy figure, and the
/// price tag says how (issue: a net figure clamped to 0 won, and an estimate beat a
/// measurement); gross is priced by default, net on request.
#[test]
fn cheapest_cell_is_positive_and_of_one_kind() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let mut l = loaded(&a);
    l.file.cells.retain(|c| c.model == "mlp");
    assert_eq!(l.file.cells.len(), 2);
    // Cell 0: measured, net clamped to 0 (idle above the reading). Cell 1: measured, 2 mJ
    // gross, 1 mJ net. A third, estimated, cell far cheaper.
    let mut est = l.file.cells[1].clone();
    est.batch = 7;
    est.energy_kind = Some("estimated".into());
    for (c, (gross, net)) in l.file.cells.iter_mut().zip([(5e-3, 0.0), (2e-3, 1e-3)]) {
        c.energy_kind = Some("measured".into());
        c.energy_gross_per_example_j = Some(gross);
        c.energy_net_per_example_j = Some(net);
        c.energy_per_example_j = Some(net);
    }
    for v in [
        &mut est.energy_gross_per_example_j,
        &mut est.energy_net_per_example_j,
        &mut est.energy_per_example_j,
    ] {
        *v = Some(1e-6);
    }
    l.file.cells.push(est);
    let files = vec![l];
    let mut q = CostQuery {
        model: "mlp".into(),
        examples: 1000,
        epochs: 1,
        runs: 1,
        backend: None,
        batch: None,
        precision: greenbench_core::Precision::Fp32,
        pricing: pricing(1.0, None),
    };
    let tag = price(&files, &q).unwrap();
    // Gross, measured: cell 1 (2 mJ), never the estimate nor a 0.
    let work = 3.0 * 1000.0;
    assert!((tag.totals.joules.unwrap() - 2e-3 * work).abs() < 1e-12);
    assert!(tag.text.contains("batch 4"), "{}", tag.text);
    assert!(
        tag.text
            .contains("lowest gross energy per example of 2 measured cell(s)")
            && tag.text.contains("1 cell(s) of another kind not compared"),
        "{}",
        tag.text
    );
    q.pricing.basis = EnergyBasis::Net;
    let tag = price(&files, &q).unwrap();
    assert!((tag.totals.joules.unwrap() - 1e-3 * work).abs() < 1e-12);
    assert!(
        tag.text
            .contains("1 cell(s) without a positive energy figure left out"),
        "{}",
        tag.text
    );
}

/// The CPU-versus-GPU verdict compares measured energy with measured energy only: a GPU cell
/// whose energy is the host-CPU-time estimate gets "cannot compare", not a verdict.
#[test]
fn cpu_gpu_verdict_needs_measured_energy_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let mut l = loaded(&a);
    l.file.cells.retain(|c| c.model == "mlp");
    let gpus: Vec<_> = l
        .file
        .cells
        .iter()
        .map(|c| {
            let mut g = c.clone();
            g.backend = "gpu".into();
            g.energy_per_example_j = c.energy_per_example_j.map(|j| j / 10.0);
            g
        })
        .collect();
    l.file.cells.extend(gpus);
    for c in &mut l.file.cells {
        c.energy_kind = Some("estimated".into());
    }
    let text = greenbench_results::report::cpu_vs_gpu(std::slice::from_ref(&l));
    assert!(text.contains("cannot compare CPU and GPU energy"), "{text}");
    assert!(!text.contains("cheaper choice"), "{text}");
    for c in &mut l.file.cells {
        c.energy_kind = Some("measured".into());
    }
    let text = greenbench_results::report::cpu_vs_gpu(std::slice::from_ref(&l));
    assert!(
        text.contains("the GPU is the cheaper choice (measured energy per example) from batch 1"),
        "{text}"
    );
}

/// Run-to-run variation decides with the intervals: a 7 % slowdown with disjoint intervals
/// is a regression at noise 0 but no change beyond +-10 % where runs vary by 10 %, and
/// inconclusive where its range reaches past the margin; a change beyond the
/// noise is still caught; a ratio whose whole range is inside the margin is "no change"; two
/// files with nothing in common are refused (issue: "0 regression(s)", exit 0).
#[test]
fn compare_accounts_for_run_to_run_variation() {
    let noisy = Rule {
        threshold: 0.05,
        noise: 0.10,
        steady_noise: 0.10,
    };
    let b = (1.0, 0.99, 1.01);
    assert_eq!(RULE.verdict(b, (1.07, 1.06, 1.08)), Verdict::Regression);
    assert_eq!(noisy.verdict(b, (1.07, 1.06, 1.08)), Verdict::NoChange);
    assert_eq!(noisy.verdict(b, (1.09, 1.05, 1.15)), Verdict::Inconclusive);
    assert_eq!(noisy.verdict(b, (1.25, 1.24, 1.26)), Verdict::Regression);
    assert_eq!(noisy.verdict(b, (0.80, 0.79, 0.81)), Verdict::Improvement);
    assert_eq!(noisy.verdict(b, (1.02, 1.01, 1.03)), Verdict::NoChange);
    assert_eq!(noisy.margin(), 0.10);
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), "a.json");
    let mut other = loaded(&a);
    for c in &mut other.file.cells {
        c.host = Some("elsewhere".into());
    }
    let e = compare(&loaded(&a), &other, noisy).unwrap_err();
    assert!(
        e.contains("nothing to compare") && e.contains("elsewhere"),
        "{e}"
    );
}

/// A slowdown that the machine's reference matmul (timed beside each cell) shows as well is
/// "machine changed", not a regression; the same slowdown beside an unchanged reference, or
/// one beyond what the reference explains, is still a regression; an improvement on a
/// machine that sped up as much is "machine changed" too.
#[test]
fn compare_does_not_blame_the_code_for_a_slower_machine() {
    let b = (1.0, 0.99, 1.01);
    let slower = (2.0, 1.98, 2.02);
    assert_eq!(RULE.verdict_beside(b, slower, None), Verdict::Regression);
    assert_eq!(
        RULE.verdict_beside(b, slower, Some(1.0)),
        Verdict::Regression
    );
    assert_eq!(
        RULE.verdict_beside(b, slower, Some(1.95)),
        Verdict::MachineChanged
    );
    // The machine 1.3x slower explains 1.3x, not 2x.
    assert_eq!(
        RULE.verdict_beside(b, slower, Some(1.3)),
        Verdict::Regression
    );
    // A faster machine explains no slowdown.
    assert_eq!(
        RULE.verdict_beside(b, slower, Some(0.5)),
        Verdict::Regression
    );
    assert_eq!(
        RULE.verdict_beside(b, (0.5, 0.49, 0.51), Some(0.52)),
        Verdict::MachineChanged
    );
    assert_eq!(
        RULE.verdict_beside(b, (1.0, 0.99, 1.01), Some(2.0)),
        Verdict::NoChange
    );

    // Files: every cell of `new` twice as slow, its references as measured or halved too.
    let dir = tempfile::tempdir().unwrap();
    let path = run(dir.path(), "a.json");
    with_intervals(&path, 0.01);
    let a = loaded(&path);
    assert!(
        (a.file.cells.iter()).all(|c| c.machine_reference.is_some()),
        "a run records the reference beside each cell"
    );
    let twice = |slow_machine: bool| {
        let mut n = a.clone();
        for c in &mut n.file.cells {
            let t = c.time_per_example_s.as_mut().unwrap();
            for v in [&mut t.median, &mut t.ci95_low, &mut t.ci95_high] {
                *v *= 2.0;
            }
            if slow_machine {
                c.machine_reference.as_mut().unwrap().gflops /= 2.0;
            }
        }
        compare(&a, &n, RULE).unwrap()
    };
    let blamed = twice(false);
    assert_eq!(blamed.regressions(), blamed.rows.len());
    assert!(blamed.rows.iter().all(|r| r.reference_ratio == Some(1.0)));
    let machine = twice(true);
    assert_eq!(machine.regressions(), 0);
    assert_eq!(machine.count(Verdict::MachineChanged), machine.rows.len());
    assert!(machine.rows.iter().all(|r| r.reference_ratio == Some(2.0)));
}

/// Cells whose machine references agree get the steady margin: on a machine whose runs vary
/// by 90 % but by 40 % when the references agree, a 1.6x slowdown is a regression beside
/// agreeing references, and no change beyond +-90 % without references or beside ones 20 %
/// apart; the
/// margin is never widened by it. The steady noise is measured from repeated runs' pairs whose
/// references agree.
#[test]
fn agreeing_references_narrow_the_margin() {
    let rule = Rule {
        threshold: 0.05,
        noise: 0.90,
        steady_noise: 0.40,
    };
    let (b, slower) = ((1.0, 0.99, 1.01), (1.6, 1.58, 1.62));
    assert_eq!(rule.margin_for(Some(1.03)), 0.40);
    assert_eq!(rule.margin_for(Some(1.2)), 0.90);
    assert_eq!(rule.margin_for(None), 0.90);
    assert_eq!(
        rule.verdict_beside(b, slower, Some(1.0)),
        Verdict::Regression
    );
    // Within +-90 %: no change beyond it.
    assert_eq!(rule.verdict_beside(b, slower, None), Verdict::NoChange);
    assert_eq!(rule.verdict_beside(b, slower, Some(1.2)), Verdict::NoChange);
    let wide = Rule {
        steady_noise: 2.0,
        ..rule
    };
    assert_eq!(wide.margin_for(Some(1.0)), 0.90, "never above the margin");

    // Three runs: every cell 10 % slower each run, references agreeing in the first pair and
    // 30 % apart in the second: the steady noise is the first pair's change alone.
    let dir = tempfile::tempdir().unwrap();
    let path = run(dir.path(), "a.json");
    let a = loaded(&path);
    let step = |k: f64, machine: f64| {
        let mut n = a.clone();
        for c in &mut n.file.cells {
            c.time_per_example_s.as_mut().unwrap().median *= k;
            c.machine_reference.as_mut().unwrap().gflops /= machine;
        }
        n
    };
    let runs = [a.clone(), step(1.1, 1.0), step(1.21 * 1.3, 1.3)];
    let (all, pairs) = greenbench_results::compare::run_to_run_noise(&runs).unwrap();
    let (steady, steady_pairs) =
        greenbench_results::compare::steady_run_to_run_noise(&runs).unwrap();
    let cells = a
        .file
        .cells
        .iter()
        .filter(|c| c.time_per_example_s.is_some())
        .count();
    assert_eq!((pairs, steady_pairs), (3 * cells, cells));
    assert!((steady - 0.1).abs() < 1e-9, "{steady}");
    assert!((all - (1.21 * 1.3 / 1.1 - 1.0)).abs() < 1e-9, "{all}");
}

/// The README's sample table is the committed sample file rendered by this code (columns
/// included), so it cannot drift from what `greenbench run` prints.
#[test]
fn readme_sample_is_the_committed_file_rendered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let after = readme
        .split("committed as `results/samples/readme-quick.json`:")
        .nth(1)
        .unwrap();
    let block = after
        .split("```text\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let f = ResultFile::load(&root.join("results/samples/readme-quick.json")).unwrap();
    let table = greenbench_results::text::run_table(&f);
    if block != table {
        std::fs::write(std::env::temp_dir().join("readme-sample.txt"), &table).unwrap();
    }
    assert_eq!(
        block, table,
        "README sample differs; the rendering is in $TMPDIR/readme-sample.txt"
    );
}
