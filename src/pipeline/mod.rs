//! One heartbeat pass, shaped like a reconciler: reconcile the journal, carry
//! out approved and due actions, run the checks that are due, and for each
//! failure past its threshold open or update its incident, diagnose it, and
//! pass every planned action through the policy gate before anything runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actions::Action;
use crate::actions::ActionResult;
use crate::checks::spec::CheckSpec;
use crate::checks::{self, CheckResult, Context, Status};
use crate::diagnosis;
use crate::duration::timestamp;
use crate::markdown::code;
use crate::memory::approvals::{Approval, ApprovalKind, ApprovalStatus};
use crate::memory::audit::AuditEntry;
use crate::memory::notes::{Attempt, Incident, IncidentStatus};
use crate::memory::state::{CheckState, State};
use crate::memory::{Memory, MemoryError};
use crate::policy::{Decision, Mode, Verdict};
use crate::workspace::Workspace;

/// The longest abort window a one-shot run waits out in-process; longer ones
/// are carried out by the first run after their deadline.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// How many checks run at once.
pub const CONCURRENCY: usize = 16;

mod alerts;
mod approvals;
mod ask;
mod escalate;
mod execute;
mod investigate;
mod kube;
mod notify;
mod probe;
mod recall;
mod recover;
mod trust;

pub use alerts::{Alert, AlertError, parse_alertmanager, parse_argocd, parse_event};
use recall::{recall, success};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("another nightshift run holds {0}; try again when it has finished")]
    Busy(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub action: String,
    pub target: String,
    pub decision: String,
    pub reason: String,
    pub outcome: String,
    pub result: ActionResult,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentReport {
    pub id: String,
    pub fingerprint: String,
    pub severity: String,
    pub status: String,
    pub title: String,
    pub new: bool,
    pub diagnosis: Vec<String>,
    pub actions: Vec<ActionReport>,
}

impl IncidentReport {
    pub fn of(inc: &Incident, new: bool, actions: Vec<ActionReport>) -> Self {
        Self {
            id: inc.id.clone(),
            fingerprint: inc.fingerprint.clone(),
            severity: inc.severity.as_str().into(),
            status: inc.status.as_str().into(),
            title: inc.title.clone(),
            new,
            diagnosis: inc.diagnosis.clone(),
            actions,
        }
    }
}

/// Model tokens spent, as `--json` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

/// Everything a run did, for printing and, serialized as it is, `heartbeat --json`
/// (DESIGN.md's shape; `failing` is the exit code's, not the report's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub status: &'static str,
    pub checks: Vec<CheckResult>,
    pub incidents: Vec<IncidentReport>,
    /// Lines for people: below-threshold failures, approvals carried out, resolutions.
    pub notes: Vec<String>,
    /// Model tokens spent in the run.
    pub tokens: Tokens,
    /// Requests this run sent to Kubernetes API servers.
    pub kube_requests: u64,
    #[serde(skip)]
    pub failing: bool,
}

pub struct Runner<'a> {
    ws: &'a Workspace,
    mem: Memory,
    mode: Mode,
    state: State,
    ctx: Arc<Context>,
    audit: Vec<AuditEntry>,
    report: RunReport,
    changed: bool,
    /// Abort-window approvals announced by this run.
    waiting: Vec<Approval>,
    /// Approvals created by the step in progress: their requests go out once it is recorded.
    asking: Vec<Approval>,
    /// Print announcements as they happen (off for --json).
    pub announce: bool,
    /// Problem classes with an incident resolved in this run: their knowledge pages are rewritten.
    resolved_classes: std::collections::BTreeSet<String>,
    /// One-shot runs wait out abort windows in-process; the daemon carries
    /// them out on a later pass instead.
    pub wait_for_windows: bool,
    /// Alerts received by the daemon, handled in this pass.
    alerts: Vec<alerts::Alert>,
    /// The model, when one is configured.
    model: Option<crate::llm::ModelConfig>,
    said_model_off: bool,
    /// Model tokens spent in this run: (prompt, completion).
    tokens: Tokens,
    /// Declared dependencies that are down in this pass: their dependants' failures are a cascade.
    down: Vec<DownDependency>,
    /// Check names run in this pass even when not due (the daemon's watch saw a change).
    forced: Vec<String>,
    /// The instances the restarts planned in this pass touch together (the gate counts them).
    restarts_together: u32,
    /// The process's Kubernetes request count when the run began.
    kube_requests_at_start: u64,
    /// Remembered incidents by fingerprint, read once per pass on first use (recall).
    past: std::sync::OnceLock<std::collections::BTreeMap<String, Vec<Incident>>>,
    /// The journal end of the action just carried out: written by `record`
    /// once the audit, the history and the note hold the action, so a crash
    /// before then leaves it unfinished (reconciled, never repeated) and
    /// never recorded-nowhere.
    unended: Option<JournalEnd>,
    /// The approval whose action `execute` is about to carry out: marked
    /// done only once its journal entry is written.
    carrying: Option<String>,
}

/// A journal end waiting for its action to be recorded.
#[derive(Debug, Clone)]
struct JournalEnd {
    id: String,
    result: ActionResult,
    detail: String,
}

/// A `dependency` check that fails, with what depends on it.
#[derive(Debug, Clone)]
struct DownDependency {
    check: String,
    target: String,
    dependants: String,
    namespace: Option<String>,
    summary: String,
}

pub(super) fn now() -> DateTime<Utc> {
    Utc::now()
}

pub(super) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(60).collect()
}

impl<'a> Runner<'a> {
    pub fn new(ws: &'a Workspace, execute: bool) -> Result<(Self, crate::memory::StateLock), RunError> {
        let mem = Memory::open(&ws.root)?;
        let lock = mem.try_lock("run")?.ok_or_else(|| RunError::Busy(mem.state_dir().join("run.lock").display().to_string()))?;
        mem.recover_compaction()?;
        let state = mem.load_state()?;
        let mode = if execute { Mode::Execute } else { ws.policy.mode };
        let runner = Self {
            ws,
            mem,
            mode,
            state,
            ctx: Arc::new(Context::with_hosts(ws.root.clone(), ws.heartbeat.hosts.clone())),
            audit: Vec::new(),
            report: RunReport::default(),
            changed: false,
            waiting: Vec::new(),
            asking: Vec::new(),
            announce: true,
            resolved_classes: Default::default(),
            wait_for_windows: true,
            alerts: Vec::new(),
            model: crate::llm::resolve(ws.policy.model.as_ref(), |k| std::env::var(k).ok().filter(|v| !v.is_empty())),
            said_model_off: false,
            tokens: Tokens::default(),
            down: Vec::new(),
            forced: Vec::new(),
            restarts_together: 0,
            kube_requests_at_start: crate::k8s::requests(),
            past: std::sync::OnceLock::new(),
            unended: None,
            carrying: None,
        };
        Ok((runner, lock))
    }

    fn spec(&self, name: &str) -> Option<&'a CheckSpec> {
        self.ws.heartbeat.checks.iter().find(|c| c.name == name)
    }

    /// The whole pass. `all` runs every check, not only the due ones.
    /// Alerts to handle in this pass (the daemon's intake).
    pub fn with_alerts(mut self, alerts: Vec<Alert>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Shares Kubernetes clients (and the daemon's watch cache) across passes.
    pub fn with_kube(mut self, clients: Arc<crate::k8s::Clients>, cache: Option<Arc<crate::checks::kube::watch::Cache>>) -> Self {
        self.ctx = Arc::new(Context::with_hosts(self.ws.root.clone(), self.ws.heartbeat.hosts.clone()).with_kube(clients, cache));
        self
    }

    /// Runs these checks in this pass even when they are not due.
    pub fn with_forced(mut self, names: Vec<String>) -> Self {
        self.forced = names;
        self
    }

    #[tracing::instrument(name = "heartbeat", skip_all, fields(mode = self.mode.as_str(), all = all, status = tracing::field::Empty))]
    pub async fn heartbeat(mut self, all: bool) -> Result<RunReport, RunError> {
        self.reconcile_journal().await?;
        self.carry_out_approvals().await?;
        let alerts = std::mem::take(&mut self.alerts);
        self.ingest_alerts(alerts).await?;
        let t = now();
        let due: Vec<&CheckSpec> = self.ws.heartbeat.checks.iter().filter(|c| all || self.forced.contains(&c.name) || self.state.is_due(&c.name, &c.schedule, t)).collect();
        let mut results = checks::run_all(&due, self.ctx.clone(), CONCURRENCY).await;
        for (spec, result) in due.iter().zip(results.iter_mut()) {
            self.disk_trend(spec, result);
            self.scale_down_window(spec, result);
            self.probe_thresholds(spec, result)?;
        }
        self.down = self.down_dependencies(&due, &results);
        self.restarts_together = self.restarts_planned(&due, &results);
        for (spec, result) in due.iter().zip(&results) {
            self.after_check(spec, result).await?;
        }
        self.report.checks = results;
        if self.wait_for_windows {
            self.wait_windows().await?;
        } else {
            for a in std::mem::take(&mut self.waiting) {
                self.report.notes.push(format!("approval {}: acts at {} unless aborted", a.id, timestamp(a.deadline)));
            }
        }
        self.announce_outcomes().await?;
        self.escalate().await?;
        self.flush_notifications().await?;
        self.finish()
    }

    /// Records a disk check's usage and warns when its growth will reach the
    /// limit within the check's `forecast` (30 days unless declared; a
    /// healthy check becomes a warning).
    fn disk_trend(&mut self, spec: &CheckSpec, result: &mut CheckResult) {
        let checks::ProbeSpec::Disk { max_used_percent, forecast, .. } = &spec.probe else { return };
        let Some(used) = result.evidence.get("used_percent").and_then(|v| v.as_f64()) else { return };
        let t = now();
        let history = self.state.disk_history.entry(spec.name.clone()).or_default();
        crate::trend::push(history, crate::trend::Sample { at: t, used_percent: used });
        let Some(per_day) = crate::trend::growth_per_day(history, t) else { return };
        result.evidence.insert("growth_percent_per_day".into(), ((per_day * 100.0).round() / 100.0).into());
        if let Some(d) = crate::trend::days_until(used, 100.0, per_day) {
            result.evidence.insert("days_until_full".into(), ((d * 10.0).round() / 10.0).into());
        }
        let Some(limit) = *max_used_percent else { return };
        if let Some(d) = crate::trend::days_until(used, limit, per_day) {
            result.evidence.insert("days_until_limit".into(), ((d * 10.0).round() / 10.0).into());
            if crate::trend::within(d, *forecast) && result.status == Status::Ok {
                result.status = Status::Warning;
                result.summary = format!("{}; filling at {per_day:.1}%/day: reaches {limit}% in about {d:.1} days (within the forecast of {})", result.summary, crate::duration::format(*forecast));
            }
        }
    }

    /// A scaling check's light load becomes a scale-down only once it has
    /// held for `scale_down_after` and the Deployment has not been scaled in
    /// that time (so halving, then halving again, each waits a full window).
    fn scale_down_window(&mut self, spec: &CheckSpec, result: &mut CheckResult) {
        let checks::ProbeSpec::K8sScaling(s) = &spec.probe else { return };
        if result.status == Status::Error {
            return;
        }
        if result.evidence.get("over_provisioned").and_then(|v| v.as_bool()) != Some(true) {
            self.state.light_since.remove(&spec.name);
            return;
        }
        let t = now();
        let since = *self.state.light_since.entry(spec.name.clone()).or_insert(t);
        let last_scale = self.state.last_attempt(crate::actions::ActionKind::Scale, &format!("{}/{}", s.namespace, s.deployment));
        let start = last_scale.map_or(since, |l| l.max(since));
        let held = (t - start).to_std().unwrap_or_default();
        if held >= s.scale_down_after {
            result.status = Status::Failing;
            result.evidence.insert("pressure".into(), "over".into());
            result.summary = format!("{} for {}: halving", result.summary, crate::duration::format(held));
        } else {
            result.summary = format!("{}; light for {} of the {} before scaling down", result.summary, crate::duration::format(held), crate::duration::format(s.scale_down_after));
        }
    }

    async fn after_check(&mut self, spec: &'a CheckSpec, result: &CheckResult) -> Result<(), RunError> {
        let prev = self.state.checks.get(&spec.name);
        let failures = if result.status.is_bad() { prev.map_or(0, |s| s.consecutive_failures) + 1 } else { 0 };
        let failing_since = match (result.status.is_bad(), prev.and_then(|s| s.failing_since)) {
            (false, _) => None,
            (true, Some(since)) if failures > 1 => Some(since),
            (true, _) => Some(now()),
        };
        self.state.checks.insert(spec.name.clone(), CheckState { last_run: now(), status: result.status, consecutive_failures: failures, summary: result.summary.clone(), failing_since });
        if result.status == Status::Warning || result.series.iter().any(|s| s.status == Status::Warning) {
            self.warn_daily(spec, result).await?;
        }
        if result.status.is_bad() && failures < spec.threshold {
            self.report.notes.push(format!("{} failing {failures}/{} before an incident opens", spec.name, spec.threshold));
            return Ok(());
        }
        let mut current = Vec::new();
        if result.status.is_bad() {
            self.report.failing = true;
            // A check that watches many targets (Prometheus series) opens one incident per failing target.
            let failing_series: Vec<CheckResult> = result
                .series
                .iter()
                .filter(|s| s.status.is_bad())
                .map(|s| CheckResult { target: s.target.clone(), status: s.status, summary: s.summary.clone(), evidence: s.evidence.clone(), series: Vec::new(), ..result.clone() })
                .collect();
            if failing_series.is_empty() {
                current.push(self.handle_incident(spec, result).await?);
            }
            let (cascades, failing_series) = self.cascades(spec, failing_series);
            for r in &cascades {
                current.push(self.handle_incident(spec, r).await?);
            }
            for r in &failing_series {
                current.push(self.handle_incident(spec, r).await?);
            }
        }
        if result.status == Status::Error {
            // Nothing is known about the targets while the check cannot run: keep their incidents.
            return Ok(());
        }
        self.resolve_open(spec, result, &current).await
    }

    /// Resolves the open incidents of a check other than `keep`: the check
    /// passes again, or that target (or the check itself) recovered.
    async fn resolve_open(&mut self, spec: &CheckSpec, result: &CheckResult, keep: &[String]) -> Result<(), RunError> {
        let prefix = format!("{}:", spec.name);
        let open: Vec<(String, String)> = self.state.open.iter().filter(|(fp, _)| fp.starts_with(&prefix) && !keep.contains(fp)).map(|(a, b)| (a.clone(), b.clone())).collect();
        // The check passing is the first verification step; an incident resolves only when the others pass too.
        if !open.is_empty() && !spec.verify.is_empty() {
            let (all, steps) = self.verify_steps(spec).await;
            if !all {
                let line = format!("check passes again but verification fails: {}", steps.join("; "));
                for (_, id) in &open {
                    let Ok(mut inc) = self.mem.read_incident(id) else { continue };
                    if inc.actions.last().is_none_or(|l| !l.ends_with(&line)) {
                        inc.actions.push(format!("{} {line}", timestamp(now())));
                        inc.status = IncidentStatus::Open;
                        self.mem.write_incident(&inc)?;
                        self.changed = true;
                    }
                    self.report.failing = true;
                    self.report.notes.push(format!("incident {id} stays open: {line}"));
                }
                return Ok(());
            }
        }
        for (fp, id) in open {
            self.state.open.remove(&fp);
            // Nothing may act later on a target that healed: cancel what waits for this incident.
            let t = now();
            let cancelled = self.mem.update_approvals(|list| {
                let mut ids = Vec::new();
                for a in list.iter_mut().filter(|a| a.incident.as_deref() == Some(id.as_str()) && matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)) {
                    a.status = ApprovalStatus::Aborted;
                    a.decided_by = Some("nightshift: the check passes again".into());
                    a.decided_at = Some(t);
                    ids.push(a.id.clone());
                }
                ids
            })?;
            for a in cancelled {
                self.report.notes.push(format!("approval {a} withdrawn: incident {id} resolved by itself"));
            }
            let Ok(mut inc) = self.mem.read_incident(&id) else { continue };
            inc.status = IncidentStatus::Resolved;
            inc.resolved = Some(timestamp(now()));
            inc.actions.push(format!("{} check passed again: {}", timestamp(now()), code(&result.summary)));
            self.resolved_classes.insert(inc.class.clone());
            self.notify(spec, &mut inc, &mut Vec::new(), false, 0).await?;
            self.mem.write_incident(&inc)?;
            self.changed = true;
            self.report.notes.push(format!("incident {id} resolved: {} passes again", spec.name));
        }
        Ok(())
    }

    fn open_or_update(&mut self, spec: &CheckSpec, result: &CheckResult, diag: &diagnosis::Diagnosis, related: &[String]) -> (Incident, bool) {
        let fp = diag.fingerprint(&spec.name, &result.target);
        let t = timestamp(now());
        let evidence = format!("{}\n{}", result.summary, serde_json::to_string_pretty(&result.evidence).unwrap_or_default());
        if let Some(mut inc) = self.state.open.get(&fp).and_then(|id| self.mem.read_incident(id).ok()) {
            inc.last_seen = t;
            inc.occurrences += 1;
            inc.evidence = evidence;
            inc.diagnosis = diag.steps.clone();
            return (inc, false);
        }
        let id = self.mem.new_incident_id(now(), &slug(&format!("{}-{}", spec.name, diag.class)));
        let related = related.iter().take(10).cloned().collect();
        let failing_since = self.state.checks.get(&spec.name).and_then(|s| s.failing_since).map(timestamp);
        let inc = Incident {
            id,
            title: diag.title.clone(),
            fingerprint: fp,
            class: diag.class.to_string(),
            target: result.target.clone(),
            check: format!("{} ({})", spec.name, spec.probe.kind()),
            failing_since,
            attempts: Vec::new(),
            tokens: 0,
            recalled_from: None,
            severity: spec.severity,
            status: IncidentStatus::Open,
            detected: t.clone(),
            last_seen: t,
            resolved: None,
            occurrences: 1,
            evidence,
            diagnosis: diag.steps.clone(),
            actions: Vec::new(),
            prevention: diag.prevention.clone(),
            related,
        };
        (inc, true)
    }

    /// Opens or updates the incident of one failing target; returns its fingerprint.
    #[tracing::instrument(name = "incident", skip_all, fields(check = %spec.name, class = tracing::field::Empty, incident.id = tracing::field::Empty, new = tracing::field::Empty, status = tracing::field::Empty))]
    async fn handle_incident(&mut self, spec: &'a CheckSpec, result: &CheckResult) -> Result<String, RunError> {
        let span = tracing::Span::current();
        let mut diag = diagnosis::diagnose(spec, result, &self.ws.policy);
        span.record("class", diag.class);
        if matches!(spec.probe, checks::ProbeSpec::Disk { .. }) {
            self.disk_findings(spec, &mut diag).await;
        }
        self.kube_findings(spec, result, &mut diag).await;
        let fp = diag.fingerprint(&spec.name, &result.target);
        let current = self.state.open.get(&fp).cloned();
        let (earlier_ids, past) = self.earlier(&fp, current.as_deref());
        let earlier = earlier_ids.len();
        let (mut inc, new) = self.open_or_update(spec, result, &diag, &earlier_ids);
        span.record("incident.id", inc.id.as_str());
        span.record("new", new);
        self.state.open.insert(inc.fingerprint.clone(), inc.id.clone());
        if new {
            // The note and the open-incident map are durable before anything is done about it:
            // a crash from here on updates this incident, never opens a second one.
            self.mem.write_incident(&inc)?;
            self.mem.save_state(&self.state)?;
        }
        let before = inc.status;
        let mut reports = Vec::new();
        let approvals = self.mem.load_approvals()?;
        let waiting: Vec<String> =
            approvals.iter().filter(|a| a.incident.as_deref() == Some(&inc.id) && matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)).map(|a| a.id.clone()).collect();
        // What a human aborted for this incident is not asked again (the seed's "reply ABORT to cancel").
        let aborted: Vec<&Approval> = approvals.iter().filter(|a| a.incident.as_deref() == Some(&inc.id) && a.status == ApprovalStatus::Aborted).collect();
        if new && earlier >= 3 {
            inc.diagnosis.push(format!("this problem has now happened {} times: it needs a permanent fix", earlier + 1));
        }
        // Memory first: a fix that healed this fingerprint before is tried first.
        let mut plan = Vec::new();
        for a in diag.plan.clone() {
            plan.push(self.measure(a).await);
        }
        let mem = &self.mem;
        if let Some((fix, from)) = recall(&past, |a, id| mem.audit_confirms(&a.at, a.action.kind().name(), &a.action.target().id, id)) {
            if new || inc.recalled_from.is_none() {
                let (ok, tried) = success(&past, &fix);
                inc.diagnosis.push(format!(
                    "memory: incident {from} was fixed by {} on {} ({ok} of {tried} tries of it succeeded for this problem); trying it first",
                    fix.kind(),
                    code(&fix.target().id)
                ));
                inc.recalled_from = Some(from);
            }
            plan.retain(|a| a != &fix);
            plan.insert(0, fix);
        }
        // A replacement is asked for once per incident: the node pool has it from then on.
        if let Some(at) = inc.attempts.iter().rev().find(|a| a.action.kind() == crate::actions::ActionKind::ReplaceNode && a.result == ActionResult::Ok).map(|a| a.at.clone())
            && plan.iter().any(|a| a.kind() == crate::actions::ActionKind::ReplaceNode)
        {
            plan.retain(|a| a.kind() != crate::actions::ActionKind::ReplaceNode);
            self.report.notes.push(format!("incident {}: the node's replacement was requested at {at}; waiting for the node pool", inc.id));
        }
        if let Some(a) = aborted.iter().find(|a| plan.iter().any(|p| p.unmeasured() == a.action.unmeasured())) {
            plan.retain(|p| !aborted.iter().any(|a| a.action.unmeasured() == p.unmeasured()));
            self.report.notes.push(format!("incident {}: {} is not proposed again: {} aborted it (approval {})", inc.id, a.action.describe(), a.decided_by.as_deref().unwrap_or("a human"), a.id));
        }
        let mut healed = false;
        // Nothing to do now and no human needed yet: the incident stays open, watched.
        let holding = if plan.is_empty() { diagnosis::waiting(spec, result) } else { None };
        let mut blocked = plan.is_empty() && holding.is_none();
        if !waiting.is_empty() {
            self.report.notes.push(format!("incident {}: waiting for approval {}", inc.id, waiting.join(", ")));
        } else if let Some(what) = &holding {
            self.report.notes.push(format!("incident {}: waiting: {what}", inc.id));
        } else if plan.is_empty() && diag.class != "check-error" && diag.investigate && (new || inc.status == IncidentStatus::Open) {
            // No runbook step, no remembered fix: the model investigates, if there is one.
            let past_tries: Vec<Attempt> = past.iter().map(|(a, _)| a.clone()).collect();
            if let Some(inv) = self.investigate(spec, &mut inc, result, &past_tries).await? {
                healed = inv.reports.iter().any(|r| r.result == ActionResult::Ok && r.action != "notify" && r.action != "send_webhook");
                blocked = !healed && !inv.reports.iter().any(|r| matches!(r.result, ActionResult::Pending | ActionResult::DryRun));
                reports.extend(inv.reports);
            }
        } else {
            let past_tries: Vec<Attempt> = past.iter().map(|(a, _)| a.clone()).collect();
            // A permanent fix for review (a limit change, a pull request) goes out in the same pass
            // as the repair, whatever the repair does: an OOM loop comes back after a restart that
            // verified healthy. Once per incident; a recurrence (a new incident) updates it.
            let (proposals, repairs): (Vec<Action>, Vec<Action>) = plan.iter().cloned().partition(|a| a.kind().is_proposal());
            if repairs.is_empty() {
                blocked = true;
            }
            for action in &repairs {
                let step = self.step(spec, &mut inc, action, &past_tries).await?;
                let result = step.result;
                reports.push(step);
                match result {
                    // A scale or a failover succeeded: the check says when the incident is over.
                    ActionResult::Ok if action.kind().holds_open() => {
                        if let Some(r) = self.recover_primary(Some(spec), spec.level, &mut inc, action).await? {
                            reports.push(r);
                        }
                        blocked = false;
                        break;
                    }
                    // Containment (cordon, drain) and proposals succeed without healing: go on, then a human.
                    ActionResult::Ok if !action.kind().heals() => blocked = true,
                    ActionResult::Ok => {
                        healed = true;
                        break;
                    }
                    ActionResult::Failed | ActionResult::Interrupted | ActionResult::Denied => blocked = true,
                    ActionResult::Pending | ActionResult::DryRun | ActionResult::Aborted | ActionResult::Expired => {
                        blocked = false;
                        break;
                    }
                }
            }
            for action in &proposals {
                if inc.attempts.iter().any(|a| a.result == ActionResult::Ok && a.action.same_remedy(action)) {
                    continue;
                }
                let step = self.step(spec, &mut inc, action, &past_tries).await?;
                // Alone in the plan, a proposal leaves the incident with a human once it is made.
                if repairs.is_empty() {
                    blocked = !matches!(step.result, ActionResult::Pending | ActionResult::DryRun | ActionResult::Aborted | ActionResult::Expired);
                }
                reports.push(step);
            }
        }
        inc.status = if healed {
            self.state.open.remove(&inc.fingerprint);
            self.resolved_classes.insert(inc.class.clone());
            inc.resolved = Some(timestamp(now()));
            IncidentStatus::Resolved
        } else if blocked && waiting.is_empty() {
            IncidentStatus::NeedsHuman
        } else {
            IncidentStatus::Open
        };
        span.record("status", inc.status.as_str());
        if new || inc.status != before {
            self.notify(spec, &mut inc, &mut reports, healed, if new { earlier + 1 } else { 0 }).await?;
        }
        self.mem.write_incident(&inc)?;
        self.changed = true;
        self.report.incidents.push(IncidentReport::of(&inc, new, reports));
        Ok(inc.fingerprint)
    }

    /// One planned action: cooldown, gate, then execute, announce, ask, or refuse.
    #[tracing::instrument(name = "decide", skip_all, fields(action = %action.kind(), target = %action.target().id, incident.id = %inc.id, decision = tracing::field::Empty))]
    async fn step(&mut self, spec: &CheckSpec, inc: &mut Incident, action: &Action, past: &[Attempt]) -> Result<ActionReport, RunError> {
        let t = now();
        let target = action.target().id;
        if action.kind().is_mutating()
            && let Some(last) = self.state.last_attempt(action.kind(), &action.rate_key())
        {
            let cooldown = chrono::Duration::from_std(spec.cooldown).unwrap_or_default();
            if t - last < cooldown {
                let outcome = format!("not repeated: last attempt {} is within the check's cooldown {}", timestamp(last), crate::duration::format(spec.cooldown));
                inc.actions.push(format!("{} {} on {}: {outcome}", timestamp(t), action.kind(), code(&target)));
                return Ok(ActionReport { action: action.kind().to_string(), target, decision: "cooldown".into(), reason: outcome.clone(), outcome, result: ActionResult::Pending, duration_ms: 0 });
            }
        }
        let together = if action.is_restart() { self.restarts_together } else { 0 };
        let tries: Vec<&Attempt> = past.iter().chain(inc.attempts.iter()).filter(|a| a.action.same_remedy(action)).collect();
        let distrust = (tries.len() >= 2 && tries[tries.len() - 2..].iter().all(|a| matches!(a.result, ActionResult::Failed | ActionResult::Interrupted)))
            .then(|| format!("memory: {} on {} failed twice in a row for this problem; not reused without a human", action.kind(), target));
        let (subject, verdict) = self.gate(action, Some(&spec.name), spec.level, distrust, together);
        tracing::Span::current().record("decision", verdict.decision.to_string());
        let (result, mut outcome, approved_by, ms) = self.act(spec, inc, action, &verdict).await?;
        if action.kind().is_mutating() && result.executed() {
            let journal = self.unended.as_ref().map(|e| e.id.clone());
            let verified = result == ActionResult::Ok && action.kind().heals();
            for said in self.earn(&subject, trust::Run::Policy, verified, result, journal.as_deref()) {
                outcome = format!("{outcome}; {said}");
            }
        }
        let report = self.record(Some(inc), Some(&spec.name), action, &verdict, approved_by, result, outcome, ms)?;
        self.ask(inc).await?;
        Ok(report)
    }

    async fn act(&mut self, spec: &CheckSpec, inc: &Incident, action: &Action, verdict: &Verdict) -> Result<(ActionResult, String, String, u64), RunError> {
        let dry = self.mode == Mode::DryRun && action.kind().is_mutating();
        match verdict.decision {
            Decision::Forbid => Ok((ActionResult::Denied, format!("refused: {}", verdict.reason), "-".into(), 0)),
            Decision::Alert => Ok((ActionResult::Denied, "alert only: humans notified, nothing done".into(), "-".into(), 0)),
            _ if dry => {
                let would = match verdict.decision {
                    Decision::AbortWindow => format!("would announce and act after {} unless aborted", crate::duration::format(verdict.abort_window.unwrap_or_default())),
                    Decision::Confirm => "would ask a human to approve".into(),
                    _ => "would act now".into(),
                };
                Ok((ActionResult::DryRun, format!("dry-run: {would}: {}", self.preview(action).await), "policy".into(), 0))
            }
            Decision::Confirm => {
                let a = self.pending(spec, inc, action, verdict, ApprovalKind::Confirm, self.ws.policy.approval_ttl)?;
                Ok((ActionResult::Pending, format!("needs approval: nightshift approve {} (or abort {}); expires {}", a.id, a.id, timestamp(a.deadline)), "-".into(), 0))
            }
            Decision::AbortWindow => {
                let window = verdict.abort_window.unwrap_or(Duration::from_secs(30));
                let a = self.pending(spec, inc, action, verdict, ApprovalKind::AbortWindow, window)?;
                let msg = format!("{} in {}, abort with: nightshift abort {}", action.describe(), crate::duration::format(window), a.id);
                if self.announce {
                    println!("{msg}");
                }
                self.waiting.push(a);
                Ok((ActionResult::Pending, msg, "-".into(), 0))
            }
            Decision::Auto => {
                let started = Instant::now();
                let (result, outcome) = self.execute(action, Some(inc), Some(spec), &format!("{} ({})", verdict.decision, verdict.reason)).await?;
                Ok((result, outcome, "policy".into(), started.elapsed().as_millis() as u64))
            }
        }
    }

    /// Records one decided action, durably before the next one starts: the
    /// audit entry is appended, the note and the run state (cooldowns, rate
    /// history, open incidents) are written, and only then the journal
    /// entry of an executed action is ended.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        inc: Option<&mut Incident>,
        check: Option<&str>,
        action: &Action,
        verdict: &Verdict,
        approved_by: String,
        result: ActionResult,
        outcome: String,
        ms: u64,
    ) -> Result<ActionReport, RunError> {
        let t = now();
        let target = action.target().id;
        let entry = AuditEntry {
            time: timestamp(t),
            action: action.kind().to_string(),
            target: target.clone(),
            incident: inc.as_ref().map(|i| i.id.clone()),
            check: check.map(str::to_string),
            decision: verdict.decision.to_string(),
            approved_by,
            risk: action.kind().risk().as_str().into(),
            mode: if action.kind().is_mutating() { self.mode.as_str().into() } else { "execute".into() },
            reason: verdict.reason.clone(),
            result,
            outcome: outcome.clone(),
            duration_ms: ms,
        };
        self.mem.append_audit(t, std::slice::from_ref(&entry))?;
        if let Some(inc) = inc {
            inc.actions.push(format!("{} {} on {}: {} ({}) → {}: {}", entry.time, entry.action, code(&target), entry.decision, verdict.reason, result.as_str(), outcome));
            if action.kind().is_mutating() && result.executed() {
                inc.attempts.push(crate::memory::notes::Attempt { at: entry.time.clone(), action: action.clone(), result, route: entry.approved_by.clone() });
            }
            self.mem.write_incident(inc)?;
        }
        if let Some(end) = self.unended.take() {
            self.mem.save_state(&self.state)?;
            self.mem.journal(&crate::memory::journal::JournalEntry::End { id: end.id, at: now(), result: end.result, detail: end.detail })?;
        }
        self.audit.push(entry);
        self.changed = true;
        Ok(ActionReport { action: action.kind().to_string(), target, decision: verdict.decision.to_string(), reason: verdict.reason.clone(), outcome, result, duration_ms: ms })
    }

    /// Appends an audit entry that is not an action's (a refusal before the gate, an investigation) at once.
    fn audit_now(&mut self, entry: AuditEntry) -> Result<(), RunError> {
        self.mem.append_audit(now(), std::slice::from_ref(&entry))?;
        self.audit.push(entry);
        self.changed = true;
        Ok(())
    }

    fn finish(mut self) -> Result<RunReport, RunError> {
        for class in std::mem::take(&mut self.resolved_classes) {
            self.mem.update_knowledge(&class)?;
        }
        self.mem.save_state(&self.state)?;
        let t = now();
        if self.changed {
            let mut subject: Vec<String> = self.report.incidents.iter().map(|i| format!("{} ({})", i.id, i.status)).collect();
            subject.extend(self.audit.iter().filter(|e| e.incident.is_none()).map(|e| format!("{} {}", e.action, e.result.as_str())));
            let msg = format!(
                "heartbeat {}: {}\n\n{}",
                timestamp(t),
                if subject.is_empty() { "records".to_string() } else { subject.join(", ") },
                self.audit.iter().map(|e| format!("- {} {} on {}: {} → {}", e.time, e.action, e.target, e.decision, e.result.as_str())).collect::<Vec<_>>().join("\n")
            );
            self.mem.commit(&msg)?;
        }
        self.report.status = if self.report.failing { "failing" } else { "ok" };
        tracing::Span::current().record("status", self.report.status);
        self.report.tokens = self.tokens;
        self.report.kube_requests = crate::k8s::requests().saturating_sub(self.kube_requests_at_start);
        Ok(self.report)
    }
}

/// The target part of a fingerprint `check:class:target`.
pub(super) fn fingerprint_target(fp: &str) -> &str {
    fp.splitn(3, ':').nth(2).unwrap_or("")
}

/// Whether a result is healthy for one target: its own series when the check
/// watches many (a vanished series counts as healthy), else the whole check.
pub(super) fn healthy_for(r: &CheckResult, target: Option<&str>) -> bool {
    match target.filter(|_| !r.series.is_empty()) {
        Some(t) => r.series.iter().find(|s| s.target == t).is_none_or(|s| !s.status.is_bad()),
        None => !r.status.is_bad(),
    }
}

/// `nightshift check`: runs checks now and reports; touches no state and repairs nothing.
pub async fn check_only(ws: &Workspace, names: &[String]) -> Vec<CheckResult> {
    let specs: Vec<&CheckSpec> = ws.heartbeat.checks.iter().filter(|c| names.is_empty() || names.contains(&c.name)).collect();
    checks::run_all(&specs, Arc::new(Context::with_hosts(ws.root.clone(), ws.heartbeat.hosts.clone())), CONCURRENCY).await
}
