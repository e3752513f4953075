//! The server reads durations and sizes with the grammar `groupcached-cli` and
//! `groupcached-bench` use (`groupcached-units`): `--ttl 1d`, `--load-timeout 1.5s`,
//! `--cache-size 1.5MiB` through the real binary, and `--print-config` writing them
//! back in a form the same grammar reads.

mod common;

use std::process::{Command, Output, Stdio};

use common::server_bin;

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

#[test]
fn flags_take_the_shared_grammar_and_print_it_back() {
    let o = run(&[
        "--ttl",
        "1d",
        "--load-timeout",
        "1.5s",
        "--cache-size",
        "1.5MiB",
        "--print-config",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let text = String::from_utf8_lossy(&o.stdout);
    let t: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("not TOML ({e}):\n{text}"));
    let group = t["group"].as_array().expect("[[group]]")[0]
        .as_table()
        .expect("a group table");
    assert_eq!(group["ttl"].as_str(), Some("1d"), "{text}");
    assert_eq!(group["cache_size"].as_str(), Some("1536KiB"), "{text}");
    assert_eq!(t["load_timeout"].as_str(), Some("1500ms"), "{text}");
    // What was printed is read back as the same value.
    for (flag, written) in [
        ("--ttl", "1d"),
        ("--load-timeout", "1500ms"),
        ("--cache-size", "1536KiB"),
    ] {
        let o = run(&[flag, written, "--print-config"]);
        let again = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && again.contains(&format!("\"{written}\"")),
            "{flag} {written}: {again}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_bad_duration_names_the_flag_and_the_units() {
    let o = run(&["--ttl", "1y"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--ttl"), "{err}");
    assert!(err.contains("unknown duration unit `y`"), "{err}");
    assert!(err.contains("ms, s, m, h or d"), "{err}");
}
