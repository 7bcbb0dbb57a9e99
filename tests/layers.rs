//! The house's rules, checked on every build: no import cycle between the
//! files of `src/`, and the top-level modules in layers, each importing only
//! the ones below it (the pipeline of DESIGN.md, read bottom-up). A move that
//! brings a cycle back fails here with the edges that close it.
//!
//! Imports are read from the source: every `crate::…` and `super::…` path
//! outside the `#[cfg(test)] mod tests` block that ends a file (each file's
//! tests come last), resolved to the deepest module that exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules, lowest first. A module may import only modules listed before it.
const LAYERS: &[&str] = &[
    // Vocabulary: imports nothing of the pipeline.
    "severity",
    "duration",
    "redact",
    "markdown",
    "capture",
    "trend",
    "schedule",
    "telemetry",
    // Clients.
    "ssh",
    "k8s",
    // observe → diagnose → gate → execute → record, and what drives them.
    "checks",
    "pr",
    "actions",
    "llm",
    "policy",
    "memory",
    "diagnosis",
    "workspace",
    "pipeline",
    "sandbox",
    "drill",
    "serve",
    "cli",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Module path (`checks::kube::observe`) → file, for every module file under `src/`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                if parts == ["lib"] || parts == ["main"] {
                    continue;
                }
                out.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The paths a file names: `crate::a::b`, `super::super::c`, and each item of `crate::{a, b::c}`.
fn paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(i) => &code[..i],
        None => &code[..],
    };
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let segments = |mut i: usize| -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            if start == i {
                break;
            }
            out.push(code[start..i].to_string());
            if code[i..].starts_with("::") {
                i += 2;
            } else {
                break;
            }
        }
        out
    };
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        if i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':') {
            continue; // `nightshift::crate`-like tails and the second `super` of `super::super`
        }
        let head = if code[i..].starts_with("crate::") { "crate" } else { "super" };
        let mut supers = 0;
        let mut j = i;
        while code[j..].starts_with("super::") {
            supers += 1;
            j += "super::".len();
        }
        if head == "crate" {
            j = i + "crate::".len();
        }
        let items: Vec<Vec<String>> = if code[j..].starts_with('{') {
            let end = code[j..].find('}').map_or(code.len(), |e| j + e);
            let mut at = j + 1;
            let mut items = Vec::new();
            for item in code[j + 1..end].split(',') {
                items.push(segments(at + item.len() - item.trim_start().len()));
                at += item.len() + 1;
            }
            items
        } else {
            vec![segments(j)]
        };
        for item in items.into_iter().filter(|s| !s.is_empty()) {
            found.push((supers, item));
        }
    }
    found
}

/// File-level imports: module → the modules it names, ancestors and descendants left out
/// (a parent declaring its children and a child using its parent's types is Rust's shape).
fn file_graph(mods: &BTreeMap<String, String>) -> Graph {
    let mut g = Graph::new();
    for (m, text) in mods {
        let here: Vec<&str> = m.split("::").collect();
        for (supers, path) in paths(text) {
            let mut full: Vec<String> = if supers > 0 {
                // A file module `a::b` is `super`'s child; `super` of `a::b` is `a`.
                let keep = here.len().saturating_sub(supers);
                here[..keep].iter().map(|s| s.to_string()).chain(path).collect()
            } else {
                path
            };
            while !full.is_empty() && !mods.contains_key(&full.join("::")) {
                full.pop();
            }
            let to = full.join("::");
            let related = to.is_empty() || to == *m || m.starts_with(&format!("{to}::")) || to.starts_with(&format!("{m}::"));
            if !related {
                g.entry(m.clone()).or_default().insert(to);
            }
        }
    }
    g
}

/// Strongly connected components of more than one node (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            if !t.index.contains_key(w.as_str()) {
                visit(t, w);
                let lw = t.low[w.as_str()];
                t.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if t.on.contains(w.as_str()) {
                let iw = t.index[w.as_str()];
                t.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    let nodes: BTreeSet<&str> = g.iter().flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str))).collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn src() -> BTreeMap<String, String> {
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn no_file_of_src_is_in_an_import_cycle() {
    let g = file_graph(&src());
    let found = cycles(&g);
    let explain: Vec<String> = found
        .iter()
        .map(|comp| {
            let edges: Vec<String> = comp.iter().flat_map(|a| g[a].iter().filter(|b| comp.contains(b)).map(move |b| format!("{a} → {b}"))).collect();
            format!("cycle of {}: {}", comp.len(), edges.join(", "))
        })
        .collect();
    assert!(found.is_empty(), "import cycles between files of src/ (move the shared type down to a leaf module):\n{}", explain.join("\n"));
}

#[test]
fn top_level_modules_import_only_the_layers_below_them() {
    let mods = src();
    let top: BTreeSet<String> = mods.keys().map(|m| m.split("::").next().unwrap_or_default().to_string()).collect();
    let unlisted: Vec<&String> = top.iter().filter(|m| !LAYERS.contains(&m.as_str())).collect();
    assert!(unlisted.is_empty(), "modules not placed in tests/layers.rs's LAYERS: {unlisted:?}; add each where it belongs");
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m.split("::").next().unwrap_or_default());
    let mut up = Vec::new();
    for (from, tos) in file_graph(&mods) {
        for to in tos {
            if rank(&to) > rank(&from) {
                up.push(format!("{from} → {to}"));
            }
        }
    }
    assert!(up.is_empty(), "imports running up the layers (LAYERS in tests/layers.rs, lowest first):\n{}", up.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_and_an_upward_import() {
    // The reader on a small made-up tree: a cycle through `super::` and braces is found.
    let mut mods = BTreeMap::new();
    mods.insert("a".to_string(), "use crate::{b::Thing, severity};\n".to_string());
    mods.insert("b".to_string(), "pub struct Thing;\n".to_string());
    mods.insert("b::inner".to_string(), "use super::super::a::X; // crate::c is a comment\n#[cfg(test)]\nmod tests { use crate::c; }\n".to_string());
    mods.insert("c".to_string(), String::new());
    mods.insert("severity".to_string(), String::new());
    let g = file_graph(&mods);
    assert_eq!(g["a"], BTreeSet::from(["b".to_string(), "severity".to_string()]));
    assert_eq!(g["b::inner"], BTreeSet::from(["a".to_string()]), "comments and the tests block are not imports");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "b::inner → a → b is not a cycle: b is inner's parent");
    mods.insert("b".to_string(), "use crate::a;\n".to_string());
    assert_eq!(cycles(&file_graph(&mods)), vec![vec!["a".to_string(), "b".to_string()]]);
}
