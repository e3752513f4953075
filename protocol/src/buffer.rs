//! An incremental read buffer: bytes go in as a socket returns them, whole frames come out.

use crate::decode::decode;
use crate::error::FrameError;
use crate::frame::Frame;
use crate::header::{Header, HEADER_LEN};
use crate::limits::Limits;

/// The smallest free space offered to a read, so reads are never uselessly tiny.
pub const MIN_READ: usize = 4096;

/// The largest single growth of the buffer. Below it the buffer doubles when full;
/// above it, it grows by this much at a time, so its size follows the bytes that
/// actually arrived and never what a header merely declares.
pub const MAX_GROW_STEP: usize = 4 << 20;

/// Read buffer for one connection. Feed it with [`FrameBuffer::read_space`] and
/// [`FrameBuffer::commit`], then take frames with [`FrameBuffer::next_frame`] until it
/// returns `Ok(None)`.
///
/// Memory follows the bytes received, never what a header declares:
///
/// - the buffer starts at `initial` bytes and grows only when it is full and the frame
///   at its front is still incomplete, by doubling in steps of at most
///   [`MAX_GROW_STEP`], and never past that frame's length plus [`MIN_READ`];
/// - it shrinks (see [`FrameBuffer::trim`]) when it holds less than a quarter of its
///   size, and goes back to `initial` once drained;
/// - so after each [`FrameBuffer::read_space`] its size is at most
///   `max(initial, 4 * buffered + 2 * MIN_READ)` for the `buffered` bytes it held,
///   and never more than `max(initial, max_frame + 4 + 2 * MIN_READ)`;
/// - a frame that declares more than `max_frame` is skipped as it arrives instead of
///   being stored.
///
/// The caller must take every whole frame out before reading more: the buffer only
/// grows for the incomplete frame at its front.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    skip: usize,
    limits: Limits,
    initial: usize,
    frames: u64,
}

impl FrameBuffer {
    /// An empty buffer that starts at `initial` bytes (at least 2 × [`MIN_READ`]) and
    /// decodes under `limits`. Nothing is allocated until the first read.
    pub fn new(limits: Limits, initial: usize) -> Self {
        let initial = initial.max(2 * MIN_READ);
        FrameBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            skip: 0,
            limits,
            initial,
            frames: 0,
        }
    }

    /// Free space to read into: at least [`MIN_READ`] bytes. The buffer grows only
    /// when it is full of an incomplete frame (see the type's documentation).
    pub fn read_space(&mut self) -> &mut [u8] {
        self.trim();
        if self.buf.is_empty() {
            self.buf = vec![0; self.initial];
        }
        if self.buf.len() - self.end < MIN_READ {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < MIN_READ {
                let next = self.next_len();
                self.buf.resize(next, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Whether the next [`FrameBuffer::read_space`] would enlarge the buffer beyond
    /// both its current size and `initial`: a caller that bounds memory can hold
    /// back such a connection while allowing reads that need no more memory.
    pub fn needs_growth(&self) -> bool {
        if self.buf.len().saturating_sub(self.end) >= MIN_READ {
            return false;
        }
        // After compaction the buffered bytes sit at the front.
        let buffered = self.end - self.start;
        if self.buf.len().max(self.initial) - buffered >= MIN_READ {
            return false;
        }
        self.grown_len(buffered, self.buf.len()) > self.buf.len().max(self.initial)
    }

    /// The size a full buffer grows to: double, by at most [`MAX_GROW_STEP`], and no
    /// more than the frame at the front needs (plus one read).
    fn next_len(&self) -> usize {
        self.grown_len(self.end - self.start, self.buf.len())
    }

    fn grown_len(&self, buffered: usize, len: usize) -> usize {
        let step = len.clamp(MIN_READ, MAX_GROW_STEP);
        let need = self.pending_frame_len().max(buffered) + MIN_READ;
        (len + step).min(need).max(len)
    }

    /// Gives back memory a large frame needed once it is no longer needed: an empty
    /// buffer larger than `initial` is freed (the next read allocates `initial`), and
    /// a buffer at least four times larger than what it holds moves that to one of
    /// `max(initial, 2 * buffered + MIN_READ)` bytes. Called by
    /// [`FrameBuffer::read_space`]; a caller that stops reading (backpressure) calls it
    /// after decoding, so a drained large buffer is not kept while it waits.
    pub fn trim(&mut self) {
        let buffered = self.end - self.start;
        if buffered == 0 {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.initial {
                self.buf = Vec::new();
            }
            return;
        }
        if self.buf.len() > self.initial && buffered * 4 <= self.buf.len() {
            let len = self.initial.max(2 * buffered + MIN_READ);
            if len < self.buf.len() {
                let mut small = vec![0; len];
                small[..buffered].copy_from_slice(&self.buf[self.start..self.end]);
                self.buf = small;
                self.start = 0;
                self.end = buffered;
            }
        }
    }

    /// Frees the whole buffer if it holds no bytes (for connections that went quiet:
    /// an idle connection then costs no buffer memory). The next read allocates
    /// `initial` bytes again.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.buf = Vec::new();
        }
    }

    /// Records that `n` bytes were read into the space from [`FrameBuffer::read_space`].
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Appends bytes (for callers that do not read straight into the buffer).
    pub fn extend_from_slice(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let space = self.read_space();
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            self.commit(n);
            data = &data[n..];
        }
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or an error. After a
    /// non-fatal error ([`FrameError::skip`] is `Some`) the bad frame is skipped and
    /// decoding can go on; after a fatal one the stream is unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(self.end - self.start);
            self.start += n;
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let FrameBuffer {
            buf,
            start,
            end,
            skip,
            limits,
            frames,
            ..
        } = self;
        match decode(&buf[*start..*end], limits) {
            Ok(Some((frame, used))) => {
                *start += used;
                *frames += 1;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                *frames += 1;
                if let Some(n) = e.skip {
                    let avail = *end - *start;
                    if n <= avail {
                        *start += n;
                    } else {
                        *skip = n - avail;
                        *start = *end;
                    }
                }
                Err(e)
            }
        }
    }

    /// Hands each whole, well-formed frame buffered, starting with the one
    /// [`FrameBuffer::next_frame`] would return next, in order, to `f`, without
    /// taking any out, while `f` returns true; stops at the first incomplete or bad
    /// frame. For a caller that wants to look ahead (e.g. to prefetch what the frames
    /// will touch) before handling them one by one. Costs a second decode of each
    /// frame's header.
    pub fn peek_frames(&self, mut f: impl FnMut(&Frame<'_>) -> bool) {
        if self.skip > 0 {
            return;
        }
        let mut at = self.start;
        while let Ok(Some((frame, used))) = decode(&self.buf[at..self.end], &self.limits) {
            if !f(&frame) {
                return;
            }
            at += used;
        }
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Whether part of a frame has arrived and the rest has not: bytes are buffered,
    /// or an oversized frame is still being skipped. A caller limits how long a
    /// frame may take with this.
    pub fn in_frame(&self) -> bool {
        self.end > self.start || self.skip > 0
    }

    /// Frames taken out so far, good or bad (each [`FrameBuffer::next_frame`] that
    /// returned a frame or an error). A change means a frame was completed.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The header of the incomplete frame at the front, once it has arrived (so an
    /// error about that frame can name its request id and opcode).
    pub fn pending_header(&self) -> Option<Header> {
        Header::peek(&self.buf[self.start..self.end])
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The limits this buffer decodes under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Length of the frame at the front if its header is buffered and within the limit.
    fn pending_frame_len(&self) -> usize {
        match Header::peek(&self.buf[self.start..self.end]) {
            Some(h) if (h.len as usize) <= self.limits.max_frame => h.frame_len(),
            _ => HEADER_LEN,
        }
    }
}

// The tests (unit and proptest) are in buffer/tests.rs, as long as the code.
#[cfg(test)]
mod tests;
