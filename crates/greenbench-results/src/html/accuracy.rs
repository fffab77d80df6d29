//! Accuracy against what it cost — the Green AI paper's figure — and the training price tags:
//! from every finished cell that carries a test accuracy (the runs `greenbench train`
//! measures), accuracy against FPO and energy, per example and per training run, with the
//! Pareto front marked; then each model's E · D · H price tag of the runs in the files.

use super::page::{HtmlTable, Td, figure};
use crate::label::pricing_of;
use crate::plot::{Point, escape, mark_front, pareto};
use crate::text::{ESTIMATE_MARK, energy_marked};
use crate::{Loaded, host_of, machine_of, ok_cells, short};
use greenbench_harness::record::Cell;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the section says when no file carries accuracy.
pub const NO_ACCURACY: &str = "None of these result files carries a test accuracy, so the accuracy-against-cost (Pareto) figures cannot be drawn. Add files that do: `greenbench train --model lenet5 --out lenet5.json` (or a sweep, `--lr 0.001,0.003`) measures training and scores the trained model on held-out data; give those files to `greenbench report` with the others.";

/// The cells with an accuracy, with their file.
fn scored(files: &[Loaded]) -> Vec<(&Loaded, &Cell)> {
    ok_cells(files)
        .into_iter()
        .filter(|(_, c)| c.accuracy.is_some())
        .collect()
}

/// The legend entry of a point: model, precision, machine.
fn series(l: &Loaded, c: &Cell) -> String {
    format!("{} {} on {}", c.model, c.precision, machine_of(l, c))
}

/// One Pareto figure: accuracy against `x` of every scored cell that has it.
fn figure_of(
    id: &str,
    title: &str,
    x_label: &str,
    cells: &[(&Loaded, &Cell)],
    x: impl Fn(&Cell) -> Option<f64>,
    x_text: impl Fn(&Cell) -> String,
) -> String {
    let mut pts = Vec::new();
    let mut rows = Vec::new();
    for (l, c) in cells {
        let Some(v) = x(c).filter(|v| *v > 0.0 && v.is_finite()) else {
            continue;
        };
        pts.push(Point {
            series: series(l, c),
            x: v,
            y: 100.0 * c.accuracy.unwrap_or(0.0),
            front: false,
        });
        rows.push((*l, *c));
    }
    if pts.is_empty() {
        return format!(
            "<p id=\"{id}\">{title}: no scored cell has this figure (an energy figure needs a readable meter or the estimate).</p>\n"
        );
    }
    mark_front(&mut pts);
    let mut t = HtmlTable::new(
        &format!("{id}-data"),
        &format!("{title}: the points"),
        &format!("model|precision|machine|run|>test accuracy|>{x_label}|Pareto front|file"),
    );
    for (p, (l, c)) in pts.iter().zip(&rows) {
        t.row(
            // An energy figure's row says its kind (a test checks the mark is there).
            if x_label.starts_with("energy") {
                format!(
                    " data-point=\"1\" data-front=\"{}\" data-kind=\"{}\"",
                    p.front,
                    escape(c.energy_kind.as_deref().unwrap_or("none"))
                )
            } else {
                format!(" data-point=\"1\" data-front=\"{}\"", p.front)
            },
            vec![
                Td::text(&c.model),
                Td::text(c.precision.to_string()),
                Td::text(machine_of(l, c)),
                Td::text(c.train.as_deref().unwrap_or("")),
                Td::num(format!("{:.2} %", p.y), Some(p.y)),
                Td::num(x_text(c), Some(p.x)),
                Td::text(if p.front { "yes" } else { "" }),
                Td::text(short(&l.path)),
            ],
        );
    }
    match pareto(title, x_label, &pts) {
        Some(svg) => figure(
            id,
            &svg,
            &format!(
                "{title}. Ringed points joined by the dashed staircase are the Pareto front: no other point is as cheap and more accurate. {} point(s), {} on the front.",
                pts.len(),
                pts.iter().filter(|p| p.front).count()
            ),
            Some(&t),
        ),
        None => format!("<p>{title}: the plot could not be drawn.</p>\n"),
    }
}

/// The accuracy section: four Pareto figures, or what to do to get them.
pub fn pareto_section(files: &[Loaded]) -> String {
    let cells = scored(files);
    if cells.is_empty() {
        return format!(
            "<p id=\"no-accuracy\" class=\"note\">{}</p>\n",
            escape(NO_ACCURACY).replace('`', "")
        );
    }
    let any_est = cells
        .iter()
        .any(|(_, c)| c.energy_kind.as_deref() == Some("estimated"));
    let passes = |c: &Cell| c.train_passes.unwrap_or(0) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<p>Per example: one training example-pass (forward, backward, update), as the training cell measured it. Per run: that times the run's example-passes (D × epochs). FPO are counted (shared/FPO.md), time and energy measured{}.</p>",
        if any_est {
            format!("; energy marked {ESTIMATE_MARK} is the labelled estimate, not a meter reading")
        } else {
            String::new()
        }
    );
    s.push_str(&figure_of(
        "pareto-fpo-run",
        "test accuracy against the training run's FPO",
        "training FPO of the run (counted)",
        &cells,
        |c| Some(c.fpo_per_example as f64 * passes(c)),
        |c| format!("{:.3e}", c.fpo_per_example as f64 * passes(c)),
    ));
    s.push_str(&figure_of(
        "pareto-energy-run",
        "test accuracy against the training run's energy",
        &format!(
            "energy of the training run (J){}",
            if any_est { " (est.: estimated)" } else { "" }
        ),
        &cells,
        |c| c.energy_per_example_j.map(|j| j * passes(c)),
        |c| {
            energy_marked(
                c.energy_per_example_j.map(|j| j * passes(c)),
                c.energy_kind.as_deref(),
            )
        },
    ));
    s.push_str(&figure_of(
        "pareto-fpo-example",
        "test accuracy against FPO per training example",
        "FPO per training example-pass (counted)",
        &cells,
        |c| Some(c.fpo_per_example as f64),
        |c| format!("{:.3e}", c.fpo_per_example as f64),
    ));
    s.push_str(&figure_of(
        "pareto-energy-example",
        "test accuracy against energy per training example",
        &format!(
            "energy per training example-pass (J){}",
            if any_est { " (est.: estimated)" } else { "" }
        ),
        &cells,
        |c| c.energy_per_example_j,
        |c| energy_marked(c.energy_per_example_j, c.energy_kind.as_deref()),
    ));
    s
}

/// The E · D · H price tags of the training runs in the files, per model and machine, with
/// the energy of each epoch where the run recorded it.
pub fn training_tags(files: &[Loaded]) -> String {
    let mut by: BTreeMap<(String, String), Vec<(&Loaded, &Cell)>> = BTreeMap::new();
    for (l, c) in ok_cells(files)
        .into_iter()
        .filter(|(_, c)| crate::cost::is_run(c))
    {
        by.entry((c.model.clone(), host_of(l, c).to_string()))
            .or_default()
            .push((l, c));
    }
    if by.is_empty() {
        return "<p>No training runs in these files (<code>greenbench train</code> measures them).</p>\n".into();
    }
    let mut s = String::new();
    for ((model, host), runs) in &by {
        let pricing = pricing_of(runs[0].0);
        let q = crate::cost::CostQuery {
            model: model.clone(),
            examples: 0,
            epochs: 1,
            runs: 1,
            backend: None,
            batch: None,
            precision: runs[0].1.precision,
            pricing,
        };
        // The files these runs are in, each cut to this host's cells (a merged file may
        // hold several hosts).
        let mut mine: Vec<Loaded> = Vec::new();
        for (l, _) in runs {
            if mine.iter().any(|x| x.path == l.path) {
                continue;
            }
            let mut l = (*l).clone();
            let hostname = l.file.environment.machine.hostname.clone();
            l.file
                .cells
                .retain(|c| c.host.as_deref().unwrap_or(&hostname) == host);
            mine.push(l);
        }
        let _ = writeln!(
            s,
            "<h3 id=\"train-{}\">{} on {}</h3>",
            super::page::slug(&format!("{model}-{host}")),
            escape(model),
            escape(host)
        );
        match crate::cost::price_measured_sweep(&mine, &q) {
            Ok((_, text)) => {
                let _ = writeln!(
                    s,
                    "<pre>{}</pre><p class=\"note\">PUE 1 (no data-centre overhead), gross energy, the grid and price the run recorded; <code>greenbench cost --model {} --from FILES</code> prices it with other assumptions.</p>",
                    escape(&text),
                    escape(model)
                );
            }
            Err(e) => {
                let _ = writeln!(s, "<p>{}</p>", escape(&e));
            }
        }
        // A tracked command's power time series, where it recorded one.
        let mut power: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (l, c) in runs.iter().filter(|(_, c)| !c.power_series_w.is_empty()) {
            power.insert(
                format!("{} ({})", c.model, short(&l.path)),
                c.power_series_w.iter().map(|p| (p[0], p[1])).collect(),
            );
        }
        let est = runs
            .iter()
            .any(|(_, c)| c.energy_kind.as_deref() == Some("estimated"));
        if let Some(svg) = crate::plot::lines(
            &format!("{model} on {host}: power while the command ran"),
            "seconds since the command started",
            if est {
                "power (W) (est.: estimated from CPU time)"
            } else {
                "power (W), gross (measured)"
            },
            &power,
        ) {
            s.push_str(&figure(
                &format!("power-{}", super::page::slug(&format!("{model}-{host}"))),
                &svg,
                "Power at each sampling interval of the tracked command: counters' gross power (idle included) where measured, else the estimate from the process tree's CPU time.",
                None,
            ));
        }
        let mut epochs: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (l, c) in runs.iter().filter(|(_, c)| !c.energy_samples_j.is_empty()) {
            let label = format!(
                "{} ({})",
                c.train.as_deref().unwrap_or("run"),
                short(&l.path)
            );
            // One sample per epoch window: joules per example-pass in that epoch.
            epochs.insert(
                label,
                c.energy_samples_j
                    .iter()
                    .enumerate()
                    .map(|(i, j)| ((i + 1) as f64, j * 1e3))
                    .collect(),
            );
        }
        if let Some(svg) = crate::plot::lines(
            &format!("{model} on {host}: energy per example-pass, epoch by epoch"),
            "epoch",
            "energy per example-pass (mJ)",
            &epochs,
        ) {
            s.push_str(&figure(
                &format!("epochs-{}", super::page::slug(&format!("{model}-{host}"))),
                &svg,
                &format!(
                    "Energy per example-pass in each epoch window of each run (the power time series the run recorded), {}.",
                    runs.iter()
                        .map(|(_, c)| energy_marked(c.energy_per_example_j, c.energy_kind.as_deref()))
                        .next()
                        .map(|e| format!("e.g. {e} over the whole run"))
                        .unwrap_or_default()
                ),
                None,
            ));
        } else if power.is_empty() {
            let _ = writeln!(
                s,
                "<p class=\"note\">No per-epoch energy recorded for these runs ({}): an estimate has no time series; a run with a readable meter records one sample per epoch.</p>",
                runs.iter()
                    .map(|(_, c)| c.energy_kind.clone().unwrap_or_else(|| "none".into()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    s
}
