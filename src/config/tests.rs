//! Unit tests of the configuration: layering, grammars, errors naming settings.

use std::time::Duration;

use std::path::Path;

use clap::CommandFactory;

use super::*;
use crate::error::ConfigError;

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let mut all = vec!["groupcached"];
    all.extend_from_slice(args);
    Config::from_args(all).expect("flags parse")
}

#[test]
fn quick_start_flags_configure_one_group() {
    let c = parse(&[
        "--group",
        "thumbs",
        "--cache-size",
        "1GiB",
        "--origin",
        "dir:/srv",
        "--ttl",
        "5m",
    ])
    .unwrap();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].name, "thumbs");
    assert_eq!(c.groups[0].cache_bytes, 1 << 30);
    assert!(matches!(c.groups[0].origin, OriginSpec::Dir(_)));
    assert_eq!(c.groups[0].ttl, Some(Duration::from_secs(300)));
}

#[test]
fn file_groups_and_flag_overrides() {
    let dir = std::env::temp_dir().join(format!("gc-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        "threads = 3\nmax_frame = \"2MiB\"\n[[group]]\nname = \"a\"\ncache_size = 4194304\n\
         [[group]]\nname = \"b\"\norigin = \"synthetic:size=10\"\nttl = \"10s\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let c = parse(&["--config", p, "--group", "b", "--cache-size", "8MiB"]).unwrap();
    assert_eq!(c.threads, 3);
    assert_eq!(c.max_frame, 2 << 20);
    assert_eq!(c.groups.len(), 2);
    assert_eq!(c.groups[0].cache_bytes, 4 << 20);
    assert_eq!(c.groups[1].cache_bytes, 8 << 20);
    assert!(matches!(
        c.groups[1].origin,
        OriginSpec::Synthetic { size: 10, .. }
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_values_name_the_setting() {
    assert_eq!(
        parse(&["--cache-size", "lots"]).unwrap_err().setting,
        "--cache-size"
    );
    assert_eq!(
        parse(&["--origin", "ftp://x"]).unwrap_err().setting,
        "--origin"
    );
    assert_eq!(
        parse(&["--group", "a.b"]).unwrap_err().setting,
        "group name"
    );
    assert_eq!(parse(&["--threads", "0"]).unwrap_err().setting, "--threads");
    assert!(parse(&["--origin", "http://x/noplaceholder"]).is_err());
}

#[test]
fn connection_limits_parse_derive_and_validate() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.idle_timeout, None, "idle timeout is off by default");
    assert_eq!(c.frame_timeout, Some(DEFAULT_FRAME_TIMEOUT));
    assert_eq!(c.conn_output_limit(), (4 << 20) + 2 * (16 << 20));
    assert_eq!(c.buffer_memory_limit(), 256 << 20);

    let c = parse(&[
        "--idle-timeout",
        "5m",
        "--frame-timeout",
        "0",
        "--max-frame",
        "128MiB",
    ])
    .unwrap();
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(c.frame_timeout, None, "0 turns it off");
    assert_eq!(c.conn_output_limit(), (4 << 20) + (256 << 20));
    assert_eq!(c.buffer_memory_limit(), 512 << 20, "auto follows the frame");

    let c = parse(&["--max-conn-output", "64MiB", "--max-buffer-memory", "1GiB"]).unwrap();
    assert_eq!(c.conn_output_limit(), 64 << 20);
    assert_eq!(c.buffer_memory_limit(), 1 << 30);
    let back = c.to_toml().unwrap();
    assert!(back.contains("max_conn_output = \"64MiB\""), "{back}");
    assert!(back.contains("idle_timeout = \"0\""), "{back}");

    for (args, setting) in [
        (&["--max-conn-output", "8MiB"][..], "--max-conn-output"),
        (&["--max-buffer-memory", "16MiB"][..], "--max-buffer-memory"),
        (&["--idle-timeout", "10ms"][..], "--idle-timeout"),
        (&["--frame-timeout", "1ms"][..], "--frame-timeout"),
        (&["--max-conn-output", "lots"][..], "--max-conn-output"),
    ] {
        let e = parse(args).expect_err("invalid");
        assert!(e.to_string().contains(setting), "{args:?}: {e}");
    }
}

/// The declaration's one rule clap cannot enforce: a flag's variable is
/// `GROUPCACHED_` and the flag in capitals, and its file key the flag with `_`.
#[test]
fn every_flag_has_the_variable_named_after_it() {
    let cmd = Args::command();
    let mut checked = 0;
    for arg in cmd.get_arguments() {
        let Some(flag) = arg.get_long() else { continue };
        if ["help", "version", "print-config"].contains(&flag) {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let want = format!("GROUPCACHED_{}", flag.to_uppercase().replace('-', "_"));
        assert_eq!(env.as_deref(), Some(want.as_str()), "--{flag}");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} flags");
}

#[test]
fn printed_layer_applies_back_to_the_same_configuration() {
    let c = parse(&[
        "--threads",
        "3",
        "--max-frame",
        "2MiB",
        "--hot-promote-seed",
        "18446744073709551615",
        "--metrics-listen",
        "127.0.0.1:9100",
        "--idle-timeout",
        "5m",
        "--max-conn-output",
        "64MiB",
        "--peers-dns",
        "cache.example.invalid:7000",
        "--ttl",
        "90s",
    ])
    .unwrap();
    let layer = c.to_layer().unwrap();
    let mut back = Config::new();
    layer.apply_scalars(&mut back, layers::Layer::File).unwrap();
    assert_eq!(back.threads, 3);
    assert_eq!(back.max_frame, 2 << 20);
    assert_eq!(back.hot_promote_seed, Some(u64::MAX));
    assert_eq!(back.metrics_listen, c.metrics_listen);
    assert_eq!(back.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(back.frame_timeout, c.frame_timeout);
    assert_eq!(back.max_conn_output, Some(64 << 20));
    assert_eq!(back.max_buffer_memory, None, "auto stays auto");
    let text = c.to_toml().unwrap();
    assert!(
        text.contains("hot_promote_seed = \"18446744073709551615\""),
        "{text}"
    );
    assert!(
        text.contains("peers_dns = \"cache.example.invalid:7000\""),
        "{text}"
    );
    assert!(text.contains("cluster_secret_file = \"\""), "{text}");
}

#[test]
fn a_layer_names_its_settings_as_it_spells_them() {
    let file = layers::read_file_text(Path::new("c.toml"), "vnodes = 0\n").unwrap();
    let e = file
        .apply_scalars(&mut Config::new(), layers::Layer::File)
        .unwrap_err();
    assert_eq!(e.setting, "vnodes");
    assert_eq!(e.to_string(), "invalid vnodes: must be in 1..=65536");
    let e = parse(&["--hot-promote-ratio", "1.5"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid --hot-promote-ratio: 1.5 is not between 0 and 1"
    );
    let e = parse(&["--hot-promote-seed", "lots"]).unwrap_err();
    assert_eq!(e.setting, "--hot-promote-seed");
}

#[test]
fn file_errors_say_where() {
    let path = Path::new("c.toml");
    let e = layers::read_file_text(path, "[[group]]\ncache_size = \"1MiB\"\n").unwrap_err();
    assert!(e.to_string().contains("missing field `name`"), "{e}");
    let e = layers::read_file_text(path, "\n\nthreads = \"x\"\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("c.toml line 3 (`threads = \"x\"`): "),
        "{e}"
    );
    for flag_only in [
        "print_config = true",
        "config = \"x\"",
        "cache_size = \"1MiB\"",
    ] {
        assert!(
            layers::read_file_text(path, flag_only).is_err(),
            "{flag_only} is not a file key"
        );
    }
}

#[test]
fn group_settings_name_their_group_or_flag_and_print_back() {
    let layer = layers::read_file_text(
        Path::new("c.toml"),
        "[[group]]\nname = \"g\"\norigin = \"ftp://x\"\n",
    )
    .unwrap();
    let e = layer.group[0]
        .apply(&mut GroupConfig::new("g"), |k| format!("group `g` {k}"))
        .unwrap_err();
    assert_eq!(e.setting, "group `g` origin");
    assert!(e.message.contains("is not an origin"), "{e}");
    assert_eq!(parse(&["--ttl", "soon"]).unwrap_err().setting, "--ttl");

    let mut g = GroupConfig::new("g");
    g.cache_bytes = 1_500_000;
    g.origin = OriginSpec::parse("synthetic:size=10,delay_ms=5").unwrap();
    g.ttl = Some(Duration::from_secs(90));
    g.loader_queue = Some(9);
    let printed = GroupSettings::print(&g);
    assert_eq!(printed.ttl.as_deref(), Some("90s"));
    assert_eq!(
        printed.loader_threads, None,
        "an inherited setting is left out"
    );
    let mut back = GroupConfig::new("g");
    printed.apply(&mut back, str::to_string).unwrap();
    assert_eq!(format!("{back:?}"), format!("{g:?}"));
}
