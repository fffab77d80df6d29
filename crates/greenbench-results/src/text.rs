//! Figures as people read them, in one place: the plain-text table the terminal shows, the
//! Markdown table the report writes, SI units, durations, joules, and the lines that describe
//! a peak and a measured cell. The command line and [`crate::report`] both print through
//! here, so a figure is formatted the same way wherever it appears.

use greenbench_core::DeviceKind;
use greenbench_harness::record::{Cell, Peak, ResultFile};

/// Column alignment.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A plain-text table being built (aligned columns, a header rule).
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns from a header spec: names separated by `|`, a leading `>` right-aligns the
    /// column (figures), e.g. `"model|>params|>FPO/example"`.
    pub fn new(spec: &str) -> Self {
        let (header, align) = spec
            .split('|')
            .map(|c| match c.strip_prefix('>') {
                Some(name) => (name.to_string(), Align::Right),
                None => (c.to_string(), Align::Left),
            })
            .unzip();
        Table {
            header,
            align,
            rows: vec![],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "row width");
        self.rows.push(cells);
    }

    /// Render with two spaces between columns.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = widths[i] - c.chars().count();
                    match self.align[i] {
                        Align::Left => format!("{c}{}", " ".repeat(pad)),
                        Align::Right => format!("{}{c}", " ".repeat(pad)),
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// A Markdown (GitHub) table: `| a | b |` rows under a `|---|---|` rule.
pub struct MdTable {
    out: String,
    cols: usize,
}

impl MdTable {
    /// Columns from a header spec: names separated by `|`.
    pub fn new(spec: &str) -> Self {
        let header: Vec<String> = spec.split('|').map(str::to_string).collect();
        let mut t = MdTable {
            out: String::new(),
            cols: header.len(),
        };
        t.line(header);
        t.out.push('|');
        t.out.push_str(&"---|".repeat(t.cols));
        t.out.push('\n');
        t
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.cols, "row width");
        self.line(cells);
    }

    fn line(&mut self, cells: Vec<String>) {
        self.out.push_str("| ");
        self.out.push_str(&cells.join(" | "));
        self.out.push_str(" |\n");
    }

    pub fn render(self) -> String {
        self.out
    }
}

/// A count with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A large count in engineering units: 2.66 M, 12.5 M, 1.81 G.
pub fn si(n: f64) -> String {
    let (v, u) = if n >= 1e9 {
        (n / 1e9, " G")
    } else if n >= 1e6 {
        (n / 1e6, " M")
    } else if n >= 1e3 {
        (n / 1e3, " k")
    } else {
        (n, "")
    };
    if v >= 100.0 || u.is_empty() {
        format!("{v:.0}{u}")
    } else {
        format!("{v:.2}{u}")
    }
}

/// Seconds with a readable unit: 850 ns, 12.3 us, 4.56 ms, 1.20 s.
pub fn duration(s: f64) -> String {
    let (v, u) = if s < 1e-6 {
        (s * 1e9, "ns")
    } else if s < 1e-3 {
        (s * 1e6, "us")
    } else if s < 1.0 {
        (s * 1e3, "ms")
    } else {
        (s, "s")
    };
    if v >= 100.0 {
        format!("{v:.0} {u}")
    } else if v >= 10.0 {
        format!("{v:.1} {u}")
    } else {
        format!("{v:.2} {u}")
    }
}

/// Joules with a readable unit: 1.20 J, 3.40 mJ, 5.60 uJ.
pub fn joules(j: f64) -> String {
    if j >= 1.0 {
        format!("{j:.2} J")
    } else if j >= 1e-3 {
        format!("{:.2} mJ", j * 1e3)
    } else {
        format!("{:.2} uJ", j * 1e6)
    }
}

/// Seconds as microseconds, two decimals (the report's time unit).
pub fn us(s: f64) -> String {
    format!("{:.2}", s * 1e6)
}

/// Joules as millijoules, four decimals (the report's energy unit); `n/a` when unmeasured.
pub fn mj(j: Option<f64>) -> String {
    j.map_or("n/a".into(), |j| format!("{:.4}", j * 1e3))
}

/// Joules per example with their kind's mark: `1.20 mJ`, `1.20 mJ (est.)`, `n/a`.
pub fn energy_marked(j: Option<f64>, kind: Option<&str>) -> String {
    match (j, kind) {
        (Some(j), Some("estimated")) => format!("{} {ESTIMATE_MARK}", joules(j)),
        (Some(j), _) => joules(j),
        (None, _) => "n/a".into(),
    }
}

/// Millijoules as the report writes them ([`mj`]), with the estimate's mark.
pub fn mj_marked(j: Option<f64>, kind: Option<&str>) -> String {
    match (j, kind) {
        (Some(_), Some("estimated")) => format!("{} {ESTIMATE_MARK}", mj(j)),
        _ => mj(j),
    }
}

/// A percentage of peak, or `n/a`.
pub fn pct(p: Option<f64>) -> String {
    p.map_or("n/a".into(), |p| format!("{p:.0} %"))
}

/// A shape as `32x32x3`, or `16 tokens < 1000` for token ids.
pub fn shape(s: &[usize], vocab: Option<usize>) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    match vocab {
        Some(v) => format!("{} tokens < {v}", dims.join("x")),
        None => dims.join("x"),
    }
}

/// A model's input: its shape (see [`shape`]), or each named input with what it holds
/// (`input_ids 8 ids < 60, attention_mask 8 mask, token_type_ids 8 type ids < 2`).
pub fn input_label(spec: &greenbench_core::graph::InputSpec) -> String {
    use greenbench_core::graph::InputRole;
    if spec.parts.is_empty() {
        return shape(&spec.shape, spec.token_vocab);
    }
    spec.parts
        .iter()
        .map(|p| {
            let dims = shape(&p.shape, None);
            let what = match (p.role, p.vocab) {
                (InputRole::TokenIds, Some(v)) => format!(" ids < {v}"),
                (InputRole::TypeIds, Some(v)) => format!(" type ids < {v}"),
                (InputRole::TokenIds | InputRole::TypeIds, None) => " ids (unused)".into(),
                (InputRole::AttentionMask, _) => " mask".into(),
                (InputRole::Values, _) => String::new(),
            };
            format!("{} {dims}{what}", p.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A device kind as the report names it (software adapters say what they are).
pub fn kind_label(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Cpu => "cpu",
        DeviceKind::Gpu => "gpu",
        DeviceKind::Software => "software (CPU emulating a GPU)",
    }
}

/// A cell's device as the terminal table names it: `cpu, 2 thr`, `gpu`, `software`.
pub fn device_label(c: &Cell) -> String {
    let kind = match c.device_kind {
        DeviceKind::Cpu => "cpu",
        DeviceKind::Gpu => "gpu",
        DeviceKind::Software => "software",
    };
    match c.threads {
        Some(t) => format!("{kind}, {t} thr"),
        None => kind.to_string(),
    }
}

/// What every description of a peak says: `329.1 GFPO/s [324.9, 340.9] on a 1024x1024x1024
/// fp32 matmul` (`on a` or `,` before the product, as the sentence wants).
fn peak_figures(p: &Peak, joiner: &str) -> String {
    format!(
        "{:.1} GFPO/s [{:.1}, {:.1}]{joiner}{}x{}x{} fp32 matmul, {} time",
        p.gflops,
        p.gflops_ci95_low,
        p.gflops_ci95_high,
        p.m,
        p.k,
        p.n,
        p.time_basis.replace('_', "-"),
    )
}

/// `; after the cells: 201.3 [199.0, 203.1]` when the peak was measured again.
fn peak_after(p: &Peak) -> String {
    p.after.as_ref().map_or(String::new(), |a| {
        format!(
            "; after the cells: {:.1} [{:.1}, {:.1}]",
            a.gflops, a.gflops_ci95_low, a.gflops_ci95_high
        )
    })
}

/// One line for a measured peak, as the terminal shows it (and its warning, if any, on the
/// next line).
pub fn peak_line(p: &Peak) -> String {
    format!(
        "peak {} ({}{}): {}{}{}{}",
        p.backend,
        p.device.name,
        p.device
            .threads
            .map(|t| format!(", {t} threads"))
            .unwrap_or_default(),
        peak_figures(p, " on a "),
        peak_after(p),
        if p.device.kind == DeviceKind::Software {
            " (software adapter: a CPU emulating a GPU, not GPU speed)"
        } else {
            ""
        },
        p.warning.as_ref().map_or(String::new(), |w| format!(
            "\nwarning: peak {}: {w}",
            p.backend
        ))
    )
}

/// One Markdown list item for a measured peak on `host`, as the report shows it.
pub fn peak_item(p: &Peak, host: &str) -> String {
    format!(
        "- peak of {} on {host} ({}): {}{}{}",
        p.backend,
        p.device.name,
        peak_figures(p, ", "),
        peak_after(p),
        p.warning
            .as_ref()
            .map_or(String::new(), |w| format!(" **Warning:** {w}."))
    )
}

/// The footnote under a table with `unstable` cells.
pub const UNSTABLE_NOTE: &str = "(!) unstable: the measurement windows disagree by more than 10 % (CV), the run's first cell disagrees with its measurement after the other cells, or the machine's reference matmul (timed beside each cell) ran more than 20 % slower than beside the run's fastest cell; the cell's warning says which and names the likely causes. Do not publish it as it stands.";

/// The run table's columns (a leading `>`: a figure, right-aligned).
pub const RUN_COLUMNS: &str = "model|backend|device|>batch|precision|>MACs/ex|>FPO/ex|>int ops/ex|>time/ex (median)|>95% interval|>device time/ex|>ex/s|>GFPO/s|>% peak|>energy/ex";

/// The mark an estimated energy figure carries wherever it is shown.
pub const ESTIMATE_MARK: &str = "(est.)";

/// The run table's row for one cell (a failed cell says so, with its error).
pub fn cell_row(c: &Cell) -> Vec<String> {
    let head = vec![
        c.model.clone(),
        c.backend.clone(),
        device_label(c),
        c.batch.to_string(),
        c.precision.to_string(),
        si(c.macs_per_example as f64),
        si(c.fpo_per_example as f64),
        int_ops(c),
    ];
    let tail = match &c.time_per_example_s {
        Some(t) => vec![
            format!(
                "{}{}",
                duration(t.median),
                if c.is_unstable() { " (!)" } else { "" }
            ),
            format!("{} – {}", duration(t.ci95_low), duration(t.ci95_high)),
            c.device_time_per_example_s
                .as_ref()
                .map_or("-".into(), |d| duration(d.median)),
            si(c.examples_per_s.unwrap_or(0.0)),
            format!("{:.1}", c.gflops.unwrap_or(0.0)),
            pct(c.pct_of_peak),
            energy_marked(c.energy_per_example_j, c.energy_kind.as_deref()),
        ],
        None => {
            let mut v = vec!["FAILED".into(), c.error.clone().unwrap_or_default()];
            v.resize(7, String::new());
            v
        }
    };
    head.into_iter().chain(tail).collect()
}

/// Integer operations per example, or `-` for a cell that did none (fp32).
pub fn int_ops(c: &Cell) -> String {
    if c.int_ops_per_example == 0 {
        "-".into()
    } else {
        si(c.int_ops_per_example as f64)
    }
}

/// `b32` or `b32 int8`: a cell's batch, and its precision when not fp32.
pub fn batch_label(c: &Cell) -> String {
    match c.precision {
        greenbench_core::Precision::Fp32 => format!("b{}", c.batch),
        p => format!("b{} {p}", c.batch),
    }
}

/// Per-token figures of the cells whose model has a sequence (empty when none has): time
/// and energy per example divided by the tokens per example, the unit language models are
/// compared in.
pub fn token_table(cells: &[Cell]) -> String {
    let with: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.tokens_per_example.is_some() && c.time_per_example_s.is_some())
        .collect();
    if with.is_empty() {
        return String::new();
    }
    let mut t =
        Table::new("model|backend|>batch|precision|>tokens/ex|>time/token|>tokens/s|>energy/token");
    for c in with {
        let per = c.time_per_token_s().expect("filtered");
        t.row(vec![
            c.model.clone(),
            c.backend.clone(),
            c.batch.to_string(),
            c.precision.to_string(),
            c.tokens_per_example.expect("filtered").to_string(),
            duration(per),
            si(1.0 / per),
            energy_marked(c.energy_per_token_j(), c.energy_kind.as_deref()),
        ]);
    }
    format!(
        "per token (per example / tokens per example):\n{}",
        t.render()
    )
}

/// The table `greenbench run` prints: the machine and profile, each peak, one row per cell,
/// the energy source and every cell's warnings.
pub fn run_table(file: &ResultFile) -> String {
    let env = &file.environment;
    let mut s = format!(
        "{} — {} ({} logical cores{}), {} profile: {} windows of {} s after {} s warm-up\n",
        env.machine.hostname,
        env.machine.cpu_model,
        env.machine.cpu_logical_cores,
        env.machine
            .cpu_caches
            .map_or(String::new(), |c| format!("; {}", c.describe())),
        env.profile.name,
        env.profile.windows,
        env.profile.window_s,
        env.profile.warmup_s
    );
    for p in &env.peaks {
        s.push_str(&peak_line(p));
        s.push('\n');
    }
    let mut t = Table::new(RUN_COLUMNS);
    for c in &file.cells {
        t.row(cell_row(c));
    }
    s.push_str(&t.render());
    if file.cells.iter().any(|c| c.is_unstable()) {
        s.push_str(&format!("{UNSTABLE_NOTE}\n"));
    }
    if let Some(e) = &env.energy {
        s.push_str(&format!("energy/ex: {}\n", e.source));
    }
    s.push_str(&token_table(&file.cells));
    for c in &file.cells {
        for w in &c.warnings {
            s.push_str(&format!(
                "warning: {} {} {}: {w}\n",
                c.model,
                c.backend,
                batch_label(c)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        for (got, want) in [
            (thousands(12_501_632), "12,501,632"),
            (thousands(640), "640"),
            (si(2_656_768.0), "2.66 M"),
            (si(25_003_264.0), "25.00 M"),
            (duration(1.234e-5), "12.3 us"),
            (duration(4.5e-7), "450 ns"),
            (joules(0.0123), "12.30 mJ"),
            (joules(2.5e-6), "2.50 uJ"),
            (shape(&[16], Some(1000)), "16 tokens < 1000"),
        ] {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn aligns() {
        let mut t = Table::new("a|>bb");
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.render(), "a    bb\n---  --\nxyz   1\n");
    }

    #[test]
    fn markdown_rows() {
        let mut t = MdTable::new("a|b");
        t.row(vec!["1".into(), "x y".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| 1 | x y |\n");
    }
}
