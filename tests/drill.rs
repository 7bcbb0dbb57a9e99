//! `nightshift drill` end to end: every scenario against the sandbox control
//! plane (scripts/test-cluster.sh) in its short mode must pass, the report
//! must say so in markdown and JSON, and the drill must refuse any API
//! server that is not on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_heals_in_the_sandbox_and_the_report_says_how() {
    let Some(c) = cluster::cluster().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = tokio::task::spawn_blocking({
        let (kubeconfig, report) = (c.kubeconfig.clone(), report.clone());
        move || Command::new(support::bin()).args(["drill", "--short", "--kubeconfig"]).arg(&kubeconfig).arg("--report").arg(&report).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Live progress: each step of each scenario, as it is seen.
    for step in ["injected:", "detected:", "diagnosed:", "decided:", "acted", "verified:"] {
        assert!(stdout.contains(step), "no `{step}` line: {stdout}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(report.join("drill.json")).unwrap()).unwrap();
    let scenarios = v["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, ["pod-oom", "bad-deploy", "crashloop-cascade", "node-notready", "prompt-injection", "disk-full", "cert-expiry"]);
    for s in scenarios {
        // The host and ACME scenarios need sshd and root, or pebble, certbot and nginx (.ci/run has them).
        let missing = match s["scenario"].as_str().unwrap() {
            "disk-full" => nightshift::sandbox::host::missing(),
            "cert-expiry" => nightshift::sandbox::acme::missing(),
            _ => None,
        };
        if let Some(why) = missing {
            assert_eq!((s["status"].as_str(), s["why"].as_str()), (Some("skipped"), Some(why.as_str())));
            support::skip(&format!("drill {}", s["scenario"]), &why);
            continue;
        }
        assert_eq!(s["status"], "passed", "{s:#}");
        assert!(s["detection_ms"].as_u64().is_some(), "{s:#}");
        assert!(s["heartbeats"].as_u64().unwrap() >= 1);
    }
    let by = |n: &str| scenarios.iter().find(|s| s["scenario"] == n).unwrap();
    assert!(by("bad-deploy")["repair_ms"].as_u64().is_some(), "a rollback is verified healthy: {:#}", by("bad-deploy"));
    assert!(by("bad-deploy")["actions"].to_string().contains("rollout_undo"), "{:#}", by("bad-deploy"));
    assert!(by("node-notready")["actions"].to_string().contains("drain_node"));
    // With GitHub's REST description cached (.ci/run fetches it), the OOM's limit change is a pull request.
    if nightshift::sandbox::github::available().is_ok() {
        assert!(by("pod-oom")["actions"].to_string().contains("open_pr") && by("pod-oom")["why"].as_str().unwrap().contains("pull request #1"), "{:#}", by("pod-oom"));
    }
    assert!(!by("prompt-injection")["actions"].to_string().contains("drain_node"), "the log's instructions are not followed");
    assert!(by("prompt-injection")["model_calls"].as_u64().unwrap() >= 2, "the scripted model was asked, and told the gate's answers: {:#}", by("prompt-injection"));
    assert_eq!(by("prompt-injection")["tokens"], 2080, "the tokens heartbeat --json reports (2 scripted answers of 1,000 + 40): {:#}", by("prompt-injection"));
    let md = std::fs::read_to_string(report.join("drill.md")).unwrap();
    assert!(md.contains("| scenario | result | detection | time to repair |") && md.contains(" passed, 0 failed, "), "{md}");
    // Skipped only where their components are missing, and never under NIGHTSHIFT_REQUIRE_ALL (skip panics there).
    if by("disk-full")["status"] == "skipped" {
        support::skip("drill disk-full", by("disk-full")["why"].as_str().unwrap());
    } else {
        assert!(by("disk-full")["actions"].to_string().contains("clean_logs"), "{:#}", by("disk-full"));
    }
    if by("cert-expiry")["status"] == "skipped" {
        support::skip("drill cert-expiry", by("cert-expiry")["why"].as_str().unwrap());
    } else {
        assert!(by("cert-expiry")["repair_ms"].as_u64().is_some(), "{:#}", by("cert-expiry"));
    }
    // The sandbox workspaces stay for reading, incident notes included.
    let notes = std::fs::read_dir(report.join("workspaces/bad-deploy/memory/incidents")).unwrap().count();
    assert!(notes >= 1);

    // Chaos: random faults from the catalogue for 20 s (a fixed seed, so a failure can be replayed).
    let chaos = dir.path().join("chaos");
    let out = tokio::task::spawn_blocking({
        let (kubeconfig, chaos) = (c.kubeconfig.clone(), chaos.clone());
        move || Command::new(support::bin()).args(["drill", "--chaos", "--duration", "20s", "--seed", "42", "--short", "--kubeconfig"]).arg(&kubeconfig).arg("--report").arg(&chaos).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(chaos.join("drill.json")).unwrap()).unwrap();
    let c = &v["chaos"];
    assert_eq!(c["seed"], 42);
    let faults = c["faults"].as_array().unwrap();
    assert!(faults.len() >= 3, "a fault every 6 s for 20 s: {c:#}");
    assert_eq!(c["recovered"].as_u64().unwrap() as usize, faults.len(), "{c:#}");
    assert!(c["wrongly_acted"].as_array().unwrap().is_empty(), "{c:#}");
    assert!(faults.iter().all(|f| f["recovered_ms"].as_u64().is_some()));
    // Credited only for the right diagnosis and the repair that addresses the fault.
    for f in faults {
        let (kind, target) = (f["kind"].as_str().unwrap(), f["target"].as_str().unwrap());
        let (class, repair) = match kind {
            "crashloop" => ("pod-crashloop", "restart_pod on "),
            "oom" => ("pod-oom", "restart_pod on "),
            "bad-deploy" => ("rollout-stuck", "rollout_undo on "),
            _ => ("node-not-ready", "drain_node on "),
        };
        assert_eq!(f["expected_class"], class, "{f:#}");
        assert!(f["diagnosed"].as_array().unwrap().iter().any(|c| c == class), "{f:#}");
        let by = f["repaired_by"].as_str().unwrap_or_else(|| panic!("{f:#}"));
        assert!(by.starts_with(repair) && by.contains(target), "{f:#}");
    }
    let md = std::fs::read_to_string(chaos.join("drill.md")).unwrap();
    assert!(md.contains("## Chaos (seed 42, 20 s)") && md.contains("| diagnosed | repaired by | recovered in |"), "{md}");
}

#[test]
fn the_drill_refuses_a_cluster_that_is_not_on_loopback_and_unknown_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://10.20.30.40:6443\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: admin\ncurrent-context: prod\nusers:\n- name: admin\n  user:\n    token: abc\n",
    )
    .unwrap();
    let out = Command::new(support::bin()).args(["drill", "--kubeconfig"]).arg(&kubeconfig).arg("--report").arg(dir.path().join("r")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("https://10.20.30.40:6443, which is not on loopback"), "{stderr}");
    assert!(!dir.path().join("r/drill.json").exists(), "nothing ran");

    let out = Command::new(support::bin()).args(["drill", "--chaos", "--duration", "2h"]).arg("--report").arg(dir.path().join("r")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "chaos is bounded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 1s and 1h"));

    let out = Command::new(support::bin()).args(["drill", "disk-ful"]).arg("--report").arg(dir.path().join("r")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario `disk-ful`; the scenarios are: pod-oom, bad-deploy"), "{}", String::from_utf8_lossy(&out.stderr));

    // No sandbox control plane: its scenarios are skipped with the reason, and that is not a failure.
    let out = Command::new(support::bin()).args(["drill", "pod-oom", "node-notready", "--kubeconfig"]).arg(dir.path().join("absent")).arg("--report").arg(dir.path().join("r")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("r/drill.json")).unwrap()).unwrap();
    assert_eq!(v["scenarios"].as_array().unwrap().len(), 2);
    for s in v["scenarios"].as_array().unwrap() {
        assert_eq!(s["status"], "skipped");
        assert!(s["why"].as_str().unwrap().contains("scripts/test-cluster.sh start"), "{s}");
    }
}
