//! A property test of the memcached writes against a model: a map of items with
//! value, flags, CAS and expiry, written as memcached's rules say. Every outcome,
//! every item read back and every CAS (new for each write, increasing) must match.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Store {
        key: u8,
        mode: StoreMode,
        value: usize,
        flags: u32,
        ttl: Option<u64>,
        /// Compare with the item's CAS (`Some(true)`) or a wrong one (`Some(false)`).
        cas: Option<bool>,
    },
    Arith {
        key: u8,
        incr: bool,
        delta: u64,
        vivify: Option<u64>,
    },
    Touch {
        key: u8,
        ttl: Option<u64>,
        gat: bool,
    },
    Delete {
        key: u8,
        cas: Option<bool>,
    },
    NativeSet {
        key: u8,
        value: usize,
    },
    Get {
        key: u8,
    },
    Advance {
        ms: u64,
    },
}

const VALUES: [&str; 9] = [
    "0",
    "7",
    "100",
    "18446744073709551615",
    " 42 ",
    "abc",
    "",
    "-3",
    "000000000000000000000000019",
];

/// Value `i`: one of [`VALUES`], or 600 or 1001 bytes (over the 1000-byte limit).
fn value(i: usize) -> String {
    match i {
        9 => "x".repeat(600),
        10 => "y".repeat(1001),
        _ => VALUES[i].to_string(),
    }
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), Just(Some(0)), (1u64..6).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..5;
    let mode = prop_oneof![
        Just(StoreMode::Set),
        Just(StoreMode::Add),
        Just(StoreMode::Replace),
        Just(StoreMode::Append),
        Just(StoreMode::Prepend),
    ];
    let delta = prop_oneof![0u64..200, Just(u64::MAX), Just(u64::MAX - 1)];
    prop_oneof![
        4 => (key.clone(), mode, 0usize..11, 0u32..4, ttl(), proptest::option::of(any::<bool>()))
            .prop_map(|(key, mode, value, flags, ttl, cas)| Op::Store { key, mode, value, flags, ttl, cas }),
        3 => (key.clone(), any::<bool>(), delta, proptest::option::of(0u64..50))
            .prop_map(|(key, incr, delta, vivify)| Op::Arith { key, incr, delta, vivify }),
        1 => (key.clone(), ttl(), any::<bool>()).prop_map(|(key, ttl, gat)| Op::Touch { key, ttl, gat }),
        1 => (key.clone(), proptest::option::of(any::<bool>())).prop_map(|(key, cas)| Op::Delete { key, cas }),
        1 => (key.clone(), 0usize..10).prop_map(|(key, value)| Op::NativeSet { key, value }),
        2 => key.prop_map(|key| Op::Get { key }),
        1 => (0u64..4).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
struct Item {
    value: Vec<u8>,
    flags: u32,
    cas: u64,
    expires: Option<Instant>,
}

fn expires_at(now: Instant, ttl: Option<u64>) -> Option<Instant> {
    ttl.filter(|&t| t > 0)
        .map(|t| now + Duration::from_millis(t))
}

/// A counter as the model reads it: trimmed of ASCII whitespace, an optional `+`,
/// then only digits, fitting a u64.
fn number(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v)
        .ok()?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        Some(0)
    } else {
        t.parse().ok()
    }
}

/// The model's answer to a CAS comparison.
fn compare(old: Option<&Item>, right: bool) -> Option<WriteOutcome> {
    match old {
        None => Some(NotFound),
        Some(i) if i.cas == 0 || !right => Some(Exists),
        Some(_) => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn writes_behave_like_memcached(ops in proptest::collection::vec(op(), 1..80)) {
        let start = Instant::now();
        let mut now = start;
        // No origin: a miss starts nothing. A budget no test fills.
        let mut s = shard(1 << 24, false, None);
        let mut m: HashMap<u8, Item> = HashMap::new();
        let mut last_cas = 0u64;
        for op in ops {
            // Whole milliseconds after `start`: the store's rounding to the ms
            // expires an item exactly when the model does.
            m.retain(|_, i| i.expires.is_none_or(|e| e > now));
            match op {
                Op::Store { key, mode, value: vi, flags, ttl, cas } => {
                    let data = value(vi);
                    let old = m.get(&key).cloned();
                    let expect_cas = cas.map(|right| {
                        let c = old.as_ref().map_or(1, |i| i.cas);
                        if right { c } else { c.wrapping_add(7) }
                    });
                    let w = StoreCommand {
                        cas: expect_cas,
                        ..StoreCommand::new(mode, flags, ttl.map(Duration::from_millis))
                    };
                    let got = s.store(now, 0, &[key], v(&data), w);
                    let refused = match (cas.and_then(|right| compare(old.as_ref(), right)), mode, &old) {
                        (Some(o), _, _) => Some(o),
                        (None, StoreMode::Add, Some(_)) => Some(NotStored),
                        (None, StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                            Some(NotStored)
                        }
                        _ => None,
                    };
                    if let Some(o) = refused {
                        prop_assert_eq!(got, o);
                        continue;
                    }
                    let new = match (mode, &old) {
                        (StoreMode::Append, Some(i)) => Item {
                            value: [&i.value[..], data.as_bytes()].concat(),
                            ..i.clone()
                        },
                        (StoreMode::Prepend, Some(i)) => Item {
                            value: [data.as_bytes(), &i.value[..]].concat(),
                            ..i.clone()
                        },
                        _ => Item { value: data.into_bytes(), flags, cas: 0, expires: expires_at(now, ttl) },
                    };
                    if new.value.len() > 1000 {
                        prop_assert_eq!(got, TooLarge { max: 1000 });
                        if mode == StoreMode::Set && cas.is_none() {
                            m.remove(&key);
                        }
                        continue;
                    }
                    let Stored { cas: c } = got else {
                        return Err(TestCaseError::fail(format!("{got:?}")));
                    };
                    prop_assert!(c > last_cas);
                    last_cas = c;
                    m.insert(key, Item { cas: c, ..new });
                }
                Op::Arith { key, incr, delta, vivify } => {
                    let a = Arith {
                        delta: if incr { Delta::Incr(delta) } else { Delta::Decr(delta) },
                        vivify: vivify.map(|initial| Vivify { initial, ttl: None }),
                        cas: None,
                    };
                    let got = s.arith(now, 0, &[key], a);
                    match (m.get_mut(&key), vivify) {
                        (None, None) => prop_assert_eq!(got, NotFound),
                        (None, Some(initial)) => {
                            let Number { value, cas } = got else {
                                return Err(TestCaseError::fail(format!("{got:?}")));
                            };
                            prop_assert_eq!(value, initial);
                            prop_assert!(cas > last_cas);
                            last_cas = cas;
                            let value = initial.to_string().into_bytes();
                            m.insert(key, Item { value, flags: 0, cas, expires: None });
                        }
                        (Some(i), _) => match number(&i.value) {
                            None => prop_assert_eq!(got, NonNumeric),
                            Some(n) => {
                                let n = if incr { n.wrapping_add(delta) } else { n.saturating_sub(delta) };
                                let Number { value, cas } = got else {
                                    return Err(TestCaseError::fail(format!("{got:?}")));
                                };
                                prop_assert_eq!(value, n);
                                prop_assert!(cas > last_cas);
                                last_cas = cas;
                                let digits = n.to_string();
                                i.value = if digits.len() <= i.value.len() {
                                    format!("{digits:<width$}", width = i.value.len()).into_bytes()
                                } else {
                                    digits.into_bytes()
                                };
                                i.cas = cas;
                            }
                        },
                    }
                }
                Op::Touch { key, ttl, gat } => {
                    let d = ttl.map(Duration::from_millis);
                    let item = m.get_mut(&key);
                    if gat {
                        let got = s.get_and_touch(now, 0, &[key], d);
                        match item {
                            None => prop_assert_eq!(got, None),
                            Some(i) => {
                                i.expires = expires_at(now, ttl);
                                let hit = got.expect("a hit");
                                prop_assert_eq!(&hit.value[..], &i.value[..]);
                                prop_assert_eq!((hit.flags, hit.cas), (i.flags, i.cas));
                            }
                        }
                    } else {
                        let got = s.touch(now, 0, &[key], d);
                        match item {
                            None => prop_assert_eq!(got, NotFound),
                            Some(i) => {
                                i.expires = expires_at(now, ttl);
                                prop_assert_eq!(got, Touched { cas: i.cas });
                            }
                        }
                    }
                }
                Op::Delete { key, cas } => {
                    let old = m.get(&key);
                    let expect_cas = cas.map(|right| {
                        let c = old.map_or(1, |i| i.cas);
                        if right { c } else { c.wrapping_add(7) }
                    });
                    let got = s.delete_cas(now, 0, &[key], expect_cas);
                    match cas.and_then(|right| compare(old, right)) {
                        Some(o) => prop_assert_eq!(got, o),
                        None if old.is_some() => {
                            prop_assert_eq!(got, Deleted);
                            m.remove(&key);
                        }
                        None => prop_assert_eq!(got, NotFound),
                    }
                }
                Op::NativeSet { key, value: vi } => {
                    let data = value(vi);
                    prop_assert!(matches!(s.set(now, 0, &[key], v(&data), None), Reply::Stored));
                    m.insert(key, Item { value: data.into_bytes(), flags: 0, cas: 0, expires: None });
                }
                Op::Get { key } => {
                    let got = read(&mut s, now, &[key]);
                    let want = m.get(&key).map(|i| {
                        (String::from_utf8_lossy(&i.value).into_owned(), i.flags, i.cas)
                    });
                    prop_assert_eq!(got, want);
                }
                Op::Advance { ms } => now += Duration::from_millis(ms),
            }
        }
        // Everything the model holds, the shard holds, and nothing else.
        m.retain(|_, i| i.expires.is_none_or(|e| e > now));
        for key in 0u8..5 {
            let want = m.get(&key).map(|i| {
                (String::from_utf8_lossy(&i.value).into_owned(), i.flags, i.cas)
            });
            prop_assert_eq!(read(&mut s, now, &[key]), want);
        }
    }
}
