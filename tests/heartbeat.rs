//! The heartbeat against real things on loopback: an HTTP server that turns
//! 503, a TCP listener that closes, a TLS server whose certificate expires in
//! 3 days, a disk whose limit the test sets below its usage, and the git
//! memory that records it all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::sync::atomic::Ordering;

use support::{HttpServer, TlsServer, Ws, make_cert, used_percent};

#[test]
fn a_healthy_heartbeat_prints_ok_and_commits_nothing() {
    let http = HttpServer::start(200, "ok");
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!("checks:\n  - name: web\n    kind: http\n    url: {}\n    body_contains: ok\n  - name: shell\n    kind: exec\n    command: \"true\"\n", http.url("/healthz")),
    );
    let r = ws.run(&["heartbeat"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.lines().last(), Some("HEARTBEAT_OK"));
    assert!(ws.incident_files().is_empty());
    assert!(ws.commits().is_empty(), "a healthy run committed: {:?}", ws.commits());
    assert_eq!(http.hits.load(Ordering::Relaxed), 1);
}

#[test]
fn http_200_then_503_opens_one_incident_and_updates_it() {
    let http = HttpServer::start(200, "ok");
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: web\n    kind: http\n    url: {}\n    every: 1h\n", http.url("/")));
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!((code, v["status"].as_str()), (0, Some("ok")));
    assert_eq!(v["checks"][0]["status"], "ok");

    http.status.store(503, Ordering::Relaxed);
    // Not due yet (every: 1h): a plain heartbeat runs nothing.
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!((code, v["checks"].as_array().map(Vec::len)), (0, Some(0)));

    let (code, v) = ws.json(&["heartbeat", "--all", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "failing");
    assert_eq!(v["checks"][0]["status"], "failing");
    assert_eq!(v["checks"][0]["evidence"]["status"], 503);
    let id = v["incidents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(v["incidents"][0]["fingerprint"], format!("web:http-down:{}", http.url("/")));
    assert_eq!(ws.incident_files().len(), 1);
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    for section in ["## Evidence", "## Diagnosis", "## Actions taken", "## Prevention", "## Knowledge", "- **Status**: needs-human", "- **Check**: web (http)"] {
        assert!(note.contains(section), "note lacks {section}:\n{note}");
    }

    // The same failure again updates the same incident.
    let (code, v) = ws.json(&["heartbeat", "--all", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["incidents"][0]["id"], id.as_str());
    assert_eq!(v["incidents"][0]["new"], false);
    assert_eq!(ws.incident_files().len(), 1);
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    assert!(note.contains("- **Occurrences**: 2"), "{note}");

    // Healthy again: resolved, and listed as such.
    http.status.store(200, Ordering::Relaxed);
    let r = ws.run(&["heartbeat", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("incident {id} resolved")), "{}", r.stdout);
    let list = ws.run(&["incidents", "list"]);
    assert!(list.stdout.contains(&id) && list.stdout.contains("resolved"), "{}", list.stdout);
    let commits = ws.commits();
    assert_eq!(commits.len(), 3, "one commit per run that changed something: {commits:?}");
    assert!(commits[2].contains(&id), "{commits:?}");
}

#[test]
fn tcp_listener_open_then_closed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: db\n    kind: tcp\n    address: {addr}\n    timeout: 2s\n"));
    let (code, v) = ws.json(&["check", "--json"]);
    assert_eq!((code, v["checks"][0]["status"].as_str()), (0, Some("ok")), "{v}");
    drop(listener);
    let (code, v) = ws.json(&["heartbeat", "--all", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["checks"][0]["status"], "failing");
    assert_eq!(v["incidents"][0]["fingerprint"], format!("db:tcp-down:{addr}"));
}

#[test]
fn a_certificate_expiring_in_3_days_fails_and_in_20_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (cert3, key3) = make_cert(dir.path(), 3);
    let (cert20, key20) = make_cert(dir.path(), 20);
    let soon = TlsServer::start(&cert3, &key3);
    let later = TlsServer::start(&cert20, &key20);
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "checks:\n  - name: cert-soon\n    kind: tls\n    address: {}\n    server_name: localhost\n    ca_file: {}\n  - name: cert-later\n    kind: tls\n    address: {}\n    server_name: localhost\n    ca_file: {}\n  - name: cert-file\n    kind: tls\n    file: {}\n",
            soon.addr,
            cert3.display(),
            later.addr,
            cert20.display(),
            cert3.display()
        ),
    );
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1, "{v}");
    let by = |name: &str| v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    let soon_c = by("cert-soon");
    assert_eq!(soon_c["status"], "failing", "{soon_c}");
    assert!((2..=3).contains(&soon_c["evidence"]["days_left"].as_i64().unwrap()), "{soon_c}");
    assert_eq!(soon_c["evidence"]["dns_names"][0], "localhost");
    assert_eq!(by("cert-later")["status"], "warning");
    assert_eq!(by("cert-file")["status"], "failing");
    let classes: Vec<&str> = v["incidents"].as_array().unwrap().iter().map(|i| i["fingerprint"].as_str().unwrap()).collect();
    assert_eq!(classes.len(), 2, "a warning opens no incident: {classes:?}");
    assert!(classes.iter().all(|f| f.contains(":cert-expiring:")), "{classes:?}");
}

#[test]
fn a_full_disk_is_diagnosed_with_its_old_logs_and_core_dumps() {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let logs = data.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for i in 0..3 {
        let p = logs.join(format!("old-{i}.log"));
        std::fs::write(&p, vec![b'x'; 100_000]).unwrap();
        support::age(&p, 30);
    }
    std::fs::write(logs.join("fresh.log"), b"today").unwrap();
    std::fs::write(logs.join("core.4242"), vec![0u8; 50_000]).unwrap();
    let limit = (used_percent(data.path()) - 1.0).max(1.0);
    let ws = Ws::new(
        &format!("clean_roots: [{}]\nrules:\n  - action: clean_logs\n    decide: auto\n", logs.display()),
        &format!("checks:\n  - name: data-disk\n    kind: disk\n    path: {}\n    max_used_percent: {limit}\n", data.path().display()),
    );
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1, "{v}");
    let inc = &v["incidents"][0];
    let diagnosis = inc["diagnosis"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(diagnosis.starts_with("Old or big logs and core dumps under the clean roots hold"), "one sentence first: {diagnosis}");
    assert!(diagnosis.contains("3 log file(s) older than 7 days 293.0 KiB") && diagnosis.contains("1 core dump(s) 48.8 KiB"), "{diagnosis}");
    // Dry-run by default: says exactly what it would do, touches nothing.
    let action = &inc["actions"][0];
    assert_eq!(action["action"], "clean_logs");
    assert_eq!(action["result"], "dry-run");
    let outcome = action["outcome"].as_str().unwrap();
    assert!(outcome.contains("delete 3 old log(s)") && outcome.contains("remove 1 core dump(s)"), "{outcome}");
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 5, "dry-run deleted files");
    let audit = ws.audit_text();
    assert!(audit.contains("clean_logs on") && audit.contains("- result: dry-run") && audit.contains("- mode: dry-run"), "{audit}");
}

#[test]
fn thresholds_wait_for_consecutive_failures() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: flaky\n    kind: exec\n    command: \"exit 3\"\n    threshold: 3\n");
    for run in 1..=2 {
        let r = ws.run(&["heartbeat", "--all"]);
        assert_eq!(r.code, 0, "run {run}: {}", r.stdout);
        assert!(r.stdout.contains(&format!("flaky failing {run}/3 before an incident opens")), "{}", r.stdout);
        assert!(ws.incident_files().is_empty());
    }
    let r = ws.run(&["heartbeat", "--all"]);
    assert_eq!(r.code, 1);
    assert_eq!(ws.incident_files().len(), 1);
}

#[test]
fn check_reports_without_recording() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: broken\n    kind: exec\n    command: \"echo boom >&2; exit 4\"\n");
    let (code, v) = ws.json(&["check", "broken", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["checks"][0]["evidence"]["exit_code"], 4);
    assert_eq!(v["checks"][0]["evidence"]["stderr"], "boom\n");
    assert!(!ws.memory().exists(), "check must not write memory");
}

#[test]
fn secrets_in_command_output_never_reach_memory() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: leaky\n    kind: exec\n    command: \"echo 'connecting to postgres://app:hunter2@db:5432 with token=abc123'; exit 1\"\n");
    let r = ws.run(&["heartbeat"]);
    assert_eq!(r.code, 1);
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    assert!(!note.contains("hunter2") && !note.contains("abc123"), "{note}");
    assert!(note.contains("postgres://app:[REDACTED]@db:5432"), "{note}");
}

#[test]
fn incidents_show_and_search_read_the_notes() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: payments-api\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n");
    assert_eq!(ws.run(&["heartbeat"]).code, 1);
    let list = ws.run(&["incidents", "list"]);
    let id = list.stdout.split_whitespace().next().unwrap().to_string();
    let show = ws.run(&["incidents", "show", &id]);
    assert_eq!(show.code, 0);
    assert!(show.stdout.starts_with("# 127.0.0.1:1 refuses connections (payments-api)"), "{}", show.stdout);
    let hit = ws.run(&["incidents", "search", "payments"]);
    assert!(hit.stdout.contains(&id), "{}", hit.stdout);
    let miss = ws.run(&["incidents", "search", "kubernetes"]);
    assert!(!miss.stdout.contains(&id));
    assert_eq!(ws.run(&["incidents", "show", "no-such-id"]).code, 1);
}

/// A disk check on a fresh directory whose limit is `headroom` points above
/// today's usage, with three days of history growing 2 points a day.
fn disk_growing(headroom: f64, extra: &str) -> (Ws, tempfile::TempDir) {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let probe = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: data-disk\n    kind: disk\n    path: {}\n    max_used_percent: 100\n", data.path().display()));
    let used = probe.json(&["check", "--json"]).1["checks"][0]["evidence"]["used_percent"].as_f64().unwrap();
    let limit = (used + headroom).min(100.0);
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: data-disk\n    kind: disk\n    path: {}\n    max_used_percent: {limit}\n{extra}", data.path().display()));
    std::fs::create_dir_all(ws.memory().join("state")).unwrap();
    let now = chrono::Utc::now();
    let samples: Vec<serde_json::Value> = (1..=3).rev().map(|d| serde_json::json!({"at": (now - chrono::Duration::days(d)).to_rfc3339(), "used_percent": used - 2.0 * d as f64})).collect();
    std::fs::write(ws.memory().join("state/state.json"), serde_json::json!({"disk_history": {"data-disk": samples}}).to_string()).unwrap();
    (ws, data)
}

#[test]
fn the_disk_forecast_warns_within_30_days_by_default_and_within_the_declared_forecast() {
    // Ten days from the limit at 2 points a day: the seed's 30-day forecast warns (a 3-day one would not).
    let (ws, _data) = disk_growing(20.0, "");
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 0, "{v}");
    let c = &v["checks"][0];
    if c["evidence"]["used_percent"].as_f64().unwrap() + 20.0 > 100.0 {
        return; // the test filesystem is too full to place a limit 20 points above it
    }
    assert_eq!(c["status"], "warning", "{c}");
    assert!(c["summary"].as_str().unwrap().contains("within the forecast of 30d"), "{c}");
    // `forecast: 5d`: ten days away is not yet worth a warning.
    let (ws, _data) = disk_growing(20.0, "    forecast: 5d\n");
    let (_, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(v["checks"][0]["status"], "ok", "{v}");
}

#[test]
fn a_disk_filling_2_percent_a_day_warns_before_its_limit() {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let probe = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: data-disk\n    kind: disk\n    path: {}\n    max_used_percent: 100\n", data.path().display()));
    let used = probe.json(&["check", "--json"]).1["checks"][0]["evidence"]["used_percent"].as_f64().unwrap();
    let limit = (used + 3.0).min(100.0);
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: data-disk\n    kind: disk\n    path: {}\n    max_used_percent: {limit}\n", data.path().display()));
    // Seed the history a real heartbeat keeps: 2 points a day for the last 3 days.
    std::fs::create_dir_all(ws.memory().join("state")).unwrap();
    let now = chrono::Utc::now();
    let samples: Vec<serde_json::Value> = (1..=3).rev().map(|d| serde_json::json!({"at": (now - chrono::Duration::days(d)).to_rfc3339(), "used_percent": used - 2.0 * d as f64})).collect();
    std::fs::write(ws.memory().join("state/state.json"), serde_json::json!({"disk_history": {"data-disk": samples}}).to_string()).unwrap();
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 0, "a warning is not a failure: {v}");
    let c = &v["checks"][0];
    assert_eq!(c["status"], "warning", "{c}");
    assert!((c["evidence"]["growth_percent_per_day"].as_f64().unwrap() - 2.0).abs() < 0.2, "{c}");
    assert!(c["evidence"]["days_until_limit"].as_f64().unwrap() < 2.0, "{c}");
    assert!(c["summary"].as_str().unwrap().contains("filling at"), "{c}");
    assert!(ws.incident_files().is_empty(), "a warning opens no incident");
}
