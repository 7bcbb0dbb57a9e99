//! Benchmark: `k8s-probe` against the real Kubernetes 1.20 test control
//! plane and the simulated kubelet, whose probed pods answer HTTP on their
//! own loopback addresses. Prints, without asserting:
//!
//! 1. Kubernetes API requests of one-shot `heartbeat --all --json` runs with
//!    an HTTP k8s-probe check at 200 and 2,000 pods (one list, whatever the
//!    pod count), and the probe throughput (pods probed per second of the
//!    check's probing, 128 at once);
//! 2. detection to restart: one pod answers 500; a run with `threshold: 1`
//!    probes, opens the incident and deletes the pod through the gate; the
//!    time from the run's start to the pod's deletion as a client of the API
//!    server sees it, over 5 rounds at 200 pods.
//!
//! Prints a SKIP line (and exits 0) where the control plane is not built.
//! Run with `cargo bench --bench probe`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark harness: failing loudly is the point

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::ms;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerPort, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::Ws;
use support::cluster::{DeploymentExt, cluster, deployment};
use support::kubelet::{self, Kubelet};

const REPLICAS: i32 = 10;
const NODES: usize = 20;
const SIZES: [usize; 2] = [20, 200];
const RUNS: usize = 3;
const ROUNDS: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    rt.block_on(run());
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn ready_on_loopback(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| s.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("127.")) && s.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_count(pods: &Api<Pod>) -> usize {
    pods.list(&ListParams::default()).await.map(|l| l.items.iter().filter(|p| ready_on_loopback(p)).count()).unwrap_or(0)
}

fn heartbeat(ws: &Ws, kubeconfig: &std::path::Path) -> (Duration, Value) {
    let t = Instant::now();
    let out = ws.cmd(&["heartbeat", "--all", "--json"]).env("KUBECONFIG", kubeconfig).output().unwrap();
    let elapsed = t.elapsed();
    (elapsed, serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr))))
}

async fn run() {
    let Some(c) = cluster().await else {
        println!("SKIP: no Kubernetes test cluster (scripts/test-cluster.sh build)");
        return;
    };
    let ns = c.namespace("bench-probe").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    futures::future::join_all((0..NODES).map(|i| {
        let (kubelet, ns) = (&kubelet, &ns);
        async move { kubelet.add_node_with(&format!("{ns}-{i}"), 110, true).await }
    }))
    .await;
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let check = format!("checks:\n  - name: web\n    kind: k8s-probe\n    namespace: {ns}\n    selector: tier=web\n    http: {{port: 8080, path: /healthz}}\n    every: 1h\n");
    let ws = Ws::new("mode: dry-run\n", &check);
    let mut created = 0;
    for size in SIZES {
        let t = Instant::now();
        while created < size {
            let mut d = deployment(&format!("d-{created}"), REPLICAS, "running").annotate(kubelet::PROBE, "ok").dedicated(&ns);
            d.pod_spec().containers[0].ports = Some(vec![ContainerPort { container_port: 8080, ..Default::default() }]);
            let labels = d.spec.as_mut().unwrap().template.metadata.as_mut().unwrap().labels.as_mut().unwrap();
            labels.insert("tier".into(), "web".into());
            deployments.create(&PostParams::default(), &d).await.unwrap();
            created += 1;
        }
        let want = size * REPLICAS as usize;
        while ready_count(&pods).await < want {
            if t.elapsed() > Duration::from_secs(300) {
                println!("NOTE: only {} of {want} pods ready after 300 s", ready_count(&pods).await);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!("{want} pods ready on loopback addresses in {:.0} s", t.elapsed().as_secs_f64());
        for _ in 0..RUNS {
            let (wall, v) = tokio::task::block_in_place(|| heartbeat(&ws, &c.kubeconfig));
            let ev = &v["checks"][0]["evidence"];
            let (probed, probe_ms) = (ev["probed"].as_u64().unwrap_or(0), ev["probe_ms"].as_u64().unwrap_or(0).max(1));
            println!(
                "  {want} pods: {} Kubernetes API request(s); {probed} probed in {probe_ms} ms ({:.0} probes/s); status {}; run {:.0} ms",
                v["kube_requests"],
                probed as f64 * 1000.0 / probe_ms as f64,
                v["checks"][0]["status"],
                ms(wall)
            );
        }
    }
    // Detection to restart, at 200 pods: scale the rest away first.
    for i in 20..created {
        let _ = deployments.delete(&format!("d-{i}"), &DeleteParams::background()).await;
    }
    let policy = "mode: execute\nrules:\n  - action: restart_pod\n    decide: auto\n";
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let ws = Ws::new(policy, &check.replace("every: 1h\n", "every: 1h\n    threshold: 1\n    cooldown: 1s\n"));
        let list = pods.list(&ListParams::default().labels(&format!("app=d-{round}"))).await.unwrap();
        let Some(victim) = list.items.iter().find(|p| ready_on_loopback(p)) else { continue };
        let (name, uid) = (victim.metadata.name.clone().unwrap(), victim.metadata.uid.clone());
        pods.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {kubelet::PROBE: "fail"}}}))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = Instant::now();
        let kc = c.kubeconfig.clone();
        let run = tokio::task::spawn_blocking(move || heartbeat(&ws, &kc));
        let mut deleted = None;
        while t.elapsed() < Duration::from_secs(60) {
            let p = pods.get_opt(&name).await.ok().flatten();
            if p.is_none_or(|p| p.metadata.deletion_timestamp.is_some() || p.metadata.uid != uid) {
                deleted = Some(t.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (wall, v) = run.await.unwrap();
        let acted = v["incidents"].as_array().into_iter().flatten().flat_map(|i| i["actions"].as_array().cloned().unwrap_or_default()).any(|a| a["action"] == "restart_pod" && a["result"] == "ok");
        match deleted {
            Some(d) if acted => {
                println!("  round {round}: pod deleted {:.0} ms after the run started (whole run with verification {:.0} ms)", ms(d), ms(wall));
                times.push(d);
            }
            _ => println!("  round {round}: no restart seen ({v})"),
        }
    }
    times.sort();
    if !times.is_empty() {
        println!("detection to restart (run start → pod deleted), {} rounds: median {:.0} ms, worst {:.0} ms", times.len(), ms(times[times.len() / 2]), ms(times[times.len() - 1]));
    }
    for i in 0..20.min(created) {
        let _ = deployments.delete(&format!("d-{i}"), &DeleteParams::background()).await;
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) && pods.list(&ListParams::default().limit(1)).await.is_ok_and(|l| !l.items.is_empty()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    for i in 0..NODES {
        let _ = nodes.delete(&format!("{ns}-{i}"), &DeleteParams::default()).await;
    }
    drop(kubelet);
}
