//! How an answer finds the request it answers, across cores: a [`Waiter`] names the
//! core, the connection (slab slot and generation) and the request id. Plain data,
//! so it can wait in a shard's in-flight table on another core or in a peer
//! connection's table of requests sent.

/// Who gets a reply: a request on a connection of some core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// Core that owns the connection.
    pub core: u16,
    /// The connection's slab key on that core.
    pub token: u32,
    /// The connection's generation, so a reply never reaches a later connection that
    /// reused the slot.
    pub conn_gen: u32,
    /// Request id to answer.
    pub req_id: u32,
    /// Opcode to echo.
    pub opcode: u8,
}

/// The `opcode` of a [`Waiter`] for a memcached front-end request: no opcode of the
/// binary protocol has it. Its `req_id` is then the request's slot in its
/// connection's reply order (see `core::memcache`).
pub const MEMCACHE_OPCODE: u8 = 0xff;

/// The `opcode` of a [`Waiter`] that is no request but one core's part of a member's
/// FLUSH: its `token` names the flush in the receiving core's table of flushes.
pub const FLUSH_ACK_OPCODE: u8 = 0xfe;

impl Waiter {
    /// Whether this waiter is a memcached front-end request.
    #[inline]
    pub fn is_memcache(&self) -> bool {
        self.opcode == MEMCACHE_OPCODE
    }
}
