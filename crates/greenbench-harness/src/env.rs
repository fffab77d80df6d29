//! The environment fingerprint: what machine and software a result describes.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Facts about the machine and build, recorded in every result file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub hostname: String,
    pub os: String,
    pub kernel: Option<String>,
    pub arch: String,
    pub cpu_model: String,
    /// Logical CPUs the OS reports.
    pub cpu_logical_cores: usize,
    /// SIMD features that decide which kernels run.
    pub cpu_features: Vec<String>,
    /// The first CPU's data caches as the OS reports them (Linux sysfs); `None` where it does
    /// not, and in files written before December 2026.
    #[serde(default)]
    pub cpu_caches: Option<CpuCaches>,
    pub memory_bytes: Option<u64>,
    pub greenbench_version: String,
    /// The commit the greenbench binary was built from, stamped at build time (`None`: built
    /// outside a checkout of greenbench, shown as "unknown"). Files written before December
    /// 2026 recorded `git rev-parse HEAD` of the directory the run started in instead (the
    /// same commit when the run started in the checkout it was built from).
    pub git_commit: Option<String>,
    /// Whether that checkout had uncommitted changes to tracked files at build time.
    pub git_dirty: Option<bool>,
}

impl Fingerprint {
    /// The CPU model with its caches where recorded: `AMD EPYC (L1d 32 KiB, L2 1 MiB, L3 32
    /// MiB)`.
    pub fn cpu_with_caches(&self) -> String {
        match &self.cpu_caches {
            Some(c) => format!("{} ({})", self.cpu_model, c.describe()),
            None => self.cpu_model.clone(),
        }
    }
}

/// Sizes of one CPU's data caches, in bytes: its L1 data cache, and the L2 and L3 that serve
/// it (each one instance, however many cores share it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuCaches {
    pub l1d: Option<u64>,
    pub l2: Option<u64>,
    pub l3: Option<u64>,
}

impl CpuCaches {
    /// `L1d 32 KiB, L2 1 MiB, L3 32 MiB` (the levels known).
    pub fn describe(&self) -> String {
        let size = |b: u64| {
            if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
                format!("{} MiB", b >> 20)
            } else {
                format!("{} KiB", b >> 10)
            }
        };
        [("L1d", self.l1d), ("L2", self.l2), ("L3", self.l3)]
            .iter()
            .filter_map(|(name, b)| b.map(|b| format!("{name} {}", size(b))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The caches of `cpu0` under a sysfs root (`/sys/devices/system/cpu`): each
    /// `cache/index*` directory's `level`, `type` and `size` (`32K`). `None` when none reads.
    pub fn read_sysfs(root: &std::path::Path) -> Option<CpuCaches> {
        let mut c = CpuCaches {
            l1d: None,
            l2: None,
            l3: None,
        };
        for e in std::fs::read_dir(root.join("cpu0/cache")).ok()?.flatten() {
            let field = |f: &str| read_trim(e.path().join(f).to_str()?);
            let (Some(level), Some(kind), Some(size)) =
                (field("level"), field("type"), field("size"))
            else {
                continue;
            };
            let (digits, unit) = match size.strip_suffix('K') {
                Some(k) => (k, 1 << 10),
                None => size
                    .strip_suffix('M')
                    .map_or((size.as_str(), 1), |m| (m, 1 << 20)),
            };
            let bytes = digits.parse::<u64>().ok().map(|n| n * unit);
            match (level.as_str(), kind.as_str()) {
                ("1", "Data") => c.l1d = bytes,
                ("2", "Unified" | "Data") => c.l2 = bytes,
                ("3", "Unified" | "Data") => c.l3 = bytes,
                _ => {}
            }
        }
        (c.l1d.is_some() || c.l2.is_some() || c.l3.is_some()).then_some(c)
    }
}

/// Where the running binary came from: its version, and the commit (with a dirty flag) its
/// build stamped (see the workspace's build.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    pub version: &'static str,
    pub git_commit: Option<&'static str>,
    pub git_dirty: Option<bool>,
}

/// The [`Build`] of the crate that invokes it, with `version`: the commit and dirty flag its
/// build script stamped as `GREENBENCH_GIT_COMMIT` / `GREENBENCH_GIT_DIRTY` (read where the
/// macro expands, so in the calling crate), none where nothing was stamped.
#[macro_export]
macro_rules! build_info {
    ($version:expr) => {
        $crate::env::Build {
            version: $version,
            git_commit: option_env!("GREENBENCH_GIT_COMMIT"),
            git_dirty: match option_env!("GREENBENCH_GIT_DIRTY") {
                Some(d) => Some(matches!(d.as_bytes(), b"true")),
                None => None,
            },
        }
    };
}

impl Build {
    /// A build that stamped no commit (tests, benches of other crates).
    pub const fn unstamped(version: &'static str) -> Build {
        Build {
            version,
            git_commit: None,
            git_dirty: None,
        }
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// This machine's host name.
pub fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|s| s.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string())
}

fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut f: Vec<String> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($name:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($name) { f.push($name.to_string()); }
            )*};
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16"
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        // AMX (Linux names its flags amx_int8, amx_bf16): std has no stable detection of it.
        let flags = greenbench_core::host::cpuinfo_field(&["flags"]).unwrap_or_default();
        for (flag, name) in [("amx_int8", "amx-int8"), ("amx_bf16", "amx-bf16")] {
            if flags.split_whitespace().any(|w| w == flag) {
                f.push(name.into());
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        f.push("neon".into());
    }
    f
}

/// A `Key:   123 kB` field of a /proc file, in bytes.
fn proc_kb_field(path: &str, key: &str) -> Option<u64> {
    let t = std::fs::read_to_string(path).ok()?;
    let kb: u64 = t
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn memory_bytes() -> Option<u64> {
    proc_kb_field("/proc/meminfo", "MemTotal:")
}

/// Read the fingerprint of this machine, for the binary `build` describes. Nothing here
/// depends on the working directory.
pub fn fingerprint(build: &Build) -> Fingerprint {
    Fingerprint {
        hostname: hostname(),
        os: os_name(),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.to_string(),
        cpu_model: greenbench_core::host::cpu_model_name(),
        cpu_logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_features: cpu_features(),
        cpu_caches: CpuCaches::read_sysfs(std::path::Path::new("/sys/devices/system/cpu")),
        memory_bytes: memory_bytes(),
        greenbench_version: build.version.to_string(),
        git_commit: build.git_commit.map(str::to_string),
        git_dirty: build.git_commit.and(build.git_dirty),
    }
}

/// Peak resident memory of this process (VmHWM), in bytes, where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb_field("/proc/self/status", "VmHWM:")
}

/// Reset the peak-resident-memory mark so the next reading covers only what follows
/// (Linux >= 4.0: writing 5 to /proc/self/clear_refs). Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Now, as [`utc_timestamp`].
pub fn now_utc() -> String {
    utc_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_651_200 + 3_661), "2026-11-26T01:01:01Z");
    }

    #[test]
    fn fingerprint_has_the_basics() {
        let f = fingerprint(&Build::unstamped("0.0.0"));
        assert!(!f.hostname.is_empty());
        assert!(f.cpu_logical_cores >= 1);
        assert_eq!(f.greenbench_version, "0.0.0");
    }

    /// A sysfs cache tree as Linux writes it (AMD Zen 4's): L1d and L1i, per-core L2, shared
    /// L3; the instruction cache and unreadable entries are ignored; no tree reads as `None`.
    #[test]
    fn caches_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let entries = [
            ("1", "Data", "32K"),
            ("1", "Instruction", "64K"),
            ("2", "Unified", "1024K"),
            ("3", "Unified", "32768K"),
        ];
        for (i, (level, kind, size)) in entries.iter().enumerate() {
            let d = root.path().join(format!("cpu0/cache/index{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        std::fs::create_dir_all(root.path().join("cpu0/cache/index9")).unwrap();
        let c = CpuCaches::read_sysfs(root.path()).unwrap();
        assert_eq!(
            c,
            CpuCaches {
                l1d: Some(32 << 10),
                l2: Some(1 << 20),
                l3: Some(32 << 20)
            }
        );
        assert_eq!(c.describe(), "L1d 32 KiB, L2 1 MiB, L3 32 MiB");
        let none = tempfile::tempdir().unwrap();
        assert_eq!(CpuCaches::read_sysfs(none.path()), None);
    }

    /// A result file written before the caches were recorded still reads (no caches).
    #[test]
    fn fingerprints_without_caches_read() {
        let mut v = serde_json::to_value(fingerprint(&Build::unstamped("0.0.0"))).unwrap();
        v.as_object_mut().unwrap().remove("cpu_caches");
        let f: Fingerprint = serde_json::from_value(v).unwrap();
        assert_eq!(f.cpu_caches, None);
    }
}
