//! The price tag as a label: per model and machine in the result files, a small
//! self-contained SVG card a person can put in a README or a paper — what ran, on what, what
//! one example costs in work, time, energy, CO2e and money, the accuracy and the training
//! price tag where the files know them, the energy rank among models of the same task on
//! the same machine, and the file and commit every figure comes from.

use crate::cost::{EnergyBasis, Pricing, cheapest, price_sweep};
use crate::plot::escape;
use crate::text::{ESTIMATE_MARK, duration, joules, kind_label, si};
use crate::{Loaded, machine_of, ok_cells, short};
use greenbench_harness::record::Cell;
use std::collections::BTreeMap;
use std::fmt::Write;

/// How the 1-to-5 energy scale is defined, printed on every label that shows it.
pub const SCALE_DEFINITION: &str = "1 = least energy per example among the models of this task on this machine, 5 = most; rank r of n maps to 1 + round(4 (r-1)/(n-1))";

/// One label.
#[derive(Clone, Debug)]
pub struct Label {
    pub model: String,
    /// The machine: host and CPU ([`crate::machine_of`]).
    pub host: String,
    /// The task its rank is among (zoo table, or the training data's name).
    pub task: Option<String>,
    /// The score on the 1-to-5 scale and how many models it was ranked among (`None`: the
    /// only model of its task on its machine, or no energy figure).
    pub score: Option<(u8, usize)>,
    /// Its file name inside the report's `labels/` folder.
    pub file_name: String,
    pub svg: String,
}

/// The task a model's cells belong to: the zoo's, else the dataset a training cell names.
pub fn task_of(model: &str, cells: &[&Cell]) -> Option<String> {
    if let Some(t) = greenbench_core::zoo::zoo_task(model) {
        return Some(t.to_string());
    }
    cells.iter().find_map(|c| {
        c.train
            .as_deref()
            .map(|t| t.split(" (").next().unwrap_or(t).trim().to_string())
    })
}

/// The pricing a label and the report's training tags use: the file's own grid and price
/// (what its cells' CO2e and money were computed with), PUE 1, gross energy.
pub fn pricing_of(l: &Loaded) -> Pricing {
    let p = l
        .file
        .environment
        .energy
        .as_ref()
        .map(|e| e.prices.clone())
        .unwrap_or_default();
    Pricing::at(p, crate::cost::DEFAULT_PUE, EnergyBasis::Gross)
}

/// The cell a label shows for one model on one machine: its cheapest inference cell (the
/// lowest energy per example among cells of one kind, measured ones first), with why.
fn chosen<'a>(cells: &[(&'a Loaded, &'a Cell)]) -> Option<((&'a Loaded, &'a Cell), String)> {
    let inference: Vec<_> = cells
        .iter()
        .filter(|(_, c)| !crate::cost::is_run(c))
        .copied()
        .collect();
    cheapest(&inference, EnergyBasis::Gross)
}

/// Words wrapped to `width` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for w in s.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + w.chars().count() > width {
            lines.push(w.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(w);
        }
    }
    lines
}

/// Every label of `files`: one per model and machine with a finished cell.
pub fn labels(files: &[Loaded]) -> Vec<Label> {
    let mut by: BTreeMap<(String, String), Vec<(&Loaded, &Cell)>> = BTreeMap::new();
    for (l, c) in ok_cells(files) {
        by.entry((c.model.clone(), machine_of(l, c)))
            .or_default()
            .push((l, c));
    }
    // The rank: per (host, task, energy kind), by the chosen cell's energy per example.
    let mut energy: BTreeMap<(String, String, String), Vec<(f64, String)>> = BTreeMap::new();
    let mut picks = BTreeMap::new();
    for ((model, host), cells) in &by {
        let just: Vec<&Cell> = cells.iter().map(|(_, c)| *c).collect();
        let task = task_of(model, &just);
        let pick = chosen(cells);
        if let (Some(t), Some(((_, c), _))) = (&task, &pick)
            && let (Some(j), Some(k)) = (
                EnergyBasis::Gross.of(c).filter(|j| *j > 0.0),
                c.energy_kind.clone(),
            )
        {
            energy
                .entry((host.clone(), t.clone(), k))
                .or_default()
                .push((j, model.clone()));
        }
        picks.insert((model.clone(), host.clone()), (task, pick));
    }
    let mut scores: BTreeMap<(String, String), (u8, usize)> = BTreeMap::new();
    for ((host, _, _), mut v) in energy {
        if v.len() < 2 {
            continue;
        }
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let n = v.len();
        for (r, (_, model)) in v.iter().enumerate() {
            let score = 1 + (4.0 * r as f64 / (n - 1) as f64).round() as u8;
            scores.insert((model.clone(), host.clone()), (score, n));
        }
    }
    let mut out = Vec::new();
    for ((model, host), cells) in &by {
        let (task, pick) = picks.remove(&(model.clone(), host.clone())).expect("each");
        let score = scores.get(&(model.clone(), host.clone())).copied();
        let svg = card(model, host, task.as_deref(), pick, cells, score);
        out.push(Label {
            model: model.clone(),
            host: host.clone(),
            task,
            score,
            file_name: format!(
                "{}--{}.svg",
                crate::html::page::slug(model),
                crate::html::page::slug(host)
            ),
            svg,
        });
    }
    out
}

/// The SVG card.
fn card(
    model: &str,
    host: &str,
    task: Option<&str>,
    pick: Option<((&Loaded, &Cell), String)>,
    cells: &[(&Loaded, &Cell)],
    score: Option<(u8, usize)>,
) -> String {
    const W: usize = 400;
    let mut lines: Vec<(String, &'static str)> = Vec::new(); // (text, style class)
    // Every line wrapped to the card's width, continuations indented.
    let mut add = |t: String, class: &'static str| {
        let width = match class {
            "s" => 72,
            "big" => 50,
            _ => 62,
        };
        for (i, w) in wrap(&t, width).into_iter().enumerate() {
            lines.push((if i == 0 { w } else { format!("  {w}") }, class));
        }
    };
    add(
        format!("task: {}", task.unwrap_or("not known (not a zoo model)")),
        "t",
    );
    let any = pick
        .as_ref()
        .map(|((l, _), _)| *l)
        .or(cells.first().map(|x| x.0));
    if let Some(l) = any {
        let cores = l
            .file
            .merged_from
            .iter()
            .chain([&l.file.environment])
            .find(|e| host.starts_with(&format!("{} (", e.machine.hostname)))
            .map_or(0, |e| e.machine.cpu_logical_cores);
        add(format!("machine: {host}, {cores} logical cores"), "t");
    }
    let mut files: Vec<String> = Vec::new();
    let mut commit = String::from("unknown");
    let mut date = String::new();
    match &pick {
        Some(((l, c), _)) => {
            files.push(short(&l.path));
            commit = l
                .file
                .environment
                .machine
                .git_commit
                .as_deref()
                .map_or("unknown".into(), |c| c.chars().take(10).collect());
            date = l.file.environment.started_utc.chars().take(10).collect();
            add(
                format!(
                    "cell: {} ({}{}), {}, batch {}",
                    c.backend,
                    kind_label(c.device_kind),
                    c.threads.map(|t| format!(", {t} thr")).unwrap_or_default(),
                    c.precision,
                    c.batch
                ),
                "t",
            );
            add(
                format!(
                    "work: {} FPO, {} MACs, {} parameters per example",
                    si(c.fpo_per_example as f64),
                    si(c.macs_per_example as f64),
                    si(c.params as f64)
                ),
                "t",
            );
            let t = c.time_per_example_s.as_ref().expect("ok cells have times");
            add(
                format!(
                    "time: {} per example (95 %: {} – {}){}",
                    duration(t.median),
                    duration(t.ci95_low),
                    duration(t.ci95_high),
                    if c.is_unstable() { " (!) unstable" } else { "" }
                ),
                "t",
            );
            let est = c.energy_kind.as_deref() == Some("estimated");
            match c.energy_per_example_j {
                Some(j) => add(
                    format!(
                        "energy: {} per example{}",
                        joules(j),
                        if est {
                            format!(" {ESTIMATE_MARK}")
                        } else {
                            format!(" ({})", c.energy_kind.as_deref().unwrap_or("?"))
                        },
                    ),
                    "big",
                ),
                None => add("energy: not measured".into(), "big"),
            }
            add(format!("source: {}", c.energy_source), "s");
            let prices = l
                .file
                .environment
                .energy
                .as_ref()
                .map(|e| e.prices.clone())
                .unwrap_or_default();
            add(
                format!(
                    "per 1M examples: {} g CO2e, ${}{}",
                    c.co2e_g_per_million
                        .map_or("n/a".into(), |g| format!("{g:.3}")),
                    c.cost_usd_per_million
                        .map_or("n/a".into(), |u| format!("{u:.2e}")),
                    if est { " (from the estimate)" } else { "" }
                ),
                "t",
            );
            add(
                format!(
                    "  at {} g CO2e/kWh, ${}/kWh, PUE 1",
                    prices.grid_g_co2e_per_kwh, prices.usd_per_kwh
                ),
                "s",
            );
        }
        None => add(
            "no inference cell: inference cost not in these files".into(),
            "t",
        ),
    }
    // Accuracy and the training price tag, from the training cells of this model here.
    let train: Vec<(&Loaded, &Cell)> = cells
        .iter()
        .filter(|(_, c)| crate::cost::is_run(c))
        .copied()
        .collect();
    match train
        .iter()
        .filter_map(|(l, c)| c.accuracy.map(|a| (a, *l, *c)))
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
    {
        Some((a, l, c)) => {
            add(
                format!(
                    "test accuracy: {:.2} % (best of {} training run(s); {})",
                    100.0 * a,
                    train.len(),
                    c.train
                        .as_deref()
                        .and_then(|t| t.split(" (").next())
                        .unwrap_or("?")
                ),
                "t",
            );
            if !files.contains(&short(&l.path)) {
                files.push(short(&l.path));
            }
            let owned: Vec<Cell> = train.iter().map(|(_, c)| (*c).clone()).collect();
            let p = price_sweep(&owned, &pricing_of(l));
            let kind = if owned
                .iter()
                .all(|c| c.energy_kind.as_deref() == Some("measured"))
            {
                "measured".to_string()
            } else {
                ESTIMATE_MARK.to_string()
            };
            let kind = if kind == ESTIMATE_MARK {
                kind
            } else {
                format!("({kind})")
            };
            if date.is_empty() {
                date = l.file.environment.started_utc.chars().take(10).collect();
                commit = l
                    .file
                    .environment
                    .machine
                    .git_commit
                    .as_deref()
                    .map_or("unknown".into(), |c| c.chars().take(10).collect());
            }
            add(
                format!(
                    "training E·D·H: {} run(s), {:.3e} FPO, {}, {} {kind}, {} g CO2e",
                    p.runs,
                    p.totals.total_fpo,
                    duration(p.totals.seconds),
                    p.totals
                        .kwh
                        .map_or("n/a".into(), |k| format!("{k:.3e} kWh")),
                    p.totals.co2e_g.map_or("n/a".into(), |g| format!("{g:.3}")),
                ),
                "t",
            );
        }
        None => add(
            "test accuracy: not in these files (greenbench train)".into(),
            "t",
        ),
    }
    let rank_text = match (score, task) {
        (Some((sc, n)), Some(t)) => format!("energy scale: {sc} of 5, among {n} models of {t} on this machine"),
        (None, Some(_)) => {
            "energy scale: not ranked (no other model of this task on this machine with energy of the same kind in these files)".to_string()
        }
        (_, None) => "energy scale: not ranked (task not known)".to_string(),
    };
    let rank_lines = wrap(&rank_text, 62);
    let def_lines = wrap(SCALE_DEFINITION, 72);
    let foot = wrap(
        &format!(
            "{} · greenbench {} · commit {commit} · from {}",
            if date.is_empty() {
                "date unknown".to_string()
            } else {
                date
            },
            any.map_or("?".into(), |l| l
                .file
                .environment
                .machine
                .greenbench_version
                .clone()),
            files.join(", ")
        ),
        72,
    );
    let rank_h = 30 + 15 * rank_lines.len() + 12 * def_lines.len() + 8;
    let line_h = 17;
    let top = 58;
    let h = top + lines.len() * line_h + rank_h + 12 * foot.len() + 10;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" role=\"img\" font-family=\"system-ui, sans-serif\">\
         <title>greenbench price tag: {} on {}</title><desc>{}</desc>\
         <style>.t{{font-size:11.5px;fill:#1b1b1b}}.s{{font-size:9.5px;fill:#555}}.big{{font-size:13px;font-weight:700;fill:#1b1b1b}}</style>\
         <rect x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"{}\" rx=\"8\" fill=\"#fff\" stroke=\"#1b1b1b\"/>\
         <rect x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"40\" rx=\"8\" fill=\"#0072b2\"/>\
         <text x=\"12\" y=\"19\" font-size=\"11\" fill=\"#fff\">greenbench price tag</text>\
         <text x=\"12\" y=\"35\" font-size=\"15\" font-weight=\"700\" fill=\"#fff\">{}</text>",
        escape(model),
        escape(host),
        escape(
            &lines
                .iter()
                .map(|(t, _)| t.trim().to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        W - 1,
        h - 1,
        W - 1,
        escape(model)
    );
    for (i, (t, class)) in lines.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"12\" y=\"{}\" class=\"{class}\" xml:space=\"preserve\">{}</text>",
            top + i * line_h,
            escape(t)
        );
    }
    // The 1-to-5 scale.
    let y0 = top + lines.len() * line_h;
    let colours = ["#009e73", "#56b4e9", "#f0e442", "#e69f00", "#d55e00"];
    for (i, col) in colours.iter().enumerate() {
        let on = score.is_some_and(|(sc, _)| sc as usize == i + 1);
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"36\" height=\"20\" fill=\"{col}\" stroke=\"#1b1b1b\" stroke-width=\"{}\" opacity=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"{}\" text-anchor=\"middle\" fill=\"#1b1b1b\">{}</text>",
            12 + i * 40,
            y0,
            if on { 3 } else { 1 },
            if score.is_none() || on { "1" } else { "0.35" },
            30 + i * 40,
            y0 + 15,
            if on { 700 } else { 400 },
            i + 1
        );
    }
    // The scale's words, its definition, the footer: lines of (text, class, line height).
    let mut y = y0 + 36;
    let blocks: [(&[String], &str, usize, usize); 3] = [
        (&rank_lines, "t", 15, 0),
        (&def_lines, "s", 12, 0),
        (&foot, "s", 12, 8),
    ];
    for (block, class, step, gap) in blocks {
        y += gap;
        for t in block {
            let _ = write!(
                s,
                "<text x=\"12\" y=\"{y}\" class=\"{class}\">{}</text>",
                escape(t)
            );
            y += step;
        }
    }
    s.push_str("</svg>\n");
    s
}
