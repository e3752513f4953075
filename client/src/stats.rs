//! A server's counters, owned, and their JSON rendering.

use groupcached_protocol::StatsList;

/// A node's counters as returned by STATS, in the order the server sent them.
///
/// Names are dotted: node-wide counters (`connections`, `server_requests`, ...) and
/// per-group ones named `group.<group>.<rest>` (`group.thumbs.gets`,
/// `group.thumbs.main.bytes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    entries: Vec<(String, u64)>,
}

impl Stats {
    /// Counters from `(name, value)` pairs, in the given order.
    pub fn new(entries: Vec<(String, u64)>) -> Self {
        Stats { entries }
    }

    /// Copies a decoded STATS body. Names that are not UTF-8 are decoded lossily.
    pub fn from_list(list: &StatsList<'_>) -> Self {
        Stats {
            entries: list
                .iter()
                .map(|(name, v)| (String::from_utf8_lossy(name).into_owned(), v))
                .collect(),
        }
    }

    /// The value of the counter called `name` (the last one, if the server sent it twice).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }

    /// The counters in the order the server sent them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// Number of counters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no counters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters as `(name, value)` pairs.
    pub fn into_entries(self) -> Vec<(String, u64)> {
        self.entries
    }

    /// Renders the counters as one JSON object (no trailing newline).
    ///
    /// Node counters are members of the top-level object under their full name.
    /// Counters named `group.<g>.<rest>` go under `"groups": {"<g>": {...}}`, and the
    /// dots of `<rest>` nest further: `group.default.main.bytes` becomes
    /// `{"groups": {"default": {"main": {"bytes": N}}}}`. When a name would need a
    /// counter to also be an object (`group.g.main` and `group.g.main.bytes` both sent)
    /// the later name keeps its remaining dotted path as one key, so nothing is lost.
    /// Members keep the server's order; a repeated name keeps its last value.
    pub fn to_json(&self) -> String {
        let mut root = Vec::new();
        for (name, value) in &self.entries {
            let path: Vec<&str> = match name
                .strip_prefix("group.")
                .and_then(|rest| rest.split_once('.'))
            {
                Some((group, rest)) if !group.is_empty() && !rest.is_empty() => {
                    let mut p = vec!["groups", group];
                    p.extend(rest.split('.'));
                    p
                }
                _ => vec![name.as_str()],
            };
            insert(&mut root, &path, *value);
        }
        let mut out = String::new();
        Node::Object(root).write_json(&mut out);
        out
    }
}

impl<'a> IntoIterator for &'a Stats {
    type Item = (&'a str, u64);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, u64)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// A JSON value under construction: a counter or an object with ordered members.
enum Node {
    Leaf(u64),
    Object(Vec<(String, Node)>),
}

/// Puts `value` at `path` (never empty) below the object whose members are `members`.
fn insert(members: &mut Vec<(String, Node)>, path: &[&str], value: u64) {
    let (first, rest) = (path[0], &path[1..]);
    let existing = members.iter().position(|(k, _)| k == first);
    match (existing, rest.is_empty()) {
        (None, true) => members.push((first.to_owned(), Node::Leaf(value))),
        (None, false) => {
            let mut child = Vec::new();
            insert(&mut child, rest, value);
            members.push((first.to_owned(), Node::Object(child)));
        }
        (Some(i), true) => match &mut members[i].1 {
            Node::Leaf(v) => *v = value,
            // An object already lives under this name: keep the counter beside it,
            // under a name no nesting produces (a split never yields a trailing dot).
            Node::Object(_) => insert_flat(members, &format!("{first}."), value),
        },
        (Some(i), false) => match &mut members[i].1 {
            Node::Object(child) => insert(child, rest, value),
            Node::Leaf(_) => insert_flat(members, &path.join("."), value),
        },
    }
}

/// Puts `value` under the single key `key`, overwriting a counter of that name.
fn insert_flat(members: &mut Vec<(String, Node)>, key: &str, value: u64) {
    match members.iter_mut().find(|(k, _)| k == key) {
        Some((_, node)) => *node = Node::Leaf(value),
        None => members.push((key.to_owned(), Node::Leaf(value))),
    }
}

impl Node {
    fn write_json(&self, out: &mut String) {
        match self {
            Node::Leaf(v) => out.push_str(&v.to_string()),
            Node::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string literal (RFC 8259 escaping).
pub(crate) fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, u64)]) -> Stats {
        Stats::new(pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect())
    }

    #[test]
    fn node_counters_are_top_level_and_groups_nest_by_dots() {
        let s = stats(&[
            ("connections", 3),
            ("server_requests", 10),
            ("group.default.gets", 7),
            ("group.default.main.bytes", 100),
            ("group.default.main.items", 2),
            ("group.thumbs.gets", 1),
        ]);
        assert_eq!(
            s.to_json(),
            concat!(
                r#"{"connections":3,"server_requests":10,"groups":{"#,
                r#""default":{"gets":7,"main":{"bytes":100,"items":2}},"#,
                r#""thumbs":{"gets":1}}}"#
            )
        );
    }

    #[test]
    fn empty_stats_are_an_empty_object() {
        assert_eq!(Stats::default().to_json(), "{}");
    }

    #[test]
    fn names_are_escaped() {
        let s = stats(&[("a\"b\\c\nd\u{1}", 1), ("group.q\"g.x", 2)]);
        assert_eq!(
            s.to_json(),
            r#"{"a\"b\\c\nd\u0001":1,"groups":{"q\"g":{"x":2}}}"#
        );
    }

    #[test]
    fn leaf_and_object_conflicts_keep_both_values() {
        let s = stats(&[
            ("group.g.main", 1),
            ("group.g.main.bytes", 2),
            ("group.h.hot.bytes", 3),
            ("group.h.hot", 4),
        ]);
        assert_eq!(
            s.to_json(),
            concat!(
                r#"{"groups":{"g":{"main":1,"main.bytes":2},"#,
                r#""h":{"hot":{"bytes":3},"hot.":4}}}"#
            )
        );
    }

    #[test]
    fn malformed_group_names_stay_flat() {
        let s = stats(&[
            ("group.", 1),
            ("group.g", 2),
            ("group..x", 3),
            ("groups", 4),
        ]);
        assert_eq!(
            s.to_json(),
            r#"{"group.":1,"group.g":2,"group..x":3,"groups":4}"#
        );
        // A node counter called "groups" collides with the groups object: kept beside it.
        let s = stats(&[("groups", 4), ("group.g.x", 5)]);
        assert_eq!(s.to_json(), r#"{"groups":4,"groups.g.x":5}"#);
    }

    #[test]
    fn repeated_names_keep_the_last_value() {
        let s = stats(&[("a", 1), ("a", 2), ("group.g.x", 3), ("group.g.x", 4)]);
        assert_eq!(s.to_json(), r#"{"a":2,"groups":{"g":{"x":4}}}"#);
        assert_eq!(s.get("a"), Some(2));
        assert_eq!(s.get("missing"), None);
    }

    #[test]
    fn from_list_copies_the_wire_counters() {
        let raw = StatsList::build([("gets", 5u64), ("group.g.loads", 6)]);
        let list = StatsList::parse(&raw).expect("valid list");
        let s = Stats::from_list(&list);
        assert_eq!(s.len(), 2);
        let pairs: Vec<_> = (&s).into_iter().collect();
        assert_eq!(pairs, vec![("gets", 5), ("group.g.loads", 6)]);
    }
}
