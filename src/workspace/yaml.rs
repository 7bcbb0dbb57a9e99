//! A YAML tree that remembers the file line of every node, and a reader over
//! mappings that reports every problem (unknown keys, wrong types, values out
//! of range) with its line instead of stopping at the first one.

use std::cell::Cell;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::problems::Problems;
use crate::duration::{self, HumanDuration};

/// A YAML node with the 1-based line of the file it stands on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// The raw shape serde-saphyr fills in, with block-relative positions.
enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<Tree>, Spanned<Tree>)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Tree, E> {
                i64::try_from(v).map(Tree::Int).map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
                Ok(Tree::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Tree::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    entries.push(entry);
                }
                Ok(Tree::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fn convert(t: Spanned<Tree>, first_line: usize) -> Node {
    let line = first_line + (t.referenced.line() as usize).max(1) - 1;
    let value = match t.value {
        Tree::Null => Value::Null,
        Tree::Bool(b) => Value::Bool(b),
        Tree::Int(i) => Value::Int(i),
        Tree::Float(f) => Value::Float(f),
        Tree::Str(s) => Value::Str(s),
        Tree::Seq(items) => Value::Seq(items.into_iter().map(|i| convert(i, first_line)).collect()),
        Tree::Map(entries) => Value::Map(entries.into_iter().map(|(k, v)| (convert(k, first_line), convert(v, first_line))).collect()),
    };
    Node { line, value }
}

/// Parses YAML text whose first line is line `first_line` of its file. A syntax
/// error becomes a problem at its line.
pub fn parse(text: &str, first_line: usize, problems: &mut Problems) -> Option<Node> {
    match serde_saphyr::from_str::<Spanned<Tree>>(text) {
        Ok(tree) => Some(convert(tree, first_line)),
        Err(e) => {
            let line = e.location().map(|l| first_line + (l.line() as usize).max(1) - 1);
            let mut msg = e.without_snippet().to_string();
            if let Some(cut) = msg.rfind(" at line ") {
                msg.truncate(cut);
            }
            problems.push(line, format!("YAML syntax error: {msg}"), "fix the YAML syntax at this line (indent with spaces, quote values that contain `: ` or `#`)");
            None
        }
    }
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as a scalar string (numbers and booleans are written back as text).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Reads the keys of one mapping, remembering which were used so that the
/// rest can be reported as unknown.
pub struct MapReader<'a> {
    entries: &'a [(Node, Node)],
    used: Vec<Cell<bool>>,
    /// What this mapping is, for messages: "check `root-disk`", "the policy block".
    pub what: String,
    pub line: usize,
}

impl<'a> MapReader<'a> {
    /// A reader over `node`, or a problem if it is not a mapping.
    pub fn new(node: &'a Node, what: impl Into<String>, problems: &mut Problems) -> Option<Self> {
        let what = what.into();
        match &node.value {
            Value::Map(entries) => Some(Self { entries, used: entries.iter().map(|_| Cell::new(false)).collect(), what, line: node.line }),
            _ => {
                problems.push(Some(node.line), format!("{what} must be a mapping (key: value lines), found {}", node.type_name()), "write it as `key: value` lines");
                None
            }
        }
    }

    /// The same reader under another name for messages (e.g. once the name is known).
    pub fn named(self, what: String) -> Self {
        Self { what, ..self }
    }

    /// The value of `key`, marking it used.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if matches!(&k.value, Value::Str(s) if s == key) {
                self.used[i].set(true);
                return Some(v);
            }
        }
        None
    }

    /// The line of `key` itself, for messages about the entry.
    pub fn key_line(&self, key: &str) -> Option<usize> {
        self.entries.iter().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)).map(|(k, _)| k.line)
    }

    pub fn has(&self, key: &str) -> bool {
        self.key_line(key).is_some()
    }

    /// Every key present, in order (marks nothing used).
    pub fn keys(&self) -> impl Iterator<Item = (&'a str, usize)> + '_ {
        self.entries.iter().filter_map(|(k, _)| match &k.value {
            Value::Str(s) => Some((s.as_str(), k.line)),
            _ => None,
        })
    }

    pub fn str(&self, key: &str, problems: &mut Problems) -> Option<String> {
        let node = self.get(key)?;
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Null => None,
            _ => match node.scalar_text() {
                Some(t) => Some(t),
                None => {
                    problems.push(Some(node.line), format!("{}: `{key}` must be a string, found {}", self.what, node.type_name()), "write a single value");
                    None
                }
            },
        }
    }

    pub fn required_str(&self, key: &str, problems: &mut Problems) -> Option<String> {
        if !self.has(key) {
            problems.push(Some(self.line), format!("{}: `{key}` is missing", self.what), format!("add `{key}: ...`"));
            return None;
        }
        self.str(key, problems)
    }

    /// A number within `min..=max`.
    pub fn number(&self, key: &str, min: f64, max: f64, problems: &mut Problems) -> Option<f64> {
        let node = self.get(key)?;
        let v = match &node.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Str(s) if s.trim_end().ends_with('%') => {
                problems.push(
                    Some(node.line),
                    format!("{}: `{key}: {s}` is a string with a percent sign", self.what),
                    format!("write the number alone, e.g. `{key}: {}`", s.trim_end().trim_end_matches('%').trim()),
                );
                return None;
            }
            _ => {
                problems.push(Some(node.line), format!("{}: `{key}` must be a number, found {}", self.what, node.type_name()), format!("write a number from {min} to {max}"));
                return None;
            }
        };
        if !(min..=max).contains(&v) || v.is_nan() {
            problems.push(Some(node.line), format!("{}: `{key}: {v}` is out of range", self.what), format!("use a value from {min} to {max}"));
            return None;
        }
        Some(v)
    }

    /// A whole number within `min..=max`.
    pub fn int(&self, key: &str, min: i64, max: i64, problems: &mut Problems) -> Option<i64> {
        let node = self.get(key)?;
        match &node.value {
            Value::Int(i) if (min..=max).contains(i) => Some(*i),
            Value::Int(i) => {
                problems.push(Some(node.line), format!("{}: `{key}: {i}` is out of range", self.what), format!("use a whole number from {min} to {max}"));
                None
            }
            _ => {
                problems.push(Some(node.line), format!("{}: `{key}` must be a whole number, found {}", self.what, node.type_name()), format!("use a whole number from {min} to {max}"));
                None
            }
        }
    }

    pub fn bool(&self, key: &str, problems: &mut Problems) -> Option<bool> {
        let node = self.get(key)?;
        match &node.value {
            Value::Bool(b) => Some(*b),
            _ => {
                problems.push(Some(node.line), format!("{}: `{key}` must be true or false, found {}", self.what, node.type_name()), "write true or false");
                None
            }
        }
    }

    pub fn duration(&self, key: &str, problems: &mut Problems) -> Option<HumanDuration> {
        let node = self.get(key)?;
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => {
                problems.push(Some(node.line), format!("{}: `{key}: {i}` has no unit", self.what), format!("write e.g. `{key}: {i}s` or `{key}: {i}m`"));
                return None;
            }
            _ => {
                problems.push(Some(node.line), format!("{}: `{key}` must be a duration, found {}", self.what, node.type_name()), "write e.g. 30s, 5m, 1h or 1d");
                return None;
            }
        };
        match duration::parse(&text) {
            Ok(d) => Some(HumanDuration(d)),
            Err(e) => {
                problems.push(Some(node.line), format!("{}: `{key}`: {e}", self.what), format!("write e.g. `{key}: 5m`"));
                None
            }
        }
    }

    /// A list of strings (a single string is accepted as a list of one).
    pub fn str_list(&self, key: &str, problems: &mut Problems) -> Option<Vec<String>> {
        let node = self.get(key)?;
        match &node.value {
            Value::Str(s) => Some(vec![s.clone()]),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item.scalar_text() {
                        Some(t) => out.push(t),
                        None => problems.push(Some(item.line), format!("{}: every item of `{key}` must be a string, found {}", self.what, item.type_name()), "write one value per item"),
                    }
                }
                Some(out)
            }
            Value::Null => Some(Vec::new()),
            _ => {
                problems.push(Some(node.line), format!("{}: `{key}` must be a list, found {}", self.what, node.type_name()), format!("write `{key}: [a, b]`"));
                None
            }
        }
    }

    /// A list of nodes.
    pub fn seq(&self, key: &str, problems: &mut Problems) -> Option<&'a [Node]> {
        let node = self.get(key)?;
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                problems.push(
                    Some(node.line),
                    format!("{}: `{key}` must be a list (lines starting with `- `), found {}", self.what, node.type_name()),
                    format!("write `{key}:` followed by `- ` items"),
                );
                None
            }
        }
    }

    /// Reports every key that no getter asked for.
    pub fn finish(self, known: &[&str], problems: &mut Problems) {
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if self.used[i].get() {
                continue;
            }
            let name = k.scalar_text().unwrap_or_else(|| "?".into());
            let hint = match closest(&name, known) {
                Some(near) => format!("did you mean `{near}`? known keys: {}", known.join(", ")),
                None => format!("remove it; known keys: {}", known.join(", ")),
            };
            problems.push(Some(k.line), format!("{}: unknown key `{name}`", self.what), hint);
        }
    }
}

/// The known word nearest to `word` by edit distance, if it is close.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known.iter().map(|k| (edit_distance(word, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
