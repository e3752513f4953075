//! The membership thread: watches the member source (a `--peers-file`'s
//! modification time and SIGHUP, `--peers-dns` every `--peers-refresh`), builds a
//! [`Topology`] whenever the member set changes (resolving names, which may block)
//! and sends it to every core as one `Msg::Topology`. Never runs on a core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::core::mailbox::{Msg, Remote};
use crate::membership::PeerSource;
use crate::topology::{resolve, Topology};

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
