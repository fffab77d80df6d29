//! Facts about the host that several crates print (the CPU backend names its device with it,
//! the harness records it in the fingerprint).

/// The CPU's model name (from /proc/cpuinfo on Linux), or the architecture.
pub fn cpu_model_name() -> String {
    cpuinfo_field(&["model name", "Model"]).unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The value of the first /proc/cpuinfo line (the first CPU's) starting with one of `keys`,
/// trimmed; `None` where there is no such file or line.
pub fn cpuinfo_field(keys: &[&str]) -> Option<String> {
    let t = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    t.lines()
        .find(|l| keys.iter().any(|k| l.starts_with(k)))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

/// Memory the host can give a new allocation now (`MemAvailable` of /proc/meminfo on Linux),
/// if known.
pub fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as people read them: 512 B, 3.2 MiB, 4.0 TiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
