//! A property test of the store against a plain model of its eviction order (CLOCK:
//! a list in write order, read marks, second chances at eviction), with metadata
//! (flags and CAS) and touch among its operations.

use std::time::Duration;

use proptest::prelude::*;

use super::class::{external_charge, fits_inline};
use super::*;

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// A plain insert (`meta` None) or one with metadata (flags given, CAS from a
    /// counter).
    Insert {
        key: u8,
        len: usize,
        ttl_ms: Option<u64>,
        flags: Option<u32>,
    },
    Get {
        key: u8,
        meta: bool,
    },
    Touch {
        key: u8,
        ttl_ms: Option<u64>,
    },
    Remove {
        key: u8,
    },
    PopOldest,
    TakeOdd,
    Advance {
        ms: u64,
    },
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(prop_oneof![9 => 1u64..50, 1 => Just(u64::MAX)])
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![0usize..120, 120usize..2100, 2100usize..5000];
    prop_oneof![
        4 => (0u8..24, len, ttl(), proptest::option::of(any::<u32>()))
            .prop_map(|(key, len, ttl_ms, flags)| Op::Insert { key, len, ttl_ms, flags }),
        3 => (0u8..24, any::<bool>()).prop_map(|(key, meta)| Op::Get { key, meta }),
        1 => (0u8..24, ttl()).prop_map(|(key, ttl_ms)| Op::Touch { key, ttl_ms }),
        1 => (0u8..24).prop_map(|key| Op::Remove { key }),
        1 => Just(Op::PopOldest),
        1 => Just(Op::TakeOdd),
        1 => (0u64..30).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// One entry of the model.
#[derive(Debug, Clone)]
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    /// As the store keeps it (rounded down to the ms if inline).
    expires: Option<Instant>,
    charge: usize,
    meta: Option<Meta>,
    /// Read since written, touched or given its second chance.
    referenced: bool,
}

/// The model: entries most recently written (or touched, or second-chanced) first.
type Model = Vec<Entry>;

fn key_bytes(key: u8) -> Vec<u8> {
    // Keys of different lengths, some long enough to push items out of line.
    let len = 1 + (key as usize % 4) * (key as usize % 4) * 200;
    vec![key; len]
}

/// The expiry and charge the store gives an item: inline items keep their expiry
/// rounded down to the ms; items out of line (too big, or expiring too far ahead)
/// keep it exact.
fn placed(l: &Store, e: &mut Entry, expires: Option<Instant>) {
    let with = e.meta.is_some();
    (e.expires, e.charge) = match l.clock.encode(expires) {
        Some(code) if fits_inline(e.key.len(), e.value.len(), with) => (
            l.clock.decode(code),
            item_charge(e.key.len(), e.value.len(), with),
        ),
        _ => (expires, external_charge(e.key.len(), e.value.len())),
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn store_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let start = Instant::now();
        let mut now = start;
        let mut l = Store::new();
        let mut m: Model = Vec::new();
        let mut cas = 0u64;
        for op in ops {
            match op {
                Op::Insert { key, len, ttl_ms, flags } => {
                    let kb = key_bytes(key);
                    let value = vec![key.wrapping_add(len as u8); len];
                    let expires = ttl_ms.map(|t| now + Duration::from_millis(t));
                    let meta = flags.map(|flags| {
                        cas += 1;
                        Meta { flags, cas }
                    });
                    let view = ByteView::from_vec(value.clone());
                    match meta {
                        Some(meta) => l.insert_meta(&kb, view, expires, meta),
                        None => l.insert(&kb, view, expires),
                    }
                    let mut e = Entry {
                        key: kb,
                        value,
                        expires: None,
                        charge: 0,
                        meta,
                        referenced: false,
                    };
                    placed(&l, &mut e, expires);
                    m.retain(|x| x.key != e.key);
                    m.insert(0, e);
                }
                Op::Get { key, meta } => {
                    let kb = key_bytes(key);
                    let got = if meta {
                        l.get_meta(&kb, now)
                    } else {
                        l.get(&kb, now).map(|h| (h, Meta::NONE))
                    };
                    match m.iter().position(|e| e.key == kb) {
                        Some(p) if m[p].expires.is_some_and(|e| e <= now) => {
                            m.remove(p);
                            prop_assert!(got.is_none());
                        }
                        Some(p) => {
                            let e = &mut m[p];
                            let (hit, got_meta) = got.expect("present");
                            prop_assert_eq!(&hit.value[..], &e.value[..]);
                            prop_assert_eq!(hit.expires, e.expires);
                            if meta {
                                prop_assert_eq!(got_meta, e.meta.unwrap_or(Meta::NONE));
                            }
                            e.referenced = true;
                        }
                        None => prop_assert!(got.is_none()),
                    }
                }
                Op::Touch { key, ttl_ms } => {
                    let kb = key_bytes(key);
                    let expires = ttl_ms.map(|t| now + Duration::from_millis(t));
                    let got = l.touch(&kb, expires, now);
                    match m.iter().position(|e| e.key == kb) {
                        Some(p) if m[p].expires.is_some_and(|e| e <= now) => {
                            m.remove(p);
                            prop_assert!(got.is_none());
                        }
                        Some(p) => {
                            let mut e = m.remove(p);
                            prop_assert_eq!(got, Some(e.meta.unwrap_or(Meta::NONE)));
                            placed(&l, &mut e, expires);
                            e.referenced = false;
                            m.insert(0, e);
                        }
                        None => prop_assert!(got.is_none()),
                    }
                }
                Op::Remove { key } => {
                    let kb = key_bytes(key);
                    let was = m.iter().any(|e| e.key == kb);
                    m.retain(|e| e.key != kb);
                    prop_assert_eq!(l.remove(&kb), was);
                }
                Op::PopOldest => {
                    for _ in 0..SECOND_CHANCES {
                        match m.last() {
                            Some(e) if e.referenced => {
                                let mut e = m.pop().expect("last");
                                e.referenced = false;
                                m.insert(0, e);
                            }
                            _ => break,
                        }
                    }
                    let expect = m.pop().map(|e| e.charge);
                    prop_assert_eq!(l.pop_oldest(), expect);
                }
                Op::TakeOdd => {
                    let taken = l.take_where(|k| k[0] % 2 == 1);
                    let expect: Vec<_> =
                        m.iter().rev().filter(|e| e.key[0] % 2 == 1).cloned().collect();
                    m.retain(|e| e.key[0] % 2 == 0);
                    prop_assert_eq!(taken.len(), expect.len());
                    for (t, e) in taken.iter().zip(&expect) {
                        prop_assert_eq!(&t.key[..], &e.key[..]);
                        prop_assert_eq!(&t.value[..], &e.value[..]);
                        prop_assert_eq!(t.expires, e.expires);
                        prop_assert_eq!(t.meta, e.meta);
                    }
                }
                Op::Advance { ms } => now += Duration::from_millis(ms),
            }
            let model_keys: Vec<Vec<u8>> = m.iter().map(|e| e.key.clone()).collect();
            prop_assert_eq!(l.keys(), model_keys);
            prop_assert_eq!(l.len(), m.len());
            prop_assert_eq!(l.bytes(), m.iter().map(|e| e.charge).sum::<usize>());
            for e in &m {
                prop_assert!(l.contains(&e.key));
                let live = e.expires.is_none_or(|x| x > now);
                let meta = live.then(|| e.meta.unwrap_or(Meta::NONE));
                prop_assert_eq!(l.peek_meta(&e.key, now), meta);
            }
        }
    }
}
