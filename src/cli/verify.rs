//! `greenbench verify`: parity of every backend (`greenbench_harness::parity`), as a table.

use super::{load_models, make_backends, names_or_zoo};
use anyhow::{Context, Result, bail};
use greenbench_core::Model;
use greenbench_cpu::CpuBackend;
use greenbench_harness::parity::check_parity;
use greenbench_results::text::Table;
use std::path::PathBuf;

/// Run models on every available backend from the same inputs and compare each output
/// with the CPU backend's (and the CPU's with the plain-loop reference). Exits 1 on a
/// mismatch beyond tolerance.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Models (zoo names, ONNX files or JSON files). Default: the whole zoo.
    #[arg(long, alias = "model", value_delimiter = ',')]
    models: Vec<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,32", value_delimiter = ',', value_parser = super::range::count)]
    batch: Vec<usize>,
    /// Backends to check. Default: cpu, plus gpu when any adapter (software included) exists.
    #[arg(long, alias = "backend", value_delimiter = ',')]
    backends: Vec<String>,
    /// Largest accepted difference, relative to the output's largest magnitude.
    #[arg(long, default_value_t = 1e-4, value_parser = super::range::positive32)]
    tolerance: f32,
    /// GPU adapter: index or part of the name (see `greenbench devices`).
    #[arg(long)]
    gpu_adapter: Option<String>,
    /// Seed of the generated weights and inputs.
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
    /// ONNX model zoo test data (`DIR/input_0.pb`, `DIR/output_0.pb`; several folders, comma-
    /// separated): each backend's output on the recorded input is compared with the recorded
    /// output. The batch is the test data's own. Needs `.onnx` models.
    #[arg(long, value_delimiter = ',')]
    test_data: Vec<PathBuf>,
    /// Precisions, comma-separated: fp32 (every backend against the reference) and/or int8
    /// (the CPU's int8 path against the quantized reference interpreter, each model quantized
    /// as `run --precision int8` does; a model passes within one quantization step of the
    /// last uint8 value before its output) and/or bf16 (every model converted to bf16, its
    /// error against fp32 printed, every backend against the reference running the same bf16
    /// graph, within at least one bf16 step).
    #[arg(long, default_value = "fp32", value_delimiter = ',', value_parser = super::run::parse_precision)]
    precision: Vec<greenbench_core::Precision>,
}

pub fn run(a: VerifyArgs) -> Result<i32> {
    if !a.test_data.is_empty() {
        return run_test_data(&a);
    }
    let mut code = 0;
    let mut seen = Vec::new();
    for &p in &a.precision {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        code = code.max(match p {
            greenbench_core::Precision::Int8 => run_int8(&a)?,
            greenbench_core::Precision::Fp32 => run_fp32(&a, false)?,
            greenbench_core::Precision::Bf16 => run_fp32(&a, true)?,
        });
    }
    Ok(code)
}

/// `verify` in fp32 (or bf16: every model converted first, `greenbench_core::bf16`, and its
/// error against fp32 stated): every backend against the reference interpreter.
fn run_fp32(a: &VerifyArgs, bf16: bool) -> Result<i32> {
    let mut models = load_models(
        &names_or_zoo(&a.models),
        a.seed,
        a.weights.as_deref(),
        &a.dim,
    )?;
    if bf16 {
        models = bf16_against_fp32(&models, a.seed)?;
    }
    let mut backends = make_backends(&a.backends, None, a.gpu_adapter.as_deref(), true)?;
    // The CPU backend is the baseline every other backend is compared with.
    if !backends.iter().any(|b| b.name() == "cpu") {
        backends.insert(0, Box::new(CpuBackend::on_this_thread(0)?));
    }
    for b in &backends {
        let d = b.device();
        eprintln!("{}: {} ({:?})", b.name(), d.name, d.kind);
    }
    // In bf16 a value one fp32 bit off the reference's before a rounding may round to the
    // neighbouring bf16: whole models are held to one bf16 step of the output's scale.
    let tolerance = if bf16 {
        a.tolerance.max(BF16_STEP)
    } else {
        a.tolerance
    };
    let checks = check_parity(&models, &a.batch, &backends, tolerance, a.seed);
    let mut t =
        Table::new("model|>batch|backend|compared with|>max abs diff|>max rel diff|verdict");
    for c in &checks {
        let (abs, rel, verdict) = match &c.outcome {
            Ok(d) => (
                format!("{:.2e}", d.max_abs),
                format!("{:.2e}", d.max_rel),
                if c.ok { "ok" } else { "MISMATCH" }.to_string(),
            ),
            Err(e) => ("-".into(), "-".into(), format!("FAILED: {e}")),
        };
        t.row(vec![
            c.model.clone(),
            c.batch.to_string(),
            c.backend.clone(),
            c.against.name().to_string(),
            abs,
            rel,
            verdict,
        ]);
    }
    print!("{}", t.render());
    let bad = checks.iter().filter(|c| !c.ok).count();
    println!(
        "tolerance: {:e} of the output's largest magnitude{}; {} check(s) failed",
        tolerance,
        if bf16 {
            " (bf16: at least one bf16 step, 2^-8, since a last-bit difference before a rounding can flip it)"
        } else {
            ""
        },
        bad
    );
    Ok(if bad > 0 { 1 } else { 0 })
}

/// One bf16 step relative to a value's magnitude (8 significant bits): the whole-model
/// tolerance of `verify --precision bf16`.
const BF16_STEP: f32 = 1.0 / 256.0;

/// `models` in bf16, after printing each one's reference output in bf16 against fp32 (one
/// batch of 4 generated examples): the precision's own error, besides the backends' check.
fn bf16_against_fp32(models: &[Model], seed: u64) -> Result<Vec<Model>> {
    let mut t = Table::new("model|precision|>cosine vs fp32|>max rel vs fp32");
    let mut out = Vec::with_capacity(models.len());
    for m in models {
        let b = greenbench_core::bf16::model(m)
            .with_context(|| format!("converting {} to bf16", m.name))?;
        let x = greenbench_core::generate_inputs(&m.graph, 4, seed, 0);
        let y32 = greenbench_core::reference::run_reference(&m.graph, &m.weights, &x, 4);
        let y16 = greenbench_core::reference::run_reference(&b.graph, &b.weights, &x, 4);
        let d = greenbench_core::reference::diff(&y16, &y32);
        t.row(vec![
            m.name.clone(),
            "bf16".into(),
            format!("{:.6}", greenbench_core::reference::cosine(&y16, &y32)),
            format!("{:.2e}", d.max_rel),
        ]);
        out.push(b);
    }
    print!("{}", t.render());
    println!(
        "bf16: weight layers on bf16 operands (weights and their inputs rounded to nearest, ties to even), fp32 products and sums; each backend below is checked against the reference interpreter running the same bf16 graph"
    );
    Ok(out)
}

/// `verify --test-data`: every backend (and the reference interpreter) against the output the
/// test data records.
fn run_test_data(a: &VerifyArgs) -> Result<i32> {
    if a.models.is_empty() {
        bail!("--test-data needs the ONNX model it belongs to: --models model.onnx");
    }
    for m in &a.models {
        if !m.to_ascii_lowercase().ends_with(".onnx") {
            bail!("--test-data checks ONNX files; `{m}` is not a .onnx path");
        }
    }
    // Each test data set binds the model's symbolic dimensions to its own shapes; an
    // explicit --dim must agree with them.
    let given = greenbench_onnx::import::DimSweep::parse(&a.dim).map_err(anyhow::Error::msg)?;
    let mut imported = vec![];
    for m in &a.models {
        let path = std::path::Path::new(m);
        for dir in &a.test_data {
            let dims =
                greenbench_onnx::testdata::dims_from(path, dir).map_err(anyhow::Error::msg)?;
            for (name, sizes) in &given.0 {
                if let Some(&v) = dims.get(name)
                    && !sizes.contains(&v)
                {
                    bail!(
                        "--dim {name}={}: the test data in {} has {name}={v}",
                        sizes
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        dir.display()
                    );
                }
            }
            imported.push((
                greenbench_onnx::import::import_file_with(path, a.seed, &dims)?,
                dir,
            ));
        }
    }
    let backends = make_backends(&a.backends, None, a.gpu_adapter.as_deref(), true)?;
    for b in &backends {
        let d = b.device();
        eprintln!("{}: {} ({:?})", b.name(), d.name, d.kind);
    }
    let mut t = Table::new("model|test data|>batch|backend|>max abs diff|>max rel diff|verdict");
    let mut bad = 0;
    let mut any_bf16 = false;
    for (imp, dir) in &imported {
        let td = greenbench_onnx::testdata::read(imp, dir).map_err(anyhow::Error::msg)?;
        // A bf16 model (its Casts to BFLOAT16 imported as roundings) is held to one bf16
        // step, as `verify --precision bf16` holds the zoo.
        let bf16 = greenbench_core::bf16::is_converted(&imp.model.graph);
        any_bf16 |= bf16;
        let tolerance = if bf16 {
            a.tolerance.max(BF16_STEP)
        } else {
            a.tolerance
        };
        let mut runs: Vec<(String, Option<&dyn greenbench_core::Backend>)> =
            vec![("reference".into(), None)];
        runs.extend(
            backends
                .iter()
                .map(|b| (b.name().to_string(), Some(b.as_ref()))),
        );
        for (name, b) in runs {
            let (abs, rel, verdict) = match greenbench_onnx::testdata::check(imp, &td, b) {
                Ok(d) => {
                    let ok = d.max_rel <= tolerance;
                    bad += usize::from(!ok);
                    (
                        format!("{:.2e}", d.max_abs),
                        format!("{:.2e}", d.max_rel),
                        if ok { "ok" } else { "MISMATCH" }.to_string(),
                    )
                }
                Err(e) => {
                    bad += 1;
                    ("-".into(), "-".into(), format!("FAILED: {e}"))
                }
            };
            t.row(vec![
                imp.model.name.clone(),
                dir.display().to_string(),
                td.batch.to_string(),
                name,
                abs,
                rel,
                verdict,
            ]);
        }
    }
    print!("{}", t.render());
    println!(
        "compared with the recorded outputs (output_0.pb, ... one per model output); tolerance: {:e} of the output's largest magnitude{}; {} check(s) failed",
        a.tolerance,
        if any_bf16 {
            format!(
                " ({:e} for bf16 models: a last-bit difference before a rounding to bf16 can flip it)",
                a.tolerance.max(BF16_STEP)
            )
        } else {
            String::new()
        },
        bad
    );
    Ok(if bad > 0 { 1 } else { 0 })
}

/// `verify --precision int8`: the CPU's int8 path against the quantized reference.
fn run_int8(a: &VerifyArgs) -> Result<i32> {
    use greenbench_core::Backend;
    use greenbench_core::quant::{QuantConfig, run_reference_q};
    let models = load_models(
        &names_or_zoo(&a.models),
        a.seed,
        a.weights.as_deref(),
        &a.dim,
    )?;
    let cpu = CpuBackend::on_this_thread(0)?;
    let mut t = Table::new(
        "model|>batch|precision|>max abs diff|>output step|verdict|>cosine vs fp32|>max rel vs fp32",
    );
    let mut firsts = std::collections::BTreeSet::new();
    let mut bad = 0;
    for m in &models {
        let qm = greenbench_harness::runner::quantize_model(m, &QuantConfig::default(), 32)
            .map_err(anyhow::Error::msg)?;
        // One step per output: a packed model's outputs each within their own.
        let steps = qm.output_steps();
        let parts = m.graph.output_parts();
        for &batch in &a.batch {
            let x = greenbench_core::generate_inputs(&m.graph, batch, a.seed, 1);
            let want = run_reference_q(&qm, &x, batch);
            let got = cpu
                .prepare_quantized(&qm, batch)
                .and_then(|mut p| p.run(&x).map(|y| y.to_vec()));
            // What int8 costs in accuracy: its output against fp32's, on the first output
            // (a transformer's last hidden state).
            let (cos, rel) = match &got {
                Ok(y) => {
                    let fp32 =
                        greenbench_core::reference::run_reference(&m.graph, &m.weights, &x, batch);
                    firsts.insert(parts[0].0.clone());
                    let (a, b) = (part(&parts, y, 0), part(&parts, &fp32, 0));
                    let d = greenbench_core::reference::diff(&a, &b);
                    (
                        format!("{:.5}", greenbench_core::reference::cosine(&a, &b)),
                        format!("{:.2e}", d.max_rel),
                    )
                }
                Err(_) => ("-".into(), "-".into()),
            };
            let (abs, verdict) = match got {
                Ok(y) => {
                    let diffs: Vec<f32> = (0..parts.len())
                        .map(|k| {
                            let (g, w) = (part(&parts, &y, k), part(&parts, &want, k));
                            greenbench_core::reference::diff(&g, &w).max_abs
                        })
                        .collect();
                    let ok = diffs
                        .iter()
                        .zip(&steps)
                        .all(|(d, s)| *d <= s * 1.0001 + 1e-6);
                    bad += usize::from(!ok);
                    (
                        slashed(&diffs),
                        if ok { "ok" } else { "MISMATCH" }.to_string(),
                    )
                }
                Err(e) => {
                    bad += 1;
                    ("-".into(), format!("FAILED: {e}"))
                }
            };
            t.row(vec![
                m.name.clone(),
                batch.to_string(),
                "int8".into(),
                abs,
                slashed(&steps),
                verdict,
                cos,
                rel,
            ]);
        }
    }
    print!("{}", t.render());
    println!(
        "cpu int8 against the quantized reference interpreter, each output within one step of the last uint8 value it depends on (a/b: per output); {bad} check(s) failed"
    );
    println!(
        "vs fp32: int8's error against the fp32 reference on the first output ({}): cosine similarity, and the largest difference over the output's largest magnitude",
        firsts.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(if bad > 0 { 1 } else { 0 })
}

/// Output `k` of several packed ones, for a batch (`y`: the packed outputs).
fn part(parts: &[(String, Vec<usize>)], y: &[f32], k: usize) -> Vec<f32> {
    let lens: Vec<usize> = parts.iter().map(|(_, s)| s.iter().product()).collect();
    greenbench_onnx::unpack(y, &lens).swap_remove(k)
}

/// Figures per output, `a/b` for several.
fn slashed(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:.2e}"))
        .collect::<Vec<_>>()
        .join("/")
}
