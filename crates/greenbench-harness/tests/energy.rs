//! Energy in the runner: measured gross, net and idle; a failing meter; the labelled
//! estimate; idle measured again after the cells.

mod common;

use common::*;
use greenbench_harness::record::CellStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn measured_energy_gross_net_and_idle() {
    let _timing = timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let backends = fake(&[], Arc::default());
    let mut cfg = config(out.clone());
    cfg.profile.idle_s = 0.05;
    cfg.profile.window_s = 0.05;
    let mut energy = energy_with(20.0, None);
    let file = run_plain(&backends, &models, &cfg, Some(&mut energy));
    let env = file.environment.energy.as_ref().unwrap();
    assert_eq!(env.kind, "measured");
    let idle = env.idle_power_w.unwrap();
    assert!((idle - 20.0).abs() < 1.0, "idle {idle}");
    for c in &file.cells {
        assert_eq!(c.energy_kind.as_deref(), Some("measured"));
        assert!(c.energy_source.contains("test meter") && c.energy_source.contains("idle"));
        let t = c.time_per_example_s.as_ref().unwrap().median;
        let gross = c.energy_gross_per_example_j.unwrap();
        // 20 W for t seconds per example.
        // Readings sit just outside the timed region, so gross covers a little more time.
        assert!(
            (gross / (20.0 * t) - 1.0).abs() < 0.35,
            "gross {gross} vs {}",
            20.0 * t
        );
        // The whole draw is idle power: net is (about) nothing, never negative.
        let net = c.energy_net_per_example_j.unwrap();
        assert!(net >= 0.0 && net < 0.2 * gross, "net {net}");
        assert_eq!(c.energy_per_example_j, Some(net));
        assert!(c.avg_power_w.unwrap() > 15.0);
        assert_eq!(c.energy_samples_j.len(), 5);
    }
}

#[test]
fn failing_meter_gives_no_number_and_says_why() {
    let _timing = timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let backends = fake(&[], Arc::default());
    let mut energy = energy_with(20.0, Some(3));
    let file = run_plain(&backends, &models, &config(out), Some(&mut energy));
    let c = file.cells.last().unwrap();
    assert_eq!(c.status, CellStatus::Ok, "timing still counts");
    assert!(c.energy_per_example_j.is_none());
    assert!(
        c.energy_source.contains("permission denied"),
        "{}",
        c.energy_source
    );
}

#[test]
fn estimate_is_labelled_everywhere() {
    // The bound below is the fake's one busy core at the full TDP: another test's fake
    // spinning beside it in this process doubled the process CPU time the estimate reads
    // (CI failed once so, 2026-12-07, and again when only this test held the lock: every
    // test here that runs a fake holds it).
    let _timing = timing();
    let (_dir, out) = scratch();
    let models = models(&["mlp"], 3);
    let backends = fake(&[], Arc::default());
    let mut energy = greenbench_harness::energy::Energy::new(
        vec![],
        greenbench_energy::CpuEstimate::for_cpu(
            "test",
            greenbench_energy::Topology {
                package_cpus: 2,
                threads_per_core: 1,
            },
            Some(30.0),
        ),
        Default::default(),
    );
    let file = run_plain(&backends, &models, &config(out), Some(&mut energy));
    assert_eq!(file.environment.energy.as_ref().unwrap().kind, "estimated");
    for c in &file.cells {
        assert_eq!(c.energy_kind.as_deref(), Some("estimated"));
        assert!(
            c.energy_source.starts_with("estimated:"),
            "{}",
            c.energy_source
        );
        assert!(c.energy_source.contains("TDP 30 W"));
        // The fake backend keeps at most one core busy: a small but non-negative estimate.
        let j = c.energy_per_example_j.unwrap();
        assert!(j >= 0.0 && j < 15.0 * c.time_per_example_s.as_ref().unwrap().median * 2.0 + 1e-3);
        assert!(c.co2e_g_per_million.is_some() && c.cost_usd_per_million.is_some());
    }
}

/// The rule for a moved idle: beyond 10 % and 0.5 W, either way.
#[test]
fn idle_moved_threshold() {
    use greenbench_harness::energy::idle_moved;
    assert!(idle_moved(20.0, 20.4).is_none());
    assert!(idle_moved(20.0, 21.9).is_none());
    assert!(idle_moved(20.0, 22.5).is_some());
    assert!(idle_moved(20.0, 17.0).is_some());
    assert!(idle_moved(2.0, 2.4).is_none());
}

/// A meter drawing `before` watts until the backend first prepares a model (`prepares` > 0:
/// after the idle measured before the run), then `after` watts.
struct StepPower {
    before: f64,
    after: f64,
    prepares: Arc<AtomicUsize>,
    born: std::time::Instant,
    /// When a sample first saw a prepare (never before the prepare itself).
    switched: Option<std::time::Instant>,
    seen: f64,
}

impl StepPower {
    fn new(before: f64, after: f64, prepares: Arc<AtomicUsize>) -> Self {
        StepPower {
            before,
            after,
            prepares,
            born: std::time::Instant::now(),
            switched: None,
            seen: 0.0,
        }
    }
}

impl greenbench_energy::Meter for StepPower {
    fn name(&self) -> &str {
        "step meter"
    }
    fn kind(&self) -> greenbench_energy::EnergyKind {
        greenbench_energy::EnergyKind::Measured
    }
    fn sample(&mut self) -> Result<(), greenbench_energy::MeterError> {
        let now = std::time::Instant::now();
        if self.switched.is_none() && self.prepares.load(Ordering::SeqCst) > 0 {
            self.switched = Some(now);
        }
        let sw = self.switched.unwrap_or(now);
        self.seen =
            self.before * (sw - self.born).as_secs_f64() + self.after * (now - sw).as_secs_f64();
        Ok(())
    }
    fn joules(&self) -> f64 {
        self.seen
    }
}

/// Idle power is measured again after the cells: a steady machine's stays (no warning), one
/// whose idle draw moved gets a warning in the run's environment, and the net figures keep
/// resting on the idle measured before (issue: idle was measured once, unchecked).
#[test]
fn idle_is_measured_again_after_the_cells() {
    let _timing = timing();
    let run = |after: f64| {
        let (_dir, out) = scratch();
        let models = models(&["mlp"], 3);
        let prepares = Arc::new(AtomicUsize::new(0));
        let backends = fake(&[], prepares.clone());
        let mut cfg = config(out);
        cfg.profile.idle_s = 0.05;
        cfg.profile.window_s = 0.05;
        let mut energy = energy_of(Box::new(StepPower::new(20.0, after, prepares)));
        run_plain(&backends, &models, &cfg, Some(&mut energy))
            .environment
            .energy
            .unwrap()
    };
    let steady = run(20.0);
    let (before, after) = (steady.idle_power_w.unwrap(), steady.idle_after_w.unwrap());
    assert!(
        (before - 20.0).abs() < 1.0 && (after - 20.0).abs() < 1.0,
        "{before} {after}"
    );
    assert!(
        steady.idle_warnings.iter().all(|w| !w.contains("moved")),
        "{:?}",
        steady.idle_warnings
    );
    let moved = run(40.0);
    assert!(
        (moved.idle_power_w.unwrap() - 20.0).abs() < 1.0,
        "{moved:?}"
    );
    assert!(
        (moved.idle_after_w.unwrap() - 40.0).abs() < 2.0,
        "{moved:?}"
    );
    assert!(
        moved
            .idle_warnings
            .iter()
            .any(|w| w.contains("idle power moved from") && w.contains("after them")),
        "{:?}",
        moved.idle_warnings
    );
}
