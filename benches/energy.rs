//! Joules as a criterion measurement: criterion's statistics applied to energy per iteration,
//! for every zoo model on the CPU backend at batch 32 (throughput: examples per joule).
//!
//! The value is read from the energy counters greenbench-energy finds (RAPL package + DRAM,
//! NVML, hwmon), sampled at the start and end of each criterion sample. Where no counter is
//! readable this bench says so and measures nothing, rather than falling back to an estimate
//! silently; GREENBENCH_BENCH_ENERGY_ESTIMATE=1 benches the *estimate* instead (process CPU
//! time x watts per core), and every id then says `estimated`.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput};
use greenbench_core::{Backend, Model, generate_inputs};
use greenbench_cpu::CpuBackend;
use greenbench_energy::estimate::process_cpu_seconds;
use greenbench_energy::{CpuEstimate, Meter, RealFs, discover};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the joules come from.
enum Source {
    Counters(Mutex<Vec<Box<dyn Meter>>>),
    Estimate(CpuEstimate),
}

/// Criterion measurement whose value is joules.
struct Joules {
    source: Source,
}

impl Joules {
    fn read(&self) -> f64 {
        match &self.source {
            Source::Counters(m) => {
                let mut meters = m.lock().expect("lock");
                for meter in meters.iter_mut() {
                    if let Err(e) = meter.sample() {
                        panic!("energy counter failed mid-bench: {e}");
                    }
                }
                meters.iter().map(|m| m.joules()).sum()
            }
            Source::Estimate(e) => e.joules(process_cpu_seconds().expect("process CPU time")),
        }
    }
}

impl Measurement for Joules {
    type Intermediate = f64;
    type Value = f64;
    fn start(&self) -> f64 {
        self.read()
    }
    fn end(&self, start: f64) -> f64 {
        (self.read() - start).max(0.0)
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &JoulesFormatter
    }
}

struct JoulesFormatter;

impl ValueFormatter for JoulesFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (k, unit) = if typical >= 1.0 {
            (1.0, "J")
        } else if typical >= 1e-3 {
            (1e3, "mJ")
        } else {
            (1e6, "uJ")
        };
        values.iter_mut().for_each(|v| *v *= k);
        unit
    }
    fn scale_throughputs(&self, typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) => *n as f64,
            _ => 1.0,
        };
        // values are joules per iteration -> examples per joule
        values.iter_mut().for_each(|v| *v = n / *v);
        let _ = typical;
        "examples/J"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "J"
    }
}

fn main() {
    let (meters, status) = discover(Arc::new(RealFs::new(None)), true);
    let estimate = std::env::var("GREENBENCH_BENCH_ENERGY_ESTIMATE").as_deref() == Ok("1");
    let (source, tag) = if !meters.is_empty() {
        eprintln!(
            "energy bench: measured by {}",
            meters
                .iter()
                .map(|m| m.name().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        (Source::Counters(Mutex::new(meters)), "measured")
    } else if estimate {
        let machine =
            greenbench_harness::env::fingerprint(&greenbench_harness::build_info!("bench"));
        let e = CpuEstimate::for_cpu(
            &machine.cpu_model,
            greenbench_energy::Topology::read(),
            None,
        );
        eprintln!("energy bench: ESTIMATED joules ({})", e.label());
        (Source::Estimate(e), "estimated")
    } else {
        eprintln!("energy bench: no readable energy counter, so nothing is measured:");
        for s in status.iter().filter(|s| !s.available) {
            eprintln!("  {}: {}", s.name, s.detail);
        }
        eprintln!(
            "  (`greenbench meters` says how to enable one; GREENBENCH_BENCH_ENERGY_ESTIMATE=1 benches the labelled estimate instead)"
        );
        return;
    };
    let mut c = Criterion::default()
        .with_measurement(Joules { source })
        .without_plots()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let cpu = CpuBackend::on_this_thread(0).expect("cpu backend");
    let mut group = c.benchmark_group(format!("energy-{tag}"));
    for name in greenbench_core::MODEL_NAMES {
        let m = Model::load(name, 0).expect("zoo model");
        let batch = 32;
        let x = generate_inputs(&m.graph, batch, 0, 0);
        let mut p = cpu.prepare(&m.graph, &m.weights, batch).expect("prepare");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new(format!("{name}/cpu"), batch), |b| {
            b.iter(|| std::hint::black_box(p.run(&x).expect("run").len()))
        });
    }
    group.finish();
    c.final_summary();
}
