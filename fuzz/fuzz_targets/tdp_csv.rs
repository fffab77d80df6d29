//! The CPU TDP table (datasets/cpu-tdp.csv), and looking a CPU up in it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = greenbench_energy::estimate::TdpTable::parse(text) {
        let _ = t.find("AMD EPYC 7763 64-Core Processor");
        let _ = t.find(text.lines().next().unwrap_or(""));
    }
});
