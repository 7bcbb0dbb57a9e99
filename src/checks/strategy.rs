//! The seed's recovery strategies beyond restarts, as checks that say what
//! the strategy calls for; the runbooks plan it and the gate decides.
//!
//! - `k8s-scaling`: a Deployment with bounds (`min`, `max`) and a load signal
//!   (a Prometheus query, or an http endpoint's latency in milliseconds).
//!   Under load it asks to double the replicas (capped at `max`); lightly
//!   loaded it reports a candidate for halving (floored at `min`), which the
//!   pass turns into a scale-down only once it has held for
//!   `scale_down_after`. Never while a HorizontalPodAutoscaler owns the
//!   replicas: it says so instead.
//! - `k8s-failover`: a Service with a primary and a secondary Deployment.
//!   When the primary is down while the Service points at it, it asks to
//!   fail over; while the secondary serves, it waits for the primary to be
//!   healthy for `switch_back_after`, then asks to switch back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{Context, Outcome, Status};
use crate::k8s::explain;

/// Where a scaling check reads its load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadSignal {
    /// A PromQL query returning one number (the largest is taken when it returns several series).
    Prometheus { url: String, query: String, token_env: Option<String> },
    /// The latency of a GET, in milliseconds (an error or a 5xx is no reading).
    Http { url: String },
}

impl LoadSignal {
    pub fn describe(&self) -> String {
        match self {
            LoadSignal::Prometheus { query, .. } => format!("`{query}`"),
            LoadSignal::Http { url } => format!("latency of {url} (ms)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    pub context: Option<String>,
    pub namespace: String,
    pub deployment: String,
    pub min: i32,
    pub max: i32,
    pub load: LoadSignal,
    /// Under load while the signal is above this.
    pub above: f64,
    /// Lightly loaded while the signal is below this (no scale-down without it).
    pub below: Option<f64>,
    /// How long the load must stay below `below` before halving.
    pub scale_down_after: Duration,
    pub timeout: Duration,
}

impl ScalingSpec {
    pub fn target(&self) -> String {
        format!("k8s:{}/{}/deployment/{}", self.context.as_deref().unwrap_or("current"), self.namespace, self.deployment)
    }
}

/// What a scaling check read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingReading {
    /// Desired replicas (the Deployment's spec).
    pub replicas: i32,
    pub ready: i32,
    pub value: f64,
    /// The HorizontalPodAutoscaler that owns the replicas, if any.
    pub hpa: Option<String>,
}

/// What the strategy calls for, from one reading (pure; the pass adds the
/// sustained window of a scale-down).
pub fn assess_scaling(s: &ScalingSpec, r: &ScalingReading) -> Outcome {
    let what = format!("{}/{}", s.namespace, s.deployment);
    let value = (r.value * 1000.0).round() / 1000.0;
    let signal = format!("{} = {value}", s.load.describe());
    let mut o = Outcome::new(Status::Ok, "")
        .with("namespace", s.namespace.as_str())
        .with("deployment", s.deployment.as_str())
        .with("replicas", r.replicas)
        .with("ready", r.ready)
        .with("value", value)
        .with("min", s.min)
        .with("max", s.max)
        .with("above", s.above)
        .with("hpa", r.hpa.clone().map_or(Value::Null, Value::String));
    let mut set = |status: Status, pressure: &str, proposed: i32, summary: String| {
        o.status = status;
        o.summary = summary;
        o.evidence.insert("pressure".into(), pressure.into());
        o.evidence.insert("proposed".into(), proposed.into());
    };
    if let Some(hpa) = &r.hpa {
        if r.value > s.above {
            set(
                Status::Warning,
                "none",
                r.replicas,
                format!("{what} is under load ({signal}, above {}) but HorizontalPodAutoscaler {}/{hpa} owns its replicas: nightshift does not scale it", s.above, s.namespace),
            );
        } else {
            set(Status::Ok, "none", r.replicas, format!("{what}: {signal} at {} replica(s); HorizontalPodAutoscaler {}/{hpa} owns its replicas", r.replicas, s.namespace));
        }
        return o;
    }
    if r.replicas < s.min {
        set(Status::Failing, "below-min", s.min, format!("{what} runs {} replica(s), below its declared minimum {}", r.replicas, s.min));
    } else if r.value > s.above && r.replicas >= s.max {
        set(Status::Failing, "load", r.replicas, format!("{what} is under load ({signal}, above {}) at its maximum of {} replicas", s.above, s.max));
        o.evidence.insert("at_max".into(), true.into());
    } else if r.value > s.above {
        let to = (r.replicas * 2).max(1).min(s.max);
        set(Status::Failing, "load", to, format!("{what} is under load ({signal}, above {}) at {} replica(s): doubling to {to}", s.above, r.replicas));
    } else if s.below.is_some_and(|b| r.value < b) && r.replicas > s.min {
        let to = (r.replicas / 2).max(s.min);
        set(Status::Ok, "none", to, format!("{what} is lightly loaded ({signal}, below {}) at {} replica(s)", s.below.unwrap_or_default(), r.replicas));
        o.evidence.insert("over_provisioned".into(), true.into());
    } else if r.replicas > s.max {
        set(Status::Warning, "none", r.replicas, format!("{what} runs {} replicas, above its declared maximum {} (scaled by hand?)", r.replicas, s.max));
    } else {
        set(Status::Ok, "none", r.replicas, format!("{what}: {signal} at {} replica(s) (bounds {}..{})", r.replicas, s.min, s.max));
    }
    o
}

pub async fn scaling(s: &ScalingSpec, ctx: &Context) -> Outcome {
    match read_scaling(s, ctx).await {
        Ok(r) => assess_scaling(s, &r),
        Err(e) => Outcome::new(Status::Error, e),
    }
}

/// The Deployment's replicas, its autoscaler and the load signal.
async fn read_scaling(s: &ScalingSpec, ctx: &Context) -> Result<ScalingReading, String> {
    let client = ctx.kube.get(s.context.as_deref()).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &s.namespace);
    let d = deployments
        .get_opt(&s.deployment)
        .await
        .map_err(|e| explain(&e, &format!("reading deployment {}/{}", s.namespace, s.deployment)))?
        .ok_or_else(|| format!("deployment {}/{} does not exist", s.namespace, s.deployment))?;
    let hpa = autoscaler(&client, &s.namespace, &s.deployment).await?;
    let value = load(s, ctx).await.map_err(|e| format!("no load reading for {}/{}: {e}", s.namespace, s.deployment))?;
    let replicas = d.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
    let ready = d.status.as_ref().and_then(|st| st.ready_replicas).unwrap_or(0);
    Ok(ScalingReading { replicas, ready, value, hpa })
}

/// The HorizontalPodAutoscaler whose target is this Deployment, if any.
pub async fn autoscaler(client: &kube::Client, namespace: &str, deployment: &str) -> Result<Option<String>, String> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await.map_err(|e| explain(&e, "listing horizontal pod autoscalers"))?;
    Ok(list.items.into_iter().find(|h| h.spec.as_ref().is_some_and(|s| s.scale_target_ref.kind == "Deployment" && s.scale_target_ref.name == deployment)).and_then(|h| h.metadata.name))
}

async fn load(s: &ScalingSpec, ctx: &Context) -> Result<f64, String> {
    match &s.load {
        LoadSignal::Prometheus { url, query, token_env } => {
            let samples = super::prometheus::instant(ctx, url, query, token_env.as_deref(), s.timeout).await?;
            samples.iter().filter_map(|(_, _, v)| *v).filter(|v| v.is_finite()).reduce(f64::max).ok_or_else(|| format!("`{query}` returned no number ({} series)", samples.len()))
        }
        LoadSignal::Http { url } => {
            let client = ctx.http()?;
            let started = Instant::now();
            let resp = client
                .get(url)
                .timeout(s.timeout)
                .send()
                .await
                .map_err(|e| if e.is_timeout() { format!("{url} did not answer within {}", crate::duration::format(s.timeout)) } else { format!("{url}: {e}") })?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if resp.status().is_server_error() {
                return Err(format!("{url} answered {}", resp.status().as_u16()));
            }
            Ok(ms)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSpec {
    pub context: Option<String>,
    pub namespace: String,
    pub service: String,
    pub primary: String,
    pub secondary: String,
    /// How long the primary must be healthy before the Service switches back.
    pub switch_back_after: Duration,
    /// Whether failing over also starts the primary's recovery (a rollback
    /// of a failed rollout, else a rolling restart).
    pub recover: bool,
}

impl FailoverSpec {
    pub fn target(&self) -> String {
        format!("k8s:{}/{}/service/{}", self.context.as_deref().unwrap_or("current"), self.namespace, self.service)
    }
}

/// One side of a failover pair, as read from the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    pub name: String,
    pub exists: bool,
    /// The Deployment's `matchLabels` (what a Service selector can name).
    pub labels: BTreeMap<String, String>,
    pub desired: i32,
    pub ready: i32,
    /// Since when every one of its pods has been ready (the latest Ready transition).
    pub ready_since: Option<DateTime<Utc>>,
}

impl Workload {
    pub fn healthy(&self) -> bool {
        self.exists && self.desired > 0 && self.ready >= self.desired
    }

    fn describe(&self) -> String {
        if !self.exists {
            return format!("{} does not exist", self.name);
        }
        format!("{} ({}/{} ready)", self.name, self.ready, self.desired)
    }
}

pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// What the failover strategy calls for (pure). Evidence `switch` is
/// `failover` or `failback` when a switch is due; `waiting` says what the
/// incident waits for when nothing is to be done now.
pub fn assess_failover(s: &FailoverSpec, selector: &BTreeMap<String, String>, primary: &Workload, secondary: &Workload, now: DateTime<Utc>) -> Outcome {
    let svc = format!("service {}/{}", s.namespace, s.service);
    let role = if primary.exists && !primary.labels.is_empty() && *selector == primary.labels {
        "primary"
    } else if secondary.exists && !secondary.labels.is_empty() && *selector == secondary.labels {
        "secondary"
    } else {
        "neither"
    };
    let mut o = Outcome::new(Status::Ok, "")
        .with("namespace", s.namespace.as_str())
        .with("service", s.service.as_str())
        .with("serving", role)
        .with("selector", labels_text(selector))
        .with("primary", primary.describe())
        .with("secondary", secondary.describe());
    let mut set = |status: Status, summary: String, switch: Option<&str>, waiting: Option<String>| {
        o.status = status;
        o.summary = summary;
        if let Some(sw) = switch {
            o.evidence.insert("switch".into(), sw.into());
        }
        if let Some(w) = waiting {
            o.evidence.insert("waiting".into(), w.into());
        }
    };
    match role {
        "primary" if primary.healthy() => set(Status::Ok, format!("{svc} is served by its primary {}", primary.describe()), None, None),
        "primary" if secondary.healthy() => {
            set(Status::Failing, format!("{svc} is served by its primary {}, which is down; its secondary {} is ready", primary.describe(), secondary.describe()), Some("failover"), None)
        }
        "primary" => set(Status::Failing, format!("{svc} is served by its primary {}, which is down, and its secondary {} is not ready either", primary.describe(), secondary.describe()), None, None),
        "secondary" if primary.healthy() && !secondary.healthy() => set(
            Status::Failing,
            format!("{svc} is served by its secondary {}, which is down, while its primary {} is healthy: switching back now", secondary.describe(), primary.describe()),
            Some("failback"),
            None,
        ),
        "secondary" if primary.healthy() => {
            let since = primary.ready_since.unwrap_or(now);
            let held = (now - since).to_std().unwrap_or_default();
            if held >= s.switch_back_after {
                set(
                    Status::Failing,
                    format!(
                        "{svc} is served by its secondary {}; its primary {} has been healthy for {} (window {}): switching back",
                        secondary.describe(),
                        primary.describe(),
                        crate::duration::format(held),
                        crate::duration::format(s.switch_back_after)
                    ),
                    Some("failback"),
                    None,
                );
            } else {
                let line =
                    format!("its primary {} has been healthy for {} of the {} before switching back", primary.describe(), crate::duration::format(held), crate::duration::format(s.switch_back_after));
                set(Status::Failing, format!("{svc} is served by its secondary {}; {line}", secondary.describe()), None, Some(line));
            }
        }
        "secondary" if secondary.healthy() => {
            let line = format!("its primary {} is recovering", primary.describe());
            set(Status::Failing, format!("{svc} is served by its secondary {} while {line}", secondary.describe()), None, Some(line));
        }
        "secondary" => set(Status::Failing, format!("{svc} is served by its secondary {}, which is down, and its primary {} is down too", secondary.describe(), primary.describe()), None, None),
        _ => set(
            Status::Failing,
            format!(
                "{svc} selects {{{}}}, which is neither its primary {} ({}) nor its secondary {} ({}): nightshift does not touch a selector it did not expect",
                labels_text(selector),
                primary.name,
                labels_text(&primary.labels),
                secondary.name,
                labels_text(&secondary.labels)
            ),
            None,
            None,
        ),
    }
    o
}

pub async fn failover(s: &FailoverSpec, ctx: &Context) -> Outcome {
    match read_failover(s, ctx).await {
        Ok((selector, primary, secondary)) => assess_failover(s, &selector, &primary, &secondary, Utc::now()),
        Err(e) => Outcome::new(Status::Error, e),
    }
}

/// The Service's selector and both sides.
async fn read_failover(s: &FailoverSpec, ctx: &Context) -> Result<(BTreeMap<String, String>, Workload, Workload), String> {
    let client = ctx.kube.get(s.context.as_deref()).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &s.namespace);
    let svc = services
        .get_opt(&s.service)
        .await
        .map_err(|e| explain(&e, &format!("reading service {}/{}", s.namespace, s.service)))?
        .ok_or_else(|| format!("service {}/{} does not exist", s.namespace, s.service))?;
    let selector = svc.spec.and_then(|sp| sp.selector).unwrap_or_default();
    Ok((selector, workload(&client, &s.namespace, &s.primary).await?, workload(&client, &s.namespace, &s.secondary).await?))
}

/// A Deployment's selector labels, readiness, and since when all its pods are ready.
pub async fn workload(client: &kube::Client, namespace: &str, name: &str) -> Result<Workload, String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(d) = api.get_opt(name).await.map_err(|e| explain(&e, &format!("reading deployment {namespace}/{name}")))? else {
        return Ok(Workload { name: name.to_string(), ..Default::default() });
    };
    let spec = d.spec.as_ref();
    if spec.is_some_and(|sp| sp.selector.match_expressions.as_ref().is_some_and(|e| !e.is_empty())) {
        return Err(format!("deployment {namespace}/{name} selects its pods with matchExpressions; a Service selects by labels only, so it cannot be a failover side"));
    }
    let labels = spec.and_then(|sp| sp.selector.match_labels.clone()).unwrap_or_default();
    let desired = spec.and_then(|sp| sp.replicas).unwrap_or(1);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(&labels_text(&labels))).await.map_err(|e| explain(&e, &format!("listing the pods of {namespace}/{name}")))?;
    let mut ready = 0;
    let mut since: Option<DateTime<Utc>> = None;
    for p in list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let cond = p.status.as_ref().and_then(|st| st.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        if let Some(c) = cond.filter(|c| c.status == "True") {
            ready += 1;
            let t = c.last_transition_time.as_ref().map(crate::checks::kube::observe::time);
            since = match (since, t) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(Workload { name: name.to_string(), exists: true, labels, desired, ready, ready_since: since })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScalingSpec {
        ScalingSpec {
            context: None,
            namespace: "shop".into(),
            deployment: "checkout".into(),
            min: 2,
            max: 10,
            load: LoadSignal::Http { url: "http://127.0.0.1:1/".into() },
            above: 500.0,
            below: Some(50.0),
            scale_down_after: Duration::from_secs(900),
            timeout: Duration::from_secs(5),
        }
    }

    fn read(replicas: i32, value: f64, hpa: Option<&str>) -> Outcome {
        assess_scaling(&spec(), &ScalingReading { replicas, ready: replicas, value, hpa: hpa.map(str::to_string) })
    }

    fn proposed(o: &Outcome) -> i64 {
        o.evidence["proposed"].as_i64().unwrap_or(-1)
    }

    #[test]
    fn load_doubles_up_to_max_and_says_when_at_max() {
        let o = read(3, 800.0, None);
        assert_eq!((o.status, proposed(&o)), (Status::Failing, 6));
        let o = read(6, 800.0, None);
        assert_eq!(proposed(&o), 10, "capped at max");
        let o = read(10, 800.0, None);
        assert_eq!((o.status, o.evidence.get("at_max").cloned()), (Status::Failing, Some(true.into())));
        assert!(o.summary.contains("at its maximum of 10"), "{}", o.summary);
    }

    #[test]
    fn light_load_is_a_candidate_halved_to_min_and_never_below() {
        let o = read(8, 10.0, None);
        assert_eq!((o.status, proposed(&o), o.evidence.get("over_provisioned").cloned()), (Status::Ok, 4, Some(true.into())));
        let o = read(3, 10.0, None);
        assert_eq!(proposed(&o), 2, "floored at min");
        let o = read(2, 10.0, None);
        assert!(o.evidence.get("over_provisioned").is_none(), "at min there is nothing to halve");
    }

    #[test]
    fn below_min_is_raised_and_an_autoscaler_is_left_alone() {
        let o = read(1, 100.0, None);
        assert_eq!((o.status, proposed(&o)), (Status::Failing, 2));
        let o = read(3, 800.0, Some("checkout"));
        assert_eq!(o.status, Status::Warning);
        assert!(o.summary.contains("HorizontalPodAutoscaler shop/checkout owns its replicas"), "{}", o.summary);
        let o = read(8, 10.0, Some("checkout"));
        assert!(o.evidence.get("over_provisioned").is_none());
    }

    fn side(name: &str, role: &str, desired: i32, ready: i32, since: Option<DateTime<Utc>>) -> Workload {
        Workload { name: name.into(), exists: true, labels: [("app".to_string(), "db".to_string()), ("role".to_string(), role.to_string())].into(), desired, ready, ready_since: since }
    }

    fn fo() -> FailoverSpec {
        FailoverSpec { context: None, namespace: "shop".into(), service: "db".into(), primary: "db-a".into(), secondary: "db-b".into(), switch_back_after: Duration::from_secs(300), recover: true }
    }

    #[test]
    fn failover_follows_the_primary_and_waits_out_the_window() {
        let now = Utc::now();
        let p_ok = side("db-a", "primary", 2, 2, Some(now - chrono::Duration::seconds(60)));
        let p_down = side("db-a", "primary", 2, 0, None);
        let s_ok = side("db-b", "standby", 1, 1, Some(now));
        let on_p = p_ok.labels.clone();
        let on_s = s_ok.labels.clone();
        assert_eq!(assess_failover(&fo(), &on_p, &p_ok, &s_ok, now).status, Status::Ok);
        let o = assess_failover(&fo(), &on_p, &p_down, &s_ok, now);
        assert_eq!(o.evidence.get("switch"), Some(&"failover".into()));
        let o = assess_failover(&fo(), &on_p, &p_down, &side("db-b", "standby", 1, 0, None), now);
        assert!(o.evidence.get("switch").is_none() && o.evidence.get("waiting").is_none(), "both down: a human");
        let o = assess_failover(&fo(), &on_s, &p_down, &s_ok, now);
        assert!(o.evidence.get("waiting").is_some() && o.evidence.get("switch").is_none());
        let o = assess_failover(&fo(), &on_s, &p_ok, &s_ok, now);
        assert!(o.evidence["waiting"].as_str().unwrap_or("").contains("healthy for 1m of the 5m"), "{o:?}");
        let o = assess_failover(&fo(), &on_s, &p_ok, &s_ok, now + chrono::Duration::seconds(300));
        assert_eq!(o.evidence.get("switch"), Some(&"failback".into()));
        let o = assess_failover(&fo(), &[("app".to_string(), "db".to_string())].into(), &p_ok, &s_ok, now);
        assert!(o.status == Status::Failing && o.evidence.get("switch").is_none() && o.summary.contains("neither"), "{}", o.summary);
    }
}
