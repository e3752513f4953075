//! The `stats` command: memcached's general statistics under memcached's names where
//! groupcached counts the same thing, then every groupcached counter under its own
//! STATS name (`group.<name>.main.items`...). Counters are summed over cores; the
//! item and byte counts cover every group (main and hot caches).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::routing::Ctx;
use crate::frontend::memcache::reply;
use crate::stats::McCounters;

impl Ctx {
    /// Appends the `STAT` lines and `END`.
    pub(in crate::core) fn mc_stats(&self, out: &mut Vec<u8>) {
        let reg = &self.shared.registry;
        let sum = |f: &dyn Fn(&McCounters) -> u64| reg.sum(|c| f(&c.memcache));
        let groups = |f: &dyn Fn(&crate::stats::GroupCounters) -> u64| {
            reg.sum(|c| c.groups.iter().map(f).sum())
        };
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        reply::stat(out, "pid", u64::from(std::process::id()));
        reply::stat(out, "uptime", reg.started.elapsed().as_secs());
        reply::stat(out, "time", unix);
        reply::stat_str(out, "version", super::VERSION);
        reply::stat(out, "pointer_size", usize::BITS.into());
        reply::stat(
            out,
            "curr_connections",
            reg.sum(|c| c.node.curr_connections.get()),
        );
        reply::stat(
            out,
            "total_connections",
            reg.sum(|c| c.node.total_connections.get()),
        );
        reply::stat(
            out,
            "rejected_connections",
            reg.sum(|c| c.node.rejected_connections.get()),
        );
        type Pick = fn(&McCounters) -> u64;
        let named: [(&str, Pick); 18] = [
            ("cmd_get", |c| c.cmd_get.get()),
            ("cmd_set", |c| c.cmd_set.get()),
            ("cmd_flush", |c| c.cmd_flush.get()),
            ("cmd_touch", |c| c.cmd_touch.get()),
            ("get_hits", |c| c.get_hits.get()),
            ("get_misses", |c| c.get_misses.get()),
            ("delete_misses", |c| c.delete_misses.get()),
            ("delete_hits", |c| c.delete_hits.get()),
            ("incr_misses", |c| c.incr_misses.get()),
            ("incr_hits", |c| c.incr_hits.get()),
            ("decr_misses", |c| c.decr_misses.get()),
            ("decr_hits", |c| c.decr_hits.get()),
            ("cas_misses", |c| c.cas_misses.get()),
            ("cas_hits", |c| c.cas_hits.get()),
            ("cas_badval", |c| c.cas_badval.get()),
            ("touch_hits", |c| c.touch_hits.get()),
            ("touch_misses", |c| c.touch_misses.get()),
            ("memcache_unsupported", |c| c.unsupported.get()),
        ];
        for (name, f) in named {
            reply::stat(out, name, sum(&f));
        }
        reply::stat(out, "threads", self.shared.threads as u64);
        reply::stat(
            out,
            "curr_items",
            groups(&|g| g.main.items.get() + g.hot.items.get()),
        );
        reply::stat(
            out,
            "bytes",
            groups(&|g| g.main.bytes.get() + g.hot.bytes.get()),
        );
        reply::stat(
            out,
            "evictions",
            groups(&|g| g.main.evictions.get() + g.hot.evictions.get()),
        );
        reply::stat(out, "limit_maxbytes", reg.group_capacity.iter().sum());
        for (name, value) in reg.snapshot() {
            // memcached's names above; groupcached's own below, unless they collide.
            if matches!(
                name.as_str(),
                "threads" | "curr_connections" | "total_connections" | "rejected_connections"
            ) {
                continue;
            }
            reply::stat(out, &name, value);
        }
        reply::end(out);
    }
}
