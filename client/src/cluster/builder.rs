//! [`ClusterBuilder`]: a [`ClusterClient`]'s options, and the two ways to make one
//! (a member list, or discovery from seed nodes by HELLO).

use std::time::Duration;

use groupcached_protocol::{Ring, DEFAULT_VNODES};

use super::node::{Backoff, Node};
use super::{ClusterClient, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF};
use crate::client::Client;
use crate::conn::ConnectOptions;
use crate::error::{Error, Result};
use crate::response::Hello;

/// Options for a [`ClusterClient`]; from [`ClusterClient::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    opts: ConnectOptions,
    vnodes: u32,
    backoff: Backoff,
    shard_aware: bool,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            opts: ConnectOptions::default(),
            vnodes: DEFAULT_VNODES,
            backoff: Backoff {
                initial: DEFAULT_BACKOFF,
                max: DEFAULT_MAX_BACKOFF,
            },
            shard_aware: true,
        }
    }
}

impl ClusterBuilder {
    /// Connection options for every member's connection (timeouts, frame limit).
    pub fn options(mut self, opts: ConnectOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Virtual nodes per member (default [`DEFAULT_VNODES`]); must be what the servers
    /// use, or keys go to non-owners (which still works, with an extra hop). Ignored
    /// by [`ClusterBuilder::discover`], which takes the server's.
    pub fn vnodes(mut self, vnodes: u32) -> Self {
        self.vnodes = vnodes;
        self
    }

    /// How long a member is skipped after it failed: `initial` after the first
    /// failure, doubling with each further failure up to `max` (default 1 s and 10 s).
    /// A zero `initial` never skips a member: each request tries the owner first.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff {
            initial,
            max: max.max(initial),
        };
        self
    }

    /// Whether each member's connections are shard-aware (default `true`): one
    /// connection per core of that member (members may run different core counts),
    /// each key sent on its core's connection, as [`Client`] does. `false` keeps one
    /// plain connection per member.
    pub fn shard_aware(mut self, on: bool) -> Self {
        self.shard_aware = on;
        self
    }

    /// A client for the cluster of `members` (`host:port`, as the servers have them in
    /// their `--peers`; order and duplicates do not matter). Nothing is connected yet.
    pub fn with_members<S: AsRef<str>>(self, members: &[S]) -> Result<ClusterClient> {
        self.opts.check()?;
        if members.is_empty() {
            return Err(Error::InvalidArgument("the member list is empty".into()));
        }
        Ok(self.build(Ring::new(members, self.vnodes)))
    }

    /// A client for the cluster that `seeds` belong to: asks the first seed that
    /// answers for its members and virtual-node count (HELLO) and builds the same
    /// ring. The connection to that seed is kept for its member, if the seed names
    /// itself (its node id) as one. Fails with the last seed's error if none answers.
    pub fn discover<S: AsRef<str>>(self, seeds: &[S]) -> Result<ClusterClient> {
        self.opts.check()?;
        let mut last = Error::InvalidArgument("no seed nodes given".into());
        for seed in seeds {
            let seed = seed.as_ref();
            let mut node = Node::new(seed.to_owned());
            let result = node
                .client(self.opts, self.shard_aware)
                .and_then(Client::hello);
            match result {
                Ok(hello) => {
                    let members = members_of(&hello, seed);
                    let mut cluster = self.build(Ring::new(&members, hello.vnodes));
                    if let Some(i) = cluster.index_of(&hello.node_id) {
                        cluster.nodes[i].client = node.client;
                    }
                    return Ok(cluster);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn build(&self, ring: Ring) -> ClusterClient {
        ClusterClient {
            nodes: ring.members().iter().cloned().map(Node::new).collect(),
            ring,
            opts: self.opts,
            backoff: self.backoff,
            shard_aware: self.shard_aware,
            request: 0,
        }
    }
}

/// The members a HELLO answer lists; a server that lists none (it runs alone) is its
/// own only member, named by its node id, or by the address it was reached at.
pub(super) fn members_of(hello: &Hello, reached_at: &str) -> Vec<String> {
    if !hello.members.is_empty() {
        hello.members.clone()
    } else if !hello.node_id.is_empty() {
        vec![hello.node_id.clone()]
    } else {
        vec![reached_at.to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_a_lone_server_is_itself() {
        let mut h = Hello {
            node_id: "n:1".into(),
            ring_fingerprint: 0,
            vnodes: 8,
            members: vec!["a:1".into(), "b:1".into()],
        };
        assert_eq!(members_of(&h, "seed:1"), vec!["a:1", "b:1"]);
        h.members.clear();
        assert_eq!(members_of(&h, "seed:1"), vec!["n:1"]);
        h.node_id.clear();
        assert_eq!(members_of(&h, "seed:1"), vec!["seed:1"]);
    }
}
