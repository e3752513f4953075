//! Micro-benchmarks of the hot path: decoding and encoding frames, the incremental
//! FrameBuffer, ring lookups and the shard rule. Results: docs/benchmarks.md.
//!
//! `cargo bench -p groupcached-protocol -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use groupcached_protocol::{
    decode, shard_of, Frame, FrameBuffer, KeyRef, Limits, Request, RequestKind, Response,
    ResponseBody, Ring, Status, DEFAULT_VNODES,
};

const GROUP: &[u8] = b"thumbs";
const KEY: &[u8] = b"user:12345678/avatar.jpg";

fn members(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("10.0.0.{i}:7000")).collect()
}

/// 1024 distinct keys, so ring lookups do not always take the same branches.
fn keys() -> Vec<Vec<u8>> {
    (0..1024)
        .map(|i| format!("user:{i:08}/avatar.jpg").into_bytes())
        .collect()
}

fn get_frame(id: u32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Request {
        id,
        kind: RequestKind::Get(KeyRef::new(GROUP, key)),
    }
    .encode(&mut out);
    out
}

fn codec(c: &mut Criterion) {
    let limits = Limits::default();
    let frame = get_frame(1, KEY);
    c.bench_function("decode GET request", |b| {
        b.iter(|| decode(black_box(&frame), &limits).unwrap().unwrap().1)
    });

    let mut out = Vec::with_capacity(256);
    c.bench_function("encode GET request", |b| {
        b.iter(|| {
            out.clear();
            Request {
                id: black_box(1),
                kind: RequestKind::Get(KeyRef::new(GROUP, black_box(KEY))),
            }
            .encode(&mut out);
            out.len()
        })
    });

    let value = [0x5au8; 100];
    c.bench_function("encode_head GET response, 100-byte value", |b| {
        b.iter(|| {
            out.clear();
            let tail = Response {
                id: black_box(1),
                opcode: 1,
                status: Status::Ok,
                body: ResponseBody::Value {
                    ttl_ms: 60_000,
                    value: black_box(&value),
                },
            }
            .encode_head(&mut out);
            (out.len(), tail.len())
        })
    });

    let stream: Vec<u8> = (0..16).flat_map(|i| get_frame(i, KEY)).collect();
    let mut fb = FrameBuffer::new(limits, 16 * 1024);
    let mut group = c.benchmark_group("FrameBuffer");
    group.throughput(Throughput::Elements(16));
    group.bench_function("feed and drain 16 pipelined GETs", |b| {
        b.iter(|| {
            fb.extend_from_slice(black_box(&stream));
            let mut n = 0;
            while let Some(f) = fb.next_frame().unwrap() {
                n += f.id();
            }
            n
        })
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let keys = keys();
    for n in [3, 10] {
        let ring = Ring::new(&members(n), DEFAULT_VNODES);
        let mut i = 0;
        c.bench_function(&format!("ring owner, {n} members"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                ring.owner_index(black_box(&keys[i]))
            })
        });
    }

    let mut i = 0;
    c.bench_function("shard_of, 4 shards", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            shard_of(black_box(&keys[i]), 4)
        })
    });

    // What a node does with every request: decode it, then find the key's owner.
    let ring = Ring::new(&members(3), DEFAULT_VNODES);
    let frames: Vec<Vec<u8>> = keys.iter().map(|k| get_frame(7, k)).collect();
    let limits = Limits::default();
    let mut i = 0;
    c.bench_function("decode GET + ring owner, 3 members", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            match decode(black_box(&frames[i]), &limits).unwrap().unwrap().0 {
                Frame::Request(Request {
                    kind: RequestKind::Get(k),
                    ..
                }) => ring.owner_index(k.key),
                _ => unreachable!(),
            }
        })
    });
}

criterion_group!(benches, codec, routing);
criterion_main!(benches);
