//! Every zoo model x available backend x batch 1 and 32 x precision (fp32, and int8 where the
//! backend runs it). Ids are `model/backend/batch/precision`, so `cargo bench --bench models
//! -- resnet8/cpu/32/int8` filters as expected; throughput is examples/s. Int8 models are
//! quantized as `greenbench run --precision int8` does (32 seeded calibration examples,
//! min/max, fixed-point requantization).
//! `GREENBENCH_MODELS=a.onnx,b.onnx,resnet8 cargo bench --bench models` benches those instead
//! (ONNX files, JSON descriptions or zoo names).

mod common;

use criterion::{BenchmarkId, Throughput};
use greenbench_core::quant::{QuantConfig, quantize};
use greenbench_core::{MODEL_NAMES, Precision, generate_inputs};
use std::time::Instant;

fn main() {
    let mut c = common::criterion();
    let backends = common::backends();
    let names: Vec<String> = match std::env::var("GREENBENCH_MODELS") {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').map(|s| s.trim().to_string()).collect()
        }
        _ => MODEL_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    for name in &names {
        let model = greenbench_onnx::load_model(name, 0, None)
            .unwrap_or_else(|e| panic!("GREENBENCH_MODELS: {e}"));
        let name = &model.name;
        let calibration = generate_inputs(
            &model.graph,
            32,
            0,
            greenbench_harness::runner::CALIBRATION_SET,
        );
        let qm = quantize(
            &model.graph,
            &model.weights,
            &calibration,
            &QuantConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let half = greenbench_core::bf16::model(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut group = c.benchmark_group(name.as_str());
        for backend in &backends {
            for (batch, precision) in [1usize, 32]
                .into_iter()
                .flat_map(|b| Precision::ALL.map(|p| (b, p)))
            {
                if !backend.precisions().contains(&precision) {
                    continue;
                }
                // Four distinct inputs, cycled, as the harness does.
                let inputs: Vec<Vec<f32>> = (0..4)
                    .map(|s| generate_inputs(&model.graph, batch, 0, s))
                    .collect();
                let prepared = match precision {
                    Precision::Fp32 => backend.prepare(&model.graph, &model.weights, batch),
                    Precision::Int8 => backend.prepare_quantized(&qm, batch),
                    Precision::Bf16 => backend.prepare(&half.graph, &half.weights, batch),
                };
                let mut prepared = match prepared {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!(
                            "{name}/{}/{batch}/{precision}: skipped, prepare failed: {e}",
                            backend.name()
                        );
                        continue;
                    }
                };
                group.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(backend.name(), format!("{batch}/{precision}"));
                group.bench_function(id, |b| {
                    // `run` returns only when the output is back on the host (GPU: submitted,
                    // finished and read back), so the timed region is work done, not queued.
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for i in 0..iters {
                            let out = prepared
                                .run(&inputs[i as usize % inputs.len()])
                                .expect("run");
                            std::hint::black_box(out);
                        }
                        start.elapsed()
                    })
                });
            }
        }
        group.finish();
    }
    c.final_summary();
}
