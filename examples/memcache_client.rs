//! A third-party memcached client (the `memcache` crate) using groupcached's memcached
//! port: the example of docs/memcache.md.
//!
//! Run a server with `--memcache-listen 127.0.0.1:11211` (docs/memcache.md shows the
//! configuration), then `cargo run --example memcache_client [ADDR]`.

use memcache::exp::{Memcache, Ttl};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:11211".into());

    // The classic client, text protocol (the crate's default is the binary protocol,
    // which groupcached does not speak).
    let client = memcache::Client::connect(format!("memcache://{addr}?protocol=ascii"))?;
    // Read-through: a miss is loaded from the group's origin.
    let page: Option<String> = client.get("index.html")?;
    println!("index.html: {page:?}");
    client.set("sessions:u7", "bob", 3600)?;
    let (value, flags, cas): (String, u32, Option<u64>) =
        client.get("sessions:u7")?.ok_or("just stored")?;
    println!("sessions:u7: {value:?} flags {flags} cas {cas:?}");
    client.set("sessions:u7", "carol", 3600)?;
    let stored = client.cas("sessions:u7", "dave", 3600, cas.ok_or("gets gives a cas")?)?;
    println!("cas with a stale token stored: {stored}");

    // The meta-protocol client of the same crate.
    let cache = Memcache::connect([addr.as_str()])?;
    cache.set("sessions:visits", 10u64, Ttl::secs(600))?;
    println!("visits: {}", cache.incr("sessions:visits", 1, Ttl::NEVER)?);
    let total = cache.update("sessions:total", Ttl::NEVER, |v: Option<u64>| {
        v.unwrap_or(0) + 5
    })?;
    println!("total after a CAS update: {total}");
    Ok(())
}
