//! A toy memcached built on the codec: a `HashMap`, a settable clock, every command
//! answered through the encoder. Lets the tests compare whole transcripts with what
//! memcached 1.6.18 answered to the same bytes.

use std::collections::HashMap;

use super::super::reply::{self, ArithOutcome, DeleteOutcome, ItemInfo, StoreOutcome};
use super::super::{discard, parse, ArithMode, Command, Limits, Parsed, StoreMode, Ttl};

struct Item {
    value: Vec<u8>,
    flags: u32,
    cas: u64,
    /// Unix second it expires at; `None` never.
    expires: Option<u64>,
}

/// The toy server and one connection's state.
pub struct Toy {
    items: HashMap<Vec<u8>, Item>,
    next_cas: u64,
    /// The clock passed to `parse`.
    pub now: u64,
    pub limits: Limits,
    rbuf: Vec<u8>,
    skip: u64,
    /// Set by `quit` or a fatal error.
    pub closed: bool,
}

impl Toy {
    pub fn new() -> Self {
        Toy {
            items: HashMap::new(),
            next_cas: 1,
            now: 1_700_000_000,
            limits: Limits::default(),
            rbuf: Vec::new(),
            skip: 0,
            closed: false,
        }
    }

    fn expiry(&self, ttl: Ttl) -> Option<Option<u64>> {
        match ttl {
            Ttl::Never => Some(None),
            Ttl::Expired => None,
            Ttl::Secs(s) => Some(Some(self.now + u64::from(s))),
        }
    }

    fn live(&mut self, key: &[u8]) -> Option<&mut Item> {
        let now = self.now;
        if self
            .items
            .get(key)
            .is_some_and(|i| i.expires.is_some_and(|e| e <= now))
        {
            self.items.remove(key);
        }
        self.items.get_mut(key)
    }

    fn info(item: &Item, now: u64) -> ItemInfo {
        ItemInfo {
            flags: item.flags,
            cas: item.cas,
            ttl: item.expires.map(|e| e.saturating_sub(now) as u32),
            ..ItemInfo::default()
        }
    }

    fn bump_cas(&mut self) -> u64 {
        self.next_cas += 1;
        self.next_cas - 1
    }

    /// Feeds `input` as one read; returns what the server wrote.
    pub fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.rbuf.extend_from_slice(input);
        while !self.closed {
            let n = discard(&mut self.skip, self.rbuf.len());
            self.rbuf.drain(..n);
            if self.skip > 0 {
                break;
            }
            let buf = std::mem::take(&mut self.rbuf);
            let used = match parse(&buf, &self.limits, self.now) {
                Ok(Parsed::Request(req)) => {
                    self.skip = req.skip;
                    self.execute(req.command, &mut out);
                    req.consumed
                }
                Ok(Parsed::Incomplete { need }) => {
                    assert!(need > buf.len(), "need {need} with {} buffered", buf.len());
                    self.rbuf = buf;
                    break;
                }
                Err(fatal) => {
                    out.extend_from_slice(fatal.reply());
                    self.closed = true;
                    0
                }
            };
            self.rbuf = buf;
            self.rbuf.drain(..used);
        }
        out
    }

    fn execute(&mut self, cmd: Command<'_>, out: &mut Vec<u8>) {
        let now = self.now;
        match cmd {
            Command::Get(get) => {
                for key in get.keys.iter() {
                    let touched = get.touch.map(|t| self.expiry(t));
                    match self.live(&key.bytes()) {
                        Some(item) => {
                            if let Some(exp) = touched {
                                item.expires = exp.unwrap_or(Some(0));
                            }
                            let info = Self::info(item, now);
                            let value = item.value.clone();
                            if reply::get_hit(out, &get.target(&key), &info, value.len()) {
                                out.extend_from_slice(&value);
                                reply::value_end(out);
                            }
                        }
                        None => match get.vivify {
                            Some(ttl) => {
                                let cas = self.bump_cas();
                                let expires = self.expiry(ttl).unwrap_or(Some(0));
                                let item = Item {
                                    value: Vec::new(),
                                    flags: 0,
                                    cas,
                                    expires,
                                };
                                let mut info = Self::info(&item, now);
                                info.won = true;
                                self.items.insert(key.bytes().to_vec(), item);
                                if reply::get_hit(out, &get.target(&key), &info, 0) {
                                    reply::value_end(out);
                                }
                            }
                            None => reply::get_miss(out, &get.target(&key)),
                        },
                    }
                }
                reply::get_end(out, &get.reply);
            }
            Command::Store(s) => {
                let exp = self.expiry(s.ttl).unwrap_or(Some(0));
                let cas = self.next_cas;
                let outcome = match (self.live(&s.key.bytes()), s.mode, s.compare_cas) {
                    (None, _, Some(_)) => StoreOutcome::NotFound,
                    (Some(i), _, Some(c)) if i.cas != c => StoreOutcome::Exists,
                    (Some(_), StoreMode::Add, _) => StoreOutcome::NotStored,
                    (None, StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, _) => {
                        StoreOutcome::NotStored
                    }
                    (Some(i), StoreMode::Append, _) => {
                        i.value.extend_from_slice(s.value);
                        i.cas = cas;
                        StoreOutcome::Stored
                    }
                    (Some(i), StoreMode::Prepend, _) => {
                        i.value.splice(0..0, s.value.iter().copied());
                        i.cas = cas;
                        StoreOutcome::Stored
                    }
                    _ => {
                        let item = Item {
                            value: s.value.to_vec(),
                            flags: s.flags,
                            cas,
                            expires: exp,
                        };
                        self.items.insert(s.key.bytes().to_vec(), item);
                        StoreOutcome::Stored
                    }
                };
                let cas = if outcome == StoreOutcome::Stored {
                    self.bump_cas()
                } else {
                    0
                };
                reply::store(out, &s.target(), outcome, cas);
            }
            Command::Delete(d) => {
                let outcome = match self.live(&d.key.bytes()) {
                    None => DeleteOutcome::NotFound,
                    Some(i) if d.compare_cas.is_some_and(|c| c != i.cas) => DeleteOutcome::Exists,
                    Some(_) => {
                        self.items.remove(&*d.key.bytes());
                        DeleteOutcome::Deleted
                    }
                };
                reply::delete(out, &d.target(), outcome);
            }
            Command::Touch(t) => {
                let exp = self.expiry(t.ttl).unwrap_or(Some(0));
                let found = self.live(&t.key.bytes()).map(|i| i.expires = exp).is_some();
                reply::touch(out, &t.target(), found);
            }
            Command::Arith(a) => {
                let cas = self.bump_cas();
                let vivify = a
                    .vivify
                    .map(|(ttl, init)| (self.expiry(ttl).unwrap_or(Some(0)), init));
                let (outcome, info) = match (self.live(&a.key.bytes()), vivify) {
                    (None, None) => (ArithOutcome::NotFound, ItemInfo::default()),
                    (None, Some((expires, init))) => {
                        let item = Item {
                            value: init.to_string().into_bytes(),
                            flags: 0,
                            cas,
                            expires,
                        };
                        let info = Self::info(&item, now);
                        self.items.insert(a.key.bytes().to_vec(), item);
                        (ArithOutcome::Created(init), info)
                    }
                    (Some(i), _) => match leading_u64(&i.value) {
                        None => (ArithOutcome::NonNumeric, ItemInfo::default()),
                        Some(v) => {
                            let n = match a.mode {
                                ArithMode::Incr => v.wrapping_add(a.delta),
                                ArithMode::Decr => v.saturating_sub(a.delta),
                            };
                            // memcached rewrites in place when the number fits,
                            // padding with spaces.
                            let mut digits = n.to_string().into_bytes();
                            if digits.len() <= i.value.len() {
                                digits.resize(i.value.len(), b' ');
                            }
                            i.value = digits;
                            i.cas = cas;
                            (ArithOutcome::Value(n), Self::info(i, now))
                        }
                    },
                };
                reply::arith(out, &a.target(), outcome, &info);
            }
            Command::FlushAll { delay, noreply } => {
                if delay == 0 {
                    self.items.clear();
                }
                reply::ok(out, noreply);
            }
            Command::Version => reply::version(out, "1.6.18"),
            Command::Verbosity { noreply, .. } => reply::ok(out, noreply),
            Command::Stats { args } => {
                if args.is_empty() {
                    reply::stat(out, "curr_items", self.items.len() as u64);
                    reply::stat_str(out, "version", "1.6.18");
                    reply::end(out);
                } else {
                    reply::error(out, &super::super::ErrorReply::UnknownCommand, false);
                }
            }
            Command::Quit => self.closed = true,
            Command::MetaNoop => reply::meta_noop(out),
            Command::MetaDebug { key } => match self.live(&key.bytes()) {
                Some(i) => {
                    let fields = [
                        ("exp", i.expires.map_or(-1, |e| (e - now) as i64)),
                        ("cas", i.cas as i64),
                    ];
                    reply::meta_debug(out, &key, &fields);
                }
                None => reply::meta_debug_miss(out),
            },
            Command::TooLarge {
                key,
                unlink,
                reply: r,
            } => {
                if unlink {
                    self.items.remove(&*key.bytes());
                }
                reply::too_large(out, &r);
            }
            Command::Error { error, noreply } => reply::error(out, &error, noreply),
        }
    }
}

/// memcached's `safe_strtoull` on item data: leading digits, then the end or
/// whitespace ("8 7" is 8, as after an in-place decrement and an append).
fn leading_u64(data: &[u8]) -> Option<u64> {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &data[digits..];
    if digits == 0 || rest.first().is_some_and(|b| !b.is_ascii_whitespace()) {
        return None;
    }
    std::str::from_utf8(&data[..digits]).ok()?.parse().ok()
}

/// One fresh toy, one read, the answer.
pub fn run(input: &[u8]) -> Vec<u8> {
    Toy::new().feed(input)
}
