//! Stamps the commit this binary is built from (and whether the checkout had uncommitted
//! changes to tracked files) into the build, so a result file records what produced it, not
//! the repository a run happens to start in. Outside a checkout of this project (a source
//! tarball, a vendored copy inside another repository) nothing is stamped and the commit is
//! recorded as unknown.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let root =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    // Rebuild the stamp when the commit or the tracked sources change.
    for p in [
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "crates",
        "benches",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    // Only this project's own checkout counts: a copy inside another repository is not one.
    let top = git(&root, &["rev-parse", "--show-toplevel"]);
    let ours = top.is_some_and(|t| Path::new(&t).canonicalize().ok() == root.canonicalize().ok());
    if !ours {
        return;
    }
    if let Some(git_dir) = git(&root, &["rev-parse", "--absolute-git-dir"]) {
        for f in ["HEAD", "index", "refs", "packed-refs"] {
            println!("cargo:rerun-if-changed={git_dir}/{f}");
        }
    }
    let Some(commit) = git(&root, &["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) else {
        return;
    };
    println!("cargo:rustc-env=GREENBENCH_GIT_COMMIT={commit}");
    if let Some(status) = git(&root, &["status", "--porcelain", "--untracked-files=no"]) {
        let dirty = if status.is_empty() { "false" } else { "true" };
        println!("cargo:rustc-env=GREENBENCH_GIT_DIRTY={dirty}");
    }
}
