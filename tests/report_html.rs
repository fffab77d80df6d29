//! The HTML report in a real browser: Debian's Chromium, headless, loads the report from
//! `file://` and the tests read the DOM it rendered (after the page's script ran) and the
//! console it logged. Without a Chromium on the machine they say so and pass, unless
//! GREENBENCH_REQUIRE_BROWSER=1 (CI sets it and installs `chromium`), where a missing browser
//! is a failure.

mod common;

use common::greenbench;
use greenbench_harness::record::ResultFile;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser, or `None` (and why) when there is none and none is required.
fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("GREENBENCH_CHROMIUM").unwrap_or_default(),
        "chromium".into(),
        "chromium-browser".into(),
        "google-chrome".into(),
    ];
    for c in candidates.iter().filter(|c| !c.is_empty()) {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(PathBuf::from(c));
        }
    }
    assert!(
        std::env::var("GREENBENCH_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "GREENBENCH_REQUIRE_BROWSER=1 but no chromium found: apt-get install chromium (or set GREENBENCH_CHROMIUM)"
    );
    eprintln!("no chromium on this machine: the browser checks are skipped (CI runs them)");
    None
}

/// What the browser made of a page: the DOM after its scripts ran, and every console line.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

/// Load `page` in headless Chromium; with `screenshot`, also write a PNG of it.
fn render(browser: &Path, page: &Path, screenshot: Option<&Path>) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let base = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut cmd = Command::new(browser);
    base(&mut cmd);
    let out = cmd.args(["--dump-dom", &url]).output().unwrap();
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(png) = screenshot {
        let mut cmd = Command::new(browser);
        base(&mut cmd);
        let shot = cmd
            .arg("--window-size=1280,2400")
            .arg(format!("--screenshot={}", png.display()))
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            shot.status.success() && png.is_file(),
            "screenshot of {url}"
        );
        eprintln!("screenshot: {}", png.display());
    }
    Rendered {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    }
}

/// The `<body ...>` tag's attribute `name`.
fn body_attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(tag[i..i + tag[i..].find('"')?].to_string())
}

/// The element whose id is `id`, from its opening tag to the end of the first `close` after
/// it (the markup nests no like element inside the ones asked for here).
fn element<'a>(dom: &'a str, id: &str, close: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find(close).unwrap() + close.len();
    &dom[start..end]
}

/// A page whose script ran to the end, with no error and nothing on the console.
fn assert_clean(r: &Rendered, what: &str) {
    assert_eq!(
        body_attr(&r.dom, "data-js-ready").as_deref(),
        Some("1"),
        "{what}: the page's script did not finish"
    );
    assert_eq!(body_attr(&r.dom, "data-js-errors"), None, "{what}");
    assert!(
        r.console.is_empty(),
        "{what} logged to the console: {:?}",
        r.console
    );
}

fn load(p: &Path) -> ResultFile {
    ResultFile::load(p).unwrap()
}

/// Where screenshots go: beside the build, for people to look at (not committed).
fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_console_check_catches_a_failing_page() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>undefined_function();</script></body></html>",
    )
    .unwrap();
    let r = render(&browser, &page, None);
    assert!(
        r.console.iter().any(|l| l.contains("undefined_function")),
        "{:?}",
        r.console
    );
    assert_eq!(body_attr(&r.dom, "data-js-ready"), None);
}

#[test]
fn report_renders_in_chromium_with_every_cell_mark_and_label() {
    let Some(browser) = chromium() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inputs: Vec<PathBuf> = [
        "results/baseline/vm-full.json",
        "results/training/lenet5-digits-sweep.json",
        "results/training/mlp-digits.json",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["report".to_string()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(
        ["--format", "html", "--strict", "--out-dir"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(dir.path().display().to_string());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = greenbench(&a);
    assert_eq!(code, 0, "{err}");

    // What the files hold, read here independently of the report.
    let files: Vec<ResultFile> = inputs.iter().map(|p| load(p)).collect();
    let cells: Vec<_> = files.iter().flat_map(|f| f.cells.iter()).collect();
    let scored = cells.iter().filter(|c| c.accuracy.is_some()).count();
    let estimated = cells
        .iter()
        .filter(|c| {
            c.energy_kind.as_deref() == Some("estimated") && c.energy_per_example_j.is_some()
        })
        .count();
    let mut machines = std::collections::BTreeSet::new();
    for f in &files {
        for c in f.cells.iter().filter(|c| c.time_per_example_s.is_some()) {
            machines.insert((c.model.clone(), f.environment.machine.cpu_model.clone()));
        }
    }
    assert!(scored > 0 && estimated > 0);

    let index = dir.path().join("index.html");
    let r = render(&browser, &index, Some(&shots().join("index.png")));
    assert_clean(&r, "index.html");
    let dom = &r.dom;

    // Tables: every cell of the files is a row, each table's count as it says.
    let rows = dom.matches("<tr data-cell=\"1\"").count();
    assert_eq!(rows, cells.len(), "one row per cell");
    let tables = dom.matches("<table class=\"sortable").count();
    assert_eq!(
        body_attr(dom, "data-sortable-tables"),
        Some(tables.to_string()),
        "the script made every table sortable"
    );
    let mut counted = 0;
    for (i, _) in dom.match_indices("id=\"cells-") {
        let id_end = dom[i + 4..].find('"').unwrap();
        let id = &dom[i + 4..i + 4 + id_end];
        let t = element(dom, id, "</table>");
        let n = t.matches("<tr data-cell=\"1\"").count();
        assert!(t.contains(&format!("data-rows=\"{n}\"")), "{id}");
        counted += n;
    }
    assert_eq!(counted, cells.len());

    // No estimate without its mark: every row of an estimated cell carries "(est.)", and the
    // tables hold at least as many marks as estimated cells.
    for (i, _) in dom.match_indices("data-kind=\"estimated\"") {
        let row_end = i + dom[i..].find("</tr>").unwrap();
        assert!(
            dom[i..row_end].contains("(est.)"),
            "an estimated figure without its mark: {}",
            &dom[i..row_end]
        );
    }
    assert!(dom.matches(">(est.)</span>").count() >= estimated);

    // The Pareto figures: present, a point per scored cell, a front.
    for id in [
        "pareto-fpo-run",
        "pareto-energy-run",
        "pareto-fpo-example",
        "pareto-energy-example",
    ] {
        let fig = element(dom, id, "</figure>");
        assert!(fig.contains("<svg") && fig.contains("<title>"), "{id}");
        assert_eq!(fig.matches("data-point=\"1\"").count(), scored, "{id}");
        let front = fig.matches("data-front=\"true\"").count();
        assert!(front >= 1 && front <= scored, "{id}");
        assert!(fig.matches("<circle").count() >= scored + front, "{id}");
    }
    assert!(!dom.contains("id=\"no-accuracy\""));

    // Labels: one per model and machine, each SVG rendered by Chromium as an image.
    let want = machines.len();
    let div = &dom[dom.find("class=\"labels\"").unwrap()..];
    let div = &div[..div.find("</div>").unwrap()];
    assert_eq!(div.matches("<img class=\"label\"").count(), want);
    assert_eq!(
        body_attr(dom, "data-labels-rendered"),
        Some(want.to_string()),
        "Chromium rendered every label"
    );
    let label_files: Vec<_> = std::fs::read_dir(dir.path().join("labels"))
        .unwrap()
        .collect();
    assert_eq!(label_files.len(), want);

    // One label file on its own and one model page, rendered and screenshotted.
    let label = dir
        .path()
        .join("labels/lenet5--vm-Intel-R-Xeon-R-Processor.svg");
    let lr = render(&browser, &label, Some(&shots().join("label.png")));
    assert!(lr.console.is_empty(), "{:?}", lr.console);
    assert!(lr.dom.contains("<svg") && !lr.dom.contains("parsererror"));
    assert!(
        lr.dom.contains("test accuracy: 97.77 %"),
        "the label shows the sweep's best"
    );
    let page = dir.path().join("models/lenet5.html");
    let pr = render(&browser, &page, Some(&shots().join("model-lenet5.png")));
    assert_clean(&pr, "models/lenet5.html");
    let layers = element(&pr.dom, "layers", "</table>");
    let nodes = greenbench_core::Model::load("lenet5", 0)
        .unwrap()
        .cost
        .nodes
        .len();
    let body = &layers[layers.find("<tbody>").unwrap()..];
    assert_eq!(body.matches("<tr>").count(), nodes, "a row per layer");
    assert!(pr.dom.contains("id=\"layers-figure\""));
}

#[test]
fn report_without_accuracy_says_how_to_get_the_pareto_figure() {
    let Some(browser) = chromium() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = greenbench(&[
        "report",
        root.join("results/baseline/vm-full.json").to_str().unwrap(),
        "--format",
        "html",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = render(&browser, &dir.path().join("index.html"), None);
    assert_clean(&r, "index.html without accuracy");
    let note = element(&r.dom, "no-accuracy", "</p>");
    assert!(note.contains("greenbench train"), "{note}");
    assert!(!r.dom.contains("id=\"pareto-"));
}

#[test]
fn malformed_and_other_version_files_get_the_markdown_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = std::fs::read_to_string(root.join("results/training/mlp-digits.json")).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, good.replacen("\"batch\": 32", "\"batch\": \"x\"", 1)).unwrap();
    let newer = dir.path().join("newer.json");
    std::fs::write(
        &newer,
        good.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1),
    )
    .unwrap();
    for f in [&bad, &newer] {
        let mut errs = Vec::new();
        for format in ["md", "html"] {
            let out = dir.path().join(format!("out-{format}"));
            let (code, _, err) = greenbench(&[
                "report",
                f.to_str().unwrap(),
                "--strict",
                "--format",
                format,
                "--out-dir",
                out.to_str().unwrap(),
            ]);
            assert_ne!(code, 0);
            assert!(
                err.contains(f.file_name().unwrap().to_str().unwrap()),
                "{err}"
            );
            assert!(!out.join("index.html").exists());
            errs.push(err);
        }
        assert_eq!(errs[0], errs[1], "the same error in both formats");
    }
}
