//! `greenbench merge`: one file from many machines' runs, nothing lost, conflicts reported.

use crate::{Loaded, key};
use greenbench_harness::record::{ResultFile, RunStatus};
use std::collections::BTreeMap;

/// A merged file and the keys measured more than once with different results.
pub struct Merged {
    pub file: ResultFile,
    /// `key: file a vs file b` for cells present in several files with different values.
    pub conflicts: Vec<String>,
}

/// Merge `files` (at least one). Every cell is kept, tagged with its host; the first file's
/// environment heads the result and every file's environment is kept in `merged_from`.
/// Identical duplicates (the same cell merged twice) are kept once.
pub fn merge(files: &[Loaded]) -> Merged {
    assert!(!files.is_empty(), "nothing to merge");
    let mut out = files[0].file.clone();
    out.cells.clear();
    out.merged_from.clear();
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for l in files {
        if l.file.merged_from.is_empty() {
            out.merged_from.push(l.file.environment.clone());
        } else {
            out.merged_from.extend(l.file.merged_from.iter().cloned());
        }
        for c in &l.file.cells {
            let mut c = c.clone();
            c.host
                .get_or_insert_with(|| l.file.environment.machine.hostname.clone());
            let k = key(l, &c);
            if let Some((from, idx)) = seen.get(&k) {
                if out.cells[*idx] == c {
                    continue;
                }
                conflicts.push(format!(
                    "{k}: {from} vs {} (both kept)",
                    crate::short(&l.path)
                ));
            }
            seen.insert(k, (crate::short(&l.path), out.cells.len()));
            out.cells.push(c);
        }
    }
    out.status = if files.iter().all(|l| l.file.status == RunStatus::Complete) {
        RunStatus::Complete
    } else {
        RunStatus::Interrupted
    };
    Merged {
        file: out,
        conflicts,
    }
}
