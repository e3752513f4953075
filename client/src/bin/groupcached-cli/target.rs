//! Where a command goes (one server, or the key's owner in a cluster) and how a run
//! fails, each failure with its own exit status.

use std::io;
use std::time::Duration;

use groupcached_client::{Client, ClusterClient, Error, Value};

/// How a run ended, when not well; each kind has its own exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `get` found nothing: exit 1.
    NotFound,
    /// The arguments cannot be sent (a key or value the protocol refuses): exit 2.
    Usage(String),
    /// The server could not be reached or stopped answering: exit 3.
    Connect(String),
    /// The server answered with an error: exit 4.
    Server(String),
    /// Reading stdin or writing stdout failed: exit 5.
    Local(String),
    /// stdout was closed by its reader (`| head`): stop quietly, exit 0.
    BrokenPipe,
}

impl Failure {
    /// The failure of a client call made to `target` (an address or a member list).
    pub(crate) fn from_client(e: Error, target: &Target) -> Failure {
        match e {
            Error::InvalidArgument(m) => Failure::Usage(m),
            Error::Server { .. } => Failure::Server(e.to_string()),
            Error::Decode(_) | Error::Protocol(_) => Failure::Server(format!(
                "{} sent an answer this client cannot read: {e}",
                target.describe()
            )),
            Error::Timeout | Error::Io(_) => Failure::Connect(target.unreachable(&e)),
        }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::BrokenPipe => 0,
            Failure::NotFound => 1,
            Failure::Usage(_) => 2,
            Failure::Connect(_) => 3,
            Failure::Server(_) => 4,
            Failure::Local(_) => 5,
        }
    }
}

/// A local I/O error: reading stdin or writing stdout.
pub(crate) fn local(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::BrokenPipe
    } else {
        Failure::Local(e.to_string())
    }
}

/// How to start a server that the failed command would have reached.
pub(crate) fn start_hint(addr: &str) -> String {
    format!(
        "Is a groupcached server running there? Start one with `groupcached --listen {addr}`, \
         or name another with --server ADDR"
    )
}

/// Where keyed commands go: one server, or the key's owner in a cluster.
pub(crate) enum Target {
    Server(Client, String),
    Cluster(ClusterClient, Vec<String>),
}

impl Target {
    /// Names the target in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Server(_, addr) => addr.clone(),
            Target::Cluster(_, peers) => format!("the cluster {}", peers.join(",")),
        }
    }

    /// The message for a lost connection or a timeout after connecting.
    pub(crate) fn unreachable(&self, e: &Error) -> String {
        match self {
            Target::Server(_, addr) => match e {
                Error::Timeout => format!("{addr} did not answer in time (see --timeout)"),
                _ => format!("lost the connection to {addr}: {e}"),
            },
            Target::Cluster(_, peers) => format!(
                "cannot reach any member of {} ({e}); is groupcached running on each? \
                 Start them with `groupcached --listen ADDR --peers {}` on each ADDR",
                peers.join(","),
                peers.join(",")
            ),
        }
    }

    pub(crate) fn get(&mut self, group: &[u8], key: &[u8]) -> Result<Option<Value>, Error> {
        match self {
            Target::Server(c, _) => c.get(group, key),
            Target::Cluster(c, _) => c.get(group, key),
        }
    }

    pub(crate) fn set(
        &mut self,
        group: &[u8],
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        match self {
            Target::Server(c, _) => c.set(group, key, value, ttl),
            Target::Cluster(c, _) => c.set(group, key, value, ttl),
        }
    }

    pub(crate) fn delete(&mut self, group: &[u8], key: &[u8]) -> Result<bool, Error> {
        match self {
            Target::Server(c, _) => c.delete(group, key),
            Target::Cluster(c, _) => c.delete(group, key),
        }
    }

    /// The single server, for the commands that address one node.
    pub(crate) fn server(&mut self) -> Result<&mut Client, Failure> {
        match self {
            Target::Server(c, _) => Ok(c),
            // The parser refuses --peers with these commands.
            Target::Cluster(..) => Err(Failure::Usage("this command needs --server".into())),
        }
    }
}
