//! `notify`: a JSON message to each webhook declared in AGENTS.md whose
//! severities include the message's (the seed's routing: info to a
//! low-priority channel, warning to alerts, critical to incidents and
//! paging). The auth header's value comes from the environment variable the
//! webhook names, never from a file. Each delivery carries an idempotency key,
//! is retried with exponential backoff, and lands in a dead-letter file when
//! it finally fails.

pub mod slack;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::severity::Severity;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    /// JSON: where to POST. Slack: the incoming-webhook URL, or with
    /// `token_env` the Web API base (default https://slack.com/api).
    pub url: String,
    pub auth_header_env: Option<String>,
    pub severities: Vec<Severity>,
    pub format: WebhookFormat,
    /// Slack: the bot token's environment variable (chat.postMessage / chat.update).
    pub token_env: Option<String>,
    /// Slack: the channel a bot token posts to.
    pub channel: Option<String>,
}

/// What a webhook receives: nightshift's JSON payload, or Slack Block Kit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// One approval request as delivered: the webhook, and for Slack the
/// message's channel and ts (bot token) or the response_url of a click on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Posted {
    pub webhook: String,
    /// A Slack message (updated in place) rather than a JSON webhook (sent a follow-up).
    #[serde(default)]
    pub slack: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_url: Option<String>,
}

/// The Slack Web API base a bot-token webhook uses when it names no `url`.
pub const SLACK_API: &str = "https://slack.com/api";

/// Tries per webhook; the waits between them double from `FIRST_WAIT`.
pub const TRIES: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(250);

/// How soon a person must look (the seed's notification levels; "audit
/// only" is a message never sent): `low` a low-priority channel, `high` the
/// alerts channel now, `page` wakes someone. Beside `severity`, which keeps
/// its meaning: an auto-fixed critical problem is `critical` and `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Low,
    High,
    Page,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::High => "high",
            Urgency::Page => "page",
        }
    }

    /// A problem that needs a human, at its severity: critical pages.
    pub fn of(severity: Severity) -> Self {
        match severity {
            Severity::Info => Urgency::Low,
            Severity::Warning => Urgency::High,
            Severity::Critical => Urgency::Page,
        }
    }
}

/// What a payload is about (`kind` in the JSON; Slack renders each its own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    ApprovalRequest,
    ApprovalOutcome,
    Escalation,
    Summary,
}

/// The `approval` object of a payload: what is asked, until when, and how
/// to answer; an outcome adds who decided, when, and the result.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalInfo {
    pub id: String,
    /// The action with its typed arguments (`{"action": "rollout_restart", "namespace": …}`).
    pub action: serde_json::Value,
    pub target: String,
    pub reason: String,
    pub deadline: String,
    pub approve_url: Option<String>,
    pub abort_url: Option<String>,
    /// `confirm` or `abort-window`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub describe: String,
    /// The rule that asked, `AGENTS.md line N`.
    pub rule: String,
    pub risk: &'static str,
    pub blast_radius: u32,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub result: Option<String>,
    #[serde(skip)]
    pub abort_window: bool,
    #[serde(skip)]
    pub kind_name: String,
    #[serde(skip)]
    pub arguments: String,
    #[serde(skip)]
    pub deadline_hms: String,
}

impl ApprovalInfo {
    /// One line saying what became of it, for the updated message.
    pub fn outcome_line(&self) -> String {
        let at = self.decided_at.as_deref().and_then(crate::duration::parse_ts).map(|t| t.format("%H:%M:%S UTC").to_string()).unwrap_or_default();
        let by = self.decided_by.as_deref().unwrap_or("nobody");
        let what = match self.status.as_str() {
            "approved" => format!("Approved by {by} at {at}; carrying it out"),
            "aborted" => format!("Aborted by {by} at {at}: not carried out"),
            "expired" => format!("Expired unanswered at {at}: not carried out"),
            _ if self.decided_by.is_some() => format!("Approved by {by} at {at}; done"),
            _ => "Abort window passed; done".to_string(),
        };
        format!("{what}: {}", self.describe)
    }
}

/// One notification, whatever the receiver's format.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub kind: Kind,
    pub severity: Severity,
    /// How soon a person must look (`Urgency::of(severity)` unless said).
    pub urgency: Urgency,
    pub service: String,
    pub message: String,
    pub incident: Option<String>,
    /// Untrusted check output: Slack shows an excerpt, fenced (not in the JSON payload).
    pub evidence: Option<String>,
    /// Slack: the incident in one line, shown instead of `message` when the
    /// approval's own fields say the rest.
    pub summary: Option<String>,
    pub approval: Option<ApprovalInfo>,
    /// Slack: Approve/Abort (and Ack on escalations) buttons.
    pub buttons: bool,
}

impl Envelope {
    pub fn new(kind: Kind, severity: Severity, service: &str, message: &str, incident: Option<&str>) -> Self {
        Self {
            kind,
            severity,
            urgency: Urgency::of(severity),
            service: service.into(),
            message: message.into(),
            incident: incident.map(str::to_string),
            evidence: None,
            summary: None,
            approval: None,
            buttons: true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    pub source: &'static str,
    /// incident | approval_request | approval_outcome | escalation | summary
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<&'a ApprovalInfo>,
    pub severity: &'a str,
    pub urgency: &'static str,
    pub service: &'a str,
    pub message: &'a str,
    pub incident: Option<&'a str>,
    /// The incident note, relative to the memory folder.
    pub link: Option<String>,
    /// The same for every retry of the same message: receivers drop repeats.
    pub idempotency_key: String,
    pub time: String,
}

fn key(incident: Option<&str>, service: &str, message: &str) -> String {
    let mut h = Sha256::new();
    h.update(incident.unwrap_or(service).as_bytes());
    h.update(b"\n");
    h.update(message.as_bytes());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// `body` as JSON with every string redacted: what leaves nightshift, to a
/// webhook or to the dead-letter file, never carries a secret.
fn redacted(body: &impl Serialize) -> serde_json::Value {
    // A body that cannot be JSON is sent as null rather than in clear (it cannot happen: they are derived).
    let mut v = serde_json::to_value(body).unwrap_or_default();
    crate::redact::redact_json(&mut v);
    v
}

fn dead_letter(path: &Path, webhook: &Webhook, error: &str, time: &str, body: &impl Serialize) {
    let line = redacted(&serde_json::json!({ "time": time, "webhook": webhook.name, "url": webhook.url, "error": error, "payload": body }));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
        f.sync_data()
    };
    if let Err(e) = write() {
        tracing::error!(error = %e, path = %path.display(), "cannot write the dead letter");
    }
}

/// Routes a message by severity: every webhook that takes it; returns what
/// was delivered or why not.
pub async fn send(webhooks: &[Webhook], severity: Severity, service: &str, message: &str, incident: Option<&str>, dead_letters: &Path) -> Result<String, String> {
    send_at(webhooks, severity, Urgency::of(severity), service, message, incident, dead_letters).await
}

/// `send` with the urgency said.
pub async fn send_at(webhooks: &[Webhook], severity: Severity, urgency: Urgency, service: &str, message: &str, incident: Option<&str>, dead_letters: &Path) -> Result<String, String> {
    let targets: Vec<&Webhook> = webhooks.iter().filter(|w| w.severities.contains(&severity)).collect();
    if targets.is_empty() {
        return Ok(format!("no webhook takes severity {}", severity.as_str()));
    }
    deliver_at(&targets, severity, urgency, service, message, incident, dead_letters).await
}

/// Delivers one message to these webhooks, whatever their severities.
pub async fn deliver(targets: &[&Webhook], severity: Severity, service: &str, message: &str, incident: Option<&str>, dead_letters: &Path) -> Result<String, String> {
    deliver_at(targets, severity, Urgency::of(severity), service, message, incident, dead_letters).await
}

/// `deliver` with the urgency said.
pub async fn deliver_at(targets: &[&Webhook], severity: Severity, urgency: Urgency, service: &str, message: &str, incident: Option<&str>, dead_letters: &Path) -> Result<String, String> {
    let kind = if incident.is_some() { Kind::Incident } else { Kind::Summary };
    let mut e = Envelope::new(kind, severity, service, message, incident);
    e.urgency = urgency;
    deliver_envelope(targets, &e, dead_letters).await.0
}

/// Routes an envelope by severity, as `send` does.
pub async fn send_envelope(webhooks: &[Webhook], e: &Envelope, dead_letters: &Path) -> (Result<String, String>, Vec<Posted>) {
    let targets: Vec<&Webhook> = webhooks.iter().filter(|w| w.severities.contains(&e.severity)).collect();
    if targets.is_empty() {
        return (Ok(format!("no webhook takes severity {}", e.severity.as_str())), Vec::new());
    }
    deliver_envelope(&targets, e, dead_letters).await
}

/// Delivers one envelope: JSON to JSON webhooks, Block Kit to Slack ones;
/// returns where it went (a Slack message's channel and ts, to update it).
pub async fn deliver_envelope(targets: &[&Webhook], e: &Envelope, dead_letters: &Path) -> (Result<String, String>, Vec<Posted>) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(err) => return (Err(err.to_string()), Vec::new()),
    };
    let body = Message {
        source: "nightshift",
        kind: e.kind,
        approval: e.approval.as_ref(),
        severity: e.severity.as_str(),
        urgency: e.urgency.as_str(),
        service: &e.service,
        message: &e.message,
        incident: e.incident.as_deref(),
        link: e.incident.as_ref().map(|i| format!("incidents/{i}.md")),
        idempotency_key: key(e.incident.as_deref(), &e.service, &format!("{:?}{}{}", e.kind, e.message, e.approval.as_ref().map_or("", |a| a.status.as_str()))),
        time: crate::duration::timestamp(chrono::Utc::now()),
    };
    let mut delivered = Vec::new();
    let mut posted = Vec::new();
    let mut failed = Vec::new();
    for w in targets.iter().copied() {
        let sent = match w.format {
            WebhookFormat::Json => post(&client, w, &body.idempotency_key, &body).await.map(|()| Posted { webhook: w.name.clone(), ..Posted::default() }),
            WebhookFormat::Slack => post_slack(w, e).await,
        };
        match sent {
            Ok(p) => {
                delivered.push(w.name.clone());
                posted.push(p);
            }
            Err(last) => {
                dead_letter(dead_letters, w, &last, &body.time, &body);
                failed.push(format!("{}: {last}", w.name));
            }
        }
    }
    let summary = if failed.is_empty() { Ok(format!("delivered to {}", delivered.join(", "))) } else { Err(format!("not delivered to {} (kept in state/dead-letters.jsonl)", failed.join("; "))) };
    (summary, posted)
}

/// A Slack message, redacted, retried with backoff like a JSON delivery.
async fn post_slack(w: &Webhook, e: &Envelope) -> Result<Posted, String> {
    let message = redacted(&slack::blocks(e));
    let mut last = String::new();
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(FIRST_WAIT * 2u32.pow(attempt - 1)).await;
        }
        match slack::post(w, &message).await {
            Ok(p) => return Ok(p),
            // A missing token will not appear on a retry.
            Err(err) if err.contains("is not set") => return Err(err),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// One POST of `body`, redacted, with the webhook's auth header, retried with backoff.
async fn post(client: &reqwest::Client, w: &Webhook, key: &str, body: &impl Serialize) -> Result<(), String> {
    let body = &redacted(body);
    let mut last = String::new();
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(FIRST_WAIT * 2u32.pow(attempt - 1)).await;
        }
        let mut req = client.post(&w.url).header("Idempotency-Key", key).json(body);
        if let Some(var) = &w.auth_header_env {
            match std::env::var(var) {
                Ok(v) => req = req.header(reqwest::header::AUTHORIZATION, v),
                Err(_) => return Err(format!("environment variable {var} (auth_header_env) is not set")),
            }
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// A credentialed action handed to the webhook that holds the credentials
/// (an n8n workflow): a JSON request `{"action", …fields, "incident",
/// "idempotency_key", "time"}`; done when the webhook answers 2xx.
pub async fn request(w: &Webhook, action: &str, fields: serde_json::Map<String, serde_json::Value>, incident: Option<&str>, dead_letters: &Path) -> Result<String, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let time = crate::duration::timestamp(chrono::Utc::now());
    let idempotency_key = key(incident, action, &serde_json::Value::Object(fields.clone()).to_string());
    let mut body = fields;
    body.insert("action".into(), action.into());
    body.insert("source".into(), "nightshift".into());
    body.insert("incident".into(), incident.into());
    body.insert("idempotency_key".into(), idempotency_key.clone().into());
    body.insert("time".into(), time.clone().into());
    match post(&client, w, &idempotency_key, &body).await {
        Ok(()) => Ok(format!("requested {action} from webhook {}", w.name)),
        Err(e) => {
            dead_letter(dead_letters, w, &e, &time, &body);
            Err(format!("webhook {} did not take the {action} request: {e} (kept in state/dead-letters.jsonl)", w.name))
        }
    }
}
