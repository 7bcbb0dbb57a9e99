//! The Kubernetes repairs. Each reads what it acts on first, refuses what
//! would lose work (a pod without a controller, a paused rollout, replicas
//! owned by an autoscaler), and reports what it did in one line.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use crate::k8s::{explain, server_version};

const REVISION: &str = "deployment.kubernetes.io/revision";
/// How long a drain waits for evictions a PodDisruptionBudget holds back, and for the pods to go.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

fn patch_params() -> PatchParams {
    PatchParams::default()
}

/// Deletes a pod owned by a controller, which replaces it.
pub async fn restart_pod(client: &Client, namespace: &str, pod: &str) -> Result<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let p = api.get_opt(pod).await.map_err(|e| explain(&e, &format!("reading pod {namespace}/{pod}")))?.ok_or_else(|| format!("pod {namespace}/{pod} no longer exists"))?;
    let Some(owner) = p.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)) else {
        return Err(format!("refused: pod {namespace}/{pod} has no controller, so nothing would replace it"));
    };
    let pre = Preconditions { uid: p.metadata.uid.clone(), resource_version: None };
    api.delete(pod, &DeleteParams::default().preconditions(pre)).await.map_err(|e| explain(&e, &format!("deleting pod {namespace}/{pod}")))?;
    Ok(format!("deleted pod {namespace}/{pod}; {} {} replaces it", owner.kind, owner.name))
}

/// `kubectl rollout restart`: a new template annotation rolls every pod.
pub async fn rollout_restart(client: &Client, namespace: &str, deployment: &str) -> Result<String, String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}});
    api.patch(deployment, &patch_params(), &Patch::Strategic(&patch)).await.map_err(|e| explain(&e, &format!("patching deployment {namespace}/{deployment}")))?;
    Ok(format!("restarted deployment {namespace}/{deployment} (restartedAt {at})"))
}

/// The ReplicaSets a Deployment owns, with their revisions.
async fn revisions(client: &Client, d: &Deployment) -> Result<Vec<(i64, ReplicaSet)>, String> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let selector = d.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    let labels = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let list = api.list(&ListParams::default().labels(&labels)).await.map_err(|e| explain(&e, "listing replica sets"))?;
    let mut out: Vec<(i64, ReplicaSet)> = list
        .items
        .into_iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
        .filter_map(|rs| rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).map(|r| (r, rs)))
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

fn images(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    t.spec.iter().flat_map(|s| s.containers.iter()).filter_map(|c| c.image.clone()).collect::<Vec<_>>().join(", ")
}

/// A Deployment that must exist: reading errors explained, absence said.
async fn read_deployment(client: &Client, namespace: &str, deployment: &str) -> Result<Deployment, String> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(deployment)
        .await
        .map_err(|e| explain(&e, &format!("reading deployment {namespace}/{deployment}")))?
        .ok_or_else(|| format!("deployment {namespace}/{deployment} does not exist"))
}

/// The revision a rollback would go to, and the template it would restore.
async fn undo_plan(client: &Client, namespace: &str, deployment: &str) -> Result<(Deployment, i64, i64, ReplicaSet), String> {
    let d = read_deployment(client, namespace, deployment).await?;
    if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
        return Err(format!("refused: deployment {namespace}/{deployment} is paused; resume it before rolling back"));
    }
    let current: i64 = d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0);
    let revs = revisions(client, &d).await?;
    let Some((prev, rs)) = revs.into_iter().rev().find(|(r, _)| *r < current) else {
        return Err(format!("deployment {namespace}/{deployment} has no revision before {current} to roll back to"));
    };
    Ok((d, current, prev, rs))
}

pub async fn preview_undo(client: &Client, namespace: &str, deployment: &str) -> String {
    match undo_plan(client, namespace, deployment).await {
        Ok((d, current, prev, rs)) => {
            let from = d.spec.as_ref().map(|s| images(&s.template)).unwrap_or_default();
            let to = rs.spec.as_ref().and_then(|s| s.template.as_ref()).map(images).unwrap_or_default();
            format!("roll {namespace}/{deployment} back from revision {current} ({from}) to revision {prev} ({to})")
        }
        Err(e) => e,
    }
}

/// `kubectl rollout undo`: the Deployment's template becomes the previous
/// revision's (its pod-template-hash label left out); the controller rolls.
pub async fn rollout_undo(client: &Client, namespace: &str, deployment: &str) -> Result<String, String> {
    // Controllers write the Deployment too: on a conflict, read it again and redo (client-go's RetryOnConflict).
    for attempt in 1..=5 {
        let (mut d, current, prev, rs) = undo_plan(client, namespace, deployment).await?;
        let Some(mut template) = rs.spec.and_then(|s| s.template) else {
            return Err(format!("revision {prev} of {namespace}/{deployment} has no pod template"));
        };
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove("pod-template-hash");
        }
        let from = d.spec.as_ref().map(|s| images(&s.template)).unwrap_or_default();
        let to = images(&template);
        if let Some(spec) = d.spec.as_mut() {
            spec.template = template;
        }
        d.metadata.managed_fields = None;
        let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        // A replace carries the resourceVersion just read: a concurrent change makes it fail, not overwrite.
        match api.replace(deployment, &PostParams::default(), &d).await {
            Ok(_) => return Ok(format!("rolled {namespace}/{deployment} back from revision {current} ({from}) to revision {prev} ({to})")),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => tokio::time::sleep(Duration::from_millis(100 * attempt)).await,
            Err(e) => return Err(explain(&e, &format!("rolling back deployment {namespace}/{deployment}"))),
        }
    }
    Err(format!("deployment {namespace}/{deployment} kept changing while rolling it back; try again"))
}

/// Sets a Deployment's replicas, then waits (up to `wait`) until that many
/// are ready and no others are left: a scale succeeds when its replicas
/// serve, not when the load eases.
pub async fn scale(client: &Client, namespace: &str, deployment: &str, replicas: i32, wait: Duration) -> Result<String, String> {
    if replicas < 0 {
        return Err(format!("refused: {replicas} is not a replica count"));
    }
    if let Some(hpa) = crate::checks::strategy::autoscaler(client, namespace, deployment).await? {
        return Err(format!("refused: HorizontalPodAutoscaler {namespace}/{hpa} owns the replicas of {deployment}; change the autoscaler instead"));
    }
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let before = api.get_scale(deployment).await.map_err(|e| explain(&e, &format!("reading the scale of {namespace}/{deployment}")))?;
    let was = before.spec.and_then(|s| s.replicas).unwrap_or(0);
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch_scale(deployment, &patch_params(), &Patch::Merge(&patch)).await.map_err(|e| explain(&e, &format!("scaling {namespace}/{deployment}")))?;
    let scaled = format!("scaled {namespace}/{deployment} from {was} to {replicas} replicas");
    let deadline = Instant::now() + wait;
    loop {
        let d = api.get(deployment).await.map_err(|e| format!("{scaled}; then {}", explain(&e, "reading it back")))?;
        let st = d.status.clone().unwrap_or_default();
        let (ready, total, updated) = (st.ready_replicas.unwrap_or(0), st.replicas.unwrap_or(0), st.updated_replicas.unwrap_or(0));
        let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        if observed && ready == replicas && total == replicas && updated == replicas {
            return Ok(format!("{scaled}; {ready}/{replicas} ready"));
        }
        if Instant::now() >= deadline {
            return Err(format!("{scaled}, but after {} only {ready}/{replicas} are ready ({total} pods in all)", crate::duration::format(wait)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Points a Service at another Deployment: its selector becomes that
/// Deployment's `matchLabels` (guarded by the Service's resourceVersion), then
/// waits (up to `wait`) until its endpoints are that Deployment's pods only.
/// Refused when the Deployment is not ready: a switch must not empty the Service.
pub async fn switch_service(client: &Client, namespace: &str, service: &str, to: &str, wait: Duration) -> Result<String, String> {
    let target = crate::checks::strategy::workload(client, namespace, to).await?;
    if !target.healthy() {
        return Err(format!(
            "refused: deployment {namespace}/{to} is not ready ({}/{} ready, exists: {}); switching would leave service {service} without endpoints",
            target.ready, target.desired, target.exists
        ));
    }
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = api.get(service).await.map_err(|e| explain(&e, &format!("reading service {namespace}/{service}")))?;
    let old = svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let mut selector = serde_json::Map::new();
    for k in old.keys().filter(|k| !target.labels.contains_key(*k)) {
        selector.insert(k.clone(), serde_json::Value::Null);
    }
    for (k, v) in &target.labels {
        selector.insert(k.clone(), v.clone().into());
    }
    let patch = json!({"metadata": {"resourceVersion": svc.metadata.resource_version}, "spec": {"selector": selector}});
    api.patch(service, &patch_params(), &Patch::Merge(&patch)).await.map_err(|e| explain(&e, &format!("switching the selector of service {namespace}/{service}")))?;
    let (from, now) = (crate::checks::strategy::labels_text(&old), crate::checks::strategy::labels_text(&target.labels));
    let switched = format!("service {namespace}/{service} now selects {now} (deployment {to}; was {from})");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + wait;
    loop {
        let theirs: std::collections::HashSet<String> = pods
            .list(&ListParams::default().labels(&now))
            .await
            .map_err(|e| format!("{switched}; then {}", explain(&e, "listing its pods")))?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let ep = endpoints.get_opt(service).await.map_err(|e| format!("{switched}; then {}", explain(&e, "reading its endpoints")))?;
        let ready: Vec<String> = ep
            .iter()
            .flat_map(|e| e.subsets.iter().flatten())
            .flat_map(|s| s.addresses.iter().flatten())
            .map(|a| a.target_ref.as_ref().and_then(|r| r.name.clone()).unwrap_or_else(|| a.ip.clone()))
            .collect();
        let others: Vec<&String> = ready.iter().filter(|n| !theirs.contains(*n)).collect();
        if !ready.is_empty() && others.is_empty() {
            return Ok(format!("{switched}; its endpoints are {} ready pod(s) of {to}: {}", ready.len(), ready.join(", ")));
        }
        if Instant::now() >= deadline {
            let seen = if ready.is_empty() { "none ready".to_string() } else { format!("still {}", ready.join(", ")) };
            return Err(format!("{switched}, but after {} its endpoints are {seen}", crate::duration::format(wait)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How a failed-over primary recovers: `true` for a rollback (its rollout
/// never completed and there is a revision to go back to), `false` for a
/// rolling restart. Deciding only: the pipeline gates and runs the action.
pub async fn recovery_is_undo(client: &Client, namespace: &str, deployment: &str) -> Result<bool, String> {
    let d = read_deployment(client, namespace, deployment).await?;
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = d.status.as_ref().and_then(|s| s.updated_replicas).unwrap_or(0);
    let stuck = d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")));
    Ok((stuck || updated < desired) && undo_plan(client, namespace, deployment).await.is_ok())
}

pub async fn cordon(client: &Client, node: &str) -> Result<String, String> {
    let api: Api<Node> = Api::all(client.clone());
    let n = api.get_opt(node).await.map_err(|e| explain(&e, &format!("reading node {node}")))?.ok_or_else(|| format!("node {node} does not exist"))?;
    if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Ok(format!("node {node} was already cordoned"));
    }
    let patched = api.patch(node, &patch_params(), &Patch::Merge(&json!({"spec": {"unschedulable": true}}))).await.map_err(|e| explain(&e, &format!("cordoning node {node}")))?;
    if patched.spec.and_then(|s| s.unschedulable) != Some(true) {
        return Err(format!("node {node} is still schedulable after the patch"));
    }
    Ok(format!("cordoned node {node}"))
}

/// Pods a drain evicts, and the ones it leaves (DaemonSet and mirror pods, finished pods).
pub(crate) fn drainable(pods: Vec<Pod>) -> (Vec<Pod>, Vec<String>, Vec<String>) {
    let (mut evict, mut skipped, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for p in pods {
        let name = format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or(""), p.metadata.name.as_deref().unwrap_or(""));
        let owner = p.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.kind.clone());
        let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let mirror = p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
        if owner.as_deref() == Some("DaemonSet") || mirror || phase == "Succeeded" || phase == "Failed" || p.metadata.deletion_timestamp.is_some() {
            skipped.push(name);
        } else if owner.is_none() {
            bare.push(name);
        } else {
            evict.push(p);
        }
    }
    (evict, skipped, bare)
}

async fn pods_on(client: &Client, node: &str) -> Result<Vec<Pod>, String> {
    let api: Api<Pod> = Api::all(client.clone());
    api.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await.map(|l| l.items).map_err(|e| explain(&e, &format!("listing the pods on {node}")))
}

pub async fn preview_drain(client: &Client, node: &str) -> String {
    match pods_on(client, node).await {
        Ok(pods) => {
            let (evict, skipped, bare) = drainable(pods);
            let names: Vec<String> = evict.iter().map(|p| format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or(""), p.metadata.name.as_deref().unwrap_or(""))).collect();
            let mut s = format!("cordon {node} and evict {} pod(s): {}", names.len(), names.join(", "));
            if !skipped.is_empty() {
                s.push_str(&format!("; leave {} (DaemonSet, mirror or finished)", skipped.len()));
            }
            if !bare.is_empty() {
                s.push_str(&format!("; refused while pods without a controller run there: {}", bare.join(", ")));
            }
            s
        }
        Err(e) => e,
    }
}

/// Cordons, then evicts every pod a controller will recreate elsewhere,
/// through the Eviction API (`policy/v1` from 1.22, `policy/v1beta1` before)
/// so PodDisruptionBudgets are honoured; waits until they are gone.
pub async fn drain(client: &Client, node: &str, timeout: Duration) -> Result<String, String> {
    let (evict, skipped, bare) = drainable(pods_on(client, node).await?);
    if !bare.is_empty() {
        return Err(format!("refused: pods without a controller would be lost: {}; move them first", bare.join(", ")));
    }
    let cordoned = cordon(client, node).await?;
    let (major, minor) = server_version(client).await?;
    let version = if (major, minor) >= (1, 22) { "policy/v1" } else { "policy/v1beta1" };
    let deadline = Instant::now() + timeout;
    let mut pending: BTreeMap<(String, String), String> =
        evict.iter().map(|p| ((p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default()), p.metadata.uid.clone().unwrap_or_default())).collect();
    let mut evicted = Vec::new();
    let mut blocked = BTreeMap::new();
    while !pending.is_empty() {
        let mut still = BTreeMap::new();
        for ((ns, name), uid) in std::mem::take(&mut pending) {
            match evict_one(client, version, &ns, &name, &uid).await {
                Ok(()) => evicted.push((ns, name, uid)),
                Err(Evict::Gone) => {}
                Err(Evict::Blocked(why)) => {
                    blocked.insert(format!("{ns}/{name}"), why);
                    still.insert((ns, name), uid);
                }
                Err(Evict::Failed(e)) => return Err(format!("{cordoned}; eviction of {ns}/{name} failed: {e}")),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let why: Vec<String> = pending.keys().map(|(ns, n)| format!("{ns}/{n}: {}", blocked.get(&format!("{ns}/{n}")).map_or("", String::as_str))).collect();
            return Err(format!("{cordoned}; evicted {}, but a PodDisruptionBudget still holds back {}", evicted.len(), why.join("; ")));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The evictions are accepted; wait until the pods are gone (their grace periods run).
    let api: Api<Pod> = Api::all(client.clone());
    loop {
        let left: Vec<String> =
            pods_on(client, node).await?.into_iter().filter(|p| evicted.iter().any(|(_, _, uid)| p.metadata.uid.as_deref() == Some(uid.as_str()))).filter_map(|p| p.metadata.name).collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("{cordoned}; evicted {} pod(s) but {} are still terminating: {}", evicted.len(), left.len(), left.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(api);
    let mut out = format!("{cordoned}; evicted {} pod(s) ({version})", evicted.len());
    if !evicted.is_empty() {
        out.push_str(&format!(": {}", evicted.iter().map(|(ns, n, _)| format!("{ns}/{n}")).collect::<Vec<_>>().join(", ")));
    }
    if !skipped.is_empty() {
        out.push_str(&format!("; left {} DaemonSet, mirror or finished pod(s)", skipped.len()));
    }
    Ok(out)
}

enum Evict {
    Gone,
    Blocked(String),
    Failed(String),
}

async fn evict_one(client: &Client, version: &str, ns: &str, name: &str, uid: &str) -> Result<(), Evict> {
    let body = json!({
        "apiVersion": version,
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": {"preconditions": {"uid": uid}},
    });
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).map_err(|e| Evict::Failed(e.to_string()))?)
        .map_err(|e| Evict::Failed(e.to_string()))?;
    match client.request::<serde_json::Value>(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Evict::Gone),
        // 409: the precondition failed, a new pod took the name: not ours to evict.
        Err(kube::Error::Api(s)) if s.code == 409 => Err(Evict::Gone),
        Err(kube::Error::Api(s)) if s.code == 429 => Err(Evict::Blocked(s.message.clone())),
        Err(e) => Err(Evict::Failed(explain(&e, "evicting"))),
    }
}

/// The proposed change for a container's memory (limit, and request when
/// set) as a strategic-merge patch, after checking the limit is still `from`.
/// `kind` is the workload's: a Deployment or a StatefulSet.
pub async fn memory_proposal(client: &Client, namespace: &str, kind: &str, deployment: &str, container: &str, from: &str, to: &str) -> Result<String, String> {
    let what = format!("{} {namespace}/{deployment}", kind.to_ascii_lowercase());
    let template = match kind {
        "Deployment" => {
            Api::<Deployment>::namespaced(client.clone(), namespace).get_opt(deployment).await.map_err(|e| explain(&e, &format!("reading {what}")))?.and_then(|d| d.spec).map(|s| s.template)
        }
        "StatefulSet" => Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(deployment)
            .await
            .map_err(|e| explain(&e, &format!("reading {what}")))?
            .and_then(|d| d.spec)
            .map(|s| s.template),
        other => return Err(format!("a {other} has no pod template nightshift proposes limits for (Deployments and StatefulSets do)")),
    };
    let template = template.ok_or_else(|| format!("{what} does not exist"))?;
    let c = template.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == container)).ok_or_else(|| format!("{what} has no container {container}"))?;
    let res = c.resources.as_ref();
    let limit = res.and_then(|r| r.limits.as_ref()).and_then(|l| l.get("memory")).map(|q| q.0.clone());
    if limit.as_deref() != Some(from) {
        return Err(format!("the limit of {container} is now {}, not {from}: the proposal is stale", limit.as_deref().unwrap_or("unset")));
    }
    let factor = crate::k8s::quantity::bytes(to).zip(crate::k8s::quantity::bytes(from)).map_or(1.5, |(t, f)| t as f64 / f.max(1) as f64);
    let request = res.and_then(|r| r.requests.as_ref()).and_then(|l| l.get("memory")).map(|q| q.0.clone());
    let raised_request = request.as_deref().and_then(|r| crate::k8s::quantity::raise(r, factor));
    let mut text = format!("spec:\n  template:\n    spec:\n      containers:\n      - name: {container}\n        resources:\n          limits:\n            memory: {to}\n");
    if let Some(r) = &raised_request {
        text.push_str(&format!("          requests:\n            memory: {r}\n"));
    }
    let mut summary = format!("proposed for review (not applied): {namespace}/{deployment} container {container} memory limit {from} → {to}");
    if kind != "Deployment" {
        summary = format!("{summary} ({})", kind.to_ascii_lowercase());
    }
    if let (Some(old), Some(new)) = (&request, &raised_request) {
        summary.push_str(&format!(", request {old} → {new}"));
    }
    Ok(format!("{summary}\n```yaml\n{text}```"))
}
