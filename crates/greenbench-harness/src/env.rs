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
            "avx512vnni"
        );
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
}
