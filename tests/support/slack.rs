//! A Slack stand-in on loopback: incoming webhooks (`/hooks/...`), the Web
//! API methods nightshift calls (`/api/chat.postMessage`, `chat.update`,
//! `chat.postEphemeral`, checked for the bot token) and response_urls
//! (`/response/...`). It answers as Slack does (`ok: true` and a `ts`) and
//! checks every message against Slack's published Block Kit limits; a
//! message that breaks one is recorded as a violation (and refused as Slack
//! would, `invalid_blocks`). Also signs interactions and events with a real
//! signing secret, as Slack does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

/// One request Slack received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `incoming`, `chat.postMessage`, `chat.update`, `chat.postEphemeral`, `response_url`.
    pub method: String,
    pub path: String,
    pub body: Value,
    /// What the stand-in answered (chat.postMessage: the `ts`).
    pub answer: Value,
    pub at: std::time::SystemTime,
}

pub struct SlackStandIn {
    pub addr: String,
    pub token: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub violations: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

const BLOCK_TYPES: &[&str] = &["actions", "context", "divider", "file", "header", "image", "input", "section", "video", "rich_text", "markdown"];

/// Slack's Block Kit limits (api.slack.com/reference/block-kit): the problems with one message.
pub fn block_kit_problems(m: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let text_len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    if text_len(&m["text"]) > 40_000 {
        out.push("top-level text over 40,000".into());
    }
    let Some(blocks) = m["blocks"].as_array() else {
        if m["text"].as_str().is_none() {
            out.push("neither blocks nor text".into());
        }
        return out;
    };
    if blocks.len() > 50 {
        out.push(format!("{} blocks, more than 50", blocks.len()));
    }
    let mut action_ids = std::collections::BTreeSet::new();
    for b in blocks {
        let ty = b["type"].as_str().unwrap_or("");
        if !BLOCK_TYPES.contains(&ty) {
            out.push(format!("unknown block type {ty:?}"));
        }
        if text_len(&b["block_id"]) > 255 {
            out.push("block_id over 255".into());
        }
        let text_obj = |t: &Value, max: usize, what: &str, out: &mut Vec<String>| {
            if !matches!(t["type"].as_str(), Some("mrkdwn" | "plain_text")) {
                out.push(format!("{what}: text object type {:?}", t["type"]));
            }
            let n = text_len(&t["text"]);
            if n == 0 || n > max {
                out.push(format!("{what}: text of {n} characters (1..={max})"));
            }
        };
        match ty {
            "section" => {
                text_obj(&b["text"], 3000, "section", &mut out);
                if b["fields"].as_array().is_some_and(|f| f.len() > 10) {
                    out.push("section with more than 10 fields".into());
                }
            }
            "header" => {
                text_obj(&b["text"], 150, "header", &mut out);
                if b["text"]["type"] != "plain_text" {
                    out.push("header text must be plain_text".into());
                }
            }
            "context" => {
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 10 {
                    out.push(format!("context with {} elements (1..=10)", els.len()));
                }
                for e in &els {
                    text_obj(e, 3000, "context element", &mut out);
                }
            }
            "actions" => {
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 25 {
                    out.push(format!("actions with {} elements (1..=25)", els.len()));
                }
                for e in &els {
                    if e["type"] != "button" {
                        out.push(format!("action element type {:?}", e["type"]));
                    }
                    let id = e["action_id"].as_str().unwrap_or("");
                    if id.is_empty() || id.chars().count() > 255 {
                        out.push(format!("action_id {id:?} (1..=255)"));
                    }
                    if !action_ids.insert(id.to_string()) {
                        out.push(format!("action_id {id:?} repeated"));
                    }
                    text_obj(&e["text"], 75, "button", &mut out);
                    if e["text"]["type"] != "plain_text" {
                        out.push("button text must be plain_text".into());
                    }
                    if text_len(&e["value"]) > 2000 {
                        out.push("button value over 2000".into());
                    }
                    if let Some(s) = e["style"].as_str().filter(|s| !["primary", "danger"].contains(s)) {
                        out.push(format!("button style {s:?}"));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Every text a person would read in a message (header, sections, context, buttons).
pub fn texts(m: &Value) -> Vec<String> {
    let mut out = vec![m["text"].as_str().unwrap_or("").to_string()];
    for b in m["blocks"].as_array().cloned().unwrap_or_default() {
        out.extend(b["text"]["text"].as_str().map(str::to_string));
        for e in b["elements"].as_array().cloned().unwrap_or_default() {
            out.extend(e["text"].as_str().map(str::to_string));
            out.extend(e["text"]["text"].as_str().map(str::to_string));
        }
    }
    out
}

/// The (action_id, value) of every button.
pub fn buttons(m: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in m["blocks"].as_array().cloned().unwrap_or_default() {
        for e in b["elements"].as_array().cloned().unwrap_or_default().iter().filter(|e| e["type"] == "button") {
            out.push((e["action_id"].as_str().unwrap_or("").to_string(), e["value"].as_str().unwrap_or("").to_string()));
        }
    }
    out
}

impl SlackStandIn {
    pub fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let ts = Arc::new(AtomicU64::new(1));
        let (rc, vi, st, tok) = (received.clone(), violations.clone(), stop.clone(), token.to_string());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let (rc, vi, tok, ts) = (rc.clone(), vi.clone(), tok.clone(), ts.clone());
                        std::thread::spawn(move || {
                            conn.set_nonblocking(false).ok();
                            conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                            let Some((head, body)) = super::read_request(&mut conn) else { return };
                            let (status, answer) = answer(&head, &body, &tok, &rc, &vi, &ts);
                            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{answer}", answer.len());
                            let _ = std::io::Write::write_all(&mut conn, resp.as_bytes());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, token: token.to_string(), received, violations, stop }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn incoming_url(&self) -> String {
        format!("http://{}/hooks/T0/B0/incoming", self.addr)
    }

    pub fn response_url(&self, n: u32) -> String {
        format!("http://{}/response/{n}", self.addr)
    }

    pub fn got(&self, method: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.method == method).cloned().collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

impl Drop for SlackStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(head: &str, body: &[u8], token: &str, rc: &Mutex<Vec<Received>>, vi: &Mutex<Vec<String>>, ts: &AtomicU64) -> (u16, String) {
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let auth = head.lines().find_map(|l| l.to_ascii_lowercase().starts_with("authorization:").then(|| l[14..].trim().to_string()));
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        vi.lock().unwrap().push(format!("{path}: body is not JSON"));
        return (400, "invalid_payload".into());
    };
    let method = if path.starts_with("/hooks/") {
        "incoming".to_string()
    } else if path.starts_with("/response/") {
        "response_url".to_string()
    } else {
        path.trim_start_matches("/api/").to_string()
    };
    let at = std::time::SystemTime::now();
    let (status, answer) = respond(&path, &method, &v, auth.as_deref(), token, rc, vi, ts);
    let parsed = serde_json::from_str(&answer).unwrap_or(Value::String(answer.clone()));
    rc.lock().unwrap().push(Received { method, path, body: v, answer: parsed, at });
    (status, answer)
}

#[allow(clippy::too_many_arguments)]
fn respond(path: &str, method: &str, v: &Value, auth: Option<&str>, token: &str, rc: &Mutex<Vec<Received>>, vi: &Mutex<Vec<String>>, ts: &AtomicU64) -> (u16, String) {
    let is_api = path.starts_with("/api/");
    if is_api && auth != Some(format!("Bearer {token}").as_str()) {
        return (200, json!({ "ok": false, "error": "invalid_auth" }).to_string());
    }
    let ephemeral = v["response_type"] == "ephemeral" || method == "chat.postEphemeral";
    if !ephemeral {
        let problems = block_kit_problems(v);
        if !problems.is_empty() {
            vi.lock().unwrap().push(format!("{method}: {}", problems.join("; ")));
            return if is_api { (200, json!({ "ok": false, "error": "invalid_blocks" }).to_string()) } else { (400, "invalid_blocks".into()) };
        }
    }
    match method {
        "incoming" | "response_url" => (200, "ok".into()),
        "chat.postMessage" => {
            let Some(channel) = v["channel"].as_str() else { return (200, json!({ "ok": false, "error": "channel_not_found" }).to_string()) };
            let ts = format!("1700000000.{:06}", ts.fetch_add(1, Ordering::Relaxed));
            (200, json!({ "ok": true, "channel": channel, "ts": ts, "message": { "text": v["text"] } }).to_string())
        }
        "chat.update" => {
            let known = rc.lock().unwrap().iter().any(|r| r.method == "chat.postMessage" && r.answer["ts"] == v["ts"] && r.answer["channel"] == v["channel"]);
            if !known {
                return (200, json!({ "ok": false, "error": "message_not_found" }).to_string());
            }
            (200, json!({ "ok": true, "channel": v["channel"], "ts": v["ts"] }).to_string())
        }
        "chat.postEphemeral" => (200, json!({ "ok": true, "message_ts": "1700000001.000001" }).to_string()),
        _ => (200, json!({ "ok": false, "error": "unknown_method" }).to_string()),
    }
}

/// `X-Slack-Signature` for a body at `ts`, as Slack computes it.
pub fn sign(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A block_actions interaction body (form-encoded `payload=`) for a button click.
pub fn click(action_id: &str, value: &str, user_id: &str, username: &str, response_url: &str, message_ts: Option<&str>) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user_id, "username": username },
        "response_url": response_url,
        "container": { "type": "message", "message_ts": message_ts },
        "actions": [{ "action_id": action_id, "value": value, "type": "button" }],
    });
    format!("payload={}", urlencode(&payload.to_string()))
}

/// An Events API `message` event replying in a thread.
pub fn thread_reply(text: &str, user: &str, channel: &str, thread_ts: &str) -> String {
    json!({
        "type": "event_callback",
        "event": { "type": "message", "text": text, "user": user, "channel": channel, "ts": "1700000099.000001", "thread_ts": thread_ts },
    })
    .to_string()
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Headers signed now (or `age_s` seconds ago) with `secret`.
pub fn signed_headers(secret: &str, body: &str, age_s: i64) -> (String, String) {
    let ts = (chrono::Utc::now().timestamp() - age_s).to_string();
    let sig = sign(secret, &ts, body);
    (ts, sig)
}
