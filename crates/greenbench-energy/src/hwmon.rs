//! hwmon meters: every energy (else power) channel of every device, each with the domain it
//! measures, so that `discover` never adds a meter to one that already contains it.

use crate::meters::{CounterMeter, HWMON, Meter, MeterStatus, PowerMeter, read_u64};
use crate::scope::Scope;
use crate::sysfs::SysFs;
use std::sync::Arc;

/// What a hwmon device measures, from its driver name and channel labels:
/// - `power_meter` (ACPI power meter): the machine's input power, every other domain inside;
/// - `amd_energy`: the CPU's own RAPL counters again (its per-socket channels; its per-core
///   ones are parts of them and never read);
/// - `amdgpu` with `slowPPT` / `fastPPT` channels: an APU's whole package (CPU cores and the
///   integrated GPU);
/// - anything else (a discrete GPU's board power, ...): a device of its own.
fn scope(name: &str, labels: &[String]) -> Scope {
    match name {
        "power_meter" => Scope::System,
        "amd_energy" => Scope::CpuAgain,
        "amdgpu" if labels.iter().any(|l| l == "slowPPT" || l == "fastPPT") => Scope::Soc,
        _ => Scope::Device,
    }
}

/// The channels `prefix<N><suffix>` of a device, by N (energy1 before energy10).
fn channels(files: &[String], prefix: &str, suffix: &str) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = files
        .iter()
        .filter_map(|f| {
            let n = f.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()?;
            Some((n, f.clone()))
        })
        .collect();
    v.sort();
    v
}

/// Every hwmon meter under `fs`, with its scope; a status line for each channel considered.
pub(crate) fn discover_hwmon(
    fs: &Arc<dyn SysFs>,
    found: &mut Vec<(Box<dyn Meter>, Scope)>,
    status: &mut Vec<MeterStatus>,
) {
    let Ok(entries) = fs.list(HWMON) else {
        status.push(MeterStatus {
            name: "hwmon".into(),
            available: false,
            detail: format!("no hwmon tree at {}", fs.display(HWMON)),
            how_to_enable: None,
        });
        return;
    };
    let mut any = false;
    for hw in entries {
        let dir = format!("{HWMON}/{hw}");
        let read = |f: &str| {
            fs.read(&format!("{dir}/{f}"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let name = read("name");
        let files = fs.list(&dir).unwrap_or_default();
        let energy = channels(&files, "energy", "_input");
        let power = channels(&files, "power", "_average");
        let (kind, chans) = if energy.is_empty() {
            ("power", power)
        } else {
            ("energy", energy)
        };
        let label_of = |n: u32| read(&format!("{kind}{n}_label"));
        let labels: Vec<String> = chans.iter().map(|(n, _)| label_of(*n)).collect();
        let sc = scope(&name, &labels);
        for ((n, f), l) in chans.iter().zip(&labels) {
            // amd_energy's per-core channels are parts of its per-socket ones.
            if sc == Scope::CpuAgain && !l.starts_with("Esocket") {
                continue;
            }
            any = true;
            let label = if l.is_empty() {
                format!("hwmon {hw} ({name}) {kind}{n}")
            } else {
                format!("hwmon {hw} ({name}) {kind}{n} \"{l}\"")
            };
            let path = format!("{dir}/{f}");
            let made: Result<(Box<dyn Meter>, String), String> = if kind == "energy" {
                CounterMeter::new(label.clone(), fs.clone(), path, None)
                    .map(|m| {
                        (
                            Box::new(m) as Box<dyn Meter>,
                            format!("{f} (cumulative uJ)"),
                        )
                    })
                    .map_err(|e| e.message)
            } else {
                match read_u64(fs.as_ref(), &path, &label) {
                    Ok(_) => {
                        let (fs2, lbl) = (fs.clone(), label.clone());
                        let read_w = Box::new(move || {
                            read_u64(fs2.as_ref(), &path, &lbl)
                                .map(|uw| uw as f64 * 1e-6)
                                .map_err(|e| e.message)
                        });
                        Ok((
                            Box::new(PowerMeter::new(label.clone(), read_w)) as Box<dyn Meter>,
                            format!("{f} (uW) sampled every 50 ms and integrated"),
                        ))
                    }
                    Err(e) => Err(e.message),
                }
            };
            match made {
                Ok((m, detail)) => {
                    status.push(MeterStatus {
                        name: label,
                        available: true,
                        detail: format!("{detail}; measures {}", sc.describe()),
                        how_to_enable: None,
                    });
                    found.push((m, sc));
                }
                Err(message) => status.push(MeterStatus {
                    name: label,
                    available: false,
                    detail: message,
                    how_to_enable: None,
                }),
            }
        }
    }
    if !any {
        status.push(MeterStatus {
            name: "hwmon".into(),
            available: false,
            detail: "no hwmon device reports energy*_input or power*_average".into(),
            how_to_enable: Some(
                "AMD GPUs expose power1_average with the amdgpu driver; other devices rarely do"
                    .into(),
            ),
        });
    }
}
