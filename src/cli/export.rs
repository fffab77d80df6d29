//! `greenbench export`: each model as ONNX (the folded graph, its exact weights) beside a
//! test data set of greenbench's own output, so other runtimes can be checked against it.

use super::{VERSION, load_models};
use anyhow::{Context, Result, bail};
use greenbench_core::{Backend, MODEL_NAMES};
use greenbench_cpu::CpuBackend;
use greenbench_harness::record::write_atomic;
use std::path::PathBuf;

/// Export models (the folded graph and its exact weights) with an ONNX test data set.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Zoo model names, ONNX files (.onnx) or JSON files, comma-separated, or `all`.
    #[arg(value_delimiter = ',')]
    models: Vec<String>,
    #[arg(long, default_value = "onnx")]
    format: String,
    /// Output directory: one folder per model (model.onnx, test_data_set_0/, greenbench.json).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trained weights (safetensors) for the one model given.
    #[arg(long)]
    weights: Option<PathBuf>,
}

pub fn run(a: ExportArgs) -> Result<i32> {
    if a.format != "onnx" {
        bail!("unknown export format `{}`; supported: onnx", a.format);
    }
    let names: Vec<String> = if a.models.is_empty() || a.models.iter().any(|m| m == "all") {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        a.models.clone()
    };
    let seed = a.seed;
    let loaded = load_models(&names, seed, a.weights.as_deref())?;
    let cpu = CpuBackend::on_this_thread(0)?;
    for m in &loaded {
        let dir = a.out.join(&m.name);
        let data = dir.join("test_data_set_0");
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let bytes = greenbench_onnx::export(m);
        let x = greenbench_core::generate_inputs(&m.graph, 1, seed, 0);
        let y = cpu.prepare(&m.graph, &m.weights, 1)?.run(&x)?.to_vec();
        let c = m.cost.total;
        let meta = serde_json::json!({
            "name": m.name, "input_shape": m.graph.input.shape,
            "token_vocab": m.graph.input.token_vocab, "output_shape": m.graph.output_shape(),
            "params": c.params, "macs": c.macs, "fpo": c.fpo(),
            "transcendentals": c.transcendentals, "weights_seed": seed,
            "weights_fingerprint": format!("{:016x}", m.weights.fingerprint()),
            "opset": greenbench_onnx::OPSET, "greenbench_version": VERSION,
        });
        write_atomic(&dir.join("model.onnx"), &bytes)?;
        write_atomic(
            &data.join("input_0.pb"),
            &greenbench_onnx::input_tensor(&m.graph, 1, &x),
        )?;
        write_atomic(
            &data.join("output_0.pb"),
            &greenbench_onnx::output_tensor(&m.graph, 1, &y),
        )?;
        write_atomic(
            &dir.join("greenbench.json"),
            serde_json::to_string_pretty(&meta)?.as_bytes(),
        )?;
        println!(
            "{}: {} ({} bytes)",
            m.name,
            dir.join("model.onnx").display(),
            bytes.len()
        );
    }
    Ok(0)
}
