//! Deterministic diagnosis of what the Kubernetes checks found: the class,
//! the evidence a senior on-call engineer would gather (status, events, the
//! last log lines) and the ordered repair plan. Logs, events and messages are
//! untrusted text: they are quoted as evidence and never choose an action
//! beyond the fixed classes below.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use crate::actions::Action;
use crate::checks::CheckResult;
use crate::checks::kube::observe::{PodFacts, one_line};
use crate::diagnosis::Diagnosis;
use crate::k8s::quantity;
use crate::markdown::code;

/// Lines of the previous container's log kept as evidence.
pub const LOG_LINES: i64 = 20;

fn ev<'a>(r: &'a CheckResult, key: &str) -> &'a str {
    r.evidence.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

pub fn pod_facts(r: &CheckResult) -> Vec<PodFacts> {
    r.evidence.get("pods").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// A pods-check series: what is wrong with the workload's pods.
pub fn pods(r: &CheckResult, context: Option<&str>) -> Diagnosis {
    if let Some(dep) = r.evidence.get("cascade").and_then(|v| v.as_str()) {
        return cascade(r, dep);
    }
    let facts = pod_facts(r);
    let (ns, kind, workload) = (ev(r, "namespace"), ev(r, "workload_kind"), ev(r, "workload"));
    let Some(first) = facts.first() else {
        return Diagnosis { class: "pod-unhealthy", title: format!("{} is unhealthy", r.target), steps: vec![code(&r.summary)], prevention: Vec::new(), plan: Vec::new(), investigate: true };
    };
    let mut steps: Vec<String> = facts.iter().take(5).map(describe).collect();
    if facts.len() > 5 {
        steps.push(format!("… and {} more pod(s) like these", facts.len() - 5));
    }
    let restart = Action::RestartPod { namespace: ns.into(), pod: first.name.clone(), workload: Some(format!("{}/{workload}", kind.to_ascii_lowercase())), context: context.map(str::to_string) };
    let is_deployment = kind == "Deployment";
    // A limit change is proposed for the workloads whose pod template nightshift can read.
    let templated = matches!(kind, "Deployment" | "StatefulSet");
    let oom = first.last_exit.as_ref().is_some_and(|e| e.reason == "OOMKilled");
    let (class, title, plan, prevention): (&'static str, String, Vec<Action>, Vec<String>) = match first.reason.as_str() {
        "CrashLoopBackOff" | "Restarting" if oom => {
            let mut plan = vec![restart];
            let limit = first.memory_limit.clone();
            match (&limit, limit.as_deref().and_then(|l| quantity::raise(l, 1.5)), templated) {
                (Some(from), Some(to), true) => {
                    steps.push(format!(
                        "container {} was OOMKilled at its memory limit {} (request {}): usage reached the limit",
                        code(first.container.as_deref().unwrap_or("?")),
                        code(from),
                        code(first.memory_request.as_deref().unwrap_or("unset"))
                    ));
                    plan.push(Action::RaiseMemoryLimit {
                        namespace: ns.into(),
                        deployment: workload.into(),
                        kind: kind.into(),
                        container: first.container.clone().unwrap_or_default(),
                        from: from.clone(),
                        to,
                        context: context.map(str::to_string),
                    });
                }
                (None, _, _) => steps.push("the container has no memory limit: the node ran out of memory and the kernel chose it".into()),
                _ => {}
            }
            (
                "pod-oom",
                format!("{ns}/{workload} is OOMKilled in a loop"),
                plan,
                vec!["size the memory limit from the container's real peak usage (plus headroom) in the manifest, not by restarting".into(), "a restart only buys time: merge the limit change".into()],
            )
        }
        "CrashLoopBackOff" | "Restarting" if first.init => {
            steps.push(format!(
                "init container {} fails{}: the application's containers never started",
                code(first.container.as_deref().unwrap_or("?")),
                first.last_exit.as_ref().map(|e| format!(" (exit code {}, {})", e.exit_code, code(&e.reason))).unwrap_or_default()
            ));
            (
                "pod-init-failing",
                format!("{ns}/{workload}: init container {} fails, the application never started", first.container.as_deref().unwrap_or("?")),
                vec![restart],
                vec!["an init container waits for or prepares something (a migration, a dependency): its last log lines name what it could not do".into()],
            )
        }
        "CrashLoopBackOff" | "Restarting" => (
            "pod-crashloop",
            format!("{ns}/{workload} is crash-looping"),
            vec![restart],
            vec!["read the last log lines of the previous container: an application that exits on start needs its configuration or dependency fixed".into()],
        ),
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
            steps.push(format!("image {} cannot be pulled", code(first.image.as_deref().unwrap_or("?"))));
            let plan = if is_deployment { vec![Action::RolloutUndo { namespace: ns.into(), deployment: workload.into(), context: context.map(str::to_string) }] } else { Vec::new() };
            (
                "pod-image-pull",
                format!("{ns}/{workload} cannot pull its image"),
                plan,
                vec!["check the image name, tag and registry credentials (imagePullSecrets) before deploying; pin images by digest".into()],
            )
        }
        "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => (
            "pod-config-error",
            format!("{ns}/{workload} cannot create its container"),
            Vec::new(),
            vec!["a referenced Secret, ConfigMap or key is missing or wrong: create it or fix the reference".into()],
        ),
        "Unschedulable" | "Pending" => (
            "pod-unschedulable",
            format!("{ns}/{workload} cannot be scheduled"),
            Vec::new(),
            vec!["match requests, node selectors, affinities and tolerations to the nodes that exist, or add capacity".into()],
        ),
        "NotReady" => (
            "pod-not-ready",
            format!("{ns}/{workload} fails its readiness probe"),
            Vec::new(),
            vec!["find what the readiness probe waits for (a dependency, a warm-up) before restarting anything: a restart does not fix a missing dependency".into()],
        ),
        "Failed" if first.message.as_deref().is_some_and(|m| m.contains("low on resource")) => {
            let resource = first
                .message
                .as_deref()
                .and_then(|m| m.split("low on resource: ").nth(1))
                .map(|r| r.trim_end_matches('.').split(['.', ',']).next().unwrap_or(r).trim().to_string())
                .unwrap_or_default();
            steps.push(format!("evicted by the kubelet of node {}: the node was under {} pressure; the pod itself did not fail", code(first.node.as_deref().unwrap_or("?")), code(&resource)));
            (
                "pod-evicted",
                format!("{ns}/{workload} was evicted: node {} ran low on {resource}", first.node.as_deref().unwrap_or("?")),
                Vec::new(),
                vec!["set requests that match real usage (the kubelet evicts pods using more than they request first) and watch the node's pressure conditions".into()],
            )
        }
        _ => ("pod-failed", format!("{ns}/{workload} has failed pods"), Vec::new(), vec!["read the pod's status message and events".into()]),
    };
    if let Some(cause) = first.message.as_deref().and_then(referenced) {
        steps.push(format!("cause: {cause}"));
    }
    Diagnosis { class, title, steps, prevention, plan, investigate: true }
}

/// What a kubelet or scheduler message says is missing or wrong, naming
/// the object: a ConfigMap, Secret or key, a PersistentVolumeClaim or
/// StorageClass, a node selector, or resources no node can fit. The names
/// come from the message (untrusted text) and are quoted, never acted on.
pub fn referenced(message: &str) -> Option<String> {
    let quoted = |after: &str| message.split(after).nth(1).and_then(|r| r.split('"').next()).map(code);
    for (kind, what) in [("configmap", "ConfigMap"), ("secret", "Secret"), ("persistentvolumeclaim", "PersistentVolumeClaim"), ("storageclass.storage.k8s.io", "StorageClass")] {
        if let Some(name) = quoted(&format!("{kind} \"")).filter(|_| message.contains("not found")) {
            return Some(format!("the {what} {name} it references does not exist: create it or fix the reference"));
        }
    }
    if let Some(rest) = message.split("couldn't find key ").nth(1) {
        let mut words = rest.split_whitespace();
        let key = words.next().unwrap_or("?");
        let (kind, object) = (words.nth(1).unwrap_or("object"), words.next().unwrap_or("?"));
        return Some(format!("the {kind} {} has no key {}: add the key or fix the reference", code(object), code(key)));
    }
    if message.contains("unbound immediate PersistentVolumeClaims") {
        return Some("a PersistentVolumeClaim it mounts is not bound: no volume was provisioned for it (its events say why)".into());
    }
    if message.contains("didn't match Pod's node affinity") || message.contains("didn't match node selector") {
        return Some("no node carries the labels its nodeSelector (or node affinity) asks for: fix the selector or label a node".into());
    }
    if let Some(r) = message.split("Insufficient ").nth(1) {
        let resource = r.split([',', '.', ' ']).next().unwrap_or("resources");
        return Some(format!("its {} request fits no node: lower the request or add a node that can hold it", code(resource)));
    }
    None
}

/// Dependants failing together because a declared dependency is down: the
/// incident names the dependency; restarting the dependants would not help.
fn cascade(r: &CheckResult, check: &str) -> Diagnosis {
    let dependency = ev(r, "dependency");
    let workloads: Vec<String> = r.evidence.get("workloads").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str()).map(code).collect()).unwrap_or_default();
    let mut steps = vec![
        format!("dependency {} (check {}) is down: {}", code(dependency), code(check), code(ev(r, "dependency_status"))),
        format!("{} workload(s) that depend on it fail at the same time: {}", workloads.len(), workloads.join(", ")),
    ];
    steps.extend(pod_facts(r).iter().take(5).map(describe));
    steps.push(format!("the dependants are not restarted: they recover when {} does", code(dependency)));
    Diagnosis {
        class: "cascade",
        title: format!("Cascade: {} is down and its dependants fail", dependency),
        steps,
        prevention: vec!["readiness probes should not fail on a shared dependency (degrade instead), or every dependant drops out of its Service at once".into()],
        plan: Vec::new(),
        investigate: false,
    }
}

fn describe(f: &PodFacts) -> String {
    let mut s = format!("pod {} is {} ({})", code(&f.name), code(&f.reason), f.phase);
    if let Some(c) = &f.container {
        s.push_str(&format!(", {}container {}", if f.init { "init " } else { "" }, code(c)));
    }
    if let Some(m) = &f.message {
        s.push_str(&format!(": {}", code(&one_line(m))));
    }
    if f.restarts > 0 {
        s.push_str(&format!("; {} restarts", f.restarts));
    }
    if let Some(e) = &f.last_exit {
        s.push_str(&format!("; last exit {} code {}{}", code(&e.reason), e.exit_code, e.finished.as_ref().map(|t| format!(" at {t}")).unwrap_or_default()));
    }
    if let Some(n) = &f.node {
        s.push_str(&format!("; node {}", code(n)));
    }
    s
}

pub fn deployment(r: &CheckResult, context: Option<&str>) -> Diagnosis {
    let (ns, name) = (ev(r, "namespace"), ev(r, "deployment"));
    let reason = ev(r, "reason");
    let images: Vec<String> = r.evidence.get("images").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str()).map(code).collect()).unwrap_or_default();
    let mut steps = vec![format!("{}: {}", code(reason), code(ev(r, "message")))];
    steps.push(format!(
        "revision {}: {} replicas wanted, {} updated, {} ready, {} available; image {}",
        ev(r, "revision"),
        r.evidence.get("replicas").and_then(|v| v.as_i64()).unwrap_or(0),
        r.evidence.get("updated").and_then(|v| v.as_i64()).unwrap_or(0),
        r.evidence.get("ready").and_then(|v| v.as_i64()).unwrap_or(0),
        r.evidence.get("available").and_then(|v| v.as_i64()).unwrap_or(0),
        images.join(", ")
    ));
    if reason == "ProgressDeadlineExceeded" {
        Diagnosis {
            class: "rollout-stuck",
            title: format!("The rollout of {ns}/{name} is stuck"),
            steps,
            prevention: vec!["gate rollouts on readiness in CI/CD (e.g. `kubectl rollout status` or progressive delivery) so a bad revision never becomes the only one".into()],
            plan: vec![Action::RolloutUndo { namespace: ns.into(), deployment: name.into(), context: context.map(str::to_string) }],
            investigate: true,
        }
    } else {
        Diagnosis {
            class: "deployment-unavailable",
            title: format!("{ns}/{name} lacks available replicas"),
            steps,
            prevention: vec!["the pods check names why the replicas are missing; keep a PodDisruptionBudget and enough replicas to survive one failure".into()],
            plan: Vec::new(),
            investigate: true,
        }
    }
}

pub fn node(r: &CheckResult, context: Option<&str>) -> Diagnosis {
    let name = ev(r, "node").to_string();
    let conditions: Vec<String> = r.evidence.get("conditions").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str()).map(code).collect()).unwrap_or_default();
    let mut steps = vec![format!("node {}: {}", code(&name), conditions.join("; "))];
    if r.evidence.get("unschedulable").and_then(|v| v.as_bool()) == Some(true) {
        steps.push("the node is already cordoned".into());
    }
    let ctx = context.map(str::to_string);
    if ev(r, "reason") == "NotReady" {
        Diagnosis {
            class: "node-not-ready",
            title: format!("Node {name} is NotReady"),
            steps,
            prevention: vec!["replace nodes that stop reporting (node auto-repair) and keep workloads spread with PodDisruptionBudgets and topology spread".into()],
            plan: vec![Action::CordonNode { node: name.clone(), context: ctx.clone() }, Action::DrainNode { node: name, pods: None, context: ctx }],
            investigate: true,
        }
    } else {
        Diagnosis {
            class: "node-pressure",
            title: format!("Node {name} is under resource pressure"),
            steps,
            prevention: vec!["set requests that match real usage so the scheduler does not overcommit the node; alert on node allocatable, not only on pods".into()],
            plan: vec![Action::CordonNode { node: name, context: ctx }],
            investigate: true,
        }
    }
}

/// A NotReady node's containment, as far as it has gone: a cordoned node is
/// not cordoned again (only drained while pods are left to move), and a
/// cordoned, drained node is not touched again: it waits for a human, or,
/// with `replace_after` (AGENTS.md `replace_node:`), once it has been
/// NotReady that long, the plan asks for its replacement. Replacement comes
/// only after a confirmed drain.
pub async fn containment(client: &Client, r: &CheckResult, d: &mut Diagnosis, replace_after: Option<std::time::Duration>, context: Option<&str>) {
    let node = ev(r, "node").to_string();
    if r.evidence.get("unschedulable").and_then(|v| v.as_bool()) != Some(true) {
        return;
    }
    let pods: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let left = match pods.list(&lp).await {
        Ok(list) => crate::actions::kube::drainable(list.items).0.len(),
        Err(e) => {
            d.steps.push(format!("could not list the pods of node {}: {}", code(&node), code(&e.to_string())));
            return;
        }
    };
    d.plan.retain(|a| !matches!(a, Action::CordonNode { .. }));
    if left > 0 {
        d.steps.push(format!("{left} pod(s) still to move off node {}: the drain comes before any replacement", code(&node)));
        return;
    }
    d.plan.clear();
    let Some(after) = replace_after else {
        d.steps.push(format!("node {} is cordoned and drained: nothing is left to move; a human brings it back or replaces it", code(&node)));
        return;
    };
    let since = r.evidence.get("not_ready_since").and_then(|v| v.as_str()).and_then(crate::duration::parse_ts);
    let Some(since) = since else {
        d.steps.push(format!("node {} is cordoned and drained, but reports no time it became NotReady: not replaced", code(&node)));
        return;
    };
    let due = crate::duration::after(since, after).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    if due <= chrono::Utc::now() {
        d.steps.push(format!("node {} is cordoned, drained and NotReady since {}: it is to be replaced", code(&node), crate::duration::timestamp(since)));
        d.plan = vec![Action::ReplaceNode { node, context: context.map(str::to_string) }];
    } else {
        d.steps.push(format!("node {} is cordoned and drained; it is replaced if still NotReady at {}", code(&node), crate::duration::timestamp(due)));
    }
}

pub fn service(r: &CheckResult) -> Diagnosis {
    Diagnosis {
        class: "service-no-endpoints",
        title: format!("{} has no ready endpoints", r.target),
        steps: vec![code(&r.summary), "every pod behind the Service fails readiness, or its selector matches no pod".into()],
        prevention: vec!["keep at least two ready replicas behind every Service and alert on endpoints, not only on pods".into()],
        plan: Vec::new(),
        investigate: true,
    }
}

/// Follows a Service without ready endpoints to its pods: a selector that
/// matches no pod (shown beside the labels the namespace's workloads carry),
/// or the matching pods and what keeps each from being ready. Restarting
/// anything would not help a selector, so nothing is planned.
pub async fn service_findings(client: &Client, r: &CheckResult, d: &mut Diagnosis) {
    let ns = ev(r, "namespace");
    let selector: std::collections::BTreeMap<String, String> = r.evidence.get("selector").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let wanted = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods = match Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            d.steps.push(format!("could not list the pods of {}: {}", code(ns), code(&crate::k8s::explain(&e, "listing pods"))));
            return;
        }
    };
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let matching: Vec<&Pod> = live.iter().copied().filter(|p| crate::k8s::selector_matches(&wanted, p.metadata.labels.as_ref().unwrap_or(&Default::default()))).collect();
    if matching.is_empty() {
        let mut carried: Vec<String> = Vec::new();
        for p in &live {
            let (kind, name) = crate::k8s::workload_of(p);
            let labels = crate::checks::kube::observe::workload_labels(p).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let line = format!("{} {} ({})", kind.to_ascii_lowercase(), code(&name), code(&labels));
            if !carried.contains(&line) {
                carried.push(line);
            }
        }
        d.class = "service-selector-mismatch";
        d.title = format!("Service {} selects no pod", r.target);
        d.steps.push(format!(
            "its selector {} matches no pod in namespace {}; the workloads there carry: {}",
            code(&wanted),
            code(ns),
            if carried.is_empty() { "none (the namespace has no pods)".to_string() } else { carried.into_iter().take(10).collect::<Vec<_>>().join(", ") }
        ));
        d.prevention = vec!["keep a Service's selector and its workload's pod labels in one manifest (one set of common labels) so a rename changes both".into()];
        return;
    }
    let rules = crate::checks::kube::observe::PodRules { max_restarts: 0, ready_grace: std::time::Duration::ZERO, pending_grace: std::time::Duration::ZERO };
    let now = chrono::Utc::now();
    d.class = "service-pods-unready";
    d.title = format!("{} has no ready endpoints: none of its {} pod(s) is ready", r.target, matching.len());
    d.steps.push(format!("its selector {} matches {} pod(s), none ready:", code(&wanted), matching.len()));
    for p in matching.iter().take(5) {
        match crate::checks::kube::observe::pod_problem(p, &rules, now) {
            Some(f) => {
                let mut line = describe(&f);
                if let Some(cause) = f.message.as_deref().and_then(referenced) {
                    line.push_str(&format!("; cause: {cause}"));
                }
                d.steps.push(line);
            }
            None => d.steps.push(format!("pod {} is not ready yet (starting)", code(p.metadata.name.as_deref().unwrap_or("")))),
        }
    }
    d.prevention = vec!["the pods check of the workload behind the Service names why its pods are not ready; fix that, not the Service".into()];
}

/// Adds events and the last log lines to a pods diagnosis, and tells a
/// liveness-probe kill or a startup-probe failure from an application exit.
pub async fn pod_findings(client: &Client, r: &CheckResult, d: &mut Diagnosis) {
    let facts = pod_facts(r);
    let ns = ev(r, "namespace");
    for f in facts.iter().take(2) {
        let events = pod_events(client, ns, &f.name).await;
        match &events {
            Ok(list) if !list.is_empty() => d.steps.push(format!("events of {}: {}", code(&f.name), list.join("; "))),
            Ok(_) => {}
            Err(e) => d.steps.push(format!("could not read the events of {}: {}", code(&f.name), code(e))),
        }
        if d.class == "pod-crashloop"
            && let Ok(list) = &events
        {
            if list.iter().any(|e| e.contains("Liveness probe failed")) {
                d.class = "pod-liveness-failing";
                d.title = d.title.replace("is crash-looping", "is killed by its liveness probe");
                d.prevention = vec!["the liveness probe kills a container that is slow, not dead: raise its initialDelaySeconds/failureThreshold or add a startupProbe".into()];
            } else if list.iter().any(|e| e.contains("Startup probe failed")) {
                d.class = "pod-startup-failing";
                d.title = d.title.replace("is crash-looping", "never finishes starting");
            }
        }
        if f.restarts > 0 || f.phase == "Running" {
            let lp = LogParams { container: f.container.clone(), previous: f.restarts > 0, tail_lines: Some(LOG_LINES), limit_bytes: Some(16 * 1024), ..Default::default() };
            match Api::<Pod>::namespaced(client.clone(), ns).logs(&f.name, &lp).await {
                Ok(text) if !text.trim().is_empty() => d.steps.push(format!(
                    "last log lines of {} ({} container):\n\n```text\n{}\n```",
                    code(&f.name),
                    if lp.previous { "previous" } else { "current" },
                    crate::redact::redact(text.trim_end()).replace("```", "'''")
                )),
                Ok(_) => {}
                Err(e) => d.steps.push(format!("logs of {}: {}", code(&f.name), code(&crate::k8s::explain(&e, "reading logs")))),
            }
        }
        if f.message.as_deref().is_some_and(|m| m.contains("PersistentVolumeClaim")) {
            for (line, message) in claim_events(client, ns).await {
                d.steps.push(format!("volume claim: {line}"));
                if let Some(cause) = referenced(&message) {
                    d.steps.push(format!("cause: {cause}"));
                }
            }
        }
    }
}

/// A pod's events, newest last, as `Warning BackOff ×12: message`. Events
/// written through events.k8s.io have no count or timestamps in core/v1; their
/// eventTime orders them.
async fn pod_events(client: &Client, ns: &str, pod: &str) -> Result<Vec<String>, String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default().fields(&format!("involvedObject.name={pod},involvedObject.kind=Pod"))).await.map_err(|e| crate::k8s::explain(&e, "listing events"))?;
    Ok(render_events(list.items, 6))
}

/// The claims' latest events, each with its (redacted) message.
async fn claim_events(client: &Client, ns: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default().fields("involvedObject.kind=PersistentVolumeClaim")).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|e| {
                e.last_timestamp
                    .as_ref()
                    .map(crate::checks::kube::observe::time)
                    .or(e.event_time.as_ref().map(|t| crate::checks::kube::observe::time(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0))))
            });
            let keep: Vec<Event> = items.into_iter().rev().take(3).rev().collect();
            keep.into_iter()
                .map(|e| {
                    let message = crate::redact::redact(&one_line(e.message.as_deref().unwrap_or("")));
                    let claim = code(e.involved_object.name.as_deref().unwrap_or(""));
                    let line = render_events(vec![e], 1).pop().unwrap_or_default();
                    (format!("{claim} {line}"), message)
                })
                .collect()
        }
        Err(_) => Vec::new(),
    }
}

fn render_events(mut items: Vec<Event>, keep: usize) -> Vec<String> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(crate::checks::kube::observe::time)
            .or(e.event_time.as_ref().map(|t| crate::checks::kube::observe::time(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0))))
            .or(e.first_timestamp.as_ref().map(crate::checks::kube::observe::time))
            .unwrap_or_default()
    };
    items.sort_by_key(when);
    let n = items.len();
    items
        .into_iter()
        .skip(n.saturating_sub(keep))
        .map(|e| {
            let count = e.count.filter(|c| *c > 1).map(|c| format!(" ×{c}")).unwrap_or_default();
            format!("{} {}{count}: {}", e.type_.as_deref().unwrap_or("Normal"), e.reason.as_deref().unwrap_or(""), code(&crate::redact::redact(&one_line(e.message.as_deref().unwrap_or("")))))
        })
        .collect()
}

/// The ReplicaSets of a stuck rollout: which revision runs which image, how many ready.
pub async fn rollout_findings(client: &Client, r: &CheckResult, d: &mut Diagnosis) {
    let (ns, name) = (ev(r, "namespace"), ev(r, "deployment"));
    let api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), ns);
    let labels: Vec<String> = r.evidence.get("labels").and_then(|v| v.as_object()).map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect()).unwrap_or_default();
    let Ok(list) = api.list(&ListParams::default().labels(&labels.join(","))).await else { return };
    let mut revs: Vec<(i64, String)> = list
        .items
        .iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.kind == "Deployment" && o.name == name))
        .filter_map(|rs| {
            let rev: i64 = rs.metadata.annotations.as_ref()?.get("deployment.kubernetes.io/revision")?.parse().ok()?;
            let image = rs.spec.as_ref()?.template.as_ref()?.spec.as_ref()?.containers.iter().filter_map(|c| c.image.clone()).collect::<Vec<_>>().join(", ");
            let st = rs.status.as_ref();
            Some((rev, format!("revision {rev}: {} ({} of {} ready)", code(&image), st.and_then(|s| s.ready_replicas).unwrap_or(0), st.map_or(0, |s| s.replicas))))
        })
        .collect();
    revs.sort();
    if !revs.is_empty() {
        d.steps.push(format!("history: {}", revs.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join("; ")));
    }
}

/// A scaling check: scale up under load (doubling, capped at `max`), back
/// to `min` when below it, halve after a sustained light load; nothing at
/// the maximum (a human adds capacity).
pub fn scaling(r: &CheckResult, s: &crate::checks::strategy::ScalingSpec) -> Diagnosis {
    let what = format!("{}/{}", s.namespace, s.deployment);
    let pressure = ev(r, "pressure");
    let to = r.evidence.get("proposed").and_then(|v| v.as_i64()).unwrap_or(0) as i32;
    let at_max = r.evidence.get("at_max").and_then(|v| v.as_bool()) == Some(true);
    let from = r.evidence.get("replicas").and_then(|v| v.as_i64()).map(|n| n as i32);
    let scale = vec![Action::Scale { namespace: s.namespace.clone(), deployment: s.deployment.clone(), replicas: to, from, context: s.context.clone() }];
    let mut steps = vec![code(&r.summary)];
    let (class, title, plan, prevention) = match pressure {
        "load" if at_max => {
            steps.push(format!("it runs its declared maximum of {} replicas: nightshift scales no further; raise `max` in HEARTBEAT.md or add capacity", s.max));
            ("under-load", format!("{what} is under load at its maximum"), Vec::new(), "find what drives the load (a new client, a slow dependency) before raising the maximum")
        }
        "load" => ("under-load", format!("{what} is under load"), scale, "once the load pattern is known, let a HorizontalPodAutoscaler own the replicas (nightshift then stays out)"),
        "below-min" => ("below-min", format!("{what} runs below its minimum"), scale, "keep the minimum in the Deployment's manifest so a deploy cannot lower it"),
        "over" => {
            steps.push(format!("light for {} or longer, and no scale of it in that time: halving to {to} (never below {})", crate::duration::format(s.scale_down_after), s.min));
            ("over-provisioned", format!("{what} is over-provisioned"), scale, "lower the replicas in the Deployment's manifest if the light load is the normal one")
        }
        _ => ("scaling", format!("{what}: {}", r.summary), Vec::new(), ""),
    };
    Diagnosis { class, title, steps, prevention: vec![prevention.to_string()].into_iter().filter(|p| !p.is_empty()).collect(), plan, investigate: false }
}

/// A failover check: one incident from the primary's failure to the switch
/// back (its class does not change on the way), so the note tells the story.
pub fn failover(r: &CheckResult, s: &crate::checks::strategy::FailoverSpec) -> Diagnosis {
    let svc = format!("{}/{}", s.namespace, s.service);
    let steps = vec![code(&r.summary), format!("primary: {}; secondary: {}; the service selects {}", code(ev(r, "primary")), code(ev(r, "secondary")), code(ev(r, "selector")))];
    if ev(r, "serving") == "neither" {
        return Diagnosis {
            class: "selector-unexpected",
            title: format!("Service {svc} selects neither its primary nor its secondary"),
            steps,
            prevention: vec!["change a failover Service's selector only through nightshift or together with HEARTBEAT.md".into()],
            plan: Vec::new(),
            investigate: false,
        };
    }
    let plan = match ev(r, "switch") {
        "failover" => {
            vec![Action::Failover { namespace: s.namespace.clone(), service: s.service.clone(), to: s.secondary.clone(), from: s.primary.clone(), recover: s.recover, context: s.context.clone() }]
        }
        "failback" => vec![Action::Failback { namespace: s.namespace.clone(), service: s.service.clone(), to: s.primary.clone(), from: s.secondary.clone(), context: s.context.clone() }],
        _ => Vec::new(),
    };
    Diagnosis {
        class: "primary-down",
        title: format!("The primary of service {svc} ({}) is down", s.primary),
        steps,
        prevention: vec!["keep the secondary warm and tested: a failover is only as good as the standby it lands on".into()],
        plan,
        investigate: false,
    }
}

/// A `k8s-probe` series: one pod failed its probe `threshold` times in a
/// row. The plan is the check's declared heal: delete the pod when a
/// controller replaces it, or scale its Deployment. A pod failing while a
/// declared dependency is down is the cascade's, and healed by nothing.
pub fn probe(r: &CheckResult, s: &crate::checks::pod_probe::PodProbeSpec) -> Diagnosis {
    use crate::checks::pod_probe::Heal;
    if let Some(dep) = r.evidence.get("cascade").and_then(|v| v.as_str()) {
        return cascade(r, dep);
    }
    let (ns, pod, kind, workload) = (ev(r, "namespace"), ev(r, "pod"), ev(r, "workload_kind"), ev(r, "workload"));
    let failures = r.evidence.get("consecutive_failures").and_then(|v| v.as_u64()).unwrap_or(0);
    let context = s.scope.context.clone();
    let mut steps =
        vec![format!("{} probe of pod {}: {}", s.probe.kind(), code(&format!("{ns}/{pod}")), code(ev(r, "failure"))), format!("{failures} consecutive failure(s); the threshold is {}", s.threshold)];
    let plan = match (s.heal, kind) {
        (_, "Pod") => {
            steps.push(format!("pod {} has no controller: deleting it would lose it, so it is not restarted", code(pod)));
            Vec::new()
        }
        (Heal::Restart, _) => vec![Action::RestartPod { namespace: ns.into(), pod: pod.into(), workload: None, context }],
        (Heal::Scale { replicas }, "Deployment") => vec![Action::Scale { namespace: ns.into(), deployment: workload.into(), replicas, from: None, context }],
        (Heal::Scale { .. }, other) => {
            steps.push(format!("the pod belongs to {other} {}, not a Deployment: `heal: scale` cannot scale it", code(workload)));
            Vec::new()
        }
    };
    Diagnosis {
        class: "probe-failed",
        title: format!("{ns}/{pod} ({} {workload}) fails its {} probe", kind.to_ascii_lowercase(), s.probe.kind()),
        steps,
        prevention: vec!["make the pod's own liveness or readiness probe check what this probe checks, so the kubelet acts before nightshift has to".into()],
        plan,
        investigate: true,
    }
}
