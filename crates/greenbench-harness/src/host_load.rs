//! What a VM can tell about its host while it measures: the CPU time the hypervisor took
//! (*steal*, from `/proc/stat`) and the cores' clock (`cpufreq`, where readable). Other
//! processes inside the VM are seen by the energy readings (`other_cpu_cores`); contention
//! from other guests only shows here.

use std::path::{Path, PathBuf};

/// Steal above this share of all CPU time during a cell makes it warn.
pub const STEAL_WARN: f64 = 0.02;

/// Aggregate CPU time counters (jiffies) of the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    pub total: u64,
    pub steal: u64,
}

/// Parse `/proc/stat`'s first line: user nice system idle iowait irq softirq steal [guest…].
pub fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    // guest and guest_nice are already counted in user and nice.
    Some(CpuTimes {
        total: v[..8].iter().sum(),
        steal: v[7],
    })
}

/// Where the counters are read from (`/proc/stat` normally; tests give a file they change).
#[derive(Clone, Debug)]
pub struct HostLoad {
    pub proc_stat: PathBuf,
    pub cpufreq: PathBuf,
}

impl Default for HostLoad {
    fn default() -> Self {
        HostLoad {
            proc_stat: "/proc/stat".into(),
            cpufreq: "/sys/devices/system/cpu".into(),
        }
    }
}

impl HostLoad {
    pub fn cpu_times(&self) -> Option<CpuTimes> {
        parse_cpu_times(&std::fs::read_to_string(&self.proc_stat).ok()?)
    }

    /// Mean current clock of the cores, MHz, where cpufreq is readable.
    pub fn mean_mhz(&self) -> Option<f64> {
        mean_mhz(&self.cpufreq)
    }
}

fn mean_mhz(dir: &Path) -> Option<f64> {
    let khz: Vec<f64> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("cpu") && n[3..].chars().all(|c| c.is_ascii_digit()) && n.len() > 3
        })
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("cpufreq/scaling_cur_freq"))
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .collect();
    (!khz.is_empty()).then(|| khz.iter().sum::<f64>() / khz.len() as f64 / 1000.0)
}

/// Steal's share of all CPU time between two readings (`None` when nothing elapsed).
pub fn steal_share(a: CpuTimes, b: CpuTimes) -> Option<f64> {
    let total = b.total.checked_sub(a.total)?;
    let steal = b.steal.checked_sub(a.steal)?;
    (total > 0).then(|| steal as f64 / total as f64)
}

/// The warning for a cell measured while the hypervisor took `share` of the CPU time.
pub fn steal_warning(share: f64) -> String {
    format!(
        "machine not quiet: the hypervisor took {:.1} % of the CPU time during the windows (steal, from /proc/stat): other guests on this host compete for its cores, and the times read high",
        100.0 * share
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_from_proc_stat() {
        let a = parse_cpu_times("cpu  100 0 50 800 0 0 0 10 0 0\ncpu0 1 2\n").unwrap();
        assert_eq!(
            a,
            CpuTimes {
                total: 960,
                steal: 10
            }
        );
        let b = parse_cpu_times("cpu  150 0 70 900 0 0 0 40 5 0\n").unwrap();
        assert_eq!(steal_share(a, b), Some(30.0 / 200.0));
        assert_eq!(steal_share(a, a), None);
        assert!(parse_cpu_times("cpu 1 2 3\n").is_none());
        assert!(parse_cpu_times("garbage").is_none());
        assert!(steal_warning(0.151).contains("15.1 %"));
    }
}
