//! The real Kubernetes test control plane (scripts/test-cluster.sh: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler 1.20 on
//! loopback, no kubelet; see support::kubelet for the simulated one), and
//! helpers for tests against it: a fresh namespace per test, a Deployment
//! builder, and waiting on objects.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[allow(unused_imports)] // not every test binary builds Deployments
pub use nightshift::sandbox::{DeploymentExt, deployment, random_suffix};

/// The started control plane and an admin client for it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

/// The script's outcome, once per process: the kubeconfig path, or why
/// there is no cluster (the script's message).
static STARTED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Starts the test control plane unless it runs (scripts/test-cluster.sh
/// start) and connects to it. `None`, after a `SKIP:` line on stderr, when
/// its binaries (or etcd) are missing — unless NIGHTSHIFT_REQUIRE_CLUSTER=1,
/// which makes that a failure. Any other failure to start panics.
pub async fn cluster() -> Option<Cluster> {
    let started = tokio::task::spawn_blocking(|| STARTED.get_or_init(start_script).clone()).await.expect("the cluster start task");
    let kubeconfig = match started {
        Ok(path) => path,
        Err(reason) => {
            if std::env::var("NIGHTSHIFT_REQUIRE_CLUSTER").as_deref() == Ok("1") || super::require_all() {
                panic!("NIGHTSHIFT_REQUIRE_CLUSTER=1 but there is no Kubernetes test cluster: {reason}");
            }
            eprintln!("SKIP: no Kubernetes test cluster ({reason}); run scripts/test-cluster.sh build");
            return None;
        }
    };
    let client = client(&kubeconfig).await;
    Some(Cluster { kubeconfig, client })
}

fn start_script() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-cluster.sh");
    let out = std::process::Command::new("bash").arg(&script).arg("start").stdin(std::process::Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        // The script says "… is missing" for its binaries and for etcd; anything else is a real failure.
        if stderr.contains("is missing") {
            return Err(stderr.lines().last().unwrap_or("").to_string());
        }
        panic!("scripts/test-cluster.sh start failed ({}):\n{stderr}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().map(str::trim).unwrap_or("");
    assert!(!path.is_empty() && Path::new(path).is_file(), "scripts/test-cluster.sh start printed no kubeconfig: {stdout}\n{stderr}");
    Ok(PathBuf::from(path))
}

/// The kubeconfig of the test cluster: the one `cluster()` got from the
/// script in this process, else where the script puts it by default.
pub fn kubeconfig_path() -> PathBuf {
    if let Some(Ok(p)) = STARTED.get() {
        return p.clone();
    }
    let root = std::env::var_os("NIGHTSHIFT_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/nightshift"));
    let dir = std::env::var_os("NIGHTSHIFT_CLUSTER_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("cluster"));
    dir.join("kubeconfig")
}

/// A client from a kubeconfig file, for the current tokio runtime.
pub async fn client(kubeconfig: &Path) -> kube::Client {
    nightshift::install_crypto_provider();
    let kc = Kubeconfig::read_from(kubeconfig).unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("a client configuration from the kubeconfig");
    kube::Client::try_from(config).expect("a kube client")
}

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Creates a fresh namespace, `<prefix>-<pid>-<n>-<random>`, and waits
    /// until its `default` ServiceAccount has its token (pods are refused before).
    /// Namespaces are left behind (deleting one whose pods are on simulated
    /// nodes needs a simulator to finish the pods' deletions); the first
    /// `Kubelet::start` of a later process removes them (see
    /// `kubelet::process_labels`).
    pub async fn namespace(&self, prefix: &str) -> String {
        let n = NAMESPACES.fetch_add(1, Ordering::Relaxed);
        nightshift::sandbox::namespace(&self.client, prefix, n).await.unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Polls `name` (every 100 ms) until `pred` holds and returns it; panics
/// after `limit` with the last object's status.
pub async fn wait_for<K, F>(api: &Api<K>, name: &str, limit: Duration, mut pred: F) -> K
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    F: FnMut(&K) -> bool,
{
    let start = Instant::now();
    let mut last: Option<K> = None;
    let mut last_err = String::new();
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => {
                if pred(&obj) {
                    return obj;
                }
                last = Some(obj);
            }
            Ok(None) => {
                last = None;
                last_err = "not found".into();
            }
            Err(e) => last_err = e.to_string(),
        }
        if start.elapsed() >= limit {
            let shown = match &last {
                Some(obj) => {
                    let v = serde_json::to_value(obj).unwrap_or_default();
                    let status = v.get("status").cloned().unwrap_or(v);
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                }
                None => last_err,
            };
            panic!("{} {name}: the condition did not hold within {limit:?}; last seen status:\n{shown}", K::kind(&()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `f` (every 100 ms) until it returns `Some`; panics after `limit`
/// with `what` and the last value `f` described through `Err`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() >= limit {
            panic!("{what}: not within {limit:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long the pod waits of the nightshift tests allow.
const PODS_LIMIT: Duration = Duration::from_secs(40);

/// The built binary on a workspace, with KUBECONFIG pointing at `kubeconfig`, off the async threads.
pub async fn nightshift_with(ws: &super::Ws, kubeconfig: &Path, args: &[&str]) -> super::Run {
    let mut cmd = ws.cmd(args);
    cmd.env("KUBECONFIG", kubeconfig);
    tokio::task::spawn_blocking(move || super::Run::from(cmd.output().unwrap())).await.unwrap()
}

/// The built binary against the test cluster.
pub async fn nightshift(ws: &super::Ws, c: &Cluster, args: &[&str]) -> super::Run {
    nightshift_with(ws, &c.kubeconfig, args).await
}

/// `nightshift` with `--json`: the exit code and the parsed report.
pub async fn nightshift_json(ws: &super::Ws, c: &Cluster, args: &[&str]) -> (i32, serde_json::Value) {
    let r = nightshift(ws, c, args).await;
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    (r.code, v)
}

/// Creates the Deployment in `ns` and returns its API.
pub async fn create(c: &Cluster, ns: &str, d: Deployment) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), ns);
    api.create(&PostParams::default(), &d).await.unwrap();
    api
}

/// The live (not deleting) pods labelled `app=APP`, by name.
pub async fn pods_of(c: &Cluster, ns: &str, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let mut pods: Vec<Pod> = api.list(&ListParams::default().labels(&format!("app={app}"))).await.unwrap().items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    pods.sort_by_key(|p| p.metadata.name.clone());
    pods
}

/// Waits until every pod of `app` shows `pred` (and there are `n`).
pub async fn pods_are(c: &Cluster, ns: &str, app: &str, n: usize, what: &str, pred: impl Fn(&Pod) -> bool) -> Vec<Pod> {
    eventually(PODS_LIMIT, what, || async {
        let pods = pods_of(c, ns, app).await;
        if pods.len() == n && pods.iter().all(&pred) { Ok(pods) } else { Err(format!("{} pod(s): {:?}", pods.len(), pods.iter().map(|p| p.status.clone()).collect::<Vec<_>>())) }
    })
    .await
}

/// Whether a container of the pod waits with this reason.
pub fn waiting(p: &Pod, reason: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref()) == Some(reason)))
}

/// Whether the pod's Ready condition is True.
pub fn ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A `k8s-pods` check of one namespace, as HEARTBEAT.md has it.
pub fn pods_check(ns: &str) -> String {
    format!("checks:\n  - name: pods\n    kind: k8s-pods\n    namespace: {ns}\n    max_restarts: 3\n    ready_grace: 0s\n")
}

/// The incident of a `heartbeat --json` report with this fingerprint.
pub fn incident<'a>(v: &'a serde_json::Value, fingerprint: &str) -> &'a serde_json::Value {
    v["incidents"].as_array().unwrap().iter().find(|i| i["fingerprint"] == fingerprint).unwrap_or_else(|| panic!("no incident {fingerprint}: {v:#}"))
}

/// The actions nightshift proposed or took for an incident (notifications left out).
pub fn acted(inc: &serde_json::Value) -> Vec<&serde_json::Value> {
    inc["actions"].as_array().unwrap().iter().filter(|a| a["action"] != "notify").collect()
}

/// An incident's note as written to memory.
pub fn note(ws: &super::Ws, inc: &serde_json::Value) -> String {
    std::fs::read_to_string(ws.memory().join("incidents").join(format!("{}.md", inc["id"].as_str().unwrap()))).unwrap()
}
