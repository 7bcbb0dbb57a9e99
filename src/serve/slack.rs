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
    Ok(Interaction { button, value, user: format!("slack:{user}") })
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
        assert_eq!(parse_interaction(body.as_bytes()), Ok(Interaction { button: Button::Abort, value: "a1b2c3d4".into(), user: "slack:ana".into() }));
        let ack = body.replace("%22abort%22", "%22ack%22").replace("a1b2c3d4", "2026-11-23-alert-diskfilling");
        assert_eq!(parse_interaction(ack.as_bytes()), Ok(Interaction { button: Button::Ack, value: "2026-11-23-alert-diskfilling".into(), user: "slack:ana".into() }));
        assert!(parse_interaction(b"payload=%7B%7D").is_err());
        assert!(parse_interaction(body.replace("a1b2c3d4", "..%2Fstate").as_bytes()).is_err(), "a value is never a path");
    }
}
