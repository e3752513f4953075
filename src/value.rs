//! Immutable, reference-counted values shared by caches, cores and connections.

use std::ops::Deref;
use std::sync::Arc;

/// An immutable byte buffer (groupcache's `ByteView`). Cloning is a reference-count
/// increment, so one cached value can be in a cache, on several cores' write queues
/// and in a loader's hands at once without a copy. Backed by a `Vec` so that a value
/// an origin produced becomes a `ByteView` without being copied.
#[derive(Clone, PartialEq, Eq)]
pub struct ByteView(Arc<Vec<u8>>);

impl ByteView {
    /// Takes ownership of `bytes` without copying them.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        ByteView(Arc::new(bytes))
    }

    /// Copies `bytes` (used once, when a SET's value leaves the read buffer).
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        ByteView(Arc::new(bytes.to_vec()))
    }
}

impl Deref for ByteView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ByteView {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ByteView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ByteView({} bytes)", self.0.len())
    }
}
