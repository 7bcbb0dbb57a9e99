//! nightshift against the real Kubernetes control plane (scripts/test-cluster.sh)
//! with the simulated kubelet: the checks, the diagnosis with events and logs,
//! the repairs through the policy gate, cascades, and the daemon's watch.
//! Every test owns a namespace; the built binary runs as a user would run it,
//! with KUBECONFIG pointing at the test cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::Ws;
use support::cluster::{self, Cluster, DeploymentExt, create, deployment, eventually, nightshift, nightshift_json, pods_are, pods_check, pods_of, ready, wait_for, waiting};
use support::kubelet::{self, Kubelet, NodeState};

const LIMIT: Duration = Duration::from_secs(40);

fn incident<'a>(v: &'a Value, class_part: &str) -> &'a Value {
    v["incidents"].as_array().unwrap().iter().find(|i| i["fingerprint"].as_str().unwrap().contains(class_part)).unwrap_or_else(|| panic!("no incident with {class_part}: {v:#}"))
}

fn note(ws: &Ws, id: &str) -> String {
    std::fs::read_to_string(ws.memory().join("incidents").join(format!("{id}.md"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_looping_pod_is_restarted_and_a_memory_limit_change_proposed() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("oom").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let deployments = create(&c, &ns, deployment("api", 1, "oom").annotate(kubelet::LOG, "starting\njava.lang.OutOfMemoryError: Java heap space")).await;
    let before = pods_are(&c, &ns, "api", 1, "the pod OOM-loops", |p| waiting(p, "CrashLoopBackOff")).await;
    let ws = Ws::new("mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n  - action: raise_memory_limit\n    decide: auto\n", &pods_check(&ns));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let inc = incident(&v, ":pod-oom:");
    assert_eq!(inc["fingerprint"], format!("pods:pod-oom:{ns}/deployment/api"), "one incident per workload, not per pod");
    let actions = inc["actions"].as_array().unwrap();
    assert_eq!(actions[0]["action"], "restart_pod", "{inc:#}");
    assert_eq!(actions[0]["target"], format!("{ns}/{}", before[0].metadata.name.as_deref().unwrap()));
    assert!(actions[0]["outcome"].as_str().unwrap().contains("still failing"), "the replacement OOMs too, and verification says so: {inc:#}");
    assert_eq!(actions[1]["action"], "raise_memory_limit", "{inc:#}");
    assert_eq!(actions[1]["result"], "ok");
    let proposal = actions[1]["outcome"].as_str().unwrap();
    assert!(proposal.contains("memory limit 256Mi → 384Mi") && proposal.contains("request 128Mi → 192Mi"), "{proposal}");
    assert_eq!(inc["status"], "needs-human", "a proposal waits for review: {inc:#}");

    // The pod was replaced; the limit in the cluster is untouched (the change is for review).
    let after = pods_are(&c, &ns, "api", 1, "a replacement pod", |p| p.metadata.uid != before[0].metadata.uid).await;
    assert_ne!(after[0].metadata.uid, before[0].metadata.uid);
    let d = deployments.get("api").await.unwrap();
    let limit = &d.spec.unwrap().template.spec.unwrap().containers[0].resources.clone().unwrap().limits.unwrap()["memory"];
    assert_eq!(limit.0, "256Mi");
    let text = note(&ws, inc["id"].as_str().unwrap());
    assert!(text.contains("OOMKilled") && text.contains("256Mi"), "{text}");
    assert!(text.contains("OutOfMemoryError: Java heap space"), "the previous container's last log lines are evidence: {text}");
    assert!(text.contains("384Mi"), "{text}");

    // The replacement loops too: the next pass does not restart the workload again within the
    // cooldown, though the pod has a new name (restarts count by workload).
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, ":pod-oom:");
    assert_eq!(inc["actions"][0]["action"], "restart_pod");
    assert_eq!(inc["actions"][0]["decision"], "cooldown", "{inc:#}");
    assert_eq!(pods_of(&c, &ns, "api").await[0].metadata.uid, after[0].metadata.uid, "no second restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_loop_with_an_infrastructure_repository_becomes_a_pull_request_linked_from_the_note() {
    let Some(c) = cluster::cluster().await else { return };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let token = "ghp_kubeTestTokenForTheStandIn0123456789";
    let Some(gh) = support::github::GitHub::start(token) else { return };
    let ns = c.namespace("oompr").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("api", 1, "oom")).await;
    pods_are(&c, &ns, "api", 1, "the pod OOM-loops", |p| waiting(p, "CrashLoopBackOff")).await;
    // The manifest the cluster was deployed from, as the team keeps it.
    let manifest = format!(
        "# api, deployed by CI\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: {ns}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example/app:1\n          resources:\n            limits:\n              memory: 256Mi # raised after the 2026-09 incident\n            requests:\n              memory: 128Mi\n"
    );
    let repo = support::infra_repo::InfraRepo::new(&[(&format!("apps/{ns}/api.yaml"), &manifest)]);
    gh.with_git_remote("acme", "infra", &repo.remote());
    let policy = format!(
        "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n  - action: open_pr\n    decide: auto\nrepository:\n  remote: {}\n  repo: acme/infra\n  api_url: {}\n  token_env: NIGHTSHIFT_PR_TOKEN\n  cache: repo-cache\n  manifests: apps/{{namespace}}/{{name}}.yaml\n",
        repo.remote().display(),
        gh.url()
    );
    let ws = Ws::new(&policy, &pods_check(&ns));

    let mut cmd = ws.cmd(&["heartbeat", "--json"]);
    cmd.env("KUBECONFIG", &c.kubeconfig).env("NIGHTSHIFT_PR_TOKEN", token);
    let r = tokio::task::spawn_blocking(move || support::Run::from(cmd.output().unwrap())).await.unwrap();
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    let inc = incident(&v, ":pod-oom:");
    let actions = inc["actions"].as_array().unwrap();
    assert_eq!(actions[0]["action"], "restart_pod", "{inc:#}");
    let pr = actions.iter().find(|a| a["action"] == "open_pr").unwrap_or_else(|| panic!("no open_pr: {inc:#}"));
    assert_eq!((pr["decision"].as_str(), pr["result"].as_str()), (Some("auto"), Some("ok")), "{pr:#}");
    assert_eq!(pr["target"], format!("{ns}/api"));
    assert!(!actions.iter().any(|a| a["action"] == "raise_memory_limit"), "with a repository the proposal is the pull request: {inc:#}");

    let pulls = gh.pulls("acme", "infra");
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let branch = format!("nightshift/{ns}-api-memory");
    assert_eq!(pulls[0].head, branch);
    let changed = support::infra_repo::changed_lines(&repo.diff("main", &branch));
    assert_eq!(
        changed,
        [
            "-              memory: 256Mi # raised after the 2026-09 incident",
            "+              memory: 384Mi # raised after the 2026-09 incident",
            "-              memory: 128Mi",
            "+              memory: 192Mi"
        ]
    );
    assert!(pulls[0].body.contains("OOMKilled"), "the evidence is in the body: {}", pulls[0].body);
    assert!(pulls[0].body.contains("auto (rule for open_pr at AGENTS.md line"), "the decision that allowed it: {}", pulls[0].body);
    // The note links the pull request back, and the audit has the action.
    let text = note(&ws, inc["id"].as_str().unwrap());
    assert!(text.contains(&format!("/acme/infra/pull/{}", pulls[0].number)), "{text}");
    let audit = std::fs::read_dir(ws.memory().join("audit")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect::<String>();
    assert!(audit.contains("open_pr"), "{audit}");
    // The cluster's limit is untouched: the change waits for review.
    let d: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    let d = d.get("api").await.unwrap();
    assert_eq!(d.spec.unwrap().template.spec.unwrap().containers[0].resources.clone().unwrap().limits.unwrap()["memory"].0, "256Mi");
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loops_are_told_apart_by_events_and_logs_and_nothing_runs_in_dry_run() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("crash").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let secret_log = "loading config\nconnecting to postgres://app:Sup3rS3cretPw@db:5432/app\npanic: config key `queue.url` missing";
    create(&c, &ns, deployment("worker", 1, "crashloop").annotate(kubelet::EXIT_CODE, "2").annotate(kubelet::LOG, secret_log)).await;
    create(&c, &ns, deployment("probe", 1, "liveness")).await;
    create(&c, &ns, deployment("pull", 1, "imagepull")).await;
    let mut picky = deployment("picky", 1, "running");
    picky.pod_spec().node_selector = Some([("disktype".to_string(), "nvme".to_string())].into());
    create(&c, &ns, picky).await;
    pods_are(&c, &ns, "worker", 1, "crashloop", |p| waiting(p, "CrashLoopBackOff")).await;
    pods_are(&c, &ns, "probe", 1, "liveness kills", |p| waiting(p, "CrashLoopBackOff")).await;
    pods_are(&c, &ns, "pull", 1, "image pull fails", |p| waiting(p, "ImagePullBackOff")).await;
    pods_are(&c, &ns, "picky", 1, "unschedulable", |p| p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.reason.as_deref() == Some("Unschedulable")))).await;
    // The kubelet reports the liveness kill as an event; the diagnosis reads it.
    eventually(LIMIT, "the liveness probe's Unhealthy event", || async {
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client.clone(), &ns);
        let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        if list.items.iter().any(|e| e.message.as_deref().is_some_and(|m| m.contains("Liveness probe failed"))) { Ok(()) } else { Err(format!("{} events", list.items.len())) }
    })
    .await;
    let uids: Vec<_> = pods_of(&c, &ns, "worker").await.into_iter().map(|p| p.metadata.uid).collect();
    let ws = Ws::new("rules:\n  - action: restart_pod\n    decide: auto\n", &pods_check(&ns));

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let worker = incident(&v, &format!("{ns}/deployment/worker"));
    assert!(worker["fingerprint"].as_str().unwrap().contains(":pod-crashloop:"), "{worker:#}");
    assert_eq!(worker["actions"][0]["result"], "dry-run", "dry-run is the default: {worker:#}");
    let probe = incident(&v, &format!("{ns}/deployment/probe"));
    assert!(probe["fingerprint"].as_str().unwrap().contains(":pod-liveness-failing:"), "a liveness kill is not an application exit: {probe:#}");
    let pull = incident(&v, &format!("{ns}/deployment/pull"));
    assert!(pull["fingerprint"].as_str().unwrap().contains(":pod-image-pull:"), "{pull:#}");
    assert_eq!(pull["actions"][0]["action"], "rollout_undo");
    assert!(pull["actions"][0]["outcome"].as_str().unwrap().contains("no revision before 1"), "the first revision has nothing to go back to: {pull:#}");
    let picky = incident(&v, &format!("{ns}/deployment/picky"));
    assert!(picky["fingerprint"].as_str().unwrap().contains(":pod-unschedulable:"), "{picky:#}");
    assert!(picky["diagnosis"].to_string().contains("node(s) didn't match"), "the scheduler's reason is the evidence: {picky:#}");

    let text = note(&ws, worker["id"].as_str().unwrap());
    assert!(text.contains("panic: config key `queue.url` missing"), "{text}");
    assert!(text.contains("code 2"), "the exit code: {text}");
    assert!(text.contains("BackOff"), "the kubelet's events: {text}");
    assert!(!text.contains("Sup3rS3cretPw"), "secrets in logs are redacted before memory: {text}");
    let memory_text = std::process::Command::new("git").arg("-C").arg(ws.memory()).args(["grep", "-c", "Sup3rS3cretPw"]).output().unwrap();
    assert!(memory_text.stdout.is_empty(), "no secret anywhere in the memory");
    let still: Vec<_> = pods_of(&c, &ns, "worker").await.into_iter().map(|p| p.metadata.uid).collect();
    assert_eq!(still, uids, "dry-run deleted nothing");
}

/// Revision 2 of `web`: a new image whose pods never become ready, until the
/// rollout exceeds its progress deadline.
async fn a_deploy_that_never_becomes_ready(api: &Api<Deployment>) {
    let patch = json!({"spec": {"template": {
        "metadata": {"annotations": {kubelet::BEHAVIOR: "not-ready"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    wait_for(api, "web", LIMIT, |d| d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_is_rolled_back_after_its_abort_window() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("rollout").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let api = create(&c, &ns, deployment("web", 2, "running").progress_deadline(3)).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    a_deploy_that_never_becomes_ready(&api).await;
    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: rollout_undo\n    decide: abort-window\n    abort_window: 2s\n",
        &format!("checks:\n  - name: rollouts\n    kind: k8s-deployments\n    namespace: {ns}\n    grace: 0s\n"),
    );
    let r = nightshift(&ws, &c, &["heartbeat"]).await;
    assert!(r.stdout.contains(&format!("roll deployment {ns}/web back to its previous revision in 2s, abort with: nightshift abort")), "{}\n{}", r.stdout, r.stderr);

    let d = wait_for(&api, "web", LIMIT, |d| d.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).map(String::as_str) == Some("3")).await;
    let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("registry.example/app:1"), "the template is revision 1's again");
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2) && s.updated_replicas == Some(2))).await;
    let audit = ws.audit_text();
    assert!(audit.contains("rollout_undo") && audit.contains("- decision: abort-window") && audit.contains("- result: ok"), "{audit}");
    assert!(audit.contains("from revision 2 (registry.example/app:2) to revision 1 (registry.example/app:1)"), "{audit}");
}

/// Node `<ns>-a` runs both replicas of `db`, node `<ns>-b` is healthy and
/// empty, and `<ns>-a` stops reporting: (the kubelet, the sick node, the healthy one).
async fn a_node_goes_not_ready_under_db(c: &Cluster, ns: &str) -> (Kubelet, String, String) {
    let kubelet = Kubelet::start(c.client.clone(), ns).await;
    let sick = format!("{ns}-a");
    kubelet.add_node(&sick, true).await;
    create(c, ns, deployment("db", 2, "running").dedicated(ns)).await;
    pods_are(c, ns, "db", 2, "both replicas run on the node", |p| ready(p) && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(sick.as_str())).await;
    let healthy = format!("{ns}-b");
    kubelet.add_node(&healthy, true).await;
    kubelet.set_node(&sick, NodeState::NotReady).await;
    (kubelet, sick, healthy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_ready_node_is_cordoned_then_drained_after_confirmation() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("drain").await;
    let (_kubelet, sick, healthy) = a_node_goes_not_ready_under_db(&c, &ns).await;

    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: cordon_node\n    decide: auto\n  - action: drain_node\n    decide: confirm\n",
        &format!("checks:\n  - name: nodes\n    kind: k8s-nodes\n    selector: sim.nightshift.test/owner={ns}\n"),
    );
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!(":node-not-ready:node/{sick}"));
    assert_eq!(inc["actions"][0]["action"], "cordon_node");
    assert_eq!(inc["actions"][0]["result"], "ok", "{inc:#}");
    assert_eq!(inc["actions"][1]["action"], "drain_node");
    assert_eq!(inc["actions"][1]["result"], "pending", "a drain waits for a human: {inc:#}");
    let nodes: Api<Node> = Api::all(c.client.clone());
    assert_eq!(nodes.get(&sick).await.unwrap().spec.unwrap().unschedulable, Some(true));
    assert_eq!(pods_of(&c, &ns, "db").await.len(), 2, "nothing evicted before the approval");

    let (_, approvals) = nightshift_json(&ws, &c, &["approvals", "--json"]).await;
    let id = approvals.as_array().unwrap().iter().find(|a| a["action"]["action"] == "drain_node").unwrap()["id"].as_str().unwrap().to_string();
    let r = nightshift(&ws, &c, &["approve", &id]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = nightshift(&ws, &c, &["heartbeat"]).await;
    assert!(r.stdout.contains(&format!("approval {id}: drain_node on {sick} → ok")), "the approved drain was carried out: {}{}", r.stdout, r.stderr);

    let moved = pods_are(&c, &ns, "db", 2, "both replicas moved to the healthy node", |p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(healthy.as_str())).await;
    assert_eq!(moved.len(), 2);
    let audit = ws.audit_text();
    assert!(audit.contains("drain_node") && audit.contains("- approved by: "), "{audit}");
    assert!(audit.contains("evicted 2 pod(s) (policy/v1beta1)"), "evictions through the API this server serves: {audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_that_stays_not_ready_is_replaced_through_the_webhook_only_after_the_drain() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("replace").await;
    let (_kubelet, sick, healthy) = a_node_goes_not_ready_under_db(&c, &ns).await;
    // The receiver stands for the n8n workflow that holds the cloud's credentials.
    let hook = support::HttpServer::start(200, "");
    let ws = Ws::new(
        &format!(
            "mode: execute\nrules:\n  - action: cordon_node\n    decide: auto\n  - action: drain_node\n    decide: auto\n  - action: replace_node\n    decide: auto\nwebhooks:\n  - name: node-pool\n    url: {}\n    severities: []\nreplace_node:\n  webhook: node-pool\n  after: 0s\n",
            hook.url("/replace")
        ),
        &format!("checks:\n  - name: nodes\n    kind: k8s-nodes\n    selector: sim.nightshift.test/owner={ns}\n    cooldown: 0s\n"),
    );
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!(":node-not-ready:node/{sick}"));
    let done: Vec<&str> = inc["actions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).filter(|a| *a != "notify").collect();
    assert_eq!(done, ["cordon_node", "drain_node"], "{inc:#}");
    assert_eq!(hook.hits.load(std::sync::atomic::Ordering::Relaxed), 0, "no replacement before the drain is confirmed");
    pods_are(&c, &ns, "db", 2, "both replicas moved to the healthy node", |p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(healthy.as_str())).await;

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, &format!(":node-not-ready:node/{sick}"));
    assert_eq!(inc["actions"][0]["action"], "replace_node", "{inc:#}");
    assert_eq!(inc["actions"][0]["result"], "ok", "{inc:#}");
    let requests = hook.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: serde_json::Value = serde_json::from_str(requests[0].split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(requests[0].starts_with("POST /replace"), "{}", requests[0]);
    assert_eq!((body["action"].as_str(), body["node"].as_str()), (Some("replace_node"), Some(sick.as_str())), "{body:#}");
    assert!(body["incident"].as_str().is_some_and(|i| i.contains("node-not-ready")) && body["idempotency_key"].is_string(), "{body:#}");
    let nodes: Api<Node> = Api::all(c.client.clone());
    assert!(nodes.get(&sick).await.is_ok(), "nightshift itself deletes nothing: the node pool replaces the node");
    nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(hook.hits.load(std::sync::atomic::Ordering::Relaxed), 1, "a replacement is asked for once, even without a cooldown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_honours_pod_disruption_budgets() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("pdb").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let node = format!("{ns}-a");
    kubelet.add_node(&node, true).await;
    create(&c, &ns, deployment("db", 2, "running").dedicated(&ns)).await;
    create(&c, &ns, deployment("cache", 1, "running").dedicated(&ns)).await;
    pods_are(&c, &ns, "db", 2, "db runs on the node", ready).await;
    pods_are(&c, &ns, "cache", 1, "cache runs on the node", ready).await;
    // No disruption allowed for db (policy/v1beta1: what a 1.20 server serves).
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

    let client = nightshift::k8s::connect_file(&c.kubeconfig, None).await.unwrap();
    let preview = nightshift::actions::kube::preview_drain(&client, &node).await;
    assert!(preview.contains("evict 3 pod(s)"), "{preview}");
    let err = nightshift::actions::kube::drain(&client, &node, Duration::from_secs(5)).await.unwrap_err();
    assert!(err.contains("cordoned node") && err.contains("PodDisruptionBudget still holds back") && err.contains("/db-"), "{err}");
    assert!(err.contains("evicted 1"), "what the budget allows (cache) is evicted: {err}");
    assert_eq!(pods_of(&c, &ns, "db").await.len(), 2, "the budget kept both db pods");
    assert!(pods_of(&c, &ns, "db").await.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())));
    let nodes: Api<Node> = Api::all(c.client.clone());
    assert_eq!(nodes.get(&node).await.unwrap().spec.unwrap().unschedulable, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_names_the_shared_dependency_and_restarts_no_dependant() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("cascade").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("db", 1, "not-ready")).await;
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}})).unwrap();
    Api::<Service>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &svc).await.unwrap();
    for app in ["checkout", "cart", "search"] {
        let mut d = deployment(app, 2, "not-ready");
        d.spec.as_mut().unwrap().template.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert("tier".into(), "front".into());
        create(&c, &ns, d).await;
    }
    for app in ["checkout", "cart", "search"] {
        pods_are(&c, &ns, app, 2, "dependants fail readiness", |p| p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Running")) && !ready(p)).await;
    }
    let uids: Vec<_> = pods_of(&c, &ns, "checkout").await.into_iter().map(|p| p.metadata.uid).collect();
    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n",
        &format!("{}  - name: db\n    kind: dependency\n    target: {ns}/db\n    dependants: tier=front\n    namespace: {ns}\n", pods_check(&ns)),
    );
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let cascade = incident(&v, ":cascade:");
    assert_eq!(cascade["fingerprint"], "pods:cascade:cascade/db");
    assert!(cascade["title"].as_str().unwrap().contains(&format!("{ns}/service/db")), "the incident names the dependency: {cascade:#}");
    let text = cascade["diagnosis"].to_string();
    for app in ["checkout", "cart", "search"] {
        assert!(text.contains(&format!("{ns}/deployment/{app}")), "{text}");
    }
    assert!(cascade["actions"].as_array().unwrap().is_empty(), "no dependant is restarted: {cascade:#}");
    let all = v["incidents"].as_array().unwrap();
    assert!(!all.iter().any(|i| i["fingerprint"].as_str().unwrap().contains("/deployment/checkout")), "no separate incidents for the dependants: {v:#}");
    assert!(all.iter().any(|i| i["fingerprint"] == format!("db:dependency-down:{ns}/service/db")), "the dependency has its own incident: {v:#}");
    assert!(all.iter().flat_map(|i| i["actions"].as_array().unwrap()).all(|a| a["action"] != "restart_pod" || a["target"].as_str().unwrap().contains("/db-")), "{v:#}");
    let still: Vec<_> = pods_of(&c, &ns, "checkout").await.into_iter().map(|p| p.metadata.uid).collect();
    assert_eq!(still, uids);
}

/// `nightshift serve` on the test cluster, once its first pass has run.
async fn serve_after_first_pass(ws: &Ws, c: &Cluster) -> support::Serve {
    let kubeconfig = c.kubeconfig.display().to_string();
    let serve = tokio::task::block_in_place(|| support::Serve::start(ws, &[], &[("KUBECONFIG", &kubeconfig)]));
    eventually(LIMIT, "the first pass", || async { if ws.memory().join("state/state.json").exists() { Ok(()) } else { Err("no state yet".into()) } }).await;
    serve
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_opens_an_incident_from_the_watch_without_waiting_for_the_heartbeat() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("watch").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("api", 1, "running")).await;
    let pods = pods_are(&c, &ns, "api", 1, "running", ready).await;
    // The check is due once an hour: only the watch can bring it forward.
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: pods\n    kind: k8s-pods\n    namespace: {ns}\n    every: 1h\n    ready_grace: 0s\n"));
    let serve = serve_after_first_pass(&ws, &c).await;
    assert!(ws.incident_files().is_empty());

    let pod = pods[0].metadata.name.clone().unwrap();
    let patch = json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "crashloop"}}});
    Api::<Pod>::namespaced(c.client.clone(), &ns).patch(&pod, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let file = eventually(Duration::from_secs(15), "an incident opened by the watch", || async { ws.incident_files().into_iter().next().ok_or_else(|| "none yet".to_string()) }).await;
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("CrashLoopBackOff") && text.contains(&format!("{ns}/deployment/api")), "{text}");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argo_cd_degraded_notification_runs_the_kubernetes_checks_at_once_and_the_failed_deploy_is_rolled_back() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("argo").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let api = create(&c, &ns, deployment("web", 2, "running").progress_deadline(3)).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    // The check names its context, so the watch does not bring it forward, and it is due once an hour:
    // only the Argo CD notification can make it run now.
    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: rollout_undo\n    decide: abort-window\n    abort_window: 1s\n",
        &format!("checks:\n  - name: rollouts\n    kind: k8s-deployments\n    namespace: {ns}\n    context: nightshift-test\n    every: 1h\n    grace: 0s\n"),
    );
    let serve = serve_after_first_pass(&ws, &c).await;

    // The failed deploy.
    a_deploy_that_never_becomes_ready(&api).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ws.incident_files().is_empty(), "nothing ran the check before the notification");

    let body = format!(r#"{{"app":"web","namespace":"{ns}","project":"default","trigger":"on-health-degraded","health":"Degraded","sync":"Synced","revision":"2"}}"#);
    let (code, answer) = tokio::task::block_in_place(|| serve.request("POST", "/webhook/argocd", &[], body.as_bytes()));
    assert_eq!((code, answer.as_str()), (200, r#"{"accepted":1}"#));
    let d = wait_for(&api, "web", LIMIT, |d| d.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).map(String::as_str) == Some("3")).await;
    assert_eq!(d.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("registry.example/app:1"), "rolled back to revision 1's template");
    let notes: Vec<String> = ws.incident_files().iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    assert!(notes.iter().any(|n| n.contains("Argo CD application web")), "the notification's own incident");
    assert!(notes.iter().any(|n| n.contains("rollout_undo") && n.contains(&format!("{ns}/web"))), "the stuck rollout's incident: {notes:#?}");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_refuses_under_an_autoscaler_and_rollout_restart_rolls_every_pod() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("scale").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let api = create(&c, &ns, deployment("web", 2, "running")).await;
    create(&c, &ns, deployment("queue", 1, "running")).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "queue"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "queue"}, "minReplicas": 1, "maxReplicas": 5}});
    let hpa: k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler = serde_json::from_value(hpa).unwrap();
    Api::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &hpa).await.unwrap();

    let client = nightshift::k8s::connect_file(&c.kubeconfig, None).await.unwrap();
    let refused = nightshift::actions::kube::scale(&client, &ns, "queue", 3, LIMIT).await.unwrap_err();
    assert!(refused.contains("HorizontalPodAutoscaler") && refused.contains("owns the replicas"), "{refused}");
    let done = nightshift::actions::kube::scale(&client, &ns, "web", 3, LIMIT).await.unwrap();
    assert_eq!(done, format!("scaled {ns}/web from 2 to 3 replicas; 3/3 ready"), "it returns once the replicas are ready");
    assert_eq!(api.get("web").await.unwrap().status.unwrap().ready_replicas, Some(3));

    let before: Vec<_> = pods_of(&c, &ns, "web").await.into_iter().map(|p| p.metadata.uid).collect();
    nightshift::actions::kube::rollout_restart(&client, &ns, "web").await.unwrap();
    pods_are(&c, &ns, "web", 3, "every pod replaced and ready", |p| ready(p) && !before.contains(&p.metadata.uid)).await;
    let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}})).unwrap();
    Api::<Pod>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &bare).await.unwrap();
    let refused = nightshift::actions::kube::restart_pod(&client, &ns, "bare").await.unwrap_err();
    assert!(refused.contains("has no controller"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_missing_cluster_is_a_check_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: gone\n  context: {cluster: gone, user: u}\ncurrent-context: gone\n",
    )
    .unwrap();
    let ws = Ws::new("mode: dry-run\n", "checks:\n  - name: pods\n    kind: k8s-pods\n  - name: other\n    kind: k8s-nodes\n    context: no-such-context\n");
    let out = ws.cmd(&["check", "--json"]).env("KUBECONFIG", &kubeconfig).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let checks = &v["checks"];
    assert_eq!(checks[0]["status"], "error", "{v:#}");
    assert!(checks[0]["summary"].as_str().unwrap().contains("cannot reach the cluster"), "{v:#}");
    assert_eq!(checks[1]["status"], "error");
    assert!(checks[1]["summary"].as_str().unwrap().contains("no-such-context"), "{v:#}");

    let home = tempfile::tempdir().unwrap();
    let out = ws.cmd(&["heartbeat", "--json"]).env("KUBECONFIG", dir.path().join("missing")).env("HOME", home.path()).env_remove("KUBERNETES_SERVICE_HOST").output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let inc = &v["incidents"][0];
    assert!(inc["fingerprint"].as_str().unwrap().starts_with("pods:check-error:"), "an incident about the check, not the pods: {v:#}");
    assert!(v["checks"][0]["summary"].as_str().unwrap().contains("Kubernetes"), "{v:#}");
}

/// The YAML documents of a manifest file, as JSON values.
fn manifest(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    text.split("\n---\n").map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{path}: {e}"))).filter(|v| !v.is_null()).collect()
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>, what: &str) {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what} should be forbidden to nightshift's account: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_role_grants_what_the_actions_need_and_nothing_more() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("rbac").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let node = format!("{ns}-a");
    kubelet.add_node(&node, true).await;

    // deploy/kubernetes/rbac.yaml's role, bound to an account in this namespace.
    let docs = manifest("deploy/kubernetes/rbac.yaml");
    let mut role: ClusterRole = serde_json::from_value(docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap().clone()).unwrap();
    role.metadata.name = Some(format!("nightshift-{ns}"));
    Api::<ClusterRole>::all(c.client.clone()).create(&PostParams::default(), &role).await.unwrap();
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "nightshift"}})).unwrap();
    Api::<ServiceAccount>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &sa).await.unwrap();
    let mut binding: ClusterRoleBinding = serde_json::from_value(docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").unwrap().clone()).unwrap();
    binding.metadata.name = Some(format!("nightshift-{ns}"));
    binding.role_ref.name = format!("nightshift-{ns}");
    binding.subjects.as_mut().unwrap()[0].namespace = Some(ns.clone());
    Api::<ClusterRoleBinding>::all(c.client.clone()).create(&PostParams::default(), &binding).await.unwrap();
    let token = eventually(LIMIT, "the account's token", || async {
        let sa = Api::<ServiceAccount>::namespaced(c.client.clone(), &ns).get("nightshift").await.map_err(|e| e.to_string())?;
        let name = sa.secrets.and_then(|s| s.first().and_then(|r| r.name.clone())).ok_or("no token secret yet")?;
        let secret = Api::<Secret>::namespaced(c.client.clone(), &ns).get(&name).await.map_err(|e| e.to_string())?;
        let token = secret.data.and_then(|d| d.get("token").cloned()).ok_or("no token yet")?;
        Ok(String::from_utf8(token.0).unwrap())
    })
    .await;
    let mut kubeconfig = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
    kubeconfig.auth_infos[0].auth_info.as_mut().unwrap().token = Some(token.into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_json::to_string(&kubeconfig).unwrap()).unwrap();
    let sa = nightshift::k8s::connect_file(&path, None).await.unwrap();

    // Workloads to act on: two revisions of web (rollout_undo needs history), on the test's node.
    let api = create(&c, &ns, deployment("web", 2, "running").dedicated(&ns).annotate(kubelet::LOG, "listening on :8080")).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2) && s.updated_replicas == Some(2) && s.replicas == Some(2))).await;
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    Api::<Service>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &svc).await.unwrap();

    // Every check, as the account, evaluates (none is an error).
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "checks:\n  - {{name: pods, kind: k8s-pods, namespace: {ns}}}\n  - {{name: rollouts, kind: k8s-deployments, namespace: {ns}}}\n  - {{name: nodes, kind: k8s-nodes}}\n  - {{name: services, kind: k8s-services, namespace: {ns}}}\n  - {{name: web, kind: dependency, target: {ns}/web, dependants: app=front}}\n"
        ),
    );
    let out = ws.cmd(&["check", "--json"]).env("KUBECONFIG", &path).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for check in v["checks"].as_array().unwrap() {
        assert_ne!(check["status"], "error", "{check:#}");
    }
    // Diagnosis evidence and the watch.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(sa.clone(), &ns);
    events.list(&ListParams::default()).await.unwrap();
    let pod = pods_of(&c, &ns, "web").await[0].metadata.name.clone().unwrap();
    let logs = Api::<Pod>::namespaced(sa.clone(), &ns).logs(&pod, &Default::default()).await.unwrap();
    assert!(logs.contains("listening on :8080"), "{logs}");
    let cache = nightshift::checks::kube::watch::start(sa.clone(), std::sync::Arc::new(tokio::sync::Notify::new()));
    eventually(LIMIT, "the watch cache lists and watches as the account", || async { if cache.is_live() { Ok(()) } else { Err("not live".into()) } }).await;

    // Every repair, as the account.
    use nightshift::actions::kube as kube_actions;
    let scaled = kube_actions::scale(&sa, &ns, "web", 3, LIMIT).await.unwrap();
    assert!(scaled.ends_with("3/3 ready"), "a scale waits for its replicas: {scaled}");
    let switched = kube_actions::switch_service(&sa, &ns, "web", "web", LIMIT).await.unwrap();
    assert!(switched.contains("its endpoints are 3 ready pod(s) of web"), "{switched}");
    let undone = kube_actions::rollout_undo(&sa, &ns, "web").await.unwrap();
    assert!(undone.ends_with("to revision 1 (registry.example/app:1)"), "{undone}");
    kube_actions::rollout_restart(&sa, &ns, "web").await.unwrap();
    kube_actions::memory_proposal(&sa, &ns, "Deployment", "web", "app", "256Mi", "384Mi").await.unwrap();
    kube_actions::recovery_is_undo(&sa, &ns, "web").await.unwrap();
    let pod = pods_of(&c, &ns, "web").await[0].metadata.name.clone().unwrap();
    kube_actions::restart_pod(&sa, &ns, &pod).await.unwrap();
    kube_actions::cordon(&sa, &node).await.unwrap();
    let drained = kube_actions::drain(&sa, &node, Duration::from_secs(60)).await.unwrap();
    assert!(drained.contains("evicted"), "{drained}");

    // And nothing more.
    forbidden(Api::<Secret>::namespaced(sa.clone(), &ns).list(&ListParams::default()).await, "listing secrets");
    forbidden(Api::<ConfigMap>::namespaced(sa.clone(), &ns).list(&ListParams::default()).await, "listing configmaps");
    forbidden(Api::<Deployment>::namespaced(sa.clone(), &ns).delete("web", &Default::default()).await, "deleting a deployment");
    forbidden(Api::<Deployment>::namespaced(sa.clone(), &ns).create(&PostParams::default(), &deployment("extra", 1, "running")).await, "creating a deployment");
    let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "image": "b"}]}})).unwrap();
    forbidden(Api::<Pod>::namespaced(sa.clone(), &ns).create(&PostParams::default(), &bare).await, "creating a pod");
    forbidden(Api::<Service>::namespaced(sa.clone(), &ns).delete("web", &Default::default()).await, "deleting a service");
    forbidden(Api::<Node>::all(sa.clone()).delete(&node, &Default::default()).await, "deleting a node");
    forbidden(Api::<k8s_openapi::api::core::v1::Namespace>::all(sa.clone()).list(&ListParams::default()).await, "listing namespaces");
    forbidden(Api::<ClusterRole>::all(sa.clone()).list(&ListParams::default()).await, "reading RBAC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_manifests_are_accepted_by_the_api_server_and_their_workspace_validates() {
    let Some(c) = cluster::cluster().await else { return };
    let docs = manifest("deploy/kubernetes/nightshift.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"]);
    // serve listens beyond loopback there, so the intake token comes from the Secret, not optionally.
    let env = &docs[3]["spec"]["template"]["spec"]["containers"][0]["env"];
    let token = env.as_array().unwrap().iter().find(|e| e["name"] == "NIGHTSHIFT_INTAKE_TOKEN").unwrap();
    assert_eq!(token["valueFrom"]["secretKeyRef"], json!({"name": "nightshift", "key": "intake-token"}));
    // Only the named peers reach the daemon's port.
    let policy = &docs[5]["spec"];
    assert_eq!(policy["podSelector"]["matchLabels"], docs[3]["spec"]["selector"]["matchLabels"]);
    let peers: Vec<&Value> = policy["ingress"][0]["from"].as_array().unwrap().iter().map(|p| &p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]).collect();
    assert_eq!(peers, ["monitoring", "argocd", "ingress-nginx"]);
    // The workspace in the ConfigMap validates.
    let cm = &docs[1]["data"];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("AGENTS.md"), cm["AGENTS.md"].as_str().unwrap()).unwrap();
    std::fs::write(dir.path().join("HEARTBEAT.md"), cm["HEARTBEAT.md"].as_str().unwrap()).unwrap();
    let out = std::process::Command::new(support::bin()).arg("--workspace").arg(dir.path()).arg("validate").output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The API server accepts every object (a server-side dry run, in a fresh namespace).
    let ns = c.namespace("deploy").await;
    let dry = PostParams { dry_run: true, ..Default::default() };
    for doc in docs.iter().chain(manifest("deploy/kubernetes/rbac.yaml").iter()) {
        let mut doc = doc.clone();
        if doc["metadata"]["namespace"].is_string() {
            doc["metadata"]["namespace"] = json!(ns);
        }
        let gvk = kube::api::GroupVersionKind::try_from(&serde_json::from_value::<kube::api::TypeMeta>(doc.clone()).unwrap()).unwrap();
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let obj: kube::api::DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let api: Api<kube::api::DynamicObject> = match doc["kind"].as_str().unwrap() {
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" => Api::all_with(c.client.clone(), &resource),
            _ => Api::namespaced_with(c.client.clone(), &ns, &resource),
        };
        api.create(&dry, &obj).await.unwrap_or_else(|e| panic!("{} rejected: {e}", doc["kind"]));
    }
}

/// Waits until Prometheus answers `query` with `value`.
async fn prometheus_says(url: &str, query: &str, value: &str) {
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(60), &format!("Prometheus reports {query} = {value}"), || async {
        let v: Value = client.get(format!("{url}/api/v1/query")).query(&[("query", query)]).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if v["data"]["result"][0]["value"][1] == value { Ok(()) } else { Err(v.to_string()) }
    })
    .await
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_doubles_replicas_up_to_max_halves_them_after_a_sustained_light_load_and_leaves_an_autoscaled_deployment_alone() {
    let Some(c) = cluster::cluster().await else { return };
    let exporter = support::HttpServer::start(200, "shop_load 0.9\n");
    let Some(prom) = support::Prometheus::start(&exporter.addr) else {
        support::skip("prometheus", "prometheus is not installed (.ci/run installs Debian's prometheus)");
        return;
    };
    let ns = c.namespace("scaling").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let api = create(&c, &ns, deployment("web", 2, "running")).await;
    wait_for(&api, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas == Some(2))).await;
    prometheus_says(&prom.url, "shop_load", "0.9").await;
    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: scale\n    decide: auto\n",
        &format!(
            "checks:\n  - name: web-load\n    kind: k8s-scaling\n    namespace: {ns}\n    deployment: web\n    min: 1\n    max: 3\n    prometheus: {}\n    query: shop_load\n    above: 0.8\n    below: 0.2\n    scale_down_after: 4s\n    cooldown: 0s\n",
            prom.url
        ),
    );

    // Under load: doubled, capped at max (2 → 3), and the scale counts once its replicas are ready.
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, "web-load:under-load:");
    assert_eq!(inc["actions"][0]["action"], "scale", "{inc:#}");
    assert_eq!(inc["actions"][0]["result"], "ok", "{inc:#}");
    assert!(inc["actions"][0]["outcome"].as_str().unwrap().contains("from 2 to 3 replicas; 3/3 ready"), "{inc:#}");
    assert_eq!(inc["status"], "open", "the incident stays open until the load eases: {inc:#}");
    assert_eq!(replicas(&api.get("web").await.unwrap()), 3);

    // Still under load at the maximum: no further scale; a human adds capacity.
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, "web-load:under-load:");
    assert!(inc["actions"].as_array().unwrap().iter().all(|a| a["action"] != "scale"), "{inc:#}");
    assert_eq!(inc["status"], "needs-human", "{inc:#}");
    assert_eq!(replicas(&api.get("web").await.unwrap()), 3);

    // The load eases: the incident resolves, and a light load waits out its window before halving.
    *exporter.body.lock().unwrap() = "shop_load 0.1\n".into();
    prometheus_says(&prom.url, "shop_load", "0.1").await;
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert!(v["incidents"].as_array().unwrap().is_empty(), "{v:#}");
    let check = &v["checks"][0];
    assert!(check["summary"].as_str().unwrap().contains("before scaling down"), "{check:#}");
    assert_eq!(replicas(&api.get("web").await.unwrap()), 3, "no scale-down before the window");
    let under_load = std::fs::read_to_string(ws.incident_files().into_iter().find(|p| p.to_string_lossy().contains("under-load")).unwrap()).unwrap();
    assert!(under_load.contains("resolved"), "{under_load}");

    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, "web-load:over-provisioned:");
    assert_eq!(inc["actions"][0]["action"], "scale", "{inc:#}");
    assert!(inc["actions"][0]["outcome"].as_str().unwrap().contains("from 3 to 1 replicas; 1/1 ready"), "halved and floored at min: {inc:#}");
    assert_eq!(replicas(&api.get("web").await.unwrap()), 1);
    // At the minimum there is nothing left to halve; the incident resolves.
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert!(v["incidents"].as_array().unwrap().is_empty(), "{v:#}");

    // An autoscaler owns the replicas: under load, nightshift says so and does not scale.
    let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 1}});
    let hpa: k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler = serde_json::from_value(hpa).unwrap();
    Api::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &hpa).await.unwrap();
    *exporter.body.lock().unwrap() = "shop_load 0.95\n".into();
    prometheus_says(&prom.url, "shop_load", "0.95").await;
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    assert_eq!(v["checks"][0]["status"], "warning", "{v:#}");
    assert!(v["checks"][0]["summary"].as_str().unwrap().contains(&format!("HorizontalPodAutoscaler {ns}/web owns its replicas")), "{v:#}");
    assert!(v["incidents"].as_array().unwrap().is_empty(), "{v:#}");
    assert_eq!(replicas(&api.get("web").await.unwrap()), 1);
    assert!(!ws.audit_text().contains("from 1 to 2"), "no scale under the autoscaler");
}

/// The Service's selector and its ready endpoints' pods.
async fn service_state(c: &Cluster, ns: &str, name: &str) -> (String, Vec<String>) {
    let svc = Api::<Service>::namespaced(c.client.clone(), ns).get(name).await.unwrap();
    let selector = svc.spec.unwrap().selector.unwrap_or_default().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let ep = Api::<k8s_openapi::api::core::v1::Endpoints>::namespaced(c.client.clone(), ns).get_opt(name).await.unwrap();
    let pods = ep.iter().flat_map(|e| e.subsets.iter().flatten()).flat_map(|s| s.addresses.iter().flatten()).filter_map(|a| a.target_ref.as_ref().and_then(|r| r.name.clone())).collect();
    (selector, pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_primary_fails_over_to_the_secondary_recovers_and_is_switched_back_after_its_window() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("failover").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let primary = create(&c, &ns, deployment("db-a", 2, "running")).await;
    let standby = create(&c, &ns, deployment("db-b", 1, "running")).await;
    wait_for(&primary, "db-a", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas == Some(2))).await;
    wait_for(&standby, "db-b", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas == Some(1))).await;
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db-a"}, "ports": [{"port": 5432}]}})).unwrap();
    Api::<Service>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &svc).await.unwrap();
    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: failover\n    decide: auto\n  - action: failback\n    decide: auto\n  - action: rollout_restart\n    decide: auto\n  - action: rollout_undo\n    decide: auto\n",
        &format!("checks:\n  - name: db\n    kind: k8s-failover\n    namespace: {ns}\n    service: db\n    primary: db-a\n    secondary: db-b\n    switch_back_after: 4s\n    cooldown: 0s\n"),
    );
    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 0, "a healthy primary serves: {v:#}");

    // The primary's pods stop being ready (the live pods; its template is unchanged).
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let broken: Vec<_> = pods_of(&c, &ns, "db-a").await;
    for p in &broken {
        let patch = json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "not-ready"}}});
        pods.patch(p.metadata.name.as_deref().unwrap(), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
    wait_for(&primary, "db-a", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas.unwrap_or(0) == 0)).await;

    // Failover: the selector moves to the secondary, whose pod becomes the only endpoint, and the primary's recovery starts.
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, "db:primary-down:");
    assert_eq!(inc["actions"][0]["action"], "failover", "{inc:#}");
    assert_eq!(inc["actions"][0]["result"], "ok", "{inc:#}");
    let outcome = inc["actions"][0]["outcome"].as_str().unwrap();
    assert!(outcome.contains("now selects app=db-b") && outcome.contains("1 ready pod(s) of db-b"), "{outcome}");
    // The primary's recovery is an action of its own: gated by its own rule, journaled, audited.
    let recovery = &inc["actions"][1];
    assert_eq!((recovery["action"].as_str(), recovery["result"].as_str(), recovery["decision"].as_str()), (Some("rollout_restart"), Some("ok"), Some("auto")), "{inc:#}");
    assert!(recovery["outcome"].as_str().unwrap().contains("restarted deployment"), "{recovery}");
    assert!(recovery["target"].as_str().unwrap().ends_with("/db-a"), "{recovery}");
    assert_eq!(inc["status"], "open", "{inc:#}");
    let (selector, endpoints) = service_state(&c, &ns, "db").await;
    assert_eq!(selector, "app=db-b");
    assert!(endpoints.len() == 1 && endpoints[0].starts_with("db-b-"), "{endpoints:?}");

    // The restarted primary comes back; the Service stays on the secondary for the window.
    pods_are(&c, &ns, "db-a", 2, "the primary's new pods are ready", |p| ready(p) && !broken.iter().any(|b| b.metadata.uid == p.metadata.uid)).await;
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, "db:primary-down:");
    assert!(inc["actions"].as_array().unwrap().iter().all(|a| a["action"] != "failback"), "not before the window: {inc:#}");
    assert_eq!(inc["status"], "open", "{inc:#}");
    assert!(v["notes"].to_string().contains("before switching back"), "{v:#}");
    assert_eq!(service_state(&c, &ns, "db").await.0, "app=db-b");

    // After the window: switched back, verified, resolved.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, "db:primary-down:");
    assert_eq!(inc["actions"][0]["action"], "failback", "{inc:#}");
    assert_eq!(inc["actions"][0]["result"], "ok", "{inc:#}");
    assert_eq!(inc["status"], "resolved", "{inc:#}");
    let (selector, endpoints) = service_state(&c, &ns, "db").await;
    assert_eq!(selector, "app=db-a");
    assert!(endpoints.len() == 2 && endpoints.iter().all(|p| p.starts_with("db-a-")), "{endpoints:?}");
    let text = note(&ws, inc["id"].as_str().unwrap());
    assert!(text.contains("failover on") && text.contains("failback on"), "each switch is its own action in the note: {text}");
    let audit = ws.audit_text();
    assert!(audit.contains("failover") && audit.contains("failback"), "{audit}");
}
