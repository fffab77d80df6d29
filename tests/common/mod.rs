//! What the CLI's integration tests share: running the built binary.

#![allow(dead_code)] // each test file uses its own subset

use std::process::Command;

/// Run greenbench with `args`: (exit code, stdout, stderr).
pub fn greenbench(args: &[&str]) -> (i32, String, String) {
    greenbench_env(args, &[])
}

/// [`greenbench`] with extra environment variables.
pub fn greenbench_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_greenbench"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
