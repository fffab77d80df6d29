//! Energy in the protocol: counters sampled in the background, read at window boundaries;
//! idle power measured before the run; the estimate where nothing is readable.

use greenbench_energy::estimate::{machine_busy_seconds, process_cpu_seconds};
use greenbench_energy::{CpuEstimate, Meter};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Background sampling period: far below RAPL's shortest wrap time (minutes at laptop
/// power, tens of seconds on big servers) and dense enough to integrate power readings.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What an energy reading at a window boundary holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reading {
    /// Cumulative joules of all measured meters, if any.
    pub measured_j: Option<f64>,
    /// This process's CPU seconds.
    pub process_cpu_s: Option<f64>,
    /// All processes' busy CPU seconds.
    pub machine_busy_s: Option<f64>,
    /// When the meters were sampled (measured meters only): intervals between readings are
    /// taken from these, so a thread descheduled between the sample and its clock does not
    /// shorten the interval (an idle figure read 3x too high under load before).
    pub at: Option<Instant>,
}

/// An idle-power measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Idle {
    /// Watts the meters read while greenbench did nothing.
    pub w: f64,
    /// CPU cores the machine's processes kept busy meanwhile (from /proc/stat), if readable:
    /// above [`IDLE_BUSY_CORES`] the idle figure includes someone else's work.
    pub busy_cores: Option<f64>,
}

/// Busy cores above which an idle measurement is not quiet.
pub const IDLE_BUSY_CORES: f64 = 0.2;

/// Relative change of idle power between before and after the cells above which the run's
/// net figures are flagged (and at least [`IDLE_MOVED_MIN_W`]).
pub const IDLE_MOVED_FRACTION: f64 = 0.10;
/// The smallest move of idle power worth a warning, watts.
pub const IDLE_MOVED_MIN_W: f64 = 0.5;

impl Idle {
    /// Why this measurement is not a quiet machine's idle, if it is not.
    pub fn noisy(&self) -> Option<String> {
        self.busy_cores.filter(|&c| c > IDLE_BUSY_CORES).map(|c| {
            format!(
                "idle power ({:.2} W) was measured while the machine's processes kept {c:.2} CPU cores busy: it includes that work, so net figures are understated; measure on a quiet machine",
                self.w
            )
        })
    }
}

/// The warning when idle power moved between before and after the cells, if it did.
pub fn idle_moved(before: f64, after: f64) -> Option<String> {
    let moved = (after - before).abs();
    (moved > IDLE_MOVED_MIN_W && moved > IDLE_MOVED_FRACTION * before.abs()).then(|| {
        format!(
            "idle power moved from {before:.2} W before the cells to {after:.2} W after them: the net (idle-subtracted) figures rest on the first and are uncertain by that difference; gross figures are unaffected"
        )
    })
}

/// Measured meters sampled by a background thread.
struct Monitor {
    meters: Arc<Mutex<Vec<Box<dyn Meter>>>>,
    fault: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    fn new(meters: Vec<Box<dyn Meter>>) -> Self {
        let meters = Arc::new(Mutex::new(meters));
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (meters, fault, stop) = (meters.clone(), fault.clone(), stop.clone());
            std::thread::Builder::new()
                .name("greenbench-energy".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        sample_all(&meters, &fault);
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                })
                .ok()
        };
        Monitor {
            meters,
            fault,
            stop,
            thread,
        }
    }

    fn read(&self) -> Result<f64, String> {
        sample_all(&self.meters, &self.fault);
        if let Some(f) = self.fault.lock().expect("lock").clone() {
            return Err(f);
        }
        Ok(self
            .meters
            .lock()
            .expect("lock")
            .iter()
            .map(|m| m.joules())
            .sum())
    }
}

fn sample_all(meters: &Mutex<Vec<Box<dyn Meter>>>, fault: &Mutex<Option<String>>) {
    for m in meters.lock().expect("lock").iter_mut() {
        if let Err(e) = m.sample() {
            fault.lock().expect("lock").get_or_insert(e.to_string());
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Constants that turn joules into CO2e and money; defaults cited in greenbench-energy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub grid_g_co2e_per_kwh: f64,
    pub grid_source: String,
    pub usd_per_kwh: f64,
    pub price_source: String,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            grid_g_co2e_per_kwh: greenbench_energy::DEFAULT_GRID_G_PER_KWH,
            grid_source: "world average 2023 (Ember, Global Electricity Review 2024)".into(),
            usd_per_kwh: greenbench_energy::DEFAULT_PRICE_USD_PER_KWH,
            price_source: "US average residential 2023 (EIA, Electric Power Annual 2023)".into(),
        }
    }
}

impl Prices {
    /// The cited defaults, with the grid intensity and the price overridden where given.
    pub fn overridden(grid_g_per_kwh: Option<f64>, usd_per_kwh: Option<f64>) -> Prices {
        let mut p = Prices::default();
        if let Some(g) = grid_g_per_kwh {
            p.grid_g_co2e_per_kwh = g;
            p.grid_source = "--grid-g-per-kwh".into();
        }
        if let Some(u) = usd_per_kwh {
            p.usd_per_kwh = u;
            p.price_source = "--price-usd-per-kwh".into();
        }
        p
    }
}

/// The energy side of a run.
pub struct Energy {
    monitor: Option<Monitor>,
    /// Names of the measured meters in use.
    pub measured_names: Vec<String>,
    pub estimate: CpuEstimate,
    /// Idle power of the measured meters, measured before the run.
    pub idle_w: Option<f64>,
    pub prices: Prices,
}

impl Energy {
    /// `meters` may be empty (the estimate is then used).
    pub fn new(meters: Vec<Box<dyn Meter>>, estimate: CpuEstimate, prices: Prices) -> Self {
        let measured_names = meters.iter().map(|m| m.name().to_string()).collect();
        let monitor = (!meters.is_empty()).then(|| Monitor::new(meters));
        Energy {
            monitor,
            measured_names,
            estimate,
            idle_w: None,
            prices,
        }
    }

    /// The energy source of this machine: every readable counter under `sysfs_root` (default
    /// /sys; NVML unless `nvml` is false), else the labelled estimate for `cpu_model`
    /// (`tdp_w` overriding the table); and the status of every meter, readable or not.
    pub fn from_system(
        sysfs_root: Option<std::path::PathBuf>,
        nvml: bool,
        cpu_model: &str,
        tdp_w: Option<f64>,
        prices: Prices,
    ) -> (Energy, Vec<greenbench_energy::MeterStatus>) {
        let fs: Arc<dyn greenbench_energy::SysFs> =
            Arc::new(greenbench_energy::RealFs::new(sysfs_root));
        let (meters, status) = greenbench_energy::discover(fs, nvml);
        let estimate = CpuEstimate::for_cpu(cpu_model, greenbench_energy::Topology::read(), tdp_w);
        (Energy::new(meters, estimate, prices), status)
    }

    /// Whether a counter is read (else figures are estimated).
    pub fn measured(&self) -> bool {
        self.monitor.is_some()
    }

    /// `measured` or `estimated`: the kind every figure from this source carries.
    pub fn kind(&self) -> &'static str {
        if self.measured() {
            "measured"
        } else {
            "estimated"
        }
    }

    /// Read every source now.
    pub fn read(&self) -> Result<Reading, String> {
        let (measured_j, at) = match &self.monitor {
            Some(m) => (Some(m.read()?), Some(Instant::now())),
            None => (None, None),
        };
        Ok(Reading {
            measured_j,
            at,
            process_cpu_s: process_cpu_seconds(),
            machine_busy_s: machine_busy_seconds(),
        })
    }

    /// Joules between two readings: counters where read, else the estimate from CPU time;
    /// net of idle power when it was measured.
    pub fn joules_between(&self, a: &Reading, b: &Reading, seconds: f64) -> Option<f64> {
        match (a.measured_j, b.measured_j) {
            (Some(x), Some(y)) => Some((y - x - self.idle_w.unwrap_or(0.0) * seconds).max(0.0)),
            _ => Some(self.estimate.joules(b.process_cpu_s? - a.process_cpu_s?)),
        }
    }

    /// Measure idle power for `seconds` (measured meters only; the estimate has no idle),
    /// and keep it as the idle every net figure subtracts.
    pub fn measure_idle(&mut self, seconds: f64) -> Result<Option<Idle>, String> {
        let idle = self.idle_power(seconds)?;
        if let Some(i) = idle {
            self.idle_w = Some(i.w);
        }
        Ok(idle)
    }

    /// Idle power over `seconds`, and how busy the rest of the machine was meanwhile, without
    /// changing the idle the run subtracts (for the check after the cells).
    pub fn idle_power(&self, seconds: f64) -> Result<Option<Idle>, String> {
        if self.monitor.is_none() || seconds <= 0.0 {
            return Ok(None);
        }
        let a = self.read()?;
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let b = self.read()?;
        let secs = match (a.at, b.at) {
            (Some(x), Some(y)) => (y - x).as_secs_f64(),
            _ => seconds,
        };
        let w = (b.measured_j.unwrap_or(0.0) - a.measured_j.unwrap_or(0.0)) / secs;
        let busy_cores = match (a.machine_busy_s, b.machine_busy_s) {
            (Some(x), Some(y)) => Some(((y - x) / secs).max(0.0)),
            _ => None,
        };
        Ok(Some(Idle { w, busy_cores }))
    }

    /// Where figures come from, as every cell states it.
    pub fn source(&self) -> String {
        if self.measured() {
            let idle = self
                .idle_w
                .map(|w| format!(", net of {w:.2} W idle measured before the run"))
                .unwrap_or_else(|| ", gross (no idle measured)".into());
            format!("measured: {}{idle}", self.measured_names.join(" + "))
        } else {
            self.estimate.label()
        }
    }
}
