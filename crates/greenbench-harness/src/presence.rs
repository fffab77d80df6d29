//! Other greenbench runs on this machine. Each measuring run leaves a file named after its
//! pid in a shared directory (the temp dir, `greenbench-runs/`) for as long as it measures;
//! a cell measured while another live run's file is there carries a warning, in both runs'
//! result files, since two benchmarks on one machine disturb each other.

use std::path::PathBuf;

/// This run's mark; removed when dropped.
pub struct Presence {
    dir: PathBuf,
    file: Option<PathBuf>,
    pid: u32,
}

/// The directory runs mark themselves in.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("greenbench-runs")
}

fn alive(pid: u32) -> bool {
    // Linux: a live process has /proc/<pid>; elsewhere assume the mark is current.
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl Presence {
    /// Mark this process as measuring in `dir`. A mark that cannot be written (a read-only
    /// temp dir) only means other runs will not see this one.
    pub fn announce(dir: PathBuf) -> Presence {
        let pid = std::process::id();
        let file = std::fs::create_dir_all(&dir)
            .and_then(|_| {
                let f = dir.join(pid.to_string());
                std::fs::write(&f, b"greenbench run\n").map(|_| f)
            })
            .ok();
        Presence { dir, file, pid }
    }

    /// Pids of the other greenbench runs measuring now (stale marks of dead processes are
    /// removed on the way).
    pub fn others(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut v: Vec<u32> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| *p != self.pid)
            .filter(|p| {
                let live = alive(*p);
                if !live {
                    let _ = std::fs::remove_file(self.dir.join(p.to_string()));
                }
                live
            })
            .collect();
        v.sort_unstable();
        v
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The warning for a cell measured beside other runs.
pub fn warning(pids: &[u32]) -> String {
    let list: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
    format!(
        "machine not quiet: another greenbench run was measuring at the same time ({})",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_live_runs_and_forgets_dead_ones() {
        let dir = std::env::temp_dir().join(format!("gb-presence-{}", std::process::id()));
        let me = Presence::announce(dir.clone());
        assert!(dir.join(std::process::id().to_string()).exists());
        assert!(me.others().is_empty(), "itself is not another run");
        // pid 1 is alive on Linux; a pid far above pid_max is not.
        std::fs::write(dir.join("1"), "").unwrap();
        std::fs::write(dir.join("4194399"), "").unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(me.others(), [1]);
            assert!(
                !dir.join("4194399").exists(),
                "a dead run's mark is removed"
            );
        }
        assert!(warning(&[1, 7]).contains("pid 1, pid 7"));
        drop(me);
        assert!(!dir.join(std::process::id().to_string()).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
