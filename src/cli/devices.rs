//! `greenbench devices`: the GPU adapters wgpu can see, software ones labelled.

use super::Format;
use anyhow::Result;
use greenbench_gpu::{NO_ADAPTER_HELP, adapters};
use greenbench_results::text::Table;

/// List the GPU adapters wgpu can see (name, backend, device type, driver).
#[derive(clap::Args)]
pub struct DevicesArgs {
    /// Output: table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(a: DevicesArgs) -> Result<i32> {
    let list = adapters();
    if let Format::Json = a.format {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|a| {
                serde_json::json!({
                    "index": a.index, "name": a.name, "backend": a.backend,
                    "device_type": a.device_type, "driver": a.driver,
                    "software": a.software, "timestamp_queries": a.timestamps,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("{NO_ADAPTER_HELP}");
        return Ok(0);
    }
    let mut t = Table::new(">index|name|backend|type|driver|device time");
    for a in &list {
        t.row(vec![
            a.index.to_string(),
            a.name.clone(),
            a.backend.clone(),
            if a.software {
                format!("{} (software)", a.device_type)
            } else {
                a.device_type.clone()
            },
            a.driver.clone(),
            if a.timestamps {
                "timestamp queries"
            } else {
                "none"
            }
            .into(),
        ]);
    }
    print!("{}", t.render());
    Ok(0)
}
