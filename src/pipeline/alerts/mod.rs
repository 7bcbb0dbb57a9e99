//! Alerts and events as incidents, through the same memory and notifications
//! as failing checks: a firing alert opens (or updates) the incident of its
//! label set, a resolved alert resolves it. Three senders are understood:
//! Alertmanager (webhook payload version 4), Argo CD notifications (the
//! template in deploy/argocd) and a generic JSON event. Annotations, messages
//! and summaries are untrusted text: they go into the fenced evidence, never
//! into titles or decisions.

pub mod bounds;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IncidentReport, RunError, Runner, now, slug};
use crate::duration::timestamp;
use crate::memory::notes::{Incident, IncidentStatus};
use crate::severity::Severity;

/// One alert of an Alertmanager webhook (payload version 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    pub starts_at: String,
    #[serde(default)]
    pub fingerprint: String,
    /// Who sent it: `alertmanager`, `argocd`, or `event:<source>` for a generic event.
    #[serde(default = "alertmanager")]
    pub source: String,
    /// An explicit severity (Argo CD, events); Alertmanager's is the `severity` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

fn alertmanager() -> String {
    "alertmanager".into()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AlertError(pub String);

fn strings(v: &Value, what: &str, i: usize) -> Result<BTreeMap<String, String>, AlertError> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m.iter().map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())).ok_or_else(|| AlertError(format!("alerts[{i}].{what}.{k} must be a string")))).collect(),
        _ => Err(AlertError(format!("alerts[{i}].{what} must be an object of strings"))),
    }
}

/// Validates an Alertmanager webhook body and returns its alerts.
pub fn parse_alertmanager(body: &[u8]) -> Result<Vec<Alert>, AlertError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AlertError(format!("not JSON: {e}")))?;
    match v.get("version").and_then(Value::as_str) {
        Some("4") => {}
        Some(other) => return Err(AlertError(format!("unsupported payload version {other:?}; Alertmanager sends version \"4\""))),
        None => return Err(AlertError("missing \"version\": not an Alertmanager webhook payload".into())),
    }
    let alerts = v.get("alerts").and_then(Value::as_array).ok_or_else(|| AlertError("missing \"alerts\" array".into()))?;
    bounds::check_count(alerts.len())?;
    let mut out = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        bounds::check_alert(a, i)?;
        let status = a.get("status").and_then(Value::as_str).ok_or_else(|| AlertError(format!("alerts[{i}].status is missing")))?;
        if status != "firing" && status != "resolved" {
            return Err(AlertError(format!("alerts[{i}].status is {status:?}; expected \"firing\" or \"resolved\"")));
        }
        let labels = strings(a.get("labels").unwrap_or(&Value::Null), "labels", i)?;
        if !labels.contains_key("alertname") {
            return Err(AlertError(format!("alerts[{i}].labels.alertname is missing")));
        }
        out.push(Alert {
            status: status.to_string(),
            labels,
            annotations: strings(a.get("annotations").unwrap_or(&Value::Null), "annotations", i)?,
            starts_at: starts_at(a, i)?,
            fingerprint: a.get("fingerprint").and_then(Value::as_str).unwrap_or("").to_string(),
            source: alertmanager(),
            severity: None,
        });
    }
    Ok(out)
}

/// An alert's `startsAt`: absent or empty is unknown; otherwise it must be an
/// RFC 3339 timestamp, kept in nightshift's own form (never the sender's text).
fn starts_at(a: &Value, i: usize) -> Result<String, AlertError> {
    match a.get("startsAt") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(String::new()),
        Some(Value::String(s)) => crate::duration::parse_ts(s)
            .filter(|_| !s.chars().any(char::is_whitespace))
            .map(timestamp)
            .ok_or_else(|| AlertError(format!("alerts[{i}].startsAt is not an RFC 3339 timestamp (e.g. \"2026-12-02T10:30:00Z\")"))),
        Some(_) => Err(AlertError(format!("alerts[{i}].startsAt must be a string"))),
    }
}

/// The longest label value or name an event may carry (Kubernetes names are at most 253).
const MAX_LABEL: usize = 253;
/// The longest free text (message, summary) kept from an event.
const MAX_TEXT: usize = 8 * 1024;

fn object(body: &[u8], what: &str) -> Result<serde_json::Map<String, Value>, AlertError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AlertError(format!("{what} must be a JSON object"))),
        Err(e) => Err(AlertError(format!("not JSON: {e}"))),
    }
}

/// A string field: absent is None; present, it must be a string within `max` characters.
fn field(m: &serde_json::Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, AlertError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(AlertError(format!("\"{key}\" is longer than {max} characters"))),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(_) => Err(AlertError(format!("\"{key}\" must be a string"))),
    }
}

fn required(m: &serde_json::Map<String, Value>, key: &str, max: usize, fix: &str) -> Result<String, AlertError> {
    field(m, key, max)?.ok_or_else(|| AlertError(format!("\"{key}\" is missing: {fix}")))
}

/// Argo CD notification triggers (argocd-notifications' catalog) that fire, and their severity.
const ARGO_FIRING: &[(&str, Severity)] = &[("on-sync-failed", Severity::Critical), ("on-health-degraded", Severity::Critical), ("on-sync-status-unknown", Severity::Warning)];
const ARGO_RESOLVING: &[&str] = &["on-deployed", "on-sync-succeeded"];

/// Validates an Argo CD notification (the webhook template in
/// deploy/argocd/argocd-notifications-cm.yaml) and returns it as alerts: a
/// failed sync or a degraded application fires, a deploy or a successful
/// sync resolves what fired for the application. Other triggers are
/// accepted and carry nothing (an empty list).
pub fn parse_argocd(body: &[u8]) -> Result<Vec<Alert>, AlertError> {
    let m = object(body, "an Argo CD notification")?;
    let fix = "use the webhook template of deploy/argocd/argocd-notifications-cm.yaml";
    let app = required(&m, "app", MAX_LABEL, fix)?;
    let trigger = required(&m, "trigger", MAX_LABEL, fix)?;
    let namespace = field(&m, "namespace", MAX_LABEL)?;
    let project = field(&m, "project", MAX_LABEL)?;
    let mut annotations = BTreeMap::new();
    for key in ["health", "sync", "phase", "revision", "repo", "message"] {
        if let Some(v) = field(&m, key, MAX_TEXT)? {
            annotations.insert(key.to_string(), v);
        }
    }
    let status = if let Some((_, sev)) = ARGO_FIRING.iter().find(|(t, _)| *t == trigger) {
        Some(("firing", *sev))
    } else if ARGO_RESOLVING.contains(&trigger.as_str()) {
        Some(("resolved", Severity::Critical))
    } else {
        None
    };
    let Some((status, severity)) = status else { return Ok(Vec::new()) };
    let mut labels = BTreeMap::from([("alertname".to_string(), "ArgoCDApplication".to_string()), ("app".to_string(), app)]);
    if let Some(ns) = namespace {
        labels.insert("namespace".into(), ns);
    }
    if let Some(p) = project {
        labels.insert("project".into(), p);
    }
    annotations.insert("trigger".into(), trigger);
    Ok(vec![Alert { status: status.into(), labels, annotations, starts_at: String::new(), fingerprint: String::new(), source: "argocd".into(), severity: Some(severity) }])
}

const EVENT_KEYS: &[&str] = &["source", "service", "severity", "summary", "labels", "status"];
const RESERVED_LABELS: &[&str] = &["alertname", "source", "service", "severity"];

/// Validates a generic event: `{"source", "service", "severity", "summary",
/// "labels", "status"}` (source, service and summary required; severity
/// info, warning or critical, default warning; status firing (default) or
/// resolved; labels an object of strings that, with source and service,
/// names what the event is about).
pub fn parse_event(body: &[u8]) -> Result<Vec<Alert>, AlertError> {
    let m = object(body, "an event")?;
    if let Some(k) = m.keys().find(|k| !EVENT_KEYS.contains(&k.as_str())) {
        return Err(AlertError(format!("unknown field \"{k}\"; an event has {}", EVENT_KEYS.join(", "))));
    }
    let source = required(&m, "source", MAX_LABEL, "name the system that sends the event, e.g. \"jenkins\"")?;
    let service = required(&m, "service", MAX_LABEL, "name the service the event is about")?;
    let summary = required(&m, "summary", MAX_TEXT, "say what happened in a sentence")?;
    let severity = match field(&m, "severity", MAX_LABEL)? {
        None => Severity::Warning,
        Some(s) => Severity::parse(&s.to_lowercase()).ok_or_else(|| AlertError(format!("\"severity\" is {s:?}; use info, warning or critical")))?,
    };
    let status = field(&m, "status", MAX_LABEL)?.unwrap_or_else(|| "firing".into());
    if status != "firing" && status != "resolved" {
        return Err(AlertError(format!("\"status\" is {status:?}; expected \"firing\" or \"resolved\"")));
    }
    let mut labels = match m.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v @ Value::Object(o)) => {
            if o.len() > 32 {
                return Err(AlertError("\"labels\" has more than 32 entries".into()));
            }
            let labels = strings(v, "labels", 0).map_err(|e| AlertError(e.0.replace("alerts[0].", "")))?;
            if let Some((k, _)) = labels.iter().find(|(k, v)| k.is_empty() || k.len() > MAX_LABEL || v.len() > MAX_LABEL) {
                return Err(AlertError(format!("labels.{k}: names and values must be 1-{MAX_LABEL} characters")));
            }
            if let Some(k) = labels.keys().find(|k| RESERVED_LABELS.contains(&k.as_str())) {
                return Err(AlertError(format!("labels.{k} is reserved: use the top-level field")));
            }
            labels
        }
        Some(_) => return Err(AlertError("\"labels\" must be an object of strings".into())),
    };
    labels.insert("alertname".into(), "event".into());
    labels.insert("source".into(), source.clone());
    labels.insert("service".into(), service);
    let annotations = BTreeMap::from([("summary".to_string(), summary)]);
    // A sender's own name never poses as one of the built-in intakes.
    Ok(vec![Alert { status, labels, annotations, starts_at: String::new(), fingerprint: String::new(), source: format!("event:{source}"), severity: Some(severity) }])
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("alert", String::as_str)
    }

    /// The stable target: the label set without the alert's name.
    pub fn target(&self) -> String {
        let inner: Vec<String> = self.labels.iter().filter(|(k, _)| k.as_str() != "alertname").map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", inner.join(","))
    }

    pub fn fingerprint(&self) -> String {
        format!("alert-{}:{}:{}", slug(self.name()), slug(self.name()), self.target())
    }

    pub fn severity(&self) -> Severity {
        self.severity.or_else(|| self.labels.get("severity").and_then(|s| Severity::parse(&s.to_lowercase()))).unwrap_or(Severity::Warning)
    }

    /// The incident's title, from the names it carries (never from free text).
    pub fn title(&self) -> String {
        let label = |k: &str| self.labels.get(k).map_or("", String::as_str);
        match self.source.as_str() {
            "alertmanager" => format!("Alert {} on {}", self.name(), self.target()),
            "argocd" => {
                let what = match self.annotations.get("trigger").map(String::as_str) {
                    Some("on-sync-failed") => "sync failed",
                    Some("on-health-degraded") => "degraded",
                    _ => "sync status unknown",
                };
                let ns = if label("namespace").is_empty() { String::new() } else { format!(" (namespace {})", label("namespace")) };
                format!("Argo CD application {}{ns}: {what}", label("app"))
            }
            _ => format!("Event from {} about {} on {}", label("source"), label("service"), self.target()),
        }
    }

    /// The sender, as people name it.
    pub fn sender(&self) -> &str {
        match self.source.as_str() {
            "alertmanager" => "Alertmanager",
            "argocd" => "Argo CD",
            other => other.strip_prefix("event:").unwrap_or(other),
        }
    }

    /// Whether the alert is about a rollout (the Kubernetes checks run at once).
    pub fn is_rollout(&self) -> bool {
        self.source == "argocd" && self.status == "firing"
    }
}

impl Runner<'_> {
    /// Handles a batch of alerts: the last word on each label set wins.
    #[tracing::instrument(name = "signal", skip_all, fields(alerts = alerts.len()))]
    pub(super) async fn ingest_alerts(&mut self, alerts: Vec<Alert>) -> Result<(), RunError> {
        let mut latest: BTreeMap<String, (Alert, u32)> = BTreeMap::new();
        for a in alerts {
            let entry = latest.entry(a.fingerprint()).or_insert_with(|| (a.clone(), 0));
            entry.0 = a;
            entry.1 += 1;
        }
        // New incidents are bounded per pass; the firing alerts beyond the bound fold into one.
        let (mut opened, mut folded) = (0, Vec::new());
        for (fp, (alert, seen)) in latest {
            let open = self.state.open.get(&fp).cloned();
            match (alert.status.as_str(), open) {
                ("firing", None) if opened >= bounds::MAX_NEW_INCIDENTS => folded.push((alert, seen)),
                ("firing", None) => {
                    opened += 1;
                    self.alert_fires(&fp, &alert, seen).await?;
                }
                ("resolved", Some(id)) => {
                    self.state.open.remove(&fp);
                    if let Ok(mut inc) = self.mem.read_incident(&id) {
                        inc.status = IncidentStatus::Resolved;
                        inc.resolved = Some(timestamp(now()));
                        inc.actions.push(format!("{} {} reports it resolved", timestamp(now()), alert.sender()));
                        self.resolved_classes.insert(inc.class.clone());
                        self.mem.write_incident(&inc)?;
                        self.changed = true;
                        self.report.notes.push(format!("incident {id} resolved: alert {} resolved", alert.name()));
                    }
                }
                ("resolved", None) => {}
                _ => self.alert_fires(&fp, &alert, seen).await?,
            }
        }
        if !folded.is_empty() {
            self.alert_storm(folded).await?;
        }
        Ok(())
    }

    async fn alert_fires(&mut self, fp: &str, alert: &Alert, seen: u32) -> Result<(), RunError> {
        let t = timestamp(now());
        let annotations = serde_json::to_string_pretty(&alert.annotations).unwrap_or_default();
        let since = crate::duration::parse_ts(&alert.starts_at).map_or_else(|| "an unknown time".to_string(), timestamp);
        let evidence = crate::redact::redact(&format!("alert {} {} since {since}\nlabels: {}\nannotations (untrusted):\n{annotations}", alert.name(), alert.status, alert.target()));
        let existing = self.state.open.get(fp).and_then(|id| self.mem.read_incident(id).ok());
        let new = existing.is_none();
        let inc = match existing {
            Some(mut inc) => {
                inc.last_seen = t;
                inc.occurrences += seen;
                inc.evidence = evidence;
                inc
            }
            None => Incident {
                id: self.mem.new_incident_id(now(), &slug(&format!("alert-{}", alert.name()))),
                title: alert.title(),
                fingerprint: fp.to_string(),
                class: match alert.source.as_str() {
                    "alertmanager" => slug(alert.name()),
                    "argocd" => "rollout".into(),
                    _ => "event".into(),
                },
                target: alert.target(),
                check: format!("alert:{} ({})", alert.name(), alert.source),
                // Re-parsed: a journal line is data too. A start in the future is taken as now.
                failing_since: Some(crate::duration::parse_ts(&alert.starts_at).filter(|s| *s <= now()).map_or_else(|| t.clone(), timestamp)),
                attempts: Vec::new(),
                tokens: 0,
                recalled_from: None,
                severity: alert.severity(),
                status: IncidentStatus::NeedsHuman,
                detected: t.clone(),
                last_seen: t,
                resolved: None,
                occurrences: seen,
                evidence,
                diagnosis: vec![
                    format!("{} reports {} firing for {}", alert.sender(), crate::markdown::code(alert.name()), crate::markdown::code(&alert.target())),
                    if alert.source == "argocd" {
                        "a rollout went wrong: the daemon runs its Kubernetes checks at once, so a Deployment that does not become ready is diagnosed, and rolled back as the policy allows, in its own incident; the notification's message is in the evidence".into()
                    } else {
                        "no runbook acts on alerts in this build: a human decides; the annotations are in the evidence".into()
                    },
                ],
                actions: Vec::new(),
                prevention: vec!["give the alert a runbook link and, where it is safe, a declared repair".into()],
                related: Vec::new(),
            },
        };
        self.keep_alert_incident(fp, inc, new).await
    }

    /// Records an incident an alert opened or updated: it becomes the open
    /// incident of `fp`, a new one is announced, and its note is written.
    pub(super) async fn keep_alert_incident(&mut self, fp: &str, mut inc: Incident, new: bool) -> Result<(), RunError> {
        self.state.open.insert(fp.to_string(), inc.id.clone());
        let mut reports = Vec::new();
        if new {
            self.notify_plain(&mut inc, &mut reports).await?;
        }
        self.mem.write_incident(&inc)?;
        self.changed = true;
        self.report.failing = true;
        self.report.incidents.push(IncidentReport::of(&inc, new, reports));
        Ok(())
    }
}
