//! Measured meters: RAPL (powercap), hwmon, NVML; and their discovery.

use crate::sysfs::SysFs;
use serde::Serialize;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Whether a figure was measured by a counter or estimated by a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyKind {
    Measured,
    Estimated,
}

/// A meter that could not give a number, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{meter}: {message}")]
pub struct MeterError {
    pub meter: String,
    pub message: String,
}

/// A source of cumulative joules.
pub trait Meter: Send {
    /// What it measures, e.g. `rapl package-0` or `nvml 0 (NVIDIA H100)`.
    fn name(&self) -> &str;
    fn kind(&self) -> EnergyKind;
    /// Read the device. Call often enough that no wrap is missed and power samples are
    /// dense (the monitor does, every 50 ms).
    fn sample(&mut self) -> Result<(), MeterError>;
    /// Joules since the meter was created, as of the latest sample.
    fn joules(&self) -> f64;
}

/// One line of `greenbench meters`.
#[derive(Clone, Debug, Serialize)]
pub struct MeterStatus {
    pub name: String,
    pub available: bool,
    /// What it reads, or why it cannot.
    pub detail: String,
    /// How to make it available, when it is not.
    pub how_to_enable: Option<String>,
}

/// Where RAPL lives.
pub const POWERCAP: &str = "/sys/class/powercap";
/// Where hwmon lives.
pub const HWMON: &str = "/sys/class/hwmon";

const RAPL_HOW: &str = "RAPL counters are root-only since Linux 5.10 (CVE-2020-8694). Run as root, or allow reading until the next reboot: sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj";

pub(crate) fn read_u64(fs: &dyn SysFs, path: &str, meter: &str) -> Result<u64, MeterError> {
    let err = |message: String| MeterError {
        meter: meter.to_string(),
        message,
    };
    let text = fs.read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            err(format!(
                "permission denied reading {}. {RAPL_HOW}",
                fs.display(path)
            ))
        } else {
            err(format!("cannot read {}: {e}", fs.display(path)))
        }
    })?;
    text.trim().parse::<u64>().map_err(|_| {
        let shown: String = text.trim().chars().take(40).collect();
        err(format!(
            "{} holds `{shown}`, not a counter value",
            fs.display(path)
        ))
    })
}

/// A cumulative microjoule counter that may wrap at `max_uj`.
pub struct CounterMeter {
    name: String,
    fs: Arc<dyn SysFs>,
    path: String,
    /// Wrap range; `None` for counters that never wrap in practice (64-bit hwmon), where a
    /// decrease is an error (a reset), not a wrap.
    max_uj: Option<u64>,
    last: u64,
    total_uj: u128,
}

impl CounterMeter {
    /// Open a counter, reading it once.
    pub fn new(
        name: String,
        fs: Arc<dyn SysFs>,
        path: String,
        max_uj: Option<u64>,
    ) -> Result<Self, MeterError> {
        let last = read_u64(fs.as_ref(), &path, &name)?;
        Ok(CounterMeter {
            name,
            fs,
            path,
            max_uj,
            last,
            total_uj: 0,
        })
    }
}

impl Meter for CounterMeter {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Measured
    }
    fn sample(&mut self) -> Result<(), MeterError> {
        let now = read_u64(self.fs.as_ref(), &self.path, &self.name)?;
        let err = |message: String| MeterError {
            meter: self.name.clone(),
            message,
        };
        let delta = if now >= self.last {
            now - self.last
        } else {
            match self.max_uj {
                Some(max) if self.last <= max => max - self.last + now,
                Some(max) => {
                    return Err(err(format!(
                        "counter read {} above its max_energy_range_uj {max}",
                        self.last
                    )));
                }
                None => {
                    return Err(err(format!(
                        "counter went back from {} to {now} and has no wrap range: reset?",
                        self.last
                    )));
                }
            }
        };
        if let Some(max) = self.max_uj
            && delta > max
        {
            return Err(err(format!(
                "a step of {delta} uJ exceeds the counter's range {max}"
            )));
        }
        self.last = now;
        self.total_uj += delta as u128;
        Ok(())
    }
    fn joules(&self) -> f64 {
        self.total_uj as f64 * 1e-6
    }
}

/// Power samples (watts) integrated over time by the trapezoid rule.
pub struct PowerMeter {
    name: String,
    read_w: Box<dyn FnMut() -> Result<f64, String> + Send>,
    last: Option<(Instant, f64)>,
    total_j: f64,
}

impl PowerMeter {
    pub fn new(name: String, read_w: Box<dyn FnMut() -> Result<f64, String> + Send>) -> Self {
        PowerMeter {
            name,
            read_w,
            last: None,
            total_j: 0.0,
        }
    }
}

impl Meter for PowerMeter {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Measured
    }
    fn sample(&mut self) -> Result<(), MeterError> {
        let w = (self.read_w)().map_err(|message| MeterError {
            meter: self.name.clone(),
            message,
        })?;
        let now = Instant::now();
        if let Some((t, w0)) = self.last {
            self.total_j += 0.5 * (w0 + w) * now.duration_since(t).as_secs_f64();
        }
        self.last = Some((now, w));
        Ok(())
    }
    fn joules(&self) -> f64 {
        self.total_j
    }
}

pub(crate) fn discover_rapl(
    fs: &Arc<dyn SysFs>,
    meters: &mut Vec<Box<dyn Meter>>,
    status: &mut Vec<MeterStatus>,
) {
    let entries = match fs.list(POWERCAP) {
        Ok(e) => e,
        Err(e) => {
            status.push(MeterStatus {
                name: "rapl".into(),
                available: false,
                detail: format!("no powercap tree at {}: {e}", fs.display(POWERCAP)),
                how_to_enable: Some(
                    "RAPL needs Linux with the intel_rapl_common driver (x86 Intel, or AMD Zen with \
                     amd_energy / rapl support): modprobe intel_rapl_msr; inside VMs and containers \
                     the host usually does not expose it"
                        .into(),
                ),
            });
            return;
        }
    };
    // Top-level zones are intel-rapl:N (packages, psys); intel-rapl:N:M are subdomains.
    let zones: Vec<&String> = entries
        .iter()
        .filter(|e| e.starts_with("intel-rapl:"))
        .collect();
    if zones.is_empty() {
        status.push(MeterStatus {
            name: "rapl".into(),
            available: false,
            detail: format!("{} has no intel-rapl zones", fs.display(POWERCAP)),
            how_to_enable: Some(
                "modprobe intel_rapl_msr (needs a CPU with RAPL, bare metal)".into(),
            ),
        });
    }
    for zone in zones {
        let depth = zone.matches(':').count();
        let dir = format!("{POWERCAP}/{zone}");
        let name = fs
            .read(&format!("{dir}/name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unnamed".into());
        let label = format!("rapl {zone} ({name})");
        // Packages and DRAM are disjoint; core/uncore are parts of their package (adding them
        // would count twice) and psys overlaps the packages.
        let wanted = (depth == 1 && name.starts_with("package")) || (depth == 2 && name == "dram");
        if !wanted {
            status.push(MeterStatus {
                name: label,
                available: false,
                detail: if depth == 2 {
                    "part of its package's energy; not added".into()
                } else {
                    "overlaps the package domains; not added".into()
                },
                how_to_enable: None,
            });
            continue;
        }
        let max = read_u64(fs.as_ref(), &format!("{dir}/max_energy_range_uj"), &label);
        let max = match max {
            Ok(m) if m > 0 => m,
            Ok(_) | Err(_) => {
                status.push(MeterStatus {
                    name: label,
                    available: false,
                    detail: format!(
                        "no usable {dir}/max_energy_range_uj: a wrap of the counter could not be told from a reset, so it is not used"
                    ),
                    how_to_enable: None,
                });
                continue;
            }
        };
        match CounterMeter::new(
            label.clone(),
            fs.clone(),
            format!("{dir}/energy_uj"),
            Some(max),
        ) {
            Ok(m) => {
                status.push(MeterStatus {
                    name: label,
                    available: true,
                    detail: format!("energy_uj, wraps at {max} uJ"),
                    how_to_enable: None,
                });
                meters.push(Box::new(m));
            }
            Err(e) => status.push(MeterStatus {
                name: label,
                available: false,
                detail: e.message.clone(),
                how_to_enable: e
                    .message
                    .contains("permission denied")
                    .then(|| RAPL_HOW.to_string()),
            }),
        }
    }
}

pub(crate) fn discover_nvml(meters: &mut Vec<Box<dyn Meter>>, status: &mut Vec<MeterStatus>) {
    use nvml_wrapper::Nvml;
    let nvml = match Nvml::init() {
        Ok(n) => Arc::new(n),
        Err(e) => {
            status.push(MeterStatus {
                name: "nvml".into(),
                available: false,
                detail: format!("NVML not loaded: {e}"),
                how_to_enable: Some(
                    "install the NVIDIA driver (libnvidia-ml.so is loaded at run time)".into(),
                ),
            });
            return;
        }
    };
    let count = nvml.device_count().unwrap_or(0);
    for i in 0..count {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        let label = format!("nvml {i} ({})", dev.name().unwrap_or_default());
        if let Ok(mj) = dev.total_energy_consumption() {
            let n = nvml.clone();
            let start = mj;
            let mut last = mj;
            let read = move || -> Result<f64, String> {
                let d = n.device_by_index(i).map_err(|e| e.to_string())?;
                let now = d.total_energy_consumption().map_err(|e| e.to_string())?;
                if now < last {
                    return Err(format!("energy counter went back from {last} to {now} mJ"));
                }
                last = now;
                Ok((now - start) as f64 * 1e-3)
            };
            status.push(MeterStatus {
                name: label.clone(),
                available: true,
                detail: "total energy counter (mJ)".into(),
                how_to_enable: None,
            });
            meters.push(Box::new(NvmlCounter {
                name: label,
                read: Box::new(read),
                joules: 0.0,
            }));
        } else if dev.power_usage().is_ok() {
            let n = nvml.clone();
            let read = Box::new(move || -> Result<f64, String> {
                let d = n.device_by_index(i).map_err(|e| e.to_string())?;
                d.power_usage()
                    .map(|mw| mw as f64 * 1e-3)
                    .map_err(|e| e.to_string())
            });
            status.push(MeterStatus {
                name: label.clone(),
                available: true,
                detail:
                    "power (mW) sampled every 50 ms and integrated (no energy counter on this GPU)"
                        .into(),
                how_to_enable: None,
            });
            meters.push(Box::new(PowerMeter::new(label, read)));
        } else {
            status.push(MeterStatus {
                name: label,
                available: false,
                detail: "neither the energy counter nor power readings are supported".into(),
                how_to_enable: None,
            });
        }
    }
}

/// NVML's total-energy counter (joules since the meter was opened).
struct NvmlCounter {
    name: String,
    read: Box<dyn FnMut() -> Result<f64, String> + Send>,
    joules: f64,
}

impl Meter for NvmlCounter {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> EnergyKind {
        EnergyKind::Measured
    }
    fn sample(&mut self) -> Result<(), MeterError> {
        self.joules = (self.read)().map_err(|message| MeterError {
            meter: self.name.clone(),
            message,
        })?;
        Ok(())
    }
    fn joules(&self) -> f64 {
        self.joules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::discover;
    use crate::sysfs::MemFs;

    fn rapl_tree(fs: &MemFs) {
        let p = "/sys/class/powercap/intel-rapl:0";
        fs.set(&format!("{p}/name"), "package-0\n");
        fs.set(&format!("{p}/energy_uj"), "1000000\n");
        fs.set(&format!("{p}/max_energy_range_uj"), "262143328850\n");
        // Subdomains: core (inside the package) and dram (beside it).
        let c = "/sys/class/powercap/intel-rapl:0:0";
        fs.set(&format!("{c}/name"), "core\n");
        fs.set(&format!("{c}/energy_uj"), "500000\n");
        fs.set(&format!("{c}/max_energy_range_uj"), "262143328850\n");
        let d = "/sys/class/powercap/intel-rapl:0:1";
        fs.set(&format!("{d}/name"), "dram\n");
        fs.set(&format!("{d}/energy_uj"), "200000\n");
        fs.set(&format!("{d}/max_energy_range_uj"), "65712999613\n");
    }

    fn total(meters: &[Box<dyn Meter>]) -> f64 {
        meters.iter().map(|m| m.joules()).sum()
    }

    #[test]
    fn package_and_dram_counted_core_never_added() {
        let fs = Arc::new(MemFs::new());
        rapl_tree(&fs);
        let (mut meters, status) = discover(fs.clone(), false);
        assert_eq!(meters.len(), 2, "{status:?}");
        let core = status.iter().find(|s| s.name.contains("core")).unwrap();
        assert!(!core.available && core.detail.contains("part of its package"));
        fs.set("/sys/class/powercap/intel-rapl:0/energy_uj", "3000000");
        fs.set("/sys/class/powercap/intel-rapl:0:0/energy_uj", "2500000");
        fs.set("/sys/class/powercap/intel-rapl:0:1/energy_uj", "700000");
        for m in meters.iter_mut() {
            m.sample().unwrap();
        }
        // 2 J package + 0.5 J dram; the core's 2 J are inside the package's.
        assert!((total(&meters) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn wrap_during_a_window_gives_the_right_joules() {
        let fs = Arc::new(MemFs::new());
        let p = "/sys/class/powercap/intel-rapl:0";
        fs.set(&format!("{p}/name"), "package-0");
        fs.set(&format!("{p}/max_energy_range_uj"), "1000000");
        fs.set(&format!("{p}/energy_uj"), "900000");
        let (mut meters, _) = discover(fs.clone(), false);
        fs.set(&format!("{p}/energy_uj"), "950000");
        meters[0].sample().unwrap();
        // Wraps past 1,000,000 to 100,000: 50,000 + 100,000 uJ more.
        fs.set(&format!("{p}/energy_uj"), "100000");
        meters[0].sample().unwrap();
        assert!(
            (meters[0].joules() - 0.2).abs() < 1e-9,
            "{}",
            meters[0].joules()
        );
        assert!(meters[0].joules() >= 0.0);
    }

    #[test]
    fn permission_error_says_how_to_enable() {
        let fs = Arc::new(MemFs::new());
        rapl_tree(&fs);
        fs.fail(
            "/sys/class/powercap/intel-rapl:0/energy_uj",
            io::ErrorKind::PermissionDenied,
        );
        let (meters, status) = discover(fs, false);
        let pkg = status
            .iter()
            .find(|s| s.name.contains("package-0"))
            .unwrap();
        assert!(!pkg.available);
        assert!(pkg.detail.contains("permission denied"), "{pkg:?}");
        assert!(pkg.how_to_enable.as_deref().unwrap().contains("chmod a+r"));
        // The DRAM domain stays usable.
        assert_eq!(meters.len(), 1);
    }

    #[test]
    fn missing_max_range_is_not_used() {
        let fs = Arc::new(MemFs::new());
        let p = "/sys/class/powercap/intel-rapl:0";
        fs.set(&format!("{p}/name"), "package-0");
        fs.set(&format!("{p}/energy_uj"), "5");
        let (meters, status) = discover(fs, false);
        assert!(meters.is_empty());
        assert!(
            status[0].detail.contains("max_energy_range_uj"),
            "{status:?}"
        );
    }

    #[test]
    fn garbage_contents_are_a_clear_error() {
        let fs = Arc::new(MemFs::new());
        rapl_tree(&fs);
        let (mut meters, _) = discover(fs.clone(), false);
        fs.set(
            "/sys/class/powercap/intel-rapl:0/energy_uj",
            "lots of joules",
        );
        let e = meters[0].sample().unwrap_err();
        assert!(
            e.message.contains("lots of joules") && e.message.contains("energy_uj"),
            "{e}"
        );
        // A step larger than the range is refused, not counted.
        fs.set(
            "/sys/class/powercap/intel-rapl:0/energy_uj",
            "999999999999999",
        );
        assert!(meters[0].sample().is_err());
        assert!(meters[0].joules() >= 0.0 && meters[0].joules() < 1e6);
    }

    #[test]
    fn no_tree_explains_itself() {
        let fs = Arc::new(MemFs::new());
        let (meters, status) = discover(fs, false);
        assert!(meters.is_empty());
        assert!(status.iter().all(|s| !s.available));
        assert!(
            status
                .iter()
                .any(|s| s.name == "rapl" && s.how_to_enable.is_some())
        );
    }
}
