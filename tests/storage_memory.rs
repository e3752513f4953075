//! The store's charge against the allocator's own count: a global allocator that
//! counts live heap bytes, and stores filled with items of several shapes. The
//! charge must never undercount what the store makes the process allocate (so RSS
//! stays within the budget), and not overcount it by much either.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use groupcached::internals::{Lru, Meta};
use groupcached::ByteView;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged,
// so `System`'s guarantees hold; the counter is only arithmetic on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl's comment).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests in this file run one at a time: the counter is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Fills a store with `n` items of `key_len`-byte keys and `value_len`-byte values,
/// with memcached metadata (flags and CAS) or without, and returns (heap bytes the
/// process gained, bytes charged). Values are created as a SET creates them, so
/// their allocation is part of what is counted.
fn fill(n: u32, key_len: usize, value_len: usize, meta: bool) -> (usize, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let src = vec![b'v'; value_len];
    let before = LIVE.load(Ordering::Relaxed);
    let mut lru = Lru::new();
    for i in 0..n {
        let mut key = vec![b'k'; key_len];
        key[..4].copy_from_slice(&i.to_be_bytes());
        let value = ByteView::copy_from_slice(&src);
        if meta {
            let m = Meta {
                flags: i,
                cas: u64::from(i) + 1,
            };
            lru.insert_meta(&key, value, None, m);
        } else {
            lru.insert(&key, value, None);
        }
    }
    let grown = (LIVE.load(Ordering::Relaxed) - before) as usize;
    let charged = lru.bytes();
    assert_eq!(lru.len(), n as usize);
    assert!(lru.get(&[0, 0, 0, 0], Instant::now()).is_none() || key_len == 4);
    drop(lru);
    (grown, charged)
}

fn check(n: u32, key_len: usize, value_len: usize, at_least: f64) {
    check_with(n, key_len, value_len, false, at_least);
}

fn check_with(n: u32, key_len: usize, value_len: usize, meta: bool, at_least: f64) {
    let (grown, charged) = fill(n, key_len, value_len, meta);
    let ratio = grown as f64 / charged as f64;
    let per_item = grown as f64 / f64::from(n) - (key_len + value_len) as f64;
    println!(
        "{n} items of {key_len}+{value_len} bytes, metadata {meta}: heap {grown}, \
         charged {charged}, {ratio:.3}; {per_item:.1} bytes per item beyond key + value"
    );
    assert!(
        grown <= charged,
        "{key_len}+{value_len}: the store allocated {grown} bytes but charged {charged}"
    );
    assert!(
        ratio >= at_least,
        "{key_len}+{value_len}: charged {charged} for {grown} bytes allocated"
    );
}

#[test]
fn small_items_cost_what_they_are_charged() {
    // The shape: 12-byte keys, 100-byte values.
    check(300_000, 12, 100, 0.93);
    check(300_000, 40, 30, 0.90);
}

#[test]
fn items_near_the_chunk_limit_cost_what_they_are_charged() {
    check(20_000, 24, 2000, 0.95);
}

#[test]
fn out_of_line_items_cost_what_they_are_charged() {
    // Out-of-line items: the charge assumes glibc's block rounding, which the counter
    // does not see, so the ratio is lower; the charge still never undercounts.
    check(20_000, 16, 5000, 0.95);
    check(2_000, 16, 200_000, 0.95);
}

#[test]
fn items_with_metadata_cost_what_they_are_charged() {
    // Flags and CAS: 12 bytes more per inline item; nothing more out of line.
    check_with(300_000, 12, 100, true, 0.93);
    check_with(20_000, 24, 2000, true, 0.95);
    check_with(20_000, 16, 5000, true, 0.95);
}
