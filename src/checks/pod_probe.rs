//! `k8s-probe`: the seed's health checker. Probes every pod that matches a
//! namespace and a label selector — HTTP on the pod's IP, a TCP connect, or
//! a command run in a named container through the API server's exec
//! subresource — after one list request for the pods (or a read of the
//! daemon's watch cache). Probes run in parallel, at most a fixed number at
//! once, each bounded by the check's `timeout`. Every pod that fails is its
//! own series; the pipeline counts consecutive failures per pod (kept in
//! `memory/state/`) and heals a pod once it reaches `threshold`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use super::kube::{Scope, list_pods};
use super::{Context, Outcome, Series, Status};

/// HTTP and TCP probes in flight at once (the seed's checker probes one pod
/// after another; 2,000 pods with a 5 s timeout would take hours that way).
pub const NETWORK_CONCURRENCY: usize = 128;
/// Exec probes in flight at once: each is a request to the API server,
/// which proxies it to the pod's kubelet.
pub const EXEC_CONCURRENCY: usize = 16;
/// Bytes of a command's output kept as evidence.
const OUTPUT_LIMIT: usize = 2048;
/// How long a run of probes may take in all: pods not probed by then wait
/// for the next run (neither failing nor passing), so one slow run cannot
/// turn the whole check into an error.
pub const RUN_BUDGET: Duration = Duration::from_secs(100);

/// How a pod is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProbe {
    /// GET `http://<pod IP>:<port><path>`; `expect_status`, else any 2xx or 3xx (the kubelet's rule).
    Http { port: u16, path: String, expect_status: Option<u16> },
    /// A TCP connection to `<pod IP>:<port>`.
    Tcp { port: u16 },
    /// A command (argv, no shell) in `container`, through `pods/exec`; exit 0 is healthy.
    Exec { container: String, command: Vec<String> },
}

impl PodProbe {
    pub fn kind(&self) -> &'static str {
        match self {
            PodProbe::Http { .. } => "http",
            PodProbe::Tcp { .. } => "tcp",
            PodProbe::Exec { .. } => "exec",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PodProbe::Http { port, path, .. } => format!("http :{port}{path}"),
            PodProbe::Tcp { port } => format!("tcp :{port}"),
            PodProbe::Exec { container, command } => format!("exec {container}: {}", command.join(" ")),
        }
    }
}

/// What heals a pod that failed `threshold` probes in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heal {
    /// Delete the pod; only when a controller replaces it.
    Restart,
    /// Scale the pod's Deployment to this many replicas.
    Scale { replicas: i32 },
}

/// A `k8s-probe` check's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PodProbeSpec {
    pub scope: Scope,
    pub probe: PodProbe,
    pub timeout: Duration,
    /// Consecutive failures of one pod before it is healed (the seed's default 3).
    pub threshold: u32,
    pub heal: Heal,
}

impl PodProbeSpec {
    pub fn target(&self) -> String {
        format!("k8s:{} {}", self.scope.describe(), self.probe.describe())
    }
}

/// Why one probe did not pass.
enum Failure {
    /// The pod failed its probe.
    Pod(String),
    /// The check cannot probe at all (exec forbidden, not served): an
    /// error of the check, never a reason to heal a pod.
    Check(String),
}

/// One run: list the pods, probe the running ones, one series per failing pod.
pub async fn run(spec: &PodProbeSpec, ctx: &Context) -> Outcome {
    let pods = match list_pods(&spec.scope, ctx).await {
        Ok(p) => p,
        Err(e) => return Outcome::new(Status::Error, e),
    };
    let client = match &spec.probe {
        PodProbe::Exec { .. } => match ctx.kube.get(spec.scope.context.as_deref()).await {
            Ok(c) => Some(c),
            Err(e) => return Outcome::new(Status::Error, e),
        },
        PodProbe::Http { .. } | PodProbe::Tcp { .. } => None,
    };
    let http = match &spec.probe {
        PodProbe::Http { .. } => match http_client() {
            Ok(c) => Some(c),
            Err(e) => return Outcome::new(Status::Error, e),
        },
        PodProbe::Tcp { .. } | PodProbe::Exec { .. } => None,
    };
    let (probed, waiting): (Vec<&Pod>, Vec<&Pod>) = pods.iter().map(|p| p.as_ref()).partition(|p| probe_address(p).is_some());
    let started = Instant::now();
    let limit = match spec.probe {
        PodProbe::Exec { .. } => EXEC_CONCURRENCY,
        PodProbe::Http { .. } | PodProbe::Tcp { .. } => NETWORK_CONCURRENCY,
    };
    let permits = tokio::sync::Semaphore::new(limit);
    let results: Vec<(&Pod, Option<Result<(), Failure>>)> = futures::future::join_all(probed.iter().map(|pod| bounded_probe(spec, pod, client.as_ref(), http.as_ref(), &permits, started))).await;
    let mut series = Vec::new();
    let mut late = 0usize;
    for (pod, verdict) in results {
        match verdict {
            None => late += 1,
            Some(Ok(())) => {}
            Some(Err(Failure::Check(e))) => return Outcome::new(Status::Error, e).with("pods", pods.len()),
            Some(Err(Failure::Pod(why))) => series.push(failing(spec, pod, why)),
        }
    }
    series.sort_by(|a, b| a.target.cmp(&b.target));
    let mut out = if series.is_empty() {
        Outcome::new(Status::Ok, format!("{} of {} pod(s) pass their {} probe", probed.len() - late, pods.len(), spec.probe.kind()))
    } else {
        let names: Vec<&str> = series.iter().map(|s| s.target.as_str()).take(5).collect();
        Outcome::new(Status::Failing, format!("{} of {} pod(s) fail their {} probe: {}", series.len(), pods.len(), spec.probe.kind(), names.join(", ")))
    };
    out.evidence.insert("pods".into(), pods.len().into());
    out.evidence.insert("probed".into(), (probed.len() - late).into());
    out.evidence.insert("failing".into(), series.len().into());
    out.evidence.insert("probe_ms".into(), (started.elapsed().as_millis() as u64).into());
    // Pods listed but not probed keep their failure counts (the seed skips pods that do not run).
    let mut not_probed: Vec<Value> = waiting.iter().map(|p| Value::String(key(p))).collect();
    if late > 0 {
        out.evidence.insert("not_probed_in_time".into(), late.into());
        out.summary = format!("{}; {late} pod(s) not probed within {}", out.summary, crate::duration::format(RUN_BUDGET));
        not_probed.clear();
        not_probed.push(Value::String("*".into()));
    }
    out.evidence.insert("not_probed".into(), Value::Array(not_probed));
    out.series = series;
    out
}

/// One pod's probe once a permit is free, within the timeout; `None` when
/// the run's budget was spent before its turn came.
async fn bounded_probe<'a>(
    spec: &PodProbeSpec,
    pod: &'a Pod,
    client: Option<&kube::Client>,
    http: Option<&reqwest::Client>,
    permits: &tokio::sync::Semaphore,
    started: Instant,
) -> (&'a Pod, Option<Result<(), Failure>>) {
    let Ok(_permit) = permits.acquire().await else { return (pod, None) };
    if started.elapsed() >= RUN_BUDGET {
        return (pod, None);
    }
    let verdict = tokio::time::timeout(spec.timeout, probe(spec, pod, client, http))
        .await
        .unwrap_or_else(|_| Err(Failure::Pod(format!("{} did not answer within {}", what(&spec.probe, pod), crate::duration::format(spec.timeout)))));
    (pod, Some(verdict))
}

/// `namespace/name`: what failure counts are kept by.
pub fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
}

/// The address a running pod is probed on (the seed probes only pods in phase Running).
fn probe_address(pod: &Pod) -> Option<&str> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    status.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

fn what(probe: &PodProbe, pod: &Pod) -> String {
    let ip = probe_address(pod).unwrap_or("?");
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    match probe {
        PodProbe::Http { port, path, .. } => format!("GET http://{host}:{port}{path}"),
        PodProbe::Tcp { port } => format!("TCP {host}:{port}"),
        PodProbe::Exec { container, command } => format!("exec in {}/{container}: {}", pod.metadata.name.as_deref().unwrap_or(""), command.join(" ")),
    }
}

/// One client for the run's HTTP probes: no redirects (a pod's answer must
/// not send nightshift elsewhere), no proxy (pod IPs are reached directly).
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("nightshift-probe/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

async fn probe(spec: &PodProbeSpec, pod: &Pod, client: Option<&kube::Client>, http: Option<&reqwest::Client>) -> Result<(), Failure> {
    let ip = probe_address(pod).unwrap_or_default();
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    let what = what(&spec.probe, pod);
    match &spec.probe {
        PodProbe::Http { port, path, expect_status } => {
            let Some(http) = http else { return Err(Failure::Check("no HTTP client".into())) };
            let resp = http.get(format!("http://{host}:{port}{path}")).send().await.map_err(|e| Failure::Pod(format!("{what}: {}", reqwest_error(&e))))?;
            let code = resp.status().as_u16();
            let ok = match expect_status {
                Some(want) => code == *want,
                None => (200..400).contains(&code),
            };
            match (ok, expect_status) {
                (true, _) => Ok(()),
                (false, Some(want)) => Err(Failure::Pod(format!("{what}: status {code}, expected {want}"))),
                (false, None) => Err(Failure::Pod(format!("{what}: status {code}, expected 2xx or 3xx"))),
            }
        }
        PodProbe::Tcp { port } => match tokio::net::TcpStream::connect((ip, *port)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Failure::Pod(format!("{what}: {e}"))),
        },
        PodProbe::Exec { container, command } => {
            let Some(client) = client else { return Err(Failure::Check("no Kubernetes client".into())) };
            exec(client, pod, container, command).await.map_err(|f| match f {
                Failure::Pod(m) => Failure::Pod(format!("{what}: {m}")),
                other => other,
            })
        }
    }
}

fn reqwest_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// Runs the command through `pods/exec` (the API server proxies it to the
/// pod's kubelet) and reads its exit status from the status channel.
async fn exec(client: &kube::Client, pod: &Pod, container: &str, command: &[String]) -> Result<(), Failure> {
    let (ns, name) = (pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""));
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = AttachParams::default().container(container).stdin(false).stdout(true).stderr(true);
    let mut proc = match api.exec(name, command.to_vec(), &params).await {
        Ok(p) => p,
        Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403) => return Err(Failure::Check(crate::k8s::explain(&kube::Error::Api(s), "running the exec probe"))),
        Err(e) => return Err(Failure::Pod(crate::k8s::explain(&e, "exec"))),
    };
    let status = proc.take_status();
    let (stdout, stderr) = (proc.stdout(), proc.stderr());
    let (out, err) = tokio::join!(bounded(stdout), bounded(stderr));
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let _ = proc.join().await;
    let output = format!("{}{}", out, err).trim().to_string();
    let Some(status) = status else { return Err(Failure::Pod("the exec stream ended without an exit status".into())) };
    if status.status.as_deref() == Some("Success") {
        return Ok(());
    }
    let code = status.details.as_ref().and_then(|d| d.causes.as_ref()).and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode"))).and_then(|c| c.message.clone());
    let why = match code {
        Some(c) => format!("exit code {c}"),
        None => status.message.clone().unwrap_or_else(|| "failed".into()),
    };
    let output = super::tail(&output, OUTPUT_LIMIT);
    Err(Failure::Pod(if output.is_empty() { why } else { format!("{why}: {}", crate::checks::kube::observe::one_line(&output)) }))
}

/// Reads a stream to its end, keeping the first `OUTPUT_LIMIT` bytes.
async fn bounded<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>) -> String {
    let Some(mut r) = reader else { return String::new() };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The series of one failing pod: what cascade detection, the diagnosis and
/// the heal read (namespace, workload, labels, the pod's facts).
fn failing(spec: &PodProbeSpec, pod: &Pod, why: String) -> Series {
    let (kind, workload) = crate::k8s::workload_of(pod);
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.remove("pod-template-hash");
    let restarts: i32 = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let mut evidence = Map::new();
    evidence.insert("namespace".into(), ns.clone().into());
    evidence.insert("pod".into(), name.clone().into());
    evidence.insert("uid".into(), pod.metadata.uid.clone().unwrap_or_default().into());
    evidence.insert("workload_kind".into(), kind.clone().into());
    evidence.insert("workload".into(), workload.clone().into());
    evidence.insert("workload_target".into(), format!("{ns}/{}/{workload}", kind.to_ascii_lowercase()).into());
    evidence.insert("probe".into(), spec.probe.kind().into());
    evidence.insert("failure".into(), why.clone().into());
    evidence.insert("labels".into(), serde_json::to_value(&labels).unwrap_or_default());
    evidence.insert("pods".into(), json!([{"name": name, "namespace": ns, "phase": "Running", "reason": "ProbeFailed", "message": why, "node": node, "restarts": restarts}]));
    Series { target: format!("{ns}/{name}"), status: Status::Failing, summary: format!("{ns}/{name}: {why}"), evidence }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;

    fn series(kind: &str, workload: &str) -> crate::checks::CheckResult {
        let mut evidence = Map::new();
        for (k, v) in [("namespace", "shop"), ("pod", "web-1"), ("workload_kind", kind), ("workload", workload), ("failure", "GET http://127.1.0.1:8080/: status 500")] {
            evidence.insert(k.into(), v.into());
        }
        crate::checks::CheckResult { name: "web".into(), kind: "k8s-probe", target: "shop/web-1".into(), status: Status::Failing, summary: String::new(), evidence, series: Vec::new(), duration_ms: 0 }
    }

    #[test]
    fn the_plan_is_the_declared_heal_and_never_deletes_a_pod_nothing_replaces() {
        let spec = |heal| PodProbeSpec { scope: Scope::default(), probe: PodProbe::Tcp { port: 80 }, timeout: Duration::from_secs(5), threshold: 3, heal };
        let table: [(Heal, &str, &str, Vec<Action>); 4] = [
            (Heal::Restart, "Deployment", "web", vec![Action::RestartPod { namespace: "shop".into(), pod: "web-1".into(), workload: None, context: None }]),
            (Heal::Scale { replicas: 6 }, "Deployment", "web", vec![Action::Scale { namespace: "shop".into(), deployment: "web".into(), replicas: 6, from: None, context: None }]),
            (Heal::Restart, "Pod", "web-1", Vec::new()),
            (Heal::Scale { replicas: 6 }, "StatefulSet", "web", Vec::new()),
        ];
        for (heal, kind, workload, plan) in table {
            let d = crate::diagnosis::kube::probe(&series(kind, workload), &spec(heal));
            assert_eq!((d.class, d.plan), ("probe-failed", plan), "{heal:?} of a {kind}'s pod");
        }
    }
}
