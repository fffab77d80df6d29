//! Facts about the host that several crates print (the CPU backend names its device with it,
//! the harness records it in the fingerprint).

/// The CPU's model name (from /proc/cpuinfo on Linux), or the architecture.
pub fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
