//! The daemon's watch cache: kube-runtime reflectors on pods, deployments and
//! nodes. A change that makes an object unhealthy (or healthy again) wakes the
//! scheduler, so an incident opens within a second instead of at the next
//! heartbeat; the heartbeat's Kubernetes checks read the same cache, so a
//! pass costs no API request whatever the pod count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use super::observe::{self, PodRules};

/// One reflected kind: its store, whether it is listed and current, and how
/// many watch events it has seen.
struct Reflected<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    live: AtomicBool,
    /// Whether a list has ever completed: before that, readers wait for it.
    listed: AtomicBool,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Reflected<K> {
    fn new(store: Store<K>) -> Self {
        Self { store, live: AtomicBool::new(false), listed: AtomicBool::new(false) }
    }

    /// The cached objects; until the first list completes, waits up to
    /// `wait` for it. `None` while the watch is broken: the caller lists.
    async fn read(&self, wait: Duration) -> Option<Vec<Arc<K>>> {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.listed.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.live.load(Ordering::Acquire).then(|| self.store.state())
    }
}

pub struct Cache {
    pods: Reflected<Pod>,
    deployments: Reflected<Deployment>,
    nodes: Reflected<Node>,
    /// Watch events received, for the benchmark and /metrics.
    pub events: AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cache {
    /// Pods of every namespace. Waits up to `wait` for the first list (a
    /// check listing beside it would hold every pod twice); `None` when it
    /// has not completed by then and while the watch is broken.
    pub async fn pods(&self, wait: Duration) -> Option<Vec<Arc<Pod>>> {
        self.pods.read(wait).await
    }

    pub async fn deployments(&self, wait: Duration) -> Option<Vec<Arc<Deployment>>> {
        self.deployments.read(wait).await
    }

    pub async fn nodes(&self, wait: Duration) -> Option<Vec<Arc<Node>>> {
        self.nodes.read(wait).await
    }

    /// Whether all three kinds are listed and watched.
    pub fn is_live(&self) -> bool {
        self.pods.live.load(Ordering::Acquire) && self.deployments.live.load(Ordering::Acquire) && self.nodes.live.load(Ordering::Acquire)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

/// Starts the reflectors on the current context's cluster. `wake` is
/// notified when an object's health changes.
pub fn start(client: kube::Client, wake: Arc<Notify>) -> Arc<Cache> {
    let (pods, pod_writer) = reflector::store();
    let (deployments, deploy_writer) = reflector::store();
    let (nodes, node_writer) = reflector::store();
    let cache = Arc::new(Cache { pods: Reflected::new(pods), deployments: Reflected::new(deployments), nodes: Reflected::new(nodes), events: AtomicU64::new(0), tasks: Mutex::new(Vec::new()) });
    // What counts as a change worth a pass: the same rules as a pods check without grace periods.
    let rules = PodRules { max_restarts: i32::MAX, ready_grace: Duration::ZERO, pending_grace: Duration::from_secs(3600) };
    let pod_health = move |p: &Pod| observe::pod_problem(p, &rules, chrono::Utc::now()).map(|f| f.reason).unwrap_or_default();
    let deploy_health = |d: &Deployment| observe::deployments(std::slice::from_ref(d), Duration::ZERO, chrono::Utc::now()).summary;
    let node_health = |n: &Node| observe::nodes(std::slice::from_ref(n)).summary;
    let tasks = vec![
        tokio::spawn(run(Api::<Pod>::all(client.clone()), pod_writer, Arc::downgrade(&cache), |c| &c.pods, slim_pod, pod_health, wake.clone())),
        tokio::spawn(run(Api::<Deployment>::all(client.clone()), deploy_writer, Arc::downgrade(&cache), |c| &c.deployments, slim_deployment, deploy_health, wake.clone())),
        tokio::spawn(run(Api::<Node>::all(client), node_writer, Arc::downgrade(&cache), |c| &c.nodes, slim_node, node_health, wake)),
    ];
    if let Ok(mut t) = cache.tasks.lock() {
        *t = tasks;
    }
    cache
}

/// What the checks read of a cached pod: its identity, labels and owners,
/// node, containers' names, images and resources, and its status. The rest
/// (annotations, volumes, environment, probes, managed fields) is most of a
/// pod's size; the diagnosis reads the live pod when it needs more.
fn slim_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.metadata.annotations = None;
    if let Some(spec) = p.spec.as_mut() {
        let keep = |c: &Container| Container { name: c.name.clone(), image: c.image.clone(), resources: c.resources.clone(), ..Default::default() };
        *spec = PodSpec {
            node_name: spec.node_name.take(),
            containers: spec.containers.iter().map(keep).collect(),
            init_containers: spec.init_containers.as_ref().map(|cs| cs.iter().map(keep).collect()),
            ..Default::default()
        };
    }
}

/// Deployments keep their spec (template images, selector, paused) and
/// annotations (the revision) but not the last-applied copy of themselves.
fn slim_deployment(d: &mut Deployment) {
    d.metadata.managed_fields = None;
    if let Some(a) = d.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Nodes keep spec and conditions; images pulled and volumes attached go.
fn slim_node(n: &mut Node) {
    n.metadata.managed_fields = None;
    if let Some(status) = n.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<K, S, H>(api: Api<K>, writer: reflector::store::Writer<K>, cache: std::sync::Weak<Cache>, slot: S, slim: fn(&mut K), health: H, wake: Arc<Notify>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    S: Fn(&Cache) -> &Reflected<K>,
    H: Fn(&K) -> String,
{
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff().modify(slim).reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut initial = true;
    while let Some(event) = stream.next().await {
        let Some(cache) = cache.upgrade() else { return };
        let reflected = slot(&cache);
        match event {
            Err(e) => {
                reflected.live.store(false, Ordering::Release);
                tracing::warn!(error = %e, "Kubernetes watch interrupted; checks list directly until it resumes");
            }
            Ok(Event::Init) => initial = true,
            Ok(Event::InitApply(o)) => {
                seen.insert(key(&o), health(&o));
            }
            Ok(Event::InitDone) => {
                reflected.live.store(true, Ordering::Release);
                reflected.listed.store(true, Ordering::Release);
                if initial {
                    wake.notify_one();
                }
                initial = false;
            }
            Ok(Event::Apply(o)) => {
                cache.events.fetch_add(1, Ordering::Relaxed);
                reflected.live.store(true, Ordering::Release);
                let h = health(&o);
                if seen.insert(key(&o), h.clone()).is_none_or(|before| before != h) {
                    wake.notify_one();
                }
            }
            Ok(Event::Delete(o)) => {
                cache.events.fetch_add(1, Ordering::Relaxed);
                if seen.remove(&key(&o)).is_some_and(|h| !h.is_empty()) {
                    wake.notify_one();
                }
            }
        }
    }
}

fn key<K: Resource>(o: &K) -> String {
    let m = o.meta();
    format!("{}/{}", m.namespace.as_deref().unwrap_or(""), m.name.as_deref().unwrap_or(""))
}
