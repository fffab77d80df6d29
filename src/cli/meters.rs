//! `greenbench meters`, and the energy flags every measuring command shares: where energy
//! comes from (counters, or the labelled TDP estimate) and what a kWh costs.

use super::Format;
use anyhow::Result;
use greenbench_energy::MeterStatus;
use greenbench_harness::energy::{Energy, Prices};
use greenbench_harness::env::fingerprint;
use greenbench_results::text::Table;
use std::path::PathBuf;

/// Where energy comes from, and what it costs.
#[derive(clap::Args, Clone, Default)]
pub struct EnergyArgs {
    /// Where sysfs is mounted, e.g. /host/sys in a container with the host's /sys there (as
    /// node_exporter's --path.sysfs; also GREENBENCH_SYSFS_ROOT); default /sys.
    #[arg(long)]
    pub sysfs_root: Option<PathBuf>,
    /// CPU TDP in watts for the energy estimate (used only when no counter is readable).
    #[arg(long, value_parser = super::range::positive)]
    pub cpu_tdp_w: Option<f64>,
    /// Grid carbon intensity, g CO2e per kWh. Default: world average 2023, 480 (Ember).
    #[arg(long, value_parser = super::range::non_negative)]
    pub grid_g_per_kwh: Option<f64>,
    /// Electricity price, US dollars per kWh. Default: US residential average 2023, 0.16 (EIA).
    #[arg(long, value_parser = super::range::non_negative)]
    pub price_usd_per_kwh: Option<f64>,
    /// Seconds of idle-power measurement before the run (default: the profile's).
    #[arg(long, value_parser = super::range::non_negative)]
    pub idle_s: Option<f64>,
    /// Do not read NVIDIA's NVML.
    #[arg(long)]
    pub no_nvml: bool,
}

/// List the energy meters: each one available or not, why, and how to enable it; the prices
/// a run would use; with --idle-s, the idle power now.
#[derive(clap::Args)]
pub struct MetersArgs {
    /// Output: table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    energy: EnergyArgs,
}

/// The cited default grid intensity and price, overridden by the flags given.
pub fn prices(grid_g_per_kwh: Option<f64>, usd_per_kwh: Option<f64>) -> Prices {
    Prices::overridden(grid_g_per_kwh, usd_per_kwh)
}

/// The energy source the flags describe, and the status of every meter.
pub fn make_energy(args: &EnergyArgs) -> Result<(Energy, Vec<MeterStatus>)> {
    // The flags' ranges are checked as they are parsed (super::range).
    let machine = fingerprint(&super::build());
    Ok(Energy::from_system(
        args.sysfs_root.clone(),
        !args.no_nvml,
        &machine.cpu_model,
        args.cpu_tdp_w,
        prices(args.grid_g_per_kwh, args.price_usd_per_kwh),
    ))
}

pub fn run(a: MetersArgs) -> Result<i32> {
    let (mut energy, status) = make_energy(&a.energy)?;
    // --idle-s: measure idle power now (a flag meters cannot honour is refused, not ignored).
    let idle = match a.energy.idle_s {
        Some(s) if !energy.measured() => anyhow::bail!(
            "--idle-s {s}: no energy counter is readable here, so there is no idle power to measure (the estimate has none)"
        ),
        Some(s) => energy
            .measure_idle(s)
            .map_err(|e| anyhow::anyhow!("idle power unreadable: {e}"))?,
        None => None,
    };
    if let Format::Json = a.format {
        let v = serde_json::json!({
            "meters": status,
            "in_use": energy.kind(),
            "source": energy.source(),
            "estimate": energy.estimate,
            "prices": energy.prices,
            "idle_power_w": idle.map(|i| i.w),
            "idle_busy_cores": idle.and_then(|i| i.busy_cores),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut t = Table::new("meter|available|detail");
    for s in &status {
        t.row(vec![
            s.name.clone(),
            if s.available { "yes" } else { "no" }.into(),
            s.detail.clone(),
        ]);
    }
    print!("{}", t.render());
    for s in status.iter().filter(|s| !s.available) {
        if let Some(h) = &s.how_to_enable {
            println!("to enable {}: {h}", s.name);
        }
    }
    let p = &energy.prices;
    println!(
        "CO2e and money at {} g CO2e/kWh ({}) and ${}/kWh ({})",
        p.grid_g_co2e_per_kwh, p.grid_source, p.usd_per_kwh, p.price_source
    );
    if let Some(i) = idle {
        println!(
            "idle power now: {:.2} W over {} s{}",
            i.w,
            a.energy.idle_s.unwrap_or(0.0),
            i.noisy()
                .map(|w| format!(" (warning: {w})"))
                .unwrap_or_default()
        );
    }
    if energy.measured() {
        println!("energy figures will be measured: {}", energy.source());
    } else {
        println!(
            "no counter is readable, so energy figures will be {}",
            energy.source()
        );
    }
    Ok(0)
}
