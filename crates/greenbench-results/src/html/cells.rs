//! The HTML report's tables of measured cells: the baseline tables (one per machine, backend
//! and precision, the terminal's columns and marks), the CPU-versus-GPU comparison and int8
//! against fp32.

use super::page::{HtmlTable, Td};
use crate::plot::escape;
use crate::text::{ESTIMATE_MARK, RUN_COLUMNS, UNSTABLE_NOTE, cell_row, mj_marked, us};
use crate::{Loaded, host_of, machine_of, ok_cells, short};
use greenbench_harness::record::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The terminal's text of a cell with its marks set off (`(est.)`, `(!)`), escaped.
fn marked(text: &str) -> String {
    escape(text)
        .replace(
            ESTIMATE_MARK,
            &format!(
                "<span class=\"mark\" title=\"estimated, not measured: see the note under the table\">{ESTIMATE_MARK}</span>"
            ),
        )
        .replace(
            "(!)",
            "<span class=\"mark\" title=\"unstable: see the note under the table\">(!)</span>",
        )
}

/// A cell's row: the terminal table's columns, sortable by their numbers, and its file.
fn cell_tds(l: &Loaded, c: &Cell) -> Vec<Td> {
    let text = cell_row(c);
    let t = c.time_per_example_s.as_ref();
    let sort: [Option<f64>; 15] = [
        None,
        None,
        None,
        Some(c.batch as f64),
        None,
        Some(c.macs_per_example as f64),
        Some(c.fpo_per_example as f64),
        Some(c.int_ops_per_example as f64),
        t.map(|t| t.median),
        t.map(|t| t.ci95_low),
        c.device_time_per_example_s.as_ref().map(|d| d.median),
        c.examples_per_s,
        c.gflops,
        c.pct_of_peak,
        c.energy_per_example_j,
    ];
    let mut tds: Vec<Td> = text
        .into_iter()
        .zip(sort)
        .map(|(txt, v)| Td {
            text: marked(&txt),
            sort: v,
            html: true,
        })
        .collect();
    tds.push(Td::text(short(&l.path)));
    tds
}

/// The baseline tables: per machine, backend and precision, every cell of the files (failed
/// ones too, as the terminal shows them), with the notes their marks point to.
pub fn baselines(files: &[Loaded]) -> String {
    type Group<'a> = BTreeMap<(String, String, String), Vec<(&'a Loaded, &'a Cell)>>;
    let mut groups: Group = BTreeMap::new();
    for l in files {
        for c in &l.file.cells {
            groups
                .entry((machine_of(l, c), c.backend.clone(), c.precision.to_string()))
                .or_default()
                .push((l, c));
        }
    }
    let mut s = String::new();
    for ((host, backend, precision), cells) in &groups {
        let _ = writeln!(
            s,
            "<h3>{} · {} · {}</h3>",
            escape(host),
            escape(backend),
            escape(precision)
        );
        let mut t = HtmlTable::new(
            &format!(
                "cells-{}",
                super::page::slug(&format!("{host}-{backend}-{precision}"))
            ),
            &format!("{host}, backend {backend}, {precision}: one row per cell"),
            &format!("{RUN_COLUMNS}|file"),
        )
        .with_class("cells");
        for (l, c) in cells {
            let kind = c.energy_kind.as_deref().unwrap_or("none");
            let class = if c.time_per_example_s.is_none() {
                " class=\"failed\""
            } else {
                ""
            };
            t.row(
                format!(" data-cell=\"1\" data-kind=\"{}\"{class}", escape(kind)),
                cell_tds(l, c),
            );
        }
        s.push_str(&t.render());
        let mut notes = Vec::new();
        if cells.iter().any(|(_, c)| c.is_unstable()) {
            notes.push(escape(UNSTABLE_NOTE));
        }
        let est: BTreeSet<&str> = cells
            .iter()
            .filter(|(_, c)| c.energy_kind.as_deref() == Some("estimated"))
            .map(|(_, c)| c.energy_source.as_str())
            .collect();
        for e in est {
            notes.push(format!(
                "{ESTIMATE_MARK} estimated energy, not measured — {}",
                escape(e)
            ));
        }
        let measured: BTreeSet<&str> = cells
            .iter()
            .filter(|(_, c)| c.energy_kind.as_deref() == Some("measured"))
            .map(|(_, c)| c.energy_source.as_str())
            .collect();
        for e in measured {
            notes.push(format!("energy measured: {}", escape(e)));
        }
        for n in notes {
            let _ = writeln!(s, "<p class=\"note\">{n}</p>");
        }
    }
    s
}

/// The CPU-versus-GPU comparison of [`crate::report::cpu_gpu`], as a table and its verdicts.
pub fn cpu_vs_gpu(files: &[Loaded]) -> String {
    match crate::report::cpu_gpu(files) {
        None => format!(
            "<p>{}</p>\n",
            escape(crate::report::NO_CPU_GPU).replace("`", "")
        ),
        Some(c) => {
            let mut t = HtmlTable::new(
                "cpu-vs-gpu",
                "per host, model and batch both backends ran (fp32)",
                c.header,
            );
            for r in c.rows {
                t.row(
                    "",
                    r.iter()
                        .map(|x| Td {
                            sort: x.trim_end_matches('x').parse::<f64>().ok(),
                            text: marked(x),
                            html: true,
                        })
                        .collect(),
                );
            }
            let mut s = t.render();
            s.push_str("<ul>");
            for v in c.verdicts {
                let _ = write!(s, "<li>{}</li>", escape(&v));
            }
            s.push_str("</ul>\n");
            s
        }
    }
}

/// int8 against fp32: per machine, model, backend and batch where both precisions ran.
pub fn int8_vs_fp32(files: &[Loaded]) -> String {
    type Pair<'a> = BTreeMap<String, &'a Cell>;
    let mut m: BTreeMap<(String, String, String, usize), Pair> = BTreeMap::new();
    for (l, c) in ok_cells(files)
        .into_iter()
        .filter(|(_, c)| !crate::cost::is_run(c))
    {
        m.entry((
            host_of(l, c).to_string(),
            c.model.clone(),
            c.backend.clone(),
            c.batch,
        ))
        .or_default()
        .insert(c.precision.to_string(), c);
    }
    let mut t = HtmlTable::new(
        "int8-vs-fp32",
        "per host, model, backend and batch both precisions ran",
        "host|model|backend|>batch|>fp32 time/ex (us)|>int8 time/ex (us)|>int8 speed-up|>fp32 energy/ex (mJ)|>int8 energy/ex (mJ)|>int8 / fp32 energy",
    );
    for ((host, model, backend, batch), by) in &m {
        let (Some(f), Some(q)) = (by.get("fp32"), by.get("int8")) else {
            continue;
        };
        let tf = f.time_per_example_s.as_ref().expect("ok").median;
        let tq = q.time_per_example_s.as_ref().expect("ok").median;
        let ratio = match (
            f.energy_per_example_j,
            q.energy_per_example_j,
            f.energy_kind == q.energy_kind,
        ) {
            (Some(a), Some(b), true) if a > 0.0 => Td::num(format!("{:.2}", b / a), Some(b / a)),
            (Some(_), Some(_), false) => Td::text("n/a (not like with like)"),
            _ => Td::text("n/a"),
        };
        t.row(
            "",
            vec![
                Td::text(host),
                Td::text(model),
                Td::text(backend),
                Td::num(batch.to_string(), Some(*batch as f64)),
                Td::num(us(tf), Some(tf)),
                Td::num(us(tq), Some(tq)),
                Td::num(format!("{:.2}x", tf / tq), Some(tf / tq)),
                Td {
                    text: marked(&mj_marked(f.energy_per_example_j, f.energy_kind.as_deref())),
                    sort: f.energy_per_example_j,
                    html: true,
                },
                Td {
                    text: marked(&mj_marked(q.energy_per_example_j, q.energy_kind.as_deref())),
                    sort: q.energy_per_example_j,
                    html: true,
                },
                ratio,
            ],
        );
    }
    if t.is_empty() {
        "<p>No cell was measured in both fp32 and int8 (run with <code>--precision fp32,int8</code>).</p>\n".into()
    } else {
        t.render()
    }
}

/// Time and energy per token of the cells of models with a sequence (per example divided by
/// the tokens per example: the unit language models are compared in).
pub fn per_token(files: &[Loaded]) -> String {
    let mut t = HtmlTable::new(
        "per-token",
        "per token: the per-example figures divided by the tokens per example",
        "host|model|backend|>batch|precision|>tokens/ex|>time/token (us)|>tokens/s|>energy/token (mJ)|file",
    );
    for (l, c) in ok_cells(files) {
        let (Some(per), Some(n)) = (c.time_per_token_s(), c.tokens_per_example) else {
            continue;
        };
        t.row(
            "",
            vec![
                Td::text(host_of(l, c)),
                Td::text(&c.model),
                Td::text(&c.backend),
                Td::num(c.batch.to_string(), Some(c.batch as f64)),
                Td::text(c.precision.to_string()),
                Td::num(n.to_string(), Some(n as f64)),
                Td::num(us(per), Some(per)),
                Td::num(format!("{:.0}", 1.0 / per), Some(1.0 / per)),
                Td {
                    text: marked(&mj_marked(c.energy_per_token_j(), c.energy_kind.as_deref())),
                    sort: c.energy_per_token_j(),
                    html: true,
                },
                Td::text(short(&l.path)),
            ],
        );
    }
    if t.is_empty() {
        String::new()
    } else {
        t.render()
    }
}
