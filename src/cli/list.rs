//! `greenbench list` and `greenbench inspect`: what each model costs per example, counted.

use super::Format;
use anyhow::Result;
use greenbench_core::quant::{QNode, QuantConfig};
use greenbench_core::{MODEL_NAMES, Model, Precision};
use greenbench_results::text::{Table, input_label, shape, thousands};

/// List the models with input shape, parameters, MACs, FPO and transcendentals per example.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Output: table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Per-layer breakdown of one model: op, output shape, params, MACs, FPO, share.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Zoo model name, or a path to an ONNX file (.onnx) or a JSON model description.
    #[arg(required_unless_present = "model_flag")]
    model: Option<String>,
    /// The model, spelled as other commands spell it (`--model M`).
    #[arg(
        long = "model",
        alias = "models",
        conflicts_with = "model",
        value_name = "MODEL"
    )]
    model_flag: Option<String>,
    /// Output: table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Count the model as it runs in this precision: int8 adds a per-layer precision column
    /// (layers that cannot be quantized stay fp32 and say so) and integer operations apart
    /// from FPO (docs/INT8.md).
    #[arg(long, default_value = "fp32", value_parser = super::run::parse_precision)]
    precision: Precision,
    /// With --precision int8: seeded calibration examples.
    #[arg(long, default_value_t = 32, value_parser = super::range::count)]
    calibration: usize,
    /// Bind a symbolic dimension of an ONNX model's inputs: NAME=SIZE, repeatable and
    /// comma-separated (`--dim sequence=128`); one size per name here.
    /// The leading dimension stays the batch.
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    dim: Vec<String>,
    /// Time each step of the CPU backend's plan (a step may compute several fused layers):
    /// where the model's time goes, per example, against the whole run untimed. A diagnosis,
    /// not a measured cell.
    #[arg(long)]
    time: bool,
    /// With --time: the batch size.
    #[arg(long, default_value_t = 32, value_parser = super::range::count, requires = "time")]
    batch: usize,
    /// With --time: CPU worker threads. With more than one, a batch of at least two examples
    /// a thread is split across them (each step's time summed over the threads); a smaller
    /// batch runs as a thread team, whose steps are not timed.
    #[arg(long, default_value_t = 1, value_parser = super::range::threads, requires = "time")]
    threads: usize,
    /// With --time: seconds of runs, untimed and then timed.
    #[arg(long, default_value_t = 1.0, value_parser = super::range::positive, requires = "time")]
    seconds: f64,
}

pub fn list(a: ListArgs) -> Result<i32> {
    let models: Vec<Model> = MODEL_NAMES
        .iter()
        .map(|n| Model::load(n, 0))
        .collect::<Result<_, _>>()?;
    match a.format {
        Format::Json => {
            let v: Vec<serde_json::Value> = models
                .iter()
                .map(|m| {
                    let c = m.cost.total;
                    serde_json::json!({
                        "name": m.name,
                        "input_shape": m.graph.input.shape,
                        "inputs": m.graph.input.parts,
                        "params": c.params,
                        "macs": c.macs,
                        "fpo": c.fpo(),
                        "transcendentals": c.transcendentals,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table => {
            let mut t =
                Table::new("model|input|>params|>MACs/example|>FPO/example|>transcendentals");
            for m in &models {
                let c = m.cost.total;
                t.row(vec![
                    m.name.clone(),
                    input_label(&m.graph.input),
                    thousands(c.params),
                    thousands(c.macs),
                    thousands(c.fpo()),
                    thousands(c.transcendentals),
                ]);
            }
            print!("{}", t.render());
            println!(
                "FPO = 2 x MACs + other FPO (bias, activations, pooling, softmax, norms); \
                 transcendentals (exp, tanh, rsqrt) counted apart. Batch norm folded."
            );
        }
    }
    Ok(0)
}

pub fn inspect(a: InspectArgs) -> Result<i32> {
    let name = a
        .model
        .clone()
        .or(a.model_flag.clone())
        .expect("clap requires one");
    let mut m = super::load_one(&name, 0, None, &a.dim)?;
    if a.time {
        let r = super::steps::StepRun {
            precision: a.precision,
            batch: a.batch,
            threads: a.threads,
            seconds: a.seconds,
            calibration: a.calibration,
            format: a.format,
        };
        return super::steps::time_steps(&m, &r);
    }
    if a.precision == Precision::Int8 {
        return inspect_int8(&m, &a);
    }
    // bf16: the graph as it runs, a rounding (0 FPO) before each weight layer's input.
    if a.precision == Precision::Bf16 {
        m = greenbench_core::bf16::model(&m)?;
    }
    if let Format::Json = a.format {
        println!("{}", serde_json::to_string_pretty(&m.cost)?);
        return Ok(0);
    }
    let total = m.cost.total;
    let mut t = Table::new("layer|op|output|>params|>MACs|>FPO|>share of FPO");
    for n in &m.cost.nodes {
        t.row(vec![
            n.name.clone(),
            n.label.clone(),
            shape(&n.output_shape, None),
            thousands(n.cost.params),
            thousands(n.cost.macs),
            thousands(n.cost.fpo()),
            format!("{:.1} %", 100.0 * n.cost.fpo() as f64 / total.fpo() as f64),
        ]);
    }
    t.row(vec![
        "total".into(),
        String::new(),
        shape(m.graph.output_shape(), None),
        thousands(total.params),
        thousands(total.macs),
        thousands(total.fpo()),
        "100.0 %".into(),
    ]);
    println!(
        "{} — input {}, per example; FPO = 2 x MACs + other FPO",
        m.name,
        input_label(&m.graph.input)
    );
    print!("{}", t.render());
    println!(
        "transcendentals per example: {}",
        thousands(total.transcendentals)
    );
    Ok(0)
}

/// `inspect --precision int8`: the model as quantized for int8 (seeded calibration), per
/// layer its precision, MACs, the FPO left and the integer operations.
fn inspect_int8(m: &Model, a: &InspectArgs) -> Result<i32> {
    let qm = greenbench_harness::runner::quantize_model(m, &QuantConfig::default(), a.calibration)
        .map_err(anyhow::Error::msg)?;
    let (total, per) = qm.cost();
    let label = |i: usize| {
        let base = m.cost.nodes[i].label.clone();
        match &qm.nodes[i] {
            QNode::Linear(l) => match l.fused {
                Some(f) => format!("{base} + {f} (fused)"),
                None => base,
            },
            QNode::Alias => format!("{base} (in the producer's clamp, or a view)"),
            _ => base,
        }
    };
    if let Format::Json = a.format {
        let nodes: Vec<serde_json::Value> = (0..per.len())
            .map(|i| {
                serde_json::json!({
                    "name": m.cost.nodes[i].name,
                    "label": label(i),
                    "precision": qm.nodes[i].precision(),
                    "output_shape": m.cost.nodes[i].output_shape,
                    "cost": per[i],
                })
            })
            .collect();
        let v = serde_json::json!({
            "precision": Precision::Int8,
            "calibration_examples": qm.calibration_examples,
            "total": total,
            "nodes": nodes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut t = Table::new("layer|op|precision|output|>params|>MACs|>FPO|>int ops");
    for (i, c) in per.iter().enumerate() {
        t.row(vec![
            m.cost.nodes[i].name.clone(),
            label(i),
            qm.nodes[i].precision().to_string(),
            shape(&m.cost.nodes[i].output_shape, None),
            thousands(c.params),
            thousands(c.macs),
            thousands(c.fpo),
            thousands(c.int_ops),
        ]);
    }
    t.row(vec![
        "total".into(),
        String::new(),
        String::new(),
        shape(m.graph.output_shape(), None),
        thousands(total.params),
        thousands(total.macs),
        thousands(total.fpo),
        thousands(total.int_ops),
    ]);
    let (n8, n32) = qm.counts();
    println!(
        "{} in int8 — input {}, per example; {n8} layers int8, {n32} fp32 (with quantize / \
         dequantize at their borders); {} of {} MACs in int8",
        m.name,
        input_label(&m.graph.input),
        thousands(total.int8_macs),
        thousands(total.macs),
    );
    print!("{}", t.render());
    println!(
        "FPO: the floating-point part only (fp32 layers, quantize / dequantize); int ops: 2 x \
         int8 MACs + requantization, pools, adds, borders (docs/INT8.md). Transcendentals: {}",
        thousands(total.transcendentals)
    );
    Ok(0)
}
