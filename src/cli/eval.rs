//! `greenbench eval`: test accuracy of a model in a precision, on real data, as the CPU
//! backend computes it (the function that is timed is the function that is scored).

use super::Format;
use super::run::{parse_calibration, parse_precision, parse_requantizer};
use anyhow::{Context, Result, bail};
use greenbench_core::quant::{Calibration, QuantConfig, Requantizer, quantize};
use greenbench_core::{Backend, Model, Precision};
use greenbench_cpu::CpuBackend;
use greenbench_train::data::Dataset;
use greenbench_train::setup::{fit_to_model, load_dataset};
use std::path::PathBuf;

/// Test accuracy of a model in one or more precisions (fp32, int8, bf16) on a dataset's test
/// split (the split `greenbench train` holds out for the same --seed). Int8 is calibrated
/// on real training examples.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Zoo model name (or a JSON description / ONNX file whose input fits the dataset).
    #[arg(long, alias = "models")]
    model: String,
    /// Trained weights (safetensors from `greenbench train --save`); without them the
    /// seeded (untrained) weights are scored, and the output says what that means.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Bind a symbolic dimension of an ONNX model's inputs: NAME=SIZE, repeatable and
    /// comma-separated (`--dim sequence=128`); one size per name here.
    /// The leading dimension stays the batch.
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    pub dim: Vec<String>,
    /// digits (shipped), mnist or cifar10 (files in --data-dir).
    #[arg(long, default_value = "digits")]
    dataset: String,
    /// Folder of the MNIST IDX files or CIFAR-10 binary batches (with --dataset mnist or cifar10).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A folder holding the shipped datasets (digits/digits.csv.gz) to read instead of the
    /// copy built into the binary.
    #[arg(long)]
    datasets_dir: Option<PathBuf>,
    /// Precisions, comma-separated.
    #[arg(long, default_value = "fp32", value_delimiter = ',', value_parser = parse_precision)]
    precision: Vec<Precision>,
    /// Training examples int8 calibration reads activation ranges from.
    #[arg(long, default_value_t = 256, value_parser = super::range::count)]
    calibration: usize,
    /// int8 calibration of activation ranges: minmax or percentile:P (50 < P <= 100; docs/INT8.md).
    #[arg(long, default_value = "minmax", value_parser = parse_calibration)]
    calibration_method: Calibration,
    /// int8 requantizer: fixed (fixed-point, TFLite) or fp32 (XNNPACK, ONNX Runtime).
    #[arg(long, default_value = "fixed", value_parser = parse_requantizer)]
    requantizer: Requantizer,
    /// Seed of the train/test split (as `greenbench train --seed`) and of seeded weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads.
    #[arg(long, default_value_t = 1, value_parser = super::range::threads)]
    threads: usize,
    /// Output: table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// One precision's score.
#[derive(serde::Serialize)]
struct Score {
    model: String,
    dataset: String,
    precision: Precision,
    /// Fraction of the test split classified right.
    accuracy: f64,
    examples: usize,
    trained: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_examples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requantizer: Option<Requantizer>,
}

pub fn run(a: EvalArgs) -> Result<i32> {
    let model = super::load_one(&a.model, a.seed, a.weights.as_deref(), &a.dim)?;
    let classes = model.graph.output_len();
    let d = load_dataset(&a.dataset, a.data_dir.as_deref(), a.datasets_dir.as_deref())?;
    let (fitted, _) = fit_to_model(d, &model.graph, classes)?;
    let (train, test) = fitted.split(0.2, a.seed);
    if test.is_empty() {
        bail!("{}: the test split is empty", fitted.name);
    }
    let cpu = CpuBackend::new(a.threads)?;
    let mut precisions = a.precision.clone();
    precisions.dedup();
    let mut scores = Vec::new();
    let cfg = QuantConfig {
        calibration: a.calibration_method,
        requantizer: a.requantizer,
    };
    for &p in &precisions {
        let n = a.calibration.min(train.len()).max(1);
        let accuracy = score(&cpu, &model, p, &train, &test, &cfg, n)?;
        let calib = (p == Precision::Int8).then_some(n);
        scores.push(Score {
            model: model.name.clone(),
            dataset: fitted.name.clone(),
            precision: p,
            accuracy,
            examples: test.len(),
            trained: a.weights.is_some(),
            calibration_examples: calib,
            requantizer: calib.map(|_| a.requantizer),
        });
    }
    match a.format {
        Format::Json if scores.len() == 1 => {
            println!("{}", serde_json::to_string_pretty(&scores[0])?)
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&scores)?),
        Format::Table => {
            for s in &scores {
                println!(
                    "{} on {} ({} test examples), {}: accuracy {:.2} %{}",
                    s.model,
                    s.dataset,
                    s.examples,
                    s.precision,
                    100.0 * s.accuracy,
                    match s.calibration_examples {
                        Some(n) => format!(
                            " (calibrated on {n} training examples, {} requantizer)",
                            a.requantizer.name()
                        ),
                        None => String::new(),
                    }
                );
            }
            if let Some(f) = scores.iter().find(|s| s.precision == Precision::Fp32) {
                for q in scores.iter().filter(|s| s.precision != Precision::Fp32) {
                    println!(
                        "{} - fp32: {:+.2} points",
                        q.precision,
                        100.0 * (q.accuracy - f.accuracy)
                    );
                }
            }
            if a.weights.is_none() {
                println!(
                    "note: these are seeded, untrained weights: their accuracy (chance is {:.2} % on {} classes) is no measure of the model; train first: greenbench train --model {} --save w.safetensors, then --weights w.safetensors",
                    100.0 / classes as f64,
                    classes,
                    a.model
                );
            }
        }
    }
    Ok(0)
}

/// `m`'s accuracy on `test` in precision `p` (int8: calibrated on the first `calibration`
/// examples of `train`), as the CPU backend computes it.
pub(crate) fn score(
    cpu: &CpuBackend,
    m: &Model,
    p: Precision,
    train: &Dataset,
    test: &Dataset,
    cfg: &QuantConfig,
    calibration: usize,
) -> Result<f64> {
    match p {
        Precision::Fp32 => accuracy(cpu, m, None, test),
        Precision::Bf16 => {
            let b = greenbench_core::bf16::model(m)
                .with_context(|| format!("converting {} to bf16", m.name))?;
            accuracy(cpu, &b, None, test)
        }
        Precision::Int8 => {
            let n = calibration.min(train.len()).max(1);
            let x = &train.images[..n * train.example_len()];
            let qm = quantize(&m.graph, &m.weights, x, cfg)
                .with_context(|| format!("quantizing {}", m.name))?;
            accuracy(cpu, m, Some(&qm), test)
        }
    }
}

/// Fraction of `test` the CPU backend classifies right, in fp32 or (with `qm`) int8.
fn accuracy(
    cpu: &CpuBackend,
    m: &Model,
    qm: Option<&greenbench_core::QModel>,
    test: &Dataset,
) -> Result<f64> {
    let n = test.example_len();
    let classes = m.graph.output_len();
    let mut right = 0;
    let full = 64;
    for start in (0..test.len()).step_by(full) {
        let batch = (test.len() - start).min(full);
        let mut p = match qm {
            None => cpu.prepare(&m.graph, &m.weights, batch)?,
            Some(q) => cpu.prepare_quantized(q, batch)?,
        };
        let out = p.run(&test.images[start * n..(start + batch) * n])?;
        for (j, row) in out.chunks(classes).enumerate() {
            let pred = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |p| p.0);
            right += usize::from(pred == test.labels[start + j] as usize);
        }
    }
    Ok(right as f64 / test.len() as f64)
}
