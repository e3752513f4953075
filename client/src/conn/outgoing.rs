//! What a request costs on the wire and whether it may be sent: its encoded length,
//! its fields checked against the protocol's limits and the frame limit, and the
//! vectored write that sends a header and a large value without copying them
//! together.

use std::io::{self, IoSlice, Write};

use groupcached_protocol::{
    RequestKind, HEADER_LEN, LENGTH_PREFIX_LEN, MAX_GROUP_LEN, MAX_KEY_LEN, MAX_NODE_ID_LEN,
};

use crate::error::{Error, Result};

/// Writes all of `parts`, in order, with as few `write_vectored` calls as the writer
/// allows, continuing after partial writes.
pub(crate) fn write_all_vectored<W: Write>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the socket accepted no bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes `kind` takes on the wire, length prefix included.
pub(crate) fn encoded_len(kind: &RequestKind<'_>) -> usize {
    let key_ref = |k: &groupcached_protocol::KeyRef<'_>| 1 + k.group.len() + 2 + k.key.len();
    HEADER_LEN
        + match kind {
            RequestKind::Get(k)
            | RequestKind::Delete(k)
            | RequestKind::Fetch(k)
            | RequestKind::Invalidate(k)
            | RequestKind::Purge(k)
            | RequestKind::FetchItem(k) => key_ref(k),
            RequestKind::Mutate { key, value, .. } => {
                key_ref(key) + 1 + 4 + 8 + 8 + 8 + value.len()
            }
            RequestKind::Flush { group } => 1 + group.len(),
            RequestKind::Set { key, value, .. } | RequestKind::Store { key, value, .. } => {
                key_ref(key) + 8 + value.len()
            }
            RequestKind::Stats => 0,
            RequestKind::Ping(payload) => payload.len(),
            RequestKind::Hello { node_id, .. } => 1 + node_id.len() + 8,
            RequestKind::Challenge { nonce: field } | RequestKind::Auth { proof: field } => {
                field.len()
            }
            RequestKind::Shard { .. } => 2,
        }
}

/// Refuses, before anything is sent, a request the server would refuse anyway or
/// that could not be encoded: an empty or too long group or key, a too long node
/// id, or a frame over `max_frame`.
pub(crate) fn validate(kind: &RequestKind<'_>, max_frame: usize) -> Result<()> {
    if let Some(k) = kind.key_ref() {
        check_len("group", k.group.len(), MAX_GROUP_LEN)?;
        check_len("key", k.key.len(), MAX_KEY_LEN)?;
    }
    match kind {
        RequestKind::Flush { group } => check_len("group", group.len(), MAX_GROUP_LEN)?,
        RequestKind::Hello { node_id, .. } if node_id.len() > MAX_NODE_ID_LEN => {
            return Err(Error::InvalidArgument(format!(
                "node id of {} bytes is longer than {MAX_NODE_ID_LEN}",
                node_id.len()
            )));
        }
        _ => {}
    }
    let frame = encoded_len(kind) - LENGTH_PREFIX_LEN;
    if frame > max_frame {
        return Err(Error::InvalidArgument(format!(
            "{} frame of {frame} bytes is over the limit of {max_frame} bytes",
            kind.opcode()
        )));
    }
    Ok(())
}

fn check_len(what: &str, len: usize, max: usize) -> Result<()> {
    if len == 0 {
        Err(Error::InvalidArgument(format!("{what} is empty")))
    } else if len > max {
        Err(Error::InvalidArgument(format!(
            "{what} of {len} bytes is longer than {max}"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::{KeyRef, Request, DEFAULT_MAX_FRAME};

    /// A writer that accepts at most `chunk` bytes per call, gathering across slices
    /// as a socket does, and fails every third call with `Interrupted`, to exercise
    /// every partial-write path.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
            }
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.chunk - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_write_survives_partial_writes_and_interrupts() {
        let head = b"0123456789";
        let value: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for chunk in [1, 3, 7, 10, 11, 999, 5000] {
            let mut w = Trickle {
                out: Vec::new(),
                chunk,
                calls: 0,
            };
            write_all_vectored(&mut w, &[head, &[], &value]).expect("all written");
            let mut want = head.to_vec();
            want.extend_from_slice(&value);
            assert_eq!(w.out, want, "chunk {chunk}");
        }
    }

    #[test]
    fn encoded_len_matches_the_encoder() {
        let value = vec![1u8; 300];
        let kinds = [
            RequestKind::Get(KeyRef::new(b"g", b"key")),
            RequestKind::Set {
                key: KeyRef::new(b"group", b"k"),
                ttl_ms: 5,
                value: &value,
            },
            RequestKind::Delete(KeyRef::new(b"g", b"k")),
            RequestKind::Stats,
            RequestKind::Ping(b"12345678"),
            RequestKind::Hello {
                node_id: b"me",
                ring_fingerprint: 7,
            },
        ];
        for kind in kinds {
            let mut out = Vec::new();
            Request { id: 1, kind }.encode(&mut out);
            assert_eq!(encoded_len(&kind), out.len(), "{kind:?}");
        }
    }

    #[test]
    fn validation_refuses_bad_lengths_and_big_frames() {
        let long_key = vec![b'k'; MAX_KEY_LEN + 1];
        let max_key = vec![b'k'; MAX_KEY_LEN];
        let long_group = vec![b'g'; MAX_GROUP_LEN + 1];
        let bad = [
            RequestKind::Get(KeyRef::new(b"g", b"")),
            RequestKind::Get(KeyRef::new(b"", b"k")),
            RequestKind::Get(KeyRef::new(b"g", &long_key)),
            RequestKind::Delete(KeyRef::new(&long_group, b"k")),
            RequestKind::Set {
                key: KeyRef::new(b"g", b""),
                ttl_ms: 0,
                value: b"v",
            },
        ];
        for kind in bad {
            assert!(
                matches!(
                    validate(&kind, DEFAULT_MAX_FRAME),
                    Err(Error::InvalidArgument(_))
                ),
                "{kind:?}"
            );
        }
        assert!(validate(
            &RequestKind::Get(KeyRef::new(b"g", &max_key)),
            DEFAULT_MAX_FRAME
        )
        .is_ok());

        // The limit applies to the length prefix's value: header (8) + body.
        let value = vec![0u8; 100];
        let set = RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &value,
        };
        let frame = encoded_len(&set) - LENGTH_PREFIX_LEN;
        assert!(validate(&set, frame).is_ok());
        assert!(matches!(
            validate(&set, frame - 1),
            Err(Error::InvalidArgument(_))
        ));
    }
}
