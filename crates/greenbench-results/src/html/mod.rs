//! `greenbench report --format html`: one self-contained page, `index.html` (inline style,
//! SVG and a little script for sorting; nothing fetched, opens from `file://`, prints), a
//! page per model (`models/<model>.html`: where its work goes, its cells and plots), and the
//! price-tag labels (`labels/<model>--<host>.svg`, also inlined in the pages). Like the
//! Markdown report it depends only on the files: no clock, no paths, so a committed report
//! regenerates byte for byte.

pub mod accuracy;
pub mod cells;
pub mod page;

use crate::label::{Label, SCALE_DEFINITION, labels};
use crate::plot::escape;
use crate::text::{kind_label, peak_line, si, thousands};
use crate::{Loaded, ok_cells, short};
use page::{HtmlTable, Td, base64, figure, slug};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Every file of the HTML report, by its path inside the output folder.
pub fn render(files: &[Loaded]) -> Vec<(String, String)> {
    let labels = labels(files);
    let models: BTreeSet<String> = files
        .iter()
        .flat_map(|l| l.file.cells.iter().map(|c| c.model.clone()))
        .collect();
    let mut out = vec![("index.html".to_string(), index(files, &labels, &models))];
    for m in &models {
        out.push((
            format!("models/{}.html", slug(m)),
            model_page(files, m, &labels),
        ));
    }
    for l in &labels {
        out.push((format!("labels/{}", l.file_name), l.svg.clone()));
    }
    out
}

/// Write the HTML report into `out` (each file atomically); returns the paths written.
pub fn write(files: &[Loaded], out: &Path) -> std::io::Result<Vec<PathBuf>> {
    use greenbench_harness::record::write_atomic;
    let mut written = Vec::new();
    for (rel, text) in render(files) {
        let p = out.join(&rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

/// A label as an image (a `data:` URL of the label file's exact bytes, so the page needs no
/// other file) linking to the label file.
fn label_img(l: &Label, prefix: &str) -> String {
    format!(
        "<a href=\"{prefix}labels/{}\" title=\"the label as its own SVG file\"><img class=\"label\" alt=\"price tag of {} on {}\" src=\"data:image/svg+xml;base64,{}\"></a>",
        escape(&l.file_name),
        escape(&l.model),
        escape(&l.host),
        base64(l.svg.as_bytes())
    )
}

/// The files section: each file, its status, cells and when it ran.
fn files_table(files: &[Loaded]) -> String {
    let mut t = HtmlTable::new(
        "files",
        "the result files every figure here comes from",
        "file|status|>cells|>finished cells|host(s)|started (UTC)|finished (UTC)|schema",
    );
    for l in files {
        let hosts: BTreeSet<&str> = l.file.cells.iter().map(|c| crate::host_of(l, c)).collect();
        let e = &l.file.environment;
        t.row(
            "",
            vec![
                Td::text(short(&l.path)),
                Td::text(format!("{:?}", l.file.status).to_lowercase()),
                Td::num(
                    l.file.cells.len().to_string(),
                    Some(l.file.cells.len() as f64),
                ),
                Td::num(
                    l.file
                        .cells
                        .iter()
                        .filter(|c| c.time_per_example_s.is_some())
                        .count()
                        .to_string(),
                    None,
                ),
                Td::text(hosts.into_iter().collect::<Vec<_>>().join(", ")),
                Td::text(&e.started_utc),
                Td::text(e.finished_utc.as_deref().unwrap_or("unfinished")),
                Td::text(l.file.schema_version.to_string()),
            ],
        );
    }
    t.render()
}

/// Machines: each run's fingerprint, binary, profile, energy source and prices, peaks.
fn machines(files: &[Loaded]) -> String {
    let mut t = HtmlTable::new(
        "machines",
        "one row per run environment (a merged file lists each run it holds)",
        "host|CPU|>logical cores|SIMD|>memory (GiB)|OS, kernel|greenbench, commit|profile|>seed|energy|file",
    );
    let mut peaks = Vec::new();
    let mut energy = Vec::new();
    for l in files {
        let envs: Vec<_> = if l.file.merged_from.is_empty() {
            vec![&l.file.environment]
        } else {
            l.file.merged_from.iter().collect()
        };
        for e in envs {
            let m = &e.machine;
            t.row(
                "",
                vec![
                    Td::text(&m.hostname),
                    Td::text(m.cpu_with_caches()),
                    Td::num(
                        m.cpu_logical_cores.to_string(),
                        Some(m.cpu_logical_cores as f64),
                    ),
                    Td::text(m.cpu_features.join(" ")),
                    Td::num(
                        m.memory_bytes.map_or("?".into(), |b| {
                            format!("{:.1}", b as f64 / (1u64 << 30) as f64)
                        }),
                        m.memory_bytes.map(|b| b as f64),
                    ),
                    Td::text(format!("{}, {}", m.os, m.kernel.as_deref().unwrap_or("?"))),
                    Td::text(format!(
                        "{}, {}{}",
                        m.greenbench_version,
                        m.git_commit
                            .as_deref()
                            .map_or("unknown".to_string(), |c| c.chars().take(10).collect()),
                        if m.git_dirty == Some(true) {
                            " (uncommitted changes)"
                        } else {
                            ""
                        }
                    )),
                    Td::text(format!(
                        "{} ({} windows of {} s)",
                        e.profile.name, e.profile.windows, e.profile.window_s
                    )),
                    Td::num(e.seed.to_string(), Some(e.seed as f64)),
                    Td::text(
                        e.energy
                            .as_ref()
                            .map_or("none recorded".into(), |en| en.kind.clone()),
                    ),
                    Td::text(short(&l.path)),
                ],
            );
            if let Some(en) = &e.energy {
                // The source of an estimate starts with its kind already.
                let source = if en.source.starts_with(&en.kind) {
                    en.source.clone()
                } else {
                    format!("{}: {}", en.kind, en.source)
                };
                energy.push(format!(
                    "<li>{} ({}): {}; grid {} g CO2e/kWh ({}); ${}/kWh ({})</li>",
                    escape(&m.hostname),
                    escape(&short(&l.path)),
                    escape(&source),
                    en.prices.grid_g_co2e_per_kwh,
                    escape(&en.prices.grid_source),
                    en.prices.usd_per_kwh,
                    escape(&en.prices.price_source)
                ));
            }
            for p in &e.peaks {
                peaks.push(format!(
                    "<li>{}: {}</li>",
                    escape(&m.hostname),
                    escape(&peak_line(p)).replace('\n', "<br>")
                ));
            }
        }
    }
    let mut s = t.render();
    if !energy.is_empty() {
        let _ = writeln!(
            s,
            "<p>Energy, per run: where its figures come from, and the grid and price its CO2e and money use:</p><ul>{}</ul>",
            energy.join("")
        );
    }
    if !peaks.is_empty() {
        let _ = writeln!(
            s,
            "<p>Measured peaks (the % of peak column's denominator):</p><ul>{}</ul>",
            peaks.join("")
        );
    }
    s
}

/// Per model, time and energy per example against batch (every host, backend and precision
/// on one figure: the CPU-versus-GPU crossover and int8 against fp32 where both ran).
fn batch_figures(files: &[Loaded], model: &str) -> String {
    let mut s = String::new();
    for (name, svg) in crate::report::plots(files)
        .into_iter()
        .filter(|(n, _)| n.starts_with(&format!("{}-", crate::report::plot_slug(model))))
    {
        let what = if name.ends_with("-time.svg") {
            "time per example against batch size"
        } else {
            "energy per example against batch size (estimates included, as their cells say)"
        };
        s.push_str(&figure(
            &format!("fig-{}", name.trim_end_matches(".svg")),
            &svg,
            &format!("{model}: {what}; every host, backend and precision in the files."),
            None,
        ));
    }
    // The figures' data, each point with its file.
    let mut t = HtmlTable::new(
        &format!("batch-data-{}", slug(model)),
        &format!("{model}: the points of the figures above"),
        "machine|backend|device|precision|>batch|>time/ex|>energy/ex|file",
    );
    for (l, c) in ok_cells(files)
        .into_iter()
        .filter(|(_, c)| c.model == model && !crate::cost::is_run(c))
    {
        let tm = c.time_per_example_s.as_ref().expect("ok").median;
        t.row(
            format!(
                " data-kind=\"{}\"",
                escape(c.energy_kind.as_deref().unwrap_or("none"))
            ),
            vec![
                Td::text(crate::machine_of(l, c)),
                Td::text(&c.backend),
                Td::text(kind_label(c.device_kind)),
                Td::text(c.precision.to_string()),
                Td::num(c.batch.to_string(), Some(c.batch as f64)),
                Td::num(crate::text::duration(tm), Some(tm)),
                Td::num(
                    crate::text::energy_marked(c.energy_per_example_j, c.energy_kind.as_deref()),
                    c.energy_per_example_j,
                ),
                Td::text(short(&l.path)),
            ],
        );
    }
    if !t.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>the figures' data</summary>{}</details>",
            t.render()
        );
    }
    s
}

fn index(files: &[Loaded], labels: &[Label], models: &BTreeSet<String>) -> String {
    let mut b = String::new();
    let names: Vec<String> = files.iter().map(|l| short(&l.path)).collect();
    let cells: usize = files.iter().map(|l| l.file.cells.len()).sum();
    let _ = write!(
        b,
        "<h1>greenbench report</h1>\n<p>Generated by <code>greenbench report</code> from {} result file(s) ({}), {cells} cell(s). Regenerate it, never edit it: every number below comes from those files, and each table row names its file.</p>\n\
         <p class=\"muted\">Time per example is end-to-end (input in, output out), the median of the measurement windows with a distribution-free 95 % interval; work is counted (FPO = 2 × MACs + other FPO, shared/FPO.md); energy is measured by the meter the note names, or the labelled estimate, marked (est.) wherever it appears.</p>\n",
        files.len(),
        escape(&names.join(", "))
    );
    b.push_str("<nav><ul><li><a href=\"#machines\">Machines and provenance</a></li><li><a href=\"#baselines\">Baseline tables</a></li><li><a href=\"#against-batch\">Time and energy against batch</a></li><li><a href=\"#cpu-gpu\">CPU versus GPU</a></li><li><a href=\"#int8\">int8 against fp32</a></li><li><a href=\"#accuracy\">Accuracy against cost</a></li><li><a href=\"#training\">Price tags of runs (E · D · H)</a></li><li><a href=\"#labels\">Labels</a></li><li><a href=\"#models\">Models</a></li><li><a href=\"#files\">Files</a></li></ul></nav>\n");
    let _ = write!(
        b,
        "<h2 id=\"machines\">Machines and provenance</h2>\n{}",
        machines(files)
    );
    let _ = write!(
        b,
        "<h2 id=\"baselines\">Baseline tables</h2>\n<p class=\"muted\">Click a column's name to sort by it. Columns as <code>greenbench run</code> prints them.</p>\n{}",
        cells::baselines(files)
    );
    let tokens = cells::per_token(files);
    if !tokens.is_empty() {
        let _ = write!(
            b,
            "<h2 id=\"per-token\">Time and energy per token</h2>\n<p class=\"muted\">Models with a sequence: the per-example figures divided by the tokens per example (the bound sequence length, or the token ids read).</p>\n{tokens}"
        );
    }
    b.push_str("<h2 id=\"against-batch\">Time and energy per example against batch</h2>\n");
    let inference: BTreeSet<&str> = ok_cells(files)
        .iter()
        .filter(|(_, c)| !crate::cost::is_run(c))
        .map(|(_, c)| c.model.as_str())
        .collect();
    for m in models.iter().filter(|m| inference.contains(m.as_str())) {
        let _ = write!(
            b,
            "<h3>{} <a class=\"muted\" href=\"models/{}.html\">(model page)</a></h3>\n{}",
            escape(m),
            slug(m),
            batch_figures(files, m)
        );
    }
    let _ = write!(
        b,
        "<h2 id=\"cpu-gpu\">CPU versus GPU</h2>\n{}",
        cells::cpu_vs_gpu(files)
    );
    let _ = write!(
        b,
        "<h2 id=\"int8\">int8 against fp32</h2>\n{}",
        cells::int8_vs_fp32(files)
    );
    let _ = write!(
        b,
        "<h2 id=\"accuracy\">Accuracy against cost</h2>\n{}",
        accuracy::pareto_section(files)
    );
    let _ = write!(
        b,
        "<h2 id=\"training\">Price tags of training and tracked runs (E · D · H)</h2>\n{}",
        accuracy::training_tags(files)
    );
    let _ = write!(
        b,
        "<h2 id=\"labels\">Labels</h2>\n<p>One price tag per model and machine, each from the model's cheapest inference cell there (lowest energy per example; measured cells before estimated ones) and, where the files have them, its training runs. Each is its own SVG file under <code>labels/</code> (click one). Energy scale: {}.</p>\n<div class=\"labels\" data-labels=\"{}\">{}</div>\n",
        escape(SCALE_DEFINITION),
        labels.len(),
        labels
            .iter()
            .map(|l| label_img(l, ""))
            .collect::<Vec<_>>()
            .join("")
    );
    let _ = write!(
        b,
        "<h2 id=\"models\">Models</h2>\n<ul>{}</ul>\n",
        models
            .iter()
            .map(|m| format!(
                "<li><a href=\"models/{}.html\">{}</a></li>",
                slug(m),
                escape(m)
            ))
            .collect::<Vec<_>>()
            .join("")
    );
    let _ = write!(b, "<h2 id=\"files\">Files</h2>\n{}", files_table(files));
    page::page("greenbench report", &b)
}

/// Where a model's work goes, per layer, as `inspect` prints it; zoo models only (a result
/// file records a model's totals, not its layers).
fn layers(model: &str) -> String {
    let Ok(m) = greenbench_core::Model::load(model, 0) else {
        return format!(
            "<p class=\"note\">Per-layer breakdown: <code>{}</code> is not a zoo model, and result files record a model's totals, not its layers; <code>greenbench inspect FILE</code> prints them for its ONNX or JSON file.</p>\n",
            escape(model)
        );
    };
    let total = m.cost.total.fpo().max(1);
    let mut t = HtmlTable::new(
        "layers",
        "per layer, per example (batch norm folded)",
        "layer|op|output|>params|>MACs|>FPO|>share of FPO",
    );
    let mut bars = Vec::new();
    for n in &m.cost.nodes {
        let fpo = n.cost.fpo();
        bars.push((format!("{} ({})", n.name, n.label), fpo as f64));
        t.row(
            "",
            vec![
                Td::text(&n.name),
                Td::text(&n.label),
                Td::text(crate::text::shape(&n.output_shape, None)),
                Td::num(thousands(n.cost.params), Some(n.cost.params as f64)),
                Td::num(thousands(n.cost.macs), Some(n.cost.macs as f64)),
                Td::num(thousands(fpo), Some(fpo as f64)),
                Td::num(
                    format!("{:.1} %", 100.0 * fpo as f64 / total as f64),
                    Some(fpo as f64 / total as f64),
                ),
            ],
        );
    }
    let mut s = String::new();
    if let Some(svg) = crate::plot::bars(
        &format!("{model}: where the work goes (FPO per example, per layer)"),
        "FPO per example",
        &bars,
    ) {
        s.push_str(&figure(
            "layers-figure",
            &svg,
            &format!(
                "{model}: {} FPO, {} MACs, {} parameters per example in total (counted, shared/FPO.md).",
                si(total as f64),
                si(m.cost.total.macs as f64),
                si(m.cost.total.params as f64)
            ),
            Some(&t),
        ));
    }
    s
}

/// A model's page: its labels, where its work goes, its cells, its plots.
fn model_page(files: &[Loaded], model: &str, labels: &[Label]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"../index.html\">← the report</a></p>\n<h1>{}</h1>\n",
        escape(model)
    );
    if let Some(t) = greenbench_core::zoo::zoo_task(model) {
        let _ = writeln!(b, "<p>Task: {} (shared/MODELS.md).</p>", escape(t));
    }
    let mine: Vec<&Label> = labels.iter().filter(|l| l.model == model).collect();
    if !mine.is_empty() {
        let _ = write!(
            b,
            "<h2 id=\"labels\">Labels</h2>\n<div class=\"labels\" data-labels=\"{}\">{}</div>\n",
            mine.len(),
            mine.iter()
                .map(|l| label_img(l, "../"))
                .collect::<Vec<_>>()
                .join("")
        );
    }
    let _ = write!(
        b,
        "<h2 id=\"layers\">Where the work goes</h2>\n{}",
        layers(model)
    );
    // This model's cells only, in the index's table layout.
    let only: Vec<Loaded> = files
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.file.cells.retain(|c| c.model == model);
            l
        })
        .filter(|l| !l.file.cells.is_empty())
        .collect();
    let _ = write!(
        b,
        "<h2 id=\"cells\">Cells</h2>\n{}",
        cells::baselines(&only)
    );
    let devices: BTreeSet<String> = ok_cells(&only)
        .iter()
        .map(|(_, c)| kind_label(c.device_kind).to_string())
        .collect();
    let _ = write!(
        b,
        "<h2 id=\"plots\">Against batch</h2>\n<p class=\"muted\">Devices: {}.</p>\n{}",
        escape(&devices.into_iter().collect::<Vec<_>>().join(", ")),
        batch_figures(&only, model)
    );
    let trained = only
        .iter()
        .any(|l| l.file.cells.iter().any(|c| c.accuracy.is_some()));
    if trained {
        let _ = write!(
            b,
            "<h2 id=\"accuracy\">Accuracy against cost</h2>\n{}<h2 id=\"training\">Training price tags</h2>\n{}",
            accuracy::pareto_section(&only),
            accuracy::training_tags(&only)
        );
    }
    let by_file: BTreeMap<String, usize> = only
        .iter()
        .map(|l| (short(&l.path), l.file.cells.len()))
        .collect();
    let _ = write!(
        b,
        "<h2 id=\"files\">Files</h2>\n<ul>{}</ul>\n",
        by_file
            .iter()
            .map(|(f, n)| format!("<li>{} ({n} cell(s))</li>", escape(f)))
            .collect::<Vec<_>>()
            .join("")
    );
    page::page(&format!("greenbench: {model}"), &b)
}
