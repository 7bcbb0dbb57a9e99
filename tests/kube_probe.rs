//! `k8s-probe` (the seed's health checker) against the real control plane
//! with the simulated kubelet, whose probed pods answer on loopback
//! addresses (`kubelet::PROBE`) and through `pods/exec` (`kubelet::EXEC`):
//! per-pod thresholds and restarts, a hanging TCP probe, exec through the
//! real API server, and a cascade that restarts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerPort, Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::Ws;
use support::cluster::{self, Cluster, DeploymentExt, create, deployment, eventually, nightshift_json, pods_are, ready};
use support::kubelet::{self, Kubelet};

const RESTART_AUTO: &str = "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n  - action: scale\n    decide: auto\n";

/// A Deployment whose pods answer probes on port 8080 of their own loopback address.
fn probed(name: &str, replicas: i32) -> Deployment {
    let mut d = deployment(name, replicas, "running").annotate(kubelet::PROBE, "ok");
    d.pod_spec().containers[0].ports = Some(vec![ContainerPort { container_port: 8080, ..Default::default() }]);
    d
}

fn ip(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap()
}

async fn running_on_loopback(c: &Cluster, ns: &str, app: &str, n: usize) -> Vec<Pod> {
    pods_are(c, ns, app, n, "ready on a loopback address", |p| ready(p) && ip(p).starts_with("127.")).await
}

/// Sets a pod's simulator annotation.
async fn annotate(c: &Cluster, ns: &str, pod: &str, key: &str, value: &str) {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {key: value}}}))).await.unwrap();
}

/// The status a GET of the pod's port 8080 gets now (0: no answer within a second).
async fn http_status(ip: &str) -> u16 {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(1)).build().unwrap();
    client.get(format!("http://{ip}:8080/healthz")).send().await.map_or(0, |r| r.status().as_u16())
}

/// The restart_pod (or scale) actions of a report, with their targets and results.
fn heals(v: &Value) -> Vec<(String, String, String)> {
    v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["actions"].as_array().unwrap().iter())
        .filter(|a| a["action"] == "restart_pod" || a["action"] == "scale")
        .map(|a| (a["action"].as_str().unwrap().to_string(), a["target"].as_str().unwrap().to_string(), a["decision"].as_str().unwrap().to_string()))
        .collect()
}

fn audit_lines(ws: &Ws, action: &str) -> Vec<String> {
    ws.audit_text().lines().filter(|l| l.starts_with("## ") && l.contains(&format!(" {action} on "))).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_five_pods_failing_their_http_probe_three_times_are_restarted_once_each() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("probe-http").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, probed("web", 5)).await;
    let before = running_on_loopback(&c, &ns, "web", 5).await;
    let (sick, healthy) = (&before[..2], &before[2..]);
    for p in sick {
        annotate(&c, &ns, &name(p), kubelet::PROBE, "fail").await;
    }
    for p in sick {
        let addr = ip(p);
        eventually(Duration::from_secs(20), "the pod answers 500", || async { if http_status(&addr).await == 500 { Ok(()) } else { Err("not yet".to_string()) } }).await;
    }
    let heartbeat = format!(
        "checks:\n  - name: web-health\n    kind: k8s-probe\n    namespace: {ns}\n    selector: app=web\n    http: {{port: 8080, path: /healthz, expect_status: 200}}\n    heal: restart\n    cooldown: 10m\n"
    );
    let ws = Ws::new(RESTART_AUTO, &heartbeat);

    // Failures one and two: counted per pod, nothing healed yet.
    for run in 1..=2 {
        let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
        assert_eq!(code, 0, "below the threshold the check passes: {v:#}");
        assert!(v["incidents"].as_array().unwrap().is_empty(), "run {run}: {v:#}");
        let notes = v["notes"].to_string();
        for p in sick {
            assert!(notes.contains(&format!("pod {ns}/{} failed its probe {run}/3 times", name(p))), "run {run}: {notes}");
        }
        assert_eq!(v["kube_requests"], 1, "one list request for the pods, whatever their number: {v:#}");
    }
    // The third: each failing pod is its own incident and is restarted.
    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let mut got = heals(&v);
    got.sort();
    let mut want: Vec<(String, String, String)> = sick.iter().map(|p| ("restart_pod".into(), format!("{ns}/{}", name(p)), "auto".into())).collect();
    want.sort();
    assert_eq!(got, want, "the two failing pods, and only they: {v:#}");
    for i in v["incidents"].as_array().unwrap() {
        assert_eq!(i["status"], "resolved", "{i:#}");
        assert!(i["fingerprint"].as_str().unwrap().starts_with("web-health:probe-failed:"), "{i:#}");
    }
    let after = pods_are(&c, &ns, "web", 5, "the two replaced, all five ready", ready).await;
    let uids = |ps: &[Pod]| ps.iter().map(|p| p.metadata.uid.clone().unwrap()).collect::<std::collections::BTreeSet<_>>();
    let (now, healthy_uids, sick_uids) = (uids(&after), uids(healthy), uids(sick));
    assert!(healthy_uids.is_subset(&now), "the healthy pods are untouched");
    assert!(sick_uids.is_disjoint(&now), "the failing pods are gone, replaced by the Deployment");

    // Later runs within the cooldown restart nothing more: each failing pod was restarted once.
    for _ in 0..2 {
        let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
        assert_eq!((code, heals(&v).len()), (0, 0), "{v:#}");
    }
    let restarts = audit_lines(&ws, "restart_pod");
    assert_eq!(restarts.len(), 2, "{restarts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_tcp_probe_fails_at_its_timeout_and_its_scale_is_not_repeated_within_the_cooldown() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("probe-tcp").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, probed("db", 2)).await;
    let pods = running_on_loopback(&c, &ns, "db", 2).await;
    let stuck = name(&pods[0]);
    annotate(&c, &ns, &stuck, kubelet::PROBE, "hang").await;
    let addr = ip(&pods[0]);
    eventually(Duration::from_secs(20), "the pod's port stops answering", || async { if http_status(&addr).await == 0 { Ok(()) } else { Err("still answers".to_string()) } }).await;
    let heartbeat = format!(
        "checks:\n  - name: db-port\n    kind: k8s-probe\n    namespace: {ns}\n    selector: app=db\n    tcp: {{port: 8080}}\n    timeout: 1s\n    threshold: 1\n    heal: scale\n    replicas: 3\n    cooldown: 10m\n"
    );
    let ws = Ws::new(RESTART_AUTO, &heartbeat);

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let check = &v["checks"][0];
    assert_eq!(check["status"], "failing", "{check:#}");
    assert!(check["summary"].as_str().unwrap().contains(&format!("1 of 2 pod(s) fail their tcp probe: {ns}/{stuck}")), "{check:#}");
    let inc = &v["incidents"][0];
    assert_eq!(inc["fingerprint"], format!("db-port:probe-failed:{ns}/{stuck}"), "{v:#}");
    let note = std::fs::read_to_string(ws.memory().join("incidents").join(format!("{}.md", inc["id"].as_str().unwrap()))).unwrap();
    assert!(note.contains(&format!("TCP {addr}:8080 did not answer within 1s")), "a hang is a failure at the timeout: {note}");
    assert_eq!(heals(&v), vec![("scale".to_string(), format!("{ns}/db"), "auto".to_string())], "{v:#}");
    let d: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    assert_eq!(d.get("db").await.unwrap().spec.unwrap().replicas, Some(3));

    // The pod still hangs: the incident stays open and the scale waits out the cooldown.
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(heals(&v), vec![("scale".to_string(), format!("{ns}/db"), "cooldown".to_string())], "{v:#}");
    let scales = audit_lines(&ws, "scale");
    assert_eq!(scales.len(), 1, "scaled once: {scales:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_probe_runs_through_the_api_server_and_only_the_pod_whose_command_fails_is_restarted() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("probe-exec").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("api", 2, "running")).await;
    let pods = pods_are(&c, &ns, "api", 2, "both ready", ready).await;
    let broken = name(&pods[1]);
    annotate(&c, &ns, &broken, kubelet::EXEC, "fail").await;
    let heartbeat =
        format!("checks:\n  - name: api-exec\n    kind: k8s-probe\n    namespace: {ns}\n    selector: app=api\n    exec: {{container: app, command: [cat, /tmp/healthy]}}\n    threshold: 1\n");
    let ws = Ws::new(RESTART_AUTO, &heartbeat);

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let check = &v["checks"][0];
    assert!(check["summary"].as_str().unwrap().starts_with(&format!("1 of 2 pod(s) fail their exec probe: {ns}/{broken}")), "the other pod's command exits 0: {check:#}");
    let inc = &v["incidents"][0];
    let note = std::fs::read_to_string(ws.memory().join("incidents").join(format!("{}.md", inc["id"].as_str().unwrap()))).unwrap();
    // The kubelet saw the command (its output says so) and its exit status came back through the API server.
    assert!(note.contains(&format!("exec in {broken}/app: cat /tmp/healthy: exit code 1: ran cat /tmp/healthy in app command exited with 1")), "{note}");
    assert_eq!(heals(&v), vec![("restart_pod".to_string(), format!("{ns}/{broken}"), "auto".to_string())], "{v:#}");
    assert!(v["kube_requests"].as_u64().unwrap() >= 3, "a list and one exec per pod: {v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_failing_while_their_declared_dependency_is_down_are_one_cascade_incident_and_none_is_restarted() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("probe-cascade").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, probed("web", 3)).await;
    let pods = running_on_loopback(&c, &ns, "web", 3).await;
    // The dependency: a Service whose pods are gone (no endpoints).
    let db: Service = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}})).unwrap();
    Api::<Service>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &db).await.unwrap();
    for p in &pods {
        annotate(&c, &ns, &name(p), kubelet::PROBE, "fail").await;
    }
    for p in &pods {
        let addr = ip(p);
        eventually(Duration::from_secs(20), "the pod answers 500", || async { if http_status(&addr).await == 500 { Ok(()) } else { Err("not yet".to_string()) } }).await;
    }
    let heartbeat = format!(
        "checks:\n  - name: web-health\n    kind: k8s-probe\n    namespace: {ns}\n    selector: app=web\n    http: {{port: 8080, path: /healthz}}\n    threshold: 1\n  - name: db\n    kind: dependency\n    target: {ns}/db\n    dependants: app=web\n    namespace: {ns}\n"
    );
    let ws = Ws::new(RESTART_AUTO, &heartbeat);

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let cascades: Vec<&Value> = v["incidents"].as_array().unwrap().iter().filter(|i| i["fingerprint"] == "web-health:cascade:cascade/db").collect();
    assert_eq!(cascades.len(), 1, "one cascade incident for the three pods: {v:#}");
    assert!(!v["incidents"].as_array().unwrap().iter().any(|i| i["fingerprint"].as_str().unwrap().contains("probe-failed")), "no pod incident of its own: {v:#}");
    assert!(cascades[0]["diagnosis"].to_string().contains(&format!("1 workload(s) that depend on it fail at the same time: `{ns}/deployment/web`")), "{:#}", cascades[0]);
    assert_eq!(heals(&v), Vec::<(String, String, String)>::new(), "no restarts: {v:#}");
    assert!(audit_lines(&ws, "restart_pod").is_empty());
    let after = running_on_loopback(&c, &ns, "web", 3).await;
    assert_eq!(after.iter().map(|p| p.metadata.uid.clone()).collect::<Vec<_>>(), pods.iter().map(|p| p.metadata.uid.clone()).collect::<Vec<_>>(), "no pod was deleted");
}

#[test]
fn k8s_probe_fields_are_validated_with_file_line_and_fix() {
    let head = "checks:\n  - name: p\n    kind: k8s-probe\n    namespace: shop\n    selector: app=web\n";
    let cases: &[(&str, &str, &str)] = &[
        // (the check's lines after its selector, "file:line", message part)
        ("    http: {port: 8080}\n    tcp: {port: 8080}\n", "HEARTBEAT.md:10", "needs exactly one of `http`, `tcp` or `exec` (found http and tcp)"),
        ("    timeout: 2s\n", "HEARTBEAT.md:5", "needs exactly one of `http`, `tcp` or `exec` (found none)"),
        ("    tcp: {port: 80}\n    heal: scale\n", "HEARTBEAT.md:10", "`heal: scale` without `replicas`"),
        ("    tcp: {port: 80}\n    replicas: 4\n", "HEARTBEAT.md:10", "`replicas` is set but `heal` is not `scale`"),
        ("    tcp: {port: 80}\n    heal: reboot\n", "HEARTBEAT.md:10", "unknown heal `reboot`"),
        ("    http: {port: 70000, path: /healthz}\n", "HEARTBEAT.md:9", "`port: 70000` is out of range"),
        ("    http: {port: 80, pth: /healthz}\n", "HEARTBEAT.md:9", "unknown key `pth`"),
        ("    http: {port: 80, path: healthz}\n", "HEARTBEAT.md:9", "http path `healthz` is not an absolute path"),
        ("    exec: {container: app}\n", "HEARTBEAT.md:9", "exec `command` is missing"),
        ("    tcp: {port: 80}\n    threshold: 0\n", "HEARTBEAT.md:10", "`threshold: 0` is out of range"),
    ];
    let mut failures = Vec::new();
    for (rest, place, message) in cases {
        let ws = Ws::new("mode: dry-run\n", &format!("{head}{rest}"));
        let r = ws.run(&["validate"]);
        let found = r.stderr.lines().any(|l| l.contains(place) && l.contains(message));
        if r.code != 2 || !found || !r.stderr.contains("fix: ") {
            failures.push(format!("case {place} {message:?}: exit {} stderr:\n{}", r.code, r.stderr));
        }
    }
    let no_selector = Ws::new("mode: dry-run\n", "checks:\n  - name: p\n    kind: k8s-probe\n    namespace: shop\n    tcp: {port: 80}\n");
    let r = no_selector.run(&["validate"]);
    if !r.stderr.lines().any(|l| l.contains("HEARTBEAT.md:5") && l.contains("needs `selector`")) {
        failures.push(format!("no selector: {}", r.stderr));
    }
    let good = Ws::new("mode: dry-run\n", &format!("{head}    exec: {{container: app, command: [cat, /tmp/healthy]}}\n    heal: scale\n    replicas: 4\n"));
    let r = good.run(&["validate"]);
    if r.code != 0 {
        failures.push(format!("a valid k8s-probe check: exit {}: {}", r.code, r.stderr));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
