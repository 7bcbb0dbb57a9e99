//! `notify`: a JSON message to each webhook declared in AGENTS.md whose
//! severities include the message's (the seed's routing: info to a
//! low-priority channel, warning to alerts, critical to incidents and
//! paging). The auth header's value comes from the environment variable the
//! webhook names, never from a file. Each delivery carries an idempotency key,
//! is retried with exponential backoff, and lands in a dead-letter file when
//! it finally fails.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::policy::Webhook;
use crate::workspace::heartbeat::Severity;

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

#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    pub source: &'static str,
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
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?;
    let body = Message {
        source: "nightshift",
        severity: severity.as_str(),
        urgency: urgency.as_str(),
        service,
        message,
        incident,
        link: incident.map(|i| format!("incidents/{i}.md")),
        idempotency_key: key(incident, service, message),
        time: crate::memory::notes::timestamp(chrono::Utc::now()),
    };
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    for w in targets.iter().copied() {
        match post(&client, w, &body.idempotency_key, &body).await {
            Ok(()) => delivered.push(w.name.clone()),
            Err(last) => {
                dead_letter(dead_letters, w, &last, &body.time, &body);
                failed.push(format!("{}: {last}", w.name));
            }
        }
    }
    if failed.is_empty() { Ok(format!("delivered to {}", delivered.join(", "))) } else { Err(format!("not delivered to {} (kept in state/dead-letters.jsonl)", failed.join("; "))) }
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
    let time = crate::memory::notes::timestamp(chrono::Utc::now());
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
