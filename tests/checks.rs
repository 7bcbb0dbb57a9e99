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

/// The pid in `pidfile`, when it names a live, non-zombie `sleep`.
fn running_sleep(pidfile: &std::path::Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    (stat.contains("(sleep)") && !after.trim_start().starts_with('Z')).then_some(pid)
}

#[test]
fn restart_process_runs_the_declared_command_and_the_process_runs_again_with_a_new_pid() {
    // The declared command starts the worker in the background and writes its pidfile.
    let run = tempfile::tempdir().unwrap();
    let pidfile = run.path().join("worker.pid");
    let ws = Ws::new(
        &format!("commands:\n  restart-worker: \"sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {}\"\nrules:\n  - action: restart_process\n    decide: auto\n", pidfile.display()),
        &format!("checks:\n  - name: worker\n    kind: process\n    pidfile: {}\n    repair: restart-worker\n    cooldown: 0s\n", pidfile.display()),
    );
    let mut old = Command::new("sleep").arg("300").spawn().unwrap();
    let old_pid = old.id() as i32;
    std::fs::write(&pidfile, format!("{old_pid}\n")).unwrap();
    old.kill().unwrap();
    old.wait().unwrap();

    // Dry-run (the default): proposed, nothing runs.
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().trim(), old_pid.to_string(), "a dry run restarted the process");

    let (code, v) = ws.json(&["heartbeat", "--execute", "--all", "--json"]);
    let new_pid = running_sleep(&pidfile);
    if let Some(p) = new_pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
    }
    assert_eq!(code, 1, "the pass found the worker down: {v}");
    let inc = &v["incidents"][0];
    assert_eq!(inc["status"], "resolved", "{v}");
    let act = inc["actions"].as_array().unwrap().iter().find(|a| a["action"] == "restart_process").unwrap_or_else(|| panic!("no restart_process: {v}"));
    assert_eq!((act["decision"].as_str(), act["result"].as_str()), (Some("auto"), Some("ok")), "{act}");
    let new_pid = new_pid.expect("the pidfile names a running process after the restart");
    assert_ne!(new_pid, old_pid, "the same pid: nothing was restarted");
    assert!(ws.audit_text().contains("restart_process on"), "{}", ws.audit_text());
}

#[test]
fn a_process_repair_naming_an_undeclared_command_is_refused_before_anything_runs() {
    let ws = Ws::new(
        "commands:\n  restart-worker: \"touch restarted\"\nrules:\n  - action: restart_process\n    decide: auto\n",
        "checks:\n  - name: worker\n    kind: process\n    pidfile: worker.pid\n    repair: \"touch restarted\"\n",
    );
    for args in [&["validate"][..], &["heartbeat", "--execute"][..]] {
        let r = ws.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains("HEARTBEAT.md") && said.contains("repair command `touch restarted` is not declared in AGENTS.md `commands:`") && said.contains("declare it under `commands:`"),
            "{args:?}: {said}"
        );
    }
    assert!(!ws.path().join("restarted").exists());
}

#[test]
fn exec_timeout_kills_the_command_and_fails() {
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: slow\n    kind: exec\n    command: \"echo $$ > pid; sleep 20; touch finished\"\n    timeout: 300ms\n");
    let (status, summary) = status_of(&ws, "slow");
    assert_eq!(status, "failing");
    assert!(summary.contains("did not finish within 300ms"), "{summary}");
    // The command itself is gone, not left running behind the report.
    let pid: i32 = std::fs::read_to_string(ws.path().join("pid")).unwrap().trim().parse().unwrap();
    let gone = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err();
    assert!(support::eventually(std::time::Duration::from_secs(5), gone), "the timed-out command {pid} still runs");
    assert!(!ws.path().join("finished").exists());
}

#[test]
fn exec_output_is_read_through_a_cap_and_the_evidence_keeps_both_ends() {
    // 200 MB between a first and a last line, then a failing exit: the check
    // finishes, keeps the exit code, and its evidence holds the start and the end.
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: loud\n    kind: exec\n    command: \"echo FIRST-LINE; yes | head -c 200000000; echo; echo LAST-LINE; exit 3\"\n    timeout: 2m\n");
    let (_, v) = ws.json(&["check", "loud", "--json"]);
    let c = &v["checks"][0];
    assert_eq!((c["status"].as_str(), c["evidence"]["exit_code"].as_i64()), (Some("failing"), Some(3)), "{c}");
    let stdout = c["evidence"]["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("FIRST-LINE\n") && stdout.ends_with("LAST-LINE\n") && stdout.contains(" bytes truncated]"), "{stdout}");
    assert!(stdout.len() <= 2100, "evidence of {} bytes", stdout.len());
}

#[test]
fn http_body_and_status_expectations() {
    let http = HttpServer::start(200, "degraded");
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "checks:\n  - name: body\n    kind: http\n    url: {}\n    body_contains: healthy\n  - name: code\n    kind: http\n    url: {}\n    expect_status: 204\n",
            http.url("/"),
            http.url("/")
        ),
    );
    let (status, summary) = status_of(&ws, "body");
    assert_eq!((status.as_str(), summary.contains("body does not contain \"healthy\"")), ("failing", true), "{summary}");
    let (status, summary) = status_of(&ws, "code");
    assert_eq!((status.as_str(), summary.contains("status 200, expected 204")), ("failing", true), "{summary}");
}

#[test]
fn an_incident_notifies_the_webhook_with_the_auth_header_from_the_environment() {
    let hook = HttpServer::start(200, "");
    let ws = Ws::new(
        &format!(
            "webhooks:\n  - name: alerts\n    url: {}\n    auth_header_env: NS_TEST_HOOK_TOKEN\n    severities: [critical]\n  - name: chatter\n    url: {}\n    severities: [info]\n",
            hook.url("/webhook/nightshift"),
            hook.url("/info")
        ),
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
fn a_failing_webhook_is_retried_with_the_same_key_and_dead_lettered() {
    let hook = HttpServer::start(500, "");
    let ws = Ws::new(&format!("webhooks:\n  - name: alerts\n    url: {}\n", hook.url("/")), "checks:\n  - name: api\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n");
    let (_, v) = ws.json(&["heartbeat", "--json"]);
    let notify = v["incidents"][0]["actions"].as_array().unwrap().iter().find(|a| a["action"] == "notify").cloned().unwrap();
    assert_eq!(notify["result"], "failed");
    assert!(notify["outcome"].as_str().unwrap().contains("HTTP 500"), "{notify}");
    assert_eq!(hook.hits.load(Ordering::Relaxed), 4, "four tries");
    let keys: std::collections::BTreeSet<String> = hook.requests.lock().unwrap().iter().map(|r| r.lines().find(|l| l.to_lowercase().starts_with("idempotency-key:")).unwrap().to_string()).collect();
    assert_eq!(keys.len(), 1, "every retry carries the same idempotency key");
    let dead = std::fs::read_to_string(ws.memory().join("state/dead-letters.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert_eq!((line["webhook"].as_str(), line["error"].as_str()), (Some("alerts"), Some("HTTP 500")));
    assert_eq!(line["payload"]["service"], "api");
}

/// Every file under `dir` (the memory folder) but git's own, as text.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != ".git") {
                out.extend(files_under(&path));
            }
        } else {
            out.push((path.clone(), String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string()));
        }
    }
    out
}

#[test]
fn a_password_and_a_token_in_a_checks_url_reach_no_webhook_and_no_memory_file() {
    let (password, token) = ("Sup3rS3cretPw", "tok9f8e7d6c5b4a3210");
    let hook = HttpServer::start(200, "");
    let broken = HttpServer::start(500, "");
    // Nothing listens on the check's port: the check fails with connection refused.
    let url = format!("http://admin:{password}@127.0.0.1:{}/health?access_token={token}", support::free_port());
    let ws = Ws::new(
        &format!(
            "mode: execute\nnotify_window: 0s\nwebhooks:\n  - name: oncall\n    url: {}\n  - name: broken\n    url: {}\nescalation:\n  - after: 1s\n    notify: [oncall, broken]\n",
            hook.url("/oncall"),
            broken.url("/broken")
        ),
        &format!("checks:\n  - name: api\n    kind: http\n    url: \"{url}\"\n    timeout: 2s\n"),
    );
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert!(!v.to_string().contains(password) && !v.to_string().contains(token), "a secret reached stdout: {v}");
    let text = ws.run(&["heartbeat", "--all"]).stdout;
    assert!(text.contains("is unhealthy") && !text.contains(password) && !text.contains(token), "a secret reached stdout: {text}");
    let id = v["incidents"][0]["id"].as_str().unwrap().to_string();
    // Past the ladder's first level (detection times are kept to the second): the escalation goes out too.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    ws.run(&["heartbeat", "--all"]);

    let received: Vec<String> = hook.requests.lock().unwrap().iter().chain(broken.requests.lock().unwrap().iter()).filter_map(|r| r.split_once("\r\n\r\n").map(|(_, b)| b.to_string())).collect();
    let to_oncall: Vec<&String> = received.iter().filter(|b| b.contains(&id)).collect();
    assert!(to_oncall.iter().any(|b| b.contains("is unhealthy")) && to_oncall.iter().any(|b| b.contains("[escalation level 1 of 1]")), "the incident and its escalation were delivered: {received:#?}");
    assert!(received.iter().all(|b| serde_json::from_str::<serde_json::Value>(b).is_ok()), "still JSON: {received:#?}");
    for body in &received {
        assert!(!body.contains(password) && !body.contains(token), "a secret reached a webhook: {body}");
    }
    let files = files_under(&ws.memory());
    assert!(files.iter().any(|(p, text)| p.ends_with("state/dead-letters.jsonl") && text.contains(&id)), "the broken webhook's messages are dead letters");
    for (path, text) in &files {
        assert!(!text.contains(password) && !text.contains(token), "a secret is in {}: {text}", path.display());
    }
}

#[test]
fn delivery_succeeds_after_two_500s() {
    let hook = HttpServer::start(200, "");
    hook.script.lock().unwrap().extend([500, 500]);
    let ws = Ws::new(
        &format!("webhooks:\n  - name: n8n\n    url: {}\n    auth_header_env: NS_HOOK\n", hook.url("/webhook/nightshift")),
        "checks:\n  - name: api\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n",
    );
    let out = ws.cmd(&["heartbeat", "--json"]).env("NS_HOOK", "Bearer n8n-secret").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notify = v["incidents"][0]["actions"].as_array().unwrap().iter().find(|a| a["action"] == "notify").cloned().unwrap();
    assert_eq!(notify["result"], "ok", "{notify}");
    let reqs = hook.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.to_lowercase().contains("authorization: bearer n8n-secret")));
    assert!(!ws.memory().join("state/dead-letters.jsonl").exists());
}

#[test]
fn flapping_is_folded_into_one_message_and_a_summary() {
    let hook = HttpServer::start(200, "");
    let ws =
        Ws::new(&format!("mode: execute\nnotify_window: 8s\nwebhooks:\n  - name: alerts\n    url: {}\n", hook.url("/")), "checks:\n  - name: flappy\n    kind: exec\n    command: \"test -f up\"\n");
    let up = ws.path().join("up");
    // down, up, down, up within the window: one message sent, three folded. The window
    // is wide enough for four passes on a loaded machine; the wait below ends just past it.
    let started = std::time::Instant::now();
    for i in 0..4 {
        if i % 2 == 1 {
            std::fs::write(&up, "").unwrap();
        } else {
            let _ = std::fs::remove_file(&up);
        }
        ws.run(&["heartbeat", "--all"]);
    }
    assert_eq!(hook.hits.load(Ordering::Relaxed), 1, "{:?}", hook.requests.lock().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(9500).saturating_sub(started.elapsed()));
    ws.run(&["heartbeat", "--all"]);
    let reqs = hook.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].contains("3 more notification(s) for exec-failed:flappy"), "{}", reqs[1]);
}

#[test]
fn an_auto_fixed_info_problem_is_only_audited_and_recurrence_escalates() {
    let hook = HttpServer::start(200, "");
    let ws = Ws::new(
        &format!(
            "notify_window: 0s\ncommands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: auto\nwebhooks:\n  - name: pager\n    url: {}\n    severities: [critical]\n",
            hook.url("/")
        ),
        "checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n    cooldown: 0s\n    severity: info\n",
    );
    for round in 1..=4 {
        let _ = std::fs::remove_file(ws.path().join("healthy"));
        ws.run(&["heartbeat", "--execute", "--all"]);
        let expected = if round < 4 { 0 } else { 1 };
        assert_eq!(hook.hits.load(Ordering::Relaxed), expected, "round {round}");
    }
    assert!(ws.audit_text().matches("run_command on").count() >= 4);
    let req = hook.requests.lock().unwrap()[0].clone();
    assert!(req.contains("needs a permanent fix (happened 4 times)"), "{req}");
    assert!(req.contains("\"severity\":\"critical\""), "{req}");
}

#[test]
fn a_repair_counts_and_an_incident_resolves_only_when_every_verification_step_passes() {
    // The service answers, but slowly: connectivity passes, performance does not.
    let svc = HttpServer::start(200, "ok");
    svc.delay_ms.store(700, Ordering::Relaxed);
    let ws = Ws::new(
        "mode: execute\nnotify_window: 0s\ncommands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: auto\n",
        &format!(
            "checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n    cooldown: 0s\n    verify:\n      connectivity: app-port\n      performance: [app-latency]\n      dependencies: [db]\n  - name: app-port\n    kind: tcp\n    address: {}\n  - name: app-latency\n    kind: http\n    url: {}\n    max_latency: 300ms\n  - name: db\n    kind: exec\n    command: \"true\"\n",
            svc.addr,
            svc.url("/health")
        ),
    );
    let (_, v) = ws.json(&["heartbeat", "--all", "--json"]);
    let app = v["incidents"].as_array().unwrap().iter().find(|i| i["fingerprint"].as_str().unwrap().starts_with("app:")).unwrap().clone();
    let fix = &app["actions"][0];
    assert_eq!((fix["action"].as_str(), fix["result"].as_str()), (Some("run_command"), Some("failed")), "the check passes but performance does not: {app:#}");
    let outcome = fix["outcome"].as_str().unwrap();
    for want in ["connectivity: ok (app-port", "performance: FAILING (app-latency", "dependencies: ok (db"] {
        assert!(outcome.contains(want), "missing {want:?}: {outcome}");
    }
    assert!(ws.path().join("healthy").exists());

    // Still slow: the check passes, the incident stays open and says why.
    let (_, v) = ws.json(&["heartbeat", "--all", "--json"]);
    assert_eq!(v["status"], "failing", "{v:#}");
    let id = app["id"].as_str().unwrap();
    let note = std::fs::read_to_string(ws.memory().join(format!("incidents/{id}.md"))).unwrap();
    assert!(note.contains("- **Status**: open") && note.contains("check passes again but verification fails: connectivity: ok"), "{note}");

    // Fast again: every step passes and the incident resolves.
    svc.delay_ms.store(0, Ordering::Relaxed);
    ws.run(&["heartbeat", "--all"]);
    let note = std::fs::read_to_string(ws.memory().join(format!("incidents/{id}.md"))).unwrap();
    assert!(note.contains("- **Status**: resolved") && note.contains("check passed again"), "{note}");
}

/// A service as it runs in life: a script started in the background by the
/// declared `start:` command, writing its log and its pidfile.
struct AppService {
    dir: tempfile::TempDir,
}

impl AppService {
    /// `body` is the script after its shebang.
    fn new(body: &str) -> AppService {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        let script = dir.path().join("app-server");
        std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
        Command::new("chmod").arg("755").arg(&script).status().unwrap();
        AppService { dir }
    }
    fn pidfile(&self) -> std::path::PathBuf {
        self.dir.path().join("run/app-server.pid")
    }
    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("app.log")
    }
    fn start_line(&self) -> String {
        format!("nohup {} </dev/null >> {} 2>&1 & echo $! > {}", self.dir.path().join("app-server").display(), self.log().display(), self.pidfile().display())
    }
    fn ws(&self) -> Ws {
        Ws::new(
            &format!("commands:\n  start-app: {:?}\nrules:\n  - action: restart_process\n    decide: auto\n", self.start_line()),
            &format!("checks:\n  - name: app\n    kind: service\n    pidfile: {}\n    start: start-app\n    cooldown: 0s\n", self.pidfile().display()),
        )
    }
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pidfile()).ok()?.trim().parse().ok()
    }
}

impl Drop for AppService {
    fn drop(&mut self) {
        if let Some(p) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z'))
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

#[test]
fn a_pidfile_whose_pid_was_reused_by_another_program_fails_and_the_service_is_started_without_killing_it() {
    let app = AppService::new("while true; do echo \"serving\"; sleep 1; done\n");
    let ws = app.ws();
    assert_eq!(ws.run(&["validate"]).code, 0, "{}", ws.run(&["validate"]).stderr);
    // The service died; the kernel gave its pid to an unrelated program.
    let mut other = Command::new("sleep").arg("600").spawn().unwrap();
    std::fs::write(app.pidfile(), format!("{}\n", other.id())).unwrap();

    let (code, v) = ws.json(&["check", "--json"]);
    let c = &v["checks"][0];
    assert_eq!((code, c["status"].as_str()), (1, Some("failing")), "a live pid of another program counted as the service: {v}");
    let summary = c["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("pid {} from", other.id())) && summary.contains("is not the service: it is `sleep`"), "{summary}");
    assert_eq!(c["evidence"]["problem"], "other-program", "{c}");

    let (code, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert_eq!(code, 1, "{v}");
    let inc = &v["incidents"][0];
    assert!(inc["fingerprint"].as_str().unwrap().starts_with("app:pid-reused:"), "{inc}");
    let diagnosis = inc["diagnosis"].to_string();
    assert!(diagnosis.contains("not the service") && diagnosis.contains("`sleep`"), "{diagnosis}");
    // The repair is the declared start command, never a signal to the pid in the pidfile.
    let actions = inc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{inc}");
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("restart_process"), Some("ok")), "{inc}");
    assert!(actions[0]["outcome"].as_str().unwrap().contains("start-app"), "{inc}");
    assert!(alive(other.id() as i32), "the unrelated program was killed");
    assert!(other.try_wait().unwrap().is_none(), "the unrelated program exited");
    let new_pid = app.pid().unwrap();
    assert_ne!(new_pid, other.id() as i32);
    assert_eq!(comm(new_pid), "app-server", "the pidfile names the started service");
    assert_eq!(inc["status"], "resolved", "{inc}");
    let (code, v) = ws.json(&["check", "--json"]);
    assert_eq!((code, v["checks"][0]["status"].as_str()), (0, Some("ok")), "{v}");
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn a_stale_pidfile_names_the_dead_pid_and_the_last_lines_of_the_services_log() {
    let app = AppService::new("echo \"starting on :8080\"\necho \"db password=hunter2-secret-value\"\necho \"FATAL: /etc/app.conf line 3: unknown key colour\"\nexit 3\n");
    let ws = app.ws();
    // The service starts through its own command, logs, and dies.
    let st = Command::new("sh").arg("-c").arg(app.start_line()).status().unwrap();
    assert!(st.success());
    let pid = app.pid().unwrap();
    assert!(support::eventually(std::time::Duration::from_secs(10), || !std::path::Path::new(&format!("/proc/{pid}")).exists()));

    let (code, v) = ws.json(&["check", "--json"]);
    let c = &v["checks"][0];
    assert_eq!((code, c["status"].as_str()), (1, Some("failing")), "{v}");
    assert!(c["summary"].as_str().unwrap().contains(&format!("pid {pid} from")) && c["summary"].as_str().unwrap().contains("stale pidfile"), "{c}");
    assert_eq!(c["evidence"]["log"], app.log().display().to_string(), "{c}");
    let tail: Vec<&str> = c["evidence"]["log_tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(tail.last(), Some(&"FATAL: /etc/app.conf line 3: unknown key colour"), "{tail:?}");

    // Dry-run: the note says why, with the log's last words (redacted); the start command is proposed.
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1, "{v}");
    let inc = &v["incidents"][0];
    assert!(inc["fingerprint"].as_str().unwrap().starts_with("app:service-down:"), "{inc}");
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    assert!(note.contains(&format!("its pidfile names pid {pid}, which no longer exists")), "{note}");
    assert!(note.contains("last lines of its log") && note.contains("FATAL: /etc/app.conf line 3: unknown key colour"), "{note}");
    assert!(!note.contains("hunter2-secret-value"), "a secret of the log reached the note: {note}");
    let a = &inc["actions"][0];
    assert_eq!((a["action"].as_str(), a["result"].as_str()), (Some("restart_process"), Some("dry-run")), "{inc}");
}

#[test]
fn a_start_command_that_is_not_declared_is_an_error_naming_file_line_and_fix() {
    let ws = Ws::new("commands:\n  start-web: \"true\"\n", "checks:\n  - name: app\n    kind: service\n    pidfile: /run/app.pid\n    start: start-app\n");
    let r = ws.run(&["validate"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("HEARTBEAT.md:") && said.contains("start command `start-app` is not declared in AGENTS.md `commands:`") && said.contains("declare the command that starts the service"),
        "{said}"
    );
    let line = said.split("HEARTBEAT.md:").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()).unwrap();
    let hb = std::fs::read_to_string(ws.path().join("HEARTBEAT.md")).unwrap();
    assert!(hb.lines().nth(line.parse::<usize>().unwrap() - 1).unwrap().contains("start: start-app"), "line {line} of {hb}");
}
