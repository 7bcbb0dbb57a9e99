//! Finding a workload's manifest in the infrastructure repository and making
//! one typed change to it that a reviewer can read in a one-line diff.
//!
//! The file is never re-serialised: it is parsed into a tree of nodes that
//! remember their byte ranges, and only the changed scalars are spliced (or
//! one key inserted beside its siblings), so comments, quoting, key order,
//! line endings and the file's other documents stay byte for byte. What
//! cannot be edited safely is refused with the file, the line and the
//! reason: a value behind an anchor or alias, a merge key, a template
//! expression, a block scalar, several containers and none named.

use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use granit_parser::{Event, Parser, ScalarStyle};

/// How the manifest of a workload is found (`manifests:` under `repository:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locate {
    /// A path relative to the repository root with `{namespace}`, `{name}`
    /// and `{kind}` (lower case); a path ending in `/` (or naming a
    /// directory) is searched.
    Template(String),
    /// Every `*.yaml` and `*.yml` of the repository, outside hidden directories.
    Search,
}

/// The workload a change is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One typed change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The container's memory limit × factor, and its memory request when set.
    RaiseMemory {
        container: Option<String>,
        factor: f64,
    },
    SetReplicas {
        replicas: i32,
    },
    /// The liveness probe's `initialDelaySeconds`, raised to `seconds`.
    LivenessDelay {
        container: Option<String>,
        seconds: u32,
    },
}

/// A prepared edit: the file before and after, and what changed in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Relative to the repository root.
    pub path: PathBuf,
    pub before: String,
    pub after: String,
    /// "memory limit of container app: 512Mi → 768Mi", …
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("no {target} in {searched}; set `manifests:` under repository: in AGENTS.md to where it is kept (a path template such as k8s/{{namespace}}/{{name}}.yaml, or `search`)")]
    NotFound { target: String, searched: String },
    #[error("{target} is in several manifests ({}); nightshift does not guess: set `manifests:` under repository: in AGENTS.md to a path template that names one", .candidates.join(", "))]
    Ambiguous { target: String, candidates: Vec<String> },
    #[error("{path}: {why}")]
    Unreadable { path: String, why: String },
    #[error("{path}:{line}: {why}; nothing was changed: edit it by hand")]
    Refused { path: String, line: usize, why: String },
}

/// Files larger than this are not manifests anyone edits by hand.
const MAX_FILE: u64 = 4 << 20;

/// Finds the one manifest that declares `target`, relative to `root`.
pub fn find(root: &Path, locate: &Locate, target: &Target) -> Result<PathBuf, ManifestError> {
    let (dir, searched) = match locate {
        Locate::Search => (PathBuf::new(), "any *.yaml or *.yml of the repository".to_string()),
        Locate::Template(t) => {
            let rel = expand(t, target)?;
            let full = root.join(&rel);
            inside(root, &full, &rel)?;
            if t.ends_with('/') || full.is_dir() {
                let shown = rel.display().to_string();
                (rel, format!("{}/ (from `manifests: {t}`)", shown.trim_end_matches('/')))
            } else {
                if !full.is_file() {
                    return Err(ManifestError::NotFound { target: target.to_string(), searched: format!("{} (from `manifests: {t}`), which does not exist", rel.display()) });
                }
                let candidates = candidates_in(root, &rel, target)?;
                return pick(target, candidates, &format!("{} (from `manifests: {t}`)", rel.display()));
            }
        }
    };
    let mut files = Vec::new();
    walk(root, &dir, &mut files)?;
    let mut candidates = Vec::new();
    for rel in files {
        // A file that never spells the name cannot declare it; most are skipped unparsed.
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else { continue };
        if !text.contains(&target.name) {
            continue;
        }
        // In a search, files that are not plain YAML (Helm templates) are not candidates.
        if let Ok(docs) = parse(&text) {
            candidates.extend(matches(&docs, target).into_iter().map(|(_, exact)| (rel.clone(), exact)));
        }
    }
    pick(target, candidates, &searched)
}

/// Makes `change` to the document of `target` in `root/path`.
pub fn edit(root: &Path, path: &Path, target: &Target, change: &Change) -> Result<Edit, ManifestError> {
    let full = root.join(path);
    inside(root, &full, path)?;
    let shown = path.display().to_string();
    let before = std::fs::read_to_string(&full).map_err(|e| ManifestError::Unreadable { path: shown.clone(), why: format!("cannot read it: {e}") })?;
    let docs = parse(&before).map_err(|why| ManifestError::Unreadable { path: shown.clone(), why })?;
    let found = matches(&docs, target);
    let exact: Vec<usize> = found.iter().filter(|(_, e)| *e).map(|(i, _)| *i).collect();
    let loose: Vec<usize> = found.iter().filter(|(_, e)| !*e).map(|(i, _)| *i).collect();
    let index = match (exact.as_slice(), loose.as_slice()) {
        ([i], _) | ([], [i]) => *i,
        ([], []) => return Err(ManifestError::NotFound { target: target.to_string(), searched: shown }),
        _ => return Err(ManifestError::Ambiguous { target: target.to_string(), candidates: vec![format!("{shown} (several documents)")] }),
    };
    let ctx = Ctx { path: &shown, src: &before };
    let doc = &docs[index];
    let plan = match change {
        Change::RaiseMemory { container, factor } => raise_memory(&ctx, doc, target, container.as_deref(), *factor)?,
        Change::SetReplicas { replicas } => set_replicas(&ctx, doc, target, *replicas)?,
        Change::LivenessDelay { container, seconds } => liveness_delay(&ctx, doc, target, container.as_deref(), *seconds)?,
    };
    let after = apply(&before, &plan.splices);
    verify(&shown, &after, index, target, &plan.splices)?;
    Ok(Edit { path: path.to_path_buf(), before, after, changes: plan.changes })
}

// ---------------------------------------------------------------- locating

fn expand(template: &str, t: &Target) -> Result<PathBuf, ManifestError> {
    // Names come from the cluster, but a path is built from them: only what Kubernetes allows.
    for (what, v) in [("namespace", &t.namespace), ("name", &t.name), ("kind", &t.kind)] {
        if v.is_empty() || v.starts_with('.') || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(ManifestError::NotFound { target: t.to_string(), searched: format!("`manifests: {template}`: the {what} `{v}` cannot be part of a path") });
        }
    }
    let rel = template.replace("{namespace}", &t.namespace).replace("{name}", &t.name).replace("{kind}", &t.kind.to_ascii_lowercase());
    let p = PathBuf::from(&rel);
    if p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ManifestError::NotFound { target: t.to_string(), searched: format!("`manifests: {template}`, which leaves the repository") });
    }
    Ok(p)
}

/// Refuses a path that resolves (through symlinks) outside the repository.
fn inside(root: &Path, full: &Path, rel: &Path) -> Result<(), ManifestError> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ManifestError::Unreadable { path: rel.display().to_string(), why: "the path leaves the repository".into() });
    }
    let (Ok(r), Ok(f)) = (root.canonicalize(), full.canonicalize()) else { return Ok(()) };
    if !f.starts_with(&r) {
        return Err(ManifestError::Unreadable { path: rel.display().to_string(), why: "the path resolves outside the repository (a symlink?)".into() });
    }
    Ok(())
}

/// `*.yaml` and `*.yml` under `root/dir`, sorted, without following symlinks
/// or entering hidden directories (`.git`).
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let full = root.join(dir);
    let rd = std::fs::read_dir(&full).map_err(|e| ManifestError::Unreadable { path: format!("{}/", dir.display()), why: format!("cannot list it: {e}") })?;
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        let rel = dir.join(&*name);
        if ft.is_dir() {
            walk(root, &rel, out)?;
        } else if ft.is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) && e.metadata().map(|m| m.len() <= MAX_FILE).unwrap_or(false) {
            out.push(rel);
        }
    }
    Ok(())
}

fn candidates_in(root: &Path, rel: &Path, target: &Target) -> Result<Vec<(PathBuf, bool)>, ManifestError> {
    let text = std::fs::read_to_string(root.join(rel)).map_err(|e| ManifestError::Unreadable { path: rel.display().to_string(), why: format!("cannot read it: {e}") })?;
    let docs = parse(&text).map_err(|why| ManifestError::Unreadable { path: rel.display().to_string(), why })?;
    Ok(matches(&docs, target).into_iter().map(|(_, exact)| (rel.to_path_buf(), exact)).collect())
}

/// The one candidate: in the target's namespace if any says so, else the one without a namespace.
fn pick(target: &Target, candidates: Vec<(PathBuf, bool)>, searched: &str) -> Result<PathBuf, ManifestError> {
    let exact: Vec<&PathBuf> = candidates.iter().filter(|(_, e)| *e).map(|(p, _)| p).collect();
    let loose: Vec<&PathBuf> = candidates.iter().filter(|(_, e)| !*e).map(|(p, _)| p).collect();
    let chosen = if exact.is_empty() { loose } else { exact };
    match chosen.as_slice() {
        [] => Err(ManifestError::NotFound { target: target.to_string(), searched: searched.to_string() }),
        [one] => Ok((*one).clone()),
        many => {
            let mut names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
            names.dedup();
            if names.len() == 1 {
                names[0].push_str(" (several documents)");
            }
            Err(ManifestError::Ambiguous { target: target.to_string(), candidates: names })
        }
    }
}

/// Documents declaring the target: (index, whether the namespace is spelled out).
fn matches(docs: &[Node], t: &Target) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let (Some(kind), Some(meta)) = (d.get("kind").and_then(Node::text), d.get("metadata")) else { continue };
        if kind != t.kind || meta.get("name").and_then(Node::text) != Some(t.name.as_str()) {
            continue;
        }
        match meta.get("namespace").and_then(Node::text) {
            Some(ns) if ns == t.namespace => out.push((i, true)),
            Some(_) => {}
            None => out.push((i, false)),
        }
    }
    out
}

// ---------------------------------------------------------------- the tree

#[derive(Debug)]
enum Body {
    Scalar { value: String, style: ScalarStyle },
    Map { entries: Vec<(Node, Node)>, flow: bool, close: usize },
    Seq { items: Vec<Node>, flow: bool },
    Alias,
}

#[derive(Debug)]
struct Node {
    body: Body,
    span: Range<usize>,
    anchored: bool,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.body {
            Body::Map { entries, .. } => entries.iter().find(|(k, _)| k.text() == Some(key)).map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The end of the node's last content (a block collection's span runs
    /// on to the next token, which may be lines later).
    fn content_end(&self) -> usize {
        match &self.body {
            Body::Map { entries, flow: false, .. } => entries.last().map_or(self.span.start, |(_, v)| v.content_end()),
            Body::Seq { items, flow: false } => items.last().map_or(self.span.start, Node::content_end),
            _ => self.span.end,
        }
    }
}

/// The file's documents as trees with byte ranges.
fn parse(src: &str) -> Result<Vec<Node>, String> {
    let mut events = Vec::new();
    for next in Parser::new_from_str(src) {
        let (ev, span) = next.map_err(|e| format!("not plain YAML (a Helm or other template?): {e}"))?;
        let range = span.byte_range().ok_or("the YAML parser gave no byte offsets")?;
        match ev {
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::MappingEnd | Event::SequenceStart(..) | Event::SequenceEnd | Event::DocumentStart(..) | Event::DocumentEnd => {
                events.push((ev, range))
            }
            _ => {}
        }
    }
    let mut it = events.into_iter().peekable();
    let mut docs = Vec::new();
    while let Some((ev, _)) = it.next() {
        if let Event::DocumentStart(..) = ev {
            let node = build(&mut it)?;
            docs.push(node);
            match it.next() {
                Some((Event::DocumentEnd, _)) => {}
                _ => return Err("a document has more than one root node".into()),
            }
        }
    }
    Ok(docs)
}

type Events<'a> = std::iter::Peekable<std::vec::IntoIter<(Event<'a>, Range<usize>)>>;

fn build(it: &mut Events<'_>) -> Result<Node, String> {
    let (ev, range) = it.next().ok_or("the YAML ended inside a node")?;
    match ev {
        Event::Scalar(value, style, anchor, _) => Ok(Node { body: Body::Scalar { value: value.into_owned(), style }, span: range, anchored: anchor != 0 }),
        Event::Alias(_) => Ok(Node { body: Body::Alias, span: range, anchored: false }),
        Event::MappingStart(style, anchor, _) => {
            let mut entries = Vec::new();
            loop {
                if let Some((Event::MappingEnd, end)) = it.peek() {
                    let end = end.clone();
                    it.next();
                    let flow = matches!(style, granit_parser::StructureStyle::Flow);
                    return Ok(Node { span: range.start..end.end, body: Body::Map { entries, flow, close: end.start }, anchored: anchor != 0 });
                }
                let k = build(it)?;
                let v = build(it)?;
                entries.push((k, v));
            }
        }
        Event::SequenceStart(style, anchor, _) => {
            let mut items = Vec::new();
            loop {
                if let Some((Event::SequenceEnd, end)) = it.peek() {
                    let end = end.clone();
                    it.next();
                    let flow = matches!(style, granit_parser::StructureStyle::Flow);
                    return Ok(Node { span: range.start..end.end, body: Body::Seq { items, flow }, anchored: anchor != 0 });
                }
                items.push(build(it)?);
            }
        }
        other => Err(format!("unexpected YAML event {other:?}")),
    }
}

// ---------------------------------------------------------------- editing

struct Ctx<'a> {
    path: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn line(&self, at: usize) -> usize {
        self.src[..at.min(self.src.len())].matches('\n').count() + 1
    }

    fn refuse(&self, at: usize, why: impl Into<String>) -> ManifestError {
        ManifestError::Refused { path: self.path.to_string(), line: self.line(at), why: why.into() }
    }

    /// `node`, refusing what may not be edited through: an alias, an anchor
    /// others reference.
    fn plain<'n>(&self, node: &'n Node, what: &str) -> Result<&'n Node, ManifestError> {
        if matches!(node.body, Body::Alias) {
            return Err(self.refuse(node.span.start, format!("{what} is an alias (*name): the change belongs where the anchor is defined")));
        }
        if node.anchored {
            return Err(self.refuse(node.span.start, format!("{what} carries an anchor (&name) other places reuse: changing it would change them too")));
        }
        Ok(node)
    }

    /// The map under `key`, through the checks of `plain`; a merge key that
    /// may supply a missing key is refused rather than shadowed.
    fn map<'n>(&self, parent: &'n Node, key: &str, what: &str) -> Result<Option<&'n Node>, ManifestError> {
        match parent.get(key) {
            Some(n) => {
                let n = self.plain(n, what)?;
                match n.body {
                    Body::Map { .. } => Ok(Some(n)),
                    Body::Scalar { ref value, .. } if value == "~" || value == "null" || value.is_empty() => Ok(None),
                    _ => Err(self.refuse(n.span.start, format!("{what} is not a mapping"))),
                }
            }
            None => {
                self.no_merge(parent, key)?;
                Ok(None)
            }
        }
    }

    fn no_merge(&self, parent: &Node, key: &str) -> Result<(), ManifestError> {
        if let Some((k, _)) = parent.entry("<<") {
            return Err(self.refuse(k.span.start, format!("`{key}` may come from a merge key (<<)")));
        }
        Ok(())
    }

    /// A scalar ready to be replaced: not a block scalar, not a template.
    fn scalar<'n>(&self, node: &'n Node, what: &str) -> Result<(&'n str, ScalarStyle), ManifestError> {
        let node = self.plain(node, what)?;
        let Body::Scalar { value, style } = &node.body else {
            return Err(self.refuse(node.span.start, format!("{what} is not a single value")));
        };
        if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
            return Err(self.refuse(node.span.start, format!("{what} is a block scalar")));
        }
        if value.contains("{{") || value.contains("${") || value.contains("$(") {
            return Err(self.refuse(node.span.start, format!("{what} `{value}` is a template expression, filled in elsewhere")));
        }
        Ok((value, *style))
    }
}

/// A replacement of `range` by `text`, and where the new value must read back.
struct Splice {
    range: Range<usize>,
    text: String,
    check: Vec<Step>,
    value: String,
}

#[derive(Clone, Debug)]
enum Step {
    Key(&'static str),
    Index(usize),
}

struct Plan {
    splices: Vec<Splice>,
    changes: Vec<String>,
}

/// The value written in the scalar's own style.
fn styled(value: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::SingleQuoted => format!("'{value}'"),
        ScalarStyle::DoubleQuoted => format!("\"{value}\""),
        _ => value.to_string(),
    }
}

fn replace(node: &Node, value: String, style: ScalarStyle, check: Vec<Step>) -> Splice {
    Splice { range: node.span.clone(), text: styled(&value, style), check, value }
}

/// A new `key: value` in `map`, beside its siblings (block) or before the
/// closing brace (flow).
fn insert(ctx: &Ctx<'_>, map: &Node, key: &'static str, value: String, check: Vec<Step>) -> Result<Splice, ManifestError> {
    let Body::Map { entries, flow, close } = &map.body else {
        return Err(ctx.refuse(map.span.start, "not a mapping"));
    };
    let src = ctx.src;
    if *flow {
        let text = if entries.is_empty() { format!("{key}: {value}") } else { format!(", {key}: {value}") };
        return Ok(Splice { range: *close..*close, text, check, value });
    }
    let Some((last_key, last_value)) = entries.last() else {
        return Err(ctx.refuse(map.span.start, "an empty mapping"));
    };
    let line_start = src[..last_key.span.start].rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..last_key.span.start].chars().count();
    let nl = if src.contains("\r\n") { "\r\n" } else { "\n" };
    let end = last_value.content_end().max(last_key.span.end);
    let indent = " ".repeat(col);
    let (at, text) = if end > 0 && src.as_bytes()[end - 1] == b'\n' {
        (end, format!("{indent}{key}: {value}{nl}"))
    } else {
        match src[end..].find('\n') {
            Some(i) => (end + i + 1, format!("{indent}{key}: {value}{nl}")),
            None => (src.len(), format!("{nl}{indent}{key}: {value}")),
        }
    };
    Ok(Splice { range: at..at, text, check, value })
}

/// The pod spec of a workload kind, and the steps to it.
fn pod_spec<'n>(ctx: &Ctx<'_>, doc: &'n Node, target: &Target) -> Result<(&'n Node, Vec<Step>), ManifestError> {
    let path: &[&'static str] = match target.kind.as_str() {
        "Pod" => &["spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ReplicationController" | "Job" => &["spec", "template", "spec"],
        other => return Err(ctx.refuse(doc.span.start, format!("a {other} has no pod template nightshift knows"))),
    };
    let mut node = doc;
    let mut steps = Vec::new();
    for key in path {
        node = ctx.map(node, key, &format!("`{key}`"))?.ok_or_else(|| ctx.refuse(node.span.start, format!("{target} has no `{}`", path.join("."))))?;
        steps.push(Step::Key(key));
    }
    Ok((node, steps))
}

/// The container to change: the one named, or the only one.
fn container<'n>(ctx: &Ctx<'_>, doc: &'n Node, target: &Target, name: Option<&str>) -> Result<(&'n Node, String, Vec<Step>), ManifestError> {
    let (spec, mut steps) = pod_spec(ctx, doc, target)?;
    let mut all = Vec::new();
    for key in ["containers", "initContainers"] {
        let Some(list) = spec.get(key) else { continue };
        let list = ctx.plain(list, &format!("`{key}`"))?;
        let Body::Seq { items, .. } = &list.body else { continue };
        for (i, c) in items.iter().enumerate() {
            let c = ctx.plain(c, "a container")?;
            all.push((key, i, c, c.get("name").and_then(Node::text).unwrap_or("").to_string()));
        }
    }
    let listed = || all.iter().filter(|(k, ..)| *k == "containers").map(|(.., n)| n.as_str()).collect::<Vec<_>>().join(", ");
    let chosen = match name {
        Some(want) => all.iter().find(|(.., n)| n == want).ok_or_else(|| ctx.refuse(spec.span.start, format!("{target} has no container `{want}` (containers: {})", listed())))?,
        None => {
            let main: Vec<_> = all.iter().filter(|(k, ..)| *k == "containers").collect();
            match main.as_slice() {
                [one] => *one,
                [] => return Err(ctx.refuse(spec.span.start, format!("{target} has no containers"))),
                _ => return Err(ctx.refuse(spec.span.start, format!("{target} has several containers ({}) and the change names none", listed()))),
            }
        }
    };
    let (key, i, node, cname) = chosen;
    steps.push(Step::Key(key));
    steps.push(Step::Index(*i));
    Ok((node, cname.clone(), steps))
}

fn raise_memory(ctx: &Ctx<'_>, doc: &Node, target: &Target, name: Option<&str>, factor: f64) -> Result<Plan, ManifestError> {
    let (c, cname, steps) = container(ctx, doc, target, name)?;
    let none = || ctx.refuse(c.span.start, format!("container {cname} has no memory limit to raise (resources.limits.memory): setting one is its owners' decision"));
    let resources = ctx.map(c, "resources", "`resources`")?.ok_or_else(none)?;
    let limits = ctx.map(resources, "limits", "`resources.limits`")?.ok_or_else(none)?;
    let limit = limits.get("memory").ok_or_else(none)?;
    let mut plan = Plan { splices: Vec::new(), changes: Vec::new() };
    let mut one = |node: &Node, what: &str, path: [&'static str; 3]| -> Result<(), ManifestError> {
        let (old, style) = ctx.scalar(node, &format!("the memory {what}"))?;
        let new = crate::k8s::quantity::raise(old, factor).ok_or_else(|| ctx.refuse(node.span.start, format!("the memory {what} `{old}` is not a quantity")))?;
        let mut check = steps.clone();
        check.extend(path.iter().map(|k| Step::Key(k)));
        plan.changes.push(format!("memory {what} of container {cname}: {old} → {new}"));
        plan.splices.push(replace(node, new, style, check));
        Ok(())
    };
    one(limit, "limit", ["resources", "limits", "memory"])?;
    if let Some(requests) = ctx.map(resources, "requests", "`resources.requests`")?
        && let Some(request) = requests.get("memory")
    {
        one(request, "request", ["resources", "requests", "memory"])?;
    }
    Ok(plan)
}

fn set_replicas(ctx: &Ctx<'_>, doc: &Node, target: &Target, replicas: i32) -> Result<Plan, ManifestError> {
    if !matches!(target.kind.as_str(), "Deployment" | "StatefulSet" | "ReplicaSet" | "ReplicationController") {
        return Err(ctx.refuse(doc.span.start, format!("a {} has no replicas to set", target.kind)));
    }
    let spec = ctx.map(doc, "spec", "`spec`")?.ok_or_else(|| ctx.refuse(doc.span.start, format!("{target} has no spec")))?;
    let check = vec![Step::Key("spec"), Step::Key("replicas")];
    let new = replicas.to_string();
    match spec.get("replicas") {
        Some(node) => {
            let (old, style) = ctx.scalar(node, "`replicas`")?;
            if old == new {
                return Err(ctx.refuse(node.span.start, format!("replicas is already {new}")));
            }
            if old.parse::<i64>().is_err() {
                return Err(ctx.refuse(node.span.start, format!("replicas `{old}` is not a number")));
            }
            Ok(Plan { changes: vec![format!("replicas: {old} → {new}")], splices: vec![replace(node, new, style, check)] })
        }
        None => {
            ctx.no_merge(spec, "replicas")?;
            Ok(Plan { changes: vec![format!("replicas: 1 (unset) → {new}")], splices: vec![insert(ctx, spec, "replicas", new, check)?] })
        }
    }
}

fn liveness_delay(ctx: &Ctx<'_>, doc: &Node, target: &Target, name: Option<&str>, seconds: u32) -> Result<Plan, ManifestError> {
    let (c, cname, mut check) = container(ctx, doc, target, name)?;
    let probe = ctx.map(c, "livenessProbe", "`livenessProbe`")?.ok_or_else(|| ctx.refuse(c.span.start, format!("container {cname} has no livenessProbe to delay")))?;
    check.extend([Step::Key("livenessProbe"), Step::Key("initialDelaySeconds")]);
    let new = seconds.to_string();
    match probe.get("initialDelaySeconds") {
        Some(node) => {
            let (old, style) = ctx.scalar(node, "`initialDelaySeconds`")?;
            let current: u64 = old.parse().map_err(|_| ctx.refuse(node.span.start, format!("initialDelaySeconds `{old}` is not a number")))?;
            if current >= u64::from(seconds) {
                return Err(ctx.refuse(node.span.start, format!("the liveness probe of container {cname} already waits {current}s")));
            }
            Ok(Plan { changes: vec![format!("liveness probe initial delay of container {cname}: {old}s → {new}s")], splices: vec![replace(node, new, style, check)] })
        }
        None => {
            ctx.no_merge(probe, "initialDelaySeconds")?;
            Ok(Plan { changes: vec![format!("liveness probe initial delay of container {cname}: 0s (unset) → {new}s")], splices: vec![insert(ctx, probe, "initialDelaySeconds", new, check)?] })
        }
    }
}

fn apply(src: &str, splices: &[Splice]) -> String {
    let mut order: Vec<&Splice> = splices.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.range.start));
    let mut out = src.to_string();
    for s in order {
        out.replace_range(s.range.clone(), &s.text);
    }
    out
}

/// The edited file parses, and every changed value reads back where it was meant to be.
fn verify(path: &str, after: &str, index: usize, target: &Target, splices: &[Splice]) -> Result<(), ManifestError> {
    let fail = |why: String| ManifestError::Unreadable { path: path.to_string(), why: format!("the edit did not read back ({why}); nothing was changed") };
    let docs = parse(after).map_err(fail)?;
    let doc = docs.get(index).ok_or_else(|| fail("a document went missing".into()))?;
    if !matches(&docs, target).iter().any(|(i, _)| *i == index) {
        return Err(fail(format!("{target} moved")));
    }
    for s in splices {
        let mut node = doc;
        for step in &s.check {
            node = match (step, &node.body) {
                (Step::Key(k), Body::Map { .. }) => node.get(k),
                (Step::Index(i), Body::Seq { items, .. }) => items.get(*i),
                _ => None,
            }
            .ok_or_else(|| fail(format!("{step:?} is gone")))?;
        }
        if node.text() != Some(s.value.as_str()) {
            return Err(fail(format!("read {:?}, wanted {}", node.text(), s.value)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: &str, ns: &str, name: &str) -> Target {
        Target { kind: kind.into(), namespace: ns.into(), name: name.into() }
    }

    type Res = Result<(), Box<dyn std::error::Error>>;

    fn edit_str(src: &str, t: &Target, change: &Change) -> Result<Edit, ManifestError> {
        let dir = tempfile::tempdir().map_err(|e| ManifestError::Unreadable { path: "tmp".into(), why: e.to_string() })?;
        std::fs::write(dir.path().join("m.yaml"), src).map_err(|e| ManifestError::Unreadable { path: "m.yaml".into(), why: e.to_string() })?;
        edit(dir.path(), Path::new("m.yaml"), t, change)
    }

    /// The refusal's message; an edit that went through fails the test.
    fn refused<T: fmt::Debug>(r: Result<T, ManifestError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(v) => panic!("expected a refusal, got {v:?}"),
        }
    }

    const MEM: Change = Change::RaiseMemory { container: None, factor: 1.5 };

    #[test]
    fn raises_limit_and_request_in_their_own_quoting_and_line_endings() -> Res {
        let src = "kind: Deployment\r\nmetadata:\r\n  name: api\r\nspec:\r\n  template:\r\n    spec:\r\n      containers:\r\n      - name: app\r\n        resources:\r\n          limits: {memory: '1Gi', cpu: 1}\r\n          requests:\r\n            memory: \"500M\" # measured\r\n";
        let e = edit_str(src, &target("Deployment", "prod", "api"), &MEM)?;
        assert_eq!(e.after, src.replace("'1Gi'", "'1536Mi'").replace("\"500M\"", "\"750M\""));
        assert_eq!(e.changes, ["memory limit of container app: 1Gi → 1536Mi", "memory request of container app: 500M → 750M"]);
        Ok(())
    }

    #[test]
    fn refuses_anchors_aliases_merges_templates_and_missing_limits() -> Res {
        let cases = [
            ("kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources: &r\n          limits: {memory: 1Gi}\n", "anchor"),
            (
                "x: &r {limits: {memory: 1Gi}}\n---\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources: *r\n",
                "not plain YAML",
            ),
            (
                "kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits: {memory: \"${MEM}\"}\n",
                "template expression",
            ),
            (
                "kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          requests: {memory: 1Gi}\n",
                "no memory limit",
            ),
            (
                "kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits:\n            memory: |\n              1Gi\n",
                "block scalar",
            ),
        ];
        for (src, want) in cases {
            let err = refused(edit_str(src, &target("Deployment", "prod", "api"), &MEM));
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.contains("m.yaml"), "{err}");
        }
        // An alias within one document: the anchor and its use are both refused.
        let src = "kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        resources: &r {limits: {memory: 1Gi}}\n      - name: b\n        resources: *r\n";
        let err = refused(edit_str(src, &target("Deployment", "prod", "api"), &Change::RaiseMemory { container: Some("b".into()), factor: 1.5 }));
        assert!(err.contains("alias") && err.contains(":10:"), "{err}");
        let src = "kind: Deployment\nmetadata: {name: api}\nspec:\n  <<: *defaults\n  template: {}\n";
        assert!(edit_str(src, &target("Deployment", "prod", "api"), &Change::SetReplicas { replicas: 3 }).is_err());
        Ok(())
    }

    #[test]
    fn inserts_replicas_beside_siblings_and_into_flow_maps() -> Res {
        let src = "kind: Deployment\nmetadata:\n  name: api\n  namespace: prod\nspec:\n  selector:\n    matchLabels: {app: api}\n  template:\n    spec:\n      containers: [{name: app}]\n";
        let e = edit_str(src, &target("Deployment", "prod", "api"), &Change::SetReplicas { replicas: 3 })?;
        assert_eq!(e.after, format!("{src}  replicas: 3\n"));
        let src = "kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        livenessProbe: {exec: {command: [true]}}";
        let e = edit_str(src, &target("Deployment", "x", "api"), &Change::LivenessDelay { container: None, seconds: 20 })?;
        assert!(e.after.ends_with("livenessProbe: {exec: {command: [true]}, initialDelaySeconds: 20}"), "{}", e.after);
        let err = refused(edit_str(src, &target("DaemonSet", "x", "api"), &Change::SetReplicas { replicas: 3 }));
        assert!(err.contains("no DaemonSet"), "{err}");
        Ok(())
    }

    #[test]
    fn finds_by_kind_name_and_namespace_and_refuses_ambiguity_and_escapes() -> Res {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("base"))?;
        std::fs::create_dir_all(root.join("prod"))?;
        std::fs::create_dir_all(root.join(".git"))?;
        std::fs::write(root.join("base/api.yaml"), "kind: Deployment\nmetadata: {name: api}\n")?;
        std::fs::write(root.join("prod/api.yml"), "kind: Service\nmetadata: {name: api, namespace: prod}\n---\nkind: Deployment\nmetadata: {name: api, namespace: prod}\n")?;
        std::fs::write(root.join("prod/chart.yaml"), "{{ if .Values.api }}\nkind: Deployment\n")?;
        std::fs::write(root.join(".git/api.yaml"), "kind: Deployment\nmetadata: {name: api, namespace: prod}\n")?;
        let t = target("Deployment", "prod", "api");
        assert_eq!(find(root, &Locate::Search, &t)?, Path::new("prod/api.yml"));
        let found = find(root, &Locate::Search, &target("Deployment", "dev", "api"))?;
        assert_eq!(found, Path::new("base/api.yaml"), "the one without a namespace serves every namespace");
        std::fs::write(root.join("prod/api-copy.yaml"), "kind: Deployment\nmetadata: {name: api, namespace: prod}\n")?;
        let err = refused(find(root, &Locate::Search, &t));
        assert!(err.contains("prod/api-copy.yaml") && err.contains("prod/api.yml") && err.contains("manifests"), "{err}");
        assert_eq!(find(root, &Locate::Template("{namespace}/{name}.yml".into()), &t)?, Path::new("prod/api.yml"));
        let err = refused(find(root, &Locate::Template("{namespace}/{name}.yaml".into()), &target("Deployment", "prod", "web")));
        assert!(err.contains("does not exist") && err.contains("web"), "{err}");
        assert!(find(root, &Locate::Template("{name}/x.yaml".into()), &target("Deployment", "prod", "..")).is_err());
        Ok(())
    }
}
