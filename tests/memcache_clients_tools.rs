//! libmemcached's command-line tools as Debian ships them (`libmemcached-tools`:
//! memccp, memccat, memcstat, memcslap, memcexist, memctouch, memcrm, memcflush,
//! memcping), run as subprocesses against the real binary's `--memcache-listen` port,
//! as an operator would. They speak the text protocol by default.
//!
//! A tool missing from PATH prints `SKIPPED` and passes, unless
//! `GROUPCACHED_REQUIRE_MEMCACHED=1` or `CI` is set (.ci/run installs the package):
//! then it fails.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::memcache::{mc_stats, run, start, success, tool, Text};
use common::TempDir;

/// Every tool `names` on PATH, or `None` (after a visible skip message).
fn tools<const N: usize>(test: &str, names: [&str; N]) -> Option<[PathBuf; N]> {
    let found: Vec<PathBuf> = names.iter().filter_map(|n| tool(test, n)).collect();
    found.try_into().ok()
}

fn servers(mc: SocketAddr) -> String {
    format!("--servers={mc}")
}

fn stat(mc: SocketAddr, name: &str) -> u64 {
    mc_stats(mc)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no STAT {name}"))
        .1
        .parse()
        .unwrap()
}

#[test]
fn memccp_and_memccat_copy_files_with_flags() {
    let test = "memccp_and_memccat_copy_files_with_flags";
    let Some([memccp, memccat, memcexist, memctouch, memcrm]) = tools(
        test,
        ["memccp", "memccat", "memcexist", "memctouch", "memcrm"],
    ) else {
        return;
    };
    let (_s, mc) = start(&[]);
    let dir = TempDir::new("mc-tools");
    let a = dir.write("alpha.txt", b"first file\n");
    let b = dir.write("beta.bin", &[0u8, 1, 2, 255, b'\r', b'\n', 7]);
    let srv = servers(mc);
    success(
        "memccp",
        &run(
            &memccp,
            &[&srv, "--flags=42", a.to_str().unwrap(), b.to_str().unwrap()],
        ),
    );
    let out = run(&memccat, &[&srv, "alpha.txt"]);
    assert!(
        success("memccat", &out).starts_with("first file\n"),
        "{out:?}"
    );
    // The binary file byte for byte, and the flags memccp set, seen by hand.
    let mut t = Text::connect(mc);
    let items = t.get("get alpha.txt beta.bin\r\n");
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[1].data, [0u8, 1, 2, 255, b'\r', b'\n', 7]);
    assert!(items.iter().all(|i| i.flags == 42), "{items:?}");
    let flags = success("memccat -F", &run(&memccat, &[&srv, "-F", "alpha.txt"]));
    assert!(flags.starts_with("42\n"), "{flags:?}");
    // A missing key: memccat fails, and says so.
    assert!(!run(&memccat, &[&srv, "no-such-key"]).status.success());
    // exist / touch / rm.
    success("memcexist", &run(&memcexist, &[&srv, "alpha.txt"]));
    success(
        "memctouch",
        &run(&memctouch, &[&srv, "--expire=1000", "alpha.txt"]),
    );
    success("memcrm", &run(&memcrm, &[&srv, "alpha.txt"]));
    assert!(!run(&memcexist, &[&srv, "alpha.txt"]).status.success());
    assert_eq!(t.get("get alpha.txt\r\n"), vec![]);
}

#[test]
fn memcstat_memcping_and_memcflush_work() {
    let test = "memcstat_memcping_and_memcflush_work";
    let Some([memcstat, memcping, memcflush]) = tools(test, ["memcstat", "memcping", "memcflush"])
    else {
        return;
    };
    let (_s, mc) = start(&[]);
    let srv = servers(mc);
    let mut t = Text::connect(mc);
    assert_eq!(t.ask("set k 0 0 1\r\nv\r\n"), "STORED");
    // libmemcached (memcstat, memcping, and the clients built on it: pylibmc, PHP's
    // memcached) asks for `version` first and refuses a server whose major version
    // is 0 or over 255: "strtol() failed to parse major version".
    let version = t.ask("version\r\n");
    let major = version
        .strip_prefix("VERSION ")
        .and_then(|v| v.split(['.', '-', ' ']).next())
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        matches!(major, Some(1..=255)),
        "libmemcached cannot use a server that answers {version:?}"
    );
    let stats = success("memcstat", &run(&memcstat, &[&srv]));
    for name in ["curr_items", "get_hits", "cmd_get", "curr_connections"] {
        assert!(
            stats.contains(&format!("{name}: ")),
            "memcstat shows {name}:\n{stats}"
        );
    }
    success("memcping", &run(&memcping, &[&srv]));
    success("memcflush", &run(&memcflush, &[&srv]));
    assert_eq!(t.get("get k\r\n"), vec![], "memcflush emptied the cache");
}

#[test]
fn memcslap_runs_its_load_without_errors() {
    let test = "memcslap_runs_its_load_without_errors";
    let Some([memcslap]) = tools(test, ["memcslap"]) else {
        return;
    };
    let (_s, mc) = start(&["--threads", "2"]);
    let srv = servers(mc);
    for mode in ["get", "mget"] {
        let before = stat(mc, "cmd_get");
        let out = run(
            &memcslap,
            &[
                &srv,
                "--concurrency=2",
                "--execute-number=200",
                "--initial-load=100",
                &format!("--test={mode}"),
            ],
        );
        let text = success("memcslap", &out);
        assert!(text.contains("Time total"), "{text}");
        // 2 threads x 200 reads of keys it loaded first, all counted.
        let gets = stat(mc, "cmd_get") - before;
        assert!(gets >= 400, "memcslap --test={mode}: {gets} keys read");
    }
    assert!(stat(mc, "get_hits") >= 800, "the keys it loaded were found");
}

#[test]
fn memccp_over_a_cluster_with_client_side_hashing_then_memccat_from_each_node() {
    let test = "memccp_over_a_cluster_with_client_side_hashing_then_memccat_from_each_node";
    let Some([memccp, memccat]) = tools(test, ["memccp", "memccat"]) else {
        return;
    };
    let c = common::cluster::TestCluster::start(
        3,
        &["--memcache-listen", "127.0.0.1:0", "--threads", "1"],
    );
    let mcs: Vec<SocketAddr> = (0..3)
        .map(|i| common::memcache::mc_addr(c.node(i)))
        .collect();
    let dir = TempDir::new("mc-tools-cluster");
    let files: Vec<PathBuf> = (0..12)
        .map(|i| {
            dir.write(
                &format!("file-{i}.txt"),
                format!("contents {i}\n").as_bytes(),
            )
        })
        .collect();
    // libmemcached hashes keys over the servers it is given (its own hashing, not
    // the cluster's ring): most files are written through a node that does not own
    // them.
    let all = format!(
        "--servers={}",
        mcs.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut args = vec![all.as_str()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    success("memccp over 3 servers", &run(&memccp, &args));
    for &mc in &mcs {
        let srv = servers(mc);
        for i in 0..12 {
            let out = run(&memccat, &[&srv, &format!("file-{i}.txt")]);
            assert!(
                success("memccat", &out).starts_with(&format!("contents {i}\n")),
                "file-{i}.txt through {mc}: {out:?}"
            );
        }
    }
}
