//! Where a GPU cell's device time goes: each dispatch's device time (median of 20 runs), for
//! zoo models and for the peak's square matrix product. A diagnostic for developers, not a
//! measurement for tables (each dispatch runs in a pass of its own).
//!
//! `cargo run --release -p greenbench-gpu --example dispatch_profile -- MODELS BATCHES [SIZES]`
//! e.g. `-- mlp,resnet8 1,32 1024,4096` (SIZES: square matmuls, optional).

use greenbench_core::Model;
use greenbench_core::weights::generate_inputs;
use greenbench_gpu::{DispatchTime, GpuBackend};

fn list(arg: Option<&String>) -> Vec<String> {
    arg.map(|s| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

fn print(title: &str, flop: f64, times: &[DispatchTime]) {
    let total: f64 = times.iter().map(|t| t.median.as_secs_f64()).sum();
    println!(
        "== {title}: {} dispatches, sum {:.1} us{}",
        times.len(),
        total * 1e6,
        if flop > 0.0 {
            format!(", {:.1} GFLOP/s", flop / total / 1e9)
        } else {
            String::new()
        }
    );
    for (i, t) in times.iter().enumerate() {
        let us = t.median.as_secs_f64() * 1e6;
        println!(
            "{i:>4}  {:<24} groups {:>6} x {:<6} {us:>10.1} us  {:>5.1} %",
            t.entry,
            t.groups.0,
            t.groups.1,
            100.0 * t.median.as_secs_f64() / total.max(1e-12)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (models, batches, sizes) = (list(args.first()), list(args.get(1)), list(args.get(2)));
    let gpu = match GpuBackend::new(None) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: no GPU backend: {e}");
            std::process::exit(1);
        }
    };
    println!("adapter: {}", gpu.adapter().name);
    for name in &models {
        let m = Model::load(name, 0).unwrap_or_else(|e| {
            eprintln!("error: {name}: {e}");
            std::process::exit(1);
        });
        for b in &batches {
            let b: usize = b.parse().expect("a batch size");
            let input = generate_inputs(&m.graph, b, 0, 0);
            match gpu.profile_dispatches(&m.graph, &m.weights, b, &input, 20) {
                Ok(t) => print(&format!("{name} batch {b}"), 0.0, &t),
                Err(e) => eprintln!("error: {name} batch {b}: {e}"),
            }
        }
    }
    for s in &sizes {
        let n: usize = s.parse().expect("a matrix size");
        match gpu.profile_matmul((n, n, n), 20) {
            Ok(t) => print(&format!("matmul {n}^3"), 2.0 * (n as f64).powi(3), &t),
            Err(e) => eprintln!("error: matmul {n}: {e}"),
        }
    }
}
