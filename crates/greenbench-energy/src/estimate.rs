//! The energy **estimate**, for machines where no counter is readable.
//!
//! Model (Green Algorithms, Lannelongue, Grealey, Inouye, Adv. Sci. 2021): energy = power per
//! core x core-seconds used. The operating system counts CPU time per **logical CPU**
//! (hardware thread), so that is greenbench's one definition of "core": the power per logical
//! CPU is the package's TDP divided by the package's logical CPUs (physical cores x hardware
//! threads per core, as the OS topology shows them), whether the TDP comes from
//! `datasets/cpu-tdp.csv` (vendor specifications: TDP and physical cores), from `--cpu-tdp-w`
//! (the package TDP), or, for a CPU not in the table, the table's median TDP per physical
//! core divided by the threads per core. All logical CPUs of the package busy for one second
//! is then the TDP for one second, on every path. Affinity and cgroup limits (a container
//! given 4 CPUs of a 128-thread package) do not change the figure per CPU-second, only how
//! many CPU-seconds the process can use. The CPU-seconds are this process's CPU time (user +
//! system, all threads, from getrusage), so the figure is the energy attributable to the
//! benchmark, not the machine's.
//! It is an estimate: it ignores memory, idle and uncore power and turbo above TDP, and every
//! figure it produces is labelled `estimated` with this model.

use serde::Serialize;

const TABLE: &str = include_str!("../../../datasets/cpu-tdp.csv");

/// One row of the TDP table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TdpRow {
    pub pattern: String,
    pub cores: u32,
    pub tdp_w: f64,
    pub source: String,
}

/// The shipped CPU -> TDP table.
#[derive(Clone, Debug)]
pub struct TdpTable {
    pub rows: Vec<TdpRow>,
}

impl TdpTable {
    /// The table shipped in `datasets/cpu-tdp.csv`.
    pub fn shipped() -> Self {
        Self::parse(TABLE).expect("the shipped table parses (tested)")
    }

    /// Parse `pattern,cores,tdp_w,source` lines; `#` lines are comments; the header is skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("pattern,") {
                continue;
            }
            let f: Vec<&str> = line.splitn(4, ',').collect();
            let bad = || format!("cpu-tdp.csv line {}: `{line}`", n + 1);
            if f.len() != 4 {
                return Err(bad());
            }
            rows.push(TdpRow {
                pattern: f[0].trim().to_string(),
                cores: f[1].trim().parse().map_err(|_| bad())?,
                tdp_w: f[2].trim().parse().map_err(|_| bad())?,
                source: f[3].trim().to_string(),
            });
        }
        if rows.is_empty() {
            return Err("cpu-tdp.csv has no rows".into());
        }
        Ok(TdpTable { rows })
    }

    /// The row whose pattern occurs in `cpu_model` (case-insensitive).
    pub fn find(&self, cpu_model: &str) -> Option<&TdpRow> {
        let m = cpu_model.to_lowercase();
        self.rows
            .iter()
            .find(|r| m.contains(&r.pattern.to_lowercase()))
    }

    /// Median TDP per core over the table.
    pub fn median_w_per_core(&self) -> f64 {
        let mut v: Vec<f64> = self.rows.iter().map(|r| r.tdp_w / r.cores as f64).collect();
        v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
}

/// The topology the estimate divides a package's TDP over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Logical CPUs (hardware threads) of one package.
    pub package_cpus: usize,
    /// Hardware threads per physical core (2 with SMT / Hyper-Threading, else 1).
    pub threads_per_core: usize,
}

impl Topology {
    /// This machine's, from `/sys/devices/system/cpu/cpu*/topology` (CPU 0's package); where
    /// that is unreadable, every CPU the OS reports as one package without SMT.
    pub fn read() -> Topology {
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let topo = |cpu: usize, f: &str| {
            std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{f}"))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let Some(package) = topo(0, "physical_package_id") else {
            return Topology {
                package_cpus: online,
                threads_per_core: 1,
            };
        };
        let mut package_cpus = 0;
        let mut cpu = 0;
        while let Some(p) = topo(cpu, "physical_package_id") {
            package_cpus += usize::from(p == package);
            cpu += 1;
        }
        let threads_per_core = topo(0, "thread_siblings_list")
            .map(|s| cpu_list_len(&s))
            .unwrap_or(1)
            .max(1);
        Topology {
            package_cpus: package_cpus.max(1),
            threads_per_core,
        }
    }
}

/// The number of CPUs in a sysfs CPU list such as `0,64` or `0-3,8`.
fn cpu_list_len(s: &str) -> usize {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// A CPU power model: watts per busy logical CPU, and where that number comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuEstimate {
    /// Watts per busy logical CPU (hardware thread): what one CPU-second of process time costs.
    pub w_per_core: f64,
    /// How the figure was chosen, for every table and result that shows it.
    pub basis: String,
}

impl CpuEstimate {
    /// Choose the model for `cpu_model` on `topo`: `tdp_override_w` (the user's
    /// `--cpu-tdp-w`, the package's TDP) first, then the table, then the table's median per
    /// core. Every path gives watts per logical CPU (see the module's documentation).
    pub fn for_cpu(cpu_model: &str, topo: Topology, tdp_override_w: Option<f64>) -> Self {
        let table = TdpTable::shipped();
        let tpc = topo.threads_per_core.max(1);
        if let Some(w) = tdp_override_w {
            let cpus = topo.package_cpus.max(1);
            return CpuEstimate {
                w_per_core: w / cpus as f64,
                basis: format!("TDP {w} W (--cpu-tdp-w) / {cpus} logical CPUs of the package"),
            };
        }
        if let Some(r) = table.find(cpu_model) {
            let cpus = r.cores as usize * tpc;
            return CpuEstimate {
                w_per_core: r.tdp_w / cpus as f64,
                basis: format!(
                    "TDP {} W / ({} cores x {tpc} threads per core) = {cpus} logical CPUs ({}; datasets/cpu-tdp.csv)",
                    r.tdp_w, r.cores, r.source
                ),
            };
        }
        let w = table.median_w_per_core() / tpc as f64;
        CpuEstimate {
            w_per_core: w,
            basis: format!(
                "CPU `{cpu_model}` not in datasets/cpu-tdp.csv: the table's median TDP per core / {tpc} threads per core = {w:.2} W per logical CPU; set --cpu-tdp-w (the package TDP) for a better estimate"
            ),
        }
    }

    /// Joules for `cpu_seconds` of process CPU time.
    pub fn joules(&self, cpu_seconds: f64) -> f64 {
        self.w_per_core * cpu_seconds
    }

    /// The label every estimated figure carries.
    pub fn label(&self) -> String {
        format!(
            "estimated: {:.2} W per busy logical CPU x process CPU time (Green Algorithms model); {}",
            self.w_per_core, self.basis
        )
    }
}

/// CPU seconds (user + system) and peak resident bytes of `who`: `libc::RUSAGE_SELF` (this
/// process, all threads) or `libc::RUSAGE_CHILDREN` (the children it has waited for; the peak
/// is the largest one's).
pub fn rusage(who: libc::c_int) -> Option<(f64, u64)> {
    // SAFETY: getrusage writes into the zeroed struct we own; `who` is one of the two above.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut u) != 0 {
            return None;
        }
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
        Some((
            t(u.ru_utime) + t(u.ru_stime),
            u.ru_maxrss.max(0) as u64 * 1024,
        ))
    }
}

/// This process's CPU time so far (user + system, all threads), in seconds.
pub fn process_cpu_seconds() -> Option<f64> {
    rusage(libc::RUSAGE_SELF).map(|u| u.0)
}

/// CPU seconds all processes of the machine have been busy (from /proc/stat), if readable.
pub fn machine_busy_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...; USER_HZ is 100 on Linux.
    if v.len() < 8 {
        return None;
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Some(busy as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_matches() {
        let t = TdpTable::shipped();
        assert!(t.rows.len() >= 10);
        let r = t
            .find("AMD EPYC 7763 64-Core Processor")
            .expect("EPYC 7763 is in the table");
        assert_eq!((r.cores, r.tdp_w), (64, 280.0));
        assert!(t.rows.iter().all(|r| !r.source.is_empty()));
        let m = t.median_w_per_core();
        assert!(m > 2.0 && m < 20.0, "{m}");
    }

    fn topo(package_cpus: usize, threads_per_core: usize) -> Topology {
        Topology {
            package_cpus,
            threads_per_core,
        }
    }

    #[test]
    fn estimate_choice_and_label() {
        let e = CpuEstimate::for_cpu(
            "Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz",
            topo(12, 2),
            None,
        );
        assert!((e.w_per_core - 95.0 / 12.0).abs() < 1e-9);
        assert!(e.label().starts_with("estimated:") && e.label().contains("Intel ARK"));
        let e = CpuEstimate::for_cpu("Mystery CPU", topo(2, 1), Some(30.0));
        assert_eq!(e.w_per_core, 15.0);
        assert!((e.joules(2.0) - 30.0).abs() < 1e-12);
        let e = CpuEstimate::for_cpu("Mystery CPU", topo(2, 1), None);
        assert!(e.basis.contains("not in datasets/cpu-tdp.csv"));
        assert!(TdpTable::parse("pattern,cores,tdp_w,source\nx,zero,1,s").is_err());
    }

    /// One definition of a core on every path: the table's TDP and the same TDP given as
    /// `--cpu-tdp-w` price a CPU-second alike (they were 2x apart: physical cores against
    /// logical CPUs), all logical CPUs busy is the TDP, and a container's CPU limit does not
    /// raise the figure per CPU-second (it was 16x too high on 4 CPUs of an EPYC 7763).
    #[test]
    fn table_and_flag_agree_per_logical_cpu() {
        for (model, tdp, cores, tpc) in [
            ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", 95.0, 6, 2),
            ("AMD EPYC 7763 64-Core Processor", 280.0, 64, 2),
        ] {
            let t = topo(cores * tpc, tpc);
            let table = CpuEstimate::for_cpu(model, t, None);
            let flag = CpuEstimate::for_cpu(model, t, Some(tdp));
            assert!((table.w_per_core - flag.w_per_core).abs() < 1e-9, "{model}");
            assert!(
                (table.joules((cores * tpc) as f64) - tdp).abs() < 1e-9,
                "{model}"
            );
        }
        assert!(
            (CpuEstimate::for_cpu("x", topo(128, 2), Some(280.0)).w_per_core - 280.0 / 128.0).abs()
                < 1e-12
        );
        assert_eq!(cpu_list_len("0,64"), 2);
        assert_eq!(cpu_list_len("0-3,8"), 5);
        assert_eq!(cpu_list_len("5"), 1);
    }

    #[test]
    fn cpu_time_advances_with_work() {
        let a = process_cpu_seconds().unwrap();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed().as_millis() < 50 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = process_cpu_seconds().unwrap();
        assert!(b - a > 0.01, "{a} -> {b}");
    }
}
