//! `groupcached-echo`: the ceiling for any server speaking groupcached's protocol on
//! this machine. It answers every request frame at once, from nothing: a GET with a
//! fixed value of `--value-size` bytes (ttl 0), a SET with OK, SHARD with its thread
//! (it moves no connection), STATS with an empty counter list, anything else with
//! `UNKNOWN_OP`. No cache, no hashing, no store: what is left is the cost of the
//! socket I/O and of the framing, which every groupcached server pays too.
//!
//! Why: the benchmark references ask for "a loopback echo server as the ceiling",
//! measured in the same run as groupcached and memcached, and issue 11 asks that
//! groupcached on one thread at pipeline 16 reach 0.6 of it. `bench/compare.sh` runs
//! it as a third server next to the two (see docs/benchmarks.md, "Method").
//!
//! It is built the way the server is, so that the gap between them is the server's
//! work and not a different I/O design: one mio event loop per thread (`--threads`),
//! each with its own SO_REUSEPORT listener on `--listen`; edge-triggered reads into
//! the protocol crate's `FrameBuffer`, every whole frame decoded with its decoder
//! and answered into one output buffer per connection, written once per read turn.
//! Memory per connection is bounded: frames over 1 MiB are answered `TOO_LARGE` and
//! their connection closed (as are frames after which the stream cannot be trusted:
//! those groupcached closes on), and a connection whose client does not read its
//! answers stops being read once 1 MiB of them wait.
//!
//! ```sh
//! groupcached-echo --listen 127.0.0.1:17413 --threads 1 --value-size 100
//! groupcached-bench --server 127.0.0.1:17413 --shard-aware off --pipeline 16 ...
//! ```
//!
//! It prints `groupcached-echo listening on ADDR (...)` on stdout once every
//! listener is bound (with `--listen 127.0.0.1:0`, ADDR has the port it got) and
//! runs until killed. Exit status 1 if it cannot bind or a thread fails, 2 for bad
//! flags.

mod answer;
mod conn;
mod event_loop;

use std::net::SocketAddr;

use clap::Parser;
use groupcached_units::parse_size;

use crate::answer::Answers;
use crate::conn::MAX_FRAME;

/// Largest `--value-size`: a GET answer (a length prefix of 8 header bytes, 8 of ttl
/// and the value) within the frame limit the echo holds its clients to.
const MAX_VALUE: usize = MAX_FRAME - 16;

/// A loopback echo server for groupcached's protocol: the ceiling for any server
/// speaking it (see docs/benchmarks.md).
///
/// Answers every GET with the same value, every SET with OK, SHARD and STATS minimally,
/// anything else UNKNOWN_OP. Runs until killed.
#[derive(Debug, Parser)]
#[command(name = "groupcached-echo", version)]
struct Args {
    /// Address to listen on (every thread binds it, SO_REUSEPORT); port 0 picks a
    /// free port, printed at startup.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,

    /// Event-loop threads, each with its own listener and connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,

    /// Bytes of the value every GET is answered with (e.g. 100, 4KiB; at most 1 MiB
    /// minus 16).
    #[arg(long, default_value = "100", value_parser = parse_value_size)]
    value_size: usize,
}

fn parse_value_size(text: &str) -> Result<usize, String> {
    let n = parse_size(text).map_err(|e| e.to_string())?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_VALUE)
        .ok_or_else(|| format!("at most {MAX_VALUE} bytes"))
}

fn main() {
    let args = Args::parse();
    let listeners = match groupcached::internals::bind_reuseport(args.listen, args.threads.into()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("groupcached-echo: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let bound = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(args.listen);
    let mut handles = Vec::with_capacity(listeners.len());
    for (core, listener) in (0u16..).zip(listeners) {
        let answers = Answers::new(args.value_size, args.threads, core);
        let spawned = std::thread::Builder::new()
            .name(format!("echo-{core}"))
            .spawn(move || event_loop::run(listener, answers));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("groupcached-echo: cannot start thread {core}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "groupcached-echo listening on {bound} ({} thread{}, {}-byte GET values)",
        args.threads,
        if args.threads == 1 { "" } else { "s" },
        args.value_size
    );
    for (core, h) in handles.into_iter().enumerate() {
        let why = match h.join() {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "panicked".to_string(),
        };
        eprintln!("groupcached-echo: thread {core} stopped: {why}");
        std::process::exit(1);
    }
}
