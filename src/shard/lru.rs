//! The shard's item store: one per cache (main, hot) per group per core. The store
//! itself, its layout and its charge live in [`crate::storage`]; this module keeps
//! the names the shard uses.

#[cfg(test)]
pub use crate::storage::charge;
pub use crate::storage::class::largest_value_with;
pub use crate::storage::{item_charge, Hit, Meta, Store as Lru, ValueRef};
