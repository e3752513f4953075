//! An incremental read buffer: bytes go in as a socket returns them, whole frames come out.

use crate::decode::decode;
use crate::error::FrameError;
use crate::frame::Frame;
use crate::header::{Header, HEADER_LEN};
use crate::limits::Limits;

/// The smallest free space offered to a read, so reads are never uselessly tiny.
const MIN_READ: usize = 4096;

/// Read buffer for one connection. Feed it with [`FrameBuffer::read_space`] and
/// [`FrameBuffer::commit`], then take frames with [`FrameBuffer::next_frame`] until it
/// returns `Ok(None)`.
///
/// Memory stays bounded: the buffer grows only to hold one frame that its header
/// declares within the limit, an oversized frame is skipped as it arrives instead of
/// being stored, and a buffer that grew for a large frame shrinks back once drained.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    skip: usize,
    limits: Limits,
    initial: usize,
}

impl FrameBuffer {
    /// An empty buffer that starts at `initial` bytes and decodes under `limits`.
    pub fn new(limits: Limits, initial: usize) -> Self {
        let initial = initial.max(2 * MIN_READ);
        FrameBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            skip: 0,
            limits,
            initial,
        }
    }

    /// Free space to read into; at least [`MIN_READ`] bytes, and enough for the rest of
    /// a frame whose header is already buffered.
    pub fn read_space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.initial * 4 {
                self.buf = Vec::new();
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.initial];
        }
        // Room from `start` for the frame being received (or what is buffered) plus a read.
        let want = self.pending_frame_len().max(self.end - self.start) + MIN_READ;
        if self.buf.len() - self.start < want {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < want {
                let grown = (self.buf.len() * 2).clamp(want, want + self.initial * 4);
                self.buf.resize(grown, 0);
            }
        }
        &mut self.buf[self.end..]
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
            ..
        } = self;
        match decode(&buf[*start..*end], limits) {
            Ok(Some((frame, used))) => {
                *start += used;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
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

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.end - self.start
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{KeyRef, Request, RequestKind};
    use crate::DecodeError;

    fn get(id: u32, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Request {
            id,
            kind: RequestKind::Get(KeyRef::new(b"g", key)),
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn yields_frames_fed_one_byte_at_a_time() {
        let mut bytes = get(1, b"alpha");
        bytes.extend(get(2, b"beta"));
        let mut fb = FrameBuffer::new(Limits::default(), 0);
        let mut ids = Vec::new();
        for b in bytes {
            fb.extend_from_slice(&[b]);
            while let Some(f) = fb.next_frame().unwrap() {
                ids.push(f.id());
            }
        }
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(fb.buffered(), 0);
    }

    #[test]
    fn oversized_frame_is_skipped_without_being_stored() {
        let limits = Limits::with_max_frame(100);
        let mut fb = FrameBuffer::new(limits, 0);
        let mut big = Vec::new();
        Request {
            id: 7,
            kind: RequestKind::Set {
                key: KeyRef::new(b"g", b"k"),
                ttl_ms: 0,
                value: &[0xaa; 10_000],
            },
        }
        .encode(&mut big);
        big.extend(get(8, b"after"));
        let mut errors = Vec::new();
        let mut ids = Vec::new();
        for chunk in big.chunks(1000) {
            fb.extend_from_slice(chunk);
            assert!(
                fb.capacity() < 64 * 1024,
                "buffer grew to {}",
                fb.capacity()
            );
            loop {
                match fb.next_frame() {
                    Ok(Some(f)) => ids.push(f.id()),
                    Ok(None) => break,
                    Err(e) => errors.push(e),
                }
            }
        }
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].request_id, 7);
        assert!(matches!(
            errors[0].error,
            DecodeError::FrameTooLarge { max: 100, .. }
        ));
        assert_eq!(ids, vec![8]);
    }

    #[test]
    fn large_frame_within_limit_grows_then_shrinks() {
        let mut fb = FrameBuffer::new(Limits::default(), 4096);
        let mut bytes = Vec::new();
        let value = vec![7u8; 1 << 20];
        Request {
            id: 1,
            kind: RequestKind::Set {
                key: KeyRef::new(b"g", b"k"),
                ttl_ms: 5,
                value: &value,
            },
        }
        .encode(&mut bytes);
        fb.extend_from_slice(&bytes);
        match fb.next_frame().unwrap() {
            Some(Frame::Request(Request {
                kind: RequestKind::Set { value: v, .. },
                ..
            })) => assert_eq!(v, &value[..]),
            other => panic!("unexpected {other:?}"),
        }
        fb.read_space();
        assert!(fb.capacity() <= 4096 * 4);
    }
}
