//! The simulated kubelet against the real control plane (scripts/test-cluster.sh):
//! each test in its own namespace, asserting what the real controllers,
//! scheduler and apiserver make of what the simulator writes.
//! Skipped (with a SKIP line) where the control plane is not built, unless
//! NIGHTSHIFT_REQUIRE_CLUSTER=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, Service};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::cluster::{Cluster, DeploymentExt, cluster, create, deployment, eventually, pods_of, wait_for};
use support::kubelet::{self, Kubelet, NodeState};

const LIMIT: Duration = Duration::from_secs(30);

async fn setup(prefix: &str) -> Option<(Cluster, String, Kubelet)> {
    let c = cluster().await?;
    let ns = c.namespace(prefix).await;
    let k = Kubelet::start(c.client.clone(), &ns).await;
    Some((c, ns, k))
}

/// Waits until the app has exactly `n` live pods that all satisfy `pred`.
async fn wait_pods(c: &Cluster, ns: &str, app: &str, n: usize, pred: impl Fn(&Pod) -> bool) -> Vec<Pod> {
    eventually(LIMIT, &format!("{n} pods of {app}"), || async {
        let pods = pods_of(c, ns, app).await;
        if pods.len() == n && pods.iter().all(&pred) { Ok(pods) } else { Err(format!("{:#?}", pods.iter().map(|p| (&p.metadata.name, &p.status)).collect::<Vec<_>>())) }
    })
    .await
}

fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).map(|c| c.status.clone())
}

fn node_condition(node: &Node, kind: &str) -> Option<(String, Option<String>)> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).map(|c| (c.status.clone(), c.reason.clone()))
}

fn restarts(pod: &Pod) -> i32 {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()).map_or(0, |c| c.restart_count)
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

async fn events_of(c: &Cluster, ns: &str, pod: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(c.client.clone(), ns);
    api.list(&ListParams::default().fields(&format!("involvedObject.name={pod}"))).await.unwrap().items
}

/// Waits for the pod's event with this reason (and message part) to reach `count`.
async fn wait_event(c: &Cluster, ns: &str, pod: &str, reason: &str, message: &str, count: i32) -> Event {
    eventually(LIMIT, &format!("event {reason} x{count} on {pod}"), || async {
        let events = events_of(c, ns, pod).await;
        let found: Vec<&Event> = events.iter().filter(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().is_some_and(|m| m.contains(message))).collect();
        match found[..] {
            [e] if e.count.unwrap_or(0) >= count => Ok(e.clone()),
            _ => Err(format!("{:?}", events.iter().map(|e| (&e.reason, &e.message, e.count)).collect::<Vec<_>>())),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_pods_become_ready_with_ips_and_endpoints() {
    let Some((c, ns, _kubelet)) = setup("running").await else { return };
    let deployments = create(&c, &ns, deployment("web", 3, "running")).await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();

    let d = wait_for(&deployments, "web", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(3) && s.ready_replicas == Some(3))).await;
    assert_eq!(d.status.unwrap().unavailable_replicas, None);

    let pods = pods_of(&c, &ns, "web").await;
    assert_eq!(pods.len(), 3);
    let mut ips = HashSet::new();
    for p in &pods {
        let s = p.status.as_ref().unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(s.start_time.is_some());
        for kind in ["Initialized", "ContainersReady", "Ready", "PodScheduled"] {
            assert_eq!(condition(p, kind).as_deref(), Some("True"), "{kind}");
        }
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!((cs.name.as_str(), cs.image.as_str(), cs.ready, cs.started, cs.restart_count), ("app", "registry.example/app:1", true, Some(true), 0));
        assert!(cs.container_id.as_deref().unwrap().starts_with("containerd://"));
        assert!(cs.state.as_ref().unwrap().running.as_ref().unwrap().started_at.is_some());
        assert!(kubelet::SHARED_NODES.contains(&p.spec.as_ref().unwrap().node_name.as_deref().unwrap()));
        let ip = s.pod_ip.clone().unwrap();
        assert!(ip.starts_with("10."), "{ip}");
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 3, "pod IPs are unique: {ips:?}");

    // The real endpoints controller publishes the pods as ready addresses.
    let endpoints: Api<Endpoints> = Api::namespaced(c.client.clone(), &ns);
    let ep = wait_for(&endpoints, "web", LIMIT, |e| {
        let subsets = e.subsets.clone().unwrap_or_default();
        subsets.iter().flat_map(|s| s.addresses.clone().unwrap_or_default()).count() == 3
    })
    .await;
    let subset = &ep.subsets.unwrap()[0];
    let addresses: HashSet<String> = subset.addresses.as_ref().unwrap().iter().map(|a| a.ip.clone()).collect();
    assert_eq!(addresses, ips);
    assert!(subset.not_ready_addresses.as_ref().is_none_or(|a| a.is_empty()));
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 8080);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_other_namespaces_are_left_alone() {
    let Some((c, _ns, _kubelet)) = setup("mine").await else { return };
    let other = c.namespace("other").await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &other);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "lonely"},
        "spec": {"nodeName": "sim-shared-0", "containers": [{"name": "app", "image": "registry.example/app:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = pods.get("lonely").await.unwrap();
    let s = p.status.unwrap();
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(s.pod_ip, None);
    pods.delete("lonely", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashloop_restarts_grow_with_one_backoff_event_and_recovers() {
    let Some((c, ns, _kubelet)) = setup("crash").await else { return };
    create(&c, &ns, deployment("crash", 1, "crashloop").annotate(kubelet::RESTART_EVERY, "1").annotate(kubelet::EXIT_CODE, "3")).await;
    let pod = wait_pods(&c, &ns, "crash", 1, |p| restarts(p) >= 1).await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    let first = restarts(&pod);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let pod = wait_for(&pods, &name, LIMIT, |p| restarts(p) >= first + 2).await;

    let s = pod.status.as_ref().unwrap();
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));
    assert_eq!(condition(&pod, "ContainersReady").as_deref(), Some("False"));
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert!(!cs.ready);
    let waiting = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let msg = waiting.message.as_deref().unwrap();
    assert!(msg.starts_with("back-off ") && msg.ends_with(&format!(" restarting failed container=app pod={name}")), "{msg}");
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert!(last.started_at.is_some() && last.finished_at.is_some());

    // One BackOff event, bumped rather than repeated, from the pod's node's kubelet.
    let ev = wait_event(&c, &ns, &name, "BackOff", "Back-off restarting failed container", 2).await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let source = ev.source.unwrap();
    assert_eq!(source.component.as_deref(), Some("kubelet"));
    assert_eq!(source.host, pod.spec.as_ref().unwrap().node_name);
    assert!(ev.last_timestamp.is_some() && ev.first_timestamp.is_some());

    // The deployment counts it unavailable.
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    wait_for(&deployments, "crash", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.unavailable_replicas == Some(1))).await;

    // Changing the live pod's behavior: it recovers, keeping its restart count.
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "running"}}}))).await.unwrap();
    let pod = wait_for(&pods, &name, LIMIT, |p| condition(p, "Ready").as_deref() == Some("True")).await;
    let cs = &pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready && cs.restart_count >= first + 2);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 3);
    wait_for(&deployments, "crash", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_liveness_imagepull_and_not_ready_look_like_a_kubelet_shows_them() {
    let Some((c, ns, _kubelet)) = setup("failures").await else { return };
    for (app, behavior) in [("oom", "oom"), ("probe", "liveness"), ("pull", "imagepull"), ("unready", "not-ready")] {
        create(&c, &ns, deployment(app, 1, behavior).annotate(kubelet::RESTART_EVERY, "1")).await;
    }

    let oom = wait_pods(&c, &ns, "oom", 1, |p| restarts(p) >= 1).await.remove(0);
    let cs = &oom.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.reason.as_deref(), last.exit_code), (Some("OOMKilled"), 137));
    assert_eq!(waiting_reason(&oom).as_deref(), Some("CrashLoopBackOff"));
    wait_event(&c, &ns, oom.metadata.name.as_deref().unwrap(), "BackOff", "Back-off restarting failed container", 1).await;

    let probe = wait_pods(&c, &ns, "probe", 1, |p| restarts(p) >= 1).await.remove(0);
    let probe_name = probe.metadata.name.clone().unwrap();
    let cs = &probe.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.reason.as_deref(), last.exit_code), (Some("Error"), 137));
    let unhealthy = wait_event(&c, &ns, &probe_name, "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500", 3).await;
    assert_eq!(unhealthy.type_.as_deref(), Some("Warning"));
    wait_event(&c, &ns, &probe_name, "Killing", "Container app failed liveness probe, will be restarted", 1).await;

    let pull = wait_pods(&c, &ns, "pull", 1, |p| waiting_reason(p).as_deref() == Some("ImagePullBackOff")).await.remove(0);
    let pull_name = pull.metadata.name.clone().unwrap();
    let s = pull.status.as_ref().unwrap();
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(condition(&pull, "Ready").as_deref(), Some("False"));
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.state.as_ref().unwrap().waiting.as_ref().unwrap().message.as_deref(), Some("Back-off pulling image \"registry.example/app:1\""));
    let failed = wait_event(&c, &ns, &pull_name, "Failed", "Failed to pull image \"registry.example/app:1\": rpc error: code = NotFound", 1).await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    wait_event(&c, &ns, &pull_name, "BackOff", "Back-off pulling image \"registry.example/app:1\"", 1).await;

    let unready = wait_pods(&c, &ns, "unready", 1, |p| condition(p, "Ready").as_deref() == Some("False") && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()).await.remove(0);
    let cs = &unready.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert!(!cs.ready && cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(unready.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    let ev = wait_event(&c, &ns, unready.metadata.name.as_deref().unwrap(), "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", 2).await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_evicted_pods_go_and_the_replicaset_replaces_them() {
    let Some((c, ns, _kubelet)) = setup("delete").await else { return };
    let deployments = create(&c, &ns, deployment("svc", 2, "running")).await;
    wait_for(&deployments, "svc", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
    let before = pods_of(&c, &ns, "svc").await;
    let (victim, evicted) = (before[0].metadata.name.clone().unwrap(), before[1].metadata.name.clone().unwrap());
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);

    // A default (30 s grace) delete finishes at once: the simulator completes it.
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    pods.evict(&evicted, &EvictParams::default()).await.unwrap();
    eventually(Duration::from_secs(10), "the deleted and evicted pods are gone", || async {
        let left: Vec<String> = pods.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|p| p.metadata.name).filter(|n| *n == victim || *n == evicted).collect();
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    })
    .await;
    let after = wait_pods(&c, &ns, "svc", 2, |p| condition(p, "Ready").as_deref() == Some("True")).await;
    assert!(after.iter().all(|p| p.metadata.name != Some(victim.clone()) && p.metadata.name != Some(evicted.clone())));
    wait_for(&deployments, "svc", LIMIT, |d| d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_node_goes_not_ready_and_under_pressure() {
    let Some((c, ns, kubelet)) = setup("node").await else { return };
    let node_name = format!("{ns}-a");
    kubelet.add_node(&node_name, true).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = nodes.get(&node_name).await.unwrap();
    let taints: Vec<String> = node.spec.clone().unwrap().taints.unwrap_or_default().iter().map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect)).collect();
    assert_eq!(taints, vec![format!("{}={ns}:NoSchedule", kubelet::DEDICATED)]);
    assert_eq!(node_condition(&node, "Ready"), Some(("True".into(), Some("KubeletReady".into()))));

    create(&c, &ns, deployment("pinned", 1, "running").dedicated(&ns)).await;
    let pod = wait_pods(&c, &ns, "pinned", 1, |p| condition(p, "Ready").as_deref() == Some("True")).await.remove(0);
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(node_name.as_str()));
    let pod_name = pod.metadata.name.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);

    kubelet.set_node(&node_name, NodeState::NotReady).await;
    let node = wait_for(&nodes, &node_name, LIMIT, |n| node_condition(n, "Ready").is_some_and(|(s, _)| s != "True")).await;
    assert_eq!(node_condition(&node, "Ready"), Some(("Unknown".into(), Some("NodeStatusUnknown".into()))));
    assert!(node.spec.unwrap().taints.unwrap().iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"));
    // As the node-lifecycle controller would: the pod is no longer Ready, its container still is.
    let pod = wait_for(&pods, &pod_name, LIMIT, |p| condition(p, "Ready").as_deref() == Some("False")).await;
    assert!(pod.status.unwrap().container_statuses.unwrap()[0].ready);
    wait_event(&c, &ns, &pod_name, "NodeNotReady", "Node is not ready", 1).await;

    kubelet.set_node(&node_name, NodeState::MemoryPressure).await;
    let node = wait_for(&nodes, &node_name, LIMIT, |n| node_condition(n, "MemoryPressure").is_some_and(|(s, _)| s == "True")).await;
    assert_eq!(node_condition(&node, "MemoryPressure").unwrap().1.as_deref(), Some("KubeletHasInsufficientMemory"));
    assert_eq!(node_condition(&node, "Ready").unwrap().0, "True");
    assert!(node.spec.unwrap().taints.unwrap().iter().any(|t| t.key == "node.kubernetes.io/memory-pressure"));
    wait_for(&pods, &pod_name, LIMIT, |p| condition(p, "Ready").as_deref() == Some("True")).await;

    kubelet.set_node(&node_name, NodeState::Ready).await;
    let node = nodes.get(&node_name).await.unwrap();
    assert_eq!(node_condition(&node, "MemoryPressure").unwrap().0, "False");
    assert_eq!(node.spec.unwrap().taints.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_logs_come_through_the_pods_log_api() {
    let Some((c, ns, _kubelet)) = setup("logs").await else { return };
    let log = "starting\nlistening on :8080\nconnecting to db\npanic: dial tcp 10.0.0.5:5432: connection refused\n";
    create(&c, &ns, deployment("crash", 1, "crashloop").annotate(kubelet::LOG, log)).await;
    create(&c, &ns, deployment("fresh", 1, "running").annotate(kubelet::LOG, "hello\n")).await;
    create(&c, &ns, deployment("pull", 1, "imagepull")).await;
    let crash = wait_pods(&c, &ns, "crash", 1, |p| restarts(p) >= 1).await.remove(0).metadata.name.unwrap();
    let fresh = wait_pods(&c, &ns, "fresh", 1, |p| condition(p, "Ready").as_deref() == Some("True")).await.remove(0).metadata.name.unwrap();
    let pull = wait_pods(&c, &ns, "pull", 1, |p| waiting_reason(p).is_some()).await.remove(0).metadata.name.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);

    let previous = LogParams { container: Some("app".into()), previous: true, tail_lines: Some(2), ..Default::default() };
    // Retried: another test process may be handing the kubelet port over.
    let text = eventually(Duration::from_secs(10), "previous logs", || async { pods.logs(&crash, &previous).await.map_err(|e| e.to_string()) }).await;
    assert_eq!(text, "connecting to db\npanic: dial tcp 10.0.0.5:5432: connection refused\n");
    assert_eq!(pods.logs(&crash, &LogParams::default()).await.unwrap(), log);
    assert_eq!(pods.logs(&fresh, &LogParams { tail_lines: Some(5), ..Default::default() }).await.unwrap(), "hello\n");

    // What a kubelet answers for a container that never terminated or never started.
    let err = pods.logs(&fresh, &LogParams { previous: true, ..Default::default() }).await.unwrap_err().to_string();
    assert!(err.contains("previous terminated container \"app\""), "{err}");
    let err = pods.logs(&pull, &LogParams::default()).await.unwrap_err().to_string();
    assert!(err.contains("is waiting to start: trying and failing to pull image"), "{err}");
}

/// The simulator at benchmark scale: 2,000 pods of 200 Deployments on 20
/// dedicated nodes. Slow on small machines: run it with --ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn two_thousand_pods_on_twenty_nodes() {
    let Some((c, ns, kubelet)) = setup("scale").await else { return };
    let start = std::time::Instant::now();
    futures::future::join_all((0..20).map(|i| {
        let (kubelet, ns) = (&kubelet, &ns);
        async move { kubelet.add_node_with(&format!("{ns}-{i}"), 110, true).await }
    }))
    .await;
    eprintln!("20 nodes in {:?}", start.elapsed());
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    let started = std::time::Instant::now();
    futures::future::join_all((0..200).map(|i| {
        let (api, ns) = (&api, &ns);
        async move {
            let behavior = if i % 20 == 0 { "crashloop" } else { "running" };
            api.create(&PostParams::default(), &deployment(&format!("app-{i}"), 10, behavior).dedicated(ns)).await.unwrap();
        }
    }))
    .await;
    eprintln!("200 deployments created in {:?}", started.elapsed());
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let mut last = String::new();
    let ok = loop {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        let ready = list.iter().filter(|p| condition(p, "Ready").as_deref() == Some("True")).count();
        let crashing = list.iter().filter(|p| waiting_reason(p).as_deref() == Some("CrashLoopBackOff")).count();
        let now = format!("{} pods, {ready} ready, {crashing} crashing", list.len());
        if now != last {
            eprintln!("{:>6.1}s {now}", started.elapsed().as_secs_f64());
            last = now;
        }
        if ready == 1900 && crashing == 100 {
            break true;
        }
        if started.elapsed() > Duration::from_secs(300) {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(ok, "not all pods settled: {last}");
    eprintln!("settled in {:?}", started.elapsed());
}
