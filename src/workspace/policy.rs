//! The `policy` block of AGENTS.md, validated into a `Policy`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::problems::Problems;
use super::yaml::{MapReader, Node, Value};
use crate::actions::clean_logs::CleanSettings;
use crate::actions::notify::{Webhook, WebhookFormat};
use crate::actions::{ActionKind, Target};
use crate::duration::HumanDuration;
use crate::policy::{Decision, Example, Match, Mode, Policy, Protected, Rule, Subject};
use crate::severity::Severity;

const TOP_KEYS: &[&str] = &[
    "mode",
    "unknown_action",
    "max_blast_radius",
    "max_actions_per_hour",
    "circuit_breaker",
    "approval_ttl",
    "rules",
    "protected",
    "commands",
    "clean_roots",
    "clean_logs",
    "webhooks",
    "notify_window",
    "model",
    "repository",
    "escalation",
    "replace_node",
    "resize_volume",
    "public_url",
    "approver_groups",
];
const RULE_KEYS: &[&str] = &["action", "decide", "max_per_hour", "abort_window", "match", "examples", "promote_after", "approvers"];
const MATCH_KEYS: &[&str] = &["target", "namespace", "host", "check"];
const EXAMPLE_KEYS: &[&str] = &["action", "target", "namespace", "host", "check", "level", "blast_radius", "expect"];
const PROTECTED_KEYS: &[&str] = &["namespaces", "hosts", "targets"];
const CLEAN_KEYS: &[&str] = &["max_age", "gzip_over_mb", "core_dumps"];
const WEBHOOK_KEYS: &[&str] = &["name", "url", "auth_header_env", "severities", "format", "token_env", "channel"];
const MODEL_KEYS: &[&str] = &["base_url", "name", "api_key_env", "temperature", "timeout", "max_turns", "max_tokens", "max_completion_tokens", "deadline"];
const REPLACE_NODE_KEYS: &[&str] = &["webhook", "after"];
const RESIZE_VOLUME_KEYS: &[&str] = &["webhook"];
const ESCALATION_KEYS: &[&str] = &["after", "notify"];
const REPOSITORY_KEYS: &[&str] = &["remote", "repo", "token_env", "base", "cache", "manifests", "api_url", "author", "labels", "notes_url"];

fn decision_hint() -> &'static str {
    "use auto, confirm, abort-window, alert or forbid"
}

fn action_names() -> String {
    ActionKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

fn decision(m: &MapReader<'_>, key: &str, problems: &mut Problems) -> Option<Decision> {
    let s = m.str(key, problems)?;
    let d = Decision::parse(&s);
    if d.is_none() {
        problems.push(m.key_line(key), format!("{}: `{key}: {s}` is not a decision", m.what), decision_hint());
    }
    d
}

fn action_kind(m: &MapReader<'_>, problems: &mut Problems) -> Option<ActionKind> {
    let name = m.required_str("action", problems)?;
    let kind = ActionKind::from_name(&name);
    if kind.is_none() {
        let names: Vec<&str> = ActionKind::ALL.iter().map(|k| k.name()).collect();
        let hint = match super::yaml::closest(&name, &names) {
            Some(n) => format!("did you mean `{n}`? actions: {}", action_names()),
            None => format!("use one of: {}", action_names()),
        };
        problems.push(m.key_line("action"), format!("{}: nightshift has no action `{name}`", m.what), hint);
    }
    kind
}

/// Validates the parsed block, reporting every problem.
pub fn from_node(root: &Node, problems: &mut Problems) -> Policy {
    let mut p = Policy::default();
    let Some(top) = MapReader::new(root, "the policy block", problems) else {
        return p;
    };
    match top.str("mode", problems).as_deref() {
        None | Some("dry-run") => {}
        Some("execute") => p.mode = Mode::Execute,
        Some(other) => problems.push(top.key_line("mode"), format!("unknown mode `{other}`"), "use `mode: dry-run` (the default) or `mode: execute`"),
    }
    if let Some(d) = decision(&top, "unknown_action", problems) {
        if d == Decision::Auto {
            problems.push(top.key_line("unknown_action"), "`unknown_action: auto` would let any action without a rule run unasked", "use confirm (the default), alert or forbid");
        } else {
            p.unknown_action = d;
        }
    }
    if let Some(n) = top.int("max_blast_radius", 1, 100_000, problems) {
        p.max_blast_radius = n as u32;
    }
    if let Some(n) = top.int("max_actions_per_hour", 0, 100_000, problems) {
        p.max_actions_per_hour = n as u32;
    }
    if let Some(n) = top.int("circuit_breaker", 0, 1000, problems) {
        p.circuit_breaker = n as u32;
    }
    if let Some(d) = top.duration("notify_window", problems) {
        p.notify_window = d.as_duration();
    }
    if let Some(d) = top.duration("approval_ttl", problems) {
        p.approval_ttl = d.as_duration();
    }
    if let Some(nodes) = top.seq("rules", problems) {
        for node in nodes {
            if let Some(rule) = rule(node, problems) {
                p.rules.push(rule);
            }
        }
    }
    if let Some(node) = top.get("protected")
        && let Some(m) = MapReader::new(node, "protected", problems)
    {
        p.protected = Protected {
            namespaces: m.str_list("namespaces", problems).unwrap_or_default(),
            hosts: m.str_list("hosts", problems).unwrap_or_default(),
            targets: m.str_list("targets", problems).unwrap_or_default(),
        };
        m.finish(PROTECTED_KEYS, problems);
    }
    if let Some(node) = top.get("commands") {
        (p.commands, p.command_instances) = commands(node, problems);
    }
    if let Some(roots) = top.str_list("clean_roots", problems) {
        for r in roots {
            let path = PathBuf::from(&r);
            if !path.is_absolute() || path.components().count() < 2 {
                problems.push(top.key_line("clean_roots"), format!("clean root `{r}` must be an absolute directory below /"), "write a directory such as /var/log/app");
            } else {
                p.clean_roots.push(path);
            }
        }
    }
    if let Some(node) = top.get("clean_logs")
        && let Some(m) = MapReader::new(node, "clean_logs", problems)
    {
        let mut s = CleanSettings::default();
        if let Some(d) = m.duration("max_age", problems) {
            s.max_age = d.as_duration();
        }
        if let Some(mb) = m.number("gzip_over_mb", 0.0, 1e9, problems) {
            s.gzip_over_bytes = (mb * 1024.0 * 1024.0) as u64;
        }
        if let Some(b) = m.bool("core_dumps", problems) {
            s.core_dumps = b;
        }
        m.finish(CLEAN_KEYS, problems);
        p.clean_logs = s;
    }
    if let Some(nodes) = top.seq("webhooks", problems) {
        for node in nodes {
            if let Some(w) = webhook(node, problems) {
                if p.webhooks.iter().any(|x| x.name == w.name) {
                    problems.push(Some(node.line), format!("webhook `{}` is declared twice", w.name), "give every webhook a unique name");
                }
                p.webhooks.push(w);
            }
        }
    }
    if let Some(nodes) = top.seq("escalation", problems) {
        p.escalation = escalation(nodes, &p.webhooks, problems);
    }
    if let Some(node) = top.get("replace_node")
        && let Some(m) = MapReader::new(node, "replace_node", problems)
    {
        let webhook = m.required_str("webhook", problems);
        if let Some(w) = &webhook {
            webhook_declared(&p.webhooks, w, "replace_node", m.key_line("webhook"), problems);
        }
        let after = m.duration("after", problems).map_or(std::time::Duration::from_secs(600), |d| d.as_duration());
        m.finish(REPLACE_NODE_KEYS, problems);
        p.replace_node = webhook.map(|webhook| crate::policy::NodeReplacement { webhook, after });
    }
    if let Some(node) = top.get("resize_volume")
        && let Some(m) = MapReader::new(node, "resize_volume", problems)
    {
        let webhook = m.required_str("webhook", problems);
        if let Some(w) = &webhook {
            webhook_declared(&p.webhooks, w, "resize_volume", m.key_line("webhook"), problems);
        }
        m.finish(RESIZE_VOLUME_KEYS, problems);
        p.resize_volume = webhook.map(|webhook| crate::policy::VolumeResize { webhook });
    }
    if let Some(node) = top.get("model")
        && let Some(m) = MapReader::new(node, "model", problems)
    {
        secrets_named(&m, "model", problems);
        let base_url = m.str("base_url", problems);
        if let Some(u) = base_url.as_ref().filter(|u| reqwest::Url::parse(u).is_err()) {
            problems.push(m.key_line("base_url"), format!("model: `{u}` is not a URL"), "write e.g. http://127.0.0.1:8080/v1");
        }
        p.model = Some(crate::llm::ModelSpec {
            base_url,
            name: m.str("name", problems),
            api_key_env: m.str("api_key_env", problems),
            temperature: m.number("temperature", 0.0, 2.0, problems).map(|t| t as f32),
            timeout: m.duration("timeout", problems).map(HumanDuration::as_duration),
            max_turns: m.int("max_turns", 1, 100, problems).map(|n| n as u32),
            max_tokens: m.int("max_tokens", 100, 10_000_000, problems).map(|n| n as u32),
            max_completion_tokens: m.int("max_completion_tokens", 16, 1_000_000, problems).map(|n| n as u32),
            deadline: m.duration("deadline", problems).map(HumanDuration::as_duration),
        });
        m.finish(MODEL_KEYS, problems);
    }
    if let Some(node) = top.get("repository")
        && let Some(m) = MapReader::new(node, "repository", problems)
    {
        secrets_named(&m, "repository", problems);
        p.repository = repository(&m, problems);
        m.finish(REPOSITORY_KEYS, problems);
    }
    humans(&top, &mut p, problems);
    top.finish(TOP_KEYS, problems);
    for (line, msg) in crate::policy::check_examples(&p) {
        problems.push(Some(line), msg, "fix the rule or the example: examples are the rule's tests");
    }
    p
}

/// `public_url:` and `approver_groups:`, and every rule's `approvers` checked against the groups.
fn humans(top: &MapReader<'_>, p: &mut Policy, problems: &mut Problems) {
    if let Some(u) = top.str("public_url", problems) {
        match reqwest::Url::parse(&u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => p.public_url = Some(u.trim_end_matches('/').to_string()),
            _ => problems.push(top.key_line("public_url"), format!("`public_url: {u}` is not an http(s) URL"), "write where `serve` is reachable, e.g. https://nightshift.acme.example"),
        }
    }
    if let Some(node) = top.get("approver_groups")
        && let Some(m) = MapReader::new(node, "approver_groups", problems)
    {
        let names: Vec<(String, usize)> = m.keys().map(|(k, l)| (k.to_string(), l)).collect();
        for (name, line) in names {
            let ids = m.str_list(&name, problems).unwrap_or_default();
            if ids.is_empty() || ids.iter().any(|i| i.starts_with('@') || i.trim().is_empty()) {
                problems.push(Some(line), format!("approver group `{name}` must list at least one Slack user id or login (no @groups inside)"), format!("write e.g. `{name}: [U024BE7LH, ana]`"));
            }
            p.approver_groups.insert(name, ids);
        }
        m.finish(&[], problems);
    }
    for r in &p.rules {
        for a in r.approvers.iter().filter_map(|a| a.strip_prefix('@')) {
            if !p.approver_groups.contains_key(a) {
                problems.push(
                    Some(r.line),
                    format!("rule at line {}: approver group `@{a}` is not declared", r.line),
                    "declare it under `approver_groups:` (name: [ids]) or name the approvers directly",
                );
            }
        }
    }
}

/// A block that names a webhook (`what`) must name one under `webhooks:`.
fn webhook_declared(webhooks: &[crate::actions::notify::Webhook], name: &str, what: &str, line: Option<usize>, problems: &mut Problems) {
    if !webhooks.iter().any(|w| w.name == name) {
        let declared: Vec<&str> = webhooks.iter().map(|w| w.name.as_str()).collect();
        problems.push(line, format!("{what}: no webhook named `{name}`"), format!("declare it under webhooks: (declared: {})", if declared.is_empty() { "none".into() } else { declared.join(", ") }));
    }
}

/// The `escalation:` ladder: levels in increasing `after`, each naming
/// declared webhooks (or none: every webhook whose severities match).
fn escalation(nodes: &[Node], webhooks: &[crate::actions::notify::Webhook], problems: &mut Problems) -> Vec<crate::policy::EscalationLevel> {
    let mut levels: Vec<crate::policy::EscalationLevel> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(m) = MapReader::new(node, "escalation level", problems) else { continue };
        let m = m.named(format!("escalation level {}", i + 1));
        let after = m.duration("after", problems).map(|d| d.as_duration());
        if after.is_none() && !m.has("after") {
            problems.push(Some(node.line), format!("escalation level {} has no `after`", i + 1), "write e.g. `- after: 5m` (how long an incident is open and unacknowledged before this level)");
        }
        let notify = m.str_list("notify", problems).unwrap_or_default();
        for name in &notify {
            webhook_declared(webhooks, name, &format!("escalation level {}", i + 1), m.key_line("notify"), problems);
        }
        m.finish(ESCALATION_KEYS, problems);
        let Some(after) = after else { continue };
        if let Some(prev) = levels.last().filter(|l| l.after >= after) {
            problems.push(
                Some(node.line),
                format!("escalation level {} comes after {}s, not later than the level before it ({}s)", i + 1, after.as_secs(), prev.after.as_secs()),
                "list the levels from the first to the last, each later than the one before",
            );
        }
        levels.push(crate::policy::EscalationLevel { after, notify });
    }
    levels
}

/// The `repository:` block: where pull requests go and how manifests are found.
fn repository(m: &MapReader<'_>, problems: &mut Problems) -> Option<crate::pr::RepoConfig> {
    use crate::pr::{DEFAULT_API, RepoConfig, manifest::Locate};
    let remote = m.required_str("remote", problems)?;
    // Every key is read (and checked) even when one is wrong, so one run lists every problem.
    let owner_repo = match m.str("repo", problems) {
        Some(r) => match r.split_once('/') {
            Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => Some((o.to_string(), n.to_string())),
            _ => {
                problems.push(m.key_line("repo"), format!("repository: `repo: {r}` is not owner/name"), "write e.g. `repo: acme/infra`");
                None
            }
        },
        None => {
            let on = RepoConfig::owner_repo(&remote);
            if on.is_none() {
                problems.push(m.key_line("remote"), format!("repository: cannot tell the GitHub repository from `{remote}`"), "add `repo: owner/name`");
            }
            on
        }
    };
    let base = m.str("base", problems).unwrap_or_else(|| "main".into());
    if base.is_empty() || base.starts_with("nightshift/") || base.contains("..") || base.contains(' ') {
        problems.push(
            m.key_line("base"),
            format!("repository: `base: {base}` cannot be the base branch"),
            "name the branch pull requests target, e.g. `base: main` (nightshift pushes only nightshift/ branches)",
        );
    }
    let manifests = match m.str("manifests", problems) {
        None => Locate::Search,
        Some(t) if t == "search" => Locate::Search,
        Some(t) => {
            let unknown: Vec<&str> = t.match_indices('{').filter_map(|(i, _)| t[i..].find('}').map(|j| &t[i..=i + j])).filter(|p| !["{namespace}", "{name}", "{kind}"].contains(p)).collect();
            if t.starts_with('/') || t.split('/').any(|c| c == "..") || !unknown.is_empty() {
                problems.push(
                    m.key_line("manifests"),
                    format!("repository: `manifests: {t}` is not a path template inside the repository"),
                    "write `search` or a relative template with {namespace}, {name} and {kind}, e.g. k8s/overlays/{namespace}/{name}/",
                );
            }
            Locate::Template(t)
        }
    };
    let api_url = m.str("api_url", problems).unwrap_or_else(|| DEFAULT_API.into());
    if reqwest::Url::parse(&api_url).is_err() {
        problems.push(m.key_line("api_url"), format!("repository: `api_url: {api_url}` is not a URL"), "write https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise");
    }
    let (author_name, author_email) = match m.str("author", problems) {
        None => ("nightshift".to_string(), "nightshift@localhost".to_string()),
        Some(a) => match a.trim().strip_suffix('>').and_then(|a| a.split_once('<')) {
            Some((n, e)) if !n.trim().is_empty() && e.contains('@') => (n.trim().to_string(), e.trim().to_string()),
            _ => {
                problems.push(m.key_line("author"), format!("repository: `author: {a}` is not `Name <email>`"), "write e.g. `author: nightshift <nightshift@acme.example>`");
                ("nightshift".to_string(), "nightshift@localhost".to_string())
            }
        },
    };
    let notes_url = m.str("notes_url", problems);
    if let Some(u) = notes_url.as_ref().filter(|u| !u.contains("{id}")) {
        problems.push(
            m.key_line("notes_url"),
            format!("repository: `notes_url: {u}` has no {{id}}"),
            "write where notes are read, with {id} for the incident, e.g. https://git.acme.example/ops/memory/src/branch/main/incidents/{id}.md",
        );
    }
    let cache = m.str("cache", problems);
    let token_env = m.str("token_env", problems).unwrap_or_else(|| "GITHUB_TOKEN".into());
    let labels = m.str_list("labels", problems).unwrap_or_else(|| vec!["nightshift".into()]);
    let (owner, name) = owner_repo?;
    let cache = cache.map_or_else(|| RepoConfig::default_cache(&owner, &name), std::path::PathBuf::from);
    Some(RepoConfig { remote, token_env, base, cache, manifests, api_url: api_url.trim_end_matches('/').to_string(), author_name, author_email, labels, notes_url, owner, name })
}

/// A key that would hold a secret itself (`api_key:`, `token:`) is refused.
fn secrets_named(m: &MapReader<'_>, block: &str, problems: &mut Problems) {
    for (k, line) in m.keys() {
        if k.ends_with("key") || k.ends_with("token") || k == "password" {
            m.get(k);
            problems.push(Some(line), format!("{block}: `{k}` would put a secret in AGENTS.md"), format!("name the environment variable instead: `{k}_env: VAR`"));
        }
    }
}

fn rule(node: &Node, problems: &mut Problems) -> Option<Rule> {
    let m = MapReader::new(node, format!("rule at line {}", node.line), problems)?;
    let action = action_kind(&m, problems);
    let decide = match m.has("decide") {
        true => decision(&m, "decide", problems),
        false => {
            problems.push(Some(node.line), format!("{}: `decide` is missing", m.what), decision_hint());
            None
        }
    };
    let max_per_hour = m.int("max_per_hour", 0, 100_000, problems).map(|n| n as u32);
    let abort_window = m.duration("abort_window", problems).map(HumanDuration::as_duration);
    if abort_window.is_some() && decide.is_some_and(|d| d != Decision::AbortWindow) {
        problems.push(m.key_line("abort_window"), format!("{}: `abort_window` only applies to `decide: abort-window`", m.what), "remove it or change decide");
    }
    if abort_window.is_some_and(|w| w.is_zero() || w > Duration::from_secs(86_400)) {
        problems.push(m.key_line("abort_window"), format!("{}: `abort_window` must be between 1ms and 1d", m.what), "write e.g. `abort_window: 30s`");
    }
    let promote_after = m.int("promote_after", 1, 10_000, problems).map(|n| n as u32);
    if m.has("promote_after") && decide.is_some_and(|d| d != Decision::Confirm) {
        problems.push(
            m.key_line("promote_after"),
            format!("{}: `promote_after` only applies to `decide: confirm`", m.what),
            "remove it, or write `decide: confirm` (trust is earned from human approvals)",
        );
    }
    let matches = match m.get("match") {
        Some(node) => match MapReader::new(node, format!("{}: match", m.what), problems) {
            Some(mm) => {
                let out = Match { target: mm.str("target", problems), namespace: mm.str("namespace", problems), host: mm.str("host", problems), check: mm.str("check", problems) };
                mm.finish(MATCH_KEYS, problems);
                out
            }
            None => Match::default(),
        },
        None => Match::default(),
    };
    let mut examples = Vec::new();
    if let Some(nodes) = m.seq("examples", problems) {
        for ex in nodes {
            if let Some(e) = example(ex, action, problems) {
                examples.push(e);
            }
        }
    }
    let approvers = m.str_list("approvers", problems).unwrap_or_default();
    if m.has("approvers") && (approvers.is_empty() || approvers.iter().any(|a| a.trim().is_empty() || a == "@")) {
        problems.push(
            m.key_line("approvers"),
            format!("{}: `approvers` must name at least one Slack user id, login or @group", m.what),
            "write e.g. `approvers: [U024BE7LH, \"@oncall\"]`, or remove it to let anyone decide",
        );
    }
    m.finish(RULE_KEYS, problems);
    Some(Rule { line: node.line, action: action?, decide: decide?, max_per_hour, abort_window, matches, examples, promote_after, approvers })
}

fn example(node: &Node, rule_action: Option<ActionKind>, problems: &mut Problems) -> Option<Example> {
    let m = MapReader::new(node, format!("example at line {}", node.line), problems)?;
    let kind = if m.has("action") { action_kind(&m, problems) } else { rule_action };
    let target = m.required_str("target", problems);
    let expect = match m.has("expect") {
        true => decision(&m, "expect", problems),
        false => {
            problems.push(Some(node.line), format!("{}: `expect` is missing", m.what), decision_hint());
            None
        }
    };
    let level = super::heartbeat::level(&m, problems);
    let blast_radius = m.int("blast_radius", 0, 1_000_000, problems).unwrap_or(1) as u32;
    let mut target = Target { id: target.clone().unwrap_or_default(), namespace: m.str("namespace", problems), host: m.str("host", problems) };
    // `namespace/name` targets carry their namespace, as Kubernetes targets do.
    if target.namespace.is_none()
        && let Some((ns, _)) = target.id.split_once('/').filter(|(ns, _)| !ns.is_empty())
    {
        target.namespace = Some(ns.to_string());
    }
    let check = m.str("check", problems);
    m.finish(EXAMPLE_KEYS, problems);
    Some(Example { line: node.line, subject: Subject { kind: kind?, target, check, level, blast_radius, to_zero: false, together: 0 }, expect: expect? })
}

/// `commands:`: `name: command line`, or `name: {run: command line,
/// instances: N}` for a command that touches N instances (a fleet restart):
/// the gate counts them against `max_blast_radius`.
fn commands(node: &Node, problems: &mut Problems) -> (BTreeMap<String, String>, BTreeMap<String, u32>) {
    let mut out = BTreeMap::new();
    let mut instances = BTreeMap::new();
    let Value::Map(entries) = &node.value else {
        problems.push(Some(node.line), "`commands` must be a mapping of name: command", "write e.g. `restart-app: systemctl restart app`");
        return (out, instances);
    };
    for (k, v) in entries {
        let name = k.scalar_text().unwrap_or_default();
        if !super::heartbeat::is_valid_name(&name) {
            problems.push(Some(k.line), format!("command name `{name}` may only contain a-z, 0-9 and -"), "rename it, e.g. restart-app");
        }
        if let Value::Map(_) = &v.value {
            let Some(m) = MapReader::new(v, format!("command `{name}`"), problems) else { continue };
            match m.str("run", problems).filter(|c| !c.trim().is_empty()) {
                Some(cmd) => {
                    out.insert(name.clone(), cmd);
                }
                None => problems.push(Some(v.line), format!("command `{name}` has no `run:` command line"), "write e.g. `run: ansible-playbook restart.yml` beside `instances:`"),
            }
            if let Some(n) = m.int("instances", 1, 100_000, problems) {
                instances.insert(name, n as u32);
            }
            m.finish(&["run", "instances"], problems);
            continue;
        }
        match v.scalar_text().filter(|c| !c.trim().is_empty()) {
            Some(cmd) => {
                out.insert(name, cmd);
            }
            None => problems.push(Some(v.line), format!("command `{name}` has no command line"), "write the command to run, e.g. `systemctl restart app`"),
        }
    }
    (out, instances)
}

fn webhook(node: &Node, problems: &mut Problems) -> Option<Webhook> {
    let m = MapReader::new(node, "webhook", problems)?;
    let name = m.required_str("name", problems);
    let format = match m.str("format", problems).as_deref() {
        None | Some("json") => WebhookFormat::Json,
        Some("slack") => WebhookFormat::Slack,
        Some(f) => {
            problems.push(m.key_line("format"), format!("webhook: unknown format `{f}`"), "use `format: json` (the default) or `format: slack`");
            WebhookFormat::Json
        }
    };
    let token_env = m.str("token_env", problems);
    let channel = m.str("channel", problems);
    if format == WebhookFormat::Json && (token_env.is_some() || channel.is_some()) {
        problems.push(m.key_line("token_env").or(m.key_line("channel")), "webhook: `token_env` and `channel` are for `format: slack`", "add `format: slack`, or remove them");
    }
    if format == WebhookFormat::Slack && token_env.is_some() != channel.is_some() {
        problems.push(
            Some(node.line),
            "webhook: a Slack bot token needs both `token_env` and `channel`",
            "write `token_env: SLACK_BOT_TOKEN` and `channel: C0123456789`, or only `url:` for an incoming webhook",
        );
    }
    // A bot-token webhook names the Web API base in `url` (default Slack's own).
    let url = if format == WebhookFormat::Slack && token_env.is_some() && !m.has("url") { Some(crate::actions::notify::SLACK_API.to_string()) } else { m.required_str("url", problems) };
    if let Some(u) = &url
        && (!(u.starts_with("http://") || u.starts_with("https://")) || reqwest::Url::parse(u).is_err())
    {
        problems.push(m.key_line("url"), format!("webhook url `{u}` is not an http(s) URL"), "write e.g. http://127.0.0.1:5678/webhook/nightshift");
    }
    let mut severities = Vec::new();
    for s in m.str_list("severities", problems).unwrap_or_else(|| vec!["info".into(), "warning".into(), "critical".into()]) {
        match Severity::parse(&s) {
            Some(sev) => severities.push(sev),
            None => problems.push(m.key_line("severities"), format!("unknown severity `{s}`"), "use info, warning or critical"),
        }
    }
    let auth_header_env = m.str("auth_header_env", problems);
    for (k, line) in m.keys() {
        if k == "auth_header" || k == "token" {
            problems.push(Some(line), format!("webhook: `{k}` would put a secret in AGENTS.md"), "use `auth_header_env: VAR` and set VAR in the environment");
            m.get(k);
        }
    }
    m.finish(WEBHOOK_KEYS, problems);
    Some(Webhook { name: name?, url: url?, auth_header_env, severities, format, token_env, channel })
}
