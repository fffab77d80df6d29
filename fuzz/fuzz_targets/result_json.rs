//! A result file from another machine: the schema loader with its version handling.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = greenbench_harness::ResultFile::parse(text, std::path::Path::new("fuzz.json")) {
        for c in &f.cells {
            let _ = c.is_unstable();
        }
    }
});
