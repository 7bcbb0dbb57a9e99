//! `notify`: a JSON message to each webhook declared in AGENTS.md whose
//! severities include the message's. The auth header's value comes from the
//! environment variable the webhook names, never from a file.

use std::time::Duration;

use serde::Serialize;

use crate::policy::Webhook;
use crate::workspace::heartbeat::Severity;

#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    pub source: &'static str,
    pub severity: &'a str,
    pub service: &'a str,
    pub message: &'a str,
    pub incident: Option<&'a str>,
    pub idempotency_key: String,
}

/// Delivers to every matching webhook, three tries each; returns what was delivered or why not.
pub async fn send(webhooks: &[Webhook], severity: Severity, service: &str, message: &str, incident: Option<&str>) -> Result<String, String> {
    let targets: Vec<&Webhook> = webhooks.iter().filter(|w| w.severities.contains(&severity)).collect();
    if targets.is_empty() {
        return Ok("no webhook takes this severity".into());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?;
    let key = format!("{}:{}", incident.unwrap_or(service), crate::memory::notes::timestamp(chrono::Utc::now()));
    let body = Message { source: "nightshift", severity: severity.as_str(), service, message, incident, idempotency_key: key };
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    for w in targets {
        let mut last = String::new();
        let mut ok = false;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            }
            let mut req = client.post(&w.url).json(&body);
            if let Some(var) = &w.auth_header_env {
                match std::env::var(var) {
                    Ok(v) => req = req.header(reqwest::header::AUTHORIZATION, v),
                    Err(_) => {
                        last = format!("environment variable {var} is not set");
                        break;
                    }
                }
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    ok = true;
                    break;
                }
                Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
                Err(e) => last = e.to_string(),
            }
        }
        if ok { delivered.push(w.name.clone()) } else { failed.push(format!("{}: {last}", w.name)) }
    }
    if failed.is_empty() { Ok(format!("delivered to {}", delivered.join(", "))) } else { Err(format!("not delivered to {}", failed.join("; "))) }
}
