//! One client connection: read what the socket has, answer every whole frame into
//! one output buffer, write that buffer once. Memory is bounded: the input by the
//! frame limit (the protocol crate's [`FrameBuffer`] never stores more than one
//! frame plus a read), the output by [`OUT_CAP`] plus one answer, past which the
//! connection stops reading until the client has taken its answers.

use std::io::{self, Read, Write};

use groupcached_protocol::{DecodeError, Frame, FrameBuffer, Limits};
use mio::net::TcpStream;

use crate::answer::Answers;

/// Largest frame (its length prefix) accepted; a larger one is answered
/// `TOO_LARGE` and its connection closed (groupcached would skip it and go on; the
/// echo has no use for such frames, and closing keeps it simple and bounded).
pub const MAX_FRAME: usize = 1 << 20;

/// Answers queued past this stop the reading (and decoding) until they are written.
pub const OUT_CAP: usize = 1 << 20;

/// The read buffer's size between large frames.
const IN_INITIAL: usize = 16 * 1024;

/// The output buffer's capacity kept once it drained; a larger one is given back.
const OUT_KEEP: usize = 64 * 1024;

/// Whether a connection goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next event.
    Keep,
    /// Done (the client left, an I/O error, or a bad frame was answered): close it.
    Close,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    input: FrameBuffer,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// Reading stopped because `out` reached [`OUT_CAP`]; it resumes once written.
    paused: bool,
    /// The client closed its side: answer what arrived, then close.
    eof: bool,
    /// A frame that ends the connection was answered: write, then close.
    closing: bool,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            input: FrameBuffer::new(Limits::with_max_frame(MAX_FRAME), IN_INITIAL),
            out: Vec::with_capacity(OUT_KEEP),
            written: 0,
            paused: false,
            eof: false,
            closing: false,
        }
    }

    /// Handles a readiness event: reads (if `readable`) until the socket is drained,
    /// answering every whole frame as it comes, then writes the answers in one go.
    /// `hangup`: the event also reported the client's FIN, which a short read would
    /// not reach, so read to the end.
    pub fn ready(&mut self, answers: &Answers, readable: bool, hangup: bool) -> Next {
        let mut read = readable;
        loop {
            if read && self.read_and_answer(answers, hangup).is_err() {
                return Next::Close;
            }
            match self.flush() {
                Err(_) => return Next::Close,
                Ok(false) => return Next::Keep, // the rest goes on a writable event
                Ok(true) => {}
            }
            if self.closing || self.eof {
                return Next::Close;
            }
            if !self.paused {
                return Next::Keep;
            }
            // Everything was written: take up the frames and bytes left waiting.
            self.paused = false;
            read = true;
        }
    }

    /// Answers the frames already buffered, then reads and answers until the socket
    /// is drained, the client closed its side, or the output is full.
    fn read_and_answer(&mut self, answers: &Answers, hangup: bool) -> io::Result<()> {
        self.answer_buffered(answers);
        while !(self.paused || self.closing || self.eof) {
            let space = self.input.read_space();
            let offered = space.len();
            match self.stream.read(space) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.input.commit(n);
                    self.answer_buffered(answers);
                    if n < offered && !hangup {
                        // The socket is empty; new bytes raise a new edge, so the
                        // read that would only say WouldBlock is skipped.
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Answers whole frames until none is left, the output is full (then reading
    /// pauses) or a frame ends the connection.
    fn answer_buffered(&mut self, answers: &Answers) {
        while !self.closing {
            if self.out.len() - self.written >= OUT_CAP {
                self.paused = true;
                return;
            }
            match self.input.next_frame() {
                Ok(None) => return,
                Ok(Some(Frame::Request(req))) => answers.request(&req, &mut self.out),
                Ok(Some(Frame::Response(resp))) => {
                    // A client that sends responses speaks something else: as
                    // groupcached does, answer and close.
                    answers.not_a_request(&resp, &mut self.out);
                    self.closing = true;
                }
                Err(e) => {
                    answers.refuse(&e, &mut self.out);
                    self.closing =
                        e.error.is_fatal() || matches!(e.error, DecodeError::FrameTooLarge { .. });
                }
            }
        }
    }

    /// Writes the queued answers. `Ok(true)`: all written; `Ok(false)`: the socket
    /// is full, the rest waits for a writable event.
    fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > OUT_KEEP {
            self.out.shrink_to(OUT_KEEP);
        }
        Ok(true)
    }
}
