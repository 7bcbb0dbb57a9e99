//! Checks: each kind is a module behind the one `Check` trait; `ProbeSpec` is
//! the closed set of kinds with the single `match` that dispatches them.

pub mod archive;
pub mod backup;
pub mod disk;
pub mod exec;
pub mod host;
pub mod http;
pub mod kube;
pub mod pod_probe;
pub mod process;
pub mod prometheus;
pub mod resources;
pub mod spec;
pub mod strategy;
pub mod tcp;
pub mod tls;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::checks::spec::CheckSpec;

/// A check's verdict on its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Reported and notified, no incident (e.g. a certificate inside warn_days).
    Warning,
    Failing,
    /// The check could not be evaluated; an incident about the check itself.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failing => "failing",
            Status::Error => "error",
        }
    }

    pub fn is_bad(self) -> bool {
        matches!(self, Status::Failing | Status::Error)
    }
}

/// One target of a check that watches many (a Prometheus series): each
/// failing one becomes its own incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub target: String,
    pub status: Status,
    pub summary: String,
    pub evidence: Map<String, Value>,
}

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub summary: String,
    /// Structured facts (numbers, names, captured output).
    pub evidence: Map<String, Value>,
    pub series: Vec<Series>,
}

impl Outcome {
    pub fn new(status: Status, summary: impl Into<String>) -> Self {
        Self { status, summary: summary.into(), evidence: Map::new(), series: Vec::new() }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.evidence.insert(key.to_string(), value.into());
        self
    }
}

/// A check result as reported and recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
    pub status: Status,
    pub summary: String,
    pub evidence: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Address { address: String, server_name: Option<String> },
    File(PathBuf),
}

/// What a `service` check watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceRef {
    Unit(String),
    Pidfile(PathBuf),
}

/// The declared command that starts a pidfile service (`start:`): its name
/// in AGENTS.md `commands:`, the line of `start:` in HEARTBEAT.md, and the
/// command line it names (filled in when the workspace loads).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Start {
    pub command: String,
    pub line: usize,
    pub command_line: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessRef {
    Name(String),
    Pidfile(PathBuf),
}

/// The kinds this build runs, with their settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    /// `forecast`: a healthy disk whose growth reaches the limit within this is a warning (default 30 days).
    Disk {
        path: PathBuf,
        max_used_percent: Option<f64>,
        max_inodes_percent: Option<f64>,
        forecast: Duration,
    },
    Http {
        url: String,
        expect_status: Option<u16>,
        body_contains: Option<String>,
        timeout: Duration,
        max_latency: Option<Duration>,
    },
    Tcp {
        address: String,
        timeout: Duration,
    },
    Exec {
        command: String,
        timeout: Duration,
    },
    Tls {
        source: TlsSource,
        warn_days: u32,
        min_days: u32,
        timeout: Duration,
        renew: Option<String>,
        reload: Option<String>,
        ca_file: Option<PathBuf>,
    },
    Process {
        by: ProcessRef,
    },
    Backup {
        path: PathBuf,
        max_age: Option<Duration>,
        min_size: Option<u64>,
    },
    Prometheus {
        url: String,
        query: String,
        condition: prometheus::Condition,
        token_env: Option<String>,
        timeout: Duration,
    },
    Memory {
        min_available_percent: f64,
    },
    Load {
        max_per_core: f64,
    },
    Cpu {
        max_percent: f64,
        window: Duration,
    },
    Service {
        by: ServiceRef,
        start: Option<Start>,
    },
    /// `recovery_timeout`: how long a repair may take to settle (else the Deployment's `progressDeadlineSeconds`, else 300 s).
    K8sPods {
        scope: kube::Scope,
        rules: crate::checks::kube::observe::PodRules,
        recovery_timeout: Option<Duration>,
    },
    K8sDeployments {
        scope: kube::Scope,
        grace: Duration,
        recovery_timeout: Option<Duration>,
    },
    K8sNodes {
        scope: kube::Scope,
    },
    K8sServices {
        scope: kube::Scope,
    },
    Dependency {
        target: kube::DependencyTarget,
        dependants: String,
        scope: kube::Scope,
    },
    K8sScaling(Box<strategy::ScalingSpec>),
    K8sFailover(Box<strategy::FailoverSpec>),
    K8sProbe(Box<pod_probe::PodProbeSpec>),
}

/// Shared, lazily built resources for one run of checks.
#[derive(Default)]
pub struct Context {
    /// Directory commands run in (the workspace).
    pub workdir: PathBuf,
    http: OnceLock<reqwest::Client>,
    /// SSH sessions to the inventory's hosts, opened on first use.
    pub remote: Option<Arc<crate::ssh::Pool>>,
    /// Kubernetes clients by context, built on first use.
    pub kube: Arc<crate::k8s::Clients>,
    /// The daemon's watch cache of the current context, when it runs one.
    pub kube_cache: Option<Arc<crate::checks::kube::watch::Cache>>,
}

impl Context {
    pub fn new(workdir: PathBuf) -> Self {
        Self { workdir, ..Default::default() }
    }

    /// A context that can reach the inventory's hosts.
    pub fn with_hosts(workdir: PathBuf, hosts: Vec<crate::ssh::HostSpec>) -> Self {
        let remote = (!hosts.is_empty()).then(|| Arc::new(crate::ssh::Pool::new(hosts)));
        Self { workdir, remote, ..Default::default() }
    }

    /// Shares Kubernetes clients and the daemon's watch cache.
    pub fn with_kube(mut self, clients: Arc<crate::k8s::Clients>, cache: Option<Arc<crate::checks::kube::watch::Cache>>) -> Self {
        self.kube = clients;
        self.kube_cache = cache;
        self
    }

    /// One HTTP client for every http check of the run, built on first use.
    pub fn http(&self) -> Result<&reqwest::Client, String> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("nightshift/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(self.http.get_or_init(|| client))
    }
}

/// One kind of check.
#[allow(async_fn_in_trait)]
pub trait Check {
    /// The kind's name as written in HEARTBEAT.md.
    const KIND: &'static str;
    /// What the check looks at, stable across runs (it is part of incident fingerprints).
    fn target(&self) -> String;
    /// Runs the check once. Never panics; failures to evaluate are `Status::Error`.
    async fn run(&self, ctx: &Context) -> Outcome;
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Disk { .. } => disk::Disk::KIND,
            ProbeSpec::Http { .. } => http::Http::KIND,
            ProbeSpec::Tcp { .. } => tcp::Tcp::KIND,
            ProbeSpec::Exec { .. } => exec::Exec::KIND,
            ProbeSpec::Tls { .. } => tls::Tls::KIND,
            ProbeSpec::Process { .. } => process::Process::KIND,
            ProbeSpec::Backup { .. } => backup::Backup::KIND,
            ProbeSpec::Prometheus { .. } => prometheus::Prometheus::KIND,
            ProbeSpec::Memory { .. } => resources::Memory::KIND,
            ProbeSpec::Load { .. } => resources::Load::KIND,
            ProbeSpec::Cpu { .. } => resources::Cpu::KIND,
            ProbeSpec::Service { .. } => "service",
            ProbeSpec::K8sPods { .. } => "k8s-pods",
            ProbeSpec::K8sDeployments { .. } => "k8s-deployments",
            ProbeSpec::K8sNodes { .. } => "k8s-nodes",
            ProbeSpec::K8sServices { .. } => "k8s-services",
            ProbeSpec::Dependency { .. } => "dependency",
            ProbeSpec::K8sScaling(_) => "k8s-scaling",
            ProbeSpec::K8sFailover(_) => "k8s-failover",
            ProbeSpec::K8sProbe(_) => "k8s-probe",
        }
    }

    /// Whether the check reads a Kubernetes cluster (the daemon's watch wakes it).
    pub fn is_kubernetes(&self) -> bool {
        matches!(self, ProbeSpec::K8sPods { .. } | ProbeSpec::K8sDeployments { .. } | ProbeSpec::K8sNodes { .. } | ProbeSpec::K8sServices { .. } | ProbeSpec::K8sFailover(_) | ProbeSpec::K8sProbe(_))
    }

    /// The kubeconfig context of a Kubernetes check.
    /// A Kubernetes check's declared `recovery_timeout`.
    pub fn recovery_timeout(&self) -> Option<Duration> {
        match self {
            ProbeSpec::K8sPods { recovery_timeout, .. } | ProbeSpec::K8sDeployments { recovery_timeout, .. } => *recovery_timeout,
            _ => None,
        }
    }

    pub fn kube_context(&self) -> Option<&str> {
        match self {
            ProbeSpec::K8sPods { scope, .. } | ProbeSpec::K8sDeployments { scope, .. } | ProbeSpec::K8sNodes { scope } | ProbeSpec::K8sServices { scope } | ProbeSpec::Dependency { scope, .. } => {
                scope.context.as_deref()
            }
            ProbeSpec::K8sScaling(s) => s.context.as_deref(),
            ProbeSpec::K8sFailover(s) => s.context.as_deref(),
            ProbeSpec::K8sProbe(s) => s.scope.context.as_deref(),
            _ => None,
        }
    }

    pub fn target(&self) -> String {
        match self {
            ProbeSpec::Disk { path, .. } => disk::Disk { path, max_used: None, max_inodes: None }.target(),
            ProbeSpec::Http { url, .. } => url.clone(),
            ProbeSpec::Tcp { address, .. } => address.clone(),
            ProbeSpec::Exec { command, .. } => command.clone(),
            ProbeSpec::Tls { source: TlsSource::Address { address, .. }, .. } => address.clone(),
            ProbeSpec::Tls { source: TlsSource::File(p), .. } => p.display().to_string(),
            ProbeSpec::Process { by: ProcessRef::Name(n) } => n.clone(),
            ProbeSpec::Process { by: ProcessRef::Pidfile(p) } => p.display().to_string(),
            ProbeSpec::Backup { path, .. } => path.display().to_string(),
            ProbeSpec::Prometheus { url, query, .. } => format!("{url} {query}"),
            ProbeSpec::Memory { .. } => resources::Memory { min_available_percent: 0.0 }.target(),
            ProbeSpec::Load { .. } => resources::Load { max_per_core: 0.0 }.target(),
            ProbeSpec::Cpu { .. } => resources::Cpu { max_percent: 0.0, window: Duration::ZERO }.target(),
            ProbeSpec::Service { by: ServiceRef::Unit(u), .. } => u.clone(),
            ProbeSpec::Service { by: ServiceRef::Pidfile(p), .. } => p.display().to_string(),
            ProbeSpec::K8sPods { scope, .. } | ProbeSpec::K8sDeployments { scope, .. } | ProbeSpec::K8sNodes { scope } | ProbeSpec::K8sServices { scope } => format!("k8s:{}", scope.describe()),
            ProbeSpec::Dependency { target, .. } => target.describe(),
            ProbeSpec::K8sScaling(s) => s.target(),
            ProbeSpec::K8sFailover(s) => s.target(),
            ProbeSpec::K8sProbe(s) => s.target(),
        }
    }

    pub async fn run(&self, ctx: &Context) -> Outcome {
        match self {
            ProbeSpec::Disk { path, max_used_percent, max_inodes_percent, .. } => disk::Disk { path, max_used: *max_used_percent, max_inodes: *max_inodes_percent }.run(ctx).await,
            ProbeSpec::Http { url, expect_status, body_contains, timeout, max_latency } => {
                http::Http { url, expect_status: *expect_status, body_contains: body_contains.as_deref(), timeout: *timeout, max_latency: *max_latency }.run(ctx).await
            }
            ProbeSpec::Tcp { address, timeout } => tcp::Tcp { address, timeout: *timeout }.run(ctx).await,
            ProbeSpec::Exec { command, timeout } => exec::Exec { command, timeout: *timeout }.run(ctx).await,
            ProbeSpec::Tls { source, warn_days, min_days, timeout, ca_file, .. } => {
                tls::Tls { source, warn_days: *warn_days, min_days: *min_days, timeout: *timeout, ca_file: ca_file.as_deref() }.run(ctx).await
            }
            ProbeSpec::Process { by } => process::Process { by }.run(ctx).await,
            ProbeSpec::Backup { path, max_age, min_size } => backup::Backup { pattern: path, max_age: *max_age, min_size: *min_size }.run(ctx).await,
            ProbeSpec::Prometheus { url, query, condition, token_env, timeout } => {
                prometheus::Prometheus { url, query, condition: *condition, token_env: token_env.as_deref(), timeout: *timeout }.run(ctx).await
            }
            ProbeSpec::Memory { min_available_percent } => resources::Memory { min_available_percent: *min_available_percent }.run(ctx).await,
            ProbeSpec::Load { max_per_core } => resources::Load { max_per_core: *max_per_core }.run(ctx).await,
            ProbeSpec::Cpu { max_percent, window } => resources::Cpu { max_percent: *max_percent, window: *window }.run(ctx).await,
            ProbeSpec::Service { by, start } => host::service(by, start.as_ref(), None, ctx).await,
            ProbeSpec::K8sPods { scope, rules, .. } => kube::pods(scope, rules, ctx).await,
            ProbeSpec::K8sDeployments { scope, grace, .. } => kube::deployments(scope, *grace, ctx).await,
            ProbeSpec::K8sNodes { scope } => kube::nodes(scope, ctx).await,
            ProbeSpec::K8sServices { scope } => kube::services(scope, ctx).await,
            ProbeSpec::Dependency { target, dependants, scope } => kube::dependency(target, dependants, scope, ctx).await,
            ProbeSpec::K8sScaling(s) => strategy::scaling(s, ctx).await,
            ProbeSpec::K8sFailover(s) => strategy::failover(s, ctx).await,
            ProbeSpec::K8sProbe(s) => pod_probe::run(s, ctx).await,
        }
    }
}

/// How long a check may run when its kind has no `timeout` of its own (a
/// Kubernetes check may wait for the watch's first list, then list itself).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(120);
/// Added to a kind's own timeout, so the kind's own message (it says more) comes first.
const GRACE: Duration = Duration::from_secs(5);

/// The longest one run of a check may take, whatever it waits on: its
/// kind's `timeout` (or the backup tests' limit, or the CPU window) with a
/// little grace, else `DEFAULT_TIME_LIMIT`; over SSH the connection's too.
pub fn time_limit(spec: &CheckSpec) -> Duration {
    let own = match &spec.probe {
        ProbeSpec::Http { timeout, .. } | ProbeSpec::Tcp { timeout, .. } | ProbeSpec::Exec { timeout, .. } | ProbeSpec::Tls { timeout, .. } | ProbeSpec::Prometheus { timeout, .. } => *timeout + GRACE,
        ProbeSpec::Backup { .. } => archive::TIME_LIMIT + GRACE,
        ProbeSpec::Cpu { window, .. } => *window + GRACE,
        ProbeSpec::K8sScaling(s) => DEFAULT_TIME_LIMIT.max(s.timeout + GRACE),
        // The probes' own budget, one probe's timeout past it, and the list before them.
        ProbeSpec::K8sProbe(s) => DEFAULT_TIME_LIMIT.max(pod_probe::RUN_BUDGET + s.timeout + GRACE + GRACE),
        ProbeSpec::Disk { .. }
        | ProbeSpec::Process { .. }
        | ProbeSpec::Memory { .. }
        | ProbeSpec::Load { .. }
        | ProbeSpec::Service { .. }
        | ProbeSpec::K8sPods { .. }
        | ProbeSpec::K8sDeployments { .. }
        | ProbeSpec::K8sNodes { .. }
        | ProbeSpec::K8sServices { .. }
        | ProbeSpec::Dependency { .. }
        | ProbeSpec::K8sFailover(_) => DEFAULT_TIME_LIMIT,
    };
    match spec.host {
        Some(_) => own + crate::ssh::CONNECT_TIMEOUT + GRACE,
        None => own,
    }
}

/// Runs one check within its time limit and wraps its outcome.
pub async fn run_one(spec: &CheckSpec, ctx: &Context) -> CheckResult {
    run_within(spec, ctx, time_limit(spec)).await
}

/// Runs one check, which becomes an error (the check could not be
/// evaluated) when it has not finished within `limit`.
pub async fn run_within(spec: &CheckSpec, ctx: &Context, limit: Duration) -> CheckResult {
    let started = Instant::now();
    let run = async {
        match &spec.host {
            Some(host) => host::run(&spec.probe, host, ctx).await,
            None => spec.probe.run(ctx).await,
        }
    };
    let outcome = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| Outcome::new(Status::Error, format!("the check did not finish within {}", crate::duration::format(limit))).with("time_limit_ms", limit.as_millis() as u64));
    let target = match &spec.host {
        Some(host) => format!("{host}:{}", spec.probe.target().trim_start_matches("localhost:")),
        None => spec.probe.target(),
    };
    CheckResult {
        name: spec.name.clone(),
        kind: spec.probe.kind(),
        target: crate::redact::redact(&target),
        status: outcome.status,
        summary: crate::redact::redact(&outcome.summary),
        evidence: redact_evidence(outcome.evidence),
        series: outcome
            .series
            .into_iter()
            .map(|s| Series { target: crate::redact::redact(&s.target), status: s.status, summary: crate::redact::redact(&s.summary), evidence: redact_evidence(s.evidence) })
            .collect(),
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// Redacts every string in the evidence, nested ones too (pod messages, events).
fn redact_evidence(evidence: Map<String, Value>) -> Map<String, Value> {
    evidence.into_iter().map(|(k, v)| (k, redact_value(v))).collect()
}

fn redact_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::redact::redact(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(redact_value).collect()),
        Value::Object(m) => Value::Object(redact_evidence(m)),
        other => other,
    }
}

/// Runs checks concurrently, at most `limit` at once; results keep the input order.
pub async fn run_all(specs: &[&CheckSpec], ctx: Arc<Context>, limit: usize) -> Vec<CheckResult> {
    let sem = Arc::new(Semaphore::new(limit.max(1)));
    let mut handles = Vec::with_capacity(specs.len());
    for spec in specs {
        let spec = (*spec).clone();
        let ctx = ctx.clone();
        let sem = sem.clone();
        let span = tracing::info_span!("check", check = %spec.name, kind = spec.probe.kind(), status = tracing::field::Empty);
        handles.push(tokio::spawn(
            async move {
                let _permit = sem.acquire_owned().await;
                let r = run_one(&spec, &ctx).await;
                tracing::Span::current().record("status", r.status.as_str());
                r
            }
            .instrument(span),
        ));
    }
    let mut out = Vec::with_capacity(handles.len());
    for (h, spec) in handles.into_iter().zip(specs) {
        out.push(h.await.unwrap_or_else(|e| CheckResult {
            name: spec.name.clone(),
            kind: spec.probe.kind(),
            target: spec.probe.target(),
            status: Status::Error,
            summary: format!("the check crashed: {e}"),
            evidence: Map::new(),
            series: Vec::new(),
            duration_ms: 0,
        }));
    }
    out
}

/// Human sizes: 1536 → "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Keeps at most `max` bytes of the end of `text` (errors come last), on a char boundary.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {} bytes cut]\n{}", start, &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::{Level, Severity};

    fn spec(probe: ProbeSpec) -> CheckSpec {
        CheckSpec {
            name: "c".into(),
            line: 1,
            schedule: crate::schedule::Schedule::Every(Duration::from_secs(60)),
            threshold: 1,
            cooldown: Duration::from_secs(300),
            host: None,
            level: Level::L3,
            severity: Severity::Warning,
            repair: None,
            probe,
            verify: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_check_that_never_finishes_is_an_error_at_its_time_limit() {
        // A pidfile that is a FIFO nobody writes: reading it blocks forever.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("app.pid");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap_or_else(|e| panic!("{e}"));
        let s = spec(ProbeSpec::Process { by: ProcessRef::Pidfile(fifo.clone()) });
        let r = run_within(&s, &Context::new(dir.path().to_path_buf()), Duration::from_millis(300)).await;
        assert_eq!((r.status, r.summary.as_str()), (Status::Error, "the check did not finish within 300ms"));
        // Let the blocked reader go (a writer that opens and closes: end of file).
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(&fifo);
    }

    #[test]
    fn every_kind_has_a_time_limit() {
        let table = [
            (ProbeSpec::Exec { command: "true".into(), timeout: Duration::from_secs(30) }, Duration::from_secs(35)),
            (ProbeSpec::Backup { path: "/b/*.tar.gz".into(), max_age: None, min_size: None }, Duration::from_secs(605)),
            (ProbeSpec::Cpu { max_percent: 90.0, window: Duration::from_secs(1) }, Duration::from_secs(6)),
            (ProbeSpec::Process { by: ProcessRef::Name("x".into()) }, DEFAULT_TIME_LIMIT),
        ];
        for (probe, want) in table {
            assert_eq!(time_limit(&spec(probe)), want);
        }
        let remote = CheckSpec { host: Some("web-01".into()), ..spec(ProbeSpec::Load { max_per_core: 2.0 }) };
        assert_eq!(time_limit(&remote), DEFAULT_TIME_LIMIT + crate::ssh::CONNECT_TIMEOUT + GRACE);
    }
}
