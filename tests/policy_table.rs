//! The policy gate as a table: action × rules × history → decision, covering
//! every decide value, limits, protected targets, blast radius, unknown
//! actions and the L1–L4 levels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use nightshift::actions::{ActionKind, Target};
use nightshift::policy::{self, Decision, History, Policy, Subject};
use nightshift::severity::Level;

/// A policy parsed the way users write it.
fn policy(yaml: &str) -> Policy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("AGENTS.md"), format!("```policy\n{yaml}```\n")).unwrap();
    std::fs::write(dir.path().join("HEARTBEAT.md"), "```heartbeat\nchecks: []\n```\n").unwrap();
    match nightshift::workspace::load(Path::new(dir.path())) {
        Ok(ws) => ws.policy,
        Err(p) => panic!("{p:?}"),
    }
}

const RULES: &str = "\
max_blast_radius: 10
max_actions_per_hour: 30
rules:
  - action: restart_pod
    decide: auto
    max_per_hour: 3
    match: {namespace: shop}
  - action: restart_pod
    decide: confirm
    match: {target: shop/payments-*}
  - action: rollout_undo
    decide: abort-window
    abort_window: 45s
  - action: drain_node
    decide: confirm
  - action: scale
    decide: forbid
    match: {namespace: kube-system}
  - action: scale
    decide: auto
  - action: clean_logs
    decide: auto
  - action: run_command
    decide: alert
    match: {check: billing-*}
  - action: run_command
    decide: auto
protected:
  namespaces: [kube-system]
  targets: [/var/lib/postgresql*]
  hosts: [db-*]
";

fn subject(kind: ActionKind, target: &str) -> Subject {
    let mut s = Subject::new(kind, target);
    if let Some((ns, _)) = target.split_once('/').filter(|(ns, _)| !ns.is_empty()) {
        s.target.namespace = Some(ns.to_string());
    }
    s
}

#[test]
fn decision_table() {
    let p = policy(RULES);
    let h0 = History::default();
    let with = |f: fn(&mut Subject)| {
        move |mut s: Subject| {
            f(&mut s);
            s
        }
    };
    let l1 = with(|s| s.level = Level::L1);
    let l2 = with(|s| s.level = Level::L2);
    let l4 = with(|s| s.level = Level::L4);
    let wide = with(|s| s.blast_radius = 11);
    let billing = with(|s| s.check = Some("billing-api".into()));
    let host = |h: &str| {
        let h = h.to_string();
        move |mut s: Subject| {
            s.target.host = Some(h.clone());
            s
        }
    };
    let rows: Vec<(&str, Subject, History, Decision)> = vec![
        ("auto by rule", subject(ActionKind::RestartPod, "shop/checkout-7d9f8b6c5-x2x9k"), h0.clone(), Decision::Auto),
        ("strictest matching rule wins", subject(ActionKind::RestartPod, "shop/payments-5c-abc"), h0.clone(), Decision::Confirm),
        ("rule's match does not cover the namespace: unknown_action", subject(ActionKind::RestartPod, "blog/web-1"), h0.clone(), Decision::Confirm),
        ("abort-window", subject(ActionKind::RolloutUndo, "shop/checkout"), h0.clone(), Decision::AbortWindow),
        ("confirm", subject(ActionKind::DrainNode, "node-3"), h0.clone(), Decision::Confirm),
        ("forbid beats auto", subject(ActionKind::Scale, "kube-system/coredns"), h0.clone(), Decision::Forbid),
        ("auto elsewhere", subject(ActionKind::Scale, "shop/checkout"), h0.clone(), Decision::Auto),
        ("alert by check match", billing(subject(ActionKind::RunCommand, "restart-billing")), h0.clone(), Decision::Alert),
        ("no rule at all: unknown_action confirm", subject(ActionKind::CordonNode, "node-1"), h0.clone(), Decision::Confirm),
        ("notify needs no rule", subject(ActionKind::Notify, "humans"), h0.clone(), Decision::Auto),
        ("protected target", subject(ActionKind::CleanLogs, "/var/lib/postgresql/15/main"), h0.clone(), Decision::Forbid),
        ("protected host", host("db-01")(subject(ActionKind::CleanLogs, "/var/log/app")), h0.clone(), Decision::Forbid),
        ("unprotected host", host("web-01")(subject(ActionKind::CleanLogs, "/var/log/app")), h0.clone(), Decision::Auto),
        ("per-target limit reached", subject(ActionKind::RestartPod, "shop/checkout-1"), History { target_last_hour: 3, ..h0.clone() }, Decision::Confirm),
        ("per-target limit not reached", subject(ActionKind::RestartPod, "shop/checkout-1"), History { target_last_hour: 2, ..h0.clone() }, Decision::Auto),
        ("global cap reached", subject(ActionKind::CleanLogs, "/var/log/app"), History { global_last_hour: 30, ..h0.clone() }, Decision::Confirm),
        ("circuit breaker open", subject(ActionKind::CleanLogs, "/var/log/app"), History { consecutive_failures: 3, ..h0.clone() }, Decision::Alert),
        ("circuit breaker closed", subject(ActionKind::CleanLogs, "/var/log/app"), History { consecutive_failures: 2, ..h0.clone() }, Decision::Auto),
        ("blast radius over the limit", wide(subject(ActionKind::Scale, "shop/checkout")), h0.clone(), Decision::Confirm),
        ("blast radius does not loosen forbid", wide(subject(ActionKind::Scale, "kube-system/dns")), h0.clone(), Decision::Forbid),
        ("L1 monitor only", l1(subject(ActionKind::CleanLogs, "/var/log/app")), h0.clone(), Decision::Alert),
        ("L2 suggest and wait", l2(subject(ActionKind::CleanLogs, "/var/log/app")), h0.clone(), Decision::Confirm),
        ("L2 does not loosen forbid", l2(subject(ActionKind::Scale, "kube-system/dns")), h0.clone(), Decision::Forbid),
        ("L4 acts like L3", l4(subject(ActionKind::CleanLogs, "/var/log/app")), h0.clone(), Decision::Auto),
        ("L1 does not stop notifying", l1(subject(ActionKind::Notify, "humans")), h0.clone(), Decision::Auto),
    ];
    let mut wrong = Vec::new();
    for (name, s, h, want) in rows {
        let v = policy::decide(&p, &s, &h);
        if v.decision != want {
            wrong.push(format!("{name}: got {} ({}), want {want}", v.decision, v.reason));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn reasons_name_the_rule_and_windows_come_from_it() {
    let p = policy(RULES);
    let v = policy::decide(&p, &subject(ActionKind::RolloutUndo, "shop/checkout"), &History::default());
    assert_eq!(v.abort_window, Some(std::time::Duration::from_secs(45)));
    assert_eq!(v.reason, "rule for rollout_undo at AGENTS.md line 12 decides abort-window");
    let v = policy::decide(&p, &subject(ActionKind::Scale, "kube-system/coredns"), &History::default());
    assert_eq!(v.reason, "rule for scale at AGENTS.md line 17 decides forbid; namespace kube-system is protected");
}

#[test]
fn unknown_action_setting_is_honoured() {
    for (setting, want) in [("confirm", Decision::Confirm), ("alert", Decision::Alert), ("forbid", Decision::Forbid)] {
        let p = policy(&format!("unknown_action: {setting}\n"));
        let v = policy::decide(&p, &Subject::new(ActionKind::DrainNode, "node-1"), &History::default());
        assert_eq!(v.decision, want, "{setting}");
    }
}

#[test]
fn decisions_order_from_permissive_to_strict() {
    let mut all = [Decision::Forbid, Decision::Auto, Decision::Alert, Decision::AbortWindow, Decision::Confirm];
    all.sort();
    assert_eq!(all, [Decision::Auto, Decision::AbortWindow, Decision::Confirm, Decision::Alert, Decision::Forbid]);
    assert_eq!(Target::default().id, "");
}

/// The gate judges the action as it would run: a scale by the replicas it
/// changes, a scale to zero only when a rule names it, a remote target by its path.
#[test]
fn scale_reach_scale_to_zero_and_remote_paths_from_real_actions() {
    use nightshift::actions::Action;
    let p = policy(RULES);
    let scale = |ns: &str, to: i32, from: Option<i32>| Action::Scale { namespace: ns.into(), deployment: "checkout".into(), replicas: to, from, context: None };
    let decide = |a: &Action| policy::decide(&p, &Subject::for_action(a, Some("rollouts"), Level::L3), &History::default());
    // 50 → 48 changes two replicas: within max_blast_radius 10.
    assert_eq!(decide(&scale("shop", 48, Some(50))).decision, Decision::Auto);
    // 50 → 0 touches 50, and takes the service down: refused, naming how to allow it.
    let v = decide(&scale("shop", 0, Some(50)));
    assert_eq!(v.decision, Decision::Forbid, "{}", v.reason);
    assert!(v.reason.contains("to 0 replicas") && v.reason.contains("target: shop/checkout"), "{}", v.reason);
    // 2 → 20 touches 18: more than max_blast_radius.
    let v = decide(&scale("shop", 20, Some(2)));
    assert_eq!(v.decision, Decision::Confirm, "{}", v.reason);
    assert!(v.reason.contains("touches 18 instances"), "{}", v.reason);
    // A rule that names the Deployment lets it go to zero (its own decision applies).
    let named = policy(&RULES.replace("rules:\n", "rules:\n  - action: scale\n    decide: confirm\n    match: {target: shop/checkout}\n"));
    let v = policy::decide(&named, &Subject::for_action(&scale("shop", 0, Some(3)), None, Level::L3), &History::default());
    assert_eq!(v.decision, Decision::Confirm, "{}", v.reason);

    // protected.targets covers a path on a host as it covers a local one.
    let remote = Action::CleanLogs { root: "/var/lib/postgresql/15/main/log".into(), host: Some("web-01".into()) };
    let v = decide(&remote);
    assert_eq!(v.decision, Decision::Forbid, "{}", v.reason);
    let elsewhere = Action::CleanLogs { root: "/var/log/app".into(), host: Some("web-01".into()) };
    assert_eq!(decide(&elsewhere).decision, Decision::Auto);
}
