//! Documented Kubernetes features against the real control plane (with the
//! simulated kubelet), each asserted as a user sees it: the incident's class
//! and diagnosis in the note, the actions and their targets, the gate's
//! decision, and the API objects afterwards. The classes `pod-config-error`,
//! `pod-startup-failing`, `deployment-unavailable` and `node-pressure`;
//! StatefulSet and bare-pod workloads; `rollout_undo` refused on a paused
//! rollout; a drain refused while a pod without a controller runs on the
//! node; and the paths every server from 1.22 takes (`policy/v1` evictions,
//! `discovery.k8s.io/v1` EndpointSlices), through a loopback proxy that
//! presents the 1.20 control plane as a newer server (see `Newer`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::Ws;
use support::cluster::{
    self, Cluster, DeploymentExt, acted, create, deployment, eventually, incident, nightshift, nightshift_json, nightshift_with, note, pods_are, pods_check, pods_of, ready, wait_for, waiting,
};
use support::kubelet::{self, Kubelet, NodeState};

const LIMIT: Duration = Duration::from_secs(40);

fn uids(pods: &[Pod]) -> Vec<Option<String>> {
    pods.iter().map(|p| p.metadata.uid.clone()).collect()
}

/// Every repair allowed without asking: what the product does not plan, the test sees it not do.
const ALL_AUTO: &str = "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n  - action: rollout_undo\n    decide: auto\n  - action: rollout_restart\n    decide: auto\n  - action: cordon_node\n    decide: auto\n  - action: drain_node\n    decide: auto\n  - action: raise_memory_limit\n    decide: auto\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_key_is_a_config_error_named_in_the_note_and_no_restart_is_tried() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("cfgerr").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"log_level": "info"}})).unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), &ns);
    maps.create(&PostParams::default(), &cm).await.unwrap();
    let mut d = deployment("api", 1, "running");
    d.pod_spec().containers[0].env = serde_json::from_value(json!([{"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "database_url"}}}])).unwrap();
    let deployments = create(&c, &ns, d).await;
    let before = pods_are(&c, &ns, "api", 1, "the container cannot be created", |p| waiting(p, "CreateContainerConfigError")).await;
    let ws = Ws::new(ALL_AUTO, &pods_check(&ns));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let inc = incident(&v, &format!("pods:pod-config-error:{ns}/deployment/api"));
    assert!(inc["title"].as_str().unwrap().contains(&format!("{ns}/api cannot create its container")), "{inc:#}");
    assert!(acted(inc).is_empty(), "a restart cannot create a missing key: nothing is tried: {inc:#}");
    let text = note(&ws, inc);
    assert!(text.contains(&format!("couldn't find key database_url in ConfigMap {ns}/settings")), "the kubelet's reason is the evidence: {text}");
    assert!(text.contains("a referenced Secret, ConfigMap or key is missing or wrong"), "{text}");
    assert_eq!(uids(&pods_of(&c, &ns, "api").await), uids(&before), "the pod was not deleted");
    let d = deployments.get("api").await.unwrap();
    assert_eq!(d.metadata.generation, Some(1), "the Deployment was not changed");

    // The fix is a human's: once the key exists the container starts.
    maps.patch("settings", &PatchParams::default(), &Patch::Merge(json!({"data": {"database_url": "postgres://db/shop"}}))).await.unwrap();
    pods_are(&c, &ns, "api", 1, "the container starts once the key exists", ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_by_its_startup_probe_is_told_apart_from_a_crash_and_restarted() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("startup").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("api", 1, "startup")).await;
    let before = pods_are(&c, &ns, "api", 1, "the container is killed in a loop", |p| waiting(p, "CrashLoopBackOff")).await;
    let ws = Ws::new("mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n", &pods_check(&ns));

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!("pods:pod-startup-failing:{ns}/deployment/api"));
    assert!(inc["title"].as_str().unwrap().contains(&format!("{ns}/api never finishes starting")), "{inc:#}");
    let actions = acted(inc);
    assert_eq!(actions[0]["action"], "restart_pod", "{inc:#}");
    assert_eq!(actions[0]["target"], format!("{ns}/{}", before[0].metadata.name.as_deref().unwrap()));
    assert_eq!(actions[0]["decision"], "auto", "{inc:#}");
    let text = note(&ws, inc);
    assert!(text.contains("Startup probe failed"), "the probe's events are the evidence: {text}");
    pods_are(&c, &ns, "api", 1, "a replacement pod", |p| p.metadata.uid != before[0].metadata.uid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_lost_its_available_replicas_is_unavailable_and_is_not_rolled_back() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("unavail").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let api = create(&c, &ns, deployment("web", 2, "running")).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    // The rollout completed; later both running pods fail readiness (not a new revision).
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let before = pods_of(&c, &ns, "web").await;
    for p in &before {
        pods.patch(p.metadata.name.as_deref().unwrap(), &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "not-ready"}}}))).await.unwrap();
    }
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Available" && c.status == "False"))).await;
    let ws = Ws::new(ALL_AUTO, &format!("checks:\n  - name: rollouts\n    kind: k8s-deployments\n    namespace: {ns}\n    grace: 0s\n"));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let inc = incident(&v, &format!("rollouts:deployment-unavailable:{ns}/deployment/web"));
    assert!(inc["title"].as_str().unwrap().contains(&format!("{ns}/web lacks available replicas")), "{inc:#}");
    assert!(acted(inc).is_empty(), "the rollout is not what failed: no rollback, no restart: {inc:#}");
    let text = note(&ws, inc);
    assert!(text.contains("Deployment does not have minimum availability"), "the controller's condition is the evidence: {text}");
    assert!(text.contains("2 replicas wanted") && text.contains("0 available"), "{text}");
    let d = api.get("web").await.unwrap();
    assert_eq!(d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"], "1", "no rollback");
    assert_eq!(uids(&pods_of(&c, &ns, "web").await), uids(&before), "no pod was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_disk_and_pid_pressure_cordon_the_node_and_drain_nothing() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("pressure").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let states = [
        ("mem", NodeState::MemoryPressure, "MemoryPressure: kubelet has insufficient memory available"),
        ("disk", NodeState::DiskPressure, "DiskPressure: kubelet has disk pressure"),
        ("pid", NodeState::PIDPressure, "PIDPressure: kubelet has insufficient PID available"),
    ];
    for (suffix, _, _) in &states {
        kubelet.add_node(&format!("{ns}-{suffix}"), true).await;
    }
    create(&c, &ns, deployment("db", 3, "running").dedicated(&ns)).await;
    let before = pods_are(&c, &ns, "db", 3, "db runs on the test's nodes", ready).await;
    for (suffix, state, _) in &states {
        kubelet.set_node(&format!("{ns}-{suffix}"), *state).await;
    }
    let ws = Ws::new(ALL_AUTO, &format!("checks:\n  - name: nodes\n    kind: k8s-nodes\n    selector: {}={ns}\n", kubelet::OWNER));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let nodes: Api<Node> = Api::all(c.client.clone());
    for (suffix, _, condition) in &states {
        let name = format!("{ns}-{suffix}");
        let inc = incident(&v, &format!("nodes:node-pressure:node/{name}"));
        assert!(inc["title"].as_str().unwrap().contains(&format!("Node {name} is under resource pressure")), "{inc:#}");
        let actions = acted(inc);
        assert_eq!(actions.len(), 1, "cordoned, never drained for pressure: {inc:#}");
        assert_eq!((actions[0]["action"].as_str(), actions[0]["target"].as_str(), actions[0]["result"].as_str()), (Some("cordon_node"), Some(name.as_str()), Some("ok")), "{inc:#}");
        assert!(note(&ws, inc).contains(condition), "the node's condition is the evidence: {}", note(&ws, inc));
        assert_eq!(nodes.get(&name).await.unwrap().spec.unwrap().unschedulable, Some(true), "{name} is cordoned");
    }
    assert!(!v["incidents"].as_array().unwrap().iter().any(|i| i["fingerprint"].as_str().unwrap().contains("node-not-ready")), "{v:#}");
    assert_eq!(uids(&pods_of(&c, &ns, "db").await), uids(&before), "no pod was evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_pod_is_restarted_through_its_statefulset_and_a_bare_pod_is_not_deleted() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("sts").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}, "annotations": {kubelet::BEHAVIOR: "running"}},
                "spec": {"containers": [{"name": "postgres", "image": "registry.example/postgres:15"}]}}}
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &sts).await.unwrap();
    let before = pods_are(&c, &ns, "db", 2, "both StatefulSet pods are ready", ready).await;
    let solo: Pod = serde_json::from_value(json!({
        "metadata": {"name": "solo", "labels": {"app": "solo"}, "annotations": {kubelet::BEHAVIOR: "crashloop"}},
        "spec": {"containers": [{"name": "job", "image": "registry.example/job:1"}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    pods.create(&PostParams::default(), &solo).await.unwrap();
    // db-1 crashes (its replacement, from the template, runs).
    pods.patch("db-1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "crashloop"}}}))).await.unwrap();
    pods_are(&c, &ns, "db", 2, "db-1 crash-loops", |p| p.metadata.name.as_deref() == Some("db-0") || waiting(p, "CrashLoopBackOff")).await;
    let solo_before = pods_are(&c, &ns, "solo", 1, "the bare pod crash-loops", |p| waiting(p, "CrashLoopBackOff")).await;
    let ws = Ws::new("mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n", &pods_check(&ns));

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!("pods:pod-crashloop:{ns}/statefulset/db"));
    let actions = acted(inc);
    assert_eq!(actions.len(), 1, "{inc:#}");
    assert_eq!((actions[0]["action"].as_str(), actions[0]["target"].as_str()), (Some("restart_pod"), Some(format!("{ns}/db-1").as_str())), "the failing pod, not its healthy sibling: {inc:#}");
    assert_eq!(actions[0]["result"], "ok", "{inc:#}");
    assert!(actions[0]["outcome"].as_str().unwrap().contains(&format!("deleted pod {ns}/db-1; StatefulSet db replaces it")), "{inc:#}");
    let after = pods_are(&c, &ns, "db", 2, "db-1 replaced by the StatefulSet and ready", ready).await;
    assert_eq!(after[0].metadata.uid, before[0].metadata.uid, "db-0 untouched");
    assert_ne!(after[1].metadata.uid, before[1].metadata.uid, "db-1 is a new pod");

    // The bare pod is its own incident; nothing would replace it, so it is not deleted.
    let inc = incident(&v, &format!("pods:pod-crashloop:{ns}/pod/solo"));
    let actions = acted(inc);
    assert_eq!(actions[0]["action"], "restart_pod", "{inc:#}");
    assert!(actions[0]["outcome"].as_str().unwrap().contains(&format!("refused: pod {ns}/solo has no controller, so nothing would replace it")), "{inc:#}");
    assert_ne!(actions[0]["result"], "ok", "{inc:#}");
    assert_eq!(uids(&pods_of(&c, &ns, "solo").await), uids(&solo_before), "the bare pod still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_rollback_is_refused_once_a_human_has_paused_the_rollout() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("paused").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let api = create(&c, &ns, deployment("web", 2, "running").progress_deadline(3)).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {kubelet::BEHAVIOR: "not-ready"}}, "spec": {"containers": [{"name": "app", "image": "registry.example/app:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")))).await;
    let ws =
        Ws::new("mode: execute\nrules:\n  - action: rollout_undo\n    decide: confirm\n", &format!("checks:\n  - name: rollouts\n    kind: k8s-deployments\n    namespace: {ns}\n    grace: 0s\n"));
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!("rollouts:rollout-stuck:{ns}/deployment/web"));
    assert_eq!((inc["actions"][0]["action"].as_str(), inc["actions"][0]["result"].as_str()), (Some("rollout_undo"), Some("pending")), "{inc:#}");

    // While the approval waits, a human pauses the rollout to investigate it.
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"paused": true}}))).await.unwrap();
    let (_, approvals) = nightshift_json(&ws, &c, &["approvals", "--json"]).await;
    let id = approvals.as_array().unwrap().iter().find(|a| a["action"]["action"] == "rollout_undo").unwrap()["id"].as_str().unwrap().to_string();
    let r = nightshift(&ws, &c, &["approve", &id]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = nightshift(&ws, &c, &["heartbeat"]).await;
    let refusal = format!("refused: deployment {ns}/web is paused; resume it before rolling back");
    assert!(r.stdout.contains(&format!("approval {id}: rollout_undo on {ns}/web")) && r.stdout.contains(&refusal), "{}{}", r.stdout, r.stderr);
    assert!(ws.audit_text().contains(&refusal), "{}", ws.audit_text());

    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().paused, Some(true), "still paused");
    assert_eq!(d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"], "2", "not rolled back");
    assert_eq!(d.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("registry.example/app:2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_is_refused_while_a_pod_without_a_controller_runs_on_the_node_and_evicts_nothing() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("bare").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let sick = format!("{ns}-a");
    kubelet.add_node(&sick, true).await;
    create(&c, &ns, deployment("db", 2, "running").dedicated(&ns)).await;
    let mut solo: Pod = serde_json::from_value(json!({
        "metadata": {"name": "solo", "labels": {"app": "solo"}},
        "spec": {"containers": [{"name": "job", "image": "registry.example/job:1"}]}
    }))
    .unwrap();
    kubelet::dedicate(solo.spec.as_mut().unwrap(), &ns);
    Api::<Pod>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &solo).await.unwrap();
    let on_sick = |p: &Pod| ready(p) && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(sick.as_str());
    let db = pods_are(&c, &ns, "db", 2, "db runs on the node", on_sick).await;
    let bare = pods_are(&c, &ns, "solo", 1, "the bare pod runs on the node", on_sick).await;
    kubelet.add_node(&format!("{ns}-b"), true).await;
    kubelet.set_node(&sick, NodeState::NotReady).await;
    let ws = Ws::new(ALL_AUTO, &format!("checks:\n  - name: nodes\n    kind: k8s-nodes\n    selector: {}={ns}\n", kubelet::OWNER));

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!("nodes:node-not-ready:node/{sick}"));
    let actions = acted(inc);
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("cordon_node"), Some("ok")), "{inc:#}");
    assert_eq!(actions[1]["action"], "drain_node", "{inc:#}");
    assert_ne!(actions[1]["result"], "ok", "{inc:#}");
    assert!(actions[1]["outcome"].as_str().unwrap().contains(&format!("refused: pods without a controller would be lost: {ns}/solo")), "{inc:#}");
    assert_eq!(uids(&pods_of(&c, &ns, "solo").await), uids(&bare), "the bare pod is not deleted");
    assert_eq!(uids(&pods_of(&c, &ns, "db").await), uids(&db), "nothing is evicted while the drain is refused");
}

// ---------------------------------------------------------------------------
// The paths of servers from 1.22, by discovery override
// ---------------------------------------------------------------------------

/// A loopback proxy (plain HTTP; nightshift reaches it through a kubeconfig
/// whose `server:` points at it) in front of the real 1.20 apiserver that
/// presents it as a 1.25 server: `/version` says 1.25 and `/apis` lists
/// `policy/v1` and `discovery.k8s.io/v1`. Translated, and only this: an
/// Eviction whose body is `policy/v1` is sent on as `policy/v1beta1` (the
/// real server then checks the PodDisruptionBudgets and answers, 429
/// included), and `discovery.k8s.io/v1` EndpointSlice reads are served from
/// the real `v1beta1` ones (the apiVersion and `topology` →
/// `deprecatedTopology` rewritten). Everything else is forwarded unchanged
/// with the test's admin client. Every request is recorded.
struct Newer {
    kubeconfig: std::path::PathBuf,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Newer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Newer {
    async fn start(c: &Cluster) -> Newer {
        let requests: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        // Its own client without kube's retries: a 429 goes back to nightshift as the server sent it.
        let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.unwrap();
        config.default_retry = false;
        let (client, seen) = (kube::Client::try_from(config).unwrap(), requests.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (client, seen) = (client.clone(), seen.clone());
            async move { newer_answer(client, seen, req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!("apiVersion: v1\nkind: Config\nclusters:\n- name: newer\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: newer\n  context:\n    cluster: newer\n    user: proxy\ncurrent-context: newer\nusers:\n- name: proxy\n  user: {{}}\n"),
        )
        .unwrap();
        Newer { kubeconfig, requests, _dir: dir, task }
    }

    fn seen(&self, method: &str, path_part: &str) -> Vec<(String, String, String)> {
        self.requests.lock().unwrap().iter().filter(|(m, p, _)| m == method && p.contains(path_part)).cloned().collect()
    }
}

async fn newer_answer(client: kube::Client, seen: Arc<Mutex<Vec<(String, String, String)>>>, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default().to_vec();
    let path = parts.uri.path().to_string();
    let path_q = parts.uri.path_and_query().map_or(path.clone(), |p| p.as_str().to_string());
    seen.lock().unwrap().push((parts.method.to_string(), path_q.clone(), String::from_utf8_lossy(&body).to_string()));
    let (mut target, mut fwd_body, mut slices) = (path_q.clone(), body.clone(), false);
    const V1: &str = "/apis/discovery.k8s.io/v1/";
    if path.starts_with(V1) || path == "/apis/discovery.k8s.io/v1" {
        target = path_q.replacen("/apis/discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1beta1", 1);
        slices = true;
    }
    if path == "/apis/policy/v1" {
        target = "/apis/policy/v1beta1".into();
    }
    if parts.method == http::Method::POST && path.ends_with("/eviction") {
        let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if v["apiVersion"] == "policy/v1" {
            v["apiVersion"] = json!("policy/v1beta1");
        }
        fwd_body = serde_json::to_vec(&v).unwrap();
    }
    let mut fwd = http::Request::builder().method(parts.method.clone()).uri(&target);
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
        fwd = fwd.header(http::header::CONTENT_TYPE, ct);
    }
    let resp = match client.send(fwd.body(kube::client::Body::from(fwd_body)).unwrap()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy: {} {target}: {e:?}", parts.method);
            return axum::response::Response::builder().status(502).body(axum::body::Body::from(e.to_string())).unwrap();
        }
    };
    let status = resp.status();
    let mut out = resp.into_body().collect_bytes().await.unwrap().to_vec();
    if status.is_success() {
        let rewrite = |f: &dyn Fn(&mut Value)| -> Vec<u8> {
            let mut v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
            f(&mut v);
            serde_json::to_vec(&v).unwrap()
        };
        if path == "/version" {
            out = rewrite(&|v| {
                v["minor"] = json!("25");
                v["gitVersion"] = json!("v1.25.0");
            });
        } else if path == "/apis" {
            out = rewrite(&|v| {
                for g in v["groups"].as_array_mut().into_iter().flatten() {
                    if let Some(name @ ("policy" | "discovery.k8s.io")) = g["name"].as_str().map(str::to_string).as_deref() {
                        let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
                        g["versions"].as_array_mut().unwrap().insert(0, gv.clone());
                        g["preferredVersion"] = gv;
                    }
                }
            });
        } else if path == "/apis/policy/v1" {
            out = rewrite(&|v| v["groupVersion"] = json!("policy/v1"));
        } else if slices {
            out = rewrite(&|v| {
                if v["apiVersion"] == "discovery.k8s.io/v1beta1" {
                    v["apiVersion"] = json!("discovery.k8s.io/v1");
                }
                if v["groupVersion"] == "discovery.k8s.io/v1beta1" {
                    v["groupVersion"] = json!("discovery.k8s.io/v1");
                }
                let items: Vec<&mut Value> = match v["items"].as_array_mut() {
                    Some(items) => items.iter_mut().collect(),
                    None => vec![],
                };
                for item in items {
                    for e in item["endpoints"].as_array_mut().into_iter().flatten() {
                        if let Some(t) = e.as_object_mut().and_then(|o| o.remove("topology")) {
                            e["deprecatedTopology"] = t;
                        }
                    }
                }
            });
        }
    }
    axum::response::Response::builder().status(status).header(http::header::CONTENT_TYPE, "application/json").body(axum::body::Body::from(out)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_newer_server_a_drain_evicts_through_policy_v1_and_the_real_budget_still_holds() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("pdbv1").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let node = format!("{ns}-a");
    kubelet.add_node(&node, true).await;
    create(&c, &ns, deployment("db", 2, "running").dedicated(&ns)).await;
    create(&c, &ns, deployment("cache", 1, "running").dedicated(&ns)).await;
    pods_are(&c, &ns, "db", 2, "db runs on the node", ready).await;
    let cache = pods_are(&c, &ns, "cache", 1, "cache runs on the node", ready).await;
    // The budget lives in the real server (policy/v1beta1 is what 1.20 stores).
    let gvk = kube::api::GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget");
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    let pdb = kube::api::DynamicObject::new("db", &resource).data(json!({"spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}}));
    let pdbs: Api<kube::api::DynamicObject> = Api::namespaced_with(c.client.clone(), &ns, &resource);
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    eventually(LIMIT, "the budget's status", || async {
        let p = pdbs.get("db").await.map_err(|e| e.to_string())?;
        if p.data["status"]["currentHealthy"] == 2 { Ok(()) } else { Err(p.data["status"].to_string()) }
    })
    .await;

    let newer = Newer::start(&c).await;
    let client = nightshift::k8s::connect_file(&newer.kubeconfig, None).await.unwrap();
    assert_eq!(nightshift::k8s::server_version(&client).await.unwrap(), (1, 25), "the proxy presents a 1.25 server");
    let err = nightshift::actions::kube::drain(&client, &node, Duration::from_secs(5)).await.unwrap_err();
    assert!(err.contains("PodDisruptionBudget still holds back") && err.contains("/db-") && err.contains("evicted 1"), "{err}");

    let evictions = newer.seen("POST", "/eviction");
    assert!(evictions.len() >= 3, "cache once, each db pod at least once: {evictions:#?}");
    for (_, path, body) in &evictions {
        let v: Value = serde_json::from_str(body).unwrap();
        let name = path.trim_end_matches("/eviction").rsplit('/').next().unwrap();
        assert_eq!((v["apiVersion"].as_str(), v["kind"].as_str()), (Some("policy/v1"), Some("Eviction")), "a 1.22+ server gets policy/v1: {body}");
        assert_eq!((v["metadata"]["name"].as_str(), v["metadata"]["namespace"].as_str()), (Some(name), Some(ns.as_str())), "{body}");
        assert!(v["deleteOptions"]["preconditions"]["uid"].is_string(), "the eviction is bound to the pod it read: {body}");
    }
    let cache_path = format!("/api/v1/namespaces/{ns}/pods/{}/eviction", cache[0].metadata.name.as_deref().unwrap());
    assert!(evictions.iter().any(|(_, p, _)| *p == cache_path), "{evictions:#?}");
    assert_eq!(pods_of(&c, &ns, "db").await.len(), 2, "the real server's budget kept both db pods");
    assert!(pods_of(&c, &ns, "db").await.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_newer_server_services_are_judged_from_discovery_v1_endpoint_slices() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("slicev1").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("web", 2, "running")).await;
    create(&c, &ns, deployment("db", 1, "not-ready")).await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), &ns);
    for app in ["web", "db"] {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": app}, "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}})).unwrap();
        services.create(&PostParams::default(), &svc).await.unwrap();
    }
    pods_are(&c, &ns, "web", 2, "web is ready", ready).await;
    pods_are(&c, &ns, "db", 1, "db runs unready", |p| !ready(p) && p.status.as_ref().is_some_and(|s| s.pod_ip.is_some())).await;
    // The real EndpointSlice controller has caught up: web's slice has 2 ready endpoints, db's 1 unready.
    let gvk = kube::api::GroupVersionKind::gvk("discovery.k8s.io", "v1beta1", "EndpointSlice");
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    let slices: Api<kube::api::DynamicObject> = Api::namespaced_with(c.client.clone(), &ns, &resource);
    eventually(LIMIT, "the endpoint slices", || async {
        let list = slices.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let count = |svc: &str, ready: bool| -> usize {
            list.items
                .iter()
                .filter(|s| s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")).map(String::as_str) == Some(svc))
                .flat_map(|s| s.data["endpoints"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["conditions"]["ready"].as_bool() == Some(ready))
                .count()
        };
        if count("web", true) == 2 && count("db", false) == 1 { Ok(()) } else { Err(format!("{:?}", list.items.iter().map(|s| &s.data).collect::<Vec<_>>())) }
    })
    .await;

    let newer = Newer::start(&c).await;
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: services\n    kind: k8s-services\n    namespace: {ns}\n"));
    let r = nightshift_with(&ws, &newer.kubeconfig, &["heartbeat", "--json"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    // Followed to its pods: the one pod its selector matches runs unready.
    let inc = incident(&v, &format!("services:service-pods-unready:{ns}/service/db"));
    assert!(inc["title"].as_str().unwrap().contains("has no ready endpoints: none of its 1 pod(s) is ready"), "{inc:#}");
    assert!(note(&ws, inc).contains("its selector `app=db` matches 1 pod(s), none ready"), "{}", note(&ws, inc));
    assert!(note(&ws, inc).contains("no ready endpoints (1 not ready)"), "the unready endpoint is counted from the slice: {}", note(&ws, inc));
    assert!(!v["incidents"].as_array().unwrap().iter().any(|i| i["fingerprint"].as_str().unwrap().contains("/service/web")), "web's two ready endpoints count: {v:#}");
    assert!(!newer.seen("GET", &format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices")).is_empty(), "read through discovery.k8s.io/v1: {:#?}", newer.requests.lock().unwrap());
    assert!(
        newer.requests.lock().unwrap().iter().all(|(_, p, _)| !(p.starts_with("/api/v1/") && p.contains("endpoints"))),
        "no fallback to core/v1 Endpoints on a server that serves slices: {:#?}",
        newer.requests.lock().unwrap()
    );
}
