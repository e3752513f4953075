//! Client-facing protocol front ends other than groupcached's own binary protocol.

pub mod memcache;
