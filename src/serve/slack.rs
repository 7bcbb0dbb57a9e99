//! Slack request signing (v0): HMAC-SHA256 of `v0:{timestamp}:{body}` with the
//! signing secret, compared in constant time; requests older than five
//! minutes are refused (replays). The current time is a parameter, so
//! Slack's documented example verifies in a test.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    Missing,
    #[error("X-Slack-Request-Timestamp is not a number")]
    BadTimestamp,
    #[error("request timestamp is more than 5 minutes from now (replay?)")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies one request. `now` is Unix seconds.
pub fn verify(secret: &str, timestamp: Option<&str>, signature: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let t: i64 = ts.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now - t).abs() > 300 {
        return Err(SignatureError::Stale);
    }
    let hex = sig.strip_prefix("v0=").ok_or(SignatureError::Mismatch)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(b"v0:");
    mac.update(ts.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// What a Slack interaction asks: approve or abort an approval, or take an incident, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub button: Button,
    /// The approval id (approve, abort) or the incident id (ack).
    pub value: String,
    pub user: String,
    /// The Slack user id (what `approvers:` names).
    pub user_id: String,
    /// Where to update the clicked message or reply to the clicker only.
    pub response_url: Option<String>,
    /// The clicked message's ts.
    pub message_ts: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Approve,
    Abort,
    /// Take the incident: its escalation stops.
    Ack,
}

/// Reads the `payload` form field of a block_actions interaction whose
/// button has action_id `approve` or `abort` with the approval id as value,
/// or `ack` with the incident id.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, String> {
    let form: Vec<(String, String)> = serde_urlencoded_pairs(body);
    let payload = form.iter().find(|(k, _)| k == "payload").map(|(_, v)| v).ok_or("no payload field")?;
    let v: serde_json::Value = serde_json::from_str(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let action = v["actions"].get(0).ok_or("payload has no actions")?;
    let button = match action["action_id"].as_str() {
        Some("approve") => Button::Approve,
        Some("abort") => Button::Abort,
        Some("ack") => Button::Ack,
        other => return Err(format!("unknown action_id {other:?}; expected \"approve\", \"abort\" or \"ack\"")),
    };
    // Approval ids are short; incident ids carry a slug of the check and problem.
    let (what, max) = if button == Button::Ack { ("an incident id", 200) } else { ("an approval id", 64) };
    let value = action["value"].as_str().filter(|s| !s.is_empty() && s.len() < max && !s.contains(['/', '\\'])).ok_or(format!("action has no {what} as value"))?.to_string();
    let user = v["user"]["username"].as_str().or(v["user"]["name"].as_str()).or(v["user"]["id"].as_str()).unwrap_or("unknown");
    let user_id = v["user"]["id"].as_str().unwrap_or_default().to_string();
    let response_url = v["response_url"].as_str().filter(|u| is_http_url(u)).map(str::to_string);
    let message_ts = v["container"]["message_ts"].as_str().or(v["message"]["ts"].as_str()).map(str::to_string);
    Ok(Interaction { button, value, user: format!("slack:{user}"), user_id, response_url, message_ts })
}

fn is_http_url(u: &str) -> bool {
    u.len() < 2048 && reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
}

/// What the Events API sent (`POST /slack/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The endpoint check when the app is configured: answer with the challenge.
    Challenge(String),
    /// `approve` or `abort` replied in a message's thread.
    Reply { approve: bool, user: String, channel: String, thread_ts: String },
    /// Anything else (other messages, bots, edits): acknowledged and ignored.
    Ignored,
}

/// Reads an Events API body. Only a person's plain message in a thread
/// whose whole text is `approve` or `abort` (any case, trailing `!` or `.`)
/// is a decision.
pub fn parse_event(body: &[u8]) -> Result<Event, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    match v["type"].as_str() {
        Some("url_verification") => {
            let c = v["challenge"].as_str().filter(|c| !c.is_empty() && c.len() < 256).ok_or("url_verification without a challenge")?;
            Ok(Event::Challenge(c.to_string()))
        }
        Some("event_callback") => {
            let e = &v["event"];
            let human = e["type"] == "message" && e.get("subtype").is_none() && e.get("bot_id").is_none();
            let (Some(text), Some(user), Some(channel), Some(thread_ts)) = (e["text"].as_str(), e["user"].as_str(), e["channel"].as_str(), e["thread_ts"].as_str()) else {
                return Ok(Event::Ignored);
            };
            let word = text.trim().trim_end_matches(['!', '.']).to_ascii_lowercase();
            let approve = match word.as_str() {
                "approve" => true,
                "abort" => false,
                _ => return Ok(Event::Ignored),
            };
            if !human || user.len() > 64 || channel.len() > 64 || thread_ts.len() > 64 {
                return Ok(Event::Ignored);
            }
            Ok(Event::Reply { approve, user: user.to_string(), channel: channel.to_string(), thread_ts: thread_ts.to_string() })
        }
        other => Err(format!("unknown event type {other:?}; expected url_verification or event_callback")),
    }
}

fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter_map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            Some((decode(it.next()?), decode(it.next().unwrap_or(b""))))
        })
        .collect()
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = s.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (s[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), 1531420618 + 10), Ok(()));
    }

    #[test]
    fn replayed_tampered_and_unsigned_requests_are_refused() {
        assert_eq!(verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), 1531420618 + 301), Err(SignatureError::Stale));
        let tampered = BODY.replace("roadrunner", "coyote");
        assert_eq!(verify(SECRET, Some(TS), Some(SIG), tampered.as_bytes(), 1531420618), Err(SignatureError::Mismatch));
        assert_eq!(verify("another-secret", Some(TS), Some(SIG), BODY.as_bytes(), 1531420618), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, None, Some(SIG), BODY.as_bytes(), 1531420618), Err(SignatureError::Missing));
        assert_eq!(verify(SECRET, Some("yesterday"), Some(SIG), BODY.as_bytes(), 1531420618), Err(SignatureError::BadTimestamp));
        assert_eq!(verify(SECRET, Some(TS), Some("v0=zz"), BODY.as_bytes(), 1531420618), Err(SignatureError::Mismatch));
    }

    #[test]
    fn interactions_name_the_button_the_approval_and_the_user() {
        let payload = r#"{"type":"block_actions","user":{"id":"U1","username":"ana"},"actions":[{"action_id":"abort","value":"a1b2c3d4"}]}"#;
        let body = format!("payload={}", payload.replace('"', "%22").replace(' ', "+").replace('{', "%7B").replace('}', "%7D"));
        let user = |button, value: &str| Interaction { button, value: value.into(), user: "slack:ana".into(), user_id: "U1".into(), response_url: None, message_ts: None };
        assert_eq!(parse_interaction(body.as_bytes()), Ok(user(Button::Abort, "a1b2c3d4")));
        let ack = body.replace("%22abort%22", "%22ack%22").replace("a1b2c3d4", "2026-11-23-alert-diskfilling");
        assert_eq!(parse_interaction(ack.as_bytes()), Ok(user(Button::Ack, "2026-11-23-alert-diskfilling")));
        assert!(parse_interaction(b"payload=%7B%7D").is_err());
        assert!(parse_interaction(body.replace("a1b2c3d4", "..%2Fstate").as_bytes()).is_err(), "a value is never a path");
    }

    #[test]
    fn only_a_persons_approve_or_abort_in_a_thread_is_a_decision() {
        let ev = |e: &str| parse_event(format!(r#"{{"type":"event_callback","event":{e}}}"#).as_bytes());
        assert_eq!(
            ev(r#"{"type":"message","text":" ABORT! ","user":"U1","channel":"C1","ts":"2.0","thread_ts":"1.0"}"#),
            Ok(Event::Reply { approve: false, user: "U1".into(), channel: "C1".into(), thread_ts: "1.0".into() })
        );
        assert_eq!(ev(r#"{"type":"message","text":"approve","user":"U1","channel":"C1","ts":"1.0"}"#), Ok(Event::Ignored), "not in a thread");
        assert_eq!(ev(r#"{"type":"message","text":"please abort this","user":"U1","channel":"C1","thread_ts":"1.0"}"#), Ok(Event::Ignored));
        assert_eq!(ev(r#"{"type":"message","bot_id":"B1","text":"abort","user":"U1","channel":"C1","thread_ts":"1.0"}"#), Ok(Event::Ignored), "a bot never decides");
        assert_eq!(ev(r#"{"type":"message","subtype":"message_changed","text":"abort","user":"U1","channel":"C1","thread_ts":"1.0"}"#), Ok(Event::Ignored));
        assert_eq!(parse_event(br#"{"type":"url_verification","challenge":"3eZbrw1a"}"#), Ok(Event::Challenge("3eZbrw1a".into())));
        assert!(parse_event(b"not json").is_err());
    }
}
