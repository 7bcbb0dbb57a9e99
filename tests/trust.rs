//! Humans in the loop, end to end through the `nightshift` binary (every
//! heartbeat a fresh process, so every step is also a restart): trust that
//! is earned by approved-and-verified runs and lost by one failure, never
//! above the rule's ceiling; and the urgency each message carries to a
//! loopback webhook receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{HttpServer, Ws};

/// The pending approvals' ids, from the state file.
fn pending(ws: &Ws) -> Vec<String> {
    let text = std::fs::read_to_string(ws.memory().join("state/approvals.json")).unwrap_or_else(|_| "[]".into());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array().unwrap().iter().filter(|a| a["status"] == "pending").map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

fn heartbeat(ws: &Ws) -> serde_json::Value {
    let (_, v) = ws.json(&["heartbeat", "--all", "--json"]);
    v
}

/// The decisions of the incidents' actions in one run, by action name.
fn decisions(run: &serde_json::Value, action: &str) -> Vec<String> {
    run["incidents"].as_array().unwrap().iter().flat_map(|i| i["actions"].as_array().unwrap().iter()).filter(|a| a["action"] == action).map(|a| a["decision"].as_str().unwrap().to_string()).collect()
}

/// One failure of the app, approved by a human and carried out: the fix runs and the check passes again.
fn approved_run(ws: &Ws, i: usize) {
    std::fs::remove_file(ws.path().join("healthy")).ok();
    let run = heartbeat(ws);
    assert_eq!(decisions(&run, "run_command"), ["confirm"], "run {i}: before trust is earned a human is asked: {run}");
    let ids = pending(ws);
    assert_eq!(ids.len(), 1, "run {i}: {ids:?}");
    let out = ws.run(&["approve", &ids[0]]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let run = heartbeat(ws);
    assert!(ws.path().join("healthy").exists(), "run {i}: the approved fix ran: {run}");
}

const POLICY: &str = "mode: execute\nnotify_window: 0s\ncommands:\n  fix: \"test ! -f broken && touch healthy\"\n  danger: \"touch healthy\"\nprotected:\n  targets: [danger]\nrules:\n  - action: run_command\n    decide: confirm\n    promote_after: 5\n";

fn app_check(name: &str, repair: &str, extra: &str) -> String {
    format!("  - name: {name}\n    kind: exec\n    command: \"test -f healthy\"\n    repair: {repair}\n    cooldown: 0s\n{extra}")
}

#[test]
fn five_approved_and_verified_runs_earn_auto_for_the_sixth_and_one_failure_takes_it_back() {
    let ws = Ws::new(POLICY, &format!("checks:\n{}", app_check("app", "fix", "")));
    for i in 1..=5 {
        approved_run(&ws, i);
    }
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ws.memory().join("state/state.json")).unwrap()).unwrap();
    assert_eq!(state["trust"]["run_command"]["verified"], 5, "{}", state["trust"]);

    // The sixth failure: no human is asked, the fix runs at once, and the audit and the note say why.
    std::fs::remove_file(ws.path().join("healthy")).unwrap();
    let run = heartbeat(&ws);
    assert_eq!(decisions(&run, "run_command"), ["auto"], "{run}");
    assert!(pending(&ws).is_empty());
    assert!(ws.path().join("healthy").exists(), "the earned auto ran the fix");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let earned = format!("auto: earned after 5 verified approvals, since {today}");
    assert!(ws.audit_text().contains(&earned), "the audit says so: {}", ws.audit_text());
    let id = run["incidents"][0]["id"].as_str().unwrap();
    let note = std::fs::read_to_string(ws.memory().join(format!("incidents/{id}.md"))).unwrap();
    assert!(note.contains(&earned), "the note says so: {note}");

    // A failed run demotes it: the next failure asks a human again.
    std::fs::write(ws.path().join("broken"), "").unwrap();
    std::fs::remove_file(ws.path().join("healthy")).unwrap();
    let run = heartbeat(&ws);
    assert_eq!(decisions(&run, "run_command"), ["auto"], "{run}");
    assert!(run.to_string().contains("decides confirm again"), "the failed run says it demotes: {run}");
    std::fs::remove_file(ws.path().join("broken")).unwrap();
    let run = heartbeat(&ws);
    assert_eq!(decisions(&run, "run_command"), ["confirm"], "after a failure the rule asks again: {run}");

    let report = ws.run(&["audit", "report"]).stdout;
    let promoted = report.lines().find(|l| l.contains(" promoted run_command")).unwrap_or_else(|| panic!("{report}"));
    let demoted = report.lines().find(|l| l.contains(" demoted run_command")).unwrap_or_else(|| panic!("{report}"));
    assert!(promoted.contains("5 of 5 verified approvals") && demoted.contains("failed"), "{report}");
}

#[test]
fn earned_trust_never_rises_above_protected_targets_or_l1_and_l2_levels() {
    let checks = format!("checks:\n{}{}{}", app_check("app", "fix", ""), app_check("guarded", "danger", ""), app_check("suggest", "fix", "    level: L2\n"));
    let ws = Ws::new(&POLICY.replace("promote_after: 5", "promote_after: 1"), &checks.replace("test -f healthy", "test -f $CHECK"));
    // A check per file: each fails on its own.
    let hb = std::fs::read_to_string(ws.path().join("HEARTBEAT.md")).unwrap();
    let hb = hb.replacen("$CHECK", "healthy", 1).replacen("$CHECK", "guarded-ok", 1).replacen("$CHECK", "suggest-ok", 1);
    std::fs::write(ws.path().join("HEARTBEAT.md"), hb).unwrap();
    std::fs::write(ws.path().join("guarded-ok"), "").unwrap();
    std::fs::write(ws.path().join("suggest-ok"), "").unwrap();
    approved_run(&ws, 1);
    // Earned: the app's own next failure runs at once.
    std::fs::remove_file(ws.path().join("healthy")).unwrap();
    assert_eq!(decisions(&heartbeat(&ws), "run_command"), ["auto"]);

    // The same rule on a protected target: refused, earned or not.
    std::fs::remove_file(ws.path().join("guarded-ok")).unwrap();
    let run = heartbeat(&ws);
    assert_eq!(decisions(&run, "run_command"), ["forbid"], "{run}");
    assert!(run.to_string().contains("target danger is protected"), "{run}");
    std::fs::write(ws.path().join("guarded-ok"), "").unwrap();

    // An L2 check: suggest and wait, earned or not.
    std::fs::remove_file(ws.path().join("suggest-ok")).unwrap();
    let run = heartbeat(&ws);
    assert_eq!(decisions(&run, "run_command"), ["confirm"], "{run}");
    assert!(run.to_string().contains("level L2"), "{run}");
}

#[test]
fn an_action_killed_midway_counts_nothing_and_takes_the_count_back() {
    let ws = Ws::new(POLICY, &format!("checks:\n{}", app_check("app", "fix", "")));
    approved_run(&ws, 1);
    let trust = || -> serde_json::Value { serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(ws.memory().join("state/state.json")).unwrap()).unwrap()["trust"].clone() };
    assert_eq!(trust()["run_command"]["verified"], 1);
    // The second approved run is SIGKILLed while the fix runs.
    let policy = std::fs::read_to_string(ws.path().join("AGENTS.md")).unwrap();
    std::fs::write(ws.path().join("AGENTS.md"), policy.replace("fix: \"test ! -f broken && touch healthy\"", "fix: \"sleep 5 && touch healthy\"")).unwrap();
    std::fs::remove_file(ws.path().join("healthy")).unwrap();
    heartbeat(&ws);
    let id = pending(&ws).pop().unwrap();
    assert_eq!(ws.run(&["approve", &id]).code, 0);
    let mut child = ws.cmd(&["heartbeat", "--all", "--json"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let begun = || {
        let j = std::fs::read_to_string(ws.memory().join("state/journal")).unwrap_or_default();
        j.matches(r#""op":"begin""#).count() > j.matches(r#""op":"end""#).count()
    };
    assert!(support::eventually(std::time::Duration::from_secs(20), begun), "the action began");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(trust()["run_command"]["verified"], 1, "a killed action counted nothing: {}", trust());
    // The next run reconciles it as interrupted: the count starts again, and nothing is repeated.
    let run = heartbeat(&ws);
    assert!(run["notes"].to_string().contains("reconciled interrupted run_command"), "{run}");
    assert!(!run["notes"].to_string().contains("approval "), "the interrupted approval is not carried out again: {run}");
    assert!(trust().get("run_command").is_none(), "an interrupted run takes the count back: {} {run}\n{}", trust(), ws.audit_text());
    assert!(ws.audit_text().contains("starts again from 0"), "{}", ws.audit_text());
}

#[test]
fn promote_after_is_refused_outside_confirm_and_below_one_naming_file_and_line() {
    for (rule, want) in
        [("    decide: auto\n    promote_after: 3\n", "`promote_after` only applies to `decide: confirm`"), ("    decide: confirm\n    promote_after: 0\n", "`promote_after: 0` is out of range")]
    {
        let ws = Ws::new(&format!("rules:\n  - action: run_command\n{rule}"), "checks: []\n");
        let out = ws.run(&["validate"]);
        assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        // AGENTS.md: 4 lines of prose and the fence, then the block; the rule's promote_after is its 9th line.
        assert!(all.contains(want) && all.contains("AGENTS.md:9"), "{all}");
    }
}

/// The JSON bodies the receiver got, in order.
fn payloads(hook: &HttpServer) -> Vec<serde_json::Value> {
    hook.requests.lock().unwrap().iter().filter_map(|r| r.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok())).collect()
}

#[test]
fn each_message_carries_the_urgency_the_seed_routes_by() {
    let hook = HttpServer::start(200, "");
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, _) = support::make_cert(dir.path(), 20);
    let sub = dir.path().join("b");
    std::fs::create_dir(&sub).unwrap();
    let (cert_b, _) = support::make_cert(&sub, 20);
    let policy = format!(
        "mode: execute\nnotify_window: 0s\nescalation: []\ncommands:\n  fix: \"touch disk-ok\"\nrules:\n  - action: run_command\n    decide: auto\nwebhooks:\n  - name: n8n\n    url: {}\n",
        hook.url("/hook")
    );
    let checks = format!(
        "checks:\n  - name: disk\n    kind: exec\n    command: \"test -f disk-ok\"\n    repair: fix\n    cooldown: 0s\n    severity: critical\n  - name: payments\n    kind: exec\n    command: \"test -f payments-ok\"\n    severity: critical\n  - name: cert-a\n    kind: tls\n    file: {}\n  - name: cert-b\n    kind: tls\n    file: {}\n",
        cert_a.display(),
        cert_b.display()
    );
    let ws = Ws::new(&policy, &checks);
    std::fs::write(ws.path().join("payments-ok"), "").unwrap();
    heartbeat(&ws);
    let got = payloads(&hook);
    let of = |got: &[serde_json::Value], service: &str| got.iter().filter(|p| p["service"] == service).cloned().collect::<Vec<_>>();
    let disk = of(&got, "disk");
    assert_eq!(disk.len(), 1, "{got:?}");
    assert_eq!((disk[0]["severity"].as_str(), disk[0]["urgency"].as_str()), (Some("critical"), Some("low")), "an auto-fixed critical disk never pages: {}", disk[0]);
    assert!(disk[0]["message"].as_str().unwrap().contains("fixed automatically: run_command on fix"), "with what was done: {}", disk[0]);
    for c in ["cert-a", "cert-b"] {
        let w = of(&got, c);
        assert_eq!(w.len(), 1, "a certificate inside warn_days is sent, once per target: {got:?}");
        assert_eq!((w[0]["severity"].as_str(), w[0]["urgency"].as_str()), (Some("warning"), Some("low")), "{}", w[0]);
    }

    // Needs a human: critical pages.
    std::fs::remove_file(ws.path().join("payments-ok")).unwrap();
    let before = payloads(&hook).len();
    heartbeat(&ws);
    let got = payloads(&hook)[before..].to_vec();
    let pay = of(&got, "payments");
    assert_eq!(pay.len(), 1, "{got:?}");
    assert_eq!(pay[0]["urgency"], "page", "{}", pay[0]);
    assert!(of(&got, "cert-a").is_empty() && of(&got, "cert-b").is_empty(), "warnings once a day, across restarts: {got:?}");

    // A problem seen more than three times: high, needs a permanent fix, not a page.
    for _ in 0..3 {
        std::fs::remove_file(ws.path().join("disk-ok")).unwrap();
        heartbeat(&ws);
    }
    let last = of(&payloads(&hook), "disk").pop().unwrap();
    assert!(last["message"].as_str().unwrap().contains("needs a permanent fix (happened 4 times)"), "{last}");
    assert_eq!(last["urgency"], "high", "{last}");

    // Another day: the warning goes out again.
    let path = ws.memory().join("state/state.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (_, day) in state["warned"].as_object_mut().unwrap().iter_mut() {
        *day = "2000-01-01".into();
    }
    std::fs::write(&path, state.to_string()).unwrap();
    let before = payloads(&hook).len();
    heartbeat(&ws);
    let got = payloads(&hook)[before..].to_vec();
    assert_eq!(of(&got, "cert-a").len() + of(&got, "cert-b").len(), 2, "{got:?}");
}

/// The gate itself, for the ceilings a heartbeat cannot reach cheaply: with
/// trust earned, every other limit still wins.
#[test]
fn earned_trust_lowers_only_its_own_rule_and_every_limit_still_wins() {
    use nightshift::actions::ActionKind;
    use nightshift::policy::{Decision, History, Subject, decide};
    use nightshift::severity::Level;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "max_blast_radius: 10\nmax_actions_per_hour: 30\nrules:\n  - action: rollout_restart\n    decide: confirm\n    promote_after: 2\n    max_per_hour: 3\n  - action: rollout_restart\n    decide: confirm\n    match: {namespace: payments}\n  - action: rollout_restart\n    decide: forbid\n    match: {namespace: vault}\nprotected:\n  namespaces: [kube-system]\n";
    std::fs::write(dir.path().join("AGENTS.md"), format!("```policy\n{yaml}```\n")).unwrap();
    std::fs::write(dir.path().join("HEARTBEAT.md"), "```heartbeat\nchecks: []\n```\n").unwrap();
    let policy = nightshift::workspace::load(dir.path()).unwrap_or_else(|p| panic!("{p:?}")).policy;
    let key = policy.rules[0].trust_key();
    let earned = History { earned: vec![(key, "auto: earned after 2 verified approvals, since 2026-12-01".into())], ..History::default() };
    let subject = |ns: &str| {
        let mut s = Subject::new(ActionKind::RolloutRestart, &format!("{ns}/web"));
        s.target.namespace = Some(ns.into());
        s
    };
    let d = |s: &Subject, h: &History| decide(&policy, s, h);
    assert_eq!(d(&subject("shop"), &History::default()).decision, Decision::Confirm, "not earned: asks");
    let v = d(&subject("shop"), &earned);
    assert_eq!(v.decision, Decision::Auto, "earned: {}", v.reason);
    assert!(v.reason.contains("auto: earned after 2 verified approvals, since 2026-12-01"), "{}", v.reason);
    let cases: Vec<(&str, Subject, History, Decision)> = vec![
        ("a stricter matching rule without promote_after", subject("payments"), earned.clone(), Decision::Confirm),
        ("a forbid rule", subject("vault"), earned.clone(), Decision::Forbid),
        ("a protected namespace", subject("kube-system"), earned.clone(), Decision::Forbid),
        ("level L1", Subject { level: Level::L1, ..subject("shop") }, earned.clone(), Decision::Alert),
        ("level L2", Subject { level: Level::L2, ..subject("shop") }, earned.clone(), Decision::Confirm),
        ("blast radius", Subject { blast_radius: 11, ..subject("shop") }, earned.clone(), Decision::Confirm),
        ("max_per_hour", subject("shop"), History { target_last_hour: 3, ..earned.clone() }, Decision::Confirm),
        ("max_actions_per_hour", subject("shop"), History { global_last_hour: 30, ..earned.clone() }, Decision::Confirm),
        ("an open circuit", subject("shop"), History { consecutive_failures: 3, ..earned.clone() }, Decision::Alert),
    ];
    for (what, s, h, want) in cases {
        let v = d(&s, &h);
        assert_eq!(v.decision, want, "{what}: {}", v.reason);
    }
}
