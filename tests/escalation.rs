//! The escalation ladder as a user meets it: one-shot heartbeats (each a
//! fresh process, so every step is also a restart), a webhook receiver on
//! loopback per level, `nightshift ack`, resolution, and the daemon's
//! acknowledgement API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{HttpServer, Serve, Ws};

/// The escalation messages received: (path, "N of M").
fn escalations(hook: &HttpServer) -> Vec<(String, String)> {
    hook.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("[escalation level"))
        .map(|r| {
            let path = r.split_whitespace().nth(1).unwrap_or("").to_string();
            let level = r.split("[escalation level ").nth(1).and_then(|s| s.split(']').next()).unwrap_or("").to_string();
            (path, level)
        })
        .collect()
}

fn id_of(ws: &Ws, check: &str) -> String {
    let list = ws.run(&["incidents", "list"]).stdout;
    list.lines().find(|l| l.contains(check)).and_then(|l| l.split_whitespace().next()).unwrap_or_else(|| panic!("no incident for {check} in {list}")).to_string()
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

#[test]
fn an_unresolved_incident_climbs_the_ladder_until_a_human_acknowledges_it_or_it_resolves() {
    let hook = HttpServer::start(200, "");
    let ws = Ws::new(
        &format!(
            "mode: execute\nnotify_window: 0s\nwebhooks:\n  - name: oncall\n    url: {}\n  - name: manager\n    url: {}\nescalation:\n  - after: 2s\n    notify: [oncall]\n  - after: 5s\n    notify: [manager]\n  - after: 8s\n    notify: [oncall, manager]\n",
            hook.url("/oncall"),
            hook.url("/manager")
        ),
        "checks:\n  - name: api\n    kind: exec\n    command: \"exit 1\"\n  - name: db\n    kind: exec\n    command: \"test -f healthy\"\n",
    );
    // Detection times are written to the second, so a level can fall due up to a
    // second early: every wait below sits at least half a second from a level's edge.
    let t0 = Instant::now();
    let out = ws.run(&["heartbeat", "--all"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let (api, db) = (id_of(&ws, "api"), id_of(&ws, "db"));
    assert!(escalations(&hook).is_empty(), "nothing is escalated at once: {:?}", escalations(&hook));

    sleep_until(t0 + Duration::from_millis(2600));
    ws.run(&["heartbeat", "--all"]);
    let mut got = escalations(&hook);
    got.sort();
    assert_eq!(got.len(), 2, "level 1 for both incidents, to oncall only: {got:?}");
    assert!(got.iter().all(|(path, what)| path == "/oncall" && what.starts_with("1 of 3")), "{got:?}");
    ws.run(&["heartbeat", "--all"]);
    assert_eq!(escalations(&hook).len(), 2, "a level is sent once, across runs");

    let out = ws.run(&["ack", &api]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("acknowledged {api}")), "{}", out.stdout);
    assert!(ws.run(&["ack", &api]).stdout.contains("already acknowledged"));
    let out = ws.run(&["ack", "2026-01-01-no-such-thing"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no incident 2026-01-01-no-such-thing"), "{}", out.stderr);

    sleep_until(t0 + Duration::from_millis(5600));
    ws.run(&["heartbeat", "--all"]);
    let got = escalations(&hook);
    assert_eq!(got.len(), 3, "level 2 for the unacknowledged incident only: {got:?}");
    let last = hook.requests.lock().unwrap().iter().rfind(|r| r.contains("[escalation level")).cloned().unwrap();
    assert!(last.starts_with("POST /manager") && last.contains("[escalation level 2 of 3]") && last.contains(&db) && last.contains(&format!("nightshift ack {db}")), "{last}");

    // db heals: resolution ends its ladder; api stays acknowledged.
    std::fs::write(ws.path().join("healthy"), "").unwrap();
    ws.run(&["heartbeat", "--all"]);
    sleep_until(t0 + Duration::from_millis(8600));
    ws.run(&["heartbeat", "--all"]);
    assert_eq!(escalations(&hook).len(), 3, "no level 3: one incident acknowledged, the other resolved: {:?}", escalations(&hook));
    assert_eq!(ws.run(&["ack", &db]).code, 1, "a resolved incident cannot be acknowledged");

    let note = std::fs::read_to_string(ws.memory().join(format!("incidents/{api}.md"))).unwrap();
    assert!(note.contains("escalation level 1 of 3") && note.contains("acknowledged the incident: escalation stops"), "{note}");
    assert!(!note.contains("escalation level 2 of 3"), "{note}");
    assert!(ws.audit_text().contains("acknowledge on"), "the acknowledgement is audited");
}

#[test]
fn escalations_pass_the_gate_and_a_dry_run_or_a_forbid_rule_sends_none() {
    let hook = HttpServer::start(200, "");
    let ladder = format!("notify_window: 0s\nwebhooks:\n  - name: oncall\n    url: {}\nescalation:\n  - after: 1s\n    notify: [oncall]\n", hook.url("/oncall"));
    let checks = "checks:\n  - name: api\n    kind: exec\n    command: \"exit 1\"\n";
    // Dry-run (the default): the incident is announced, the ladder only says what it would send.
    let dry = Ws::new(&ladder, checks);
    dry.run(&["heartbeat", "--all"]);
    std::thread::sleep(Duration::from_millis(2100));
    dry.run(&["heartbeat", "--all"]);
    assert!(escalations(&hook).is_empty(), "dry-run sent an escalation: {:?}", escalations(&hook));
    let audit = dry.audit_text();
    assert!(audit.contains("escalation level 1 of 1") && audit.contains("- result: dry-run"), "{audit}");
    // Executing, but a rule forbids notifications: refused, audited, not sent.
    let hook = HttpServer::start(200, "");
    let ladder = format!("notify_window: 0s\nwebhooks:\n  - name: oncall\n    url: {}\nescalation:\n  - after: 1s\n    notify: [oncall]\n", hook.url("/oncall"));
    let forbid = Ws::new(&format!("mode: execute\n{ladder}rules:\n  - action: notify\n    decide: forbid\n"), checks);
    forbid.run(&["heartbeat", "--all"]);
    std::thread::sleep(Duration::from_millis(2100));
    forbid.run(&["heartbeat", "--all"]);
    assert!(escalations(&hook).is_empty(), "a forbidden escalation was sent: {:?}", escalations(&hook));
    let audit = forbid.audit_text();
    assert!(audit.contains("escalation level 1 of 1") && audit.contains("- decision: forbid") && audit.contains("- result: denied"), "{audit}");
    assert!(hook.requests.lock().unwrap().is_empty(), "nothing at all reaches the webhook under notify: forbid");
}

#[test]
fn the_ladder_is_validated_with_file_line_and_fix() {
    let ws =
        Ws::new("webhooks:\n  - name: oncall\n    url: http://127.0.0.1:9/x\nescalation:\n  - after: 10m\n    notify: [pager]\n  - after: 5m\n  - notify: [oncall]\n  - after: 15\n", "checks: []\n");
    let out = ws.run(&["validate"]);
    assert_eq!(out.code, 2);
    let text = out.stdout + &out.stderr;
    for want in ["no webhook named `pager`", "(declared: oncall)", "not later than the level before it", "escalation level 3 has no `after`", "`after: 15` has no unit", "AGENTS.md:"] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let ws = Ws::new("escalation: []\n", "checks: []\n");
    assert_eq!(ws.run(&["validate"]).code, 0, "an empty ladder turns escalation off");
}

#[test]
fn the_daemon_takes_acknowledgements_over_its_api() {
    let hook = HttpServer::start(200, "");
    let ws = Ws::new(&format!("webhooks:\n  - name: oncall\n    url: {}\n", hook.url("/")), "checks:\n  - name: api\n    kind: exec\n    command: \"exit 1\"\n    every: 1h\n");
    ws.run(&["heartbeat"]);
    let id = id_of(&ws, "api");
    let serve = Serve::start(&ws, &[], &[("NIGHTSHIFT_API_TOKEN", "t0ken")]);
    let auth = [("Authorization", "Bearer t0ken")];
    assert_eq!(serve.request("POST", &format!("/incidents/{id}/ack"), &[], b"").0, 401);
    let (code, body) = serve.request("POST", &format!("/incidents/{id}/ack"), &auth, b"");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"acknowledged_by\":\"api\"") && body.contains("\"new\":true"), "{body}");
    let (code, body) = serve.request("POST", "/incidents/nope/ack", &auth, b"");
    assert_eq!((code, body.contains("no incident nope")), (404, true), "{body}");
    let acks = std::fs::read_to_string(ws.memory().join("state/acks.json")).unwrap();
    assert!(acks.contains(&id), "{acks}");
}
