//! Kubernetes clients, resolved the way kubectl users expect, and what every
//! caller shares (error explanations, discovery, quantities). The observations
//! and the watch cache live with the checks (`checks::kube`), the diagnoses with
//! the runbooks (`diagnosis::kube`), the repairs with the actions
//! (`actions::kube`). Written for today's API (k8s-openapi `v1_33`) and degraded
//! by discovery for older servers (evictions, EndpointSlices), never by guessing.

pub mod quantity;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Clients by kubeconfig context (`None`: the current context, or the pod's
/// service account in a cluster), built on first use and shared by a run.
#[derive(Default)]
pub struct Clients {
    map: tokio::sync::Mutex<HashMap<Option<String>, Client>>,
}

impl Clients {
    pub async fn get(&self, context: Option<&str>) -> Result<Client, String> {
        let key = context.map(str::to_string);
        let mut map = self.map.lock().await;
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let client = connect(context).await?;
        map.insert(key, client.clone());
        Ok(client)
    }
}

/// A client for one kubeconfig context: `KUBECONFIG` (or `~/.kube/config`),
/// else the in-cluster service account. Errors say which source failed.
pub async fn connect(context: Option<&str>) -> Result<Client, String> {
    crate::install_crypto_provider();
    let config = match context {
        None => Config::infer().await.map_err(|e| format!("no Kubernetes configuration: {e} (set KUBECONFIG, write ~/.kube/config, or run in a pod with a service account)"))?,
        Some(ctx) => {
            let options = KubeConfigOptions { context: Some(ctx.to_string()), ..Default::default() };
            let kubeconfig = Kubeconfig::read().map_err(|e| format!("cannot read the kubeconfig for context `{ctx}`: {e} (set KUBECONFIG or write ~/.kube/config)"))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| format!("kubeconfig context `{ctx}`: {e}"))?
        }
    };
    finish(config)
}

/// A client from one kubeconfig file (tests, tools), with the same settings.
pub async fn connect_file(path: &std::path::Path, context: Option<&str>) -> Result<Client, String> {
    crate::install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let options = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| format!("{}: {e}", path.display()))?;
    finish(config)
}

fn finish(mut config: Config) -> Result<Client, String> {
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    config.write_timeout = Some(Duration::from_secs(30));
    // No hidden retries: a 429 from an eviction is a PodDisruptionBudget's answer, which
    // the drain handles itself, and a heartbeat must not stall for minutes on Retry-After.
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
    let counted = builder.with_layer(&tower::util::MapRequestLayer::new(|req| {
        REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req
    }));
    Ok(counted.build())
}

/// Requests sent to Kubernetes API servers by this process (watches count once per (re)connect).
pub static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn requests() -> u64 {
    REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A Kubernetes error as a person reads it: what was asked, and what to do.
pub fn explain(e: &kube::Error, what: &str) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!("{what}: forbidden: {} (grant it in nightshift's ClusterRole, see deploy/rbac.yaml)", s.message),
        kube::Error::Api(s) if s.code == 404 && s.message.is_empty() => format!("{what}: the server does not serve this API"),
        kube::Error::Api(s) if s.code == 401 => format!("{what}: the cluster rejected the credentials: {}", s.message),
        kube::Error::Api(s) => format!("{what}: {} ({})", s.message, s.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => format!("{what}: cannot reach the cluster: {e}"),
        other => format!("{what}: {other}"),
    }
}

/// The server's version as (major, minor), e.g. (1, 20).
pub async fn server_version(client: &Client) -> Result<(u32, u32), String> {
    let info = client.apiserver_version().await.map_err(|e| explain(&e, "reading the server version"))?;
    let num = |s: &str| s.trim_end_matches('+').parse::<u32>().ok();
    match (num(&info.major), num(&info.minor)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!("the server reports an unreadable version {}.{}", info.major, info.minor)),
    }
}

/// The workload that owns a pod, as (kind, name): a Deployment through its
/// ReplicaSet (named `<deployment>-<pod-template-hash>`), the controller
/// otherwise, or the pod itself.
pub fn workload_of(pod: &Pod) -> (String, String) {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let Some(owner) = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)) else {
        return ("Pod".into(), name);
    };
    if owner.kind == "ReplicaSet" {
        let hash = meta.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
        if let Some(deploy) = hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
            return ("Deployment".into(), deploy.to_string());
        }
    }
    (owner.kind.clone(), owner.name.clone())
}

/// Whether a label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) matches labels.
pub fn selector_matches(selector: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
    split_selector(selector).iter().all(|term| term_matches(term.trim(), labels))
}

/// Checks a selector's syntax; the error names the bad term.
pub fn parse_selector(selector: &str) -> Result<(), String> {
    for term in split_selector(selector) {
        let t = term.trim();
        let ok = if let Some((k, rest)) = t.split_once(" notin ").or_else(|| t.split_once(" in ")) {
            valid_key(k.trim()) && rest.trim().starts_with('(') && rest.trim().ends_with(')')
        } else if let Some((k, v)) = t.split_once("!=").or_else(|| t.split_once("==")).or_else(|| t.split_once('=')) {
            valid_key(k.trim()) && valid_value(v.trim())
        } else {
            valid_key(t.trim_start_matches('!'))
        };
        if !ok {
            return Err(format!("`{t}` is not a label selector term"));
        }
    }
    Ok(())
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 253 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Splits on commas outside parentheses.
fn split_selector(selector: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

fn term_matches(t: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let set = |rest: &str| -> Vec<String> { rest.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|v| v.trim().to_string()).collect() };
    if let Some((k, rest)) = t.split_once(" notin ") {
        return labels.get(k.trim()).is_none_or(|v| !set(rest).contains(v));
    }
    if let Some((k, rest)) = t.split_once(" in ") {
        return labels.get(k.trim()).is_some_and(|v| set(rest).contains(v));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return labels.get(k.trim()).is_none_or(|x| x != v.trim());
    }
    if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        return labels.get(k.trim()).is_some_and(|x| x == v.trim());
    }
    match t.strip_prefix('!') {
        Some(k) => !labels.contains_key(k.trim()),
        None => labels.contains_key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_the_api_server() {
        let labels: std::collections::BTreeMap<String, String> = [("app", "web"), ("tier", "front")].into_iter().map(|(a, b)| (a.into(), b.into())).collect();
        assert!(selector_matches("app=web", &labels));
        assert!(selector_matches("app==web,tier", &labels));
        assert!(selector_matches("app in (web, api),!canary", &labels));
        assert!(!selector_matches("app notin (web)", &labels));
        assert!(selector_matches("app!=api", &labels));
        assert!(!selector_matches("app=web,tier=back", &labels));
        assert!(selector_matches("", &labels));
        assert!(parse_selector("app in (a,b),tier!=x,!canary").is_ok());
        assert!(parse_selector("app=we b").is_err());
    }
}
