//! What the benches share: the backends this machine has, and criterion's settings.

use criterion::Criterion;
use greenbench_core::Backend;
use greenbench_cpu::CpuBackend;
use greenbench_gpu::GpuBackend;
use std::time::Duration;

/// The CPU backend (all cores), plus the GPU backend when an adapter exists (a software one
/// too: its bench ids still say `gpu`, and the line below says it is software). Without an
/// adapter, one line says the GPU benches are skipped.
pub fn backends() -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![Box::new(
        CpuBackend::on_this_thread(0).expect("cpu backend"),
    )];
    match GpuBackend::new(std::env::var("GREENBENCH_GPU_ADAPTER").ok().as_deref()) {
        Ok(g) => {
            let a = g.adapter();
            eprintln!(
                "gpu benches on {}{}",
                a.name,
                if a.software {
                    " (software adapter: a CPU emulating a GPU, not GPU speed)"
                } else {
                    ""
                }
            );
            v.push(Box::new(g));
        }
        Err(e) => eprintln!("skipping GPU benches: {e}"),
    }
    v
}

/// Deliberate defaults so a plain `cargo bench` stays well inside 15 minutes on a 2-core
/// laptop; GREENBENCH_BENCH_SECONDS=N gives each benchmark N seconds of measurement (and
/// 50 samples) for a steadier set.
pub fn criterion() -> Criterion {
    let secs: f64 = std::env::var("GREENBENCH_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let samples = if secs > 1.0 { 50 } else { 10 };
    // Plots are off (`cargo bench` spends seconds per benchmark drawing them; criterion's
    // JSON estimates under target/criterion are kept), and 10k bootstrap resamples are plenty
    // for 10-50 samples.
    Criterion::default()
        .without_plots()
        .nresamples(10_000)
        .sample_size(samples)
        .warm_up_time(Duration::from_secs_f64((secs / 2.0).max(0.3)))
        .measurement_time(Duration::from_secs_f64(secs))
        .configure_from_args()
}
