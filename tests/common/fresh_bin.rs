//! A binary of another workspace package, brought up to date before a test runs it.
//!
//! `env!("CARGO_BIN_EXE_<name>")` only names binaries of the package under test;
//! one from another package (the server for the bench's tests, `groupcached-cli` for
//! the server's) may be missing or, worse, left over from an earlier build. So it is
//! built with `cargo build -p PACKAGE --bin BIN` into the target directory and
//! profile this test binary was built in, found from the test binary's own path
//! (`<target>/<profile>/deps/<test>-<hash>`), which follows `CARGO_TARGET_DIR`,
//! `--release` and `--profile`. Cargo does nothing when the binary is up to date.
//!
//! Shared by the server's tests (`tests/`) and the bench's (`bench/tests/`, through
//! `#[path]`), so there is one way to find a sibling binary.
#![allow(dead_code)] // each test binary uses what it needs

use std::path::PathBuf;
use std::process::Command;

/// Builds `bin` of `package` (quietly; cargo's own errors go to stderr) and returns
/// its path. Panics, naming the command, if the build fails.
pub fn fresh_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a profile directory name");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo build -p {package} --bin {bin}: {e}"));
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}
