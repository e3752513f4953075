//! Ring-aware routing: one client for a whole cluster, sending each key straight to
//! its owner.
//!
//! Every groupcached node computes the same [`Ring`] from the same member list, and so
//! does a [`ClusterClient`]. Sending a request to the key's owner saves the hop a
//! non-owner would make (FETCH to the owner, or SET/DELETE forwarded to it). Any node
//! can still serve any key — a non-owner fetches from the owner, or loads locally if
//! the owner is unreachable — so when the owner is down the request goes to another
//! member instead of failing.//!
//! Files: `mod.rs` is the client and its calls, `builder.rs` how one is made,
//! `node.rs` one member's pooled client and backoff.

mod builder;
mod node;

pub use builder::ClusterBuilder;

use builder::members_of;
use node::{candidate, unreachable, Backoff, Node};

use std::time::{Duration, Instant};

use groupcached_protocol::{KeyRef, RequestKind, Ring};

use crate::client::{value_of, Client};
use crate::conn::{validate, ConnectOptions};
use crate::error::{Error, Result};
use crate::response::{ttl_to_ms, Value};
use crate::stats::Stats;

/// How long a member that just failed is skipped at first (see
/// [`ClusterBuilder::backoff`]).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest a member that keeps failing is skipped between two attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A blocking client for a whole groupcached cluster.
///
/// Each keyed request (`get`, `set`, `delete`, `get_many`) goes to the key's owner on
/// the ring every node computes ([`Ring::new`] over the same members and virtual-node
/// count), over one pooled [`Client`] per member, connected at first use. Like a
/// [`Client`], each member's client is shard-aware by default: one connection per
/// core of that member, each key on its core's connection, so that a request neither
/// goes to a non-owner nor hops between the owner's cores
/// ([`ClusterBuilder::shard_aware`] turns it off).
///
/// # Failover
/// When the owner cannot be reached — connection refused, a connect or response
/// timeout, or another I/O error ([`Error::Io`], [`Error::Timeout`]) — the request is
/// sent to the next member in [ring order](ClusterClient::route_order): the members
/// after the owner in the sorted member list, wrapping around. Any member can serve
/// any key, so the caller sees no error while at least one member is up. Error
/// statuses (`ORIGIN_ERROR`, `UNKNOWN_GROUP`, ...) are answers, not outages: they are
/// returned as they are, without trying another member.
///
/// A member that failed is marked down for a backoff (1 s, doubling on each further
/// failure up to 10 s; [`ClusterBuilder::backoff`]), during which requests skip it
/// without waiting for it to time out again. The first success clears the mark. When
/// every member is marked down, the marked ones are tried anyway, in ring order, so a
/// recovered cluster is noticed at once.
///
/// A pooled connection that fails with an I/O error (not a timeout) is retried once on
/// a fresh connection to the same member before the member counts as down: a member
/// that restarted closed the old connection but accepts a new one.
///
/// As with [`Client`], a request that failed at one member may still have been
/// applied there; SET and DELETE are idempotent, so sending them to the next member
/// is safe.
///
/// Calls take `&mut self`; use one `ClusterClient` per thread.
#[derive(Debug)]
pub struct ClusterClient {
    ring: Ring,
    /// One per member, in the order of [`Ring::members`] (sorted).
    nodes: Vec<Node>,
    opts: ConnectOptions,
    backoff: Backoff,
    /// Whether members' clients keep one connection per core (see [`Client`]).
    shard_aware: bool,
    /// Counts requests, so that a member marked down during the current request can
    /// be told from one that was already down when it started (see `with_fallback`).
    request: u64,
}

impl ClusterClient {
    /// A client for the cluster of `members` with the default virtual-node count; see
    /// [`ClusterBuilder::with_members`].
    pub fn with_members<S: AsRef<str>>(members: &[S], opts: ConnectOptions) -> Result<Self> {
        ClusterClient::builder().options(opts).with_members(members)
    }

    /// A client for the cluster that `seeds` belong to, learning the members from the
    /// first seed that answers; see [`ClusterBuilder::discover`].
    pub fn discover<S: AsRef<str>>(seeds: &[S], opts: ConnectOptions) -> Result<Self> {
        ClusterClient::builder().options(opts).discover(seeds)
    }

    /// Options (virtual nodes, backoff, connection options); finish with
    /// [`ClusterBuilder::with_members`] or [`ClusterBuilder::discover`].
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The ring requests are routed by.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The members, sorted and de-duplicated (the order fallback follows).
    pub fn members(&self) -> &[String] {
        self.ring.members()
    }

    /// The options every member's connection is opened with.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// The member that owns `key` — the one its requests go to first. The same for
    /// every group: the ring hashes the key alone.
    pub fn owner(&self, key: impl AsRef<[u8]>) -> &str {
        &self.ring.members()[self.owner_index(key.as_ref())]
    }

    /// Every member, in the order a request for `key` tries them: the owner, then the
    /// members after it in the sorted member list, wrapping around. (Members marked
    /// down are skipped at request time; see [`ClusterClient`].)
    pub fn route_order(&self, key: impl AsRef<[u8]>) -> impl Iterator<Item = &str> + '_ {
        let owner = self.owner_index(key.as_ref());
        let n = self.nodes.len();
        (0..n).map(move |step| self.ring.members()[candidate(owner, step, n)].as_str())
    }

    /// Whether `member` is marked down now (a recent request could not reach it, and
    /// its backoff has not run out), so that requests skip it.
    pub fn is_down(&self, member: &str) -> bool {
        let now = Instant::now();
        self.index_of(member)
            .is_some_and(|i| self.nodes[i].health.is_down(now))
    }

    /// Reads `key` of `group` from its owner (or, if the owner is down, from the next
    /// member up); see [`Client::get`].
    pub fn get(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let (group, key) = (group.as_ref(), key.as_ref());
        self.check(&RequestKind::Get(KeyRef::new(group, key)))?;
        let owner = self.owner_index(key);
        self.with_fallback(owner, |c| c.get(group, key))
    }

    /// Stores `value` under `key` of `group` at its owner (or the next member up); see
    /// [`Client::set`].
    pub fn set(
        &mut self,
        group: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let (group, key) = (group.as_ref(), key.as_ref());
        self.check(&RequestKind::Set {
            key: KeyRef::new(group, key),
            ttl_ms: ttl_to_ms(ttl),
            value,
        })?;
        let owner = self.owner_index(key);
        self.with_fallback(owner, |c| c.set(group, key, value, ttl))
    }

    /// Removes `key` of `group` at its owner (or through the next member up); see
    /// [`Client::delete`].
    pub fn delete(&mut self, group: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<bool> {
        let (group, key) = (group.as_ref(), key.as_ref());
        self.check(&RequestKind::Delete(KeyRef::new(group, key)))?;
        let owner = self.owner_index(key);
        self.with_fallback(owner, |c| c.delete(group, key))
    }

    /// Reads many keys of one group: the keys are grouped by owner, each owner's share
    /// goes out as one pipelined batch on its connection (falling back as a whole to
    /// the next member if the owner is down), and the values come back in the order
    /// of `keys` (`None` on NOT_FOUND). Owners are asked one after the other.
    ///
    /// Every key is validated before anything is sent. As with [`Client::get_many`],
    /// if some keys are answered with an error status, every batch is still read and
    /// the error of the first such key (in the order of `keys`) is returned.
    pub fn get_many<K: AsRef<[u8]>>(
        &mut self,
        group: impl AsRef<[u8]>,
        keys: &[K],
    ) -> Result<Vec<Option<Value>>> {
        let group = group.as_ref();
        let mut by_owner: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            self.check(&RequestKind::Get(KeyRef::new(group, key)))
                .map_err(|e| match e {
                    Error::InvalidArgument(m) => Error::InvalidArgument(format!("key {i}: {m}")),
                    other => other,
                })?;
            by_owner[self.owner_index(key)].push(i);
        }
        let mut results: Vec<Option<Result<Option<Value>>>> =
            (0..keys.len()).map(|_| None).collect();
        let mut kinds = Vec::new();
        for (owner, indices) in by_owner.iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            kinds.clear();
            kinds.extend(
                indices
                    .iter()
                    .map(|&i| RequestKind::Get(KeyRef::new(group, keys[i].as_ref()))),
            );
            let responses = self.with_fallback(owner, |c| c.run(&kinds))?;
            for (&i, r) in indices.iter().zip(responses) {
                results[i] = Some(r.into_result().and_then(value_of));
            }
        }
        let mut values = Vec::with_capacity(keys.len());
        for r in results {
            // Each key was in exactly one owner's batch, and each batch's responses
            // were all stored, so every slot is filled.
            match r {
                Some(Ok(v)) => values.push(v),
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Protocol("a batched response went missing".into())),
            }
        }
        Ok(values)
    }

    /// Every member's counters, in member order, each with its own result so that a
    /// member that is down does not hide the others. Every member is asked, including
    /// ones marked down (whose marks are updated by the outcome).
    pub fn stats_all(&mut self) -> Vec<(String, Result<Stats>)> {
        self.request += 1;
        let mut out = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let result = self.try_node(i, &mut Client::stats);
            out.push((self.nodes[i].addr.clone(), result));
        }
        out
    }

    /// Re-reads the membership from the first member that answers HELLO (members
    /// not marked down first, in sorted order) and, if the ring's fingerprint changed,
    /// rebuilds the ring with the answer's members and virtual-node count. Connections
    /// and down marks of members that stay are kept; those of members that left are
    /// dropped. Returns whether the ring changed.
    ///
    /// Call it periodically, or after errors suggest the membership moved; the
    /// servers do not push changes to clients.
    pub fn refresh(&mut self) -> Result<bool> {
        let hello = self.with_fallback(0, Client::hello)?;
        let members = members_of(&hello, &hello.node_id);
        let ring = Ring::new(&members, hello.vnodes);
        if ring.fingerprint() == self.ring.fingerprint() {
            return Ok(false);
        }
        let mut old: Vec<Option<Node>> = self.nodes.drain(..).map(Some).collect();
        let old_ring = std::mem::replace(&mut self.ring, ring);
        self.nodes = self
            .ring
            .members()
            .iter()
            .map(|m| {
                old_ring
                    .members()
                    .binary_search(m)
                    .ok()
                    .and_then(|i| old[i].take())
                    .unwrap_or_else(|| Node::new(m.clone()))
            })
            .collect();
        Ok(true)
    }

    fn owner_index(&self, key: &[u8]) -> usize {
        // Construction refuses an empty member list, so the ring always has an owner.
        self.ring.owner_index(key).unwrap_or(0)
    }

    /// The position of `member` among the (sorted) members.
    fn index_of(&self, member: &str) -> Option<usize> {
        self.ring
            .members()
            .binary_search_by(|m| m.as_str().cmp(member))
            .ok()
    }

    /// Refuses a request before routing it, as [`Client`] would before sending it.
    fn check(&self, kind: &RequestKind<'_>) -> Result<()> {
        validate(kind, self.opts.max_frame)
    }

    /// Runs `op` against the member at `owner` and, while members cannot be reached,
    /// against the next ones in ring order: first every member not marked down, then
    /// (if all of those failed) the ones that were marked down when the request began.
    /// Returns the first answer, or the last member's error.
    fn with_fallback<T>(
        &mut self,
        owner: usize,
        mut op: impl FnMut(&mut Client) -> Result<T>,
    ) -> Result<T> {
        self.request += 1;
        let n = self.nodes.len();
        let now = Instant::now();
        let mut last = None;
        for pass in 0..2 {
            for step in 0..n {
                let i = candidate(owner, step, n);
                let health = &self.nodes[i].health;
                let skip = if pass == 0 {
                    health.is_down(now)
                } else {
                    !health.down_before(self.request)
                };
                if skip {
                    continue;
                }
                match self.try_node(i, &mut op) {
                    Err(e) if unreachable(&e) => last = Some(e),
                    other => return other,
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Protocol("no member to send the request to".into())))
    }

    /// Runs `op` against member `i`, keeping its down mark up to date: cleared by any
    /// answer, set (and the client dropped) when the member cannot be reached.
    fn try_node<T>(
        &mut self,
        i: usize,
        op: &mut impl FnMut(&mut Client) -> Result<T>,
    ) -> Result<T> {
        let (opts, request, backoff) = (self.opts, self.request, self.backoff);
        let shard_aware = self.shard_aware;
        let node = &mut self.nodes[i];
        let result = node.client(opts, shard_aware).and_then(|client| {
            let reused = client.is_connected();
            match op(client) {
                // A pooled connection the member closed (it restarted, or dropped an
                // idle client): one fresh connection decides whether it is down.
                Err(Error::Io(_)) if reused => op(client),
                other => other,
            }
        });
        match &result {
            Err(e) if unreachable(e) => {
                node.health.failed(Instant::now(), request, backoff);
                node.client = None;
            }
            _ => node.health.succeeded(),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::DEFAULT_VNODES;

    #[test]
    fn route_order_is_owner_then_sorted_members_after_it() {
        let members = ["c:1", "a:1", "d:1", "b:1", "a:1"];
        let c = ClusterClient::builder()
            .vnodes(64)
            .with_members(&members)
            .expect("client");
        let ring = Ring::new(&members, 64);
        assert_eq!(c.members(), ["a:1", "b:1", "c:1", "d:1"]);
        assert_eq!(c.ring().fingerprint(), ring.fingerprint());
        let sorted = c.members().to_vec();
        for k in 0..500 {
            let key = format!("key-{k}");
            let owner = ring.owner(key.as_bytes()).expect("owner");
            assert_eq!(c.owner(&key), owner);
            let order: Vec<&str> = c.route_order(&key).collect();
            let at = sorted.iter().position(|m| m == owner).expect("member");
            let want: Vec<&str> = (0..sorted.len())
                .map(|s| sorted[(at + s) % sorted.len()].as_str())
                .collect();
            assert_eq!(order, want, "key {key}");
        }
    }

    #[test]
    fn every_member_owns_some_keys_and_distinct_keys_spread() {
        let members = ["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"];
        let c = ClusterClient::with_members(&members, ConnectOptions::default()).expect("client");
        assert_eq!(c.ring().vnodes(), DEFAULT_VNODES);
        let mut counts = [0usize; 3];
        for k in 0..3000 {
            let owner = c.owner(format!("k{k}"));
            counts[members.iter().position(|m| *m == owner).expect("member")] += 1;
        }
        assert!(counts.iter().all(|&n| n > 500), "{counts:?}");
        // The ring vectors of docs/protocol.md.
        assert_eq!(c.owner("a"), "10.0.0.1:7000");
        assert_eq!(c.owner("thumbs/cat.jpg"), "10.0.0.3:7000");
        assert_eq!(c.owner("100%"), "10.0.0.2:7000");
    }

    #[test]
    fn empty_member_lists_and_zero_timeouts_are_refused() {
        let none: [&str; 0] = [];
        assert!(matches!(
            ClusterClient::with_members(&none, ConnectOptions::default()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            ClusterClient::discover(&none, ConnectOptions::default()),
            Err(Error::InvalidArgument(_))
        ));
        let opts = ConnectOptions {
            timeout: Some(Duration::ZERO),
            ..ConnectOptions::default()
        };
        assert!(matches!(
            ClusterClient::with_members(&["a:1"], opts),
            Err(Error::InvalidArgument(_))
        ));
    }
}
