//! The Kubernetes checks: one list per check per run with the declared
//! namespace and selector (or a read of the daemon's watch cache), never one
//! request per pod. A missing or unreachable cluster is a check error.

pub mod observe;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{Check, Context, Outcome, Status};
use crate::k8s::{explain, selector_matches};
use observe::{PodRules, ServiceEndpoints};

/// Where a Kubernetes check looks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// A kubeconfig context; the current one (or the in-cluster account) when absent.
    pub context: Option<String>,
    /// One namespace, or all of them.
    pub namespace: Option<String>,
    /// A label selector.
    pub selector: Option<String>,
}

impl Scope {
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{}", self.context.as_deref().unwrap_or("current"), self.namespace.as_deref().unwrap_or("*"));
        if let Some(sel) = &self.selector {
            s.push_str(&format!("/{sel}"));
        }
        s
    }

    fn params(&self) -> ListParams {
        match &self.selector {
            Some(s) => ListParams::default().labels(s),
            None => ListParams::default(),
        }
    }

    fn api<K>(&self, client: kube::Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }

    /// Whether a cached object is in scope.
    fn holds(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
        self.namespace.as_ref().is_none_or(|ns| meta.namespace.as_ref() == Some(ns)) && self.selector.as_ref().is_none_or(|s| selector_matches(s, meta.labels.as_ref().unwrap_or(&Default::default())))
    }
}

/// What a `dependency` check watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyTarget {
    /// A Service, `namespace/name`: healthy while it has a ready endpoint.
    Service {
        namespace: String,
        name: String,
    },
    Http(String),
    Tcp(String),
}

impl DependencyTarget {
    pub fn describe(&self) -> String {
        match self {
            DependencyTarget::Service { namespace, name } => format!("{namespace}/service/{name}"),
            DependencyTarget::Http(u) | DependencyTarget::Tcp(u) => u.clone(),
        }
    }
}

pub async fn pods(scope: &Scope, rules: &PodRules, ctx: &Context) -> Outcome {
    match list_pods(scope, ctx).await {
        Ok(list) => observe::pods(&list, rules, chrono::Utc::now()),
        Err(e) => Outcome::new(Status::Error, e),
    }
}

pub async fn deployments(scope: &Scope, grace: Duration, ctx: &Context) -> Outcome {
    match list_deployments(scope, ctx).await {
        Ok(list) => observe::deployments(&list, grace, chrono::Utc::now()),
        Err(e) => Outcome::new(Status::Error, e),
    }
}

pub async fn nodes(scope: &Scope, ctx: &Context) -> Outcome {
    match list_nodes(scope, ctx).await {
        Ok(list) => observe::nodes(&list),
        Err(e) => Outcome::new(Status::Error, e),
    }
}

pub async fn services(scope: &Scope, ctx: &Context) -> Outcome {
    let client = match ctx.kube.get(scope.context.as_deref()).await {
        Ok(c) => c,
        Err(e) => return Outcome::new(Status::Error, e),
    };
    let listed: Result<Vec<Service>, String> = scope.api::<Service>(client.clone()).list(&scope.params()).await.map(|l| l.items).map_err(|e| explain(&e, "listing services"));
    let services = match listed {
        Ok(s) => s,
        Err(e) => return Outcome::new(Status::Error, e),
    };
    let counts = match endpoint_counts(&client, scope.namespace.as_deref(), None).await {
        Ok(c) => c,
        Err(e) => return Outcome::new(Status::Error, e),
    };
    let list: Vec<ServiceEndpoints> = services
        .iter()
        .filter(|s| s.spec.as_ref().is_some_and(|sp| sp.selector.as_ref().is_some_and(|m| !m.is_empty()) && sp.type_.as_deref() != Some("ExternalName")))
        .map(|s| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let name = s.metadata.name.clone().unwrap_or_default();
            let (ready, not_ready) = counts.get(&(ns.clone(), name.clone())).copied().unwrap_or((0, 0));
            let selector = s.spec.as_ref().and_then(|sp| sp.selector.clone()).unwrap_or_default();
            ServiceEndpoints { namespace: ns, name, ready, not_ready, selector }
        })
        .collect();
    observe::services(&list)
}

/// A declared dependency: failing while its target is down. Its `dependants`
/// are what cascade detection groups when they fail with it.
pub async fn dependency(target: &DependencyTarget, dependants: &str, scope: &Scope, ctx: &Context) -> Outcome {
    let mut out = match target {
        DependencyTarget::Service { namespace, name } => match ctx.kube.get(scope.context.as_deref()).await {
            Err(e) => Outcome::new(Status::Error, e),
            Ok(client) => match endpoint_counts(&client, Some(namespace), Some(name)).await {
                Err(e) => Outcome::new(Status::Error, e),
                Ok(c) => match c.get(&(namespace.clone(), name.clone())).copied() {
                    Some((ready, _)) if ready > 0 => Outcome::new(Status::Ok, format!("{} has {ready} ready endpoint(s)", target.describe())),
                    Some((_, not_ready)) => Outcome::new(Status::Failing, format!("{} has no ready endpoints ({not_ready} not ready)", target.describe())),
                    None => Outcome::new(Status::Failing, format!("{} has no endpoints", target.describe())),
                },
            },
        },
        DependencyTarget::Http(url) => super::http::Http { url, expect_status: None, body_contains: None, timeout: Duration::from_secs(5), max_latency: None }.run(ctx).await,
        DependencyTarget::Tcp(address) => super::tcp::Tcp { address, timeout: Duration::from_secs(5) }.run(ctx).await,
    };
    out.evidence.insert("dependency".into(), Value::String(target.describe()));
    out.evidence.insert("dependants".into(), Value::String(dependants.to_string()));
    out
}

/// The daemon's watch cache, when this check may read it (it watches the
/// current context only). Its reads wait for the first list rather than
/// listing everything a second time beside it.
fn cache<'a>(scope: &Scope, ctx: &'a Context) -> Option<&'a watch::Cache> {
    ctx.kube_cache.as_deref().filter(|_| scope.context.is_none())
}

/// How long a check waits for the watch's first list before listing itself.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(30);

async fn cached<T>(read: Option<impl Future<Output = Option<T>>>) -> Option<T> {
    match read {
        Some(r) => r.await,
        None => None,
    }
}

pub(super) async fn list_pods(scope: &Scope, ctx: &Context) -> Result<Vec<Arc<Pod>>, String> {
    if let Some(pods) = cached(cache(scope, ctx).map(|c| c.pods(FIRST_LIST_WAIT))).await {
        return Ok(pods.into_iter().filter(|p| scope.holds(&p.metadata)).collect());
    }
    let client = ctx.kube.get(scope.context.as_deref()).await?;
    scope.api::<Pod>(client).list(&scope.params()).await.map(|l| l.items.into_iter().map(Arc::new).collect()).map_err(|e| explain(&e, "listing pods"))
}

async fn list_deployments(scope: &Scope, ctx: &Context) -> Result<Vec<Arc<Deployment>>, String> {
    if let Some(list) = cached(cache(scope, ctx).map(|c| c.deployments(FIRST_LIST_WAIT))).await {
        return Ok(list.into_iter().filter(|d| scope.holds(&d.metadata)).collect());
    }
    let client = ctx.kube.get(scope.context.as_deref()).await?;
    scope.api::<Deployment>(client).list(&scope.params()).await.map(|l| l.items.into_iter().map(Arc::new).collect()).map_err(|e| explain(&e, "listing deployments"))
}

async fn list_nodes(scope: &Scope, ctx: &Context) -> Result<Vec<Arc<Node>>, String> {
    if let Some(list) = cached(cache(scope, ctx).map(|c| c.nodes(FIRST_LIST_WAIT))).await {
        return Ok(list.into_iter().filter(|n| scope.selector.as_ref().is_none_or(|s| selector_matches(s, n.metadata.labels.as_ref().unwrap_or(&Default::default())))).collect());
    }
    let client = ctx.kube.get(scope.context.as_deref()).await?;
    Api::<Node>::all(client).list(&scope.params()).await.map(|l| l.items.into_iter().map(Arc::new).collect()).map_err(|e| explain(&e, "listing nodes"))
}

/// Ready and not-ready endpoint counts by (namespace, service): from
/// EndpointSlices (`discovery.k8s.io/v1`) where the server serves them, from
/// core/v1 Endpoints otherwise (before 1.21).
pub async fn endpoint_counts(client: &kube::Client, namespace: Option<&str>, service: Option<&str>) -> Result<std::collections::HashMap<(String, String), (usize, usize)>, String> {
    let mut counts = std::collections::HashMap::new();
    let slices: Api<EndpointSlice> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let params = match service {
        Some(s) => ListParams::default().labels(&format!("kubernetes.io/service-name={s}")),
        None => ListParams::default(),
    };
    match slices.list(&params).await {
        Ok(list) => {
            for s in list.items {
                let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")).cloned() else { continue };
                let entry = counts.entry((s.metadata.namespace.clone().unwrap_or_default(), svc)).or_insert((0, 0));
                for e in &s.endpoints {
                    // An endpoint without a readiness condition counts as ready (the API's own rule).
                    if e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) { entry.0 += 1 } else { entry.1 += 1 }
                }
            }
            return Ok(counts);
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(explain(&e, "listing endpoint slices")),
    }
    let api: Api<Endpoints> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = match service {
        Some(name) => match api.get_opt(name).await.map_err(|e| explain(&e, "reading endpoints"))? {
            Some(e) => vec![e],
            None => Vec::new(),
        },
        None => api.list(&ListParams::default()).await.map_err(|e| explain(&e, "listing endpoints"))?.items,
    };
    for e in list {
        let entry = counts.entry((e.metadata.namespace.clone().unwrap_or_default(), e.metadata.name.clone().unwrap_or_default())).or_insert((0, 0));
        for s in e.subsets.iter().flatten() {
            entry.0 += s.addresses.as_ref().map_or(0, Vec::len);
            entry.1 += s.not_ready_addresses.as_ref().map_or(0, Vec::len);
        }
    }
    Ok(counts)
}
