//! `groupcached-cli`: talk to a groupcached server from a shell.
//!
//! Exit status: 0 on success, 1 when `get` finds no value, 2 for a usage error, a
//! connection failure or an error answered by the server. Argument parsing is written
//! by hand: eight commands do not justify making every embedder of the library build
//! an argument-parsing crate.
//!
//! With `--peers`, `get`, `set` and `delete` go through a [`ClusterClient`] straight
//! to the key's owner (falling back to the next member if it is down), and `owner`
//! prints which member that is without touching the network.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use groupcached_client::protocol::{Ring, DEFAULT_VNODES};
use groupcached_client::{parse_duration, Client, ClusterClient, ConnectOptions, Error, Value};

const DEFAULT_SERVER: &str = "127.0.0.1:7000";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
Usage: groupcached-cli [--server ADDR | --peers A,B,C [--vnodes N]] [--timeout D] <command>

Commands:
  get GROUP KEY                   write the value's raw bytes to stdout
                                  (exit 1 if the key has no value)
  set GROUP KEY VALUE [--ttl D]   store VALUE (`-` reads it from stdin);
                                  without --ttl the group's default TTL applies
  delete GROUP KEY                remove a key; prints `deleted` or `not found`
  stats [--json]                  the server's counters, as `name value` lines
                                  or one JSON object
  ping                            measure a round trip
  hello                           node id, ring fingerprint, vnodes and members
  owner GROUP KEY --peers A,B,C   print the member that owns KEY (computed from
                                  the ring, no network; GROUP does not matter)

Options:
  --server ADDR       server address (default 127.0.0.1:7000)
  --peers A,B,C       the cluster's members, as the servers' --peers: get, set
                      and delete go straight to the key's owner (the next member
                      if it is down); required by owner
  --vnodes N          virtual nodes per member, as the servers' (default 512);
                      only with --peers
  --timeout D         time allowed to connect and for each response (default 5s)
  -h, --help          print this help

Durations are a whole number and a unit: 500ms, 30s, 5m, 1h.
Exit status: 0 ok, 1 not found (get), 2 usage, connection or server error.
";

/// What to do, with its arguments (keys and values as raw bytes).
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Get {
        group: Vec<u8>,
        key: Vec<u8>,
    },
    Set {
        group: Vec<u8>,
        key: Vec<u8>,
        value: ValueSource,
    },
    Delete {
        group: Vec<u8>,
        key: Vec<u8>,
    },
    Stats,
    Ping,
    Hello,
    Owner {
        key: Vec<u8>,
    },
}

/// Where `set` takes its value from.
#[derive(Debug, PartialEq, Eq)]
enum ValueSource {
    Arg(Vec<u8>),
    Stdin,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    server: String,
    /// `--peers`: route keyed commands by the ring over these members.
    peers: Option<Vec<String>>,
    vnodes: u32,
    timeout: Duration,
    ttl: Option<Duration>,
    json: bool,
    command: Command,
}

/// The outcome of parsing: run something, or print the help.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Run(Args),
    Help,
}

/// Parses the arguments after the program name. Options may appear anywhere;
/// `--` ends them (so a key may start with `-`).
fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Parsed, String> {
    let mut server = None;
    let mut peers = None;
    let mut vnodes = None;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut ttl = None;
    let mut json = false;
    let mut positional: Vec<OsString> = Vec::new();
    let mut args = args.into_iter();
    let mut options_done = false;
    while let Some(arg) = args.next() {
        let text = arg.to_str();
        if options_done || text.is_none_or(|t| !t.starts_with("--") && t != "-h") {
            positional.push(arg);
            continue;
        }
        let text = text.unwrap_or_default();
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (text, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .ok_or_else(|| format!("{name} needs a value"))?
                    .into_string()
                    .map_err(|_| format!("{name}: value is not UTF-8")),
            }
        };
        match name {
            "--" => options_done = true,
            "-h" | "--help" => return Ok(Parsed::Help),
            "--server" => server = Some(value(name)?),
            "--peers" => peers = Some(parse_peers(&value(name)?)?),
            "--vnodes" => {
                let v = value(name)?;
                let n: u32 =
                    v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--vnodes {v:?}: expected a positive whole number")
                    })?;
                vnodes = Some(n);
            }
            "--timeout" => timeout = parse_duration(&value(name)?).map_err(|e| e.to_string())?,
            "--ttl" => ttl = Some(parse_duration(&value(name)?).map_err(|e| e.to_string())?),
            "--json" if inline.is_none() => json = true,
            _ => return Err(format!("unknown option {text}")),
        }
    }

    let mut pos = positional.into_iter();
    let Some(cmd) = pos.next() else {
        return Err("missing command".into());
    };
    let cmd = cmd.to_string_lossy().into_owned();
    let rest: Vec<OsString> = pos.collect();
    let want = |n: usize, shape: &str| -> Result<(), String> {
        if rest.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {cmd} {shape}"))
        }
    };
    let command = match cmd.as_str() {
        "get" => {
            want(2, "GROUP KEY")?;
            Command::Get {
                group: os_bytes(&rest[0]),
                key: os_bytes(&rest[1]),
            }
        }
        "set" => {
            want(3, "GROUP KEY VALUE [--ttl DURATION]")?;
            let value = if rest[2] == "-" {
                ValueSource::Stdin
            } else {
                ValueSource::Arg(os_bytes(&rest[2]))
            };
            Command::Set {
                group: os_bytes(&rest[0]),
                key: os_bytes(&rest[1]),
                value,
            }
        }
        "delete" => {
            want(2, "GROUP KEY")?;
            Command::Delete {
                group: os_bytes(&rest[0]),
                key: os_bytes(&rest[1]),
            }
        }
        "stats" => {
            want(0, "[--json]")?;
            Command::Stats
        }
        "ping" => {
            want(0, "")?;
            Command::Ping
        }
        "hello" => {
            want(0, "")?;
            Command::Hello
        }
        "owner" => {
            want(2, "GROUP KEY --peers A,B,C [--vnodes N]")?;
            if peers.is_none() {
                return Err("owner needs --peers (the cluster's members)".into());
            }
            Command::Owner {
                key: os_bytes(&rest[1]),
            }
        }
        other => return Err(format!("unknown command {other:?}")),
    };
    if ttl.is_some() && !matches!(command, Command::Set { .. }) {
        return Err("--ttl only applies to set".into());
    }
    if json && command != Command::Stats {
        return Err("--json only applies to stats".into());
    }
    if peers.is_some() {
        if server.is_some() {
            return Err("--server and --peers exclude each other".into());
        }
        if matches!(command, Command::Stats | Command::Ping | Command::Hello) {
            return Err(
                "--peers applies to get, set, delete and owner; use --server for the others".into(),
            );
        }
    } else if vnodes.is_some() {
        return Err("--vnodes only applies with --peers".into());
    }
    Ok(Parsed::Run(Args {
        server: server.unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
        peers,
        vnodes: vnodes.unwrap_or(DEFAULT_VNODES),
        timeout,
        ttl,
        json,
        command,
    }))
}

/// A comma-separated member list; blanks around names and empty entries are ignored.
fn parse_peers(list: &str) -> Result<Vec<String>, String> {
    let peers: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if peers.is_empty() {
        return Err("--peers needs at least one member".into());
    }
    Ok(peers)
}

/// An argument's bytes: exact on Unix (keys need not be UTF-8), lossy elsewhere.
fn os_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().into_owned().into_bytes()
    }
}

/// How a run ended.
enum Failure {
    /// `get` found nothing: exit 1.
    NotFound,
    /// Anything else: exit 2 with this message.
    Error(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Error(e.to_string())
    }
}

/// Where keyed commands go: one server, or the key's owner in a cluster.
enum Target {
    Server(Client),
    Cluster(ClusterClient),
}

impl Target {
    fn get(&mut self, group: &[u8], key: &[u8]) -> Result<Option<Value>, Error> {
        match self {
            Target::Server(c) => c.get(group, key),
            Target::Cluster(c) => c.get(group, key),
        }
    }

    fn set(
        &mut self,
        group: &[u8],
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        match self {
            Target::Server(c) => c.set(group, key, value, ttl),
            Target::Cluster(c) => c.set(group, key, value, ttl),
        }
    }

    fn delete(&mut self, group: &[u8], key: &[u8]) -> Result<bool, Error> {
        match self {
            Target::Server(c) => c.delete(group, key),
            Target::Cluster(c) => c.delete(group, key),
        }
    }

    /// The single server, for the commands that address one node.
    fn server(&mut self) -> Result<&mut Client, Failure> {
        match self {
            Target::Server(c) => Ok(c),
            // The parser refuses --peers with these commands.
            Target::Cluster(_) => Err(Failure::Error("this command needs --server".into())),
        }
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if let Command::Owner { key } = &args.command {
        let peers = args.peers.as_deref().unwrap_or_default();
        let ring = Ring::new(peers, args.vnodes);
        let owner = ring
            .owner(key)
            .ok_or_else(|| Failure::Error("the member list is empty".into()))?;
        writeln!(out, "{owner}")?;
        out.flush()?;
        return Ok(());
    }
    let mut target = match &args.peers {
        Some(peers) => {
            let opts = ConnectOptions {
                connect_timeout: Some(args.timeout),
                timeout: Some(args.timeout),
                ..ConnectOptions::default()
            };
            let cluster = ClusterClient::builder()
                .options(opts)
                .vnodes(args.vnodes)
                .with_members(peers)?;
            Target::Cluster(cluster)
        }
        None => Target::Server(
            Client::builder(args.server.as_str())
                .connect_timeout(args.timeout)
                .timeout(args.timeout)
                .connect()
                .map_err(|e| Failure::Error(format!("cannot connect to {}: {e}", args.server)))?,
        ),
    };
    match args.command {
        Command::Get { group, key } => {
            let value = target.get(&group, &key)?.ok_or(Failure::NotFound)?;
            out.write_all(&value)?;
        }
        Command::Set { group, key, value } => {
            let value = match value {
                ValueSource::Arg(v) => v,
                ValueSource::Stdin => {
                    let mut v = Vec::new();
                    io::stdin().read_to_end(&mut v)?;
                    v
                }
            };
            target.set(&group, &key, &value, args.ttl)?;
        }
        Command::Delete { group, key } => {
            let removed = target.delete(&group, &key)?;
            writeln!(out, "{}", if removed { "deleted" } else { "not found" })?;
        }
        Command::Stats => {
            let stats = target.server()?.stats()?;
            if args.json {
                writeln!(out, "{}", stats.to_json())?;
            } else {
                for (name, value) in &stats {
                    writeln!(out, "{name} {value}")?;
                }
            }
        }
        Command::Ping => {
            let rtt = target.server()?.ping()?;
            writeln!(out, "pong in {:.3} ms", rtt.as_secs_f64() * 1000.0)?;
        }
        Command::Hello => {
            let h = target.server()?.hello()?;
            writeln!(out, "node_id {}", h.node_id)?;
            writeln!(out, "ring_fingerprint {:016x}", h.ring_fingerprint)?;
            writeln!(out, "vnodes {}", h.vnodes)?;
            for m in &h.members {
                writeln!(out, "member {m}")?;
            }
        }
        Command::Owner { .. } => unreachable!("handled above"),
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    match parse_args(std::env::args_os().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("groupcached-cli: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Parsed::Run(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::NotFound) => {
                eprintln!("groupcached-cli: not found");
                ExitCode::from(1)
            }
            Err(Failure::Error(msg)) => {
                eprintln!("groupcached-cli: {msg}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(OsString::from))
    }

    fn run_args(args: &[&str]) -> Args {
        match parse(args) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults_and_global_options() {
        let a = run_args(&["ping"]);
        assert_eq!(a.server, DEFAULT_SERVER);
        assert_eq!(a.timeout, DEFAULT_TIMEOUT);
        assert_eq!(a.command, Command::Ping);
        let a = run_args(&["--server", "10.0.0.1:7001", "--timeout=500ms", "hello"]);
        assert_eq!(a.server, "10.0.0.1:7001");
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(a.command, Command::Hello);
    }

    #[test]
    fn commands_and_their_arguments() {
        let a = run_args(&["get", "g", "k"]);
        assert_eq!(
            a.command,
            Command::Get {
                group: b"g".to_vec(),
                key: b"k".to_vec()
            }
        );
        let a = run_args(&["set", "g", "k", "v", "--ttl", "30s"]);
        assert_eq!(a.ttl, Some(Duration::from_secs(30)));
        assert_eq!(
            a.command,
            Command::Set {
                group: b"g".to_vec(),
                key: b"k".to_vec(),
                value: ValueSource::Arg(b"v".to_vec())
            }
        );
        let a = run_args(&["set", "g", "k", "-"]);
        assert!(matches!(
            a.command,
            Command::Set {
                value: ValueSource::Stdin,
                ..
            }
        ));
        assert!(run_args(&["stats", "--json"]).json);
        let a = run_args(&["delete", "--", "g", "--k"]);
        assert_eq!(
            a.command,
            Command::Delete {
                group: b"g".to_vec(),
                key: b"--k".to_vec()
            }
        );
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        assert_eq!(parse(&["get", "-h"]), Ok(Parsed::Help));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["get", "g"],
            &["get", "g", "k", "extra"],
            &["set", "g", "k"],
            &["stats", "x"],
            &["ping", "--json"],
            &["get", "g", "k", "--ttl", "5s"],
            &["--timeout", "5", "ping"],
            &["--timeout"],
            &["--bogus", "ping"],
            &["--json=yes", "stats"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn peers_vnodes_and_owner() {
        let a = run_args(&["owner", "g", "k", "--peers", "b:1, a:1,,c:1"]);
        assert_eq!(
            a.peers,
            Some(vec!["b:1".to_owned(), "a:1".to_owned(), "c:1".to_owned()])
        );
        assert_eq!(a.vnodes, DEFAULT_VNODES);
        assert_eq!(a.command, Command::Owner { key: b"k".to_vec() });
        let a = run_args(&["--peers=a:1,b:1", "--vnodes", "64", "get", "g", "k"]);
        assert_eq!(a.vnodes, 64);
        assert!(a.peers.is_some());
        for bad in [
            &["owner", "g", "k"][..],
            &["owner", "k", "--peers", "a:1"],
            &["owner", "g", "k", "--peers", ","],
            &["--peers", "a:1", "--server", "b:1", "get", "g", "k"],
            &["--peers", "a:1", "stats"],
            &["--peers", "a:1", "ping"],
            &["--vnodes", "8", "get", "g", "k"],
            &["--peers", "a:1", "--vnodes", "0", "get", "g", "k"],
            &["--peers", "a:1", "--vnodes", "x", "get", "g", "k"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[cfg(unix)]
    #[test]
    fn keys_may_be_any_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let key = OsString::from_vec(vec![0xff, b'k', 0x00]);
        let parsed = parse_args(vec!["get".into(), "g".into(), key]);
        let Ok(Parsed::Run(a)) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(
            a.command,
            Command::Get {
                group: b"g".to_vec(),
                key: vec![0xff, b'k', 0x00]
            }
        );
    }
}
