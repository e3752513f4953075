//! Where the member list comes from and how changes reach the cores.
//!
//! A control thread (never a core) reads the list from `--peers`, a `--peers-file`
//! (re-read when it changes and on SIGHUP) or `--peers-dns` (every A/AAAA record,
//! re-resolved every `--peers-refresh`), builds a [`Topology`] (resolving names, which
//! may block) and sends it to every core whenever the member set changes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::mailbox::{Msg, Remote};
use crate::topology::{resolve, Topology};

/// Where members come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    /// A fixed list (`--peers`); empty for a single node.
    Static(Vec<String>),
    /// One `host:port` per line (`#` comments and blank lines ignored).
    File(PathBuf),
    /// Every address `host` resolves to, with `port`.
    Dns {
        /// The name (e.g. a Kubernetes headless service).
        host: String,
        /// The port members listen on.
        port: u16,
    },
}

impl PeerSource {
    /// Reads the current member list (blocking: file or DNS I/O).
    pub fn read(&self) -> Result<Vec<String>, String> {
        match self {
            PeerSource::Static(list) => Ok(list.clone()),
            PeerSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read peers file {}: {e}", path.display()))?;
                Ok(parse_member_lines(&text))
            }
            PeerSource::Dns { host, port } => {
                let mut addrs: Vec<SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .collect();
                addrs.sort();
                addrs.dedup();
                Ok(addrs.iter().map(|a| a.to_string()).collect())
            }
        }
    }
}

/// Members listed one per line; `#` starts a comment.
pub fn parse_member_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A request to the membership thread.
#[derive(Debug)]
pub enum Control {
    /// Re-read the member list now (SIGHUP).
    Reload,
    /// Exit.
    Stop,
}

/// Builds topologies and publishes them to cores.
pub struct Membership {
    /// The member source.
    pub source: PeerSource,
    /// This node's advertised name.
    pub node_id: String,
    /// This node's bound address.
    pub local_addr: SocketAddr,
    /// Virtual nodes per member.
    pub vnodes: u32,
    /// How often DNS is re-resolved and the file's modification time checked.
    pub refresh: Duration,
}

impl Membership {
    /// The topology for a member list.
    pub fn topology(&self, members: &[String]) -> Topology {
        Topology::build(
            members,
            &self.node_id,
            self.local_addr,
            self.vnodes,
            resolve,
        )
    }

    /// Runs until [`Control::Stop`] or the channel closes; publishes `Msg::Topology`
    /// to every core when the set of members changes.
    pub fn run(self, mut current: Vec<String>, cores: Vec<Remote>, control: Receiver<Control>) {
        let mut last_mtime = self.mtime();
        let mut next_check = Instant::now() + self.refresh;
        loop {
            let reload =
                match control.recv_timeout(next_check.saturating_duration_since(Instant::now())) {
                    Ok(Control::Reload) => true,
                    Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Err(RecvTimeoutError::Timeout) => false,
                };
            if !reload && Instant::now() < next_check {
                continue;
            }
            next_check = Instant::now() + self.refresh;
            let changed_file = match &self.source {
                PeerSource::File(_) => {
                    let m = self.mtime();
                    let changed = m != last_mtime;
                    last_mtime = m;
                    changed
                }
                PeerSource::Dns { .. } => true,
                PeerSource::Static(_) => false,
            };
            if !(reload || changed_file) {
                continue;
            }
            let members = match self.source.read() {
                Ok(m) if m.is_empty() && !current.is_empty() => {
                    // Most likely a file caught while being rewritten in place.
                    log::warn!(
                        "membership: the member list is empty; keeping the current {} members",
                        current.len()
                    );
                    continue;
                }
                Ok(m) => m,
                Err(e) => {
                    log::warn!(
                        "membership: {e}; keeping the current {} members",
                        current.len()
                    );
                    continue;
                }
            };
            let old = self.topology(&current);
            let topo = Arc::new(self.topology(&members));
            current = members;
            if topo.ring.fingerprint() == old.ring.fingerprint() {
                // Same ring (e.g. only this node, always a member, was added or left out).
                continue;
            }
            log::info!(
                "membership changed: {} -> {} members (ring fingerprint {:016x}): {}",
                old.ring.len(),
                topo.ring.len(),
                topo.ring.fingerprint(),
                topo.ring.members().join(", ")
            );
            for core in &cores {
                core.send(Msg::Topology(topo.clone()));
            }
        }
    }

    fn mtime(&self) -> Option<SystemTime> {
        match &self.source {
            PeerSource::File(p) => std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lines_skip_comments_and_blanks() {
        let text = "# cluster\n10.0.0.1:7000\n\n  10.0.0.2:7000  # second\n";
        assert_eq!(
            parse_member_lines(text),
            vec!["10.0.0.1:7000", "10.0.0.2:7000"]
        );
    }

    #[test]
    fn dns_source_lists_every_address_with_the_port() {
        let src = PeerSource::Dns {
            host: "localhost".into(),
            port: 7000,
        };
        let members = src.read().unwrap();
        assert!(members.iter().all(|m| m.ends_with(":7000")), "{members:?}");
        assert!(!members.is_empty());
    }
}
