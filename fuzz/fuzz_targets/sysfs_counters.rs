//! sysfs counter text as the meters read it: a RAPL zone (name, energy_uj,
//! max_energy_range_uj) and an hwmon device (energy and power files), from arbitrary bytes,
//! discovered and read twice (wraparound arithmetic included).
#![no_main]
use greenbench_energy::sysfs::MemFs;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{0}');
    let mut next = || parts.next().unwrap_or("").to_string();
    let fs = MemFs::default();
    let z = "/sys/class/powercap/intel-rapl:0";
    fs.set(&format!("{z}/name"), next());
    fs.set(&format!("{z}/energy_uj"), next());
    fs.set(&format!("{z}/max_energy_range_uj"), next());
    let h = "/sys/class/hwmon/hwmon0";
    fs.set(&format!("{h}/name"), next());
    fs.set(&format!("{h}/energy1_input"), next());
    fs.set(&format!("{h}/power1_average"), next());
    let fs = Arc::new(fs);
    let (mut meters, _) = greenbench_energy::discover(fs.clone(), false);
    for m in &mut meters {
        let _ = m.sample();
        let _ = m.joules();
    }
    fs.set(&format!("{z}/energy_uj"), next());
    fs.set(&format!("{h}/energy1_input"), next());
    for m in &mut meters {
        let _ = m.sample();
        let _ = m.joules();
    }
});
