//! Configuration as an operator meets it, through the real binary: flags over
//! `GROUPCACHED_*` environment over the `--config` file over defaults, the
//! `--print-config` round trip, errors that name the setting and the accepted form,
//! and the deployment example under docs/deploy/ loading cleanly.
//!
//! One file (about 560 lines): the precedence cases share one table of settings and
//! read best side by side.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{server_bin, TempDir};
use groupcached::Config;

/// Runs `groupcached` with `args` and exactly the `GROUPCACHED_*` variables in `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(server_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GROUPCACHED_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run groupcached")
}

fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `--print-config` with `args` and `env`, parsed as TOML.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> (String, toml::Table) {
    let mut all = args.to_vec();
    all.push("--print-config");
    let o = run(&all, env);
    assert!(o.status.success(), "{all:?} failed: {}", both(&o));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).expect("UTF-8 output");
    let table = text
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("--print-config is not TOML ({e}):\n{text}"));
    (text, table)
}

fn s<'a>(t: &'a toml::Table, key: &str) -> &'a str {
    t.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no string `{key}` in {t:#?}"))
}

fn i(t: &toml::Table, key: &str) -> i64 {
    t.get(key)
        .and_then(|v| v.as_integer())
        .unwrap_or_else(|| panic!("no integer `{key}` in {t:#?}"))
}

#[test]
fn flags_override_environment_which_overrides_the_file_which_overrides_defaults() {
    let dir = TempDir::new("precedence");
    let file = dir.write(
        "c.toml",
        b"threads = 3\n\
          peer_timeout = \"3s\"\n\
          hot_ttl = \"30s\"\n\
          vnodes = 100\n\
          load_timeout = \"7s\"\n\
          metrics_listen = \"127.0.0.1:9100\"\n\
          [[group]]\n\
          name = \"thumbs\"\n\
          cache_size = \"8MiB\"\n\
          origin = \"synthetic:size=10\"\n",
    );
    let cfg = file.display().to_string();

    // The file alone.
    let (_, t) = print_config(&["--config", &cfg], &[]);
    assert_eq!(i(&t, "threads"), 3);
    assert_eq!(s(&t, "peer_timeout"), "3s");
    assert_eq!(s(&t, "hot_ttl"), "30s");
    assert_eq!(i(&t, "vnodes"), 100);
    assert_eq!(s(&t, "metrics_listen"), "127.0.0.1:9100");
    // Defaults where the file says nothing.
    assert_eq!(s(&t, "listen"), "127.0.0.1:7000");
    assert_eq!(i(&t, "max_connections"), 10_000);
    assert_eq!(s(&t, "peers_refresh"), "5s");

    // The environment over the file (and the file can be named by the environment).
    let env = [
        ("GROUPCACHED_CONFIG", cfg.as_str()),
        ("GROUPCACHED_PEER_TIMEOUT", "4s"),
        ("GROUPCACHED_VNODES", "200"),
        ("GROUPCACHED_METRICS_LISTEN", "off"),
        ("GROUPCACHED_MAX_CONNECTIONS", "500"),
    ];
    let (_, t) = print_config(&[], &env);
    assert_eq!(i(&t, "threads"), 3, "file value kept");
    assert_eq!(s(&t, "peer_timeout"), "4s", "env over file");
    assert_eq!(i(&t, "vnodes"), 200, "env over file");
    assert_eq!(
        s(&t, "metrics_listen"),
        "off",
        "env turns the file's endpoint off"
    );
    assert_eq!(i(&t, "max_connections"), 500, "env over default");
    assert_eq!(s(&t, "hot_ttl"), "30s", "file value kept");

    // Flags over the environment.
    let (_, t) = print_config(
        &[
            "--peer-timeout",
            "5s",
            "--hot-ttl",
            "45s",
            "--metrics-listen",
            "127.0.0.1:9200",
        ],
        &env,
    );
    assert_eq!(s(&t, "peer_timeout"), "5s", "flag over env");
    assert_eq!(i(&t, "vnodes"), 200, "env kept");
    assert_eq!(s(&t, "hot_ttl"), "45s", "flag over file");
    assert_eq!(s(&t, "metrics_listen"), "127.0.0.1:9200", "flag over env");
    assert_eq!(i(&t, "threads"), 3, "file kept");
    assert_eq!(s(&t, "load_timeout"), "7s", "file kept");

    // The quick-start group flags adjust the file's group of that name.
    let (_, t) = print_config(
        &["--group", "thumbs", "--cache-size", "16MiB"],
        &[
            ("GROUPCACHED_CONFIG", cfg.as_str()),
            ("GROUPCACHED_TTL", "5m"),
        ],
    );
    let groups = t["group"].as_array().expect("[[group]]");
    assert_eq!(groups.len(), 1, "{t:#?}");
    let g = groups[0].as_table().unwrap();
    assert_eq!(s(g, "name"), "thumbs");
    assert_eq!(s(g, "cache_size"), "16MiB");
    assert_eq!(s(g, "ttl"), "5m");
    assert_eq!(s(g, "origin"), "synthetic:size=10,delay_ms=0");
}

#[test]
fn print_config_round_trips_through_config() {
    let dir = TempDir::new("roundtrip");
    let peers = dir.write("peers", b"127.0.0.1:7001\n127.0.0.1:7002\n");
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec![
            "--listen".into(),
            "0.0.0.0:7100".into(),
            "--advertise".into(),
            "10.0.0.5:7100".into(),
            "--threads".into(),
            "3".into(),
            "--group".into(),
            "thumbs".into(),
            "--cache-size".into(),
            "1500000".into(),
            "--origin".into(),
            "http://127.0.0.1:8080/t/{key}".into(),
            "--ttl".into(),
            "90s".into(),
            "--max-frame".into(),
            "2MiB".into(),
            "--max-item-size".into(),
            "1MB".into(),
            "--max-connections".into(),
            "77".into(),
            "--load-timeout".into(),
            "1500ms".into(),
            "--loader-threads".into(),
            "5".into(),
            "--peers".into(),
            "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into(),
            "--peers-refresh".into(),
            "250ms".into(),
            "--peer-timeout".into(),
            "1s".into(),
            "--hot-promote-ratio".into(),
            "0.25".into(),
            "--hot-promote-seed".into(),
            "18446744073709551615".into(),
            "--hot-ttl".into(),
            "2h".into(),
            "--vnodes".into(),
            "64".into(),
            "--metrics-listen".into(),
            "127.0.0.1:9100".into(),
        ],
        vec![
            "--peers-file".into(),
            peers.display().to_string(),
            "--origin".into(),
            "dir:/srv/files".into(),
        ],
        vec!["--peers-dns".into(), "cache.example.invalid:7000".into()],
    ];
    for (n, args) in cases.iter().enumerate() {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (first, _) = print_config(&argv, &[]);
        let file = dir.write(&format!("printed-{n}.toml"), first.as_bytes());
        let f = file.display().to_string();
        // Through the binary: the file alone reproduces the same configuration.
        let (second, _) = print_config(&["--config", &f], &[]);
        assert_eq!(first, second, "case {n} {argv:?}");
        // In process: the same Config, field by field.
        let direct = config_of(&argv);
        let reloaded = config_of(&["--config", &f]);
        assert_eq!(format!("{direct:?}"), format!("{reloaded:?}"), "case {n}");
    }
}

fn config_of(args: &[&str]) -> Config {
    let mut all = vec!["groupcached"];
    all.extend_from_slice(args);
    Config::from_args(all)
        .expect("flags parse")
        .expect("valid configuration")
}

#[test]
fn every_flag_has_an_environment_variable_and_a_file_key() {
    let help = run(&["--help"], &[]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let (_, t) = print_config(
        &[
            "--advertise",
            "10.0.0.1:7000",
            "--hot-promote-seed",
            "7",
            "--ttl",
            "1m",
            "--memcache-group",
            "default",
        ],
        &[],
    );
    let group = t["group"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    let mut flags = 0;
    for line in help.lines().map(str::trim_start) {
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let flag = rest.split([' ', '=']).next().unwrap();
        if ["help", "version", "print-config"].contains(&flag) {
            continue;
        }
        flags += 1;
        let env = format!("GROUPCACHED_{}", flag.to_uppercase().replace('-', "_"));
        assert!(
            line.contains(&format!("[env: {env}=")),
            "--{flag} has no {env}: {line}"
        );
        if flag == "config" {
            continue; // The file does not name itself.
        }
        let key = flag.replace('-', "_");
        let in_group = match flag {
            "group" => Some("name"),
            "cache-size" | "origin" | "ttl" => Some(key.as_str()),
            _ => None,
        };
        match in_group {
            Some(k) => assert!(group.contains_key(k), "--{flag}: no [[group]] {k}"),
            // A member source is one of three keys; the others are alternatives.
            None if flag == "peers-file" || flag == "peers-dns" => {}
            None => assert!(t.contains_key(&key), "--{flag}: no file key {key}"),
        }
    }
    assert!(flags >= 23, "only {flags} flags found in --help:\n{help}");
    // The alternatives of --peers are file keys too.
    for (flag, value, key) in [
        ("--peers-file", "/etc/groupcached/peers", "peers_file"),
        ("--peers-dns", "cache.example.invalid:7000", "peers_dns"),
    ] {
        let (_, t) = print_config(&[flag, value], &[]);
        assert_eq!(s(&t, key), value);
    }
}

/// Flags, environment, and what the error message must contain.
type InvalidCase = (
    Vec<String>,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
);

#[test]
fn invalid_values_fail_naming_the_setting_and_the_accepted_form() {
    let dir = TempDir::new("invalid");
    let file = |name: &str, body: &str| dir.write(name, body.as_bytes()).display().to_string();
    let cases: Vec<InvalidCase> = vec![
        // Flags.
        (
            vec!["--metrics-listen".into(), "nowhere".into()],
            vec![],
            vec!["--metrics-listen", "HOST:PORT"],
        ),
        (
            vec!["--hot-promote-ratio".into(), "2".into()],
            vec![],
            vec!["--hot-promote-ratio", "between 0 and 1"],
        ),
        (
            vec!["--vnodes".into(), "0".into()],
            vec![],
            vec!["--vnodes", "1..=65536"],
        ),
        (
            vec!["--peers-dns".into(), "no-port".into()],
            vec![],
            vec!["--peers-dns", "NAME:PORT"],
        ),
        (
            vec![
                "--peers".into(),
                "a:1".into(),
                "--peers-dns".into(),
                "b:2".into(),
            ],
            vec![],
            vec!["--peers", "only one"],
        ),
        (
            vec!["--peers-refresh".into(), "10ms".into()],
            vec![],
            vec!["--peers-refresh", "at least 100ms"],
        ),
        (
            vec!["--loader-threads".into(), "0".into()],
            vec![],
            vec!["--loader-threads", "1..=4096"],
        ),
        // The environment is reported as the flag it stands for.
        (
            vec![],
            vec![("GROUPCACHED_PEER_TIMEOUT", "soon")],
            vec!["--peer-timeout", "250ms"],
        ),
        (
            vec![],
            vec![("GROUPCACHED_THREADS", "many")],
            vec!["--threads", "many"],
        ),
        (
            vec![],
            vec![("GROUPCACHED_MAX_ITEM_SIZE", "big")],
            vec!["--max-item-size", "64MiB"],
        ),
        // The file, by its key names.
        (
            vec!["--config".into(), file("a.toml", "hot_ttl = \"5\"\n")],
            vec![],
            vec!["hot_ttl", "needs a unit"],
        ),
        (
            vec![
                "--config".into(),
                file("b.toml", "metrics_listen = \"nowhere\"\n"),
            ],
            vec![],
            vec!["metrics_listen", "HOST:PORT"],
        ),
        (
            vec!["--config".into(), file("c.toml", "\n\nthreads = \"x\"\n")],
            vec![],
            vec!["--config", "line 3", "threads"],
        ),
        (
            vec![
                "--config".into(),
                file("d.toml", "[[group]]\nname = \"g\"\ncache_size = \"lots\"\n"),
            ],
            vec![],
            vec!["group `g` cache_size", "64MiB"],
        ),
        (
            vec![
                "--config".into(),
                file("e.toml", "metrics_listn = \"127.0.0.1:9100\"\n"),
            ],
            vec![],
            vec!["--config", "metrics_listn"],
        ),
    ];
    for (args, env, needles) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&argv, &env);
        assert!(
            !o.status.success(),
            "{argv:?} {env:?} was accepted: {}",
            both(&o)
        );
        let msg = String::from_utf8_lossy(&o.stderr);
        for needle in needles {
            assert!(
                msg.contains(needle),
                "{argv:?} {env:?}: `{needle}` not in: {msg}"
            );
        }
    }
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn the_deployment_example_config_loads() {
    let path = repo_file("docs/deploy/groupcached.toml");
    let p = path.display().to_string();
    let (_, t) = print_config(&["--config", &p], &[]);
    assert!(t.contains_key("metrics_listen"), "{t:#?}");
    assert!(
        !t["group"].as_array().unwrap().is_empty(),
        "the example configures groups"
    );
    // And the example's addresses are what the printed configuration says.
    let example: toml::Table = std::fs::read_to_string(&path)
        .unwrap()
        .parse()
        .expect("the example is TOML");
    for k in ["listen", "metrics_listen"] {
        assert_eq!(s(&t, k), s(&example, k), "{k}");
    }
}

/// Issue 10 item 12: settings that parse but cannot work are errors at start that
/// name the setting and the value, not a server that answers NOT_FOUND for every key
/// or a member that owns keys nobody can reach. (The server is started for real, so
/// the start-time checks run; one that wrongly starts is killed after a deadline.)
#[test]
fn unusable_origins_and_members_are_errors_at_start() {
    let dir = TempDir::new("start-checks");
    let file = dir.write("not-a-dir", b"x");
    let file_spec = format!("dir:{}", file.display());
    let peers_file = dir.write("peers", b"127.0.0.1:7001\n127.0.0.1\n");
    let peers_file = peers_file.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--origin", "dir:/nonexistent/groupcached-test"],
            vec![
                "--origin",
                "dir:/nonexistent/groupcached-test",
                "No such file",
            ],
        ),
        (
            vec!["--origin", &file_spec],
            vec!["--origin", &file_spec, "not a directory"],
        ),
        (
            vec!["--peers", "127.0.0.1"],
            vec!["--peers", "`127.0.0.1`", "no port"],
        ),
        (
            vec!["--peers", "127.0.0.1:7001,127.0.0.1:0"],
            vec!["--peers", "`127.0.0.1:0`", "port 0"],
        ),
        (
            vec!["--peers", "::1:7000"],
            vec!["--peers", "`::1:7000`", "brackets"],
        ),
        (
            vec!["--peers", "a:7000,b:http"],
            vec!["--peers", "`b:http`"],
        ),
        (
            vec!["--peers-file", &peers_file],
            vec!["--peers-file", "`127.0.0.1`", "no port"],
        ),
        (
            vec!["--advertise", "10.0.0.5"],
            vec!["--advertise", "`10.0.0.5`"],
        ),
        (
            vec!["--origin", "http://{key}.internal/x"],
            vec!["--origin", "http://{key}.internal/x", "not in the host"],
        ),
        (vec!["--loader-queue", "0"], vec!["--loader-queue", "0"]),
    ];
    for (args, needles) in cases {
        let mut child = Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove("GROUPCACHED_PEERS")
            .env_remove("GROUPCACHED_ORIGIN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run groupcached");
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if started.elapsed() > common::DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let status = status.unwrap_or_else(|| panic!("{args:?} started and kept running: {err}"));
        assert!(!status.success(), "{args:?} was accepted: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
        }
    }
}

/// Per-group loader settings in the file, and the server-wide defaults, survive the
/// `--print-config` round trip and are range-checked by their file names.
#[test]
fn per_group_loader_settings_round_trip_and_are_checked() {
    let dir = TempDir::new("group-loaders");
    let path = dir.write(
        "c.toml",
        b"loader_threads = 3\nloader_queue = 50\ntoo_large_ttl = \"30s\"\n\
          [[group]]\nname = \"a\"\nloader_threads = 7\nloader_queue = 9\n\
          [[group]]\nname = \"b\"\n",
    );
    let p = path.to_str().unwrap();
    let (text, t) = print_config(&["--config", p], &[]);
    assert_eq!(i(&t, "loader_threads"), 3);
    assert_eq!(i(&t, "loader_queue"), 50);
    assert_eq!(s(&t, "too_large_ttl"), "30s");
    let groups = t["group"].as_array().unwrap();
    assert_eq!(groups[0]["loader_threads"].as_integer(), Some(7));
    assert_eq!(groups[0]["loader_queue"].as_integer(), Some(9));
    assert!(groups[1].get("loader_threads").is_none(), "{text}");
    let again = dir.write("again.toml", text.as_bytes());
    let (text2, _) = print_config(&["--config", again.to_str().unwrap()], &[]);
    assert_eq!(text, text2);

    let bad = dir.write("bad.toml", b"[[group]]\nname = \"a\"\nloader_threads = 0\n");
    let o = run(&["--config", bad.to_str().unwrap(), "--print-config"], &[]);
    assert!(!o.status.success());
    let msg = both(&o);
    assert!(msg.contains("group `a` loader_threads"), "{msg}");
}
