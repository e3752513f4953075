//! Operation codes and response status codes.

use std::fmt;

/// What a request asks for. Responses echo the opcode of their request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Read a key, filling it from the group's origin (through the owner) on a miss.
    Get = 0x01,
    /// Store a value, with an optional TTL.
    Set = 0x02,
    /// Remove a key at its owner and invalidate hot copies everywhere.
    Delete = 0x03,
    /// Read the node's counters.
    Stats = 0x04,
    /// Liveness check; the payload is echoed.
    Ping = 0x05,
    /// Exchange protocol version, node identity and ring fingerprint.
    Hello = 0x06,
    /// Peer-internal GET: the receiver serves or loads the key itself and never
    /// forwards it again, so nodes whose rings disagree cannot loop.
    Fetch = 0x07,
    /// Peer-internal: drop a key from the receiver's hot cache.
    Invalidate = 0x08,
    /// Peer-internal SET: the receiver stores the value itself and never forwards it
    /// (a SET taken by a node that does not own the key reaches the owner as STORE).
    Store = 0x09,
    /// Peer-internal DELETE: the receiver removes the key itself and never forwards it.
    Purge = 0x0a,
    /// Peer handshake, step 1 of proving the cluster secret: the sender's nonce in,
    /// the receiver's fresh nonce out (see docs/protocol.md, "Proving the cluster
    /// secret").
    Challenge = 0x0b,
    /// Peer handshake, step 2: an HMAC over both nonces and the sender's node id
    /// proves the sender knows the cluster secret; the receiver answers with its own
    /// proof.
    Auth = 0x0c,
    /// Ask for this connection to be served by one core of the node (the one whose
    /// shard holds the keys the client will send on it), so that no request on it
    /// hops between cores; the answer says how many cores the node runs.
    Shard = 0x0d,
    /// Peer-internal owner-side write for the memcached front end (SET with flags,
    /// ADD, REPLACE, APPEND, PREPEND, CAS, INCR, DECR, TOUCH): applied by the key's
    /// owner, the only writer of its shard, so conditional writes need no locks;
    /// never forwarded again.
    Mutate = 0x0e,
    /// Peer-internal FETCH that also returns the item's flags and CAS, so hot copies
    /// on other nodes answer memcached `gets` with the owner's CAS.
    FetchItem = 0x0f,
    /// Peer-internal: drop every item of one group on the receiver (memcached
    /// `flush_all` reaches every member this way).
    Flush = 0x10,
}

impl Opcode {
    /// Every opcode, in numeric order.
    pub const ALL: [Opcode; 16] = [
        Opcode::Get,
        Opcode::Set,
        Opcode::Delete,
        Opcode::Stats,
        Opcode::Ping,
        Opcode::Hello,
        Opcode::Fetch,
        Opcode::Invalidate,
        Opcode::Store,
        Opcode::Purge,
        Opcode::Challenge,
        Opcode::Auth,
        Opcode::Shard,
        Opcode::Mutate,
        Opcode::FetchItem,
        Opcode::Flush,
    ];

    /// The opcode's name as written in docs/protocol.md.
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Get => "GET",
            Opcode::Set => "SET",
            Opcode::Delete => "DELETE",
            Opcode::Stats => "STATS",
            Opcode::Ping => "PING",
            Opcode::Hello => "HELLO",
            Opcode::Fetch => "FETCH",
            Opcode::Invalidate => "INVALIDATE",
            Opcode::Store => "STORE",
            Opcode::Purge => "PURGE",
            Opcode::Challenge => "CHALLENGE",
            Opcode::Auth => "AUTH",
            Opcode::Shard => "SHARD",
            Opcode::Mutate => "MUTATE",
            Opcode::FetchItem => "FETCH_ITEM",
            Opcode::Flush => "FLUSH",
        }
    }
}

impl TryFrom<u8> for Opcode {
    type Error = u8;
    fn try_from(b: u8) -> Result<Self, u8> {
        Ok(match b {
            0x01 => Opcode::Get,
            0x02 => Opcode::Set,
            0x03 => Opcode::Delete,
            0x04 => Opcode::Stats,
            0x05 => Opcode::Ping,
            0x06 => Opcode::Hello,
            0x07 => Opcode::Fetch,
            0x08 => Opcode::Invalidate,
            0x09 => Opcode::Store,
            0x0a => Opcode::Purge,
            0x0b => Opcode::Challenge,
            0x0c => Opcode::Auth,
            0x0d => Opcode::Shard,
            0x0e => Opcode::Mutate,
            0x0f => Opcode::FetchItem,
            0x10 => Opcode::Flush,
            other => return Err(other),
        })
    }
}

impl Opcode {
    /// Whether only cluster members may send it (FETCH, STORE, PURGE, INVALIDATE,
    /// MUTATE, FETCH_ITEM, FLUSH): a node refuses these with [`Status::Forbidden`] on
    /// a connection that has not identified itself as a member in HELLO.
    pub fn is_peer_only(self) -> bool {
        matches!(
            self,
            Opcode::Fetch
                | Opcode::Store
                | Opcode::Purge
                | Opcode::Invalidate
                | Opcode::Mutate
                | Opcode::FetchItem
                | Opcode::Flush
        )
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome carried by a response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Success; the body is the op's result.
    Ok = 0x00,
    /// The key has no value (not cached, and the origin has none). Empty body.
    NotFound = 0x01,
    /// The server failed for a reason of its own. Body: message.
    Error = 0x02,
    /// The frame or value is over a size limit. Body: message.
    TooLarge = 0x03,
    /// The request is malformed or a field is invalid (empty or too long key, ...).
    BadRequest = 0x04,
    /// The opcode is not known to this server; the connection stays usable.
    UnknownOp = 0x05,
    /// The group is not configured on this server.
    UnknownGroup = 0x06,
    /// The group's origin failed to load the key. Not cached; a retry may succeed.
    OriginError = 0x07,
    /// Loading the key took longer than the server's load timeout.
    Timeout = 0x08,
    /// The server cannot take the request now (connection limit, shutting down).
    Unavailable = 0x09,
    /// The frame's protocol version is not spoken here; the connection is closed.
    BadVersion = 0x0a,
    /// A STORE, PURGE or MUTATE reached a node that does not own the key under its
    /// ring (the member lists differ): nothing was written. Body: message naming the owner.
    NotOwner = 0x0b,
    /// A peer-internal operation (see [`Opcode::is_peer_only`]) on a connection
    /// that has not identified itself as a cluster member in HELLO (or, on a node
    /// with a cluster secret, has not proved the secret with CHALLENGE and AUTH); or
    /// a CHALLENGE or AUTH the receiver refuses. Body: message.
    Forbidden = 0x0c,
    /// A conditional MUTATE's condition failed: ADD of a key that is present. Nothing
    /// was written. Body: message. (memcached's `NOT_STORED`.)
    NotStored = 0x0d,
    /// A MUTATE CAS whose `cas` differs from the item's: the item changed since its
    /// CAS was read. Nothing was written. Body: message. (memcached's `EXISTS`.)
    Exists = 0x0e,
}

impl Status {
    /// Every status, in numeric order.
    pub const ALL: [Status; 15] = [
        Status::Ok,
        Status::NotFound,
        Status::Error,
        Status::TooLarge,
        Status::BadRequest,
        Status::UnknownOp,
        Status::UnknownGroup,
        Status::OriginError,
        Status::Timeout,
        Status::Unavailable,
        Status::BadVersion,
        Status::NotOwner,
        Status::Forbidden,
        Status::NotStored,
        Status::Exists,
    ];

    /// The status's name as written in docs/protocol.md.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotFound => "NOT_FOUND",
            Status::Error => "ERROR",
            Status::TooLarge => "TOO_LARGE",
            Status::BadRequest => "BAD_REQUEST",
            Status::UnknownOp => "UNKNOWN_OP",
            Status::UnknownGroup => "UNKNOWN_GROUP",
            Status::OriginError => "ORIGIN_ERROR",
            Status::Timeout => "TIMEOUT",
            Status::Unavailable => "UNAVAILABLE",
            Status::BadVersion => "BAD_VERSION",
            Status::NotOwner => "NOT_OWNER",
            Status::Forbidden => "FORBIDDEN",
            Status::NotStored => "NOT_STORED",
            Status::Exists => "EXISTS",
        }
    }

    /// Whether the body of a response with this status is an error message.
    pub fn carries_message(self) -> bool {
        !matches!(self, Status::Ok | Status::NotFound)
    }
}

impl TryFrom<u8> for Status {
    type Error = u8;
    fn try_from(b: u8) -> Result<Self, u8> {
        Status::ALL.get(b as usize).copied().ok_or(b)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip_through_bytes() {
        for op in Opcode::ALL {
            assert_eq!(Opcode::try_from(op as u8), Ok(op));
        }
        assert_eq!(Opcode::try_from(0), Err(0));
        assert_eq!(Opcode::try_from(0x11), Err(0x11));
        assert_eq!(Opcode::try_from(0x7f), Err(0x7f));
        assert_eq!(Opcode::Mutate as u8, 0x0e);
        assert_eq!(Opcode::FetchItem.name(), "FETCH_ITEM");
        assert!(Opcode::Flush.is_peer_only() && !Opcode::Shard.is_peer_only());
    }

    #[test]
    fn statuses_round_trip_through_bytes() {
        for (i, st) in Status::ALL.iter().enumerate() {
            assert_eq!(*st as u8 as usize, i);
            assert_eq!(Status::try_from(*st as u8), Ok(*st));
        }
        assert_eq!(Status::try_from(0x0f), Err(0x0f));
        assert_eq!(Status::NotStored.to_string(), "NOT_STORED");
        assert_eq!(Status::Exists.to_string(), "EXISTS");
        assert!(Status::NotStored.carries_message() && Status::Exists.carries_message());
    }
}
