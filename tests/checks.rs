//! Check kinds and notifications against real processes and a real webhook receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::process::Command;
use std::sync::atomic::Ordering;

use support::{HttpServer, Ws};

fn status_of(ws: &Ws, name: &str) -> (String, String) {
    let (_, v) = ws.json(&["check", name, "--json"]);
    (v["checks"][0]["status"].as_str().unwrap().to_string(), v["checks"][0]["summary"].as_str().unwrap().to_string())
}

#[test]
fn process_by_pidfile_running_zombie_and_stale() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: worker\n    kind: process\n    pidfile: worker.pid\n");
    let pidfile = ws.path().join("worker.pid");
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let ws2 = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: worker\n    kind: process\n    pidfile: {}\n", pidfile.display()));
    assert_eq!(status_of(&ws2, "worker").0, "ok");
    // Killed but not reaped: a zombie is not running.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (status, summary) = status_of(&ws2, "worker");
    assert_eq!(status, "failing");
    assert!(summary.contains("is a zombie"), "{summary}");
    child.wait().unwrap();
    let (status, summary) = status_of(&ws2, "worker");
    assert_eq!(status, "failing");
    assert!(summary.contains("not running (stale pidfile)"), "{summary}");
    drop(ws);
}

#[test]
fn process_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let name = "ns-test-proc";
    let exe = dir.path().join(name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: p\n    kind: process\n    process: {name}\n"));
    let (status, _) = status_of(&ws, "p");
    assert_eq!(status, "failing");
    let mut child = Command::new(&exe).arg("30").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (status, summary) = status_of(&ws, "p");
    assert_eq!(status, "ok", "{summary}");
    assert!(summary.contains(&child.id().to_string()), "{summary}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn exec_timeout_kills_the_command_and_fails() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: slow\n    kind: exec\n    command: \"sleep 20; touch finished\"\n    timeout: 300ms\n");
    let start = std::time::Instant::now();
    let (status, summary) = status_of(&ws, "slow");
    assert_eq!(status, "failing");
    assert!(summary.contains("did not finish within 300ms"), "{summary}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(!ws.path().join("finished").exists());
}

#[test]
fn http_body_and_status_expectations() {
    let http = HttpServer::start(200, "degraded");
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: body\n    kind: http\n    url: {}\n    body_contains: healthy\n  - name: code\n    kind: http\n    url: {}\n    expect_status: 204\n", http.url("/"), http.url("/")));
    let (status, summary) = status_of(&ws, "body");
    assert_eq!((status.as_str(), summary.contains("body does not contain \"healthy\"")), ("failing", true), "{summary}");
    let (status, summary) = status_of(&ws, "code");
    assert_eq!((status.as_str(), summary.contains("status 200, expected 204")), ("failing", true), "{summary}");
}

#[test]
fn an_incident_notifies_the_webhook_with_the_auth_header_from_the_environment() {
    let hook = HttpServer::start(200, "");
    let ws = Ws::new(
        &format!("webhooks:\n  - name: alerts\n    url: {}\n    auth_header_env: NS_TEST_HOOK_TOKEN\n    severities: [critical]\n  - name: chatter\n    url: {}\n    severities: [info]\n", hook.url("/webhook/nightshift"), hook.url("/info")),
        "checks:\n  - name: api\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n    severity: critical\n",
    );
    let out = ws.cmd(&["heartbeat", "--json"]).env("NS_TEST_HOOK_TOKEN", "Bearer s3cret-hook-token").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notify = v["incidents"][0]["actions"].as_array().unwrap().iter().find(|a| a["action"] == "notify").cloned().unwrap();
    assert_eq!(notify["result"], "ok", "{notify}");
    assert_eq!(hook.hits.load(Ordering::Relaxed), 1, "only the webhook taking critical is called");
    let req = hook.requests.lock().unwrap()[0].clone();
    assert!(req.starts_with("POST /webhook/nightshift"), "{req}");
    assert!(req.to_lowercase().contains("authorization: bearer s3cret-hook-token"), "{req}");
    let body: serde_json::Value = serde_json::from_str(req.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["service"], "api");
    assert_eq!(body["incident"], v["incidents"][0]["id"]);
    // The token is in the environment only, never in memory.
    assert!(!ws.audit_text().contains("s3cret"));
    // An unchanged incident on the next run does not notify again.
    ws.cmd(&["heartbeat", "--all"]).env("NS_TEST_HOOK_TOKEN", "Bearer s3cret-hook-token").output().unwrap();
    assert_eq!(hook.hits.load(Ordering::Relaxed), 1);
}

#[test]
fn a_failing_webhook_is_retried_and_recorded_as_failed() {
    let hook = HttpServer::start(500, "");
    let ws = Ws::new(&format!("webhooks:\n  - name: alerts\n    url: {}\n", hook.url("/")), "checks:\n  - name: api\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n");
    let (_, v) = ws.json(&["heartbeat", "--json"]);
    let notify = v["incidents"][0]["actions"].as_array().unwrap().iter().find(|a| a["action"] == "notify").cloned().unwrap();
    assert_eq!(notify["result"], "failed");
    assert!(notify["outcome"].as_str().unwrap().contains("HTTP 500"), "{notify}");
    assert_eq!(hook.hits.load(Ordering::Relaxed), 3, "three tries");
}
