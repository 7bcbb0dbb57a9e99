//! The policy gate end to end, with the built binary across separate
//! processes: real cleanup on a real (tmpfs) filesystem, SIGKILL between the
//! journal entry and completion, confirm → approve, abort windows, forbid,
//! the circuit breaker and the audit report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Ws, age};

/// A 2 MiB tmpfs, unmounted on drop. `None` where mounting is not allowed (not root).
struct SmallFs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&path).status().is_ok_and(|s| s.success());
        ok.then_some(Self { path, _dir: dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn write(path: &Path, bytes: usize, days_old: u64) {
    std::fs::write(path, vec![b'x'; bytes]).unwrap();
    if days_old > 0 {
        age(path, days_old);
    }
}

#[test]
fn execute_cleans_exactly_the_old_logs_verifies_and_resolves() {
    let Some(fs) = SmallFs::mount() else {
        support::skip("a tmpfs (root)", "mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let root = fs.path.join("logs");
    let other = fs.path.join("other");
    std::fs::create_dir_all(root.join("nested")).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    for i in 0..3 {
        write(&root.join(format!("app.log.{i}")), 300_000, 30);
    }
    write(&root.join("nested/worker.log"), 100_000, 40);
    write(&root.join("fresh.log"), 10_000, 0);
    write(&root.join("big.log"), 200_000, 2);
    write(&root.join("core.31337"), 100_000, 0);
    write(&root.join("notes.txt"), 5_000, 90);
    write(&other.join("outside.log"), 100_000, 30);
    std::os::unix::fs::symlink(&other, root.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(other.join("outside.log"), root.join("link.log")).unwrap();
    let ws = Ws::new(
        &format!("clean_roots: [{}]\nclean_logs: {{max_age: 7d, gzip_over_mb: 0.1}}\nrules:\n  - action: clean_logs\n    decide: auto\n", root.display()),
        &format!("checks:\n  - name: logs-disk\n    kind: disk\n    path: {}\n    max_used_percent: 50\n", fs.path.display()),
    );
    let (code, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert_eq!(code, 1, "a check failed past its threshold, even if healed: {v}");
    let inc = &v["incidents"][0];
    assert_eq!(inc["status"], "resolved", "{v}");
    let action = &inc["actions"][0];
    assert_eq!((action["action"].as_str(), action["decision"].as_str(), action["result"].as_str()), (Some("clean_logs"), Some("auto"), Some("ok")), "{action}");
    let outcome = action["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("deleted 4 old log(s), gzipped 1, removed 1 core dump(s)"), "{outcome}");
    assert!(outcome.contains("verified:"), "{outcome}");

    let mut left: Vec<String> = walk(&fs.path);
    left.sort();
    assert_eq!(
        left,
        ["logs", "logs/big.log.gz", "logs/fresh.log", "logs/link-dir", "logs/link.log", "logs/nested", "logs/notes.txt", "other", "other/outside.log"],
        "exactly the old logs, the big log and the core dump were cleaned"
    );
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    assert!(note.contains("- **Status**: resolved"), "{note}");
    let audit = ws.audit_text();
    assert!(audit.contains("- decision: auto") && audit.contains("- approved by: policy") && audit.contains("- mode: execute") && audit.contains("- result: ok"), "{audit}");
    let journal = std::fs::read_to_string(ws.memory().join("state/journal")).unwrap();
    assert_eq!(journal.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["op"].as_str().unwrap().to_string()).collect::<Vec<_>>(), ["begin", "end"]);
    assert_eq!(ws.commits().len(), 1);
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// An exec check on `healthy`, repaired by the declared command `fix`.
fn repairable(decide: &str, fix: &str, extra_policy: &str, extra_check: &str) -> Ws {
    Ws::new(
        &format!("commands:\n  fix: \"{fix}\"\n{extra_policy}rules:\n  - action: run_command\n    decide: {decide}\n"),
        &format!("checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n{extra_check}"),
    )
}

fn pending_ids(ws: &Ws) -> Vec<String> {
    let (_, v) = ws.json(&["approvals", "--json"]);
    v.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn sigkill_mid_action_is_reconciled_not_repeated() {
    let ws = repairable("auto", "echo $$ >> runs.txt; exec sleep 60", "", "");
    let mut child = ws.cmd(&["heartbeat", "--execute"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let runs = ws.path().join("runs.txt");
    let start = Instant::now();
    while std::fs::read_to_string(&runs).map_or(true, |t| t.is_empty()) {
        assert!(start.elapsed() < Duration::from_secs(20), "the repair never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sleeper: i32 = std::fs::read_to_string(&runs).unwrap().trim().parse().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleeper), nix::sys::signal::Signal::SIGKILL);
    let journal = std::fs::read_to_string(ws.memory().join("state/journal")).unwrap();
    assert_eq!(journal.lines().count(), 1, "the journal entry was written before the action: {journal}");

    // The check ran just before the crash and is not due again; --all runs it now (and the cooldown holds).
    let r = ws.run(&["heartbeat", "--execute", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("reconciled interrupted run_command on fix"), "{}", r.stdout);
    assert!(r.stdout.contains("not repeated"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1, "the action was repeated after the crash");
    assert!(ws.audit_text().contains("- result: interrupted"), "{}", ws.audit_text());
    let journal = std::fs::read_to_string(ws.memory().join("state/journal")).unwrap();
    assert!(journal.lines().last().unwrap().contains("\"result\":\"interrupted\""), "{journal}");
}

#[test]
fn confirm_then_approve_executes_on_the_next_run() {
    let ws = repairable("confirm", "touch healthy", "", "");
    let r = ws.run(&["heartbeat", "--execute"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("needs approval: nightshift approve"), "{}", r.stdout);
    assert!(!ws.path().join("healthy").exists(), "confirm acted without a human");
    let ids = pending_ids(&ws);
    assert_eq!(ids.len(), 1);
    // A second run does not ask twice.
    ws.run(&["heartbeat", "--execute", "--all"]);
    assert_eq!(pending_ids(&ws), ids);

    let r = ws.run(&["approve", &ids[0]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!ws.path().join("healthy").exists(), "approve itself must not act");
    let r = ws.run(&["heartbeat", "--execute"]);
    assert!(ws.path().join("healthy").exists(), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("approval {}: run_command on fix → ok", ids[0])), "{}", r.stdout);
    assert!(pending_ids(&ws).is_empty());
    let audit = ws.audit_text();
    assert!(audit.contains("- approved by: human:"), "{audit}");
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    assert!(note.contains("- **Status**: resolved"), "{note}");
    assert_eq!(ws.run(&["approve", &ids[0]]).code, 1, "an approval is used once");
}

#[test]
fn an_aborted_confirmation_never_runs() {
    let ws = repairable("confirm", "touch healthy", "", "");
    ws.run(&["heartbeat", "--execute"]);
    let id = pending_ids(&ws).remove(0);
    assert_eq!(ws.run(&["abort", &id]).code, 0);
    ws.run(&["heartbeat", "--execute", "--all"]);
    assert!(!ws.path().join("healthy").exists());
    assert!(ws.audit_text().contains("- result: aborted"));
}

#[test]
fn dry_run_asks_nobody_and_changes_nothing() {
    let ws = repairable("confirm", "touch healthy", "", "");
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["incidents"][0]["actions"][0]["result"], "dry-run");
    assert!(v["incidents"][0]["actions"][0]["outcome"].as_str().unwrap().contains("would ask a human to approve: run `fix`: touch healthy"));
    assert!(pending_ids(&ws).is_empty());
    assert!(!ws.path().join("healthy").exists());
}

fn announce_id(child: &mut std::process::Child) -> String {
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    loop {
        let line = lines.next().expect("no announcement").unwrap();
        if let Some((_, id)) = line.split_once("abort with: nightshift abort ") {
            std::thread::spawn(move || for _ in lines {});
            return id.trim().to_string();
        }
    }
}

#[test]
fn abort_within_the_window_cancels() {
    let ws = repairable("abort-window\n    abort_window: 3s", "touch healthy", "", "");
    let mut child = ws.cmd(&["heartbeat", "--execute"]).stdout(Stdio::piped()).spawn().unwrap();
    let id = announce_id(&mut child);
    let r = ws.run(&["abort", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(!ws.path().join("healthy").exists(), "an aborted action ran");
    assert!(ws.audit_text().contains("- result: aborted"));
}

#[test]
fn an_unaborted_window_acts() {
    let ws = repairable("abort-window\n    abort_window: 1s", "touch healthy", "", "");
    let mut child = ws.cmd(&["heartbeat", "--execute"]).stdout(Stdio::piped()).spawn().unwrap();
    let _id = announce_id(&mut child);
    child.wait().unwrap();
    assert!(ws.path().join("healthy").exists(), "the window passed but nothing ran");
    let audit = ws.audit_text();
    assert!(audit.contains("- approved by: abort-window passed") && audit.contains("- result: ok"), "{audit}");
}

#[test]
fn forbid_never_runs_and_says_why() {
    let ws = repairable("forbid", "touch healthy", "", "");
    let (code, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert_eq!(code, 1);
    let a = &v["incidents"][0]["actions"][0];
    assert_eq!((a["decision"].as_str(), a["result"].as_str()), (Some("forbid"), Some("denied")));
    assert_eq!(v["incidents"][0]["status"], "needs-human");
    assert!(!ws.path().join("healthy").exists());
}

#[test]
fn the_circuit_breaker_stops_a_repair_that_keeps_failing_and_the_report_flags_it() {
    let ws = repairable("auto", "echo tried >> tries.txt", "circuit_breaker: 2\n", "    cooldown: 0s\n");
    for _ in 0..3 {
        assert_eq!(ws.run(&["heartbeat", "--execute", "--all"]).code, 1);
    }
    let tries = std::fs::read_to_string(ws.path().join("tries.txt")).unwrap();
    assert_eq!(tries.lines().count(), 2, "the third run must not try again");
    let audit = ws.audit_text();
    assert!(audit.contains("circuit open: run_command failed 2 times in a row on fix"), "{audit}");
    let r = ws.run(&["audit", "report", "--since", "7d"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("run_command: 3 decision(s), 2 executed, success 0%"), "{}", r.stdout);
    assert!(r.stdout.contains("needs a permanent fix:\n  - run_command: fails often (2 of 2 runs failed)"), "{}", r.stdout);
}

#[test]
fn cooldown_keeps_a_repair_from_repeating() {
    let ws = repairable("auto", "echo tried >> tries.txt", "", "    cooldown: 1h\n");
    ws.run(&["heartbeat", "--execute", "--all"]);
    let r = ws.run(&["heartbeat", "--execute", "--all"]);
    assert!(r.stdout.contains("within the check's cooldown 1h"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(ws.path().join("tries.txt")).unwrap().lines().count(), 1);
}

#[test]
fn a_pending_approval_is_withdrawn_when_the_target_heals_by_itself() {
    let ws = repairable("confirm", "echo ran >> ran.txt", "", "");
    ws.run(&["heartbeat", "--execute"]);
    let id = pending_ids(&ws).remove(0);
    std::fs::write(ws.path().join("healthy"), "").unwrap();
    let r = ws.run(&["heartbeat", "--execute", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("approval {id} withdrawn")), "{}", r.stdout);
    assert!(pending_ids(&ws).is_empty());
    assert_eq!(ws.run(&["approve", &id]).code, 1, "a withdrawn approval cannot be approved");
    ws.run(&["heartbeat", "--execute", "--all"]);
    assert!(!ws.path().join("ran.txt").exists(), "acted on a healthy target");
}

#[test]
fn an_approved_action_is_not_run_on_a_target_that_healed_meanwhile() {
    let ws = repairable("confirm", "echo ran >> ran.txt", "", "");
    ws.run(&["heartbeat", "--execute"]);
    let id = pending_ids(&ws).remove(0);
    assert_eq!(ws.run(&["approve", &id]).code, 0);
    std::fs::write(ws.path().join("healthy"), "").unwrap();
    let r = ws.run(&["heartbeat", "--execute"]);
    assert!(r.stdout.contains("not carried out: the check passes now"), "{}", r.stdout);
    assert!(!ws.path().join("ran.txt").exists());
}

#[test]
fn approving_inside_the_window_acts_without_waiting_it_out() {
    let ws = repairable("abort-window\n    abort_window: 20s", "touch healthy", "", "");
    let mut child = ws.cmd(&["heartbeat", "--execute"]).stdout(Stdio::piped()).spawn().unwrap();
    let id = announce_id(&mut child);
    assert_eq!(ws.run(&["approve", &id]).code, 0);
    child.wait().unwrap();
    assert!(ws.path().join("healthy").exists());
    // Carried out before its window's deadline, as the records say (not a wall-clock bound).
    let approvals: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ws.memory().join("state/approvals.json")).unwrap()).unwrap();
    let deadline = approvals.as_array().unwrap().iter().find(|a| a["id"] == id.as_str()).unwrap()["deadline"].as_str().unwrap().to_string();
    let deadline = chrono::DateTime::parse_from_rfc3339(&deadline).unwrap();
    let audit = ws.audit_text();
    let acted = audit.split("\n## ").find(|e| e.contains(" run_command on ") && e.contains("- approved by: human:") && e.contains("- result: ok")).unwrap_or_else(|| panic!("{audit}"));
    let acted = chrono::DateTime::parse_from_rfc3339(acted.split_whitespace().next().unwrap()).unwrap();
    assert!(acted < deadline, "the run waited out the window after an approval: acted {acted}, deadline {deadline}");
    assert!(ws.audit_text().contains("- approved by: human:"), "{}", ws.audit_text());
}

#[test]
fn an_unanswered_confirmation_expires() {
    let ws = repairable("confirm", "touch healthy", "approval_ttl: 1s\n", "");
    ws.run(&["heartbeat", "--execute"]);
    let id = pending_ids(&ws).remove(0);
    std::thread::sleep(Duration::from_millis(1200));
    ws.run(&["heartbeat", "--execute"]);
    assert!(ws.audit_text().contains(&format!("approval {id} expired unanswered")), "{}", ws.audit_text());
    assert_eq!(ws.run(&["approve", &id]).code, 1);
    assert!(!ws.path().join("healthy").exists());
}
