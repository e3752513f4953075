//! The memcached port's address as groupcached logs it at start-up.
//!
//! Shared by the server's tests (`tests/common/memcache.rs`) and the bench's
//! (`bench/tests/common/`, through `#[path]`), so there is one reading of that log
//! line.

use std::net::SocketAddr;

/// The memcached address in a log line: an address in a line that mentions
/// memcache(d), other than the native port `native` and not port 0 (the startup
/// line's config summary names a requested `127.0.0.1:0`).
pub fn memcache_listen_addr(line: &str, native: SocketAddr) -> Option<SocketAddr> {
    if !line.to_ascii_lowercase().contains("memcache") {
        return None;
    }
    line.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '`'))
        .map(|t| {
            t.trim_start_matches("memcache://")
                .trim_end_matches(['/', '.', ':'])
        })
        .filter_map(|t| t.parse::<SocketAddr>().ok())
        .find(|a| a.port() != 0 && *a != native)
}
