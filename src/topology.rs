//! The cluster as one core sees it: the ring, where each member is, and which member
//! is this node. Built off the event loops (addresses may need DNS) and handed to
//! every core whole, so a core switches from one ring to the next in one step.

use std::net::SocketAddr;

use groupcached_protocol::{MemberList, Ring};

/// Who owns a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This node.
    Local,
    /// Another member, by index into [`Topology::ring`]'s members.
    Remote(usize),
}

/// A ring plus what a core needs to reach its members.
#[derive(Debug)]
pub struct Topology {
    /// The consistent-hash ring over every member, this node included.
    pub ring: Ring,
    /// Each member's address, by ring member index (`None` if it did not resolve).
    pub addrs: Vec<Option<SocketAddr>>,
    /// This node's index among the members.
    pub self_index: usize,
    /// The member list in its wire layout (a HELLO answer's `members`), encoded once
    /// per ring so that answering HELLO encodes nothing.
    members_wire: Box<[u8]>,
}

impl Topology {
    /// Builds the topology for `members` (as configured: `host:port` strings). This
    /// node is the member equal to `node_id` or resolving to `local_addr`; if none
    /// is, `node_id` is added. `resolve` may block (DNS): call it off the event loops.
    pub fn build(
        members: &[String],
        node_id: &str,
        local_addr: SocketAddr,
        vnodes: u32,
        resolve: impl Fn(&str) -> Option<SocketAddr>,
    ) -> Topology {
        let mut names: Vec<String> = members
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        let resolved: Vec<Option<SocketAddr>> = names.iter().map(|m| resolve(m)).collect();
        let is_self = |i: usize| {
            names[i] == node_id
                || (!local_addr.ip().is_unspecified() && resolved[i] == Some(local_addr))
        };
        if !(0..names.len()).any(is_self) {
            names.push(node_id.to_string());
        }
        let ring = Ring::new(&names, vnodes);
        let addrs: Vec<Option<SocketAddr>> = ring.members().iter().map(|m| resolve(m)).collect();
        let self_index = ring
            .members()
            .iter()
            .enumerate()
            .position(|(i, m)| {
                m == node_id || (!local_addr.ip().is_unspecified() && addrs[i] == Some(local_addr))
            })
            .unwrap_or(0);
        let members_wire = MemberList::build(ring.members()).into_boxed_slice();
        Topology {
            ring,
            addrs,
            self_index,
            members_wire,
        }
    }

    /// The owner of `key`.
    #[inline]
    pub fn owner(&self, key: &[u8]) -> Owner {
        match self.ring.owner_index(key) {
            Some(i) if i != self.self_index => Owner::Remote(i),
            _ => Owner::Local,
        }
    }

    /// The member's name.
    pub fn name(&self, idx: usize) -> &str {
        &self.ring.members()[idx]
    }

    /// This node's own entry in the member list: the id it sends in HELLO, so that
    /// the others find it in their lists as it is written there.
    pub fn self_name(&self) -> &str {
        self.name(self.self_index)
    }

    /// Whether a HELLO's `node_id` names another member of this ring: the same
    /// string as a member entry, or an address equal to a member's resolved address
    /// (so `localhost:7001` and `127.0.0.1:7001` are one member). This node is not
    /// "another member".
    pub fn is_other_member(&self, node_id: &[u8]) -> bool {
        let Ok(id) = std::str::from_utf8(node_id) else {
            return false;
        };
        let addr: Option<SocketAddr> = id.parse().ok();
        self.others()
            .any(|i| self.name(i) == id || (addr.is_some() && self.addrs[i] == addr))
    }

    /// The member list as a HELLO answer carries it. `None` only if the list
    /// encoded at build time does not read back, which the protocol crate's tests
    /// rule out (`MemberList::parse_prefix` is its only way to hold a list).
    pub fn member_list(&self) -> Option<MemberList<'_>> {
        MemberList::parse_prefix(&self.members_wire).map(|(list, _)| list)
    }

    /// Every member but this node.
    pub fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.ring.len()).filter(move |&i| i != self.self_index)
    }
}

/// Resolves `host:port` to its first address (blocking).
pub fn resolve(member: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    member.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:7001".parse().unwrap()
    }

    #[test]
    fn self_is_added_when_missing_and_found_when_present() {
        let peers = vec!["127.0.0.1:7002".to_string(), "127.0.0.1:7003".to_string()];
        let t = Topology::build(&peers, "127.0.0.1:7001", local(), 64, resolve);
        assert_eq!(t.ring.len(), 3);
        assert_eq!(t.name(t.self_index), "127.0.0.1:7001");

        let mut with_self = peers.clone();
        with_self.push("127.0.0.1:7001".into());
        let t2 = Topology::build(&with_self, "127.0.0.1:7001", local(), 64, resolve);
        assert_eq!(t2.ring.fingerprint(), t.ring.fingerprint());
        assert_eq!(t.others().count(), 2);
    }

    #[test]
    fn a_member_resolving_to_our_address_is_us() {
        let peers = vec!["localhost:7001".to_string(), "127.0.0.1:7002".to_string()];
        let t = Topology::build(&peers, "127.0.0.1:7001", local(), 64, resolve);
        assert_eq!(t.ring.len(), 2);
        assert_eq!(t.name(t.self_index), "localhost:7001");
    }

    #[test]
    fn members_are_recognised_by_name_or_by_address_and_we_are_not_another() {
        let peers = vec!["localhost:7002".to_string(), "127.0.0.1:7003".to_string()];
        let t = Topology::build(&peers, "127.0.0.1:7001", local(), 64, resolve);
        assert_eq!(t.self_name(), "127.0.0.1:7001");
        let listed: Vec<&[u8]> = t.member_list().unwrap().iter().collect();
        assert_eq!(listed.len(), 3);
        assert!(listed.contains(&b"localhost:7002".as_slice()));
        assert!(t.is_other_member(b"localhost:7002"));
        assert!(t.is_other_member(b"127.0.0.1:7002"));
        assert!(t.is_other_member(b"127.0.0.1:7003"));
        assert!(!t.is_other_member(b"127.0.0.1:7001"), "that is us");
        assert!(!t.is_other_member(b"127.0.0.1:7004"));
        assert!(!t.is_other_member(b"groupcached-client/0.1.0"));
        assert!(!t.is_other_member(b""));
        assert!(!t.is_other_member(&[0xff, 0xfe]));
    }

    #[test]
    fn owners_split_between_local_and_remote() {
        let peers = vec!["127.0.0.1:7002".to_string()];
        let t = Topology::build(&peers, "127.0.0.1:7001", local(), 64, resolve);
        let (mut l, mut r) = (0, 0);
        for i in 0..1000 {
            match t.owner(format!("k{i}").as_bytes()) {
                Owner::Local => l += 1,
                Owner::Remote(idx) => {
                    assert_eq!(t.name(idx), "127.0.0.1:7002");
                    r += 1
                }
            }
        }
        assert!(l > 300 && r > 300, "{l} {r}");
    }
}
