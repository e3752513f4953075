//! The command line: what `groupcached-cli` accepts, parsed by hand into [`Args`].
//!
//! Argument parsing is written by hand: eight commands do not justify making every
//! embedder of the library build an argument-parsing crate. Durations use the
//! grammar shared with the server and the bench (`groupcached-units`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::time::Duration;

use groupcached_client::parse_duration;
use groupcached_client::protocol::DEFAULT_VNODES;
use groupcached_client::units::ParseError;

pub(crate) const DEFAULT_SERVER: &str = "127.0.0.1:7000";
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The one line a usage error prints (with a `--help` hint), not the whole help.
pub(crate) const USAGE_LINE: &str =
    "Usage: groupcached-cli [--server ADDR | --peers A,B,C] [--timeout D] [--shard-aware] \
<get|set|delete|stats|ping|hello|owner> [ARGS...]";

pub(crate) const USAGE: &str = "\
Usage: groupcached-cli [--server ADDR | --peers A,B,C [--vnodes N]] [--timeout D] <command>

Commands:
  get GROUP KEY                   write the value's bytes to stdout, as stored
                                  (plus a newline on a terminal if it has none);
                                  exit 1 if the key has no value
  set GROUP KEY VALUE [--ttl D]   store VALUE (`-` reads it from stdin);
                                  without --ttl the group's default TTL applies
  delete GROUP KEY                remove a key; prints `deleted` or `not found`
  stats [--json]                  the server's counters, one `name value` line
                                  each (grep-able), or one JSON object; their
                                  meanings are in docs/operations.md (\"Stats\")
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
  --shard-aware       one connection per server core, each key sent on its
                      core's (SHARD, docs/protocol.md); off by default, as one
                      command is cheaper over one connection
  --ttl D             with set: how long the value lives (at least 1ms; whole
                      milliseconds, rounded up)
  -h, --help          print this help

Durations are written as for the server and groupcached-bench, a number and a
unit (ns, us, ms, s, m, h, d), whole or with a fraction: 500ms, 1.5s, 30s, 5m,
1h, 1d.

Exit status:
  0  ok
  1  not found (get of a key without a value)
  2  usage error (bad flags or arguments, a key or value the protocol refuses)
  3  cannot connect (nothing listening, connection lost, or no answer in --timeout)
  4  the server answered an error
  5  local I/O error (reading stdin, writing stdout)
";

/// What to do, with its arguments (keys and values as raw bytes).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
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
pub(crate) enum ValueSource {
    Arg(Vec<u8>),
    Stdin,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    pub(crate) server: String,
    /// `--peers`: route keyed commands by the ring over these members.
    pub(crate) peers: Option<Vec<String>>,
    pub(crate) vnodes: u32,
    pub(crate) timeout: Duration,
    pub(crate) ttl: Option<Duration>,
    pub(crate) json: bool,
    /// `--shard-aware`: per-core connections (the library's default, off here).
    pub(crate) shard_aware: bool,
    pub(crate) command: Command,
}

/// The outcome of parsing: run something, or print the help.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Run(Args),
    Help,
}

/// A command line that cannot be run as given (exit status 2); the message says
/// which argument and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<String> for UsageError {
    fn from(message: String) -> Self {
        UsageError(message)
    }
}

impl From<&str> for UsageError {
    fn from(message: &str) -> Self {
        UsageError(message.to_owned())
    }
}

impl From<ParseError> for UsageError {
    fn from(e: ParseError) -> Self {
        UsageError(e.to_string())
    }
}

/// Parses the arguments after the program name. Options may appear anywhere;
/// `--` ends them (so a key may start with `-`).
pub(crate) fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Parsed, UsageError> {
    let mut server = None;
    let mut peers = None;
    let mut vnodes = None;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut ttl = None;
    let mut json = false;
    let mut shard_aware = false;
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
            "--shard-aware" if inline.is_none() => shard_aware = true,
            "--timeout" => timeout = parse_duration(&value(name)?)?,
            "--ttl" => {
                let d = parse_duration(&value(name)?)?;
                if d.is_zero() {
                    // On the wire 0 means the group's default, and a SET cannot ask
                    // for "never expires": refuse rather than store for 1 ms.
                    return Err("--ttl must be above 0; leave it out for the group's \
                                default TTL"
                        .into());
                }
                ttl = Some(d);
            }
            "--json" if inline.is_none() => json = true,
            _ => return Err(format!("unknown option {text}").into()),
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
            let expected = format!("{cmd} {shape}");
            Err(format!(
                "wrong arguments; expected `{}`",
                expected.trim_end()
            ))
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
        other => return Err(format!("unknown command {other:?}").into()),
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
        shard_aware,
        command,
    }))
}

/// A comma-separated member list; blanks around names and empty entries are ignored.
fn parse_peers(list: &str) -> Result<Vec<String>, UsageError> {
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
pub(crate) fn os_bytes(s: &OsStr) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, UsageError> {
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
        assert_eq!(
            run_args(&["set", "g", "k", "v", "--ttl", "1d"]).ttl,
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            run_args(&["set", "g", "k", "v", "--ttl=1.5s"]).ttl,
            Some(Duration::from_millis(1500))
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
            &["set", "g", "k", "v", "--ttl", "0"],
            &["set", "g", "k", "v", "--ttl", "0s"],
            &["set", "g", "k", "v", "--ttl", "1y"],
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
