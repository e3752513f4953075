//! A pure memcached protocol codec: the text protocol and the meta protocol, without
//! I/O, for groupcached's `--memcache-listen` port (issue 12).
//!
//! The connection owns a read buffer and an output buffer; this module only turns bytes
//! into [`Command`]s and outcomes into bytes:
//!
//! ```text
//!   read buffer --parse()--> Request { command, consumed, skip }
//!                               |  server performs command.op per key
//!                               v
//!   output     <--reply::*--  outcome (+ ItemInfo), value bytes appended by caller
//! ```
//!
//! - [`parse()`] is incremental and zero-copy: a command borrows keys and values from the
//!   buffer. Call it at the start of the unconsumed input until it says
//!   [`Parsed::Incomplete`]; answer requests strictly in order.
//! - [`Command`] is the intermediate form: one operation type per server action
//!   ([`Get`], [`Store`], [`Delete`], [`Touch`], [`Arith`], flush, stats...), shared by the
//!   classic and meta spellings, each with the [`Reply`] dialect to answer in.
//! - [`reply`] appends exact memcached answers, applying `noreply` and meta `q`, given
//!   the request's [`Target`] (or an [`OwnedTarget`] kept while an answer is pending).
//! - [`split_group`] resolves `group:key` addressing.
//!
//! # Wiring
//!
//! One connection's read loop, in outline (`rbuf` is the read buffer, `out` the output
//! queue, `skip` a `u64` kept with the connection):
//!
//! ```text
//! loop {
//!     rbuf.consume(discard(&mut skip, rbuf.len()));   // rest of a refused data block
//!     if skip > 0 { break }                            // wait for more of it
//!     match parse(&rbuf, &limits, now_unix) {
//!         Ok(Parsed::Request(req)) => {
//!             perform(req.command, &mut out);          // per key; reply::* in order
//!             skip = req.skip;
//!             rbuf.consume(req.consumed);               // after: the command borrows rbuf
//!         }
//!         Ok(Parsed::Incomplete { need }) => { rbuf.reserve_total(need); break }
//!         Err(fatal) => { out.push(fatal.reply()); close_after_flush(); break }
//!     }
//! }
//! ```
//!
//! A `Get` answers each of its keys (a `KeyList`) with [`reply::get_hit`] (then the
//! value, then [`reply::value_end`]) or [`reply::get_miss`], passing `get.target(&key)`,
//! then [`reply::get_end`]. Other operations answer through `op.target()`. An answer
//! that waits (origin load, a store at the key's owner) keeps an [`OwnedTarget`], no
//! allocation, and encodes through its `target()` when the outcome arrives.
//! Key lookups use [`Key::bytes`] (the decoded form of a base64 key); replies echo
//! [`Key::wire`]. `Command::Quit` closes after earlier answers are flushed. A reply that
//! waits for an origin load keeps its place in the output order; nothing in the codec
//! assumes answers are produced synchronously.
//!
//! # Errors and resynchronisation
//!
//! Answers follow memcached 1.6 (checked against memcached 1.6.18):
//!
//! - An unknown command or wrong token count: `ERROR`. A malformed line: `CLIENT_ERROR
//!   <reason>` with memcached's reasons. A key over 250 bytes, or (unlike memcached,
//!   as issue 12 asks) with control characters: `CLIENT_ERROR bad command line format`.
//!   These come back as [`Command::Error`]; the line is consumed and parsing continues
//!   with the next line.
//! - A store whose data block does not end in `\r\n` exactly `<bytes>` later: exactly
//!   `<bytes> + 2` bytes are consumed and the answer is `CLIENT_ERROR bad data chunk`;
//!   whatever follows is the next command (memcached does the same, so a client that
//!   sent too much data sees one more error for the leftover).
//! - A refused store line whose `<bytes>` is readable (bad key, bad flags or exptime,
//!   a wrong token count, bad meta flags): its data block is skipped through
//!   [`Request::skip`], so a value is never executed as commands. memcached does this
//!   for `ms` and for too-large values, but reads a refused classic store's data block
//!   as a command line (answering an extra `ERROR`); groupcached's answer is one error
//!   per request.
//! - A value over [`Limits::max_item_size`]: [`Command::TooLarge`] (`SERVER_ERROR
//!   object too large for cache`), data block skipped.
//! - No newline within [`Limits::max_line`] (2048 bytes; classic retrievals, which
//!   carry many keys, get [`Limits::max_get_line`]), or a binary-protocol request:
//!   [`FatalError`]; send its [`FatalError::reply`] and close the connection.
//! - Classic `noreply` (the last token) silences every answer to its request, errors
//!   included, as in memcached. Meta errors are always sent.
//!
//! Numbers are read like memcached's `strtoull`/`strtol` (an optional sign, decimal
//! digits, no overflow); client flags must fit 32 bits (memcached 1.6.18 silently
//! truncates larger ones; this codec refuses them). Exptimes: see [`Ttl`].

mod command;
mod group;
mod lex;
mod meta;
mod parse;
mod peek;
pub mod reply;
mod target;

#[cfg(test)]
mod tests;

pub use command::{ArithMode, Command, ErrorReply, Get, Key, KeyList, Reply, StoreMode, Ttl};
pub use group::split_group;
pub use parse::{discard, parse, Limits, Parsed};
pub use peek::read_keys;
pub use target::{OwnedTarget, Target};
// The rest of the codec's surface: named by the documentation above and used by its
// tests; the server does not need them by name.
#[cfg(any(test, doc))]
#[allow(unused_imports)]
pub use {
    command::{Arith, Delete, KeyIter, MetaReply, Store, Touch, MAX_RET_FLAGS, RELATIVE_MAX},
    group::GroupKey,
    lex::{Tokens, KEY_MAX},
    parse::{FatalError, Request},
    reply::{ArithOutcome, DeleteOutcome, ItemInfo, StoreOutcome},
    target::OPAQUE_MAX,
};
