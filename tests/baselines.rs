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
        .args(["--name", "BASELINES.md", "--strict"])
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
