//! The high-level client: one connection, typed calls, reconnect after a fault.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use groupcached_protocol::{KeyRef, RequestKind, Status};

use crate::conn::{validate, ConnectOptions, Connection};
use crate::error::{Error, Result};
use crate::response::{ttl_to_ms, Hello, OwnedBody, OwnedResponse, Value};
use crate::stats::Stats;

/// The node id a client introduces itself with in HELLO.
const CLIENT_NODE_ID: &str = concat!("groupcached-client/", env!("CARGO_PKG_VERSION"));

/// A blocking client for one groupcached server, over one TCP connection.
///
/// Calls take `&mut self`: one request is in flight at a time, except in
/// [`Client::get_many`] and [`Client::execute`], which pipeline a batch. Use one
/// client per thread.
///
/// After an error that [breaks the connection](Error::breaks_connection) the client
/// drops it, and the next call connects again (one attempt, whose failure is that
/// call's error). A failed call is never retried automatically: a SET that timed out
/// may or may not have been applied.
#[derive(Debug)]
pub struct Client {
    addrs: Vec<SocketAddr>,
    opts: ConnectOptions,
    conn: Option<Connection>,
}

/// Options for a [`Client`]; from [`Client::builder`].
#[derive(Debug)]
pub struct ClientBuilder {
    addrs: std::io::Result<Vec<SocketAddr>>,
    opts: ConnectOptions,
}

impl ClientBuilder {
    /// Time allowed to establish the TCP connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.opts.connect_timeout = Some(timeout);
        self
    }

    /// Time allowed for each response to arrive, and for each socket write to make
    /// progress (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.timeout = Some(timeout);
        self
    }

    /// Largest frame sent or accepted, in bytes (default
    /// [`groupcached_protocol::DEFAULT_MAX_FRAME`], 16 MiB). A SET whose frame would be
    /// larger is refused before sending; a larger response breaks the connection.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.opts.max_frame = bytes;
        self
    }

    /// Resolves the address and connects, so that a wrong address or a server that is
    /// down is reported here rather than at the first call.
    pub fn connect(self) -> Result<Client> {
        let addrs = self.addrs.map_err(Error::Io)?;
        let conn = Connection::connect_addrs(&addrs, &self.opts)?;
        Ok(Client {
            addrs,
            opts: self.opts,
            conn: Some(conn),
        })
    }
}

impl Client {
    /// Connects with the default options (5 s timeouts, 16 MiB frames).
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Client> {
        Client::builder(addr).connect()
    }

    /// Options for a client of `addr`; finish with [`ClientBuilder::connect`].
    pub fn builder(addr: impl ToSocketAddrs) -> ClientBuilder {
        ClientBuilder {
            addrs: addr.to_socket_addrs().map(Iterator::collect),
            opts: ConnectOptions::default(),
        }
    }

    /// A client of `addrs` that connects at its first call, for
    /// [`crate::ClusterClient`]'s lazily opened per-node connections.
    pub(crate) fn unconnected(addrs: Vec<SocketAddr>, opts: ConnectOptions) -> Client {
        Client {
            addrs,
            opts,
            conn: None,
        }
    }

    /// Whether the client holds a connection that no error has broken (one the next
    /// call reuses rather than opens).
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_broken())
    }

    /// The options this client connects with.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// Reads `key` of `group`: the cached value, or one the server (or the key's owner)
    /// loaded from the group's origin. `None` when the key has no value anywhere.
    pub fn get(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let kind = RequestKind::Get(KeyRef::new(group.as_ref(), key.as_ref()));
        let r = self.call(kind)?;
        value_of(r)
    }

    /// Stores `value` under `key` of `group`. `ttl` `None` means the group's default
    /// TTL; a given TTL is sent in milliseconds, rounded down but at least 1 ms.
    pub fn set(
        &mut self,
        group: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let kind = RequestKind::Set {
            key: KeyRef::new(group.as_ref(), key.as_ref()),
            ttl_ms: ttl_to_ms(ttl),
            value,
        };
        let r = self.call(kind)?;
        stored(r)
    }

    /// Removes `key` of `group` at its owner (and from every node's hot cache).
    /// Returns whether an entry was removed.
    pub fn delete(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<bool> {
        let kind = RequestKind::Delete(KeyRef::new(group.as_ref(), key.as_ref()));
        let r = self.call(kind)?;
        deleted(r)
    }

    /// The server's counters.
    pub fn stats(&mut self) -> Result<Stats> {
        let r = self.call(RequestKind::Stats)?;
        match r.body {
            OwnedBody::Stats(s) => Ok(s),
            _ => Err(r.unexpected("STATS")),
        }
    }

    /// Measures one round trip to the server (including connecting, if the previous
    /// connection broke). The echoed payload is checked.
    pub fn ping(&mut self) -> Result<Duration> {
        // A payload that differs between pings, so a stale echo cannot pass the check.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let payload = nanos.to_be_bytes();
        let start = Instant::now();
        let r = self.call(RequestKind::Ping(&payload))?;
        let rtt = start.elapsed();
        match &r.body {
            OwnedBody::Pong(p) if p[..] == payload[..] => Ok(rtt),
            OwnedBody::Pong(_) => {
                Err(self.break_with(Error::Protocol("PING answered with another payload".into())))
            }
            _ => Err(r.unexpected("PING")),
        }
    }

    /// Asks the server who it is: node id, ring fingerprint and members.
    pub fn hello(&mut self) -> Result<Hello> {
        let r = self.call(RequestKind::Hello {
            node_id: CLIENT_NODE_ID.as_bytes(),
            ring_fingerprint: 0,
        })?;
        match r.body {
            OwnedBody::Hello(h) => Ok(h),
            _ => Err(r.unexpected("HELLO")),
        }
    }

    /// The connection, opened anew if there is none or the last one broke. For
    /// low-level use next to the typed calls; if it is left with requests in flight or
    /// unflushed, the next typed call sees their responses and fails.
    pub fn connection(&mut self) -> Result<&mut Connection> {
        self.forget_broken();
        match &mut self.conn {
            Some(conn) => Ok(conn),
            slot @ None => Ok(slot.insert(Connection::connect_addrs(&self.addrs, &self.opts)?)),
        }
    }

    /// Drops the connection if it is broken, so that the next call reconnects.
    pub(crate) fn forget_broken(&mut self) {
        if self.conn.as_ref().is_some_and(Connection::is_broken) {
            self.conn = None;
        }
    }

    /// Drops the connection and returns `err`.
    fn break_with(&mut self, err: Error) -> Error {
        self.conn = None;
        err
    }

    /// One validated round trip; error statuses become [`Error::Server`].
    fn call(&mut self, kind: RequestKind<'_>) -> Result<OwnedResponse> {
        // Refuse bad arguments before connecting, not just before sending.
        validate(&kind, self.opts.max_frame)?;
        let result = self.connection().and_then(|c| c.call(kind));
        self.forget_broken();
        result?.into_result()
    }
}

/// A GET response as an optional value.
pub(crate) fn value_of(r: OwnedResponse) -> Result<Option<Value>> {
    match (r.status, r.body) {
        (Status::NotFound, _) => Ok(None),
        (_, OwnedBody::Value(v)) => Ok(Some(v)),
        (status, body) => Err(Error::Protocol(format!(
            "GET: unexpected {status} response body {body:?}"
        ))),
    }
}

/// A SET response as success.
pub(crate) fn stored(r: OwnedResponse) -> Result<()> {
    match (r.status, &r.body) {
        (Status::Ok, OwnedBody::Empty) => Ok(()),
        _ => Err(r.unexpected("SET")),
    }
}

/// A DELETE response as whether something was removed. NOT_FOUND is accepted as
/// "nothing removed" too.
pub(crate) fn deleted(r: OwnedResponse) -> Result<bool> {
    match (r.status, &r.body) {
        (Status::NotFound, _) => Ok(false),
        (_, OwnedBody::Deleted(removed)) => Ok(*removed),
        _ => Err(r.unexpected("DELETE")),
    }
}
