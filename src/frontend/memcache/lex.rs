//! Lexical pieces shared by the text and meta parsers: finding the end of a command
//! line, splitting it into space-separated tokens, reading numbers, checking keys and
//! decoding base64 keys. Everything here borrows from the read buffer; nothing
//! allocates.

/// The longest key memcached accepts, in bytes.
pub const KEY_MAX: usize = 250;

/// The longest decoded base64 key: 250 base64 characters carry at most 187 bytes.
pub const BIN_KEY_MAX: usize = KEY_MAX / 4 * 3 + 1;

/// Where the first `\n` is in `buf`, if there is one before `limit` bytes.
#[inline]
pub fn find_newline(buf: &[u8], limit: usize) -> Option<usize> {
    let end = buf.len().min(limit);
    buf[..end].iter().position(|&b| b == b'\n')
}

/// `line` without a trailing `\r` (a line may end in `\r\n` or a bare `\n`, as
/// memcached accepts both).
#[inline]
pub fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

/// Space-separated tokens of a line. memcached splits on the space character only, and
/// runs of spaces count as one separator. `Copy`, so a parser can look ahead freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tokens<'a> {
    rest: &'a [u8],
}

impl<'a> Tokens<'a> {
    /// The tokens of `line`.
    #[inline]
    pub fn new(line: &'a [u8]) -> Self {
        Tokens { rest: line }
    }

    /// How many tokens remain (walks them; lines are short).
    pub fn count(self) -> usize {
        Iterator::count(self)
    }

    /// True when no token remains.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.rest.iter().all(|&b| b == b' ')
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        self.rest = &rest[len..];
        Some(&rest[..len])
    }
}

/// True when `key` is a key memcached's text protocol can carry: 1 to 250 bytes, no
/// control characters (bytes below 0x20 and 0x7f). Spaces cannot occur (they separate
/// tokens). memcached itself accepts control characters; groupcached refuses them, as
/// issue 12 asks, because they break `VALUE` lines and log output.
#[inline]
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX && key.iter().all(|&b| b > b' ' && b != 0x7f)
}

/// An unsigned decimal number as memcached's `strtoull` reads it: an optional `+`, then
/// digits only, no overflow. `None` otherwise.
#[inline]
pub fn parse_u64(tok: &[u8]) -> Option<u64> {
    let digits = tok.strip_prefix(b"+").unwrap_or(tok);
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// A 32-bit unsigned number (client flags, verbosity).
#[inline]
pub fn parse_u32(tok: &[u8]) -> Option<u32> {
    parse_u64(tok).and_then(|n| u32::try_from(n).ok())
}

/// A signed decimal number (exptimes): an optional sign, then digits.
#[inline]
pub fn parse_i64(tok: &[u8]) -> Option<i64> {
    match tok.split_first() {
        Some((b'-', digits)) if !digits.starts_with(b"+") => {
            let n = parse_u64(digits)?;
            0i64.checked_sub_unsigned(n)
        }
        _ => parse_u64(tok).and_then(|n| i64::try_from(n).ok()),
    }
}

/// A data block length: a non-negative number below `i32::MAX - 2`, as memcached
/// accepts.
#[inline]
pub fn parse_len(tok: &[u8]) -> Option<usize> {
    parse_u64(tok)
        .filter(|&n| n <= (i32::MAX as u64) - 2)
        .and_then(|n| usize::try_from(n).ok())
}

/// A decoded base64 key, held inline so that decoding one does not allocate.
#[derive(Clone, Copy)]
pub struct BinKey {
    len: u8,
    bytes: [u8; BIN_KEY_MAX],
}

impl BinKey {
    /// The decoded bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for BinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BinKey({:?})", self.as_bytes())
    }
}

impl PartialEq for BinKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for BinKey {}

fn b64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes a standard-alphabet base64 key (`=` padding required, as memcached's
/// decoder expects whole quads). `None` if it is not valid base64, is longer than 250
/// characters, or decodes to nothing.
pub fn decode_base64_key(enc: &[u8]) -> Option<BinKey> {
    if enc.is_empty() || enc.len() > KEY_MAX || enc.len() % 4 != 0 {
        return None;
    }
    let mut out = BinKey {
        len: 0,
        bytes: [0; BIN_KEY_MAX],
    };
    let mut n = 0usize;
    let quads = enc.len() / 4;
    for (qi, quad) in enc.chunks_exact(4).enumerate() {
        let last = qi + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &quad[..4 - pad] {
            acc = (acc << 6) | b64_value(c)?;
        }
        acc <<= 6 * pad as u32;
        let produced = 3 - pad;
        let bytes = acc.to_be_bytes();
        out.bytes[n..n + produced].copy_from_slice(&bytes[1..1 + produced]);
        n += produced;
    }
    if n == 0 {
        return None;
    }
    out.len = u8::try_from(n).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_on_runs_of_spaces_only() {
        let t: Vec<&[u8]> = Tokens::new(b"  get  a\tb   c ").collect();
        assert_eq!(t, vec![&b"get"[..], b"a\tb", b"c"]);
        assert!(Tokens::new(b"   ").is_empty());
        assert_eq!(Tokens::new(b"a b").count(), 2);
    }

    #[test]
    fn numbers_read_like_strtoull() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"05"), Some(5));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"0x5"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+"), None);
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"-+5"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_len(b"2147483645"), Some(2_147_483_645));
        assert_eq!(parse_len(b"2147483646"), None);
    }

    #[test]
    fn keys_refuse_control_characters_and_length() {
        assert!(valid_key(b"a"));
        assert!(valid_key(&[b'k'; 250]));
        assert!(!valid_key(&[b'k'; 251]));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"a\x01b"));
        assert!(!valid_key(b"a\x7fb"));
        assert!(!valid_key(b"a\tb"));
        assert!(valid_key("ключ".as_bytes()));
    }

    #[test]
    fn base64_keys_decode() {
        assert_eq!(decode_base64_key(b"dGVzdA==").unwrap().as_bytes(), b"test");
        assert_eq!(decode_base64_key(b"eDE=").unwrap().as_bytes(), b"x1");
        assert_eq!(decode_base64_key(b"AAEC").unwrap().as_bytes(), &[0, 1, 2]);
        assert!(decode_base64_key(b"x1").is_none());
        assert!(decode_base64_key(b"!!!!").is_none());
        assert!(decode_base64_key(b"====").is_none());
        assert!(decode_base64_key(b"dA==dA==").is_none());
        let long = [b'A'; 248];
        assert_eq!(decode_base64_key(&long).unwrap().as_bytes().len(), 186);
        assert!(decode_base64_key(&[b'A'; 252]).is_none());
    }
}
