//! memcached's counters: the decimal value of an item, as `incr` and `decr` read
//! and write it.
//!
//! memcached reads an item's value with `strtoull` and requires whitespace (or the
//! end) after the digits; it writes the result back as plain decimal and, when the
//! new number is no longer than the old value, *in place*: the digits, then spaces
//! up to the old length (so `decr` of "100" by 91 leaves "9  ", and a later `incr`
//! reads it again). That padding is kept here, so clients see the bytes memcached
//! would give them.

/// Longest decimal u64: 20 digits (18446744073709551615).
pub const MAX_DIGITS: usize = 20;

/// The number a counter item holds, or `None` if its value is not one: optional
/// leading ASCII whitespace and `+`, then decimal digits whose value fits a u64,
/// then nothing but ASCII whitespace (memcached's `safe_strtoull` on a value that is
/// followed by "\r\n"). Two departures, both refusing what memcached accepts by
/// accident: a `-` is never accepted (`strtoull` turns "-0" into 0 and some large
/// negative numbers into positive ones), and neither is anything after the digits
/// but whitespace (memcached reads "1 2" as 1, then overwrites the "2"). Leading
/// zeros are allowed, however many, as `strtoull` allows them.
pub fn parse(value: &[u8]) -> Option<u64> {
    let start = value.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &value[start..];
    let rest = rest.strip_prefix(b"+").unwrap_or(rest);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || !rest[digits..].iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    rest[..digits].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `n` in decimal into `buf`; returns the digits' length.
pub fn format(n: u64, buf: &mut [u8; MAX_DIGITS]) -> usize {
    let mut tmp = [0u8; MAX_DIGITS];
    let mut i = MAX_DIGITS;
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = MAX_DIGITS - i;
    buf[..len].copy_from_slice(&tmp[i..]);
    len
}

/// The value memcached leaves after an incr/decr of an item whose value had
/// `old_len` bytes: the new number's digits, padded with spaces to `old_len` if
/// they fit in it (memcached's in-place rewrite), else just the digits.
pub fn rewrite(n: u64, old_len: usize) -> Vec<u8> {
    let mut buf = [0u8; MAX_DIGITS];
    let len = format(n, &mut buf);
    let mut out = Vec::with_capacity(len.max(old_len));
    out.extend_from_slice(&buf[..len]);
    if len <= old_len {
        out.resize(old_len, b' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_memcached_reads_them() {
        assert_eq!(parse(b"0"), Some(0));
        assert_eq!(parse(b"42"), Some(42));
        assert_eq!(parse(b"9  "), Some(9));
        assert_eq!(parse(b" \t+7\r\n"), Some(7));
        assert_eq!(parse(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse(b"000000000000000000000000001"), Some(1));
        for bad in [
            &b""[..],
            b"   ",
            b"abc",
            b"12abc",
            b"1 2",
            b"-1",
            b"-0",
            b"+",
            b"18446744073709551616",
            b"99999999999999999999",
            b"1.5",
            b"0x10",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn numbers_are_written_back_in_place_when_they_fit() {
        assert_eq!(rewrite(9, 3), b"9  ");
        assert_eq!(rewrite(100, 3), b"100");
        assert_eq!(rewrite(1000, 3), b"1000");
        assert_eq!(rewrite(0, 20), b"0                   ");
        assert_eq!(rewrite(u64::MAX, 0), b"18446744073709551615");
        let mut buf = [0u8; MAX_DIGITS];
        assert_eq!(format(0, &mut buf), 1);
        assert_eq!(&buf[..1], b"0");
    }
}
