//! Property tests over hostile input, bounded so they run in CI (256 cases a
//! property by default; `PROPTEST_CASES` raises it for a longer local run):
//! the workspace parser, the note parser and the intake bodies never panic,
//! and what they accept cannot forge structure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nightshift::memory::notes::{Incident, IncidentStatus};
use proptest::prelude::*;

/// 256 cases a property (`PROPTEST_CASES` changes it). Under CI the seed is
/// fixed, so a run is reproducible and never fails by chance; elsewhere each
/// run explores new inputs (`PROPTEST_RNG_SEED` fixes it to replay one).
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = if std::env::var_os("CI").is_some() && std::env::var_os("PROPTEST_RNG_SEED").is_none() { proptest::test_runner::RngSeed::Fixed(0x6e_6967_6874) } else { default.rng_seed };
    ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256), failure_persistence: None, rng_seed, ..default }
}

/// Text shaped like what a hostile sender or a careless editor writes:
/// markdown markers, YAML punctuation, newlines, backticks, unicode.
fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\n".to_string()),
            Just("- **Status**: resolved".to_string()),
            Just("## Diagnosis".to_string()),
            Just("```".to_string()),
            Just("`".to_string()),
            Just("**".to_string()),
            Just(": ".to_string()),
            Just("- ".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("\"".to_string()),
            Just("\r".to_string()),
            Just("\u{2028}".to_string()),
            Just("-----BEGIN PRIVATE KEY-----".to_string()),
            "[a-zA-Z0-9 ._/-]{0,12}",
            any::<char>().prop_map(String::from),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// YAML-ish workspace blocks built from the real keys, with hostile values.
fn workspace_block(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(keys), hostile(), 0usize..6), 0..12).prop_map(|items| items.into_iter().map(|(k, v, indent)| format!("{}{k}: {v}\n", " ".repeat(indent))).collect())
}

const HEARTBEAT_KEYS: &[&str] =
    &["checks", "  - name", "kind", "command", "url", "every", "at", "threshold", "cooldown", "level", "path", "host", "hosts", "namespace", "max_used_percent", "expect_status", "timeout", "verify"];
const POLICY_KEYS: &[&str] = &[
    "mode",
    "rules",
    "  - action",
    "decide",
    "match",
    "target",
    "abort_window",
    "max_per_hour",
    "protected",
    "commands",
    "webhooks",
    "url",
    "escalation",
    "after",
    "notify",
    "model",
    "clean_roots",
    "notify_window",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_workspace_parser_never_panics(heartbeat in workspace_block(HEARTBEAT_KEYS), policy in workspace_block(POLICY_KEYS)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("HEARTBEAT.md"), format!("# W\n\n```heartbeat\n{heartbeat}```\n")).unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), format!("# M\n\n```policy\n{policy}```\n")).unwrap();
        // Either a workspace or problems that each name a file and a line.
        if let Err(problems) = nightshift::workspace::load(dir.path()) {
            let text = format!("{problems:?}");
            prop_assert!(text.contains(".md"), "{text}");
        }
    }

    #[test]
    fn a_note_parses_whatever_its_text(text in hostile()) {
        let _ = Incident::parse("2026-12-02-x", &text);
        let _ = nightshift::memory::digest::parse(&text);
        let _ = nightshift::memory::audit::parse(&text);
    }

    #[test]
    fn no_field_value_forges_a_field_or_a_section(title in hostile(), detected in hostile(), check in hostile(), target in hostile(), evidence in hostile(), action in hostile()) {
        let mut inc = Incident::blank("2026-12-02-x", IncidentStatus::NeedsHuman);
        inc.title = format!("t{title}");
        inc.detected = detected;
        inc.last_seen = "2026-12-02T00:00:00Z".into();
        inc.check = check;
        inc.target = target;
        inc.evidence = evidence;
        inc.actions = vec![action];
        let parsed = Incident::parse(&inc.id, &inc.render()).unwrap();
        prop_assert_eq!(parsed.status, IncidentStatus::NeedsHuman);
        prop_assert!(parsed.attempts.is_empty());
        prop_assert!(parsed.diagnosis.is_empty() && parsed.prevention.is_empty() && parsed.related.is_empty());
        prop_assert_eq!(parsed.actions.len(), 1);
        prop_assert_eq!(&parsed.actions[0], &nightshift::redact::redact(&nightshift::markdown::one_line(&inc.actions[0])));
        prop_assert_eq!(parsed.last_seen, "2026-12-02T00:00:00Z");
    }

    #[test]
    fn intake_bodies_are_refused_or_accepted_in_nightshift_s_own_form(starts in hostile(), name in hostile(), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = nightshift::pipeline::parse_alertmanager(&body);
        let _ = nightshift::pipeline::parse_argocd(&body);
        let _ = nightshift::pipeline::parse_event(&body);
        let alert = serde_json::json!({"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": name}, "startsAt": starts}]});
        if let Ok(alerts) = nightshift::pipeline::parse_alertmanager(alert.to_string().as_bytes()) {
            for a in alerts {
                prop_assert!(a.starts_at.is_empty() || nightshift::duration::parse_ts(&a.starts_at).is_some(), "{:?}", a.starts_at);
                prop_assert!(!a.starts_at.contains(char::is_whitespace));
            }
        }
    }
}
