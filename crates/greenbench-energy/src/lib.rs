//! greenbench-energy: energy meters, each behind one trait, and the honest bookkeeping
//! around them.
//!
//! It owns reading energy: RAPL through Linux powercap (package and DRAM domains; never a
//! subdomain added to its parent; wraparound via `max_energy_range_uj`), hwmon
//! (`energy*_input`, else `power*_average` integrated), NVIDIA NVML (loaded at run time, so a
//! build without NVIDIA works), and a documented **estimate** when nothing is readable. Every
//! figure carries its source and whether it was measured or estimated. Every sysfs read goes
//! through [`SysFs`], resolved against where sysfs is mounted (`--sysfs-root`,
//! `GREENBENCH_SYSFS_ROOT`; default `/sys`), so tests and containers can point it elsewhere and
//! make reads fail.
//!
//! It knows nothing of models, backends or tables: the harness asks it for joules.

pub mod discover;
pub mod estimate;
mod hwmon;
pub mod meters;
mod scope;
pub mod sysfs;

pub use discover::discover;
pub use estimate::{CpuEstimate, TdpTable, Topology};
pub use meters::{EnergyKind, Meter, MeterError, MeterStatus};
pub use scope::Scope;
pub use sysfs::{MemFs, RealFs, SysFs};

/// Default grid carbon intensity: the world average of 2023, 480 g CO2e per kWh
/// (Ember, Global Electricity Review 2024). Set `--grid-g-per-kwh` for your grid.
pub const DEFAULT_GRID_G_PER_KWH: f64 = 480.0;
/// Default electricity price: the US average residential retail price of 2023, $0.16 per kWh
/// (U.S. EIA, Electric Power Annual 2023). Set `--price-usd-per-kwh` for yours.
pub const DEFAULT_PRICE_USD_PER_KWH: f64 = 0.16;
/// Joules in a kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

/// Grams of CO2e and US dollars for `joules`, at the given intensity and price.
pub fn co2e_and_cost(joules: f64, grid_g_per_kwh: f64, usd_per_kwh: f64) -> (f64, f64) {
    let kwh = joules / J_PER_KWH;
    (kwh * grid_g_per_kwh, kwh * usd_per_kwh)
}
