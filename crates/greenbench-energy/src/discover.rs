//! Finding the meters and adding only disjoint ones: each meter measures a domain
//! ([`Scope`]); a meter whose domain contains others replaces them instead of being added to
//! them (a whole-system meter replaces the CPU packages, DRAM and GPUs; an APU's package
//! meter replaces RAPL's; the CPU's counters read again through hwmon are used only without
//! RAPL).

use crate::hwmon::discover_hwmon;
use crate::meters::{Meter, MeterStatus, discover_nvml, discover_rapl};
use crate::scope::Scope;
use crate::sysfs::SysFs;
use std::sync::Arc;

/// Find every meter under `fs`, and (if `nvml`) NVIDIA GPUs. Returns the meters to add (no
/// two of them overlapping) and a status line for every meter considered, usable or not.
pub fn discover(fs: Arc<dyn SysFs>, nvml: bool) -> (Vec<Box<dyn Meter>>, Vec<MeterStatus>) {
    let mut status = Vec::new();
    let mut found: Vec<(Box<dyn Meter>, Scope)> = Vec::new();
    let mut rapl = Vec::new();
    discover_rapl(&fs, &mut rapl, &mut status);
    found.extend(rapl.into_iter().map(|m| (m, Scope::Cpu)));
    discover_hwmon(&fs, &mut found, &mut status);
    if nvml {
        let mut gpus = Vec::new();
        discover_nvml(&mut gpus, &mut status);
        found.extend(gpus.into_iter().map(|m| (m, Scope::Device)));
    }
    (reconcile(found, &mut status), status)
}

/// Keep the meters whose domains do not overlap, saying in `status` why each other one is
/// not added.
fn reconcile(
    found: Vec<(Box<dyn Meter>, Scope)>,
    status: &mut [MeterStatus],
) -> Vec<Box<dyn Meter>> {
    let first = |s: Scope| {
        found
            .iter()
            .find(|(_, x)| *x == s)
            .map(|(m, _)| m.name().to_string())
    };
    let (system, soc, rapl) = (first(Scope::System), first(Scope::Soc), first(Scope::Cpu));
    let why_not = |s: Scope| -> Option<String> {
        match (&system, &soc, &rapl) {
            (Some(sys), ..) if s != Scope::System => {
                Some(format!("inside what the system meter {sys} measures"))
            }
            (None, Some(chip), _) if matches!(s, Scope::Cpu | Scope::CpuAgain) => {
                Some(format!("inside what the SoC meter {chip} measures"))
            }
            (None, None, Some(r)) if s == Scope::CpuAgain => {
                Some(format!("the same counters as {r}"))
            }
            _ => None,
        }
    };
    let mut keep = Vec::new();
    for (m, s) in found {
        match why_not(s) {
            None => keep.push(m),
            Some(why) => {
                if let Some(st) = status.iter_mut().find(|st| st.name == m.name()) {
                    st.available = false;
                    st.detail = format!("{}; not added: {why}", st.detail);
                }
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::MemFs;

    #[test]
    fn hwmon_energy_and_power() {
        let fs = Arc::new(MemFs::new());
        fs.set("/sys/class/hwmon/hwmon0/name", "amdgpu");
        fs.set("/sys/class/hwmon/hwmon0/power1_average", "50000000"); // 50 W
        fs.set("/sys/class/hwmon/hwmon1/name", "acpi");
        fs.set("/sys/class/hwmon/hwmon1/energy1_input", "1000");
        let (mut meters, status) = discover(fs.clone(), false);
        assert_eq!(meters.len(), 2, "{status:?}");
        fs.set("/sys/class/hwmon/hwmon1/energy1_input", "2001000");
        for m in meters.iter_mut() {
            m.sample().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        for m in meters.iter_mut() {
            m.sample().unwrap();
        }
        let power = meters.iter().find(|m| m.name().contains("amdgpu")).unwrap();
        // 50 W over >= 20 ms.
        assert!(power.joules() >= 50.0 * 0.02 * 0.99, "{}", power.joules());
        let energy = meters.iter().find(|m| m.name().contains("acpi")).unwrap();
        assert!((energy.joules() - 2.0).abs() < 1e-9);
        // A 64-bit counter that goes back is a reset: an error, never a negative step.
        fs.set("/sys/class/hwmon/hwmon1/energy1_input", "5");
        let e = meters
            .iter_mut()
            .find(|m| m.name().contains("acpi"))
            .unwrap()
            .sample()
            .unwrap_err();
        assert!(e.message.contains("reset"), "{e}");
    }

    fn rapl_package(fs: &MemFs) {
        let p = "/sys/class/powercap/intel-rapl:0";
        fs.set(&format!("{p}/name"), "package-0");
        fs.set(&format!("{p}/energy_uj"), "1000");
        fs.set(&format!("{p}/max_energy_range_uj"), "262143328850");
    }

    /// A whole-system meter replaces the package meters instead of being added to them; an
    /// APU's package meter replaces RAPL; the CPU's counters through hwmon are not added to
    /// RAPL's (issue: hwmon was summed with RAPL, energy counted twice).
    #[test]
    fn containing_meters_replace_contained_ones() {
        let fs = Arc::new(MemFs::new());
        rapl_package(&fs);
        fs.set("/sys/class/hwmon/hwmon2/name", "amd_energy");
        fs.set("/sys/class/hwmon/hwmon2/energy1_input", "5");
        fs.set("/sys/class/hwmon/hwmon2/energy1_label", "Ecore000");
        fs.set("/sys/class/hwmon/hwmon2/energy9_input", "7");
        fs.set("/sys/class/hwmon/hwmon2/energy9_label", "Esocket0");
        let (meters, status) = discover(fs.clone(), false);
        let names: Vec<&str> = meters.iter().map(|m| m.name()).collect();
        assert_eq!(names, vec!["rapl intel-rapl:0 (package-0)"], "{status:?}");
        let again = status.iter().find(|s| s.name.contains("Esocket0")).unwrap();
        assert!(
            !again.available && again.detail.contains("same counters"),
            "{again:?}"
        );
        assert!(!status.iter().any(|s| s.name.contains("Ecore000")));
        // Without RAPL, the socket channel is the CPU meter.
        let fs2 = Arc::new(MemFs::new());
        fs2.set("/sys/class/hwmon/hwmon2/name", "amd_energy");
        fs2.set("/sys/class/hwmon/hwmon2/energy9_input", "7");
        fs2.set("/sys/class/hwmon/hwmon2/energy9_label", "Esocket0");
        assert_eq!(discover(fs2, false).0.len(), 1);
        // An APU's package meter replaces RAPL; a system meter replaces both.
        fs.set("/sys/class/hwmon/hwmon3/name", "amdgpu");
        fs.set("/sys/class/hwmon/hwmon3/power1_average", "9000000");
        fs.set("/sys/class/hwmon/hwmon3/power1_label", "slowPPT");
        let (meters, _) = discover(fs.clone(), false);
        let names: Vec<&str> = meters.iter().map(|m| m.name()).collect();
        assert_eq!(names, vec!["hwmon hwmon3 (amdgpu) power1 \"slowPPT\""]);
        fs.set("/sys/class/hwmon/hwmon4/name", "power_meter");
        fs.set("/sys/class/hwmon/hwmon4/power1_average", "120000000");
        let (meters, status) = discover(fs.clone(), false);
        let names: Vec<&str> = meters.iter().map(|m| m.name()).collect();
        assert_eq!(names, vec!["hwmon hwmon4 (power_meter) power1"]);
        let rapl = status.iter().find(|s| s.name.starts_with("rapl")).unwrap();
        assert!(rapl.detail.contains("system meter"), "{rapl:?}");
    }

    /// Every channel of a device is read, in numeric order (energy10 used to be the only one
    /// read, sorting before energy1).
    #[test]
    fn every_hwmon_channel_is_read_in_numeric_order() {
        let fs = Arc::new(MemFs::new());
        fs.set("/sys/class/hwmon/hwmon0/name", "board");
        for n in [10, 1, 2] {
            fs.set(&format!("/sys/class/hwmon/hwmon0/energy{n}_input"), "0");
        }
        let (meters, _) = discover(fs, false);
        let names: Vec<&str> = meters.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            vec![
                "hwmon hwmon0 (board) energy1",
                "hwmon hwmon0 (board) energy2",
                "hwmon hwmon0 (board) energy10"
            ]
        );
    }
}
