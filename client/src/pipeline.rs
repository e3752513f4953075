//! Pipelining: many requests on the one connection, written in windows, with the
//! responses matched by request id (a server may answer out of order).

use std::collections::HashMap;
use std::time::Duration;

use groupcached_protocol::{KeyRef, Request, RequestKind};

use groupcached_protocol::shard_of;

use crate::client::{deleted, key_of, stored, value_of, Client, MAX_RELAYOUTS};
use crate::conn::{encoded_len, validate, Connection};
use crate::error::{Error, Result};
use crate::response::{ttl_to_ms, OwnedResponse, Value};

/// Most requests a batch keeps in flight (sent, not yet answered).
///
/// A blocking client cannot read while it writes. If it wrote a whole large batch
/// before reading, a server that stops reading a connection whose answers are not
/// being taken (as a server with bounded write queues does) would leave both sides
/// blocked in `write`. Bounding what is in flight, in requests and in bytes, keeps
/// what the client writes ahead of its reads within what the socket buffers hold.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Most request bytes a batch keeps in flight. A single request larger than this is
/// still sent, alone.
pub const MAX_BYTES_IN_FLIGHT: usize = 256 * 1024;

/// One connection's share of a batch: the requests it carries and those in flight.
#[derive(Debug, Default)]
struct Lane {
    /// Indices into the batch's requests, in order.
    indices: Vec<usize>,
    /// How many of `indices` were sent.
    next: usize,
    /// request id -> (index in the batch, encoded bytes)
    waiting: HashMap<u32, (usize, usize)>,
    bytes_in_flight: usize,
}

impl Lane {
    fn has_unsent(&self) -> bool {
        self.next < self.indices.len()
    }

    /// Sends requests until the window is full, then flushes once.
    fn fill(&mut self, conn: &mut Connection, kinds: &[RequestKind<'_>]) -> Result<()> {
        while self.has_unsent()
            && self.waiting.len() < MAX_IN_FLIGHT
            && (self.waiting.is_empty() || self.bytes_in_flight < MAX_BYTES_IN_FLIGHT)
        {
            let index = self.indices[self.next];
            let id = conn.next_id();
            let size = encoded_len(&kinds[index]);
            conn.send(&Request {
                id,
                kind: kinds[index],
            })?;
            self.waiting.insert(id, (index, size));
            self.bytes_in_flight += size;
            self.next += 1;
        }
        conn.flush()
    }

    /// Reads responses until the window is half empty (or empty, once everything is
    /// sent), so each flush carries a good batch instead of one request at a time.
    fn drain(
        &mut self,
        conn: &mut Connection,
        kinds: &[RequestKind<'_>],
        slots: &mut [Option<OwnedResponse>],
    ) -> Result<()> {
        while !self.waiting.is_empty() {
            let response = conn.recv()?;
            let Some((index, size)) = self.waiting.remove(&response.id) else {
                return Err(conn.unmatched(&response, "a response to a request in flight"));
            };
            conn.check_answer(&response, response.id, kinds[index].opcode())?;
            self.bytes_in_flight -= size;
            slots[index] = Some(response);
            let low = self.waiting.len() <= MAX_IN_FLIGHT / 2
                && self.bytes_in_flight <= MAX_BYTES_IN_FLIGHT / 2;
            if self.has_unsent() && low {
                break;
            }
        }
        Ok(())
    }
}

/// Sends `kinds` over `conn` in windows and returns their responses in request order.
/// Error statuses are returned as responses. Requests must already be validated.
pub(crate) fn run_batch(
    conn: &mut Connection,
    kinds: &[RequestKind<'_>],
) -> Result<Vec<OwnedResponse>> {
    run_lanes(&mut [conn], vec![(0..kinds.len()).collect()], kinds)
}

/// Sends `kinds` over several connections at once, request `i` on the connection
/// whose lane (`lanes[c]`, a list of indices into `kinds`) holds it, and returns the
/// responses in the order of `kinds`. Each connection is pipelined in windows as
/// [`run_batch`] does; the windows of all of them are written before any is read, so
/// the connections' round trips overlap. If any connection fails, every other one
/// with answers still due is broken too (its stream would no longer line up with
/// the next call's requests), and the error is returned.
pub(crate) fn run_lanes(
    conns: &mut [&mut Connection],
    lanes: Vec<Vec<usize>>,
    kinds: &[RequestKind<'_>],
) -> Result<Vec<OwnedResponse>> {
    let mut lanes: Vec<Lane> = lanes
        .into_iter()
        .map(|indices| Lane {
            indices,
            ..Lane::default()
        })
        .collect();
    let mut slots: Vec<Option<OwnedResponse>> = (0..kinds.len()).map(|_| None).collect();
    let result = drive(conns, &mut lanes, kinds, &mut slots);
    if let Err(e) = result {
        for (conn, lane) in conns.iter_mut().zip(&lanes) {
            if !lane.waiting.is_empty() && !conn.is_broken() {
                conn.fail(Error::Protocol(
                    "abandoned with answers due after another connection failed".into(),
                ));
            }
        }
        return Err(e);
    }
    // Every slot was filled: each index was in one lane, sent once and removed from
    // that lane's `waiting` once.
    slots
        .into_iter()
        .map(|s| s.ok_or_else(|| Error::Protocol("a pipelined response went missing".into())))
        .collect()
}

fn drive(
    conns: &mut [&mut Connection],
    lanes: &mut [Lane],
    kinds: &[RequestKind<'_>],
    slots: &mut [Option<OwnedResponse>],
) -> Result<()> {
    loop {
        let mut active = false;
        for (conn, lane) in conns.iter_mut().zip(lanes.iter_mut()) {
            if lane.has_unsent() {
                lane.fill(conn, kinds)?;
            }
            active |= !lane.waiting.is_empty();
        }
        if !active {
            return Ok(());
        }
        for (conn, lane) in conns.iter_mut().zip(lanes.iter_mut()) {
            lane.drain(conn, kinds, slots)?;
        }
    }
}

/// One queued operation of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Get {
        group: Vec<u8>,
        key: Vec<u8>,
    },
    Set {
        group: Vec<u8>,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_ms: u64,
    },
    Delete {
        group: Vec<u8>,
        key: Vec<u8>,
    },
}

impl Op {
    fn kind(&self) -> RequestKind<'_> {
        match self {
            Op::Get { group, key } => RequestKind::Get(KeyRef::new(group, key)),
            Op::Set {
                group,
                key,
                value,
                ttl_ms,
            } => RequestKind::Set {
                key: KeyRef::new(group, key),
                ttl_ms: *ttl_ms,
                value,
            },
            Op::Delete { group, key } => RequestKind::Delete(KeyRef::new(group, key)),
        }
    }
}

/// A batch of GET, SET and DELETE operations, run over one connection by
/// [`Client::execute`]. It owns copies of its keys and values, so it can be built
/// ahead of time and run more than once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    ops: Vec<Op>,
}

/// The result of one operation of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A GET's value, `None` on NOT_FOUND.
    Value(Option<Value>),
    /// A SET succeeded.
    Stored,
    /// A DELETE's answer: whether an entry was removed.
    Deleted(bool),
}

impl Pipeline {
    /// An empty batch.
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Queues a GET.
    pub fn get(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> &mut Self {
        self.ops.push(Op::Get {
            group: group.as_ref().to_vec(),
            key: key.as_ref().to_vec(),
        });
        self
    }

    /// Queues a SET (`ttl` as in [`Client::set`]).
    pub fn set(
        &mut self,
        group: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
        value: impl Into<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> &mut Self {
        self.ops.push(Op::Set {
            group: group.as_ref().to_vec(),
            key: key.as_ref().to_vec(),
            value: value.into(),
            ttl_ms: ttl_to_ms(ttl),
        });
        self
    }

    /// Queues a DELETE.
    pub fn delete(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> &mut Self {
        self.ops.push(Op::Delete {
            group: group.as_ref().to_vec(),
            key: key.as_ref().to_vec(),
        });
        self
    }

    /// Number of queued operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Removes every queued operation.
    pub fn clear(&mut self) {
        self.ops.clear();
    }
}

impl Client {
    /// Reads many keys of one group in one pipelined batch over the connection:
    /// requests are written in windows of at most [`MAX_IN_FLIGHT`] and responses are
    /// matched by request id, so a server answering out of order is fine. The result
    /// has one entry per key, in the order of `keys` (`None` on NOT_FOUND).
    ///
    /// Every key is validated before anything is sent. If the server answers some keys
    /// with an error status, the whole batch is still read (the connection stays
    /// usable) and the error of the first such key is returned.
    pub fn get_many<K: AsRef<[u8]>>(
        &mut self,
        group: impl AsRef<[u8]>,
        keys: &[K],
    ) -> Result<Vec<Option<Value>>> {
        let group = group.as_ref();
        let kinds: Vec<RequestKind<'_>> = keys
            .iter()
            .map(|k| RequestKind::Get(KeyRef::new(group, k.as_ref())))
            .collect();
        let mut first_error = None;
        let mut values = Vec::with_capacity(kinds.len());
        for response in self.run(&kinds)? {
            match response.into_result().and_then(value_of) {
                Ok(v) => values.push(v),
                Err(e) => {
                    first_error.get_or_insert(e);
                    values.push(None);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(values),
        }
    }

    /// Runs a [`Pipeline`] in one pipelined batch (as [`Client::get_many`] does).
    ///
    /// The outer `Err` is a failure of the whole batch: an invalid operation (nothing
    /// sent) or a connection fault. Otherwise there is one result per operation, in
    /// order, each `Ok` or that operation's [`Error::Server`].
    pub fn execute(&mut self, pipeline: &Pipeline) -> Result<Vec<Result<Reply>>> {
        let kinds: Vec<RequestKind<'_>> = pipeline.ops.iter().map(Op::kind).collect();
        let responses = self.run(&kinds)?;
        Ok(responses
            .into_iter()
            .zip(&pipeline.ops)
            .map(|(r, op)| {
                let r = r.into_result()?;
                match op {
                    Op::Get { .. } => value_of(r).map(Reply::Value),
                    Op::Set { .. } => stored(r).map(|()| Reply::Stored),
                    Op::Delete { .. } => deleted(r).map(Reply::Deleted),
                }
            })
            .collect())
    }

    /// Validates every request, then runs them as one batch: on the one connection,
    /// or shard-aware on the connection of each key's core (opening those it lacks),
    /// all at once. Broken connections are dropped afterwards.
    pub(crate) fn run(&mut self, kinds: &[RequestKind<'_>]) -> Result<Vec<OwnedResponse>> {
        let max_frame = self.options().max_frame;
        for (i, kind) in kinds.iter().enumerate() {
            validate(kind, max_frame).map_err(|e| match e {
                Error::InvalidArgument(m) => Error::InvalidArgument(format!("request {i}: {m}")),
                other => other,
            })?;
        }
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.run_routed(kinds);
        self.forget_broken();
        result
    }

    fn run_routed(&mut self, kinds: &[RequestKind<'_>]) -> Result<Vec<OwnedResponse>> {
        let keyless = kinds.iter().any(|k| key_of(k).is_none());
        // Opening a per-core connection can reveal that the server's layout changed;
        // then the keys are routed again.
        for _ in 0..=MAX_RELAYOUTS {
            let Some(threads) = self.learnt_threads()? else {
                return run_batch(self.connection()?, kinds);
            };
            // Keyless requests ride on any open connection.
            let any = if keyless {
                self.connection()?;
                self.open_slot()
            } else {
                None
            };
            let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); threads];
            for (i, kind) in kinds.iter().enumerate() {
                let core = match key_of(kind) {
                    Some(key) => shard_of(key, threads),
                    None => any.unwrap_or(0),
                };
                lanes[core].push(i);
            }
            for (core, lane) in lanes.iter().enumerate() {
                if !lane.is_empty() && !self.has_slot(core) {
                    self.open_core(core)?;
                }
            }
            if self.shard_threads() != Some(threads) {
                continue;
            }
            let (mut conns, lanes) = self.lanes_of(lanes)?;
            return run_lanes(&mut conns, lanes, kinds);
        }
        Err(Error::Protocol(
            "the server's core layout kept changing while connecting".into(),
        ))
    }
}
