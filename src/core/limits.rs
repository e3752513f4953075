//! What one core enforces on its client connections' memory and time: the sweep
//! that closes connections past `--idle-timeout` or `--frame-timeout` and frees
//! idle buffers, the incremental count of buffer memory, and pausing and resuming
//! reads under `--max-buffer-memory` (with the one grant that lets a large frame
//! complete).

use std::sync::atomic::Ordering;
use std::time::Duration;

use groupcached_protocol::{Response, Status};

use super::conn::{Conn, ConnLimits, RELEASE_IDLE_BUFFERS_AFTER};
use super::Core;
use crate::shared::Shared;

impl Core {
    /// The other cores' published connection buffer totals.
    pub(super) fn others_buffered(&self) -> usize {
        let me = self.ctx.id;
        self.ctx
            .shared
            .registry
            .cores
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .map(|(_, c)| c.node.conn_buffer_bytes.get() as usize)
            .sum()
    }

    /// Resumes the connections the buffer memory limit paused once usage is back
    /// under 7/8 of the limit (the gap keeps them from flapping).
    pub(super) fn resume_mem_paused(&mut self) {
        if self.mem_paused.is_empty() || self.ctx.draining {
            return;
        }
        let low = self.limits.max_buffer_memory / 8 * 7;
        let freed = std::mem::take(&mut self.grant_freed);
        if self.buffered + self.others > low && !(freed && self.grant.is_none()) {
            return;
        }
        for token in std::mem::take(&mut self.mem_paused) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            if !conn.mem_paused {
                continue;
            }
            conn.mem_paused = false;
            conn.read_paused = false;
            // Its frame waited for memory, not for its client.
            if conn.frame_started.is_some() {
                conn.frame_started = Some(self.ctx.now);
            }
            self.read_conn(token, false);
        }
    }

    /// Once per [`ConnLimits::sweep_interval`]: closes connections past their idle
    /// or frame timeout, and frees the empty buffers of connections that went quiet.
    pub(super) fn sweep(&mut self) {
        let now = self.ctx.now;
        self.next_sweep = now + self.limits.sweep_interval();
        let mut expired: Vec<(usize, Expiry)> = Vec::new();
        for (token, conn) in self.conns.iter_mut() {
            if conn.closing {
                // Closing after a fatal error, once its error frame is written: a
                // client that does not take it is not waited for forever.
                let linger = self.limits.frame_timeout.unwrap_or(CLOSING_LINGER);
                if now.saturating_duration_since(conn.last_active) >= linger {
                    expired.push((token, Expiry::Linger));
                }
                continue;
            }
            if let (Some(limit), Some(since)) = (self.limits.frame_timeout, conn.frame_started) {
                if conn.read_paused && !conn.mem_paused {
                    // Paused because its client does not read its answers: the
                    // frame's clock waits with it.
                    conn.frame_started = Some(now);
                } else if now.saturating_duration_since(since) >= limit {
                    expired.push((token, Expiry::Frame));
                    continue;
                }
            }
            let quiet = now.saturating_duration_since(conn.last_active);
            if let Some(limit) = self.limits.idle_timeout {
                if conn.pending == 0 && quiet >= limit {
                    expired.push((token, Expiry::Idle));
                    continue;
                }
            }
            if quiet >= RELEASE_IDLE_BUFFERS_AFTER && conn.out.is_empty() {
                conn.release_idle();
                account(&mut self.buffered, conn);
            }
        }
        for (token, why) in expired {
            match why {
                Expiry::Frame => {
                    self.ctx.stats.node.frame_timeouts.inc();
                    self.close_frame_timeout(token);
                }
                Expiry::Idle => {
                    self.ctx.stats.node.idle_timeouts.inc();
                    log::debug!(
                        "core {}: closing a connection idle for --idle-timeout",
                        self.ctx.id
                    );
                    self.close(token);
                }
                Expiry::Linger => self.close(token),
            }
        }
    }

    /// Tells a connection whose frame did not arrive in time why it is closed (one
    /// non-blocking write of a TIMEOUT frame with that frame's request id), then
    /// closes it.
    pub(super) fn close_frame_timeout(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let limit = self.limits.frame_timeout.unwrap_or_default();
        let (id, opcode) = conn
            .rbuf
            .pending_header()
            .map_or((0, 0), |h| (h.request_id, h.opcode));
        let msg = format!(
            "frame not received whole within --frame-timeout ({}ms); closing",
            limit.as_millis()
        );
        log::debug!("core {}: {msg}", self.ctx.id);
        match &mut conn.mc {
            // Never a binary frame on the memcached port; after the answers so far.
            Some(mc) => {
                let line = format!(
                    "SERVER_ERROR request not received whole within --frame-timeout ({}ms)\r\n",
                    limit.as_millis()
                );
                mc.slots
                    .immediate(&mut conn.out, |b| b.extend_from_slice(line.as_bytes()));
            }
            None => conn
                .out
                .push_response(&Response::error(id, opcode, Status::Timeout, &msg), None),
        }
        let _ = conn.out.write_to(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        self.close(token);
    }
}

/// Why the sweep closes a connection.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// A frame did not arrive whole within `--frame-timeout`.
    Frame,
    /// Nothing happened for `--idle-timeout`.
    Idle,
    /// Closing after a fatal error, its client took none of its remaining output
    /// for `--frame-timeout` (or [`CLOSING_LINGER`] with that off).
    Linger,
}

/// How long a connection closing after a fatal error waits, when `--frame-timeout`
/// is off, for its client to take its remaining output before it is closed anyway.
const CLOSING_LINGER: Duration = Duration::from_secs(30);

/// A connection's share of `--max-buffer-memory`: the limit over the node's open
/// connections.
pub(super) fn fair(limits: &ConnLimits, shared: &Shared) -> usize {
    limits.max_buffer_memory / shared.connections.load(Ordering::Relaxed).max(1)
}

/// Takes the grow-past-the-limit grant back from `conn` once the frame it was given
/// for is complete (or nothing is in progress any more), or once the connection is
/// paused because its client does not read (it must not hold the grant meanwhile).
pub(super) fn release_grant(
    grant: &mut Option<(usize, u64)>,
    freed: &mut bool,
    token: usize,
    conn: &Conn,
) {
    if let Some((t, frames)) = *grant {
        let done = conn.inputs() != frames || !conn.in_input();
        if t == token && (done || conn.read_paused) {
            *grant = None;
            *freed = true;
        }
    }
}

/// Brings a core's total of connection buffer memory up to date with `conn`'s.
pub(super) fn account(total: &mut usize, conn: &mut Conn) {
    let now = conn.mem();
    *total = *total + now - conn.accounted;
    conn.accounted = now;
}
