//! Micro-benchmarks of one shard's item store: a GET hit, a SET that evicts the
//! oldest entry, and a SET that replaces a value, each for the compact store
//! (`groupcached::shard::lru::Lru`, "after") and for the store it replaced
//! (`baseline/lru_before.rs`, "before"), in the same run, one after the other.
//! Results: docs/benchmarks.md ("Item store").
//!
//! `cargo bench --bench storage -- --warm-up-time 1 --measurement-time 3`
//!
//! Each store holds 200,000 items of 12-byte keys and 100-byte values (about 28 MB,
//! well past the CPU caches), and keys are visited in a scrambled order, so a lookup
//! pays the cache misses it pays in a server.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use groupcached::shard::lru::{Hit, Lru};
use groupcached::ByteView;

#[path = "baseline/lru_before.rs"]
mod lru_before;

const ITEMS: u32 = 200_000;

/// What the benchmark needs of a store.
trait Store {
    fn new() -> Self;
    fn insert(&mut self, key: &[u8], value: ByteView);
    /// The hit's value, if any.
    fn get(&mut self, key: &[u8], now: Instant) -> Option<ByteView>;
    fn pop_oldest(&mut self) -> Option<usize>;
}

impl Store for Lru {
    fn new() -> Self {
        Lru::new()
    }
    fn insert(&mut self, key: &[u8], value: ByteView) {
        Lru::insert(self, key, value, None)
    }
    fn get(&mut self, key: &[u8], now: Instant) -> Option<ByteView> {
        Lru::get(self, key, now).map(|h: Hit| h.value)
    }
    fn pop_oldest(&mut self) -> Option<usize> {
        Lru::pop_oldest(self)
    }
}

impl Store for lru_before::Lru {
    fn new() -> Self {
        lru_before::Lru::new()
    }
    fn insert(&mut self, key: &[u8], value: ByteView) {
        lru_before::Lru::insert(self, key, value, None)
    }
    fn get(&mut self, key: &[u8], now: Instant) -> Option<ByteView> {
        lru_before::Lru::get(self, key, now).map(|h| h.value)
    }
    fn pop_oldest(&mut self) -> Option<usize> {
        lru_before::Lru::pop_oldest(self)
    }
}

fn key(i: u32) -> [u8; 12] {
    let mut k = *b"key:00000000";
    let mut n = i;
    for b in k[4..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// A permutation of 0..n visited with a large odd stride: consecutive keys are far
/// apart in the store.
fn scrambled(i: u64, n: u32) -> u32 {
    (i.wrapping_mul(2_654_435_761) % u64::from(n)) as u32
}

fn filled<S: Store>() -> S {
    let mut s = S::new();
    for i in 0..ITEMS {
        s.insert(&key(i), ByteView::copy_from_slice(&[b'v'; 100]));
    }
    s
}

fn get_hit<S: Store>(c: &mut Criterion, name: &str) {
    let now = Instant::now();
    let mut s = filled::<S>();
    let mut i = 0u64;
    c.bench_function(&format!("GET hit, 100-byte value/{name}"), |b| {
        b.iter(|| {
            i += 1;
            black_box(s.get(&key(scrambled(i, ITEMS)), now).map(|v| v.len()))
        })
    });
}

/// What a connection does with a hit of up to 2 KiB: copy it into its output
/// buffer, then drop the value.
fn get_hit_copied<S: Store>(c: &mut Criterion, name: &str) {
    let now = Instant::now();
    let mut s = filled::<S>();
    let mut i = 0u64;
    let mut out = Vec::with_capacity(4096);
    c.bench_function(
        &format!("GET hit, 100-byte value copied to the output buffer/{name}"),
        |b| {
            b.iter(|| {
                i += 1;
                out.clear();
                if let Some(v) = s.get(&key(scrambled(i, ITEMS)), now) {
                    out.extend_from_slice(&v);
                }
                black_box(out.len())
            })
        },
    );
}

fn set_evict<S: Store>(c: &mut Criterion, name: &str) {
    let value = [b'w'; 100];
    let mut s = filled::<S>();
    let mut next = ITEMS;
    c.bench_function(
        &format!("SET new key + evict oldest, 100-byte value/{name}"),
        |b| {
            b.iter(|| {
                // As a SET does: the value leaves the read buffer as a ByteView.
                s.insert(&key(next), ByteView::copy_from_slice(&value));
                next += 1;
                black_box(s.pop_oldest())
            })
        },
    );
}

fn set_replace<S: Store>(c: &mut Criterion, name: &str) {
    let value = [b'w'; 100];
    let mut s = filled::<S>();
    let mut i = 0u64;
    c.bench_function(&format!("SET replacing a 100-byte value/{name}"), |b| {
        b.iter(|| {
            i += 1;
            s.insert(&key(scrambled(i, ITEMS)), ByteView::copy_from_slice(&value));
        })
    });
}

/// Each operation on the old store, then at once on the new one.
fn stores(c: &mut Criterion) {
    type Before = lru_before::Lru;
    get_hit::<Before>(c, "before");
    get_hit::<Lru>(c, "after");
    get_hit_copied::<Before>(c, "before");
    get_hit_copied::<Lru>(c, "after");
    set_evict::<Before>(c, "before");
    set_evict::<Lru>(c, "after");
    set_replace::<Before>(c, "before");
    set_replace::<Lru>(c, "after");
}

criterion_group!(benches, stores);
criterion_main!(benches);
