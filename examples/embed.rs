//! Embedding groupcached as a library with a loader written in Rust.
//!
//! Run: `cargo run --example embed`, then in another shell
//! `cargo run -q -p groupcached-client --bin groupcached-cli -- --server 127.0.0.1:7100 get squares 12`.
//! Ctrl-C stops it.
//!
//! The library does not need the `cli` feature (clap, env_logger, signal-hook):
//! `cargo run --example embed --no-default-features` builds it without them
//! (env_logger and ctrlc here are the example's own dev-dependencies).

use std::sync::Arc;
use std::time::Duration;

use groupcached::{
    Config, GroupConfig, LoadContext, Loaded, Origin, OriginError, OriginSpec, Server,
};

/// A loader that computes a value instead of fetching it: the square of the key.
struct Squares;

impl Origin for Squares {
    fn load(&self, key: &[u8], _ctx: &LoadContext) -> Result<Option<Loaded>, OriginError> {
        let text =
            std::str::from_utf8(key).map_err(|_| OriginError::InvalidKey("not UTF-8".into()))?;
        let n: u64 = text
            .parse()
            .map_err(|_| OriginError::InvalidKey(format!("`{text}` is not a number")))?;
        Ok(n.checked_mul(n).map(|sq| Loaded {
            value: sq.to_string().into_bytes(),
            ttl: Some(Duration::from_secs(3600)),
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut cfg = Config::new();
    cfg.listen = "127.0.0.1:7100".parse()?;
    cfg.groups = vec![GroupConfig {
        origin: OriginSpec::Custom(Arc::new(Squares)),
        ..GroupConfig::new("squares")
    }];
    let server = Server::bind(cfg)?;
    println!("serving group `squares` on {}", server.local_addr());
    let handle = server.run()?;
    // Ctrl-C (or SIGTERM) stops the server gracefully: in-flight requests are
    // answered and the cores exit, then `join` returns. The library installs no
    // signal handler of its own: an embedding program decides what signals mean.
    let trigger = handle.trigger();
    ctrlc::set_handler(move || trigger.shutdown())?;
    handle.join();
    println!("stopped");
    Ok(())
}
