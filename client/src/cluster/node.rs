//! One cluster member as a [`ClusterClient`](super::ClusterClient) sees it: its
//! pooled client, whether it is marked down and for how long (the backoff), and
//! which errors mean "try the next member".

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::conn::ConnectOptions;
use crate::error::{Error, Result};

/// How long failed members are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    pub(super) initial: Duration,
    pub(super) max: Duration,
}

/// One member: its name on the ring, its pooled client and whether it is down.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) addr: String,
    /// Created (and the name resolved) at first use; dropped when the member is
    /// marked down, so that the name is resolved again at the next attempt.
    pub(super) client: Option<Client>,
    pub(super) health: Health,
}

/// Whether a member is being skipped, and for how long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Health {
    pub(super) down: Option<Down>,
}

/// A member marked down: until when, and by which failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Down {
    /// Skipped until then.
    pub(super) until: Instant,
    /// The backoff that set `until`; the next failure doubles it.
    pub(super) backoff: Duration,
    /// The request during which the member last failed.
    pub(super) request: u64,
}

impl Health {
    pub(super) fn is_down(&self, now: Instant) -> bool {
        self.down.is_some_and(|d| d.until > now)
    }

    /// Whether the member failed before request `request` began (so that request
    /// skipped it rather than tried it).
    pub(super) fn down_before(&self, request: u64) -> bool {
        self.down.is_some_and(|d| d.request != request)
    }

    pub(super) fn failed(&mut self, now: Instant, request: u64, backoff: Backoff) {
        let next = match self.down {
            Some(d) => d.backoff.saturating_mul(2).min(backoff.max),
            None => backoff.initial,
        };
        self.down = Some(Down {
            until: now + next,
            backoff: next,
            request,
        });
    }

    pub(super) fn succeeded(&mut self) {
        self.down = None;
    }
}

impl Node {
    pub(super) fn new(addr: String) -> Node {
        Node {
            addr,
            client: None,
            health: Health::default(),
        }
    }

    /// The pooled client, created (resolving the member's name) if there is none.
    pub(super) fn client(
        &mut self,
        opts: ConnectOptions,
        shard_aware: bool,
    ) -> Result<&mut Client> {
        match &mut self.client {
            Some(c) => Ok(c),
            slot @ None => {
                let addrs: Vec<SocketAddr> = self.addr.to_socket_addrs()?.collect();
                if addrs.is_empty() {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("member {} resolved to no address", self.addr),
                    )));
                }
                Ok(slot.insert(Client::unconnected(addrs, opts, shard_aware)))
            }
        }
    }
}

/// The position of the `step`-th member to try for a key owned by member `owner`, in
/// a ring of `n` members: the owner, then the members after it in sorted order,
/// wrapping around.
#[inline]
pub(super) fn candidate(owner: usize, step: usize, n: usize) -> usize {
    (owner + step) % n
}

/// Whether `e` means the member could not be reached or did not answer in time (so
/// another member should be tried), rather than an answer or a bad argument.
pub(super) fn unreachable(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
    };

    #[test]
    fn candidates_start_at_the_owner_and_wrap() {
        let order: Vec<usize> = (0..4).map(|s| candidate(2, s, 4)).collect();
        assert_eq!(order, vec![2, 3, 0, 1]);
        let order: Vec<usize> = (0..3).map(|s| candidate(0, s, 3)).collect();
        assert_eq!(order, vec![0, 1, 2]);
        assert_eq!(candidate(0, 0, 1), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_success_clears_it() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert!(!h.is_down(t0));
        h.failed(t0, 1, BACKOFF);
        assert!(h.is_down(t0));
        assert!(h.is_down(t0 + Duration::from_millis(999)));
        assert!(!h.is_down(t0 + Duration::from_secs(1)));
        let mut waits = Vec::new();
        for r in 2..8 {
            h.failed(t0, r, BACKOFF);
            waits.push(h.down.expect("down").backoff.as_secs());
        }
        assert_eq!(waits, vec![2, 4, 8, 10, 10, 10]);
        h.succeeded();
        assert!(!h.is_down(t0));
        h.failed(t0, 9, BACKOFF);
        assert_eq!(h.down.expect("down").backoff, Duration::from_secs(1));
    }

    #[test]
    fn down_before_tells_skipped_members_from_ones_that_just_failed() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert!(!h.down_before(5));
        h.failed(t0, 4, BACKOFF);
        assert!(h.down_before(5), "failed during an earlier request");
        h.failed(t0, 5, BACKOFF);
        assert!(!h.down_before(5), "failed during this request");
    }

    #[test]
    fn zero_backoff_never_skips() {
        let t0 = Instant::now();
        let mut h = Health::default();
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        h.failed(t0, 1, zero);
        h.failed(t0, 2, zero);
        assert!(!h.is_down(t0));
    }

    #[test]
    fn only_unreachable_members_are_failed_over() {
        assert!(unreachable(&Error::Timeout));
        assert!(unreachable(&Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused"
        ))));
        assert!(!unreachable(&Error::Server {
            status: groupcached_protocol::Status::OriginError,
            message: String::new(),
        }));
        assert!(!unreachable(&Error::InvalidArgument(String::new())));
        assert!(!unreachable(&Error::Protocol(String::new())));
    }
}
