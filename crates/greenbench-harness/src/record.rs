//! The versioned result schema, and how it is written: atomically (temp file + fsync +
//! rename in the same directory) and after every finished cell, so an interrupted run keeps
//! the cells it finished.

use crate::env::Fingerprint;
use crate::protocol::Profile;
use crate::stats::Summary;
use greenbench_core::{DeviceInfo, DeviceKind, Precision};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The schema this build writes. Readers accept [`READABLE_VERSIONS`].
/// Version 2 added each cell's `precision` and `int_ops_per_example` (a version 1 file's
/// cells are fp32 with no integer work).
pub const SCHEMA_VERSION: u32 = 2;
/// Schema versions this build reads.
pub const READABLE_VERSIONS: &[u32] = &[1, 2];

/// Whether the run that wrote a file finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running (or killed without a chance to say so): the cells present are final.
    Running,
    Complete,
    /// Stopped by the user (Ctrl-C); the cells present are final.
    Interrupted,
}

/// A backend's attainable peak, measured with a large fp32 matmul.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub backend: String,
    pub device: DeviceInfo,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Median GFPO/s (2 m k n FPO per product).
    pub gflops: f64,
    /// The best window's GFPO/s: what `% of peak` is taken against, so a disturbed window
    /// lowers the median but not the peak (files before this field: the median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_gflops: Option<f64>,
    pub gflops_ci95_low: f64,
    pub gflops_ci95_high: f64,
    /// Seconds per product, per window.
    pub time_s: Summary,
    /// `device` when the backend reported device-only time (GPU timestamp queries: the
    /// upload of the left-hand matrix is excluded), else `end_to_end`.
    pub time_basis: String,
    /// The same product measured again after the backend's cells (absent in files before
    /// this field, in resumed runs, and when no cell was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<PeakAgain>,
    /// Set when the two measurements disagree beyond their intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A peak measured again, after the cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakAgain {
    pub gflops: f64,
    pub gflops_ci95_low: f64,
    pub gflops_ci95_high: f64,
    pub best_gflops: Option<f64>,
}

impl Peak {
    /// What `% of peak` is taken against: the best window of either measurement.
    pub fn attainable(&self) -> f64 {
        let before = self.best_gflops.unwrap_or(self.gflops);
        match &self.after {
            Some(a) => before.max(a.best_gflops.unwrap_or(a.gflops)),
            None => before,
        }
    }
}

/// What a result file describes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub machine: Fingerprint,
    pub started_utc: String,
    pub finished_utc: Option<String>,
    pub profile: Profile,
    /// Seed of the weights and inputs.
    pub seed: u64,
    /// The command line that produced the file.
    pub command: Vec<String>,
    /// Peaks of the backends used, measured in this run.
    pub peaks: Vec<Peak>,
    /// Energy sources and constants of the run.
    pub energy: Option<EnergyEnv>,
    /// The slice of the work this run measured (`--shard I/N`); absent for whole runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::cluster::Shard>,
    /// The Slurm job the run was part of, from its environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::cluster::SlurmJob>,
}

/// The energy side of a run's environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnergyEnv {
    /// `measured` or `estimated`.
    pub kind: String,
    /// Where every cell's energy figure comes from.
    pub source: String,
    /// Measured meters in use (empty when estimated).
    pub meters: Vec<String>,
    /// Idle power measured before the run (measured meters only), watts: what net figures
    /// subtract.
    pub idle_power_w: Option<f64>,
    /// Idle power measured again after the cells, watts (files before December 2026: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_after_w: Option<f64>,
    /// Why the idle figures are in doubt: measured while the machine was busy, or moved
    /// between before and after the cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle_warnings: Vec<String>,
    pub idle_s: f64,
    pub prices: crate::energy::Prices,
}

/// Outcome of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    Ok,
    Failed,
}

/// One measured combination of model x backend x device x batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Host the cell was measured on (kept when files from many machines are merged).
    #[serde(default)]
    pub host: Option<String>,
    pub model: String,
    /// The sizes the model's symbolic dimensions were bound to (`--dim sequence=128`; the
    /// model's name carries them too: `bert[sequence=128]`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dims: std::collections::BTreeMap<String, usize>,
    /// Tokens per example of a model with a sequence (token ids read, or the bound sequence
    /// length): time and energy per token are the per-example figures divided by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_example: Option<u64>,
    /// Where the examples came from when they were read, not generated (`run --inputs DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    pub backend: String,
    /// Device name (CPU model or GPU adapter).
    pub device: String,
    pub device_kind: DeviceKind,
    pub threads: Option<usize>,
    pub batch: usize,
    /// The numeric precision the model ran in (`fp32` in files before schema version 2).
    #[serde(default)]
    pub precision: Precision,
    pub status: CellStatus,
    /// Why the cell failed, when it did.
    pub error: Option<String>,
    pub params: u64,
    pub macs_per_example: u64,
    pub fpo_per_example: u64,
    pub transcendentals_per_example: u64,
    /// Integer operations per example: 2 x int8 MACs + the integer epilogues, pools and
    /// borders (rules in docs/INT8.md); 0 for fp32. Never counted as FPO.
    #[serde(default)]
    pub int_ops_per_example: u64,
    /// End-to-end (host input -> host output) seconds per example.
    pub time_per_example_s: Option<Summary>,
    /// Device-only seconds per example, where the device reports it.
    pub device_time_per_example_s: Option<Summary>,
    /// Why there is no device time, when there is none.
    pub device_time_note: Option<String>,
    pub examples_per_s: Option<f64>,
    /// Achieved GFPO/s (FPO per example / median time per example).
    pub gflops: Option<f64>,
    /// `gflops` as a percentage of this backend's measured matmul peak in the same run.
    pub pct_of_peak: Option<f64>,
    /// Joules per example: net of idle power when a counter was read and idle measured,
    /// else gross; the estimate where no counter is readable; null when neither works.
    pub energy_per_example_j: Option<f64>,
    /// Where the energy figure comes from (or why there is none), with its model if estimated.
    pub energy_source: String,
    /// `measured` or `estimated` (null when there is no figure).
    pub energy_kind: Option<String>,
    /// Median over windows of gross joules per example (everything the meters saw).
    pub energy_gross_per_example_j: Option<f64>,
    /// Median over windows of (gross - idle power x window time) per example.
    pub energy_net_per_example_j: Option<f64>,
    /// Per-window joules per example behind `energy_per_example_j`.
    pub energy_samples_j: Vec<f64>,
    /// Average power during the windows (gross, or the estimate's), watts.
    pub avg_power_w: Option<f64>,
    /// FPO per joule (of `energy_per_example_j`).
    pub fpo_per_joule: Option<f64>,
    /// grams CO2e per million examples at the run's grid intensity.
    pub co2e_g_per_million: Option<f64>,
    /// US dollars per million examples at the run's electricity price.
    pub cost_usd_per_million: Option<f64>,
    /// Average CPU cores other processes kept busy during the windows.
    pub other_cpu_cores: Option<f64>,
    /// Share of all CPU time the hypervisor took during the cell (steal, /proc/stat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_share: Option<f64>,
    /// Mean core clock during the cell, MHz (cpufreq, where readable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mhz: Option<f64>,
    /// Notes on the measurement's validity (a busy machine, a clamped net figure...).
    pub warnings: Vec<String>,
    /// The windows disagree beyond [`crate::stats::UNSTABLE_CV`]: the median is not a figure
    /// to publish as it stands (a warning names the likely causes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unstable: bool,
    /// Measured `--until-stable`: whether the interval got within the asked width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<bool>,
    /// Test accuracy, for training cells (backend `cpu-train`).
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// What a training cell trained (dataset, split, optimizer, epochs), for training cells.
    #[serde(default)]
    pub train: Option<String>,
    /// Training example-passes of a training cell's run (examples x epochs).
    #[serde(default)]
    pub train_passes: Option<u64>,
    /// Peak resident memory of the process while this cell was prepared and measured.
    pub peak_rss_bytes: Option<u64>,
    /// The seed the weights were generated from; null where they were not (a checkpoint given
    /// with --weights, an ONNX file's own: `weights_source` says). Files written before
    /// December 2026 recorded the run's --seed here even then.
    pub weights_seed: Option<u64>,
    /// Where the weights came from when not from `weights_seed` alone.
    #[serde(default)]
    pub weights_source: Option<String>,
    /// FNV-1a 64 of the weights, hex: equal fingerprints mean identical weights.
    pub weights_fingerprint: String,
    pub warmup_batches: u64,
    /// Batches run in each measurement window.
    pub window_batches: Vec<u64>,
    /// CPU seconds of the measured process tree (tracked commands: `greenbench track`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Power over time, `[seconds since start, watts]` at the tracking interval (tracked
    /// commands; gross for counters, the estimate's for the estimate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub power_series_w: Vec<[f64; 2]>,
    /// The run's first cell on its backend, measured again after the backend's other cells
    /// (a slowdown that lasts through the first cell passes every within-cell check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remeasured: Option<Remeasured>,
    /// The machine's speed during the cell: a fixed reference matmul on the cell's backend,
    /// timed between its windows ([`crate::reference`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_reference: Option<MachineReference>,
    /// How the backend ran this precision where that is not plain (bf16 on `vdpbf16ps`, or
    /// emulated: operands rounded, fp32 arithmetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_note: Option<String>,
    /// How the backend computed where its arithmetic differs from the counted FPO (a fast
    /// convolution algorithm: fewer multiplies than FPO.md counts for the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_note: Option<String>,
    /// How the backend used the machine where that differs from the cell's settings (a
    /// batch-1 run kept on one thread of the `threads` asked for, as faster here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_note: Option<String>,
}

/// A fixed `n x n x n` fp32 matmul on the cell's backend, timed after each of the cell's
/// windows (the fastest of [`crate::reference::REFERENCE_RUNS`] runs each time): the
/// machine's speed while the cell was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineReference {
    pub n: usize,
    /// Counted FPO per second at the median time, and its 95 % interval.
    pub gflops: f64,
    pub gflops_ci95_low: f64,
    pub gflops_ci95_high: f64,
    /// The per-window times, seconds per product.
    pub time_s: Summary,
}

/// A cell measured again at the end of its backend's cells (see [`crate::recheck`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remeasured {
    pub time_per_example_s: Summary,
    #[serde(default)]
    pub energy_per_example_j: Option<f64>,
    #[serde(default)]
    pub cpu_mhz: Option<f64>,
    /// The first measurement was slowed down against this one (95 % intervals apart, medians
    /// more than [`crate::recheck::FIRST_CELL_TOLERANCE`] apart): the cell is flagged unstable.
    pub disagrees: bool,
}

impl Cell {
    /// Median seconds per token (per example / tokens per example), for models with a sequence.
    pub fn time_per_token_s(&self) -> Option<f64> {
        let t = self.time_per_example_s.as_ref()?;
        Some(t.median / self.tokens_per_example.filter(|&n| n > 0)? as f64)
    }

    /// Joules per token, for models with a sequence.
    pub fn energy_per_token_j(&self) -> Option<f64> {
        Some(self.energy_per_example_j? / self.tokens_per_example.filter(|&n| n > 0)? as f64)
    }

    /// Whether this measurement is flagged `unstable`: marked so when measured, or (files
    /// written before the flag) windows whose CV exceeds [`crate::stats::UNSTABLE_CV`].
    /// Training cells (one window per epoch) are not judged this way.
    pub fn is_unstable(&self) -> bool {
        self.unstable
            || (self.accuracy.is_none()
                && (self.time_per_example_s.as_ref())
                    .is_some_and(|t| t.cv > crate::stats::UNSTABLE_CV))
    }
}

/// A whole result file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    pub schema_version: u32,
    pub status: RunStatus,
    pub environment: Environment,
    pub cells: Vec<Cell>,
    /// For a merged file: the environments of every file merged into it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<Environment>,
}

/// A result file that could not be read. Always names the path.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a greenbench result file: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error(
        "{path} has schema_version {found}; this greenbench reads versions {readable:?}. Use a matching greenbench release."
    )]
    Version {
        path: PathBuf,
        found: u64,
        readable: &'static [u32],
    },
}

impl ResultFile {
    /// Read and validate a result file.
    pub fn load(path: &Path) -> Result<ResultFile, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// [`Self::load`] on text already read (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ResultFile, LoadError> {
        let malformed = |message: String| LoadError::Malformed {
            path: path.to_path_buf(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let found = v
            .get("schema_version")
            .and_then(|s| s.as_u64())
            .ok_or_else(|| malformed("missing or non-integer field `schema_version`".into()))?;
        if !READABLE_VERSIONS.iter().any(|&r| r as u64 == found) {
            return Err(LoadError::Version {
                path: path.to_path_buf(),
                found,
                readable: READABLE_VERSIONS,
            });
        }
        serde_path_error(text).map_err(malformed)
    }

    /// Write atomically to `path`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("result serialises");
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }
}

/// Deserialize with the offending field's path in the message (e.g. `cells[3].batch`).
fn serde_path_error(text: &str) -> Result<ResultFile, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        format!("field `{path}`: {}", e.into_inner())
    })
}

/// Write `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
/// A reader sees the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fail early (before any measuring) if `path` cannot be written: its directory must exist
/// (or be creatable when `create_dirs`), and a file must be creatable there.
pub fn check_writable(path: &Path, create_dirs: bool) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is a directory; give a file path such as {}/run.json",
            path.display(),
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if create_dirs {
        std::fs::create_dir_all(&dir)?;
    }
    let probe = dir.join(format!(".greenbench-probe-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}
