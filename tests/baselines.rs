//! The committed report is exactly what `greenbench report` makes of the committed run.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_report_regenerates_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = root.join("results/baseline/vm-full.json");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .args(["report", run.to_str().unwrap(), "--out"])
        .arg(dir.path())
        .args(["--name", "BASELINES.md", "--strict", "--format", "md"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let same = |rel: &str| {
        let want = std::fs::read(root.join("results").join(rel)).unwrap();
        let got = std::fs::read(dir.path().join(rel)).unwrap();
        assert!(
            want == got,
            "results/{rel} differs from a regeneration: run scripts/baselines.sh --report"
        );
    };
    same("BASELINES.md");
    same("cells.csv");
    let plots: Vec<_> = std::fs::read_dir(dir.path().join("plots"))
        .unwrap()
        .collect();
    assert!(plots.len() >= 14, "a time and an energy plot per model");
    for p in plots {
        let name = p.unwrap().file_name();
        same(&format!("plots/{}", name.to_string_lossy()));
    }
}

/// Every file of a folder, by its path inside it.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn committed_html_report_regenerates_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = vec![root.join("results/baseline/vm-full.json")];
    let mut training: Vec<_> = std::fs::read_dir(root.join("results/training"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    training.sort();
    inputs.extend(training);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .arg("report")
        .args(&inputs)
        .args(["--format", "html", "--strict", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = tree(&root.join("results/html"));
    let got = tree(dir.path());
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&want),
        names(&got),
        "results/html holds other files than a regeneration: run scripts/baselines.sh --report"
    );
    for ((name, a), (_, b)) in want.iter().zip(&got) {
        assert!(
            a == b,
            "results/html/{name} differs from a regeneration: run scripts/baselines.sh --report"
        );
    }
    assert!(want.iter().any(|(n, _)| n == "index.html"));
}
