//! `greenbench export`: each model as ONNX (the folded graph, its exact weights) beside a
//! test data set of greenbench's own output, so other runtimes can be checked against it.

use super::{VERSION, load_models};
use anyhow::{Context, Result, bail};
use greenbench_core::quant::{QuantConfig, Requantizer};
use greenbench_core::{Backend, MODEL_NAMES, Precision};
use greenbench_cpu::CpuBackend;
use greenbench_harness::record::write_atomic;
use greenbench_harness::runner::quantize_model;
use std::path::PathBuf;

/// Export models (the folded graph and its exact weights) with an ONNX test data set.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Zoo model names, ONNX files (.onnx) or JSON files, comma-separated, or `all`.
    #[arg(value_delimiter = ',')]
    models: Vec<String>,
    /// The models, spelled as other commands spell them (`--models a,b`).
    #[arg(
        long = "models",
        alias = "model",
        value_delimiter = ',',
        conflicts_with = "models"
    )]
    models_flag: Vec<String>,
    /// Export format: onnx (the only one).
    #[arg(long, default_value = "onnx")]
    format: String,
    /// Output directory: one folder per model (model.onnx, test_data_set_0/, greenbench.json).
    #[arg(long = "out-dir", alias = "out", value_name = "DIR")]
    out: PathBuf,
    /// Seed of the generated weights and the test data set's input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trained weights (safetensors) for the one model given.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Bind a symbolic dimension of an ONNX model's inputs: NAME=SIZE, repeatable and
    /// comma-separated (`--dim sequence=128`); a list sweeps it like --batch
    /// (`--dim sequence=64,128,256`), each size a model of its own (`bert[sequence=128]`).
    /// The leading dimension stays the batch.
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    pub dim: Vec<String>,
    /// fp32, or int8: the quantized model in ONNX's QDQ form (QuantizeLinear /
    /// DequantizeLinear around every uint8 value, per-channel int8 weights), its test data
    /// greenbench's int8 output; or bf16: the weight layers' weights as BFLOAT16 initializers
    /// with a `Cast` to float, their inputs through `Cast` to BFLOAT16 and back (the rounding
    /// bf16 defines), its test data greenbench's bf16 output.
    #[arg(long, default_value = "fp32", value_parser = super::run::parse_precision)]
    precision: Precision,
    /// With --precision int8: seeded calibration examples (as `run --precision int8`).
    #[arg(long, default_value_t = 32, value_parser = super::range::count)]
    calibration: usize,
    /// With --precision int8: fixed (fixed-point, TFLite) or fp32 (XNNPACK, ONNX Runtime).
    #[arg(long, default_value = "fixed", value_parser = super::run::parse_requantizer)]
    requantizer: Requantizer,
}

pub fn run(a: ExportArgs) -> Result<i32> {
    if a.format != "onnx" {
        bail!("unknown export format `{}`; supported: onnx", a.format);
    }
    let given: Vec<String> = a.models.iter().chain(&a.models_flag).cloned().collect();
    let names: Vec<String> = if given.is_empty() || given.iter().any(|m| m == "all") {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        given
    };
    let seed = a.seed;
    let loaded = load_models(&names, seed, a.weights.as_deref(), &a.dim)?;
    let cpu = CpuBackend::on_this_thread(0)?;
    for m in &loaded {
        let dir = a.out.join(&m.name);
        let data = dir.join("test_data_set_0");
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let x = greenbench_core::generate_inputs(&m.graph, 1, seed, 0);
        let (bytes, y, int8) = match a.precision {
            Precision::Fp32 => (
                greenbench_onnx::export(m),
                cpu.prepare(&m.graph, &m.weights, 1)?.run(&x)?.to_vec(),
                None,
            ),
            Precision::Bf16 => {
                let b = greenbench_core::bf16::model(m)
                    .with_context(|| format!("converting {} to bf16", m.name))?;
                (
                    greenbench_onnx::export(&b),
                    cpu.prepare(&b.graph, &b.weights, 1)?.run(&x)?.to_vec(),
                    None,
                )
            }
            Precision::Int8 => {
                let cfg = QuantConfig {
                    requantizer: a.requantizer,
                    ..Default::default()
                };
                let qm = quantize_model(m, &cfg, a.calibration).map_err(anyhow::Error::msg)?;
                let y = cpu.prepare_quantized(&qm, 1)?.run(&x)?.to_vec();
                (greenbench_onnx::export::export_qdq(m, &qm), y, Some(qm))
            }
        };
        let c = m.cost.total;
        // The step of the last uint8 value before the output: what "within one quantization
        // step" means for this model's output.
        let step = int8.as_ref().map(|q| q.output_step());
        let meta = serde_json::json!({
            "name": m.name, "input_shape": m.graph.input.shape,
            "token_vocab": m.graph.input.token_vocab, "output_shape": m.graph.output_shape(),
            "params": c.params, "macs": c.macs, "fpo": c.fpo(),
            "transcendentals": c.transcendentals, "weights_seed": seed,
            "weights_fingerprint": format!("{:016x}", m.weights.fingerprint()),
            "opset": greenbench_onnx::OPSET, "greenbench_version": VERSION,
            "precision": a.precision,
            "output_step": step,
            "requantizer": int8.as_ref().map(|q| q.requantizer),
            "int_ops": int8.as_ref().map(|q| q.cost().0.int_ops),
            "int8_fpo": int8.as_ref().map(|q| q.cost().0.fpo),
        });
        write_atomic(&dir.join("model.onnx"), &bytes)?;
        for (k, t) in greenbench_onnx::input_tensors(&m.graph, 1, &x)
            .iter()
            .enumerate()
        {
            write_atomic(&data.join(format!("input_{k}.pb")), t)?;
        }
        for (k, t) in greenbench_onnx::output_tensors(&m.graph, 1, &y)
            .iter()
            .enumerate()
        {
            write_atomic(&data.join(format!("output_{k}.pb")), t)?;
        }
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
