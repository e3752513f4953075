//! A simple closed-loop, pipelined GET-hit load, for the single-node figure in
//! docs/benchmarks.md until `groupcached-bench` exists. It speaks groupcached's
//! protocol or memcached's meta commands, so both servers get the same load.
//!
//! Each thread keeps `--conns` connections; each turn writes `--pipeline` GETs of
//! random prefilled keys on every connection, then reads all the answers.
//!
//! ```text
//! cargo run --release -p groupcached-client --example pipelined_load -- \
//!     --server 127.0.0.1:7000 --protocol groupcached --threads 1 --conns 50 \
//!     --pipeline 16 --keys 100000 --value-size 100 --seconds 10
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use groupcached_protocol::{
    Frame, FrameBuffer, KeyRef, Limits, Request, RequestKind, ResponseBody, Status,
};

#[derive(Clone)]
struct Opts {
    server: String,
    memcache: bool,
    group: String,
    threads: usize,
    conns: usize,
    pipeline: usize,
    keys: usize,
    value_size: usize,
    seconds: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        server: "127.0.0.1:7000".into(),
        memcache: false,
        group: "default".into(),
        threads: 1,
        conns: 50,
        pipeline: 16,
        keys: 100_000,
        value_size: 100,
        seconds: 10,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, v] = pair else {
            return Err(format!("{} needs a value", pair[0]));
        };
        let n = || {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--server" => o.server = v.clone(),
            "--protocol" => o.memcache = v == "memcache",
            "--group" => o.group = v.clone(),
            "--threads" => o.threads = n()?,
            "--conns" => o.conns = n()?,
            "--pipeline" => o.pipeline = n()?,
            "--keys" => o.keys = n()?,
            "--value-size" => o.value_size = n()?,
            "--seconds" => o.seconds = n()? as u64,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

fn key(i: usize) -> String {
    format!("key:{i:08}")
}

/// Writes every key once, pipelined, over one connection.
fn prefill(o: &Opts) -> std::io::Result<()> {
    let mut s = TcpStream::connect(&o.server)?;
    s.set_nodelay(true)?;
    let value = vec![b'v'; o.value_size];
    let mut rd = BufReader::new(s.try_clone()?);
    let mut fb = FrameBuffer::new(Limits::default(), 1 << 16);
    for chunk in (0..o.keys).collect::<Vec<_>>().chunks(1000) {
        let mut out = Vec::new();
        for &i in chunk {
            let k = key(i);
            if o.memcache {
                out.extend_from_slice(format!("ms {k} {}\r\n", o.value_size).as_bytes());
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
            } else {
                Request {
                    id: i as u32,
                    kind: RequestKind::Set {
                        key: KeyRef::new(o.group.as_bytes(), k.as_bytes()),
                        ttl_ms: 0,
                        value: &value,
                    },
                }
                .encode(&mut out);
            }
        }
        s.write_all(&out)?;
        let mut left = chunk.len();
        while left > 0 {
            if o.memcache {
                let mut line = String::new();
                rd.read_line(&mut line)?;
                if !line.starts_with("HD") {
                    return Err(std::io::Error::other(format!("memcached said {line:?}")));
                }
                left -= 1;
            } else {
                let n = rd.read(fb.read_space())?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                fb.commit(n);
                while let Some(f) = fb.next_frame().map_err(std::io::Error::other)? {
                    if let Frame::Response(r) = f {
                        if r.status != Status::Ok {
                            return Err(std::io::Error::other(format!(
                                "SET failed: {:?}",
                                r.status
                            )));
                        }
                    }
                    left -= 1;
                }
            }
        }
    }
    Ok(())
}

struct Conn {
    s: TcpStream,
    fb: FrameBuffer,
    rd: Vec<u8>,
}

/// Runs until `deadline`; returns (requests answered, hits).
fn worker(o: Opts, seed: u64, deadline: Instant) -> std::io::Result<(u64, u64)> {
    let mut conns = Vec::new();
    for _ in 0..o.conns {
        let s = TcpStream::connect(&o.server)?;
        s.set_nodelay(true)?;
        conns.push(Conn {
            s,
            fb: FrameBuffer::new(Limits::default(), 1 << 16),
            rd: Vec::new(),
        });
    }
    let mut rng = seed | 1;
    let mut out = Vec::with_capacity(o.pipeline * 64);
    let (mut done, mut hits) = (0u64, 0u64);
    while Instant::now() < deadline {
        for c in &mut conns {
            out.clear();
            for p in 0..o.pipeline {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let k = key((rng % o.keys as u64) as usize);
                if o.memcache {
                    out.extend_from_slice(b"mg ");
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b" v\r\n");
                } else {
                    Request {
                        id: p as u32,
                        kind: RequestKind::Get(KeyRef::new(o.group.as_bytes(), k.as_bytes())),
                    }
                    .encode(&mut out);
                }
            }
            c.s.write_all(&out)?;
        }
        for c in &mut conns {
            let mut left = o.pipeline;
            while left > 0 {
                if o.memcache {
                    // Responses: "VA <len> ...\r\n<data>\r\n" or "EN\r\n".
                    while let Some(pos) = c.rd.windows(2).position(|w| w == b"\r\n") {
                        let line = &c.rd[..pos];
                        let consumed = if line.starts_with(b"VA ") {
                            let len: usize = std::str::from_utf8(&line[3..])
                                .ok()
                                .and_then(|t| t.split(' ').next()?.parse().ok())
                                .ok_or_else(|| std::io::Error::other("bad VA line"))?;
                            if c.rd.len() < pos + 2 + len + 2 {
                                break;
                            }
                            hits += 1;
                            pos + 2 + len + 2
                        } else {
                            pos + 2
                        };
                        c.rd.drain(..consumed);
                        left -= 1;
                        if left == 0 {
                            break;
                        }
                    }
                    if left > 0 {
                        let mut buf = [0u8; 65536];
                        let n = c.s.read(&mut buf)?;
                        if n == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        c.rd.extend_from_slice(&buf[..n]);
                    }
                } else {
                    let n = c.s.read(c.fb.read_space())?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    c.fb.commit(n);
                    while let Some(f) = c.fb.next_frame().map_err(std::io::Error::other)? {
                        match f {
                            Frame::Response(r) if matches!(r.body, ResponseBody::Value { .. }) => {
                                hits += 1
                            }
                            Frame::Response(r) if r.status != Status::NotFound => {
                                return Err(std::io::Error::other(format!(
                                    "server answered {}: {}",
                                    r.status,
                                    String::from_utf8_lossy(r.message().unwrap_or_default())
                                )))
                            }
                            _ => {}
                        }
                        left -= 1;
                    }
                }
            }
            done += o.pipeline as u64;
        }
    }
    Ok((done, hits))
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pipelined_load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = prefill(&o) {
        eprintln!("pipelined_load: prefill failed: {e}");
        std::process::exit(1);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.seconds);
    let threads: Vec<_> = (0..o.threads)
        .map(|t| {
            let o = o.clone();
            std::thread::spawn(move || worker(o, 0x9e37_79b9 * (t as u64 + 1), deadline))
        })
        .collect();
    let (mut done, mut hits) = (0, 0);
    for t in threads {
        match t.join() {
            Ok(Ok((d, h))) => {
                done += d;
                hits += h;
            }
            Ok(Err(e)) => {
                eprintln!("pipelined_load: worker failed: {e}");
                std::process::exit(1);
            }
            Err(_) => std::process::exit(1),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} GET/s ({} requests in {:.1}s, hit ratio {:.3})",
        (done as f64 / secs) as u64,
        done,
        secs,
        hits as f64 / done.max(1) as f64
    );
}
