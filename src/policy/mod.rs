//! The policy gate: a pure function from (policy, mode, subject, history) to a
//! decision with its reason. Execution lives elsewhere; nothing here touches
//! the world, and nothing an action carries (log text, model claims) is read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actions::clean_logs::CleanSettings;
use crate::actions::notify::Webhook;
use crate::actions::{ActionKind, Target};
use crate::severity::Level;

/// What happens to an action. Ordered from the most to the least permissive,
/// so the strictest of several verdicts is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Auto,
    AbortWindow,
    Confirm,
    Alert,
    Forbid,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Auto => "auto",
            Decision::AbortWindow => "abort-window",
            Decision::Confirm => "confirm",
            Decision::Alert => "alert",
            Decision::Forbid => "forbid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Auto, Self::AbortWindow, Self::Confirm, Self::Alert, Self::Forbid].into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Execute,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Execute => "execute",
        }
    }
}

/// Optional conditions of a rule; each present one must match. Values may
/// use `*` as a wildcard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub target: Option<String>,
    pub namespace: Option<String>,
    pub host: Option<String>,
    pub check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub line: usize,
    pub subject: Subject,
    pub expect: Decision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Line of the rule in AGENTS.md, named in reasons.
    pub line: usize,
    pub action: ActionKind,
    pub decide: Decision,
    pub max_per_hour: Option<u32>,
    pub abort_window: Option<Duration>,
    pub matches: Match,
    pub examples: Vec<Example>,
    /// `decide: confirm` only: after this many human-approved executions in
    /// a row, each verified healthy, the rule decides `auto` (until one fails).
    pub promote_after: Option<u32>,
    /// Who may approve or abort what this rule asks (Slack user ids, CLI
    /// logins, `@group`s); empty: anyone who reaches a decision endpoint.
    pub approvers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    pub namespaces: Vec<String>,
    pub hosts: Vec<String>,
    pub targets: Vec<String>,
}

/// One level of the escalation ladder: after an incident has been open and
/// unacknowledged this long, these receivers are told.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationLevel {
    pub after: Duration,
    /// Webhook names; empty means every webhook whose severities match.
    pub notify: Vec<String>,
}

/// AGENTS.md `replace_node:`: who replaces a drained node that stays NotReady, and after how long.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReplacement {
    /// A webhook declared under `webhooks:` (an n8n workflow with the cloud's credentials).
    pub webhook: String,
    /// How long the node must have been NotReady (and drained) first.
    pub after: Duration,
}

/// AGENTS.md `resize_volume:`: who grows a volume that cleaning cannot bring under its limit.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeResize {
    /// A webhook declared under `webhooks:` (an n8n workflow with the cloud's credentials).
    pub webhook: String,
}

/// The seed's ladder: 5, 15 and 30 minutes.
pub fn default_escalation() -> Vec<EscalationLevel> {
    [5, 15, 30].into_iter().map(|m| EscalationLevel { after: Duration::from_secs(m * 60), notify: Vec::new() }).collect()
}

/// The validated `policy` block of AGENTS.md.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub mode: Mode,
    pub unknown_action: Decision,
    pub max_blast_radius: u32,
    pub max_actions_per_hour: u32,
    /// Failures of one action on one target, in a row, that open its circuit.
    pub circuit_breaker: u32,
    pub approval_ttl: Duration,
    pub rules: Vec<Rule>,
    pub protected: Protected,
    pub commands: BTreeMap<String, String>,
    /// The instances a declared command touches, when it says (`instances:`).
    pub command_instances: BTreeMap<String, u32>,
    pub clean_roots: Vec<PathBuf>,
    pub clean_logs: CleanSettings,
    pub webhooks: Vec<Webhook>,
    /// Notifications of the same type and service within this window fold into one.
    pub notify_window: Duration,
    /// The `model:` block, if any (the environment can also turn the model on).
    pub model: Option<crate::llm::ModelSpec>,
    /// The `repository:` block: where permanent fixes go as pull requests.
    pub repository: Option<crate::pr::RepoConfig>,
    /// The escalation ladder for incidents nightshift cannot resolve (`escalation: []` turns it off).
    pub escalation: Vec<EscalationLevel>,
    /// Node replacement through a webhook, when configured.
    pub replace_node: Option<NodeReplacement>,
    /// Volume expansion through a webhook, when configured.
    pub resize_volume: Option<VolumeResize>,
    /// Where `serve` is reachable: approval requests carry approve/abort URLs under it.
    pub public_url: Option<String>,
    /// `approver_groups:`: `@name` in a rule's `approvers` stands for these ids.
    pub approver_groups: BTreeMap<String, Vec<String>>,
}

impl Policy {
    /// The webhook declared under `webhooks:` with this name.
    pub fn webhook(&self, name: &str) -> Result<&Webhook, String> {
        self.webhooks.iter().find(|w| w.name == name).ok_or_else(|| format!("no webhook named {name} in AGENTS.md"))
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mode: Mode::DryRun,
            unknown_action: Decision::Confirm,
            max_blast_radius: 10,
            max_actions_per_hour: 30,
            circuit_breaker: 3,
            approval_ttl: Duration::from_secs(3600),
            rules: Vec::new(),
            protected: Protected::default(),
            commands: BTreeMap::new(),
            command_instances: BTreeMap::new(),
            clean_roots: Vec::new(),
            clean_logs: CleanSettings::default(),
            webhooks: Vec::new(),
            notify_window: Duration::from_secs(15 * 60),
            model: None,
            repository: None,
            escalation: default_escalation(),
            replace_node: None,
            resize_volume: None,
            public_url: None,
            approver_groups: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// The rule whose decision the gate names for this subject (the strictest
    /// matching one), as `decide` picks it.
    pub fn deciding_rule(&self, subject: &Subject) -> Option<&Rule> {
        self.rules.iter().filter(|r| r.matches(subject)).max_by_key(|r| r.decide)
    }

    /// A rule's `approvers`, with `@group`s expanded; empty: anyone may decide.
    pub fn approvers(&self, rule: &Rule) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in &rule.approvers {
            let ids = match a.strip_prefix('@') {
                Some(g) => self.approver_groups.get(g).cloned().unwrap_or_default(),
                None => vec![a.clone()],
            };
            for id in ids {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }
}

/// What the gate judges: the action's kind and target, where it came from,
/// and how far it reaches. Built from an `Action` or, in tests and examples,
/// directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: ActionKind,
    pub target: Target,
    pub check: Option<String>,
    pub level: Level,
    pub blast_radius: u32,
    /// A scale to zero replicas: refused unless a rule names the target.
    pub to_zero: bool,
    /// For a restart: the instances every restart planned in the same pass
    /// touches together (0 when not counted); over `max_blast_radius`, each
    /// of them waits for a human.
    pub together: u32,
}

impl Subject {
    pub fn new(kind: ActionKind, target: &str) -> Self {
        Self { kind, target: Target { id: target.into(), ..Target::default() }, check: None, level: Level::L3, blast_radius: 1, to_zero: false, together: 0 }
    }

    pub fn for_action(action: &crate::actions::Action, check: Option<&str>, level: Level) -> Self {
        let to_zero = matches!(action, crate::actions::Action::Scale { replicas, .. } if *replicas <= 0);
        Self { kind: action.kind(), target: action.target(), check: check.map(str::to_string), level, blast_radius: action.blast_radius(), to_zero, together: 0 }
    }
}

/// What the gate needs to know of the past.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Executions of this action kind on this target in the last hour.
    pub target_last_hour: u32,
    /// Mutating executions of any action in the last hour.
    pub global_last_hour: u32,
    /// Failures of this action kind on this target in a row.
    pub consecutive_failures: u32,
    /// Set when memory no longer trusts this fix for this problem (it failed
    /// twice in a row for the fingerprint): it is not reused without a human.
    pub distrusted: Option<String>,
    /// Rules (by `Rule::trust_key`) that have earned `auto`, with the reason
    /// to show ("auto: earned after 5 verified approvals, since 2026-12-01").
    pub earned: Vec<(String, String)>,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: String,
    /// The window to wait before acting, for `abort-window`.
    pub abort_window: Option<Duration>,
}

/// Matches `value` against a pattern with `*` wildcards.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn field_matches(pattern: &Option<String>, value: Option<&str>) -> bool {
    match pattern {
        None => true,
        Some(p) => value.is_some_and(|v| glob_match(p, v)),
    }
}

impl Rule {
    /// What identifies a rule's earned trust across edits of AGENTS.md that
    /// move it: its action and its match, not its line.
    pub fn trust_key(&self) -> String {
        let m = &self.matches;
        let f = |k: &str, v: &Option<String>| v.as_ref().map(|v| format!(" {k}={v}")).unwrap_or_default();
        format!("{}{}{}{}{}", self.action, f("target", &m.target), f("namespace", &m.namespace), f("host", &m.host), f("check", &m.check))
    }

    /// The rule's decision for this history: a `confirm` rule whose trust is
    /// earned decides `auto`, with the reason that says so.
    fn decision(&self, history: &History) -> (Decision, String) {
        let earned = self.promote_after.filter(|_| self.decide == Decision::Confirm).and_then(|_| history.earned.iter().find(|(k, _)| *k == self.trust_key()));
        match earned {
            Some((_, why)) => (Decision::Auto, format!("rule for {} at AGENTS.md line {} decides confirm; {why}", self.action, self.line)),
            None => (self.decide, format!("rule for {} at AGENTS.md line {} decides {}", self.action, self.line, self.decide)),
        }
    }

    pub fn matches(&self, s: &Subject) -> bool {
        self.action == s.kind
            && field_matches(&self.matches.target, Some(&s.target.id))
            && field_matches(&self.matches.namespace, s.target.namespace.as_deref())
            && field_matches(&self.matches.host, s.target.host.as_deref())
            && field_matches(&self.matches.check, s.check.as_deref())
    }
}

impl Protected {
    fn covers(&self, t: &Target) -> Option<String> {
        if let Some(ns) = t.namespace.as_deref().filter(|ns| self.namespaces.iter().any(|p| glob_match(p, ns))) {
            return Some(format!("namespace {ns} is protected"));
        }
        if let Some(h) = t.host.as_deref().filter(|h| self.hosts.iter().any(|p| glob_match(p, h))) {
            return Some(format!("host {h} is protected"));
        }
        // A target on a host (`web-1:/var/log/app`) is protected by its own path's pattern too.
        let on_host = t.host.as_deref().and_then(|h| t.id.strip_prefix(h)).and_then(|r| r.strip_prefix(':'));
        if self.targets.iter().any(|p| glob_match(p, &t.id) || on_host.is_some_and(|path| glob_match(p, path))) {
            return Some(format!("target {} is protected", t.id));
        }
        None
    }
}

/// Decides what happens to one proposed action. The strictest applicable
/// verdict wins; its reasons are all listed.
pub fn decide(policy: &Policy, subject: &Subject, history: &History) -> Verdict {
    let matching: Vec<&Rule> = policy.rules.iter().filter(|r| r.matches(subject)).collect();
    let mut verdicts: Vec<(Decision, String)> = Vec::new();
    // Earned trust lowers only its own rule: another matching rule, and every check below, still wins.
    match matching.iter().map(|r| r.decision(history)).max_by_key(|(d, _)| *d) {
        Some(rule) => verdicts.push(rule),
        // Growing a volume costs money and cannot be undone: without a rule, a human confirms it.
        None if subject.kind == crate::actions::ActionKind::ResizeVolume => {
            verdicts.push((policy.unknown_action.max(Decision::Confirm), format!("no rule covers {}: a volume grows only when a human confirms", subject.kind)))
        }
        None if subject.kind.is_mutating() => verdicts.push((policy.unknown_action, format!("no rule covers {}: unknown_action is {}", subject.kind, policy.unknown_action))),
        None => verdicts.push((Decision::Auto, format!("{} changes nothing", subject.kind))),
    }
    if subject.kind.is_mutating() {
        if let Some(why) = policy.protected.covers(&subject.target) {
            verdicts.push((Decision::Forbid, why));
        }
        match subject.level {
            Level::L1 => verdicts.push((Decision::Alert, "the check is level L1: monitor only".into())),
            Level::L2 => verdicts.push((Decision::Confirm, "the check is level L2: suggest and wait for a human".into())),
            Level::L3 | Level::L4 => {}
        }
        if subject.to_zero && !matching.iter().any(|r| r.matches.target.as_deref().is_some_and(|p| p != "*")) {
            verdicts.push((Decision::Forbid, format!("scaling {} to 0 replicas takes it down: refused unless a rule names it (a scale rule with target: {})", subject.target.id, subject.target.id)));
        }
        // A declared command says how many instances it touches (`instances:`).
        let radius = match subject.kind {
            ActionKind::RunCommand => subject.blast_radius.max(policy.command_instances.get(&subject.target.id).copied().unwrap_or(1)),
            _ => subject.blast_radius,
        };
        if radius > policy.max_blast_radius {
            verdicts.push((Decision::Confirm, format!("touches {radius} instances, more than max_blast_radius {}", policy.max_blast_radius)));
        } else if subject.together > policy.max_blast_radius {
            verdicts.push((Decision::Confirm, format!("the restarts planned in this pass touch {} instances together, more than max_blast_radius {}", subject.together, policy.max_blast_radius)));
        }
        if policy.circuit_breaker > 0 && history.consecutive_failures >= policy.circuit_breaker {
            verdicts.push((Decision::Alert, format!("circuit open: {} failed {} times in a row on {}", subject.kind, history.consecutive_failures, subject.target.id)));
        }
        if let Some(limit) = matching.iter().filter_map(|r| r.max_per_hour).min()
            && history.target_last_hour >= limit
        {
            verdicts.push((Decision::Confirm, format!("{} ran {} times on {} in the last hour (max_per_hour {limit})", subject.kind, history.target_last_hour, subject.target.id)));
        }
        if let Some(why) = &history.distrusted {
            verdicts.push((Decision::Confirm, why.clone()));
        }
        if history.global_last_hour >= policy.max_actions_per_hour {
            verdicts.push((Decision::Confirm, format!("{} actions in the last hour reach max_actions_per_hour {}", history.global_last_hour, policy.max_actions_per_hour)));
        }
    }
    let decision = verdicts.iter().map(|(d, _)| *d).max().unwrap_or(Decision::Forbid);
    let reason = verdicts.iter().filter(|(d, _)| *d == decision).map(|(_, r)| r.as_str()).collect::<Vec<_>>().join("; ");
    let abort_window =
        (decision == Decision::AbortWindow).then(|| matching.iter().filter(|r| r.decide == Decision::AbortWindow).filter_map(|r| r.abort_window).max().unwrap_or(Duration::from_secs(30)));
    Verdict { decision, reason, abort_window }
}

/// Checks every rule's examples; returns (line, message) for each that fails.
pub fn check_examples(policy: &Policy) -> Vec<(usize, String)> {
    let mut failures = Vec::new();
    for rule in &policy.rules {
        for ex in &rule.examples {
            let v = decide(policy, &ex.subject, &History::default());
            if v.decision != ex.expect {
                failures.push((ex.line, format!("example {} on {} expects {} but the rules decide {} ({})", ex.subject.kind, ex.subject.target.id, ex.expect, v.decision, v.reason)));
            }
        }
    }
    failures
}
