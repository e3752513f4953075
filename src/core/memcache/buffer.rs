//! A memcached connection's read buffer: plain bytes, consumed from the front as
//! requests are parsed (the memcached protocols have no frames to size it by).
//!
//! Memory follows the bytes received, as [`groupcached_protocol::FrameBuffer`]'s does:
//! the buffer starts at [`INITIAL`] bytes, grows only when it is full of an
//! unfinished request (by doubling, and never past what the parser said that request
//! needs plus one read), and goes back to [`INITIAL`] once drained. So it never
//! holds more than `max(INITIAL, longest request + 2 * MIN_READ)` bytes, where the
//! longest request is a storage line (at most the parser's line limit) plus its data
//! block (at most `--max-item-size` + 2: a larger one is refused and skipped as it
//! arrives, never stored).

use crate::net::ReadSpace;

/// Initial (and steady) size of the buffer.
pub const INITIAL: usize = 16 * 1024;
/// The smallest free space offered to a read.
const MIN_READ: usize = 4096;
/// The largest single growth.
const MAX_GROW_STEP: usize = 4 << 20;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// What the parser last said the request at the front needs in all (0: nothing).
    need: usize,
    /// Requests taken out so far (the connection's activity clock).
    requests: u64,
}

impl LineBuffer {
    /// The bytes not yet parsed.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops `n` parsed bytes from the front.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Counts one request taken out.
    #[inline]
    pub fn took_request(&mut self) {
        self.requests += 1;
        self.need = 0;
    }

    /// The parser needs `need` bytes in all for the request at the front.
    #[inline]
    pub fn reserve_total(&mut self, need: usize) {
        self.need = need;
    }

    /// Bytes not yet parsed.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Requests taken out so far.
    #[inline]
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes allocated.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Whether the next read would enlarge the buffer past its size and [`INITIAL`].
    pub fn needs_growth(&self) -> bool {
        if self.buf.len().saturating_sub(self.end) >= MIN_READ {
            return false;
        }
        // After compaction the buffered bytes sit at the front.
        let size = self.buf.len().max(INITIAL);
        if size.saturating_sub(self.buffered()) >= MIN_READ {
            return false;
        }
        self.grown_len() > size
    }

    fn grown_len(&self) -> usize {
        let len = self.buf.len();
        let step = len.clamp(MIN_READ, MAX_GROW_STEP);
        let need = self.need.max(self.buffered()) + MIN_READ;
        (len + step).min(need).max(len)
    }

    /// Gives back a drained buffer larger than [`INITIAL`], and moves a buffer four
    /// times larger than what it holds to a smaller one.
    pub fn trim(&mut self) {
        let buffered = self.buffered();
        if buffered == 0 {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > INITIAL {
                self.buf = Vec::new();
            }
            return;
        }
        if self.buf.len() > INITIAL && self.buf.len() >= 4 * buffered {
            let len = INITIAL
                .max(2 * buffered + MIN_READ)
                .max(self.need + MIN_READ);
            if len < self.buf.len() {
                let mut next = vec![0; len];
                next[..buffered].copy_from_slice(self.data());
                self.buf = next;
                self.start = 0;
                self.end = buffered;
            }
        }
    }

    /// Frees the buffer if it holds nothing (an idle connection costs none).
    pub fn release_if_empty(&mut self) {
        if self.buffered() == 0 {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}

impl ReadSpace for LineBuffer {
    fn read_space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; INITIAL];
        }
        if self.buf.len() - self.end < MIN_READ {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < MIN_READ {
                let next = self.grown_len().max(self.end + MIN_READ);
                self.buf.resize(next, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_for_what_the_request_needs_and_shrinks_when_drained() {
        let mut b = LineBuffer::default();
        let n = b.read_space().len();
        assert_eq!(n, INITIAL);
        b.commit(INITIAL - 100);
        b.reserve_total(100_000);
        assert!(b.needs_growth());
        let room = b.read_space().len();
        assert!(room >= MIN_READ);
        assert!(b.capacity() <= 100_000 + MIN_READ);
        b.consume(b.buffered());
        b.trim();
        assert_eq!(b.capacity(), 0);
    }
}
