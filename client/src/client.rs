//! The high-level client: typed calls over one connection, or (shard-aware, the
//! default) one connection per core of the server; reconnect after a fault.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use groupcached_protocol::{shard_of, KeyRef, RequestKind, Status, SHARD_QUERY};

use crate::conn::{validate, ConnectOptions, Connection};
use crate::error::{Error, Result};
use crate::response::{ttl_to_ms, Hello, OwnedBody, OwnedResponse, Value};
use crate::stats::Stats;

/// The node id a client introduces itself with in HELLO.
const CLIENT_NODE_ID: &str = concat!("groupcached-client/", env!("CARGO_PKG_VERSION"));

/// How many times one call re-learns the server's core layout (a server restarted
/// with another `--threads`, or one that stopped taking SHARD) before giving up.
pub(crate) const MAX_RELAYOUTS: usize = 3;

/// A blocking client for one groupcached server.
///
/// # Connections
/// By default the client is **shard-aware**: the first connection asks the server how
/// many cores it runs (SHARD with `0xffff`, docs/protocol.md), and from then on the
/// client keeps one connection per core, each moved with SHARD to its core, and sends
/// each keyed request (GET, SET, DELETE) on the connection of the key's core
/// ([`shard_of`]`(key, threads)`), so that no request hops between cores inside the
/// server. A per-core connection is opened at the first request for its core (the
/// first one stays on whatever core it landed on, which it learnt from the query).
/// Keyless requests (STATS, PING, HELLO) go on any open connection.
///
/// A server that answers SHARD with `UNKNOWN_OP` (it predates SHARD) or `BAD_REQUEST`
/// gets one plain connection, exactly as with [`ClientBuilder::shard_aware`]`(false)`.
/// When a reconnect finds that the server now runs another number of cores (it
/// restarted), the client drops its other connections and re-learns the layout.
///
/// Calls take `&mut self`: one request is in flight at a time, except in
/// [`Client::get_many`] and [`Client::execute`], which pipeline a batch (over every
/// per-core connection it touches, at once). Use one client per thread.
///
/// After an error that [breaks the connection](Error::breaks_connection) the client
/// drops that connection, and the next call that needs it connects again (one
/// attempt, whose failure is that call's error); the other per-core connections are
/// kept. A failed call is never retried automatically: a SET that timed out may or
/// may not have been applied.
#[derive(Debug)]
pub struct Client {
    addrs: Vec<SocketAddr>,
    opts: ConnectOptions,
    layout: Layout,
    /// [`Layout::Sharded`]: one slot per core, indexed by core. Otherwise at most one.
    conns: Vec<Option<Connection>>,
}

/// How the client spreads its requests over connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Shard-aware, but no connection has asked the server its core count yet; at
    /// most one connection is open (the one [`ClientBuilder::connect`] opened), and
    /// the first call asks on it.
    Unknown,
    /// One connection for everything: shard-awareness is off, or the server refused
    /// SHARD.
    Plain,
    /// One connection per core of a server running `threads` cores.
    Sharded {
        /// The server's core count (the shard rule's `threads`).
        threads: usize,
    },
}

/// Options for a [`Client`]; from [`Client::builder`].
#[derive(Debug)]
pub struct ClientBuilder {
    addrs: std::io::Result<Vec<SocketAddr>>,
    opts: ConnectOptions,
    shard_aware: bool,
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

    /// Whether to keep one connection per server core and send each key on its
    /// core's connection (default `true`; see [`Client`]). `false` keeps a single
    /// connection and never sends SHARD: the server then hands requests for keys of
    /// other cores between its cores, as it does for any client that does not ask.
    pub fn shard_aware(mut self, on: bool) -> Self {
        self.shard_aware = on;
        self
    }

    /// Resolves the address and connects, so that a wrong address or a server that
    /// is down is reported here rather than at the first call. Nothing is sent yet:
    /// a shard-aware client asks for the server's cores (on this connection) at its
    /// first call.
    pub fn connect(self) -> Result<Client> {
        let addrs = self.addrs.map_err(Error::Io)?;
        let mut client = Client::unconnected(addrs, self.opts, self.shard_aware);
        client.conns = vec![Some(client.open()?)];
        Ok(client)
    }
}

/// Which connection a request goes on.
#[derive(Debug, Clone, Copy)]
enum Route<'k> {
    /// Any open connection (keyless requests).
    Any,
    /// The connection of this key's core.
    Key(&'k [u8]),
}

/// The key a request is about, for routing; `None` for keyless requests.
pub(crate) fn key_of<'a>(kind: &RequestKind<'a>) -> Option<&'a [u8]> {
    kind.key_ref().map(|k| k.key)
}

impl Client {
    /// Connects with the default options (5 s timeouts, 16 MiB frames, shard-aware).
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Client> {
        Client::builder(addr).connect()
    }

    /// Options for a client of `addr`; finish with [`ClientBuilder::connect`].
    pub fn builder(addr: impl ToSocketAddrs) -> ClientBuilder {
        ClientBuilder {
            addrs: addr.to_socket_addrs().map(Iterator::collect),
            opts: ConnectOptions::default(),
            shard_aware: true,
        }
    }

    /// A client of `addrs` that connects at its first call, for
    /// [`crate::ClusterClient`]'s lazily opened per-node connections.
    pub(crate) fn unconnected(
        addrs: Vec<SocketAddr>,
        opts: ConnectOptions,
        shard_aware: bool,
    ) -> Client {
        Client {
            addrs,
            opts,
            layout: if shard_aware {
                Layout::Unknown
            } else {
                Layout::Plain
            },
            conns: Vec::new(),
        }
    }

    /// Whether the client holds a connection that no error has broken (one the next
    /// call may reuse rather than open).
    pub(crate) fn is_connected(&self) -> bool {
        self.conns.iter().flatten().any(|c| !c.is_broken())
    }

    /// The options this client connects with.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// The server's core count while the client routes keys to per-core connections;
    /// `None` when it uses one plain connection (shard-awareness off, or the server
    /// refused SHARD) or has not asked the server yet.
    pub fn shard_threads(&self) -> Option<usize> {
        match self.layout {
            Layout::Sharded { threads } => Some(threads),
            Layout::Unknown | Layout::Plain => None,
        }
    }

    /// How many connections the client holds open now (at most one per server core).
    pub fn open_connections(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// Reads `key` of `group`: the cached value, or one the server (or the key's owner)
    /// loaded from the group's origin. `None` when the key has no value anywhere.
    pub fn get(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let kind = RequestKind::Get(KeyRef::new(group.as_ref(), key.as_ref()));
        let r = self.call(Route::Key(key.as_ref()), kind)?;
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
        let r = self.call(Route::Key(key.as_ref()), kind)?;
        stored(r)
    }

    /// Removes `key` of `group` at its owner (and from every node's hot cache).
    /// Returns whether an entry was removed.
    pub fn delete(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<bool> {
        let kind = RequestKind::Delete(KeyRef::new(group.as_ref(), key.as_ref()));
        let r = self.call(Route::Key(key.as_ref()), kind)?;
        deleted(r)
    }

    /// The server's counters.
    pub fn stats(&mut self) -> Result<Stats> {
        let r = self.call(Route::Any, RequestKind::Stats)?;
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
        let (slot, r) = self.call_slot(Route::Any, RequestKind::Ping(&payload))?;
        let rtt = start.elapsed();
        match &r.body {
            OwnedBody::Pong(p) if p[..] == payload[..] => Ok(rtt),
            OwnedBody::Pong(_) => {
                // The stream no longer lines up with the requests: drop it.
                self.conns[slot] = None;
                Err(Error::Protocol("PING answered with another payload".into()))
            }
            _ => Err(r.unexpected("PING")),
        }
    }

    /// Asks the server who it is: node id, ring fingerprint and members.
    pub fn hello(&mut self) -> Result<Hello> {
        let r = self.call(
            Route::Any,
            RequestKind::Hello {
                node_id: CLIENT_NODE_ID.as_bytes(),
                ring_fingerprint: 0,
            },
        )?;
        match r.body {
            OwnedBody::Hello(h) => Ok(h),
            _ => Err(r.unexpected("HELLO")),
        }
    }

    /// A connection, opened anew if there is none or the last one broke: the one
    /// keyless requests use (shard-aware, one of the per-core connections, already
    /// serving its core). For low-level use next to the typed calls; if it is left
    /// with requests in flight or unflushed, the next typed call on it sees their
    /// responses and fails.
    pub fn connection(&mut self) -> Result<&mut Connection> {
        let slot = self.slot_for(Route::Any)?;
        self.slot(slot)
    }

    /// Drops every connection that is broken, so that the next call that needs one
    /// reconnects it.
    pub(crate) fn forget_broken(&mut self) {
        for slot in &mut self.conns {
            if slot.as_ref().is_some_and(Connection::is_broken) {
                *slot = None;
            }
        }
    }

    /// One validated round trip; error statuses become [`Error::Server`].
    fn call(&mut self, route: Route<'_>, kind: RequestKind<'_>) -> Result<OwnedResponse> {
        self.call_slot(route, kind).map(|(_, r)| r)
    }

    /// [`Client::call`], also saying which connection slot answered.
    fn call_slot(
        &mut self,
        route: Route<'_>,
        kind: RequestKind<'_>,
    ) -> Result<(usize, OwnedResponse)> {
        // Refuse bad arguments before connecting, not just before sending.
        validate(&kind, self.opts.max_frame)?;
        let result = self
            .slot_for(route)
            .and_then(|i| Ok((i, self.slot(i)?.call(kind)?)));
        self.forget_broken();
        let (i, r) = result?;
        Ok((i, r.into_result()?))
    }

    /// The open connection in `slot`.
    pub(crate) fn slot(&mut self, slot: usize) -> Result<&mut Connection> {
        self.conns
            .get_mut(slot)
            .and_then(Option::as_mut)
            .ok_or_else(|| Error::Protocol(format!("no open connection in slot {slot}")))
    }

    /// The core count the client routes by now, learning it (opening the first
    /// connection) if no connection asked yet; `None` for one plain connection.
    pub(crate) fn learnt_threads(&mut self) -> Result<Option<usize>> {
        if self.layout == Layout::Unknown {
            self.slot_for(Route::Any)?;
        }
        Ok(self.shard_threads())
    }

    /// Makes sure the connection `route` needs is open (learning the server's layout
    /// and moving a new connection to its core as needed) and returns its slot.
    fn slot_for(&mut self, route: Route<'_>) -> Result<usize> {
        self.forget_broken();
        for _ in 0..=MAX_RELAYOUTS {
            match self.layout {
                Layout::Plain => {
                    if self.conns.len() != 1 {
                        self.conns = vec![None];
                    }
                    if self.conns[0].is_none() {
                        self.conns[0] = Some(self.open()?);
                    }
                    return Ok(0);
                }
                Layout::Unknown => {
                    let mut conn = match self.conns.iter_mut().find_map(Option::take) {
                        Some(conn) => conn,
                        None => self.open()?,
                    };
                    let r = conn.call(RequestKind::Shard { core: SHARD_QUERY })?;
                    self.adopt(conn, r)?;
                }
                Layout::Sharded { threads } => {
                    let core = match route {
                        Route::Key(key) => shard_of(key, threads),
                        Route::Any => match self.conns.iter().position(Option::is_some) {
                            Some(open) => return Ok(open),
                            None => {
                                // Nothing open: a new connection serves keyless
                                // requests on whatever core it lands on.
                                self.layout = Layout::Unknown;
                                continue;
                            }
                        },
                    };
                    if self.conns[core].is_some() {
                        return Ok(core);
                    }
                    self.open_core(core)?;
                }
            }
        }
        Err(Error::Protocol(format!(
            "the server's core layout kept changing while connecting ({MAX_RELAYOUTS} times)"
        )))
    }

    /// Opens a connection and moves it to `core` with SHARD. A server that refuses
    /// because it now runs fewer cores is asked its layout again on the same
    /// connection; one that no longer knows SHARD turns the client plain.
    pub(crate) fn open_core(&mut self, core: usize) -> Result<()> {
        let mut conn = self.open()?;
        let wanted = u16::try_from(core)
            .map_err(|_| Error::Protocol(format!("core {core} does not fit SHARD's u16")))?;
        let r = conn.call(RequestKind::Shard { core: wanted })?;
        if r.status == Status::BadRequest {
            let again = conn.call(RequestKind::Shard { core: SHARD_QUERY })?;
            return self.adopt(conn, again);
        }
        self.adopt(conn, r)
    }

    /// Takes a SHARD answer on `conn`: an `OK` sets the layout (dropping the other
    /// connections if the core count changed) and files `conn` under the core now
    /// serving it; `UNKNOWN_OP` or `BAD_REQUEST` makes the client plain, on `conn`.
    fn adopt(&mut self, conn: Connection, r: OwnedResponse) -> Result<()> {
        match (r.status, &r.body) {
            (Status::Ok, &OwnedBody::Shard { threads, core }) => {
                let (threads, core) = (threads as usize, core as usize);
                if core >= threads {
                    return Err(Error::Protocol(format!(
                        "SHARD answered core {core} of a node running {threads} cores"
                    )));
                }
                if self.layout != (Layout::Sharded { threads }) {
                    self.layout = Layout::Sharded { threads };
                    self.conns = (0..threads).map(|_| None).collect();
                }
                if self.conns[core].is_none() {
                    self.conns[core] = Some(conn);
                }
                Ok(())
            }
            (Status::UnknownOp | Status::BadRequest, _) => {
                self.layout = Layout::Plain;
                self.conns = vec![Some(conn)];
                Ok(())
            }
            (status, _) if status.carries_message() => Err(r.into_server_error()),
            _ => Err(r.unexpected("SHARD")),
        }
    }

    /// The slot of some open connection, if any.
    pub(crate) fn open_slot(&self) -> Option<usize> {
        self.conns.iter().position(Option::is_some)
    }

    /// Whether slot `slot` holds an open connection.
    pub(crate) fn has_slot(&self, slot: usize) -> bool {
        self.conns.get(slot).is_some_and(Option::is_some)
    }

    /// The open connections of the slots whose lanes (`lanes[slot]`) are not empty,
    /// with those lanes, in slot order.
    #[allow(clippy::type_complexity)]
    pub(crate) fn lanes_of(
        &mut self,
        lanes: Vec<Vec<usize>>,
    ) -> Result<(Vec<&mut Connection>, Vec<Vec<usize>>)> {
        let mut conns = Vec::new();
        let mut kept = Vec::new();
        for (slot, (conn, lane)) in self.conns.iter_mut().zip(lanes).enumerate() {
            if lane.is_empty() {
                continue;
            }
            let Some(conn) = conn.as_mut() else {
                return Err(Error::Protocol(format!(
                    "no open connection for core {slot}"
                )));
            };
            conns.push(conn);
            kept.push(lane);
        }
        Ok((conns, kept))
    }

    fn open(&self) -> Result<Connection> {
        Connection::connect_addrs(&self.addrs, &self.opts)
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
