//! One way to do I/O on a connection, for client connections (`crate::core`) and
//! peer connections (`crate::peer`) alike: [`read_into`] reads a non-blocking socket
//! into a frame buffer, [`OutQueue`] queues frames and writes them with vectored
//! writes, and a [`Waiter`] addresses the request an answer is for.
//!
//! Below `peer` and `core` in the module layers (see the crate docs): it knows
//! sockets and frames, nothing of shards, peers or the event loop.

mod io;
mod out_queue;
mod waiter;

pub use io::{read_into, ReadSpace, ReadStep};
pub use out_queue::{Flushed, OutQueue};
pub use waiter::{Waiter, FLUSH_ACK_OPCODE, MEMCACHE_OPCODE};

/// A writer that keeps everything an [`OutQueue`] writes, for tests that decode it.
#[cfg(test)]
pub(crate) struct Sink(pub Vec<u8>);

#[cfg(test)]
impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        bufs.iter().map(|b| self.write(b)).sum()
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
