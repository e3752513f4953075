//! `group:key` addressing.
//!
//! A memcached key names an item in one groupcached group. The rule, applied by
//! [`split_group`]:
//!
//! - With group addressing off, every key is in the default group, whole.
//! - With it on, a key is split at its **first** `:` only if the part before it is
//!   the name of a configured group and the part after it is not empty: `users:42`
//!   is key `42` of group `users` when `users` is configured. Further colons belong to
//!   the key (`users:a:b` is key `a:b` of `users`).
//! - Otherwise the whole key, colons and all, is in the default group: `user:42` with
//!   no group `user` is the key `user:42` of the default group, so applications whose
//!   keys already contain colons keep working unchanged.
//!
//! Replies always echo the key exactly as the client sent it (`VALUE users:42 ...`),
//! prefix included.

/// A key resolved to its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupKey<'k> {
    /// The named group, or `None` for the default group.
    pub group: Option<&'k [u8]>,
    /// The key within that group.
    pub key: &'k [u8],
}

/// Splits `key` into group and key by the rule in the module documentation.
/// `is_group` says whether a prefix names a configured group; it is only asked when
/// `enabled` and the key has a `:` with something on both sides.
#[inline]
pub fn split_group<'k>(
    key: &'k [u8],
    enabled: bool,
    is_group: impl FnOnce(&[u8]) -> bool,
) -> GroupKey<'k> {
    let whole = GroupKey { group: None, key };
    if !enabled {
        return whole;
    }
    let Some(colon) = key.iter().position(|&b| b == b':') else {
        return whole;
    };
    let (group, rest) = (&key[..colon], &key[colon + 1..]);
    if group.is_empty() || rest.is_empty() || !is_group(group) {
        return whole;
    }
    GroupKey {
        group: Some(group),
        key: rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(name: &[u8]) -> bool {
        name == b"users" || name == b"pages"
    }

    #[test]
    fn disabled_keeps_the_whole_key_in_the_default_group() {
        let g = split_group(b"users:42", false, groups);
        assert_eq!(
            g,
            GroupKey {
                group: None,
                key: b"users:42"
            }
        );
    }

    #[test]
    fn a_configured_prefix_names_the_group() {
        let g = split_group(b"users:42", true, groups);
        assert_eq!(
            g,
            GroupKey {
                group: Some(b"users"),
                key: b"42"
            }
        );
    }

    #[test]
    fn only_the_first_colon_splits() {
        let g = split_group(b"pages:a:b", true, groups);
        assert_eq!(
            g,
            GroupKey {
                group: Some(b"pages"),
                key: b"a:b"
            }
        );
    }

    #[test]
    fn an_unknown_prefix_stays_in_the_key() {
        let g = split_group(b"user:42", true, groups);
        assert_eq!(
            g,
            GroupKey {
                group: None,
                key: b"user:42"
            }
        );
        // The first colon decides; a group named later in the key does not count.
        let g = split_group(b"x:users:42", true, groups);
        assert_eq!(
            g,
            GroupKey {
                group: None,
                key: b"x:users:42"
            }
        );
    }

    #[test]
    fn empty_sides_never_split() {
        assert_eq!(split_group(b":42", true, |_| true).group, None);
        assert_eq!(
            split_group(b"users:", true, groups),
            GroupKey {
                group: None,
                key: b"users:"
            }
        );
        assert_eq!(
            split_group(b"plain", true, |_| panic!("not asked")).key,
            b"plain"
        );
    }
}
