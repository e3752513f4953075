//! Several real `groupcached` processes forming one cluster on loopback.
//!
//! Bind first, run second, across processes: every node starts alone on port 0 with
//! a `--peers-file`; once all have logged their ports the file is written with every
//! address, and each node is told (SIGHUP) and polled until its ring has every member.

use std::path::PathBuf;

use groupcached_client::protocol::{Ring, DEFAULT_VNODES};

use super::{TempDir, TestServer};

/// Nodes of one cluster; a killed node's slot is `None` until restarted.
pub struct TestCluster {
    nodes: Vec<Option<TestServer>>,
    addrs: Vec<String>,
    /// Indexes of the nodes the peers file lists now.
    members: Vec<usize>,
    args: Vec<String>,
    peers_file: PathBuf,
    _dir: TempDir,
}

impl TestCluster {
    /// Starts `n` nodes, each with `args`, and waits until all see all `n` members.
    pub fn start(n: usize, args: &[&str]) -> TestCluster {
        let dir = TempDir::new("cluster");
        let peers_file = dir.write("peers", b"");
        let mut all: Vec<String> = vec![
            "--peers-file".into(),
            peers_file.display().to_string(),
            "--peers-refresh".into(),
            "100ms".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = all.iter().map(String::as_str).collect();
        let nodes: Vec<Option<TestServer>> =
            (0..n).map(|_| Some(TestServer::start(&argv))).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| s.as_ref().unwrap().addr().to_string())
            .collect();
        let mut cluster = TestCluster {
            nodes,
            addrs,
            members: Vec::new(),
            args: all,
            peers_file,
            _dir: dir,
        };
        cluster.set_members(&(0..n).collect::<Vec<_>>());
        cluster
    }

    /// Rewrites the peers file to list the nodes at `indexes`, signals every running
    /// node, and waits until each of those nodes has exactly those members.
    pub fn set_members(&mut self, indexes: &[usize]) {
        let text: String = indexes
            .iter()
            .map(|&i| format!("{}\n", self.addrs[i]))
            .collect();
        // Replace the file atomically, as an operator's tooling should: a node that
        // re-reads it at the wrong moment must never see half a member list.
        let tmp = self.peers_file.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write peers file");
        std::fs::rename(&tmp, &self.peers_file).expect("replace peers file");
        self.members = indexes.to_vec();
        for node in self.nodes.iter().flatten() {
            node.signal("HUP");
        }
        for &i in indexes {
            if let Some(node) = &self.nodes[i] {
                node.wait_stat("members", &format!("== {}", indexes.len()), |m| {
                    m == indexes.len() as u64
                });
            }
        }
    }

    /// Node `i` (panics if it is not running).
    pub fn node(&self, i: usize) -> &TestServer {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Indexes of the nodes the peers file lists now.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// Node `i`, if it is running.
    pub fn try_node(&self, i: usize) -> Option<&TestServer> {
        self.nodes[i].as_ref()
    }

    /// Every node's address, by index.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The ring every node computes for the members at `indexes`.
    pub fn ring_of(&self, indexes: &[usize]) -> Ring {
        let members: Vec<&str> = indexes.iter().map(|&i| self.addrs[i].as_str()).collect();
        Ring::new(&members, DEFAULT_VNODES)
    }

    /// The index of the node owning `key` among all nodes.
    pub fn owner_of(&self, key: &[u8]) -> usize {
        let ring = self.ring_of(&(0..self.addrs.len()).collect::<Vec<_>>());
        let owner = ring.owner(key).expect("non-empty ring");
        self.addrs
            .iter()
            .position(|a| a == owner)
            .expect("owner is a node")
    }

    /// A counter summed over the running nodes.
    pub fn sum(&self, name: &str) -> u64 {
        self.nodes.iter().flatten().map(|n| n.stat(name)).sum()
    }

    /// Kills node `i` at once (SIGKILL), as a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.signal("KILL");
            node.wait_exit(super::DEADLINE).expect("killed node exits");
        }
    }

    /// Starts node `i` again on its old address with its old arguments.
    pub fn restart(&mut self, i: usize) {
        let argv: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let node = TestServer::start_on(&self.addrs[i], &argv);
        // Its peers file already lists the members: wait until it has read it (a
        // node that is not listed counts itself in, too).
        let n = self.members.len() + usize::from(!self.members.contains(&i));
        node.wait_stat("members", "== the listed members", |m| m == n as u64);
        self.nodes[i] = Some(node);
    }
}
