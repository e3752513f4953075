//! Immutable, reference-counted values shared by caches, cores and connections.

use std::ops::Deref;
use std::sync::Arc;

/// An immutable byte buffer (groupcache's `ByteView`). Cloning is a reference-count
/// increment, so one value can be on several cores' write queues and in a loader's
/// hands at once without a copy.
///
/// Two representations, one behaviour: a value an origin produced keeps its `Vec`
/// (no copy of a possibly large body), and a value copied from a slice (a SET's
/// value leaving the read buffer, a small value read out of the item store) is a
/// single allocation, header and bytes together, so the copy a cache hit makes costs
/// one `malloc`, not two.
#[derive(Clone)]
pub struct ByteView(Repr);

#[derive(Clone)]
enum Repr {
    Vec(Arc<Vec<u8>>),
    Slice(Arc<[u8]>),
}

impl ByteView {
    /// Takes ownership of `bytes` without copying them. Spare capacity is given back
    /// first (an in-place `realloc`), so the cache's charge for the value matches what
    /// it holds.
    pub fn from_vec(mut bytes: Vec<u8>) -> Self {
        bytes.shrink_to_fit();
        ByteView(Repr::Vec(Arc::new(bytes)))
    }

    /// Copies `bytes` into one new allocation.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        ByteView(Repr::Slice(Arc::from(bytes)))
    }
}

impl Deref for ByteView {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Vec(v) => v,
            Repr::Slice(s) => s,
        }
    }
}

impl AsRef<[u8]> for ByteView {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for ByteView {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for ByteView {}

impl std::fmt::Debug for ByteView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ByteView({} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_representations_hold_the_same_bytes_and_compare_by_content() {
        let a = ByteView::from_vec(b"hello".to_vec());
        let b = ByteView::copy_from_slice(b"hello");
        assert_eq!(&a[..], b"hello");
        assert_eq!(a, b);
        assert_ne!(a, ByteView::copy_from_slice(b"hellO"));
        let c = b.clone();
        assert_eq!(c.as_ref(), b"hello");
        assert_eq!(format!("{a:?}"), "ByteView(5 bytes)");
    }

    #[test]
    fn from_vec_drops_spare_capacity() {
        let mut v = Vec::with_capacity(4096);
        v.extend_from_slice(b"abc");
        let ByteView(Repr::Vec(inner)) = ByteView::from_vec(v) else {
            panic!("from_vec keeps the Vec")
        };
        assert_eq!(inner.capacity(), 3);
    }
}
