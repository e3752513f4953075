//! Reading a non-blocking socket into a connection's [`FrameBuffer`]: the one read
//! step that client connections (the core) and peer connections share. Writing is
//! [`OutQueue::write_to`](super::OutQueue::write_to).

use std::io::{self, Read};

use groupcached_protocol::FrameBuffer;

/// What one read from a non-blocking socket did.
#[derive(Debug)]
pub enum ReadStep {
    /// Bytes were added to the buffer; `short` says the socket gave less than the
    /// buffer had room for, so it is most likely drained (edge-triggered readiness
    /// raises a new event when more arrives).
    Data {
        /// Fewer bytes than the room offered.
        short: bool,
    },
    /// The other end closed its sending side.
    Closed,
    /// Nothing to read now.
    WouldBlock,
    /// The socket failed (reset, ...): nothing more can be read or written.
    Failed(io::Error),
}

/// A read buffer a socket can fill: free space offered to a read, then what arrived
/// committed. The native connections' [`FrameBuffer`] and the memcached front
/// end's line buffer are both one.
pub trait ReadSpace {
    /// Free space to read into (never empty).
    fn read_space(&mut self) -> &mut [u8];
    /// Marks `n` bytes of that space as filled.
    fn commit(&mut self, n: usize);
}

impl ReadSpace for FrameBuffer {
    fn read_space(&mut self) -> &mut [u8] {
        FrameBuffer::read_space(self)
    }
    fn commit(&mut self, n: usize) {
        FrameBuffer::commit(self, n)
    }
}

/// Reads once from `stream` into `rbuf`'s free space (retrying a read interrupted
/// by a signal) and commits what arrived.
pub fn read_into<R: Read, B: ReadSpace>(stream: &mut R, rbuf: &mut B) -> ReadStep {
    loop {
        let space = rbuf.read_space();
        let room = space.len();
        match stream.read(space) {
            Ok(0) => return ReadStep::Closed,
            Ok(n) => {
                rbuf.commit(n);
                return ReadStep::Data { short: n < room };
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadStep::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadStep::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::Limits;

    /// A reader that hands out its chunks one per call, then would block.
    struct Chunks(Vec<io::Result<Vec<u8>>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let c = self.0.remove(0)?;
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    #[test]
    fn reads_commit_retry_interrupts_and_report_the_end() {
        let mut rbuf = FrameBuffer::new(Limits::default(), 64);
        let mut r = Chunks(vec![
            Err(io::ErrorKind::Interrupted.into()),
            Ok(b"abc".to_vec()),
            Ok(Vec::new()),
        ]);
        assert!(matches!(
            read_into(&mut r, &mut rbuf),
            ReadStep::Data { short: true }
        ));
        assert_eq!(rbuf.buffered(), 3);
        assert!(matches!(read_into(&mut r, &mut rbuf), ReadStep::Closed));
        assert!(matches!(read_into(&mut r, &mut rbuf), ReadStep::WouldBlock));
        let mut bad = Chunks(vec![Err(io::ErrorKind::ConnectionReset.into())]);
        assert!(matches!(
            read_into(&mut bad, &mut rbuf),
            ReadStep::Failed(_)
        ));
    }
}
