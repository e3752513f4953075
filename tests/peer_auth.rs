//! Members prove a shared secret (`--cluster-secret-file`) before their peer
//! operations are served: real binaries on loopback, driven over real sockets.
//! The byte-level examples of the handshake are checked in `tests/protocol_doc.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::cluster::TestCluster;
use common::{server_bin, wait_until, TempDir, TestServer};
use groupcached::ClusterSecret;
use groupcached_client::protocol::{KeyRef, Request, RequestKind, Status};
use groupcached_client::{ClusterClient, ConnectOptions};

/// A secret no log line, config dump or metric may ever show.
const SECRET: &str = "s3cret-NEVER-printed-4f1c2a7e9b";

fn secret_file(dir: &TempDir, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.write(name, format!("{contents}\n").as_bytes());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn key_owned_by(c: &TestCluster, owner: usize, tag: &str) -> String {
    (0..10_000)
        .map(|i| format!("{tag}-{i}"))
        .find(|k| c.owner_of(k.as_bytes()) == owner)
        .expect("some key lands on every node")
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret:\n{text}");
}

/// A plain HTTP GET; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the answer");
    out
}

#[test]
fn members_with_the_secret_work_as_a_cluster_and_the_secret_shows_nowhere() {
    let dir = TempDir::new("peer-auth");
    let path = secret_file(&dir, "cluster.secret", SECRET, 0o600);
    let path = path.to_str().unwrap();
    let c = TestCluster::start(
        3,
        &[
            "--threads",
            "2",
            "--origin",
            "synthetic:size=16",
            "--cluster-secret-file",
            path,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    // Reads through a non-owner are fetched from the owner, not loaded locally.
    let key = key_owned_by(&c, 0, "auth");
    let v1 = c.node(1).client().get("default", &key).unwrap().unwrap();
    let v2 = c.node(2).client().get("default", &key).unwrap().unwrap();
    assert_eq!(v1.as_ref(), v2.as_ref());
    assert_eq!(c.node(1).stat("group.default.peer_loads"), 1);
    assert_eq!(c.node(2).stat("group.default.peer_loads"), 1);
    assert_eq!(
        c.node(0).stat("group.default.local_loads"),
        1,
        "loaded once"
    );
    // A write through a non-owner is forwarded (STORE), applied at the owner, and
    // every member acknowledges its INVALIDATE.
    let written = key_owned_by(&c, 2, "written");
    c.node(0)
        .client()
        .set("default", &written, b"new value", None)
        .unwrap();
    let got = c
        .node(1)
        .client()
        .get("default", &written)
        .unwrap()
        .unwrap();
    assert_eq!(got.as_ref(), b"new value");
    assert_eq!(c.sum("group.default.peer_errors"), 0);
    assert_eq!(c.sum("invalidate_errors"), 0);
    assert_eq!(c.sum("peer_ops_refused"), 0);
    assert_eq!(c.sum("peer_auth_failures"), 0);

    // A ring-aware client needs no secret: it only uses client operations.
    let mut cc =
        ClusterClient::discover(&[c.node(0).addr().to_string()], ConnectOptions::default())
            .expect("discover the ring");
    for i in 0..20 {
        let k = format!("cc-{i}");
        assert!(cc.get("default", &k).unwrap().is_some());
    }
    cc.set("default", "cc-set", b"x", None).unwrap();
    assert_eq!(cc.get("default", "cc-set").unwrap().unwrap().as_ref(), b"x");

    // The secret is in no log line, STATS name or metric.
    for i in 0..3 {
        let node = c.node(i);
        let logs = node.logs().join("\n");
        assert!(logs.contains("peer operations need a proof of the cluster secret"));
        assert!(!logs.contains("unauthenticated"), "{logs}");
        assert_no_secret("the logs", &logs);
        assert_no_secret("STATS", &format!("{:?}", node.stats()));
        let line = node.wait_log("serving metrics on http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split("/metrics").next())
            .unwrap();
        let scrape = http_get(addr, "/metrics");
        assert!(
            scrape.contains("groupcached_peer_auth_failures_total 0"),
            "{scrape}"
        );
        assert_no_secret("/metrics", &scrape);
    }
    // --print-config shows the file, not its contents.
    let out = Command::new(server_bin())
        .args(["--cluster-secret-file", path, "--print-config"])
        .env_remove("GROUPCACHED_CLUSTER_SECRET_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("cluster_secret_file = \"{path}\"")),
        "{text}"
    );
    assert_no_secret("--print-config", &text);
    assert_no_secret(
        "--print-config's stderr",
        &String::from_utf8_lossy(&out.stderr),
    );
}

/// A raw connection that claims a member's name and runs the handshake by hand.
struct Claimant(common::Raw);

impl Claimant {
    fn hello(addr: std::net::SocketAddr, node_id: &str) -> Claimant {
        let mut raw = common::Raw::connect(addr);
        raw.send(&Request {
            id: 1,
            kind: RequestKind::Hello {
                node_id: node_id.as_bytes(),
                ring_fingerprint: 1,
            },
        });
        assert_eq!(raw.recv().status, Status::Ok);
        Claimant(raw)
    }

    fn challenge(&mut self, ours: &[u8; 16]) -> [u8; 16] {
        self.0.send(&Request {
            id: 2,
            kind: RequestKind::Challenge { nonce: ours },
        });
        let r = self.0.recv();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        match r.body {
            groupcached_client::OwnedBody::Nonce(n) => n.try_into().expect("16 bytes"),
            other => panic!("CHALLENGE answered {other:?}"),
        }
    }

    fn auth(&mut self, proof: &[u8]) -> groupcached_client::OwnedResponse {
        self.0.send(&Request {
            id: 3,
            kind: RequestKind::Auth { proof },
        });
        self.0.recv()
    }

    fn invalidate_status(&mut self) -> Status {
        self.0.send(&Request {
            id: 4,
            kind: RequestKind::Invalidate(KeyRef::new(b"default", b"k")),
        });
        self.0.recv().status
    }
}

#[test]
fn wrong_and_replayed_proofs_get_forbidden_and_no_peer_rights() {
    let dir = TempDir::new("peer-auth-raw");
    let path = secret_file(&dir, "s", SECRET, 0o600);
    let member = "127.0.0.1:1";
    let s = TestServer::start(&[
        "--peers",
        member,
        "--cluster-secret-file",
        path.to_str().unwrap(),
    ]);
    let secret = ClusterSecret::from_bytes(SECRET.as_bytes()).unwrap();
    let ours = [7u8; 16];

    // The right proof: peer rights, and the node proves the secret back.
    let mut good = Claimant::hello(s.addr(), member);
    assert_eq!(good.invalidate_status(), Status::Forbidden, "HELLO alone");
    let theirs = good.challenge(&ours);
    let proof = secret.initiator_proof(member.as_bytes(), &ours, &theirs);
    let r = good.auth(&proof);
    assert_eq!(r.status, Status::Ok, "{r:?}");
    match &r.body {
        groupcached_client::OwnedBody::Proof(p) => {
            assert!(secret.verify_responder(member.as_bytes(), &ours, &theirs, p))
        }
        other => panic!("AUTH answered {other:?}"),
    }
    assert_eq!(good.invalidate_status(), Status::Ok);

    // The same proof replayed on a new connection (with the same client nonce):
    // the node's nonce is new, so it is refused, and the connection gets nothing.
    let mut replay = Claimant::hello(s.addr(), member);
    let fresh = replay.challenge(&ours);
    assert_ne!(fresh, theirs, "every CHALLENGE gets a fresh nonce");
    assert_eq!(replay.auth(&proof).status, Status::Forbidden);
    assert_eq!(replay.invalidate_status(), Status::Forbidden);
    // Replayed on the same connection, after its challenge was used: refused too.
    assert_eq!(good.auth(&proof).status, Status::Forbidden);

    // A proof under another secret.
    let mut wrong = Claimant::hello(s.addr(), member);
    let theirs = wrong.challenge(&ours);
    let other = ClusterSecret::from_bytes(b"another cluster entirely").unwrap();
    let r = wrong.auth(&other.initiator_proof(member.as_bytes(), &ours, &theirs));
    assert_eq!(r.status, Status::Forbidden);
    assert_eq!(wrong.invalidate_status(), Status::Forbidden);

    // A right proof for a name that is not a member.
    let mut stranger = Claimant::hello(s.addr(), "10.9.9.9:7000");
    let theirs = stranger.challenge(&ours);
    let r = stranger.auth(&secret.initiator_proof(b"10.9.9.9:7000", &ours, &theirs));
    assert_eq!(r.status, Status::Forbidden);

    // A proof made for another name than the HELLO's.
    let mut moved = Claimant::hello(s.addr(), member);
    let theirs = moved.challenge(&ours);
    let r = moved.auth(&secret.initiator_proof(b"127.0.0.1:2", &ours, &theirs));
    assert_eq!(r.status, Status::Forbidden);

    assert!(s.stat("peer_auth_failures") >= 5);
    s.wait_log("proof of the cluster secret is wrong");
    assert_no_secret("the logs", &s.logs().join("\n"));
}

/// Starts `n` nodes, node `i` with `args[i]`, as one cluster through a peers file.
fn mixed_cluster(args: &[Vec<String>]) -> (Vec<TestServer>, TempDir) {
    let dir = TempDir::new("peer-auth-mixed");
    let peers = dir.write("peers", b"");
    let nodes: Vec<TestServer> = args
        .iter()
        .map(|a| {
            let mut all: Vec<&str> = vec![
                "--peers-file",
                peers.to_str().unwrap(),
                "--threads",
                "2",
                "--origin",
                "synthetic:size=16",
            ];
            all.extend(a.iter().map(String::as_str));
            TestServer::start(&all)
        })
        .collect();
    let list: String = nodes.iter().map(|n| format!("{}\n", n.addr())).collect();
    let tmp = peers.with_extension("tmp");
    std::fs::write(&tmp, list).unwrap();
    std::fs::rename(&tmp, &peers).unwrap();
    for n in &nodes {
        n.signal("HUP");
    }
    for n in &nodes {
        n.wait_stat("members", "== all", |m| m == args.len() as u64);
    }
    (nodes, dir)
}

fn owned_key(nodes: &[TestServer], owner: usize, tag: &str) -> String {
    let members: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
    let ring = groupcached_client::protocol::Ring::new(
        &members,
        groupcached_client::protocol::DEFAULT_VNODES,
    );
    (0..10_000)
        .map(|i| format!("{tag}-{i}"))
        .find(|k| ring.owner(k.as_bytes()) == Some(members[owner].as_str()))
        .unwrap()
}

#[test]
fn one_member_with_a_secret_and_one_without_do_not_use_each_other_and_say_so() {
    let dir = TempDir::new("peer-auth-secret");
    let path = secret_file(&dir, "s", SECRET, 0o600);
    let (nodes, _peers) = mixed_cluster(&[
        vec![
            "--cluster-secret-file".into(),
            path.to_str().unwrap().into(),
        ],
        vec![],
    ]);
    let (with, without) = (&nodes[0], &nodes[1]);
    without.wait_log("peer operations are unauthenticated");

    // Keys of the node without a secret, read through the one with: its handshake
    // is refused, so it loads them itself. Requests still succeed.
    let k = owned_key(&nodes, 1, "theirs");
    assert!(with.client().get("default", &k).unwrap().is_some());
    with.wait_log("refused our cluster-secret handshake");
    without
        .wait_log("offers to prove a cluster secret, but this node has no --cluster-secret-file");
    assert_eq!(with.stat("group.default.peer_loads"), 0);
    assert!(with.stat("group.default.peer_errors") >= 1);

    // Keys of the node with a secret, read through the one without: its FETCH is
    // refused, so it loads them itself.
    let k = owned_key(&nodes, 0, "ours");
    assert!(without.client().get("default", &k).unwrap().is_some());
    with.wait_log("sent peer operations without proving the cluster secret");
    without.wait_log("refused a peer operation");
    assert_eq!(without.stat("group.default.peer_loads"), 0);
    assert!(with.stat("peer_ops_refused") >= 1);
    assert!(with.stat("peer_auth_failures") >= 1);
    assert!(without.stat("peer_auth_failures") >= 1);

    // The refused handshake is logged once, however often it is retried.
    for i in 0..5 {
        let k = owned_key(&nodes, 1, &format!("again{i}"));
        assert!(with.client().get("default", &k).unwrap().is_some());
    }
    let refusals = with
        .logs()
        .iter()
        .filter(|l| {
            l.contains("refused our cluster-secret handshake") && l.contains("not using it")
        })
        .count();
    assert_eq!(refusals, 1, "{:#?}", with.logs());
}

#[test]
fn two_different_secrets_fail_safe() {
    let dir = TempDir::new("peer-auth-two");
    let a = secret_file(&dir, "a", SECRET, 0o600);
    let b = secret_file(&dir, "b", "a-different-secret-for-node-b", 0o600);
    let (nodes, _peers) = mixed_cluster(&[
        vec!["--cluster-secret-file".into(), a.to_str().unwrap().into()],
        vec!["--cluster-secret-file".into(), b.to_str().unwrap().into()],
    ]);
    let k = owned_key(&nodes, 1, "k");
    assert!(nodes[0].client().get("default", &k).unwrap().is_some());
    nodes[0].wait_log("rejected our proof of the cluster secret");
    nodes[1].wait_log("its proof of the cluster secret is wrong");
    assert_eq!(nodes[0].stat("group.default.peer_loads"), 0);
    // A write to the other node's key cannot reach its owner: refused, not applied.
    let err = nodes[0]
        .client()
        .set("default", &k, b"v", None)
        .unwrap_err();
    assert!(format!("{err}").contains("UNAVAILABLE"), "{err}");
    for n in &nodes {
        assert_no_secret("the logs", &n.logs().join("\n"));
    }
}

fn start_err(path: &Path) -> String {
    let out = Command::new(server_bin())
        .args(["--listen", "127.0.0.1:0", "--cluster-secret-file"])
        .arg(path)
        .env_remove("GROUPCACHED_CLUSTER_SECRET_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn secret_files_are_checked_at_start() {
    let dir = TempDir::new("peer-auth-files");
    let e = start_err(&dir.path().join("missing"));
    assert!(
        e.contains("--cluster-secret-file") && e.contains("cannot read"),
        "{e}"
    );
    let empty = dir.write("empty", b"\n");
    let e = start_err(&empty);
    assert!(
        e.contains("--cluster-secret-file") && e.contains("is empty"),
        "{e}"
    );
    let e = start_err(dir.path());
    assert!(e.contains("--cluster-secret-file"), "{e}");

    // Readable by everyone: it starts, with a warning that names the file.
    let open = secret_file(&dir, "open", SECRET, 0o644);
    let s = TestServer::start(&["--cluster-secret-file", open.to_str().unwrap()]);
    let line = s.wait_log("readable by every user");
    assert!(line.contains("chmod 600"), "{line}");
    assert_no_secret("the logs", &s.logs().join("\n"));

    // Without a secret, the node says once that peer operations are unauthenticated.
    let plain = TestServer::start(&["--peers", "127.0.0.1:1"]);
    plain.wait_log("listening on");
    wait_until("the start-up lines", || {
        plain.logs().iter().any(|l| l.contains("unauthenticated"))
    });
    let n = plain
        .logs()
        .iter()
        .filter(|l| l.contains("peer operations are unauthenticated"))
        .count();
    assert_eq!(n, 1);
}
