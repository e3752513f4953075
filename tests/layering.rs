//! The module graph of the server crate (`src/`) has no cycle: a module may use the
//! modules below it in the layers drawn in `src/lib.rs`'s crate docs, never one above.
//!
//! Reads every `src/**/*.rs`, takes each `crate::name` reference outside comments as
//! an edge from the file's top-level module to `name`, and fails on any cycle,
//! naming the modules in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges known to close a cycle, each with the work that removes it. Empty this
/// list, don't grow it.
const KNOWN: &[(&str, &str, &str)] = &[];

fn module_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?.to_string();
    let m = match parts.next() {
        Some(_) => first,
        None => first.strip_suffix(".rs")?.to_string(),
    };
    (m != "lib" && m != "main").then_some(m)
}

fn collect(dir: &Path, root: &Path, edges: &mut BTreeMap<String, BTreeSet<String>>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, root, edges);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let Some(from) = module_of(path.strip_prefix(root).expect("under src")) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read source");
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|n| n.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![rest
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")],
                };
                for to in names {
                    if !to.is_empty() && to != from {
                        edges
                            .entry(from.clone())
                            .or_default()
                            .insert(to.to_string());
                    }
                }
            }
        }
    }
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.edges.get(v) {
            for w in next {
                if !s.index.contains_key(w.as_str()) {
                    visit(s, w);
                    let lw = s.low[w.as_str()];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w.as_str()) {
                    let iw = s.index[w.as_str()];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.found.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_server_modules_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges = BTreeMap::new();
    collect(&root, &root, &mut edges);
    assert!(
        edges.get("core").is_some_and(|e| e.contains("shard")),
        "the scan found no edges: {edges:?}"
    );
    for (from, to, fix) in KNOWN {
        let present = edges.get_mut(*from).is_some_and(|e| e.remove(*to));
        assert!(
            present,
            "{from} no longer uses {to} ({fix}): remove that entry from KNOWN"
        );
    }
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "module cycles in src/ (each list is a set of modules that use each other): \
         {found:?}\nedges: {edges:#?}"
    );
}

#[test]
fn the_check_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    edges.entry("c".into()).or_default().insert("d".into());
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
}
