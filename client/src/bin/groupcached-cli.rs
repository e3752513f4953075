//! `groupcached-cli`: talk to a groupcached server from a shell.
//!
//! Exit status: 0 on success, 1 when `get` finds no value, 2 for a usage error, a
//! connection failure or an error answered by the server. Argument parsing is written
//! by hand: seven commands do not justify making every embedder of the library build
//! an argument-parsing crate.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use groupcached_client::{parse_duration, Client, Error};

const DEFAULT_SERVER: &str = "127.0.0.1:7000";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
Usage: groupcached-cli [--server ADDR] [--timeout DURATION] <command>

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

Options:
  --server ADDR       server address (default 127.0.0.1:7000)
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
    let mut server = DEFAULT_SERVER.to_owned();
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
            "--server" => server = value(name)?,
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
        other => return Err(format!("unknown command {other:?}")),
    };
    if ttl.is_some() && !matches!(command, Command::Set { .. }) {
        return Err("--ttl only applies to set".into());
    }
    if json && command != Command::Stats {
        return Err("--json only applies to stats".into());
    }
    Ok(Parsed::Run(Args {
        server,
        timeout,
        ttl,
        json,
        command,
    }))
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

fn run(args: Args) -> Result<(), Failure> {
    let mut client = Client::builder(args.server.as_str())
        .connect_timeout(args.timeout)
        .timeout(args.timeout)
        .connect()
        .map_err(|e| Failure::Error(format!("cannot connect to {}: {e}", args.server)))?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match args.command {
        Command::Get { group, key } => {
            let value = client.get(&group, &key)?.ok_or(Failure::NotFound)?;
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
            client.set(&group, &key, &value, args.ttl)?;
        }
        Command::Delete { group, key } => {
            let removed = client.delete(&group, &key)?;
            writeln!(out, "{}", if removed { "deleted" } else { "not found" })?;
        }
        Command::Stats => {
            let stats = client.stats()?;
            if args.json {
                writeln!(out, "{}", stats.to_json())?;
            } else {
                for (name, value) in &stats {
                    writeln!(out, "{name} {value}")?;
                }
            }
        }
        Command::Ping => {
            let rtt = client.ping()?;
            writeln!(out, "pong in {:.3} ms", rtt.as_secs_f64() * 1000.0)?;
        }
        Command::Hello => {
            let h = client.hello()?;
            writeln!(out, "node_id {}", h.node_id)?;
            writeln!(out, "ring_fingerprint {:016x}", h.ring_fingerprint)?;
            writeln!(out, "vnodes {}", h.vnodes)?;
            for m in &h.members {
                writeln!(out, "member {m}")?;
            }
        }
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
