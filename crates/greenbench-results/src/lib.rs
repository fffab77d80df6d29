//! greenbench-results: what people read, cite and compare.
//!
//! It owns turning result files (from one machine or many) into a Markdown report with CSV and
//! SVG plots ([`report`]), the CPU-versus-GPU comparison, regression checks between two files
//! that respect the measured intervals ([`compare`]), merging files without losing anything
//! ([`merge`]), the Green AI price tag Cost(R) ∝ E·D·H of an experiment, from an inference
//! cell or from a measured training sweep ([`cost`]), and how every figure is written, on the
//! terminal and in Markdown ([`text`]: tables, units, the run table). Everything here is
//! computed from result files: no number is typed by hand.
//!
//! It knows nothing of how cells were measured (it reads the harness's schema) and prints
//! nothing itself: it returns text and files for the CLI to show.

pub mod compare;
pub mod cost;
pub mod html;
pub mod label;
pub mod merge;
pub mod plot;
pub mod report;
pub mod text;

use greenbench_harness::record::{Cell, CellStatus, LoadError, ResultFile};
use std::path::{Path, PathBuf};

/// A loaded result file and where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub file: ResultFile,
}

/// Load every file; a bad file is reported and skipped unless `strict`, where the first one
/// fails the whole command.
pub fn load_many(
    paths: &[PathBuf],
    strict: bool,
) -> Result<(Vec<Loaded>, Vec<LoadError>), LoadError> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for p in paths {
        match ResultFile::load(p) {
            Ok(file) => ok.push(Loaded {
                path: p.clone(),
                file,
            }),
            Err(e) if strict => return Err(e),
            Err(e) => bad.push(e),
        }
    }
    Ok((ok, bad))
}

/// The host a cell was measured on.
pub fn host_of<'a>(l: &'a Loaded, c: &'a Cell) -> &'a str {
    c.host
        .as_deref()
        .unwrap_or(&l.file.environment.machine.hostname)
}

/// The machine a cell ran on, as labels and ranks tell machines apart: its host and that
/// host's CPU (hosts of one name with different CPUs, as cloud VMs often are, are different
/// machines).
pub fn machine_of(l: &Loaded, c: &Cell) -> String {
    let host = host_of(l, c);
    let env = l
        .file
        .merged_from
        .iter()
        .find(|e| e.machine.hostname == host)
        .unwrap_or(&l.file.environment);
    format!("{host} ({})", env.machine.cpu_model)
}

/// Identity of a cell across files: host, model, backend, device, batch (and precision),
/// threads.
pub fn key(l: &Loaded, c: &Cell) -> String {
    format!(
        "{} | {} | {} | {} | {} | {}",
        host_of(l, c),
        c.model,
        c.backend,
        c.device,
        crate::text::batch_label(c),
        c.threads.map_or("-".into(), |t| format!("{t} thr"))
    )
}

/// Cells that finished, with their file.
pub fn ok_cells(files: &[Loaded]) -> Vec<(&Loaded, &Cell)> {
    files
        .iter()
        .flat_map(|l| l.file.cells.iter().map(move |c| (l, c)))
        .filter(|(_, c)| c.status == CellStatus::Ok && c.time_per_example_s.is_some())
        .collect()
}

/// A file name for messages and reports (no directories, so reports do not depend on where
/// they were generated).
pub fn short(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}
