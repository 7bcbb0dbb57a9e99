//! What the Kubernetes checks see, as pure functions of listed objects: one
//! series per unhealthy workload, node, Service or rollout, with the facts the
//! diagnosis needs. No requests here: the checks list once (or read the watch
//! cache) and hand the objects over.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checks::{Outcome, Series, Status};

/// Waiting reasons that mean the container cannot run.
pub const BAD_WAITING: [&str; 8] =
    ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "ErrImageNeverPull"];

pub fn time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// When a pod counts as unhealthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodRules {
    /// More restarts than this, the last within the past hour, is unhealthy.
    pub max_restarts: i32,
    /// How long a running pod may be unready.
    pub ready_grace: Duration,
    /// How long a pod may stay Pending.
    pub pending_grace: Duration,
}

/// The last termination of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    pub reason: String,
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

/// One unhealthy pod, as the diagnosis reads it back from the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    /// CrashLoopBackOff, ImagePullBackOff, Unschedulable, Pending, NotReady, Failed, Restarting.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub restarts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<LastExit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    /// Whether `container` is an init container (then the application never started).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

/// A pod's problem, if it has one.
pub fn pod_problem(pod: &Pod, rules: &PodRules, now: DateTime<Utc>) -> Option<PodFacts> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let spec = pod.spec.as_ref();
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    if phase == "Succeeded" {
        return None;
    }
    let mut facts = PodFacts {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        phase: phase.clone(),
        reason: String::new(),
        message: None,
        node: spec.and_then(|s| s.node_name.clone()),
        container: None,
        image: None,
        restarts: 0,
        last_exit: None,
        memory_limit: None,
        memory_request: None,
        init: false,
    };
    let statuses = status.container_statuses.iter().flatten().map(|c| (c, false)).chain(status.init_container_statuses.iter().flatten().map(|c| (c, true)));
    // The worst container: a bad waiting reason first, then the most restarts.
    let mut worst: Option<(&k8s_openapi::api::core::v1::ContainerStatus, u8, bool)> = None;
    for (cs, init) in statuses {
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref());
        let rank = if waiting.is_some_and(|w| BAD_WAITING.contains(&w)) {
            2
        } else if cs.restart_count > 0 {
            1
        } else {
            0
        };
        if worst.is_none_or(|(w, r, _)| rank > r || (rank == r && cs.restart_count > w.restart_count)) {
            worst = Some((cs, rank, init));
        }
    }
    if let Some((cs, _, init)) = worst {
        facts.container = Some(cs.name.clone());
        facts.init = init;
        facts.image = Some(cs.image.clone());
        facts.restarts = cs.restart_count;
        facts.last_exit = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| LastExit {
            reason: t.reason.clone().unwrap_or_else(|| "Unknown".into()),
            exit_code: t.exit_code,
            finished: t.finished_at.as_ref().map(|f| time(f).to_rfc3339()),
        });
        let resources = spec.and_then(|s| s.containers.iter().chain(s.init_containers.iter().flatten()).find(|c| c.name == cs.name)).and_then(|c| c.resources.as_ref());
        facts.memory_limit = resources.and_then(|r| r.limits.as_ref()).and_then(|l| l.get("memory")).map(|q| q.0.clone());
        facts.memory_request = resources.and_then(|r| r.requests.as_ref()).and_then(|l| l.get("memory")).map(|q| q.0.clone());
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| BAD_WAITING.contains(r))
        {
            facts.reason = reason.to_string();
            facts.message = w.message.clone();
            return Some(facts);
        }
    }
    if phase == "Unknown" {
        facts.reason = "Unknown".into();
        facts.message = Some(status.message.clone().unwrap_or_else(|| "the pod's node stopped reporting its state".into()));
        return Some(facts);
    }
    if phase == "Failed" {
        facts.reason = "Failed".into();
        facts.message = status.message.clone().or(status.reason.clone());
        return Some(facts);
    }
    let condition = |t: &str| status.conditions.iter().flatten().find(|c| c.type_ == t);
    if phase == "Pending" {
        if let Some(c) = condition("PodScheduled").filter(|c| c.status == "False") {
            facts.reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
            facts.message = c.message.as_deref().map(scheduler_reasons);
            return Some(facts);
        }
        let since = pod.metadata.creation_timestamp.as_ref().map(time).unwrap_or(now);
        if older_than(since, now, rules.pending_grace) {
            facts.reason = "Pending".into();
            facts.message = Some(format!("pending since {}", since.to_rfc3339()));
            return Some(facts);
        }
        return None;
    }
    let recent = |e: &Option<LastExit>| {
        e.as_ref().and_then(|e| e.finished.as_deref()).and_then(|f| DateTime::parse_from_rfc3339(f).ok()).is_none_or(|f| now - f.with_timezone(&Utc) < chrono::Duration::hours(1))
    };
    if facts.restarts > rules.max_restarts && recent(&facts.last_exit) {
        facts.reason = "Restarting".into();
        facts.message = Some(format!("{} restarts", facts.restarts));
        return Some(facts);
    }
    if phase == "Running"
        && let Some(c) = condition("Ready").filter(|c| c.status != "True")
    {
        // The grace counts from when the containers last started (a restarted
        // container warms up again), not from when the pod object was created.
        let started = status.container_statuses.iter().flatten().filter_map(|cs| cs.state.as_ref()?.running.as_ref()?.started_at.as_ref().map(time)).max();
        let since = c.last_transition_time.as_ref().map(time).into_iter().chain(started).max().unwrap_or(now);
        if older_than(since, now, rules.ready_grace) {
            facts.reason = "NotReady".into();
            facts.message = c.message.clone().or(c.reason.clone());
            return Some(facts);
        }
    }
    None
}

fn older_than(since: DateTime<Utc>, now: DateTime<Utc>, grace: Duration) -> bool {
    (now - since).to_std().unwrap_or_default() >= grace
}

/// Labels that identify a workload's pods (the template hash left out).
pub fn workload_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut l = pod.metadata.labels.clone().unwrap_or_default();
    l.remove("pod-template-hash");
    l.remove("controller-revision-hash");
    l.remove("statefulset.kubernetes.io/pod-name");
    l
}

/// The `k8s-pods` verdict: one failing series per workload with unhealthy pods.
/// `list` holds pods or the watch cache's shared pods (no copy per pass).
pub fn pods<P: Borrow<Pod>>(list: &[P], rules: &PodRules, now: DateTime<Utc>) -> Outcome {
    struct Group {
        kind: String,
        total: usize,
        bad: Vec<PodFacts>,
        labels: BTreeMap<String, String>,
        /// Pods neither healthy-and-ready nor unhealthy yet: starting, or going away.
        settling: bool,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in list {
        let pod = pod.borrow();
        let (kind, name) = crate::k8s::workload_of(pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{ns}/{}/{name}", kind.to_ascii_lowercase());
        let g = groups.entry(key).or_insert_with(|| Group { kind, total: 0, bad: Vec::new(), labels: workload_labels(pod), settling: false });
        g.total += 1;
        match pod_problem(pod, rules, now) {
            Some(f) => g.bad.push(f),
            None => g.settling |= is_settling(pod),
        }
    }
    let settling: Vec<Value> = groups.iter().filter(|(_, g)| g.settling).map(|(t, _)| Value::String(t.clone())).collect();
    let mut series = Vec::new();
    let mut unhealthy = 0;
    for (target, g) in groups.into_iter().filter(|(_, g)| !g.bad.is_empty()) {
        unhealthy += g.bad.len();
        let first = &g.bad[0];
        let detail = match (&first.last_exit, first.reason.as_str()) {
            (Some(e), "CrashLoopBackOff" | "Restarting") => format!("{} (last exit: {} code {}, {} restarts)", first.reason, e.reason, e.exit_code, first.restarts),
            _ => match &first.message {
                Some(m) => format!("{}: {}", first.reason, one_line(m)),
                None => first.reason.clone(),
            },
        };
        let summary = format!("{target}: {} of {} pod(s) unhealthy: {detail}", g.bad.len(), g.total);
        let mut evidence = Map::new();
        let (ns, rest) = target.split_once('/').unwrap_or(("", &target));
        evidence.insert("namespace".into(), ns.into());
        evidence.insert("workload_kind".into(), g.kind.clone().into());
        evidence.insert("workload".into(), rest.split_once('/').map_or(rest, |(_, n)| n).into());
        evidence.insert("pods_total".into(), g.total.into());
        evidence.insert("labels".into(), serde_json::to_value(&g.labels).unwrap_or_default());
        evidence.insert("pods".into(), serde_json::to_value(&g.bad).unwrap_or_default());
        series.push(Series { target, status: Status::Failing, summary, evidence });
    }
    let mut out = if series.is_empty() {
        Outcome::new(Status::Ok, format!("{} pod(s) healthy", list.len()))
    } else {
        Outcome::new(Status::Failing, format!("{unhealthy} of {} pod(s) unhealthy in {} workload(s)", list.len(), series.len()))
    };
    out.evidence.insert("pods".into(), list.len().into());
    out.evidence.insert("unhealthy".into(), unhealthy.into());
    out.evidence.insert("settling".into(), settling.into());
    out.series = series;
    out
}

/// A pod that is not (yet, or any more) a settled, ready member of its workload.
fn is_settling(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return true;
    }
    let Some(status) = pod.status.as_ref() else { return true };
    match status.phase.as_deref() {
        Some("Succeeded") => false,
        Some("Running") => !status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True"),
        _ => true,
    }
}

/// The `k8s-deployments` verdict: stuck rollouts and deployments without
/// their available replicas for longer than `grace`.
pub fn deployments<D: Borrow<Deployment>>(list: &[D], grace: Duration, now: DateTime<Utc>) -> Outcome {
    let mut series = Vec::new();
    let mut settling = Vec::new();
    for d in list {
        let d = d.borrow();
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let Some(status) = d.status.as_ref() else {
            settling.push(Value::String(format!("{ns}/deployment/{name}")));
            continue;
        };
        let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let available = status.available_replicas.unwrap_or(0);
        // A rollout in flight: not yet observed, not all updated, or not all available.
        if status.observed_generation < d.metadata.generation || status.updated_replicas.unwrap_or(0) < spec_replicas || available < spec_replicas || status.replicas.unwrap_or(0) > spec_replicas {
            settling.push(Value::String(format!("{ns}/deployment/{name}")));
        }
        let cond = |t: &str| status.conditions.iter().flatten().find(|c| c.type_ == t);
        let stuck = cond("Progressing").filter(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        let unavailable = cond("Available").filter(|c| c.status == "False").filter(|c| older_than(c.last_transition_time.as_ref().map(time).unwrap_or(now), now, grace));
        let (reason, message) = match (stuck, unavailable) {
            (Some(c), _) => ("ProgressDeadlineExceeded", c.message.clone().unwrap_or_default()),
            (None, Some(c)) => ("Unavailable", c.message.clone().unwrap_or_default()),
            (None, None)
                if available < spec_replicas && status.observed_generation >= d.metadata.generation && cond("Progressing").is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable")) =>
            {
                // A finished rollout that lost replicas later (crashes, evictions).
                let since = cond("Available").and_then(|c| c.last_update_time.as_ref()).map(time).unwrap_or(now);
                if !older_than(since, now, grace) {
                    continue;
                }
                ("Unavailable", format!("{available} of {spec_replicas} replicas available"))
            }
            (None, None) => continue,
        };
        let revision = d.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).cloned().unwrap_or_default();
        let images: Vec<String> = d.spec.as_ref().map(|s| s.template.spec.iter().flat_map(|p| p.containers.iter()).filter_map(|c| c.image.clone()).collect()).unwrap_or_default();
        let mut evidence = Map::new();
        evidence.insert("namespace".into(), ns.clone().into());
        evidence.insert("deployment".into(), name.clone().into());
        evidence.insert("reason".into(), reason.into());
        evidence.insert("message".into(), message.clone().into());
        evidence.insert("revision".into(), revision.into());
        evidence.insert("replicas".into(), spec_replicas.into());
        evidence.insert("updated".into(), status.updated_replicas.unwrap_or(0).into());
        evidence.insert("ready".into(), status.ready_replicas.unwrap_or(0).into());
        evidence.insert("available".into(), available.into());
        evidence.insert("images".into(), images.into());
        evidence.insert("paused".into(), d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false).into());
        let labels = d.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
        evidence.insert("labels".into(), serde_json::to_value(labels).unwrap_or_default());
        let target = format!("{ns}/deployment/{name}");
        let summary = format!("{target}: {reason}: {} ({available}/{spec_replicas} available)", one_line(&message));
        series.push(Series { target, status: Status::Failing, summary, evidence });
    }
    let mut out = finish(series, list.len(), "deployment(s)");
    out.evidence.insert("settling".into(), settling.into());
    out
}

/// The `k8s-nodes` verdict: not Ready, or under memory, disk or PID pressure.
pub fn nodes<N: Borrow<Node>>(list: &[N]) -> Outcome {
    let mut series = Vec::new();
    for n in list {
        let n = n.borrow();
        let name = n.metadata.name.clone().unwrap_or_default();
        let conditions = n.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        let mut bad = Vec::new();
        match conditions.iter().find(|c| c.type_ == "Ready") {
            Some(c) if c.status == "True" => {}
            Some(c) => bad.push(("NotReady", format!("Ready={}: {}", c.status, c.message.clone().or(c.reason.clone()).unwrap_or_default()))),
            None => bad.push(("NotReady", "the node reports no Ready condition".into())),
        }
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            if let Some(c) = conditions.iter().find(|c| c.type_ == t && c.status == "True") {
                bad.push((t, c.message.clone().or(c.reason.clone()).unwrap_or_default()));
            }
        }
        if bad.is_empty() {
            continue;
        }
        let mut evidence = Map::new();
        evidence.insert("node".into(), name.clone().into());
        evidence.insert("reason".into(), bad[0].0.into());
        evidence.insert("conditions".into(), bad.iter().map(|(t, m)| Value::String(format!("{t}: {}", one_line(m)))).collect::<Vec<_>>().into());
        evidence.insert("unschedulable".into(), n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false).into());
        if let Some(since) = conditions.iter().find(|c| c.type_ == "Ready" && c.status != "True").and_then(|c| c.last_transition_time.as_ref()) {
            evidence.insert("not_ready_since".into(), crate::duration::timestamp(time(since)).into());
        }
        let summary = format!("node {name}: {}", bad.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", "));
        series.push(Series { target: format!("node/{name}"), status: Status::Failing, summary, evidence });
    }
    finish(series, list.len(), "node(s)")
}

/// A Service and how many ready endpoints it has.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEndpoints {
    pub namespace: String,
    pub name: String,
    pub ready: usize,
    pub not_ready: usize,
    /// The Service's selector, which the diagnosis follows to its pods.
    pub selector: BTreeMap<String, String>,
}

/// The `k8s-services` verdict: a Service that selects pods but has no ready endpoint.
pub fn services(list: &[ServiceEndpoints]) -> Outcome {
    let series = list
        .iter()
        .filter(|s| s.ready == 0)
        .map(|s| {
            let target = format!("{}/service/{}", s.namespace, s.name);
            let mut evidence = Map::new();
            evidence.insert("namespace".into(), s.namespace.clone().into());
            evidence.insert("service".into(), s.name.clone().into());
            evidence.insert("ready_endpoints".into(), 0.into());
            evidence.insert("not_ready_endpoints".into(), s.not_ready.into());
            evidence.insert("selector".into(), serde_json::to_value(&s.selector).unwrap_or_default());
            Series { summary: format!("{target}: no ready endpoints ({} not ready)", s.not_ready), target, status: Status::Failing, evidence }
        })
        .collect();
    finish(series, list.len(), "service(s)")
}

fn finish(series: Vec<Series>, total: usize, what: &str) -> Outcome {
    let mut out = if series.is_empty() {
        Outcome::new(Status::Ok, format!("{total} {what} healthy"))
    } else {
        Outcome::new(Status::Failing, format!("{} of {total} {what} unhealthy: {}", series.len(), series.iter().map(|s| s.target.as_str()).take(5).collect::<Vec<_>>().join(", ")))
    };
    out.evidence.insert("total".into(), total.into());
    out.evidence.insert("unhealthy".into(), series.len().into());
    out.series = series;
    out
}

/// The scheduler's "0/8 nodes are available: 1 node(s) had taint {…}, 3
/// node(s) didn't match Pod's node affinity/selector." with its reasons
/// ordered by how many nodes give them, so the reason that matters most
/// survives when the message is shortened. Other messages are unchanged.
pub fn scheduler_reasons(message: &str) -> String {
    let Some((head, rest)) = message.split_once(" nodes are available: ") else { return message.to_string() };
    let rest = rest.trim_end();
    let (body, end) = match rest.strip_suffix('.') {
        Some(b) => (b, "."),
        None => (rest, ""),
    };
    let mut parts: Vec<String> = Vec::new();
    for piece in body.split(", ") {
        match parts.last_mut() {
            Some(last) if !piece.starts_with(|c: char| c.is_ascii_digit()) => {
                last.push_str(", ");
                last.push_str(piece);
            }
            _ => parts.push(piece.to_string()),
        }
    }
    let count = |p: &String| p.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    parts.sort_by_key(|p| std::cmp::Reverse(count(p)));
    format!("{head} nodes are available: {}{end}", parts.join(", "))
}

pub fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 240 { format!("{}…", s.chars().take(240).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: PodRules = PodRules { max_restarts: 3, ready_grace: Duration::from_secs(60), pending_grace: Duration::from_secs(300) };

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-5d9c-abcde", "namespace": "shop", "creationTimestamp": "2026-11-23T11:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "5d9c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "web:1", "resources": {"limits": {"memory": "512Mi"}}}]},
            "status": status,
        }))
        .unwrap_or_default()
    }

    fn reason(status: serde_json::Value) -> Option<String> {
        pod_problem(&pod(status), &RULES, now()).map(|f| f.reason)
    }

    #[test]
    fn pod_states_as_kubernetes_reports_them() {
        let ready = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(
            reason(
                json!({"phase": "Running", "conditions": ready, "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]})
            ),
            None
        );
        // An init container that crash-loops keeps the pod Pending.
        assert_eq!(
            reason(json!({"phase": "Pending", "initContainerStatuses": [{"name": "migrate", "image": "m:1", "imageID": "", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})).as_deref(),
            Some("CrashLoopBackOff")
        );
        // Pulling an image for a minute is not a problem yet; a long Pending is.
        assert_eq!(reason(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}], "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]})).as_deref(), Some("Pending"));
        assert_eq!(
            reason(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]}))
                .as_deref(),
            Some("Unschedulable")
        );
        assert_eq!(
            scheduler_reasons("0/8 nodes are available: 1 node(s) had taint {dedicated: a}, that the pod didn't tolerate, 2 Insufficient cpu, 5 node(s) didn't match Pod's node affinity/selector."),
            "0/8 nodes are available: 5 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu, 1 node(s) had taint {dedicated: a}, that the pod didn't tolerate."
        );
        assert_eq!(scheduler_reasons("no nodes available to schedule pods"), "no nodes available to schedule pods");
        assert_eq!(reason(json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."})).as_deref(), Some("Failed"));
        assert_eq!(reason(json!({"phase": "Unknown"})).as_deref(), Some("Unknown"));
        assert_eq!(reason(json!({"phase": "Succeeded"})), None);
        // Many restarts long ago and running fine now: healthy.
        let old = json!({"phase": "Running", "conditions": ready, "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": true, "restartCount": 40, "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-20T00:00:00Z"}}}]});
        assert_eq!(reason(old), None);
        let recent = json!({"phase": "Running", "conditions": ready, "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": true, "restartCount": 40, "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-23T11:58:00Z"}}}]});
        let f = pod_problem(&pod(recent), &RULES, now());
        assert_eq!(f.as_ref().map(|f| (f.reason.as_str(), f.memory_limit.as_deref())), Some(("Restarting", Some("512Mi"))));
        // Unready for less than the grace: not yet.
        assert_eq!(reason(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-23T11:59:30Z"}]})), None);
        assert_eq!(reason(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-23T11:50:00Z"}]})).as_deref(), Some("NotReady"));
        // Unready since 11:50, but its container (re)started 30 s ago: the grace runs from the start.
        let restarted = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-23T11:50:00Z"}],
            "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": false, "restartCount": 1, "state": {"running": {"startedAt": "2026-11-23T11:59:30Z"}}}]});
        assert_eq!(reason(restarted), None);
    }

    #[test]
    fn one_series_per_workload_named_by_its_deployment() {
        let bad = json!({"phase": "Running", "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]});
        let mut second = pod(bad.clone());
        second.metadata.name = Some("web-5d9c-fghij".into());
        let out = pods(&[pod(bad), second], &RULES, now());
        assert_eq!(out.status, Status::Failing);
        assert_eq!(out.series.len(), 1);
        assert_eq!(out.series[0].target, "shop/deployment/web");
        assert!(out.series[0].summary.contains("2 of 2 pod(s) unhealthy: CrashLoopBackOff (last exit: Error code 2, 5 restarts)"), "{}", out.series[0].summary);
        assert_eq!(out.series[0].evidence["labels"], json!({"app": "web"}), "the template hash is not a workload label");
    }
}
