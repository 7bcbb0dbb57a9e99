//! Benchmark: nightshift against the real Kubernetes 1.20 test control plane
//! (scripts/test-cluster.sh) and the simulated kubelet, with 2,000 pods in
//! 200 Deployments on 20 simulated nodes. Prints, without asserting:
//!
//! 1. `nightshift serve`: the time from a pod entering CrashLoopBackOff (as a
//!    client of the API server sees it) to its incident note being written,
//!    over 5 rounds on different Deployments (target < 1 s);
//! 2. Kubernetes API requests: of one-shot `heartbeat --all --json` runs with a
//!    k8s-pods check at 20, 200 and 2,000 pods (constant in the pod count), and
//!    of serve's passes from /metrics `nightshift_kube_requests` (≈ 0 when
//!    nothing new needs a diagnosis: they read the watch cache);
//! 3. peak RSS: of serve with the pods in its watch cache (VmHWM; target
//!    < 100 MB), and of the one-shot heartbeat.
//!
//! Prints a SKIP line (and exits 0) where the control plane is not built.
//! Deletes what it made at the end (the pods one by one). Run with
//! `cargo bench --bench kube` (about 40 s on 2 cores once built).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)] // a benchmark harness: failing loudly is the point

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ms;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::cluster::{DeploymentExt, cluster, deployment};
use support::kubelet::{self, Kubelet};
use support::{Serve, Ws};

/// Replicas per Deployment.
const REPLICAS: usize = 10;
/// Deployments in place at each heartbeat measurement (×10 pods).
const SIZES: [usize; 3] = [2, 20, 200];
const NODES: usize = 20;
/// One-shot heartbeat runs per size.
const HEARTBEAT_RUNS: usize = 3;
/// The Deployments whose pod crash-loops, one per latency round.
const ROUNDS: [usize; 5] = [13, 57, 101, 149, 193];
const WAIT: Duration = Duration::from_secs(120);

fn main() {
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    rt.block_on(run());
    println!("bench total: {:.0} s", start.elapsed().as_secs_f64());
    // The simulated kubelet's tasks and log server die with the process.
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn policy() -> &'static str {
    "mode: dry-run\n"
}

/// `every: 1h`: in serve, only the watch can bring the check forward.
/// `max_restarts` high so a pod that crash-looped for a second and runs
/// again is healthy (the recovery passes open nothing).
fn checks(ns: &str) -> String {
    format!("checks:\n  - name: pods\n    kind: k8s-pods\n    namespace: {ns}\n    every: 1h\n    ready_grace: 0s\n    max_restarts: 1000\n")
}

fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn crashlooping(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff")))
}

/// Polls `f` every `every` until it returns `Some`; `None` (after a TIMEOUT line) after `limit`.
async fn until<T, F, Fut>(limit: Duration, every: Duration, what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match f().await {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        if start.elapsed() >= limit {
            println!("  TIMEOUT: {what}: not within {:.0} s (last: {last})", limit.as_secs_f64());
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the `n` Deployments report all their replicas ready (their
/// status, written by the real controllers from the pods): a poll reads 200
/// Deployments rather than 2,000 pods (every large JSON list is a chance for
/// the test apiserver's encoder to crash, see `apiserver_alive`).
async fn settle(deployments: &Api<Deployment>, n: usize) -> Option<Duration> {
    let start = Instant::now();
    until(WAIT + WAIT, Duration::from_secs(1), &format!("{} ready pods", n * REPLICAS), || async {
        let list = deployments.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items;
        let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| list.iter().filter_map(|d| d.status.as_ref().and_then(f)).map(|v| v as usize).sum::<usize>();
        let (pods, ready, updated) = (count(|s| s.replicas), count(|s| s.ready_replicas), count(|s| s.updated_replicas));
        let want = n * REPLICAS;
        if list.len() == n && pods == want && ready == want && updated == want { Ok(start.elapsed()) } else { Err(format!("{} deployments, {pods} pods, {ready} ready", list.len())) }
    })
    .await
}

/// The test apiserver's pid (scripts/test-cluster.sh writes it next to the kubeconfig).
fn apiserver_pid(kubeconfig: &Path) -> Option<u32> {
    std::fs::read_to_string(kubeconfig.parent()?.join("apiserver.pid")).ok()?.trim().parse().ok()
}

/// Whether the apiserver that ran at the start still runs. The 1.20 apiserver
/// built with Go >= 1.18 vendors modern-go/reflect2 1.0.1, whose map iteration
/// does not match the newer runtime: JSON encoding can crash it with
/// `fatal error: fault` in `reflect2.UnsafeIterate` (modern-go/reflect2#26).
fn apiserver_alive(kubeconfig: &Path, pid: Option<u32>) -> bool {
    pid.is_some_and(|p| apiserver_pid(kubeconfig) == Some(p) && Path::new(&format!("/proc/{p}")).exists())
}

// ---------------------------------------------------------------------------
// One-shot heartbeat: wall time, peak RSS, requests
// ---------------------------------------------------------------------------

struct Shot {
    wall: Duration,
    rss_kib: i64,
    code: i32,
    /// `kube_requests` of the JSON report; `None` when the field is absent.
    json_requests: Option<u64>,
    /// Requests kube-client logged (`requesting`, NIGHTSHIFT_LOG=kube_client=debug), with their URLs.
    logged: Vec<String>,
    status: String,
    summary: String,
}

/// Runs `heartbeat --all --json` as a fresh process: wall time and its own peak RSS (wait4).
fn heartbeat(ws: &Ws, kubeconfig: &Path, out_dir: &Path) -> Shot {
    let (out, err) = (out_dir.join("heartbeat.json"), out_dir.join("heartbeat.log"));
    let mut cmd = ws.cmd(&["heartbeat", "--all", "--json"]);
    cmd.env("KUBECONFIG", kubeconfig).env("NIGHTSHIFT_LOG", "warn,kube_client=debug").env("NIGHTSHIFT_LOG_FORMAT", "json");
    cmd.stdout(std::fs::File::create(&out).expect("stdout file")).stderr(std::fs::File::create(&err).expect("stderr file")).stdin(Stdio::null());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn nightshift");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers; the Child is not waited on elsewhere.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let wall = start.elapsed();
    std::mem::forget(child);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let log = std::fs::read_to_string(&err).unwrap_or_default();
    let logged = requests_logged(&log);
    let summary = v["checks"].as_array().and_then(|c| c.first()).and_then(|c| c["summary"].as_str()).unwrap_or("").to_string();
    Shot {
        wall,
        rss_kib: usage.ru_maxrss,
        code: nix::libc::WEXITSTATUS(status),
        json_requests: v.get("kube_requests").and_then(Value::as_u64),
        logged,
        status: v["status"].as_str().unwrap_or(if v.is_null() { "no JSON" } else { "?" }).to_string(),
        summary,
    }
}

/// The requests kube-client logged (JSON log lines, `requesting`): `verb path`.
fn requests_logged(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "requesting")
        .map(|v| {
            let url = v["span"]["http.url"].as_str().unwrap_or("?");
            let path = url.splitn(4, '/').nth(3).map_or(url.to_string(), |p| format!("/{}", p.trim_end_matches('?')));
            format!("{} {path}", v["span"]["otel.name"].as_str().unwrap_or("?"))
        })
        .collect()
}

/// Requests grouped by shape: the namespace, pod and node names, resource
/// versions and continue tokens replaced.
fn grouped(requests: &[String], ns: &str) -> Vec<(usize, String)> {
    let names = regex::Regex::new(r"d-\d+-[a-z0-9]+-[a-z0-9]+|resourceVersion=\d+|continue=[^&]+").expect("regex");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in requests {
        let r = r.replace(ns, "<ns>");
        let r = names.replace_all(&r, |c: &regex::Captures| match &c[0] {
            s if s.starts_with("resourceVersion") => "resourceVersion=…".to_string(),
            s if s.starts_with("continue") => "continue=…".to_string(),
            _ => "<pod>".to_string(),
        });
        *counts.entry(r.into_owned()).or_default() += 1;
    }
    let mut v: Vec<(usize, String)> = counts.into_iter().map(|(k, n)| (n, k)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    v
}

// ---------------------------------------------------------------------------
// serve: /metrics and the incidents directory
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    requests: f64,
    passes: f64,
    /// Runs of the `pods` check (any status).
    pod_checks: f64,
}

fn sum_metric(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| !l.starts_with('#') && l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

fn counters(addr: &str) -> Counters {
    let (code, body) = tokio::task::block_in_place(|| support::http_request(addr, "GET", "/metrics", &[], b""));
    if code != 200 {
        println!("  /metrics answered {code}");
    }
    Counters {
        requests: sum_metric(&body, "nightshift_kube_requests_total"),
        passes: sum_metric(&body, "nightshift_passes_total"),
        pod_checks: sum_metric(&body, "nightshift_checks_total{check=\"pods\""),
    }
}

fn incident_files(ws: &Ws) -> HashSet<PathBuf> {
    ws.incident_files().into_iter().collect()
}

/// (VmHWM, VmRSS) in KiB.
fn proc_memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

struct Round {
    deployment: String,
    /// Patch → CrashLoopBackOff visible to a client (the simulated kubelet's part).
    to_crashloop: Duration,
    /// CrashLoopBackOff visible → incident note written.
    latency: Option<f64>,
    incident_requests: f64,
    incident_passes: f64,
    recovery_requests: f64,
    recovery_passes: f64,
}

/// One latency round: one pod of `dep` starts crash-looping; then it runs again.
async fn round(pods: &Api<Pod>, ns: &str, ws: &Ws, addr: &str, dep: &str) -> Option<Round> {
    let list = pods.list(&ListParams::default().labels(&format!("app={dep}"))).await.ok()?.items;
    let Some(pod) = list.iter().find(|p| ready(p)).and_then(|p| p.metadata.name.clone()) else {
        println!("  {dep}: no ready pod");
        return None;
    };
    let before_files = incident_files(ws);
    let before = counters(addr);
    let needle = format!("{ns}/deployment/{dep}");
    let patched = Instant::now();
    let patch = json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "crashloop"}}});
    pods.patch(&pod, &PatchParams::default(), &Patch::Merge(&patch)).await.ok()?;
    // t0: this client sees the waiting reason (a GET every 20 ms).
    let seen = {
        let (pods, pod) = (pods.clone(), pod.clone());
        tokio::spawn(async move {
            until(Duration::from_secs(30), Duration::from_millis(20), "CrashLoopBackOff visible", || async {
                let p = pods.get(&pod).await.map_err(|e| e.to_string())?;
                if crashlooping(&p) { Ok(Instant::now()) } else { Err("not yet".into()) }
            })
            .await
        })
    };
    // t1: a new incident note naming the Deployment (the directory every 10 ms).
    let opened = until(Duration::from_secs(30), Duration::from_millis(10), &format!("an incident for {dep}"), || async {
        for f in incident_files(ws).difference(&before_files) {
            if std::fs::read_to_string(f).is_ok_and(|t| t.contains(&needle)) {
                return Ok(Instant::now());
            }
        }
        Err("none yet".to_string())
    })
    .await;
    let t0 = seen.await.ok().flatten();
    let latency = match (t0, opened) {
        (Some(t0), Some(t1)) => Some(if t1 >= t0 { ms(t1 - t0) } else { -ms(t0 - t1) }),
        _ => None,
    };
    // The pass that wrote the note records its requests when it completes.
    let at_note = counters(addr);
    until(Duration::from_secs(30), Duration::from_millis(20), "the incident pass to finish", || async {
        let now = counters(addr);
        if now.passes > at_note.passes || opened.is_none() { Ok(()) } else { Err(format!("{} passes", now.passes)) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_incident = counters(addr);

    // Recovery: the pod runs again; the watch forces a pass of the check, which reads the cache.
    let patch = json!({"metadata": {"annotations": {kubelet::BEHAVIOR: "running"}}});
    pods.patch(&pod, &PatchParams::default(), &Patch::Merge(&patch)).await.ok()?;
    until(Duration::from_secs(30), Duration::from_millis(20), "the pod ready and a pass of the check", || async {
        let p = pods.get(&pod).await.map_err(|e| e.to_string())?;
        let now = counters(addr);
        if ready(&p) && now.pod_checks > after_incident.pod_checks { Ok(()) } else { Err(format!("ready {}, {} check runs", ready(&p), now.pod_checks)) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = counters(addr);
    Some(Round {
        deployment: dep.to_string(),
        to_crashloop: t0.map(|t| t - patched).unwrap_or_default(),
        latency,
        incident_requests: after_incident.requests - before.requests,
        incident_passes: after_incident.passes - before.passes,
        recovery_requests: after.requests - after_incident.requests,
        recovery_passes: after.passes - after_incident.passes,
    })
}

async fn run() {
    let Some(c) = cluster().await else {
        println!("SKIP: no Kubernetes test cluster (scripts/test-cluster.sh build)");
        return;
    };
    let kubeconfig = c.kubeconfig.clone();
    let apiserver = apiserver_pid(&kubeconfig);
    let ns = c.namespace("bench-kube").await;
    let kubelet = Kubelet::start(c.client.clone(), &ns).await;
    let started = Instant::now();
    futures::future::join_all((0..NODES).map(|i| {
        let (kubelet, ns) = (&kubelet, &ns);
        async move { kubelet.add_node_with(&format!("{ns}-{i}"), 110, true).await }
    }))
    .await;
    println!("namespace {ns}: {NODES} dedicated simulated nodes (110 pods each) in {:.1} s", started.elapsed().as_secs_f64());
    let mut created = 0;
    measure(&c, &ns, apiserver, &mut created).await;
    if !apiserver_alive(&kubeconfig, apiserver) {
        println!("NOTE: the test apiserver died during the bench (see apiserver.log next to {}); figures after that are not valid", kubeconfig.display());
        return;
    }
    cleanup(&c, &ns, created).await;
    drop(kubelet);
}

/// Leaves no 2,000 pods behind: a later test process would delete them in one
/// collection, whose response (every deleted pod, in JSON) is the kind of large
/// encode that crashes the test apiserver. The Deployments go one by one, the
/// garbage collector and the simulated kubelet (still running) finish the pods
/// one by one, then the nodes and the namespace go.
async fn cleanup(c: &support::cluster::Cluster, ns: &str, created: usize) {
    use futures::StreamExt;
    let t = Instant::now();
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), ns);
    futures::stream::iter(0..created)
        .for_each_concurrent(16, |i| {
            let deployments = &deployments;
            async move {
                let _ = deployments.delete(&format!("d-{i}"), &DeleteParams::background()).await;
            }
        })
        .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let gone = until(WAIT, Duration::from_secs(1), "the pods deleted", || async {
        let l = pods.list(&ListParams::default().limit(1)).await.map_err(|e| e.to_string())?;
        if l.items.is_empty() { Ok(()) } else { Err(format!("{} pods left", l.items.len() as i64 + l.metadata.remaining_item_count.unwrap_or(0))) }
    })
    .await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    for i in 0..NODES {
        let _ = nodes.delete(&format!("{ns}-{i}"), &DeleteParams::default()).await;
    }
    if gone.is_some() {
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(c.client.clone()).delete(ns, &DeleteParams::default()).await;
    }
    println!("cleanup: Deployments, pods, nodes{} deleted in {:.0} s", if gone.is_some() { " and the namespace" } else { "" }, t.elapsed().as_secs_f64());
}

/// The measurements, in the namespace with its nodes; `created` counts the Deployments made.
async fn measure(c: &support::cluster::Cluster, ns: &str, apiserver: Option<u32>, created: &mut usize) {
    let kubeconfig = c.kubeconfig.clone();
    let ns = ns.to_string();
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let hb_ws = Ws::new(policy(), &checks(&ns));

    // --- 2. one-shot heartbeat at 20, 200 and 2,000 pods -------------------------------
    println!();
    println!("heartbeat --all --json (one fresh process per run, {HEARTBEAT_RUNS} runs per size; k8s-pods check on the namespace;");
    println!("requests/run counted from kube-client's debug log, \"(json field)\" is the report's kube_requests):");
    println!("  {:>6} {:>10} {:>14} {:>14} {:>12} {:>12} {:>8}  check", "pods", "settled", "requests/run", "(json field)", "wall med", "peak RSS", "exit");
    let mut hb_rss_2000 = 0;
    for (si, &size) in SIZES.iter().enumerate() {
        let t = Instant::now();
        futures::future::join_all((*created..size).map(|i| {
            let (api, ns) = (&deployments, &ns);
            async move {
                if let Err(e) = api.create(&PostParams::default(), &deployment(&format!("d-{i}"), REPLICAS as i32, "running").dedicated(ns)).await {
                    println!("  creating d-{i}: {e}");
                }
            }
        }))
        .await;
        *created = size;
        let n = size * REPLICAS;
        let Some(_) = settle(&deployments, size).await else {
            println!("  the pods did not settle: stopping{}", if apiserver_alive(&kubeconfig, apiserver) { "" } else { " (the test apiserver died: see apiserver.log next to the kubeconfig)" });
            return;
        };
        let settled = t.elapsed();
        if si == 0 {
            // The first run creates memory/ (git init); not a steady-state figure.
            let kc = kubeconfig.clone();
            let shot = tokio::task::block_in_place(|| heartbeat(&hb_ws, &kc, out_dir.path()));
            println!("  (first run, creates the memory: {:.0} ms, {} request(s), {})", ms(shot.wall), shot.logged.len(), shot.status);
        }
        let mut shots: Vec<Shot> = Vec::new();
        for _ in 0..HEARTBEAT_RUNS {
            let kc = kubeconfig.clone();
            shots.push(tokio::task::block_in_place(|| heartbeat(&hb_ws, &kc, out_dir.path())));
        }
        let mut walls: Vec<Duration> = shots.iter().map(|s| s.wall).collect();
        walls.sort();
        let reqs: Vec<usize> = shots.iter().map(|s| s.logged.len()).collect();
        let json: Vec<String> = shots.iter().map(|s| s.json_requests.map_or("absent".to_string(), |r| r.to_string())).collect();
        let rss = shots.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        if size == *SIZES.last().unwrap_or(&0) {
            hb_rss_2000 = rss;
        }
        let codes: Vec<String> = shots.iter().map(|s| s.code.to_string()).collect();
        let req_text = if reqs.iter().all(|r| *r == reqs[0]) { reqs[0].to_string() } else { format!("{reqs:?}") };
        let json_text = if json.iter().all(|r| *r == json[0]) { json[0].clone() } else { json.join(",") };
        let last = shots.last().expect("runs");
        println!(
            "  {:>6} {:>8.1} s {:>14} {:>14} {:>9.1} ms {:>8.1} MiB {:>8}  {} ({})",
            n,
            settled.as_secs_f64(),
            req_text,
            json_text,
            ms(walls[walls.len() / 2]),
            mib(rss as f64),
            codes.join(","),
            last.status,
            last.summary
        );
        println!("         requested: {}", grouped(&last.logged, &ns).iter().map(|(n, r)| format!("{n}× {r}")).collect::<Vec<_>>().join(", "));
    }

    // --- serve with 2,000 pods --------------------------------------------------------
    println!();
    // Counted from one item and the server's remainingItemCount: no large list.
    let all_pods = Api::<Pod>::all(c.client.clone()).list(&ListParams::default().limit(1)).await.map(|l| l.items.len() as i64 + l.metadata.remaining_item_count.unwrap_or(0)).unwrap_or(0);
    let serve_ws = Ws::new(policy(), &checks(&ns));
    let addr = format!("127.0.0.1:{}", support::free_port());
    let serve_log = out_dir.path().join("serve.log");
    let mut cmd = serve_ws.cmd(&["serve", "--listen", &addr]);
    cmd.env("KUBECONFIG", &kubeconfig)
        .env("NIGHTSHIFT_LOG", "info,kube_client=debug")
        .env("NIGHTSHIFT_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&serve_log).expect("serve log"));
    let t = Instant::now();
    let serve = Serve { addr: addr.clone(), child: cmd.spawn().expect("spawn nightshift serve") };
    let pid = serve.child.id();
    if !tokio::task::block_in_place(|| support::wait_listening(&addr, Duration::from_secs(20))) {
        println!("  serve did not listen within 20 s:\n{}", tail(&serve_log, 20));
        return;
    }
    let state = serve_ws.memory().join("state/state.json");
    if until(WAIT, Duration::from_millis(50), "serve's first pass", || async { if state.exists() { Ok(()) } else { Err("no state.json".into()) } }).await.is_none() {
        println!("{}", tail(&serve_log, 20));
        return;
    }
    let first_pass = t.elapsed();
    // The pass at start-up may run before the watch has listed; the watch's first list wakes another.
    until(Duration::from_secs(30), Duration::from_millis(50), "a pass after the watch listed", || async {
        let n = counters(&addr);
        if n.passes >= 2.0 { Ok(()) } else { Err(format!("{} passes", n.passes)) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warm = counters(&addr);
    let (hwm_warm, rss_warm) = proc_memory(pid);
    println!(
        "nightshift serve ({all_pods} pods in the cluster, {} in the namespace): first pass {:.1} s after start; after start-up {} passes, {} API requests (lists and watches included); VmHWM {:.1} MiB, VmRSS {:.1} MiB",
        *created * REPLICAS,
        first_pass.as_secs_f64(),
        warm.passes,
        warm.requests,
        mib(hwm_warm as f64),
        mib(rss_warm as f64)
    );

    // --- 1. CrashLoopBackOff → incident -----------------------------------------------
    println!();
    println!("serve: CrashLoopBackOff → incident note (one pod of a different Deployment each round; t0 = a GET every 20 ms sees the reason, t1 = the note in memory/incidents, polled every 10 ms):");
    println!("  {:<8} {:>14} {:>14} {:>22} {:>22}", "deploy", "patch→CLBO", "CLBO→incident", "to note: req/passes", "after: req/passes");
    let mut rounds = Vec::new();
    for i in ROUNDS {
        let dep = format!("d-{i}");
        match round(&pods, &ns, &serve_ws, &addr, &dep).await {
            Some(r) => {
                println!(
                    "  {:<8} {:>11.0} ms {:>14} {:>15} / {:<4} {:>15} / {:<4}",
                    r.deployment,
                    ms(r.to_crashloop),
                    r.latency.map_or("timeout".to_string(), |l| format!("{l:.0} ms")),
                    r.incident_requests,
                    r.incident_passes,
                    r.recovery_requests,
                    r.recovery_passes
                );
                rounds.push(r);
            }
            None => println!("  {dep:<8} failed"),
        }
    }
    let mut lat: Vec<f64> = rounds.iter().filter_map(|r| r.latency).collect();
    lat.sort_by(f64::total_cmp);
    if lat.is_empty() {
        println!("  no latency measured; serve's log:\n{}", tail(&serve_log, 30));
    } else {
        println!("  CLBO→incident: median {:.0} ms, max {:.0} ms over {} rounds (target < 1000 ms)", lat[lat.len() / 2], lat[lat.len() - 1], lat.len());
    }
    let sum = |f: fn(&Round) -> f64| rounds.iter().map(f).sum::<f64>();
    let (ir, ip, rr, rp) = (sum(|r| r.incident_requests), sum(|r| r.incident_passes), sum(|r| r.recovery_requests), sum(|r| r.recovery_passes));
    println!("  API requests of serve's passes (/metrics nightshift_kube_requests_total; passes also run when other namespaces change: the watch is cluster-wide):");
    println!("    patch → the pass that wrote the note: {ir} requests in {ip} passes ({:.1} per new incident)", if rounds.is_empty() { 0.0 } else { ir / rounds.len() as f64 });
    println!("    after the note, until the pod ran again and a pass saw it: {rr} requests in {rp} passes ({:.2} per pass)", if rp > 0.0 { rr / rp } else { 0.0 });
    println!("    (a pass reads pods from the watch cache; only a failing workload's diagnosis asks the API: its pod's events and previous logs, see the list of requests below)");

    // --- 3. peak RSS ------------------------------------------------------------------
    let end = counters(&addr);
    let (hwm, rss) = proc_memory(pid);
    println!();
    println!("peak RSS:");
    println!(
        "  nightshift serve, {all_pods} pods in its watch cache ({} of them in the checked namespace), after {} passes: VmHWM {:.1} MiB, VmRSS {:.1} MiB (target < 100 MB = 95.4 MiB)",
        *created * REPLICAS,
        end.passes,
        mib(hwm as f64),
        mib(rss as f64)
    );
    println!("  nightshift heartbeat --all (one-shot, {} pods listed): {:.1} MiB", *created * REPLICAS, mib(hb_rss_2000 as f64));
    let log = std::fs::read_to_string(&serve_log).unwrap_or_default();
    drop(serve);
    println!();
    println!("every request serve sent (kube-client's log; the watch's lists and watches included):");
    for (n, r) in grouped(&requests_logged(&log), &ns) {
        println!("  {n:>4}× {r}");
    }
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\"")).collect();
    if !warnings.is_empty() {
        println!("  serve logged {} warning/error line(s); the last: {}", warnings.len(), warnings[warnings.len() - 1]);
    }
}
