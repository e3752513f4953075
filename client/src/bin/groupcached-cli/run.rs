//! Running a parsed command: connect, make the one call, print the answer.

use std::io::{self, IsTerminal, Read, Write};

use groupcached_client::protocol::Ring;
use groupcached_client::{Client, ClusterClient, ConnectOptions, Error};

use crate::args::{Args, Command, ValueSource};
use crate::target::{local, start_hint, Failure, Target};

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let stdout = io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    if let Command::Owner { key } = &args.command {
        let peers = args.peers.as_deref().unwrap_or_default();
        let ring = Ring::new(peers, args.vnodes);
        let owner = ring
            .owner(key)
            .ok_or_else(|| Failure::Usage("the member list is empty".into()))?;
        writeln!(out, "{owner}").map_err(local)?;
        out.flush().map_err(local)?;
        return Ok(());
    }
    // Read stdin before connecting, so a slow producer cannot run out a timeout.
    let stdin_value = match &args.command {
        Command::Set {
            value: ValueSource::Stdin,
            ..
        } => {
            let mut v = Vec::new();
            io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| Failure::Local(format!("cannot read the value from stdin: {e}")))?;
            Some(v)
        }
        _ => None,
    };
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
                .shard_aware(args.shard_aware)
                .with_members(peers)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            Target::Cluster(cluster, peers.clone())
        }
        None => {
            let client = Client::builder(args.server.as_str())
                .connect_timeout(args.timeout)
                .timeout(args.timeout)
                .shard_aware(args.shard_aware)
                .connect()
                .map_err(|e| match e {
                    Error::InvalidArgument(m) => Failure::Usage(m),
                    e => Failure::Connect(format!(
                        "cannot connect to {}: {e}\n{}",
                        args.server,
                        start_hint(&args.server)
                    )),
                })?;
            Target::Server(client, args.server.clone())
        }
    };
    match args.command {
        Command::Get { group, key } => {
            let value = target
                .get(&group, &key)
                .map_err(|e| Failure::from_client(e, &target))?
                .ok_or(Failure::NotFound)?;
            out.write_all(&value).map_err(local)?;
            if terminal && !value.ends_with(b"\n") {
                out.write_all(b"\n").map_err(local)?;
            }
        }
        Command::Set { group, key, value } => {
            let value = match value {
                ValueSource::Arg(v) => v,
                ValueSource::Stdin => stdin_value.unwrap_or_default(),
            };
            target
                .set(&group, &key, &value, args.ttl)
                .map_err(|e| Failure::from_client(e, &target))?;
        }
        Command::Delete { group, key } => {
            let removed = target
                .delete(&group, &key)
                .map_err(|e| Failure::from_client(e, &target))?;
            writeln!(out, "{}", if removed { "deleted" } else { "not found" }).map_err(local)?;
        }
        Command::Stats => {
            let stats = target.server()?.stats();
            let stats = stats.map_err(|e| Failure::from_client(e, &target))?;
            if args.json {
                writeln!(out, "{}", stats.to_json()).map_err(local)?;
            } else {
                for (name, value) in &stats {
                    writeln!(out, "{name} {value}").map_err(local)?;
                }
            }
        }
        Command::Ping => {
            let rtt = target.server()?.ping();
            let rtt = rtt.map_err(|e| Failure::from_client(e, &target))?;
            writeln!(out, "pong in {:.3} ms", rtt.as_secs_f64() * 1000.0).map_err(local)?;
        }
        Command::Hello => {
            let h = target.server()?.hello();
            let h = h.map_err(|e| Failure::from_client(e, &target))?;
            let mut text = format!(
                "node_id {}\nring_fingerprint {:016x}\nvnodes {}\n",
                h.node_id, h.ring_fingerprint, h.vnodes
            );
            for m in &h.members {
                text.push_str(&format!("member {m}\n"));
            }
            out.write_all(text.as_bytes()).map_err(local)?;
        }
        Command::Owner { .. } => unreachable!("handled above"),
    }
    out.flush().map_err(local)?;
    Ok(())
}
