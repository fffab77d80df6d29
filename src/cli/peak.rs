//! `greenbench peak`: each backend's attainable fp32 rate on a large matmul.

use super::{Bars, make_backends, profile};
use anyhow::Result;
use greenbench_harness::runner::measure_peak;
use greenbench_results::text::peak_line;
use std::sync::atomic::AtomicBool;

/// Measure each backend's attainable peak with a large fp32 matmul.
#[derive(clap::Args)]
pub struct PeakArgs {
    /// Backends to measure, comma-separated: cpu, gpu.
    #[arg(long, alias = "backend", default_value = "cpu", value_delimiter = ',')]
    backends: Vec<String>,
    /// Matrix size n of the n x n x n product.
    #[arg(long, default_value_t = 1024, value_parser = super::range::count)]
    size: usize,
    /// Measuring profile: quick or full.
    #[arg(long, default_value = "quick")]
    profile: String,
    /// CPU worker threads (default: all cores).
    #[arg(long, value_parser = super::range::threads)]
    threads: Option<usize>,
    /// GPU adapter: index or part of the name (see `greenbench devices`).
    #[arg(long)]
    gpu_adapter: Option<String>,
}

pub fn run(a: PeakArgs) -> Result<i32> {
    let profile = profile(&a.profile)?;
    let backends = make_backends(&a.backends, a.threads, a.gpu_adapter.as_deref(), false)?;
    let obs = Bars::default();
    let cancel = AtomicBool::new(false);
    for b in &backends {
        let p = measure_peak(b.as_ref(), a.size, &profile, &cancel, &obs)
            .map_err(|e| anyhow::anyhow!("peak of {}: {e}", b.name()))?;
        println!("{}", peak_line(&p));
    }
    Ok(0)
}
