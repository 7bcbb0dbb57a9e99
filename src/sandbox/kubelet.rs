//! A simulated kubelet (in the spirit of kwok) for the kubelet-less test
//! control plane: it registers Nodes, drives the status of its namespace's
//! pods through the status subresource as a kubelet would, emits the
//! kubelet's Events, finishes pod deletions, and serves container logs to
//! the apiserver's `pods/log` proxy.
//!
//! What a pod's container does comes from its annotations (set them on a
//! Deployment's pod template; patch a live pod's to change its course):
//!
//! - `sim.nightshift.test/behavior` ([`BEHAVIOR`]): `running` (the default),
//!   `crashloop`, `oom`, `liveness`, `startup` (killed by its startup probe),
//!   `imagepull` or `not-ready`.
//! - `sim.nightshift.test/exit-code` ([`EXIT_CODE`]): the crashing
//!   container's exit code (crashloop; default 1).
//! - `sim.nightshift.test/restart-every` ([`RESTART_EVERY`]): seconds between
//!   restarts (and between repeated events) of a failing container (default 2).
//! - `sim.nightshift.test/container` ([`CONTAINER`]): the container the
//!   behavior applies to (default the first); the others run and are ready.
//!   Naming an init container that crashes keeps the pod Pending: the init
//!   container crash-loops and the application's containers wait
//!   (`PodInitializing`), as a kubelet reports it.
//! - `sim.nightshift.test/log` ([`LOG`]): the container's log text, served
//!   for `GET pods/{pod}/log` (current and `previous=true`);
//!   `sim.nightshift.test/log.<container>` for one container only.
//!
//! - `sim.nightshift.test/probe`, `…/exec`, `…/exec-output` (see
//!   [`super::pod_probes`]): a loopback address whose declared container
//!   ports answer HTTP and TCP probes (ok, fail, refuse or hang), and the
//!   answer to `pods/exec`.
//!
//! Configuration: as a kubelet does, a container whose environment names a
//! ConfigMap or Secret (or a key of one) that does not exist is not created:
//! it waits with `CreateContainerConfigError` and the kubelet's message
//! (`couldn't find key K in ConfigMap NS/NAME`, `configmap "NAME" not
//! found`), the pod stays Pending, and it starts once the reference
//! resolves (checked every second against the API).
//!
//! Logs: every simulated Node advertises the same kubelet port
//! ([`kubelet_port`]: NIGHTSHIFT_SIM_KUBELET_PORT, else the apiserver's
//! port plus 3, so 16446) on InternalIP 127.0.0.1 (scripts/test-cluster.sh runs the
//! apiserver with `--kubelet-preferred-address-types InternalIP,…`; the
//! Hostname address does not resolve). One HTTPS server per test process
//! (its own thread and runtime, a self-signed certificate from openssl)
//! tries to bind that port and retries every 200 ms while another process
//! holds it, so a later or concurrent process takes over when the holder
//! exits. The server is stateless: it reads the pod (with its own client)
//! and answers from its annotations, so whichever process holds the port
//! serves every namespace's logs.
//!
//! Nodes: `sim-shared-0..2` are shared by every test (never change their
//! state). Test-owned nodes (`add_node`) carry the labels
//! `sim.nightshift.test/owner=<namespace>` and the process's pid and host;
//! node Leases (`kube-node-lease/<node>`) are renewed every 10 s, as a
//! kubelet does, while the node is not NotReady.
//!
//! Leftovers: tests leave their namespaces and nodes behind. The first
//! `Kubelet::start` of a process removes those of exited test processes on
//! this host (by their pid and host labels): their nodes are deleted, their
//! namespaces deleted and their pods finished with grace period 0.

// The simulator's own API panics on a broken sandbox (a node it cannot
// create); `nightshift drill` runs each scenario in a task of its own and
// reports such a panic as that scenario's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, PodSpec, Toleration};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use super::pod_probes::{EXEC, EXEC_OUTPUT, PROBE};
pub const BEHAVIOR: &str = "sim.nightshift.test/behavior";
pub const EXIT_CODE: &str = "sim.nightshift.test/exit-code";
pub const RESTART_EVERY: &str = "sim.nightshift.test/restart-every";
pub const CONTAINER: &str = "sim.nightshift.test/container";
pub const LOG: &str = "sim.nightshift.test/log";
/// Label and taint key of a dedicated node; its value is the owning namespace.
pub const DEDICATED: &str = "sim.nightshift.test/dedicated";
/// Label on test-owned nodes; its value is the owning namespace.
pub const OWNER: &str = "sim.nightshift.test/owner";
/// Labels on test namespaces and test-owned nodes: the creating process and its host.
pub const PID: &str = "sim.nightshift.test/pid";
pub const HOST: &str = "sim.nightshift.test/host";
pub const SHARED_NODES: [&str; 3] = ["sim-shared-0", "sim-shared-1", "sim-shared-2"];

const LEASE_NS: &str = "kube-node-lease";

/// A node's condition, as a kubelet or the node-lifecycle controller shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    /// The kubelet stopped posting: every condition Unknown (NodeStatusUnknown)
    /// and the `node.kubernetes.io/unreachable` taints; its pods turn Ready=False.
    NotReady,
    MemoryPressure,
    DiskPressure,
    PIDPressure,
}

/// Adds what a pod needs to run on `namespace`'s dedicated node: a
/// nodeSelector on the dedicated label and a toleration for its taint.
pub fn dedicate(spec: &mut PodSpec, namespace: &str) {
    spec.node_selector.get_or_insert_with(Default::default).insert(DEDICATED.to_string(), namespace.to_string());
    spec.tolerations.get_or_insert_with(Default::default).push(Toleration {
        key: Some(DEDICATED.into()),
        operator: Some("Equal".into()),
        value: Some(namespace.into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    });
}

#[derive(Clone, Copy, Debug)]
struct OwnNode {
    dedicated: bool,
    state: NodeState,
}

type Nodes = Arc<Mutex<HashMap<String, OwnNode>>>;

/// The simulated kubelet of one namespace. Its tasks stop when it is dropped
/// (or when the test's runtime ends).
pub struct Kubelet {
    client: kube::Client,
    namespace: String,
    port: u16,
    nodes: Nodes,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Kubelet {
    /// Ensures the shared nodes, then drives the pods of `namespace` on any node.
    pub async fn start(client: kube::Client, namespace: &str) -> Kubelet {
        let port = kubelet_port();
        futures::future::join_all(SHARED_NODES.iter().map(|n| ensure_shared(&client, n, port))).await;
        let nodes: Nodes = Arc::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sim = Sim::new(client.clone(), namespace, nodes.clone());
        let mut tasks = vec![tokio::spawn(sim.run(rx)).abort_handle()];
        tasks.push(tokio::spawn(renew_leases(client.clone(), nodes.clone())).abort_handle());
        Kubelet { client, namespace: namespace.to_string(), port, nodes, tx, tasks }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Registers a Ready node of this test (16 CPUs, 64Gi, 250 pods). A
    /// `dedicated` node gets the taint and label `sim.nightshift.test/dedicated=<namespace>`
    /// (NoSchedule), so only pods with `dedicate()` land on it. Use names no
    /// other test uses (e.g. derived from the namespace).
    pub async fn add_node(&self, name: &str, dedicated: bool) {
        self.add_node_with(name, 250, dedicated).await;
    }

    /// `add_node` with a pod capacity.
    pub async fn add_node_with(&self, name: &str, pods: u32, dedicated: bool) {
        let owner = Owner { namespace: &self.namespace, dedicated };
        register(&self.client, name, pods, Some(owner), self.port).await;
        self.nodes.lock().unwrap().insert(name.to_string(), OwnNode { dedicated, state: NodeState::Ready });
        renew_node_lease(&self.client, name).await;
    }

    /// Sets the conditions (and the node-lifecycle taints) of one of this
    /// test's nodes; pods on a NotReady node turn Ready=False, as the
    /// node-lifecycle controller would make them.
    pub async fn set_node(&self, name: &str, state: NodeState) {
        let own = self.nodes.lock().unwrap().get(name).copied().unwrap_or_else(|| panic!("set_node: {name} is not a node of this Kubelet (add_node it; shared nodes stay Ready)"));
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get(name).await.unwrap_or_else(|e| panic!("node {name}: {e}"));
        let old = node.status.and_then(|s| s.conditions).unwrap_or_default();
        let conditions = node_conditions(state, &old);
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": conditions}}))).await.unwrap_or_else(|e| panic!("node {name} status: {e}"));
        let taints = node_taints(own.dedicated.then_some(self.namespace.as_str()), state);
        nodes.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": taints}}))).await.unwrap_or_else(|e| panic!("node {name} taints: {e}"));
        let previous = self.nodes.lock().unwrap().insert(name.to_string(), OwnNode { state, ..own }).map(|o| o.state);
        if previous != Some(state) {
            node_event(&self.client, name, state).await;
        }
        if state != NodeState::NotReady {
            renew_node_lease(&self.client, name).await;
        }
        let _ = self.tx.send(name.to_string());
    }
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Owner<'a> {
    namespace: &'a str,
    dedicated: bool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn micro_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `n` hex digits derived from `seed` (stable).
fn hex(seed: &str, n: usize) -> String {
    use std::hash::{Hash, Hasher};
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < n {
        let mut h = std::hash::DefaultHasher::new();
        (seed, i).hash(&mut h);
        s.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    s.truncate(n);
    s
}

fn uuid(seed: &str) -> String {
    let h = hex(seed, 32);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn node_conditions(state: NodeState, old: &[k8s_openapi::api::core::v1::NodeCondition]) -> Vec<Value> {
    let kinds = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ("Ready", "KubeletReady", "kubelet is posting ready status", "", ""),
    ];
    let now = now();
    kinds
        .iter()
        .map(|(kind, ok_reason, ok_message, bad_reason, bad_message)| {
            let pressed = matches!((state, *kind), (NodeState::MemoryPressure, "MemoryPressure") | (NodeState::DiskPressure, "DiskPressure") | (NodeState::PIDPressure, "PIDPressure"));
            let (status, reason, message) = if state == NodeState::NotReady {
                ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
            } else if pressed {
                ("True", *bad_reason, *bad_message)
            } else if *kind == "Ready" {
                ("True", *ok_reason, *ok_message)
            } else {
                ("False", *ok_reason, *ok_message)
            };
            let prev = old.iter().find(|c| c.type_ == *kind);
            let transition = match prev {
                Some(p) if p.status == status => p.last_transition_time.as_ref().map(|t| serde_json::to_value(t).unwrap_or(Value::Null)).unwrap_or_else(|| json!(now)),
                _ => json!(now),
            };
            // A node that stopped posting keeps its last heartbeat.
            let heartbeat = match prev {
                Some(p) if state == NodeState::NotReady => p.last_heartbeat_time.as_ref().map(|t| serde_json::to_value(t).unwrap_or(Value::Null)).unwrap_or_else(|| json!(now)),
                _ => json!(now),
            };
            json!({"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition})
        })
        .collect()
}

fn node_taints(dedicated: Option<&str>, state: NodeState) -> Value {
    let mut taints = Vec::new();
    if let Some(ns) = dedicated {
        taints.push(json!({"key": DEDICATED, "value": ns, "effect": "NoSchedule"}));
    }
    match state {
        NodeState::Ready => {}
        NodeState::NotReady => {
            taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": now()}));
            taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": now()}));
        }
        NodeState::MemoryPressure => taints.push(json!({"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule", "timeAdded": now()})),
        NodeState::DiskPressure => taints.push(json!({"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule", "timeAdded": now()})),
        NodeState::PIDPressure => taints.push(json!({"key": "node.kubernetes.io/pid-pressure", "effect": "NoSchedule", "timeAdded": now()})),
    }
    if taints.is_empty() { Value::Null } else { Value::Array(taints) }
}

fn node_labels(name: &str, owner: Option<Owner>) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "sim.nightshift.test/node": "true",
        OWNER: Value::Null,
        PID: Value::Null,
        HOST: Value::Null,
        DEDICATED: Value::Null,
    });
    if let Some(o) = owner {
        labels[OWNER] = json!(o.namespace);
        for (k, v) in process_labels() {
            labels[k] = json!(v);
        }
        if o.dedicated {
            labels[DEDICATED] = json!(o.namespace);
        }
    }
    labels
}

fn node_status(name: &str, pods: u32, port: u16) -> Value {
    let resources = json!({"cpu": "16", "memory": "64Gi", "pods": pods.to_string(), "ephemeral-storage": "100Gi", "hugepages-1Gi": "0", "hugepages-2Mi": "0"});
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": node_conditions(NodeState::Ready, &[]),
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": hex(&format!("machine {name}"), 32),
            "systemUUID": uuid(&format!("system {name}")),
            "bootID": uuid(&format!("boot {name} {}", std::process::id())),
            "kernelVersion": "6.1.0-18-amd64",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.6.20",
            "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux",
            "architecture": "amd64"
        }
    })
}

/// Creates (or takes over) a node and makes it Ready and schedulable: the
/// apiserver's admission adds `node.kubernetes.io/not-ready:NoSchedule` to
/// every new Node and, with node-lifecycle off, nothing else lifts it.
async fn register(client: &kube::Client, name: &str, pods: u32, owner: Option<Owner<'_>>, port: u16) {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = node_labels(name, owner);
    let mut created_labels = labels.clone();
    if let Some(m) = created_labels.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": created_labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
    }))
    .expect("a Node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            if owner.is_some() {
                nodes.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}}))).await.unwrap_or_else(|e| panic!("node {name} labels: {e}"));
            }
        }
        Err(e) => panic!("creating node {name}: {e}"),
    }
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": node_status(name, pods, port)}))).await.unwrap_or_else(|e| panic!("node {name} status: {e}"));
    let dedicated = owner.filter(|o| o.dedicated).map(|o| o.namespace);
    let spec = json!({"spec": {"taints": node_taints(dedicated, NodeState::Ready), "unschedulable": Value::Null}});
    nodes.patch(name, &PatchParams::default(), &Patch::Merge(spec)).await.unwrap_or_else(|e| panic!("node {name} taints: {e}"));
}

/// A shared node: created if absent, repaired if it is tainted, cordoned,
/// not Ready or advertises another kubelet port, else left alone.
async fn ensure_shared(client: &kube::Client, name: &str, port: u16) {
    let nodes: Api<Node> = Api::all(client.clone());
    if let Ok(Some(node)) = nodes.get_opt(name).await {
        let spec = node.spec.as_ref();
        let untainted = spec.and_then(|s| s.taints.as_ref()).is_none_or(|t| t.is_empty()) && spec.and_then(|s| s.unschedulable) != Some(true);
        let status = node.status.as_ref();
        let ready = status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let same_port = status.and_then(|s| s.daemon_endpoints.as_ref()).and_then(|d| d.kubelet_endpoint.as_ref()).is_some_and(|e| e.port == i32::from(port));
        if untainted && ready && same_port {
            renew_node_lease(client, name).await;
            return;
        }
    }
    register(client, name, 250, None, port).await;
    renew_node_lease(client, name).await;
}

async fn node_event(client: &kube::Client, node: &str, state: NodeState) {
    let (component, reason) = match state {
        NodeState::Ready => ("kubelet", "NodeReady"),
        NodeState::NotReady => ("node-controller", "NodeNotReady"),
        NodeState::MemoryPressure => ("kubelet", "NodeHasInsufficientMemory"),
        NodeState::DiskPressure => ("kubelet", "NodeHasDiskPressure"),
        NodeState::PIDPressure => ("kubelet", "NodeHasInsufficientPID"),
    };
    let t = now();
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name(node), "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": node, "uid": node, "apiVersion": "v1"},
        "reason": reason, "message": format!("Node {node} status is now: {reason}"), "type": "Normal",
        "source": {"component": component, "host": node},
        "firstTimestamp": t, "lastTimestamp": t, "count": 1,
        "reportingComponent": component, "reportingInstance": node,
    });
    if let Ok(ev) = serde_json::from_value::<Event>(ev) {
        let _ = Api::<Event>::namespaced(client.clone(), "default").create(&PostParams::default(), &ev).await;
    }
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

/// Renews a node's Lease as its kubelet would, creating it (owned by the
/// Node, so the garbage collector removes it with the Node) if absent.
async fn renew_node_lease(client: &kube::Client, node: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    let renew = json!({"spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro_now()}});
    match leases.patch(node, &PatchParams::default(), &Patch::Merge(&renew)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_not_found() => {
            let Some(uid) = Api::<Node>::all(client.clone()).get_opt(node).await.ok().flatten().and_then(|n| n.metadata.uid) else { return };
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": LEASE_NS, "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]},
                "spec": renew["spec"].clone()});
            if let Ok(lease) = serde_json::from_value::<Lease>(lease) {
                let _ = leases.create(&PostParams::default(), &lease).await;
            }
        }
        Err(_) => {}
    }
}

/// Every 10 s, like kubelets: the Leases of the shared nodes and of this
/// Kubelet's nodes that are not NotReady.
async fn renew_leases(client: kube::Client, nodes: Nodes) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut names: Vec<String> = SHARED_NODES.iter().map(|s| s.to_string()).collect();
        names.extend(nodes.lock().unwrap().iter().filter(|(_, n)| n.state != NodeState::NotReady).map(|(k, _)| k.clone()));
        for n in names {
            renew_node_lease(&client, &n).await;
        }
    }
}

// ---------------------------------------------------------------------------
// Leftovers of finished test processes
// ---------------------------------------------------------------------------

/// This host's name as a label value.
fn host_label() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut v: String = host.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '-' }).collect();
    v.truncate(63);
    let v = v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if v.is_empty() { "unknown".into() } else { v }
}

/// The labels that let a later process clean up after this one: its pid and host.
pub fn process_labels() -> BTreeMap<String, String> {
    [(PID.to_string(), std::process::id().to_string()), (HOST.to_string(), host_label())].into()
}

/// Whether the labels name a process of this host that has exited.
fn owner_gone(labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(l) = labels else { return false };
    let (Some(pid), Some(host)) = (l.get(PID), l.get(HOST)) else { return false };
    *host == host_label() && pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists())
}

/// Removes what exited test processes of this host left: their nodes, and
/// their namespaces (deleted, then their pods finished with grace period 0,
/// which no kubelet would otherwise do; a Terminating namespace admits no
/// new pods). Runs once per process, in the log server's runtime.
async fn collect_leftovers(client: kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    if let Ok(list) = nodes.list(&ListParams::default().labels(PID)).await {
        for node in list {
            if owner_gone(node.metadata.labels.as_ref())
                && let Some(name) = node.metadata.name
            {
                let _ = nodes.delete(&name, &DeleteParams::default()).await;
                let _ = leases.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let Ok(list) = namespaces.list(&ListParams::default().labels(PID)).await else { return };
    for ns in list {
        let Some(name) = ns.metadata.name.clone() else { continue };
        if !owner_gone(ns.metadata.labels.as_ref()) {
            continue;
        }
        if ns.metadata.deletion_timestamp.is_none() {
            let _ = namespaces.delete(&name, &DeleteParams::default()).await;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
        let _ = pods.delete_collection(&DeleteParams { grace_period_seconds: Some(0), ..Default::default() }, &ListParams::default()).await;
    }
}

// ---------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behavior {
    Running,
    CrashLoop,
    Oom,
    Liveness,
    Startup,
    ImagePull,
    NotReady,
}

impl Behavior {
    fn parse(s: Option<&str>) -> Behavior {
        match s.map(str::trim) {
            None | Some("") | Some("running") => Behavior::Running,
            Some("crashloop") => Behavior::CrashLoop,
            Some("oom") => Behavior::Oom,
            Some("liveness") => Behavior::Liveness,
            Some("startup") => Behavior::Startup,
            Some("imagepull") => Behavior::ImagePull,
            Some("not-ready") => Behavior::NotReady,
            Some(other) => {
                eprintln!("sim kubelet: unknown {BEHAVIOR} {other:?}; the pod runs");
                Behavior::Running
            }
        }
    }

    fn crashes(self) -> bool {
        matches!(self, Behavior::CrashLoop | Behavior::Oom | Behavior::Liveness | Behavior::Startup)
    }
}

/// The annotations that steer a pod, as one string to notice changes.
fn signature(ann: &BTreeMap<String, String>) -> String {
    [BEHAVIOR, EXIT_CODE, RESTART_EVERY, CONTAINER].iter().map(|k| format!("{k}={};", ann.get(*k).map(String::as_str).unwrap_or(""))).collect()
}

/// A unique pod IP: 10.a.b.c from a per-process counter with a random start.
fn next_ip() -> String {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    const SPACE: u32 = 250 * 256 * 254;
    let n = NEXT
        .get_or_init(|| {
            let seed = u32::from_str_radix(&hex(&format!("{} {:?}", std::process::id(), std::time::SystemTime::now()), 8), 16).unwrap_or(0);
            AtomicU32::new(seed % SPACE)
        })
        .fetch_add(1, Ordering::Relaxed)
        % SPACE;
    format!("10.{}.{}.{}", n / (256 * 254) + 1, (n / 254) % 256, n % 254 + 1)
}

fn event_name(object: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    format!("{object}.{:x}", nanos.wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed)))
}

/// An Event the kubelet keeps for a pod and bumps (count, lastTimestamp).
struct EventRec {
    name: String,
    count: i32,
    first: String,
}

#[derive(Debug)]
struct EventJob {
    name: String,
    create: bool,
    body: Value,
}

struct PodSim {
    name: String,
    uid: String,
    node: String,
    containers: Vec<(String, String)>,
    init_containers: Vec<(String, String)>,
    sig: String,
    behavior: Behavior,
    target: String,
    exit_code: i32,
    every: Duration,
    ip: String,
    start_time: String,
    /// When the current behavior began.
    since: String,
    restarts: i32,
    /// The target container's last termination: (reason, exit code, started, finished).
    last_terminated: Option<(&'static str, i32, String, String)>,
    next_tick: Option<Instant>,
    applied: Option<String>,
    events: HashMap<(String, String), EventRec>,
    pending_events: Vec<EventJob>,
    busy: bool,
    dirty: bool,
    deleting: bool,
    retry_at: Option<Instant>,
    node_was_ready: bool,
    /// The ConfigMaps and Secrets the containers' environment names.
    config_refs: Vec<ConfigRef>,
    /// A container that cannot be created for a missing reference: (container, the kubelet's message).
    config_error: Option<(String, String)>,
    config_task: Option<tokio::task::AbortHandle>,
    /// How the pod answers probes on its address (`pod_probes::PROBE`), and the listeners serving that.
    answer: Option<super::pod_probes::Answer>,
    probe_tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for PodSim {
    fn drop(&mut self) {
        if let Some(t) = &self.config_task {
            t.abort();
        }
        self.stop_probes();
    }
}

/// A pod's configuration check: (pod uid, the unresolved reference as (container, message)).
type ConfigChecked = (String, Option<(String, String)>);

/// A container's reference to a ConfigMap or Secret (a key of it, or all of it).
#[derive(Clone, Debug)]
struct ConfigRef {
    container: String,
    secret: bool,
    name: String,
    key: Option<String>,
    optional: bool,
}

fn config_refs(spec: &PodSpec) -> Vec<ConfigRef> {
    let mut out = Vec::new();
    for c in spec.init_containers.iter().flatten().chain(spec.containers.iter()) {
        let r = |secret: bool, name: &str, key: Option<&str>, optional: Option<bool>| ConfigRef {
            container: c.name.clone(),
            secret,
            name: name.to_string(),
            key: key.map(str::to_string),
            optional: optional.unwrap_or(false),
        };
        for e in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(k) = &e.config_map_key_ref {
                out.push(r(false, &k.name, Some(&k.key), k.optional));
            }
            if let Some(k) = &e.secret_key_ref {
                out.push(r(true, &k.name, Some(&k.key), k.optional));
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(k) = &e.config_map_ref {
                out.push(r(false, &k.name, None, k.optional));
            }
            if let Some(k) = &e.secret_ref {
                out.push(r(true, &k.name, None, k.optional));
            }
        }
    }
    out
}

/// The first reference that does not resolve, with the kubelet's message
/// for it; `None` when all resolve (or the API cannot say right now).
async fn config_problem(client: &kube::Client, ns: &str, refs: &[ConfigRef]) -> Option<(String, String)> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    for r in refs {
        let keys: Option<Vec<String>> = if r.secret {
            match Api::<Secret>::namespaced(client.clone(), ns).get_opt(&r.name).await {
                Ok(s) => s.map(|s| s.data.unwrap_or_default().into_keys().chain(s.string_data.unwrap_or_default().into_keys()).collect()),
                Err(_) => continue,
            }
        } else {
            match Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(&r.name).await {
                Ok(c) => c.map(|c| c.data.unwrap_or_default().into_keys().chain(c.binary_data.unwrap_or_default().into_keys()).collect()),
                Err(_) => continue,
            }
        };
        let (kind, lower) = if r.secret { ("Secret", "secret") } else { ("ConfigMap", "configmap") };
        match (keys, &r.key) {
            _ if r.optional => {}
            (None, _) => return Some((r.container.clone(), format!("{lower} \"{}\" not found", r.name))),
            (Some(keys), Some(key)) if !keys.contains(key) => return Some((r.container.clone(), format!("couldn't find key {key} in {kind} {ns}/{}", r.name))),
            _ => {}
        }
    }
    None
}

impl PodSim {
    fn new(pod: &Pod, uid: &str, node: &str) -> PodSim {
        let spec = pod.spec.clone().unwrap_or_default();
        let list = |cs: &[k8s_openapi::api::core::v1::Container]| cs.iter().map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())).collect::<Vec<_>>();
        let t = now();
        PodSim {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.to_string(),
            node: node.to_string(),
            containers: list(&spec.containers),
            init_containers: list(spec.init_containers.as_deref().unwrap_or_default()),
            sig: String::new(),
            behavior: Behavior::Running,
            target: String::new(),
            exit_code: 1,
            every: Duration::from_secs(2),
            // Probed pods get a loopback address their probes can reach; the API server refuses those in Endpoints.
            ip: if super::pod_probes::Answer::of(pod).is_some() { super::pod_probes::next_loopback_ip() } else { next_ip() },
            start_time: t.clone(),
            since: t,
            restarts: 0,
            last_terminated: None,
            next_tick: None,
            applied: None,
            events: HashMap::new(),
            pending_events: Vec::new(),
            busy: false,
            dirty: false,
            deleting: false,
            retry_at: None,
            node_was_ready: true,
            config_refs: config_refs(&spec),
            config_error: None,
            config_task: None,
            answer: None,
            probe_tasks: Vec::new(),
        }
    }

    /// Serves the pod's declared ports on its loopback address as `answer` says (see `pod_probes`).
    fn serve_probes(&mut self, pod: &Pod) {
        let answer = super::pod_probes::Answer::of(pod);
        if answer == self.answer || !self.ip.starts_with("127.") {
            return;
        }
        self.stop_probes();
        self.answer = answer;
        let Some(answer) = answer else { return };
        for port in super::pod_probes::ports(pod) {
            self.probe_tasks.push(tokio::spawn(super::pod_probes::serve(self.ip.clone(), port, answer)).abort_handle());
        }
    }

    fn stop_probes(&mut self) {
        for t in self.probe_tasks.drain(..) {
            t.abort();
        }
    }

    /// (Re)starts the behavior the annotations ask for.
    fn begin(&mut self, ann: &BTreeMap<String, String>) {
        self.sig = signature(ann);
        self.behavior = Behavior::parse(ann.get(BEHAVIOR).map(String::as_str));
        self.target = ann
            .get(CONTAINER)
            .cloned()
            .filter(|c| self.containers.iter().chain(&self.init_containers).any(|(n, _)| n == c))
            .or_else(|| self.containers.first().map(|c| c.0.clone()))
            .unwrap_or_default();
        self.exit_code = ann.get(EXIT_CODE).and_then(|v| v.trim().parse().ok()).unwrap_or(1);
        let secs: f64 = ann.get(RESTART_EVERY).and_then(|v| v.trim().parse().ok()).filter(|s: &f64| *s > 0.0).unwrap_or(2.0);
        self.every = Duration::from_secs_f64(secs.max(0.2));
        self.since = now();
        self.next_tick = (self.behavior != Behavior::Running).then(|| Instant::now() + self.every);
        self.act(true);
    }

    /// What happens when the behavior begins (`first`) and then every `every`.
    fn act(&mut self, first: bool) {
        let image = self.containers.iter().chain(&self.init_containers).find(|(n, _)| *n == self.target).map(|c| c.1.clone()).unwrap_or_default();
        let target = self.target.clone();
        let fp = if self.init_failing() { format!("spec.initContainers{{{target}}}") } else { format!("spec.containers{{{target}}}") };
        match self.behavior {
            Behavior::Running => {}
            b if b.crashes() => {
                self.restarts += 1;
                let (reason, code) = match b {
                    Behavior::Oom => ("OOMKilled", 137),
                    Behavior::Liveness | Behavior::Startup => ("Error", 137),
                    _ => ("Error", self.exit_code),
                };
                self.last_terminated = Some((reason, code, ago(1), now()));
                if b == Behavior::Liveness {
                    self.event("Warning", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500", &fp, 3);
                    self.event("Normal", "Killing", &format!("Container {target} failed liveness probe, will be restarted"), &fp, 1);
                }
                if b == Behavior::Startup {
                    self.event("Warning", "Unhealthy", "Startup probe failed: HTTP probe failed with statuscode: 503", &fp, 3);
                    self.event("Normal", "Killing", &format!("Container {target} failed startup probe, will be restarted"), &fp, 1);
                }
                self.event("Warning", "BackOff", "Back-off restarting failed container", &fp, 1);
            }
            Behavior::ImagePull => {
                self.event("Warning", "Failed", &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"), &fp, 1);
                if first {
                    self.event("Warning", "Failed", "Error: ErrImagePull", &fp, 1);
                }
                self.event("Normal", "BackOff", &format!("Back-off pulling image \"{image}\""), &fp, 1);
                self.event("Warning", "Failed", "Error: ImagePullBackOff", &fp, 1);
            }
            _ => {
                self.event("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", &fp, 1);
            }
        }
    }

    /// Records an event (a new one, or a bump of the same reason and message).
    fn event(&mut self, type_: &str, reason: &str, message: &str, field_path: &str, by: i32) {
        self.event_from("kubelet", type_, reason, message, field_path, by);
    }

    fn event_from(&mut self, component: &str, type_: &str, reason: &str, message: &str, field_path: &str, by: i32) {
        let t = now();
        let key = (reason.to_string(), message.to_string());
        let rec = self.events.entry(key).or_insert_with(|| EventRec { name: event_name(&self.name), count: 0, first: t.clone() });
        rec.count += by;
        let create = rec.count == by;
        let mut involved = json!({"kind": "Pod", "namespace": Value::Null, "name": self.name, "uid": self.uid, "apiVersion": "v1"});
        if !field_path.is_empty() {
            involved["fieldPath"] = json!(field_path);
        }
        let host = if component == "kubelet" { json!(self.node) } else { Value::Null };
        let body = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": rec.name},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component, "host": host},
            "firstTimestamp": rec.first, "lastTimestamp": t, "count": rec.count,
            "reportingComponent": component, "reportingInstance": if component == "kubelet" { self.node.clone() } else { String::new() },
        });
        // One job per event name: a bump replaces a pending one.
        self.pending_events.retain(|e| e.name != rec.name || e.create);
        if let Some(p) = self.pending_events.iter_mut().find(|e| e.name == rec.name) {
            p.body = body;
        } else {
            self.pending_events.push(EventJob { name: rec.name.clone(), create, body });
        }
    }

    fn container_id(&self, n: i32) -> String {
        format!("containerd://{}", hex(&format!("{} {} {n}", self.uid, self.target), 64))
    }

    /// Whether the behavior's container is an init container that crashes.
    fn init_failing(&self) -> bool {
        self.behavior.crashes() && self.init_containers.iter().any(|(n, _)| *n == self.target)
    }

    fn status(&self, node_ready: bool) -> Value {
        let init_failing = self.init_failing();
        let mut statuses = Vec::new();
        let mut unready = Vec::new();
        let behavior = self.behavior;
        for (name, image) in &self.containers {
            let image_id = format!("{}@sha256:{}", image.split(':').next().unwrap_or(image), hex(image, 64));
            let is_target = *name == self.target;
            let restarts = if is_target { self.restarts } else { 0 };
            let running_since = if is_target && (behavior != Behavior::Running || self.restarts > 0) { &self.since } else { &self.start_time };
            let last_state = match (&self.last_terminated, is_target) {
                (Some((reason, code, started, finished)), true) => json!({"terminated": {
                    "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished,
                    "containerID": self.container_id(self.restarts - 1)}}),
                _ => json!({}),
            };
            let own_id = if is_target { self.container_id(self.restarts) } else { format!("containerd://{}", hex(&format!("{} {name}", self.uid), 64)) };
            let config_error = self.config_error.as_ref().filter(|(c, _)| c == name).map(|(_, m)| m);
            let (state, ready, started, id) = if let Some(m) = config_error {
                (json!({"waiting": {"reason": "CreateContainerConfigError", "message": m}}), false, false, None)
            } else if init_failing {
                (json!({"waiting": {"reason": "PodInitializing"}}), false, false, None)
            } else if !is_target || behavior == Behavior::Running {
                (json!({"running": {"startedAt": running_since}}), true, true, Some(own_id))
            } else {
                match behavior {
                    Behavior::ImagePull => (json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}), false, false, None),
                    Behavior::NotReady => (json!({"running": {"startedAt": running_since}}), false, true, Some(own_id)),
                    _ => {
                        let backoff = backoff(self.restarts);
                        let msg = format!("back-off {backoff} restarting failed container={name} pod={}", self.name);
                        (json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}}), false, false, Some(self.container_id(self.restarts - 1)))
                    }
                }
            };
            if !ready {
                unready.push(name.clone());
            }
            let mut s = json!({"name": name, "image": image, "imageID": image_id, "ready": ready, "started": started, "restartCount": restarts, "state": state, "lastState": last_state});
            match id {
                Some(id) => s["containerID"] = json!(id),
                None => s["imageID"] = json!(""),
            }
            statuses.push(s);
        }
        let containers_ready = unready.is_empty();
        let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
        let cond = |kind: &str, ok: bool, since: &str| {
            let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": Value::Null, "lastTransitionTime": since});
            if !ok && !containers_ready {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(unready_msg);
            }
            c
        };
        let ready_since = if self.behavior == Behavior::Running && self.restarts == 0 { &self.start_time } else { &self.since };
        let mut status = json!({
            "phase": if behavior == Behavior::ImagePull || self.config_error.is_some() || init_failing { "Pending" } else { "Running" },
            "hostIP": "127.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "conditions": [
                cond("Initialized", true, &self.start_time),
                cond("Ready", containers_ready && node_ready, ready_since),
                cond("ContainersReady", containers_ready, ready_since),
                cond("PodScheduled", true, &self.start_time),
            ],
            "containerStatuses": statuses,
        });
        if !self.init_containers.is_empty() {
            let inits: Vec<Value> = self
                .init_containers
                .iter()
                .map(|(name, image)| {
                    if init_failing && *name == self.target {
                        let (reason, code, started, finished) = self.last_terminated.clone().unwrap_or(("Error", self.exit_code, self.start_time.clone(), self.since.clone()));
                        let msg = format!("back-off {} restarting failed container={name} pod={}", backoff(self.restarts), self.name);
                        return json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": self.restarts,
                            "lastState": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished, "containerID": self.container_id(self.restarts - 1)}},
                            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}});
                    }
                    json!({"name": name, "image": image, "imageID": format!("{}@sha256:{}", image.split(':').next().unwrap_or(image), hex(image, 64)),
                        "containerID": format!("containerd://{}", hex(&format!("{} init {name}", self.uid), 64)),
                        "ready": true, "restartCount": 0, "lastState": {},
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": self.start_time, "finishedAt": self.start_time}}})
                })
                .collect();
            status["initContainerStatuses"] = Value::Array(inits);
            if init_failing {
                status["conditions"][0] = json!({"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized", "message": format!("containers with incomplete status: [{}]", self.target), "lastProbeTime": Value::Null, "lastTransitionTime": self.start_time});
            }
        }
        status
    }
}

/// The kubelet's crash back-off: 10 s doubling to 5 min, in Go's duration format.
fn backoff(restarts: i32) -> String {
    let secs = (10u64 << (restarts.clamp(1, 10) - 1)).min(300);
    if secs < 60 { format!("{secs}s") } else { format!("{}m{}s", secs / 60, secs % 60) }
}

enum Job {
    Delete { name: String, uid: String },
    Sync { name: String, status: Option<Value>, events: Vec<EventJob> },
}

struct Done {
    uid: String,
    ok: bool,
    applied: Option<String>,
}

/// The pod loop of one Kubelet: one watch on the namespace's pods; writes
/// run as jobs (at most one per pod at a time, 32 at once).
struct Sim {
    client: kube::Client,
    namespace: String,
    nodes: Nodes,
    pods: HashMap<String, PodSim>,
    queue: Vec<String>,
    jobs: tokio::task::JoinSet<Done>,
    limit: Arc<tokio::sync::Semaphore>,
    /// Results of the pods' configuration checks.
    config_tx: tokio::sync::mpsc::UnboundedSender<ConfigChecked>,
    config_rx: Option<tokio::sync::mpsc::UnboundedReceiver<ConfigChecked>>,
}

impl Sim {
    fn new(client: kube::Client, namespace: &str, nodes: Nodes) -> Sim {
        let (config_tx, config_rx) = tokio::sync::mpsc::unbounded_channel();
        Sim {
            client,
            namespace: namespace.to_string(),
            nodes,
            pods: HashMap::new(),
            queue: Vec::new(),
            jobs: tokio::task::JoinSet::new(),
            limit: Arc::new(tokio::sync::Semaphore::new(32)),
            config_tx,
            config_rx: Some(config_rx),
        }
    }

    async fn run(mut self, mut rx: tokio::sync::mpsc::UnboundedReceiver<String>) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listed: Option<HashSet<String>> = None;
        let mut last_error = Instant::now() - Duration::from_secs(60);
        let Some(mut config_rx) = self.config_rx.take() else { return };
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(watcher::Event::Apply(pod))) => self.observe(pod),
                    Some(Ok(watcher::Event::InitApply(pod))) => {
                        if let (Some(seen), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                            seen.insert(uid);
                        }
                        self.observe(pod);
                    }
                    Some(Ok(watcher::Event::Delete(pod))) => {
                        if let Some(uid) = pod.metadata.uid {
                            self.pods.remove(&uid);
                        }
                    }
                    Some(Ok(watcher::Event::Init)) => listed = Some(HashSet::new()),
                    Some(Ok(watcher::Event::InitDone)) => {
                        if let Some(seen) = listed.take() {
                            self.pods.retain(|uid, _| seen.contains(uid));
                        }
                    }
                    Some(Err(e)) => {
                        if last_error.elapsed() > Duration::from_secs(10) {
                            eprintln!("sim kubelet {}: pod watch: {e}", self.namespace);
                            last_error = Instant::now();
                        }
                    }
                    None => return,
                },
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    if let Ok(done) = done {
                        self.finished(done);
                    }
                }
                _ = tick.tick() => self.tick(),
                Some(node) = rx.recv() => self.node_changed(&node),
                Some((uid, problem)) = config_rx.recv() => self.config_checked(&uid, problem),
            }
            self.schedule();
        }
    }

    fn node_ready(&self, node: &str) -> bool {
        self.nodes.lock().unwrap().get(node).is_none_or(|n| n.state != NodeState::NotReady)
    }

    fn observe(&mut self, pod: Pod) {
        let (Some(uid), Some(node)) = (pod.metadata.uid.clone(), pod.spec.as_ref().and_then(|s| s.node_name.clone())) else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            let p = self.pods.entry(uid.clone()).or_insert_with(|| PodSim::new(&pod, &uid, &node));
            if !p.deleting {
                p.deleting = true;
                p.stop_probes();
                self.queue.push(uid);
            }
            return;
        }
        let ann = pod.metadata.annotations.clone().unwrap_or_default();
        let node_ready = self.node_ready(&node);
        let p = self.pods.entry(uid.clone()).or_insert_with(|| PodSim::new(&pod, &uid, &node));
        p.serve_probes(&pod);
        if p.config_task.is_none() && !p.config_refs.is_empty() {
            let (client, ns, refs, tx, uid) = (self.client.clone(), self.namespace.clone(), p.config_refs.clone(), self.config_tx.clone(), uid.clone());
            p.config_task = Some(
                tokio::spawn(async move {
                    loop {
                        let problem = config_problem(&client, &ns, &refs).await;
                        if tx.send((uid.clone(), problem)).is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
                .abort_handle(),
            );
        }
        if p.sig.is_empty() || p.sig != signature(&ann) {
            p.begin(&ann);
            p.node_was_ready = node_ready;
            self.queue.push(uid);
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for (uid, p) in &mut self.pods {
            if p.deleting {
                if p.retry_at.is_some_and(|t| t <= now) {
                    p.retry_at = None;
                    self.queue.push(uid.clone());
                }
                continue;
            }
            let mut due = p.retry_at.is_some_and(|t| t <= now);
            if due {
                p.retry_at = None;
            }
            if let Some(t) = p.next_tick
                && t <= now
            {
                p.next_tick = Some(t.max(now - p.every) + p.every);
                p.act(false);
                due = true;
            }
            if due {
                self.queue.push(uid.clone());
            }
        }
    }

    /// A pod's configuration check: a new unresolved reference stops its
    /// container (with the kubelet's event); a resolved one lets it start.
    fn config_checked(&mut self, uid: &str, problem: Option<(String, String)>) {
        let Some(p) = self.pods.get_mut(uid) else { return };
        if p.deleting || p.config_error == problem {
            return;
        }
        if let Some((container, message)) = &problem {
            p.event("Warning", "Failed", &format!("Error: {message}"), &format!("spec.containers{{{container}}}"), 1);
        } else {
            p.since = now();
        }
        p.config_error = problem;
        self.queue.push(uid.to_string());
    }

    fn node_changed(&mut self, node: &str) {
        let ready = self.node_ready(node);
        for (uid, p) in &mut self.pods {
            if p.node == node && p.node_was_ready != ready {
                p.node_was_ready = ready;
                if !ready {
                    p.event_from("node-controller", "Warning", "NodeNotReady", "Node is not ready", "", 1);
                }
                self.queue.push(uid.clone());
            }
        }
    }

    fn finished(&mut self, done: Done) {
        let Some(p) = self.pods.get_mut(&done.uid) else { return };
        p.busy = false;
        if done.ok {
            if done.applied.is_some() {
                p.applied = done.applied;
            }
        } else {
            p.retry_at = Some(Instant::now() + Duration::from_millis(500));
            if p.deleting {
                return;
            }
        }
        if p.dirty {
            p.dirty = false;
            self.queue.push(done.uid);
        }
    }

    fn schedule(&mut self) {
        for uid in std::mem::take(&mut self.queue) {
            let node_ready = match self.pods.get(&uid) {
                Some(p) => self.node_ready(&p.node),
                None => continue,
            };
            let Some(p) = self.pods.get_mut(&uid) else { continue };
            if p.busy {
                p.dirty = true;
                continue;
            }
            let job = if p.deleting {
                Job::Delete { name: p.name.clone(), uid: uid.clone() }
            } else {
                let status = p.status(node_ready);
                let text = status.to_string();
                let status = (p.applied.as_deref() != Some(text.as_str())).then_some(status);
                let events = std::mem::take(&mut p.pending_events);
                if status.is_none() && events.is_empty() {
                    continue;
                }
                Job::Sync { name: p.name.clone(), status, events }
            };
            p.busy = true;
            let (client, ns, limit) = (self.client.clone(), self.namespace.clone(), self.limit.clone());
            self.jobs.spawn(async move {
                let _permit = limit.acquire_owned().await;
                run_job(client, &ns, uid, job).await
            });
        }
    }
}

async fn run_job(client: kube::Client, ns: &str, uid: String, job: Job) -> Done {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match job {
        Job::Delete { name, uid: pod_uid } => {
            let dp = DeleteParams { grace_period_seconds: Some(0), preconditions: Some(Preconditions { uid: Some(pod_uid), resource_version: None }), ..Default::default() };
            let ok = match pods.delete(&name, &dp).await {
                Ok(_) => true,
                Err(kube::Error::Api(s)) => s.is_not_found() || s.is_conflict(),
                Err(_) => false,
            };
            Done { uid, ok, applied: None }
        }
        Job::Sync { name, status, events } => {
            let mut applied = None;
            if let Some(status) = status {
                let text = status.to_string();
                match pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
                    Ok(_) => applied = Some(text),
                    Err(kube::Error::Api(s)) if s.is_not_found() => return Done { uid, ok: true, applied: None },
                    Err(_) => return Done { uid, ok: false, applied: None },
                }
            }
            let api: Api<Event> = Api::namespaced(client, ns);
            for ev in events {
                let mut body = ev.body;
                body["metadata"]["namespace"] = json!(ns);
                body["involvedObject"]["namespace"] = json!(ns);
                let Ok(event) = serde_json::from_value::<Event>(body.clone()) else { continue };
                let bump = json!({"count": body["count"], "lastTimestamp": body["lastTimestamp"], "message": body["message"]});
                if ev.create {
                    if let Err(kube::Error::Api(s)) = api.create(&PostParams::default(), &event).await
                        && s.is_already_exists()
                    {
                        let _ = api.patch(&ev.name, &PatchParams::default(), &Patch::Merge(&bump)).await;
                    }
                } else if let Err(kube::Error::Api(s)) = api.patch(&ev.name, &PatchParams::default(), &Patch::Merge(&bump)).await
                    && s.is_not_found()
                {
                    let _ = api.create(&PostParams::default(), &event).await;
                }
            }
            Done { uid, ok: true, applied }
        }
    }
}

// ---------------------------------------------------------------------------
// Container logs: the kubelet endpoint the apiserver proxies pods/log to
// ---------------------------------------------------------------------------

/// The port every simulated node advertises as its kubelet endpoint, and
/// which this process's log server (started on first use) tries to hold.
pub fn kubelet_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let kubeconfig = super::kubeconfig_path();
        let port = std::env::var("NIGHTSHIFT_SIM_KUBELET_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or_else(|| apiserver_port(&kubeconfig).map_or(16446, |p| p + 3));
        let started = std::thread::Builder::new().name("sim-kubelet-logs".into()).spawn(move || log_server(port, kubeconfig));
        if let Err(e) = started {
            eprintln!("sim kubelet: cannot start the log server: {e}");
        }
        port
    })
}

fn apiserver_port(kubeconfig: &std::path::Path) -> Option<u16> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let server = kc.clusters.first()?.cluster.as_ref()?.server.clone()?;
    server.trim_end_matches('/').rsplit(':').next()?.parse().ok()
}

fn log_server(port: u16, kubeconfig: PathBuf) {
    crate::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return eprintln!("sim kubelet: log server runtime: {e}"),
    };
    rt.block_on(async move {
        let acceptor = match tls_acceptor() {
            Ok(a) => a,
            Err(e) => return eprintln!("sim kubelet: log server TLS: {e}"),
        };
        let client = match super::client(&kubeconfig).await {
            Ok(c) => c,
            Err(e) => return eprintln!("sim kubelet: log server: {e}"),
        };
        tokio::spawn(collect_leftovers(client.clone()));
        loop {
            let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                // Another test process serves (the same answers); take over when it exits.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            loop {
                let Ok((conn, _)) = listener.accept().await else { continue };
                let (acceptor, client) = (acceptor.clone(), client.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(30), serve_log(conn, acceptor, client)).await;
                });
            }
        }
    });
}

/// A self-signed certificate for 127.0.0.1 from the openssl CLI (the
/// apiserver does not verify kubelets without --kubelet-certificate-authority).
fn tls_acceptor() -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::env::temp_dir().join(format!("nightshift-sim-kubelet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    super::acme::self_signed(&cert, &key, "sim-kubelet", "IP:127.0.0.1,DNS:localhost", 30)?;
    let (cert, key) = (CertificateDer::from_pem_file(&cert).map_err(|e| e.to_string()), PrivateKeyDer::from_pem_file(&key).map_err(|e| e.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cert, key) = (cert?, key?);
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![cert], key).map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_log(conn: tokio::net::TcpStream, acceptor: tokio_rustls::TlsAcceptor, client: kube::Client) -> std::io::Result<()> {
    let mut tls = acceptor.accept(conn).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut chunk).await?;
        if n == 0 || buf.len() > 65536 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    if super::pod_probes::is_exec(&target) {
        return super::pod_probes::exec(tls, &head, &client).await;
    }
    let (code, body) = answer(&client, &target).await;
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let resp = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    tls.write_all(resp.as_bytes()).await?;
    tls.write_all(body.as_bytes()).await?;
    tls.shutdown().await
}

/// GET /containerLogs/{namespace}/{pod}/{container}?tailLines=&previous=&limitBytes=&timestamps=
async fn answer(client: &kube::Client, target: &str) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.first() == Some(&"healthz") {
        return (200, "ok".into());
    }
    let [_, ns, name, container] = parts[..] else { return (404, format!("404 page not found: {path}")) };
    if parts[0] != "containerLogs" {
        return (404, format!("404 page not found: {path}"));
    }
    let pod = match Api::<Pod>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => return (404, format!("pod \"{name}\" not found")),
        Err(e) => return (500, e.to_string()),
    };
    let status = pod.status.as_ref().and_then(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()).find(|c| c.name == container)).cloned();
    let Some(status) = status else { return (400, format!("container \"{container}\" in pod \"{name}\" is not available")) };
    let previous = q.get("previous").is_some_and(|v| *v == "true" || *v == "1");
    if previous && status.restart_count == 0 {
        return (400, format!("previous terminated container \"{container}\" in pod \"{name}\" not found"));
    }
    let waiting = status.state.as_ref().and_then(|s| s.waiting.as_ref());
    if !previous && status.restart_count == 0 && waiting.is_some() {
        let why = match waiting.and_then(|w| w.reason.as_deref()) {
            Some("ImagePullBackOff") | Some("ErrImagePull") => "trying and failing to pull image".to_string(),
            Some(r) => r.to_string(),
            None => "ContainerCreating".to_string(),
        };
        return (400, format!("container \"{container}\" in pod \"{name}\" is waiting to start: {why}"));
    }
    let ann = pod.metadata.annotations.unwrap_or_default();
    let text = ann.get(&format!("{LOG}.{container}")).or_else(|| ann.get(LOG)).cloned().unwrap_or_default();
    let mut lines: Vec<String> = text.split_inclusive('\n').map(|l| if l.ends_with('\n') { l.to_string() } else { format!("{l}\n") }).collect();
    if let Some(n) = q.get("tailLines").and_then(|v| v.parse::<usize>().ok()) {
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    if q.get("timestamps").is_some_and(|v| *v == "true") {
        let ts = pod.status.and_then(|s| s.start_time).map(|t| t.0.to_string()).unwrap_or_default();
        lines = lines.into_iter().map(|l| format!("{ts} {l}")).collect();
    }
    let mut body = lines.concat();
    if let Some(n) = q.get("limitBytes").and_then(|v| v.parse::<usize>().ok())
        && body.len() > n
    {
        let mut cut = n;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    (200, body)
}
