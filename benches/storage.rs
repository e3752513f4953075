//! Micro-benchmarks of one shard's item store (`groupcached::shard::lru::Lru`): a GET
//! hit, a SET that evicts the oldest entry, and a SET that replaces a value.
//! Results: docs/benchmarks.md ("Item store").
//!
//! `cargo bench --bench storage -- --warm-up-time 1 --measurement-time 3`
//!
//! The store holds 200,000 items of 12-byte keys and 100-byte values (about 28 MB,
//! well past the CPU caches), and keys are visited in a scrambled order, so a lookup
//! pays the cache misses it pays in a server.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use groupcached::shard::lru::Lru;
use groupcached::ByteView;

const ITEMS: u32 = 200_000;

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

fn filled() -> Lru {
    let mut lru = Lru::new();
    for i in 0..ITEMS {
        lru.insert(&key(i), ByteView::from_vec(vec![b'v'; 100]), None);
    }
    lru
}

fn store(c: &mut Criterion) {
    let now = Instant::now();
    let value = [b'w'; 100];

    let mut lru = filled();
    let mut i = 0u64;
    c.bench_function("store: GET hit, 100-byte value", |b| {
        b.iter(|| {
            i += 1;
            let hit = lru.get(&key(scrambled(i, ITEMS)), now);
            black_box(hit.map(|h| h.value.len()))
        })
    });

    let mut lru = filled();
    let mut next = ITEMS;
    c.bench_function("store: SET new key + evict oldest, 100-byte value", |b| {
        b.iter(|| {
            // As a SET does: the value leaves the read buffer as a ByteView.
            lru.insert(&key(next), ByteView::copy_from_slice(&value), None);
            next += 1;
            black_box(lru.pop_oldest())
        })
    });

    let mut lru = filled();
    let mut i = 0u64;
    c.bench_function("store: SET replacing a 100-byte value", |b| {
        b.iter(|| {
            i += 1;
            lru.insert(
                &key(scrambled(i, ITEMS)),
                ByteView::copy_from_slice(&value),
                None,
            );
        })
    });
}

criterion_group!(benches, store);
criterion_main!(benches);
