//! The binaries from a shell's point of view: `--help`, `--version`, bad flags, and
//! `groupcached-cli stats --json` against a running server.

mod common;
#[path = "common/fresh_bin.rs"]
mod fresh_bin;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{server_bin, TempDir, TestServer};

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(server_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GROUPCACHED_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run groupcached")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_and_version_exit_zero() {
    let help = run(&["--help"]);
    assert!(help.status.success(), "{}", text(&help));
    let out = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--cache-size",
        "--origin",
        "--ttl",
        "--threads",
        "--max-frame",
        "--max-connections",
        "--load-timeout",
        "--config",
    ] {
        assert!(out.contains(flag), "--help does not mention {flag}:\n{out}");
    }
    let version = run(&["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    let v = String::from_utf8_lossy(&version.stdout);
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
}

#[test]
fn invalid_flag_values_exit_non_zero_naming_the_flag() {
    for (args, flag) in [
        (&["--cache-size", "lots"][..], "--cache-size"),
        (&["--origin", "ftp://somewhere/{key}"][..], "--origin"),
        (&["--ttl", "soon"][..], "--ttl"),
        (&["--load-timeout", "5"][..], "--load-timeout"),
        (&["--max-frame", "1"][..], "--max-frame"),
        (&["--threads", "0"][..], "--threads"),
        (&["--listen", "not-an-address"][..], "--listen"),
    ] {
        let o = run(args);
        assert!(!o.status.success(), "{args:?} was accepted: {}", text(&o));
        let msg = String::from_utf8_lossy(&o.stderr);
        assert!(
            msg.contains(flag),
            "{args:?}: message does not name {flag}: {msg}"
        );
    }
    // An unknown flag is a usage error too.
    let o = run(&["--no-such-flag"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--no-such-flag"));
}

#[test]
fn bad_config_file_exits_non_zero_naming_the_problem() {
    let dir = TempDir::new("badcfg");
    let cfg = dir.write("c.toml", b"[[group]]\nname = \"g\"\ncolour = \"red\"\n");
    let o = run(&["--config", &cfg.display().to_string()]);
    assert!(!o.status.success(), "{}", text(&o));
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains("--config") && msg.contains("colour"), "{msg}");
    let missing = dir.path().join("missing.toml");
    let o = run(&["--config", &missing.display().to_string()]);
    assert!(!o.status.success());
}

/// `groupcached-cli`, built fresh: another package's binary, so cargo does not
/// build it for this test, and one left next to the server could be stale.
fn cli_bin() -> PathBuf {
    fresh_bin::fresh_bin("groupcached-client", "groupcached-cli")
}

#[test]
fn cli_stats_json_reports_the_servers_counters() {
    let cli = cli_bin();
    let s = TestServer::start(&["--origin", "synthetic:size=8", "--threads", "2"]);
    let mut c = s.client();
    c.get("default", "a").unwrap();
    c.get("default", "a").unwrap();
    let o = Command::new(&cli)
        .args(["--server", &s.addr().to_string(), "stats", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("run groupcached-cli");
    assert!(o.status.success(), "{}", text(&o));
    let json = String::from_utf8_lossy(&o.stdout);
    let json = json.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    for needle in [
        "\"threads\":2",
        "\"groups\":{\"default\":{",
        "\"gets\":2",
        "\"cache_hits\":1",
        "\"local_loads\":1",
        "\"main\":{",
        "\"hot\":{",
        "\"curr_connections\":",
    ] {
        let compact: String = json.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(compact.contains(needle), "no {needle} in {json}");
    }
    // And the plain form, one `name value` per line.
    let o = Command::new(&cli)
        .args(["--server", &s.addr().to_string(), "stats"])
        .output()
        .expect("run groupcached-cli");
    assert!(o.status.success(), "{}", text(&o));
    let lines = String::from_utf8_lossy(&o.stdout);
    assert!(
        lines.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["group.default.local_loads", "1"]),
        "{lines}"
    );
}
