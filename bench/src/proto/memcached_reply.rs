//! The reply parser both memcached dialects share: meta commands and classic text
//! differ only in the words they use, which a [`Dialect`] lists.

use super::{
    first_line, lossy, memcached_error, parse_len, ByteBuf, Outcome, ProtoError, Reply, MAX_VALUE,
};
use crate::workload::Op;

/// The words of one memcached reply dialect.
pub(crate) struct Dialect {
    /// How a hit's header line starts (`VA ` or `VALUE `).
    pub value_prefix: &'static [u8],
    /// Which space-separated field after the prefix is the value's length.
    pub len_field: usize,
    /// A line that must follow a hit's data before the hit is complete (`END`).
    pub end_line: Option<&'static [u8]>,
    /// Every other reply line this client understands, and what it means.
    pub statuses: &'static [(&'static [u8], Op, Outcome)],
}

/// The next complete reply in `buf` (consumed), `Ok(None)` if it is not complete yet.
pub(crate) fn next_reply(buf: &mut ByteBuf, d: &Dialect) -> Result<Option<Reply>, ProtoError> {
    let data = buf.data();
    let Some((line, line_len)) = first_line(data)? else {
        return Ok(None);
    };
    let (op, outcome, used) = if let Some(rest) = line.strip_prefix(d.value_prefix) {
        let len_field = rest
            .split(|&b| b == b' ')
            .nth(d.len_field)
            .unwrap_or_default();
        let len = parse_len(len_field).ok_or_else(|| ProtoError::BadLine(lossy(line)))?;
        if len > MAX_VALUE {
            return Err(ProtoError::ValueTooLarge(len));
        }
        let data_end = line_len + len + 2;
        if data.len() < data_end {
            return Ok(None);
        }
        if &data[data_end - 2..data_end] != b"\r\n" {
            return Err(ProtoError::BadLine(lossy(line)));
        }
        let used = match d.end_line {
            None => data_end,
            Some(end) => match first_line(&data[data_end..])? {
                None => return Ok(None),
                Some((l, end_len)) if l == end => data_end + end_len,
                Some((other, _)) => return Err(ProtoError::BadLine(lossy(other))),
            },
        };
        (Some(Op::Get), Outcome::Hit(len), used)
    } else if let Some(&(_, op, outcome)) = d.statuses.iter().find(|(w, _, _)| *w == line) {
        (Some(op), outcome, line_len)
    } else {
        match memcached_error(line) {
            Some(kind) => (None, Outcome::Failed(kind), line_len),
            None => return Err(ProtoError::BadLine(lossy(line))),
        }
    };
    buf.consume(used);
    Ok(Some(Reply {
        id: None,
        op,
        outcome,
    }))
}
