//! `greenbench list` and `greenbench inspect`: what each model costs per example, counted.

use super::Format;
use anyhow::Result;
use greenbench_core::{MODEL_NAMES, Model};
use greenbench_results::text::{Table, shape, thousands};

/// List the models with input shape, parameters, MACs, FPO and transcendentals per example.
#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Per-layer breakdown of one model: op, output shape, params, MACs, FPO, share.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Zoo model name, or a path to an ONNX file (.onnx) or a JSON model description.
    model: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
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
                    shape(&m.graph.input.shape, m.graph.input.token_vocab),
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
    let m = greenbench_onnx::load_model(&a.model, 0, None)?;
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
        shape(&m.graph.input.shape, m.graph.input.token_vocab)
    );
    print!("{}", t.render());
    println!(
        "transcendentals per example: {}",
        thousands(total.transcendentals)
    );
    Ok(0)
}
