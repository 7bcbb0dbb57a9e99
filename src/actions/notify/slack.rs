//! Slack as a receiver (`format: slack`): Block Kit messages built from a
//! notification, and the Web API calls that post and update them. Text from
//! outside (titles, diagnoses, check output) is redacted, escaped (`&`, `<`,
//! `>`: no mention, link or `<!channel>` survives) and cut to Slack's limits
//! before it is placed; it goes in `plain_text` where no formatting is
//! needed and in a fenced block whose fence it cannot close otherwise.
//! Buttons carry only ids nightshift made: `approve`/`abort` with the
//! approval id, `ack` with the incident id (what `serve`'s
//! `/slack/interactions` reads).

use std::time::Duration;

use serde_json::{Value, json};

use super::Posted;
use super::Webhook;
use super::{Envelope, Kind};

/// Slack's limits (Block Kit reference): section text 3,000 characters,
/// header 150, button text 75, at most 50 blocks a message.
pub const TEXT_MAX: usize = 3000;
const HEADER_MAX: usize = 150;
const EVIDENCE_MAX: usize = 1500;

/// Escapes the three characters Slack's mrkdwn gives meaning to as markup
/// (`<!channel>`, `<@U1>`, `<http://x|y>`).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Redacted first (a secret cut in half no longer looks like one), then cut.
fn clean(s: &str, max: usize) -> String {
    let r = crate::redact::redact(s);
    if r.chars().count() <= max {
        return r;
    }
    let mut out: String = r.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Untrusted text for an mrkdwn field: redacted, escaped, then cut so the
/// escapes cannot push it past `max`.
fn mrkdwn_text(s: &str, max: usize) -> String {
    let e = escape(&crate::redact::redact(s));
    clean(&e, max)
}

/// A fenced excerpt: a ``` inside cannot close the fence (a zero-width
/// space breaks it), and it stays within a section's limit.
fn fenced(s: &str) -> String {
    let body = mrkdwn_text(s, EVIDENCE_MAX).replace("```", "`\u{200b}`\u{200b}`");
    format!("```\n{body}\n```")
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": clean(&text, TEXT_MAX) } })
}

fn context(text: String) -> Value {
    json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": clean(&text, TEXT_MAX) }] })
}

fn button(action_id: &str, text: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({ "type": "button", "action_id": action_id, "text": { "type": "plain_text", "text": text }, "value": value });
    if let Some(s) = style {
        b["style"] = s.into();
    }
    b
}

fn emoji(e: &Envelope) -> &'static str {
    match (e.kind, e.severity) {
        (Kind::ApprovalRequest, _) => ":raised_hand:",
        (Kind::ApprovalOutcome, _) => ":white_check_mark:",
        (_, crate::severity::Severity::Critical) => ":rotating_light:",
        (_, crate::severity::Severity::Warning) => ":warning:",
        (_, crate::severity::Severity::Info) => ":information_source:",
    }
}

/// The Block Kit message for one notification: `{"text", "blocks"}`.
pub fn blocks(e: &Envelope) -> Value {
    let mut blocks = Vec::new();
    let title = match (&e.approval, e.kind) {
        (Some(a), Kind::ApprovalRequest) if a.abort_window => format!("Acting at {} UTC unless aborted: {}", a.deadline_hms, a.describe),
        (Some(a), Kind::ApprovalRequest) => format!("Approval needed: {}", a.describe),
        (Some(a), Kind::ApprovalOutcome) => a.outcome_line(),
        _ => format!("[{}] {}", e.severity.as_str(), e.message.lines().next().unwrap_or_default()),
    };
    blocks.push(json!({ "type": "header", "text": { "type": "plain_text", "text": clean(&title, HEADER_MAX) } }));
    blocks.push(section(format!("{} {}", emoji(e), mrkdwn_text(e.summary.as_deref().unwrap_or(&e.message), TEXT_MAX - 40))));
    if let Some(a) = &e.approval {
        let mut lines = vec![
            format!("*Action:* `{}` {}", a.kind_name, mrkdwn_text(&a.arguments, 600)),
            format!("*Target:* {} · *Blast radius:* {} · *Risk:* {}", mrkdwn_text(&a.target, 300), a.blast_radius, a.risk),
            format!("*Asked by:* {} ({})", mrkdwn_text(&a.rule, 200), mrkdwn_text(&a.reason, 600)),
            format!("*Approval:* `{}` · *{}:* {}", a.id, if a.abort_window { "Acts at" } else { "Expires" }, a.deadline),
        ];
        if let Some(r) = &a.result {
            lines.push(format!("*Result:* {}", mrkdwn_text(r, 900)));
        }
        blocks.push(section(lines.join("\n")));
    }
    if let Some(ev) = e.evidence.as_deref().filter(|v| !v.trim().is_empty()) {
        blocks.push(section(format!("*Evidence*\n{}", fenced(ev))));
    }
    let mut about = Vec::new();
    if let Some(i) = &e.incident {
        about.push(format!("incident `{}` · check `{}` · note `incidents/{}.md`", mrkdwn_text(i, 200), mrkdwn_text(&e.service, 200), mrkdwn_text(i, 200)));
    }
    if let Some(a) = e.approval.as_ref().filter(|_| e.kind != Kind::ApprovalOutcome) {
        let cli = if a.abort_window { format!("`nightshift abort {}`", a.id) } else { format!("`nightshift approve {0}` or `nightshift abort {0}`", a.id) };
        let api = match (&a.approve_url, &a.abort_url) {
            (Some(ok), Some(no)) if !a.abort_window => format!(" · API: POST {} / {}", escape(ok), escape(no)),
            (_, Some(no)) => format!(" · API: POST {}", escape(no)),
            _ => String::new(),
        };
        about.push(format!("Answer with the buttons, a thread reply `approve` / `abort`, {cli}{api}"));
    }
    if !about.is_empty() {
        blocks.push(context(about.join("\n")));
    }
    let mut buttons = Vec::new();
    if let Some(a) = e.approval.as_ref().filter(|_| matches!(e.kind, Kind::ApprovalRequest | Kind::Escalation) && e.buttons) {
        if !a.abort_window {
            buttons.push(button("approve", "Approve", &a.id, Some("primary")));
        }
        buttons.push(button("abort", "Abort", &a.id, Some("danger")));
    }
    if let (Kind::Escalation, Some(i)) = (e.kind, &e.incident)
        && e.buttons
    {
        buttons.push(button("ack", "Ack", i, None));
    }
    if !buttons.is_empty() {
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    json!({ "text": clean(&title, TEXT_MAX), "blocks": blocks })
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())
}

fn token(w: &Webhook) -> Result<Option<String>, String> {
    match &w.token_env {
        None => Ok(None),
        Some(var) => std::env::var(var).ok().filter(|v| !v.is_empty()).map(Some).ok_or_else(|| format!("environment variable {var} (token_env) is not set")),
    }
}

/// One Web API call; Slack answers 200 with `ok: false` on errors.
async fn api(w: &Webhook, token: &str, method: &str, body: &Value) -> Result<Value, String> {
    let url = format!("{}/{method}", w.url.trim_end_matches('/'));
    let r = client()?.post(&url).bearer_auth(token).json(body).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| format!("{method}: HTTP {status}, not JSON: {e}"))?;
    if v["ok"].as_bool() == Some(true) { Ok(v) } else { Err(format!("{method}: {}", v["error"].as_str().unwrap_or("not ok"))) }
}

/// Posts a message: to the incoming webhook, or with chat.postMessage
/// (whose channel and ts are kept so it can be updated).
pub async fn post(w: &Webhook, message: &Value) -> Result<Posted, String> {
    let mut posted = Posted { webhook: w.name.clone(), slack: true, ..Posted::default() };
    match (token(w)?, &w.channel) {
        (Some(t), Some(channel)) => {
            let mut body = message.clone();
            body["channel"] = channel.as_str().into();
            let v = api(w, &t, "chat.postMessage", &body).await?;
            posted.channel = Some(v["channel"].as_str().unwrap_or(channel).to_string());
            posted.ts = v["ts"].as_str().map(str::to_string);
        }
        _ => {
            let r = client()?.post(&w.url).json(message).send().await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status().as_u16()));
            }
        }
    }
    Ok(posted)
}

/// Replaces a posted message: chat.update with the bot token, or the
/// response_url a click on it gave. `Ok(false)`: nothing to update it by.
pub async fn update(w: Option<&Webhook>, p: &Posted, message: &Value) -> Result<bool, String> {
    if let (Some(w), Some(channel), Some(ts)) = (w, &p.channel, &p.ts)
        && let Some(t) = token(w)?
    {
        let mut body = message.clone();
        body["channel"] = channel.as_str().into();
        body["ts"] = ts.as_str().into();
        api(w, &t, "chat.update", &body).await?;
        return Ok(true);
    }
    let Some(url) = &p.response_url else { return Ok(false) };
    let mut body = message.clone();
    body["replace_original"] = true.into();
    let r = client()?.post(url).json(&body).send().await.map_err(|e| e.to_string())?;
    if r.status().is_success() { Ok(true) } else { Err(format!("response_url: HTTP {}", r.status().as_u16())) }
}

/// Tells one person why they were refused, visible only to them: through
/// the click's response_url, or chat.postEphemeral in the thread.
pub async fn ephemeral(response_url: Option<&str>, w: Option<&Webhook>, channel: &str, user: &str, thread_ts: Option<&str>, text: &str) -> Result<(), String> {
    let text = escape(&crate::redact::redact(text));
    if let Some(url) = response_url {
        let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
        let r = client()?.post(url).json(&body).send().await.map_err(|e| e.to_string())?;
        return if r.status().is_success() { Ok(()) } else { Err(format!("response_url: HTTP {}", r.status().as_u16())) };
    }
    let Some(w) = w else { return Err("no Slack bot token to reply with".into()) };
    let Some(t) = token(w)? else { return Err(format!("webhook {} has no token_env to reply with", w.name)) };
    let mut body = json!({ "channel": channel, "user": user, "text": text });
    if let Some(ts) = thread_ts {
        body["thread_ts"] = ts.into();
    }
    api(w, &t, "chat.postEphemeral", &body).await.map(|_| ())
}
