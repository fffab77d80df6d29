//! Helpers the harness's integration tests share: a fake backend, a run configuration,
//! scratch folders, constant-power meters.
#![allow(dead_code)]

use greenbench_core::{
    Backend, BackendError, DeviceInfo, DeviceKind, Graph, Model, PrepareResult, Prepared, Weights,
};
use greenbench_harness::Profile;
use greenbench_harness::env::fingerprint;
use greenbench_harness::record::ResultFile;
use greenbench_harness::runner::{Observer, RunConfig, Silent, run_suite};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Takes `us` microseconds: a sleep for all but the last millisecond, then a spin to the
/// deadline. A sleep alone wakes late by 0.1 ms on an idle VM and by more under load, which
/// made a steady fake look noisy (CV 0.06-0.14 on one development VM) and shrank the ratios
/// the tests assert.
pub fn wait_us(us: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_micros(us);
    if us > 1500 {
        std::thread::sleep(std::time::Duration::from_micros(us - 1000));
    }
    while std::time::Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Held by each test that times the fake, so that two of them never share the two cores
/// of a small machine (the fakes spin; a test that waits for a core reads as noise).
pub fn timing() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Returns zeros; fails `prepare` for models named in `fail`; counts prepares. A run takes
/// 200 us, plus `drift_us` more for every earlier run of the same prepared model (a backend
/// that slows down call after call: its windows disagree).
pub struct Fake {
    pub fail: Vec<String>,
    pub prepares: Arc<AtomicUsize>,
    pub drift_us: u64,
    /// Matmuls prepared so far; from the second on they take 10x as long (a machine whose
    /// state changed between the peak before the cells and the one after).
    pub matmuls: Option<Arc<AtomicUsize>>,
    /// The first model prepared runs this many times slower than the rest (a slowdown that
    /// lasts through the run's first cell: its windows agree, all slow).
    pub slow_first: u64,
    /// What its prepared models say of their arithmetic (`Prepared::algorithm_note`).
    pub note: Option<String>,
    /// What its prepared models say of their use of the machine (`Prepared::execution_note`).
    pub exec_note: Option<String>,
    /// A machine that runs 3x slower while the model prepared `.0`-th (1-based) is measured:
    /// every run of the fake — that model's and the reference matmul's beside it — takes
    /// `.1` times as long (3 from that prepare, 1 again from the next).
    pub slow_cell: Option<(usize, Arc<AtomicU64>)>,
}

pub struct FakePrepared {
    pub out: Vec<f32>,
    pub base_us: u64,
    pub drift_us: u64,
    pub calls: u64,
    pub note: Option<String>,
    pub exec_note: Option<String>,
    /// The machine's slowdown factor now (see [`Fake::slow_cell`]).
    pub machine: Option<Arc<AtomicU64>>,
}

impl FakePrepared {
    fn new(len: usize, drift_us: u64) -> Box<Self> {
        Box::new(FakePrepared {
            out: vec![0.0; len],
            base_us: 200,
            drift_us,
            calls: 0,
            note: None,
            exec_note: None,
            machine: None,
        })
    }
}

impl Prepared for FakePrepared {
    fn run(&mut self, _input: &[f32]) -> Result<&[f32], BackendError> {
        let factor = self
            .machine
            .as_ref()
            .map_or(1, |m| m.load(Ordering::SeqCst));
        let us = (self.base_us + self.drift_us * self.calls) * factor;
        self.calls += 1;
        wait_us(us);
        Ok(&self.out)
    }
    fn algorithm_note(&self) -> Option<String> {
        self.note.clone()
    }
    fn execution_note(&self) -> Option<String> {
        self.exec_note.clone()
    }
}

impl Backend for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            name: "test device".into(),
            kind: DeviceKind::Cpu,
            threads: Some(1),
            driver: None,
        }
    }
    fn prepare(&self, g: &Graph, _w: &Weights, batch: usize) -> PrepareResult {
        self.prepares.fetch_add(1, Ordering::SeqCst);
        if self.fail.contains(&g.name) {
            return Err(BackendError::Failed {
                backend: "fake".into(),
                message: "shader exploded".into(),
            });
        }
        let mut p = FakePrepared::new(batch * g.output_len(), self.drift_us);
        if self.prepares.load(Ordering::SeqCst) == 1 {
            p.base_us *= self.slow_first.max(1);
        }
        p.note = self.note.clone();
        p.exec_note = self.exec_note.clone();
        if let Some((k, factor)) = &self.slow_cell {
            let n = self.prepares.load(Ordering::SeqCst);
            factor.store(if n == *k { 3 } else { 1 }, Ordering::SeqCst);
            p.machine = Some(factor.clone());
        }
        Ok(p)
    }
    fn prepare_matmul(&self, m: usize, _k: usize, n: usize) -> PrepareResult {
        let mut p = FakePrepared::new(m * n, self.drift_us);
        if let Some(count) = &self.matmuls
            && count.fetch_add(1, Ordering::SeqCst) > 0
        {
            p.base_us = 2000;
        }
        p.machine = self.slow_cell.as_ref().map(|(_, f)| f.clone());
        Ok(p)
    }
}

pub fn config(out: std::path::PathBuf) -> RunConfig {
    RunConfig {
        profile: Profile {
            name: "test".into(),
            warmup_s: 0.005,
            windows: 5,
            window_s: 0.005,
            input_sets: 2,
            idle_s: 0.0,
            until_stable: None,
        },
        seed: 3,
        batches: vec![1, 4],
        out,
        command: vec!["test".into()],
        machine: fingerprint(&greenbench_harness::env::Build::unstamped("test")),
        peak_size: 16,
        shard: None,
        slurm: None,
        resume: None,
        host_load: Default::default(),
        precisions: vec![greenbench_core::Precision::Fp32],
        quant: Default::default(),
        calibration_examples: 8,
    }
}

/// Raises the cancel flag after `after` finished measurements (the peak counts as one).
pub struct CancelAfter {
    pub after: usize,
    pub seen: AtomicUsize,
    pub cancel: Arc<AtomicBool>,
}
impl Observer for CancelAfter {
    fn finished(&self, _s: &str) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}

/// A scratch folder (removed when dropped) and a result file's path in it.
pub fn scratch() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    (dir, out)
}

/// Zoo models by name, weights from `seed`.
pub fn models(names: &[&str], seed: u64) -> Vec<Model> {
    names
        .iter()
        .map(|n| Model::load(n, seed).unwrap())
        .collect()
}

/// A cancel flag and an observer that raises it after `after` finished measurements.
pub fn cancel_after(after: usize) -> (Arc<AtomicBool>, CancelAfter) {
    let cancel = Arc::new(AtomicBool::new(false));
    let obs = CancelAfter {
        after,
        seen: AtomicUsize::new(0),
        cancel: cancel.clone(),
    };
    (cancel, obs)
}

/// `run_suite` never cancelled, with no observer.
pub fn run_plain(
    backends: &[Box<dyn Backend>],
    models: &[Model],
    cfg: &RunConfig,
    energy: Option<&mut greenbench_harness::energy::Energy>,
) -> ResultFile {
    run_suite(
        backends,
        models,
        cfg,
        energy,
        &AtomicBool::new(false),
        &Silent,
    )
    .unwrap()
}

impl Fake {
    /// Nothing failing, drifting or slowed; `prepares` counts its prepares.
    pub fn plain(prepares: Arc<AtomicUsize>) -> Fake {
        Fake {
            fail: vec![],
            prepares,
            drift_us: 0,
            matmuls: None,
            slow_first: 1,
            note: None,
            exec_note: None,
            slow_cell: None,
        }
    }
}

pub fn fake(fail: &[&str], prepares: Arc<AtomicUsize>) -> Vec<Box<dyn Backend>> {
    vec![Box::new(Fake {
        fail: fail.iter().map(|s| s.to_string()).collect(),
        ..Fake::plain(prepares)
    })]
}

/// A fake whose first prepared model runs 5x slower than everything after it.
pub fn slow_first(prepares: Arc<AtomicUsize>) -> Vec<Box<dyn Backend>> {
    vec![Box::new(Fake {
        slow_first: 5,
        ..Fake::plain(prepares)
    })]
}

/// A fake whose runs slow down by 40 us per call.
pub fn drifting() -> Vec<Box<dyn Backend>> {
    vec![Box::new(Fake {
        drift_us: 40,
        ..Fake::plain(Arc::default())
    })]
}

/// A fake on a machine that runs 3x slower while its `k`-th prepared model is measured.
pub fn slowed_machine(k: usize, prepares: Arc<AtomicUsize>) -> Vec<Box<dyn Backend>> {
    vec![Box::new(Fake {
        slow_cell: Some((k, Arc::new(AtomicU64::new(1)))),
        ..Fake::plain(prepares)
    })]
}

/// A meter that draws a constant power, or fails after `fail_after` samples.
pub struct ConstPower {
    pub watts: f64,
    pub born: std::time::Instant,
    pub seen: f64,
    pub samples: usize,
    pub fail_after: Option<usize>,
}

impl greenbench_energy::Meter for ConstPower {
    fn name(&self) -> &str {
        "test meter"
    }
    fn kind(&self) -> greenbench_energy::EnergyKind {
        greenbench_energy::EnergyKind::Measured
    }
    fn sample(&mut self) -> Result<(), greenbench_energy::MeterError> {
        self.samples += 1;
        if self.fail_after.is_some_and(|n| self.samples > n) {
            return Err(greenbench_energy::MeterError {
                meter: "test meter".into(),
                message: "permission denied".into(),
            });
        }
        self.seen = self.watts * self.born.elapsed().as_secs_f64();
        Ok(())
    }
    fn joules(&self) -> f64 {
        self.seen
    }
}

pub fn energy_with(watts: f64, fail_after: Option<usize>) -> greenbench_harness::energy::Energy {
    energy_of(Box::new(ConstPower {
        watts,
        born: std::time::Instant::now(),
        seen: 0.0,
        samples: 0,
        fail_after,
    }))
}

/// Measured energy from `meter` (the estimate, 10 W on one CPU, never used).
pub fn energy_of(meter: Box<dyn greenbench_energy::Meter>) -> greenbench_harness::energy::Energy {
    greenbench_harness::energy::Energy::new(
        vec![meter],
        greenbench_energy::CpuEstimate::for_cpu(
            "test",
            greenbench_energy::Topology {
                package_cpus: 1,
                threads_per_core: 1,
            },
            Some(10.0),
        ),
        Default::default(),
    )
}
