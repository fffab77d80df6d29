//! File access for meters, through an interface tests can make fail (CI runs as root,
//! where `chmod` does not deny).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

/// Read access to a sysfs-like tree. Paths are absolute as on a real system
/// (`/sys/class/powercap/...`); an implementation resolves them against where its sysfs is.
pub trait SysFs: Send + Sync {
    /// The file's contents.
    fn read(&self, path: &str) -> io::Result<String>;
    /// Names of the entries of a directory, sorted.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Where `path` really is (for messages).
    fn display(&self, path: &str) -> String;
}

/// The real sysfs, mounted at `root` (`/sys` normally).
pub struct RealFs {
    root: PathBuf,
}

impl RealFs {
    /// Sysfs mounted at `root`, the convention of Prometheus node_exporter's `--path.sysfs`
    /// and cAdvisor: in a container with the host's `/sys` at `/host/sys`, that is the root.
    /// `None` means `GREENBENCH_SYSFS_ROOT` if set, else `/sys`.
    pub fn new(root: Option<PathBuf>) -> Self {
        let root = root
            .or_else(|| std::env::var_os("GREENBENCH_SYSFS_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/sys"));
        RealFs { root }
    }
    /// `/sys/class/...` -> `<root>/class/...`.
    fn resolve(&self, path: &str) -> PathBuf {
        let rel = path.strip_prefix("/sys").unwrap_or(path);
        self.root.join(rel.trim_start_matches('/'))
    }
}

impl SysFs for RealFs {
    fn read(&self, path: &str) -> io::Result<String> {
        std::fs::read_to_string(self.resolve(path))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(self.resolve(dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }
    fn display(&self, path: &str) -> String {
        self.resolve(path).display().to_string()
    }
}

/// An in-memory tree for tests: files hold contents or an error kind, and can change while
/// a meter runs (a counter that advances, wraps, or becomes unreadable).
#[derive(Default)]
pub struct MemFs {
    files: Mutex<BTreeMap<String, Result<String, io::ErrorKind>>>,
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }
    /// Create or replace a file.
    pub fn set(&self, path: &str, contents: impl Into<String>) {
        self.files
            .lock()
            .expect("lock")
            .insert(path.to_string(), Ok(contents.into()));
    }
    /// Make reading `path` fail with `kind`.
    pub fn fail(&self, path: &str, kind: io::ErrorKind) {
        self.files
            .lock()
            .expect("lock")
            .insert(path.to_string(), Err(kind));
    }
}

impl SysFs for MemFs {
    fn read(&self, path: &str) -> io::Result<String> {
        match self.files.lock().expect("lock").get(path) {
            Some(Ok(s)) => Ok(s.clone()),
            Some(Err(k)) => Err(io::Error::from(*k)),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let files = self.files.lock().expect("lock");
        let mut names: Vec<String> = files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(names)
    }
    fn display(&self, path: &str) -> String {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_sysfs_mount_point() {
        let dir = std::env::temp_dir().join(format!("gb-sysfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("class/powercap/intel-rapl:0")).unwrap();
        std::fs::write(dir.join("class/powercap/intel-rapl:0/name"), "package-0\n").unwrap();
        let fs = RealFs::new(Some(dir.clone()));
        assert_eq!(
            fs.read("/sys/class/powercap/intel-rapl:0/name").unwrap(),
            "package-0\n"
        );
        assert_eq!(fs.list("/sys/class/powercap").unwrap(), ["intel-rapl:0"]);
        assert_eq!(
            fs.display("/sys/class/hwmon"),
            dir.join("class/hwmon").display().to_string()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            RealFs::new(Some("/sys".into())).display("/sys/class/x"),
            "/sys/class/x"
        );
    }
}
