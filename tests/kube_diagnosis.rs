//! Issue 21 against the real control plane and the simulated kubelet: the
//! seed's OOM scenario in full (restart and pull request in one pass, one
//! pull request per workload), the blast radius counting instances, the
//! recovery timeout the check declares, and Kubernetes diagnoses that name
//! the cause the objects show. Each test asserts the note, the plan and the
//! objects as a user reads them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::Ws;
use support::cluster::{self, Cluster, DeploymentExt, acted, create, deployment, incident, nightshift_json, note, pods_are, pods_of, ready, wait_for, waiting};
use support::kubelet::{self, Kubelet};

const LIMIT: Duration = Duration::from_secs(40);

fn uids(pods: &[Pod]) -> Vec<Option<String>> {
    pods.iter().map(|p| p.metadata.uid.clone()).collect()
}

/// Sets a live pod's simulated behaviour (what its container does from now on).
async fn behave(c: &Cluster, ns: &str, pod: &Pod, behavior: &str) {
    let patch = json!({"metadata": {"annotations": {kubelet::BEHAVIOR: behavior}}});
    Api::<Pod>::namespaced(c.client.clone(), ns).patch(pod.metadata.name.as_deref().unwrap(), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// `heartbeat --all --json` with the pull request token set.
async fn heartbeat_with_token(ws: &Ws, c: &Cluster, token: &str) -> Value {
    let mut cmd = ws.cmd(&["heartbeat", "--all", "--json"]);
    cmd.env("KUBECONFIG", &c.kubeconfig).env("NIGHTSHIFT_PR_TOKEN", token);
    let r = tokio::task::spawn_blocking(move || support::Run::from(cmd.output().unwrap())).await.unwrap();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_restarts_the_pod_and_opens_the_pull_request_in_the_same_pass_and_a_recurrence_updates_it() {
    let Some(c) = cluster::cluster().await else { return };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let token = "ghp_kubeDiagTokenForTheStandIn0123456789";
    let Some(gh) = support::github::GitHub::start(token) else { return };
    let ns = c.namespace("oomonce").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    // The template runs; the live pod is OOM-killed in a loop (the restart will verify healthy).
    create(&c, &ns, deployment("api", 1, "running")).await;
    let first = pods_are(&c, &ns, "api", 1, "the pod runs", ready).await;
    behave(&c, &ns, &first[0], "oom").await;
    pods_are(&c, &ns, "api", 1, "the pod OOM-loops", |p| waiting(p, "CrashLoopBackOff")).await;
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: {ns}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example/app:1\n          resources:\n            limits:\n              memory: 256Mi\n            requests:\n              memory: 128Mi\n"
    );
    let repo = support::infra_repo::InfraRepo::new(&[(&format!("apps/{ns}/api.yaml"), &manifest)]);
    gh.with_git_remote("acme", "infra", &repo.remote());
    let policy = format!(
        "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n  - action: open_pr\n    decide: auto\nrepository:\n  remote: {}\n  repo: acme/infra\n  api_url: {}\n  token_env: NIGHTSHIFT_PR_TOKEN\n  cache: repo-cache\n  manifests: apps/{{namespace}}/{{name}}.yaml\n",
        repo.remote().display(),
        gh.url()
    );
    let checks = format!("checks:\n  - name: pods\n    kind: k8s-pods\n    namespace: {ns}\n    max_restarts: 3\n    ready_grace: 0s\n    cooldown: 0s\n");
    let ws = Ws::new(&policy, &checks);

    let v = heartbeat_with_token(&ws, &c, token).await;
    let fp = format!("pods:pod-oom:{ns}/deployment/api");
    let inc = incident(&v, &fp);
    let actions = acted(inc);
    assert_eq!(actions.len(), 2, "a restart and the pull request: {inc:#}");
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("restart_pod"), Some("ok")), "the restart verified healthy: {inc:#}");
    assert_eq!((actions[1]["action"].as_str(), actions[1]["result"].as_str()), (Some("open_pr"), Some("ok")), "the permanent fix does not wait for the restart to fail: {inc:#}");
    assert!(actions[1]["outcome"].as_str().unwrap().starts_with("opened pull request #"), "{inc:#}");
    assert_eq!(inc["status"], "resolved", "{inc:#}");
    let pulls = gh.pulls("acme", "infra");
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].head, format!("nightshift/{ns}-api-memory"));
    assert!(pulls[0].body.contains(inc["id"].as_str().unwrap()), "{}", pulls[0].body);
    let branch_tip = repo.tip(&pulls[0].head);

    // Minutes later the replacement is OOM-killed too: a new incident, the same pull request, updated.
    let second = pods_are(&c, &ns, "api", 1, "the replacement runs", |p| ready(p) && p.metadata.uid != first[0].metadata.uid).await;
    behave(&c, &ns, &second[0], "oom").await;
    pods_are(&c, &ns, "api", 1, "the replacement OOM-loops", |p| waiting(p, "CrashLoopBackOff")).await;
    let v = heartbeat_with_token(&ws, &c, token).await;
    let again = incident(&v, &fp);
    assert_ne!(again["id"], inc["id"], "a recurrence after resolution is a new incident: {again:#}");
    let pr = acted(again).into_iter().find(|a| a["action"] == "open_pr").unwrap_or_else(|| panic!("no open_pr: {again:#}"));
    assert_eq!(pr["result"], "ok", "{pr:#}");
    assert!(pr["outcome"].as_str().unwrap().starts_with(&format!("updated pull request #{}", pulls[0].number)), "{pr:#}");
    let pulls = gh.pulls("acme", "infra");
    assert_eq!(pulls.len(), 1, "never a second pull request for the workload: {pulls:?}");
    assert!(pulls[0].body.contains(again["id"].as_str().unwrap()), "the body names the recurrence: {}", pulls[0].body);
    assert_eq!(repo.tip(&pulls[0].head), branch_tip, "the branch already carries the change: no second commit");
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_restart_of_twelve_replicas_asks_for_confirmation_under_max_blast_radius_ten() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("radius").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let primary = create(&c, &ns, deployment("db-a", 12, "running")).await;
    let standby = create(&c, &ns, deployment("db-b", 1, "running")).await;
    wait_for(&primary, "db-a", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas == Some(12))).await;
    wait_for(&standby, "db-b", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas == Some(1))).await;
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db-a"}, "ports": [{"port": 5432}]}})).unwrap();
    Api::<Service>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &svc).await.unwrap();
    let ws = Ws::new(
        "mode: execute\nmax_blast_radius: 10\nrules:\n  - action: failover\n    decide: auto\n  - action: rollout_restart\n    decide: auto\n",
        &format!("checks:\n  - name: db\n    kind: k8s-failover\n    namespace: {ns}\n    service: db\n    primary: db-a\n    secondary: db-b\n    switch_back_after: 1h\n    cooldown: 0s\n"),
    );
    let broken = pods_of(&c, &ns, "db-a").await;
    for p in &broken {
        behave(&c, &ns, p, "not-ready").await;
    }
    wait_for(&primary, "db-a", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.ready_replicas.unwrap_or(0) == 0)).await;

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--all", "--json"]).await;
    let inc = incident(&v, &format!("db:primary-down:k8s:current/{ns}/service/db"));
    assert_eq!((inc["actions"][0]["action"].as_str(), inc["actions"][0]["result"].as_str()), (Some("failover"), Some("ok")), "{inc:#}");
    let recovery = &inc["actions"][1];
    assert_eq!((recovery["action"].as_str(), recovery["decision"].as_str(), recovery["result"].as_str()), (Some("rollout_restart"), Some("confirm"), Some("pending")), "{inc:#}");
    assert!(recovery["reason"].as_str().unwrap().contains("touches 12 instances, more than max_blast_radius 10"), "the rule says auto; the radius asks a human: {recovery:#}");
    assert_eq!(uids(&pods_of(&c, &ns, "db-a").await), uids(&broken), "no replica was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_planned_in_one_pass_count_together_against_max_blast_radius() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("together").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    for app in ["a", "b", "c"] {
        create(&c, &ns, deployment(app, 1, "crashloop")).await;
    }
    let mut before = Vec::new();
    for app in ["a", "b", "c"] {
        before.push(pods_are(&c, &ns, app, 1, "the pod crash-loops", |p| waiting(p, "CrashLoopBackOff")).await);
    }
    let ws = Ws::new("mode: execute\nmax_blast_radius: 2\nrules:\n  - action: restart_pod\n    decide: auto\n", &support::cluster::pods_check(&ns));

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    for app in ["a", "b", "c"] {
        let inc = incident(&v, &format!("pods:pod-crashloop:{ns}/deployment/{app}"));
        let actions = acted(inc);
        assert_eq!((actions[0]["action"].as_str(), actions[0]["decision"].as_str(), actions[0]["result"].as_str()), (Some("restart_pod"), Some("confirm"), Some("pending")), "{inc:#}");
        assert!(actions[0]["reason"].as_str().unwrap().contains("the restarts planned in this pass touch 3 instances together, more than max_blast_radius 2"), "{inc:#}");
    }
    for (app, pods) in ["a", "b", "c"].iter().zip(&before) {
        assert_eq!(uids(&pods_of(&c, &ns, app).await), uids(pods), "{app} was not restarted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_that_never_settles_fails_after_the_checks_recovery_timeout() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("recovery").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    // Replacements start but never become ready (a slow warm-up within the 10 minute grace):
    // the workload keeps settling, and only the timeout ends the verification.
    create(&c, &ns, deployment("api", 1, "not-ready")).await;
    let before = pods_are(&c, &ns, "api", 1, "the pod starts", |p| !ready(p)).await;
    behave(&c, &ns, &before[0], "crashloop").await;
    pods_are(&c, &ns, "api", 1, "the pod crash-loops", |p| waiting(p, "CrashLoopBackOff")).await;
    let ws = Ws::new(
        "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n",
        &format!("checks:\n  - name: pods\n    kind: k8s-pods\n    namespace: {ns}\n    max_restarts: 3\n    ready_grace: 10m\n    recovery_timeout: 3s\n"),
    );

    let (_, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    let inc = incident(&v, &format!("pods:pod-crashloop:{ns}/deployment/api"));
    let actions = acted(inc);
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("restart_pod"), Some("failed")), "{inc:#}");
    assert!(actions[0]["outcome"].as_str().unwrap().contains("not settled within 3s"), "recovery_timeout: 3s, not a fixed 90 s: {inc:#}");
}

#[test]
fn a_declared_command_touching_twelve_instances_asks_for_confirmation() {
    let ws = Ws::new(
        "mode: execute\nmax_blast_radius: 10\ncommands:\n  restart-fleet:\n    run: touch healthy\n    instances: 12\n  fix-one: touch healthy\nrules:\n  - action: run_command\n    decide: auto\n",
        "checks:\n  - name: fleet\n    kind: exec\n    command: \"test -f healthy\"\n    repair: restart-fleet\n",
    );
    let (_, v) = ws.json(&["heartbeat", "--json"]);
    let inc = &v["incidents"][0];
    let a = &inc["actions"][0];
    assert_eq!((a["action"].as_str(), a["decision"].as_str(), a["result"].as_str()), (Some("run_command"), Some("confirm"), Some("pending")), "{inc:#}");
    assert!(a["reason"].as_str().unwrap().contains("touches 12 instances, more than max_blast_radius 10"), "{a:#}");
    assert!(!ws.path().join("healthy").exists(), "nothing ran without a human");

    // `instances:` is validated, with the line and the fix.
    let bad = Ws::new("commands:\n  restart-fleet:\n    run: true\n    instances: many\n    hosts: 3\n", "checks: []\n");
    let r = bad.run(&["validate"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("`instances` must be a whole number"), "{said}");
    assert!(said.contains("hosts"), "an unknown key is named: {said}");
}

/// Every repair allowed without asking: what the product does not plan, the test sees it not do.
const ALL_AUTO: &str = "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n  - action: rollout_undo\n    decide: auto\n  - action: rollout_restart\n    decide: auto\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_container_is_named_as_such_with_its_exit_and_last_log_lines() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("initfail").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let mut d = deployment("shop", 1, "crashloop")
        .annotate(kubelet::CONTAINER, "migrate")
        .annotate(kubelet::EXIT_CODE, "3")
        .annotate(&format!("{}.migrate", kubelet::LOG), "applying 0042_orders.sql\nERROR: relation \"orders\" already exists");
    d.pod_spec().init_containers = serde_json::from_value(json!([{"name": "migrate", "image": "registry.example/migrate:7"}])).unwrap();
    create(&c, &ns, d).await;
    let before =
        pods_are(&c, &ns, "shop", 1, "the init container crash-loops", |p| p.status.as_ref().and_then(|s| s.init_container_statuses.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.restart_count > 3)))
            .await;
    let ws = Ws::new("mode: dry-run\nrules:\n  - action: restart_pod\n    decide: auto\n", &support::cluster::pods_check(&ns));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let inc = incident(&v, &format!("pods:pod-init-failing:{ns}/deployment/shop"));
    assert!(inc["title"].as_str().unwrap().contains("init container migrate fails, the application never started"), "{inc:#}");
    let text = note(&ws, inc);
    assert!(text.contains("init container `migrate` fails (exit code 3, `Error`): the application's containers never started"), "{text}");
    assert!(text.contains("ERROR: relation \"orders\" already exists"), "the init container's own last lines: {text}");
    assert_eq!(uids(&pods_of(&c, &ns, "shop").await), uids(&before), "dry-run: nothing deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_secret_or_volume_claim_is_named_and_no_restart_is_planned() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("missing").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let mut cfg = deployment("cfg", 1, "running");
    cfg.pod_spec().containers[0].env_from = serde_json::from_value(json!([{"configMapRef": {"name": "settings"}}])).unwrap();
    let mut sec = deployment("sec", 1, "running");
    sec.pod_spec().containers[0].env = serde_json::from_value(json!([{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}])).unwrap();
    let mut vol = deployment("vol", 1, "running");
    vol.pod_spec().volumes = serde_json::from_value(json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])).unwrap();
    for d in [cfg, sec, vol] {
        create(&c, &ns, d).await;
    }
    let cfg_pods = pods_are(&c, &ns, "cfg", 1, "cfg cannot be created", |p| waiting(p, "CreateContainerConfigError")).await;
    let sec_pods = pods_are(&c, &ns, "sec", 1, "sec cannot be created", |p| waiting(p, "CreateContainerConfigError")).await;
    let vol_pods = pods_are(&c, &ns, "vol", 1, "vol cannot be scheduled", |p| {
        p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"))
    })
    .await;
    let ws = Ws::new(ALL_AUTO, &format!("checks:\n  - name: pods\n    kind: k8s-pods\n    namespace: {ns}\n    max_restarts: 3\n    ready_grace: 0s\n    pending_grace: 0s\n"));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    for (app, class, cause) in [
        ("cfg", "pod-config-error", "cause: the ConfigMap `settings` it references does not exist: create it or fix the reference"),
        ("sec", "pod-config-error", "cause: the Secret `db-creds` it references does not exist: create it or fix the reference"),
        ("vol", "pod-unschedulable", "cause: the PersistentVolumeClaim `data` it references does not exist: create it or fix the reference"),
    ] {
        let inc = incident(&v, &format!("pods:{class}:{ns}/deployment/{app}"));
        assert!(acted(inc).is_empty(), "a restart cannot create a missing object: nothing is planned: {inc:#}");
        let text = note(&ws, inc);
        assert!(text.contains(cause), "{app}: {text}");
    }
    assert_eq!(uids(&pods_of(&c, &ns, "cfg").await), uids(&cfg_pods));
    assert_eq!(uids(&pods_of(&c, &ns, "sec").await), uids(&sec_pods));
    assert_eq!(uids(&pods_of(&c, &ns, "vol").await), uids(&vol_pods));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_selector_matches_no_pod_is_shown_beside_the_workloads_labels() {
    let Some(c) = cluster::cluster().await else { return };
    let ns = c.namespace("selector").await;
    let _kubelet = Kubelet::start(c.client.clone(), &ns).await;
    create(&c, &ns, deployment("api", 2, "running")).await;
    let before = pods_are(&c, &ns, "api", 2, "api runs", ready).await;
    // The Service was written for the old label; the pods carry app=api.
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    Api::<Service>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &svc).await.unwrap();
    let ws = Ws::new(ALL_AUTO, &format!("checks:\n  - name: services\n    kind: k8s-services\n    namespace: {ns}\n"));

    let (code, v) = nightshift_json(&ws, &c, &["heartbeat", "--json"]).await;
    assert_eq!(code, 1, "{v:#}");
    let inc = incident(&v, &format!("services:service-selector-mismatch:{ns}/service/web"));
    assert!(inc["title"].as_str().unwrap().contains(&format!("Service {ns}/service/web selects no pod")), "{inc:#}");
    assert!(acted(inc).is_empty(), "no restart fixes a selector: {inc:#}");
    let text = note(&ws, inc);
    assert!(text.contains(&format!("its selector `app=web` matches no pod in namespace `{ns}`; the workloads there carry: deployment `api` (`app=api`)")), "{text}");
    assert_eq!(uids(&pods_of(&c, &ns, "api").await), uids(&before), "nothing restarted");
}
