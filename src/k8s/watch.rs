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
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::Notify;

use super::observe::{self, PodRules};

/// One reflected kind: its store, whether it is listed and current, and how
/// many watch events it has seen.
struct Reflected<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    live: AtomicBool,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Reflected<K> {
    fn read(&self) -> Option<Vec<Arc<K>>> {
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
    /// Pods of every namespace, or `None` until the first list completes and while the watch is broken.
    pub fn pods(&self) -> Option<Vec<Arc<Pod>>> {
        self.pods.read()
    }

    pub fn deployments(&self) -> Option<Vec<Arc<Deployment>>> {
        self.deployments.read()
    }

    pub fn nodes(&self) -> Option<Vec<Arc<Node>>> {
        self.nodes.read()
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
    let cache = Arc::new(Cache {
        pods: Reflected { store: pods, live: AtomicBool::new(false) },
        deployments: Reflected { store: deployments, live: AtomicBool::new(false) },
        nodes: Reflected { store: nodes, live: AtomicBool::new(false) },
        events: AtomicU64::new(0),
        tasks: Mutex::new(Vec::new()),
    });
    // What counts as a change worth a pass: the same rules as a pods check without grace periods.
    let rules = PodRules { max_restarts: i32::MAX, ready_grace: Duration::ZERO, pending_grace: Duration::from_secs(3600) };
    let pod_health = move |p: &Pod| observe::pod_problem(p, &rules, chrono::Utc::now()).map(|f| f.reason).unwrap_or_default();
    let deploy_health = |d: &Deployment| observe::deployments(std::slice::from_ref(d), Duration::ZERO, chrono::Utc::now()).summary;
    let node_health = |n: &Node| observe::nodes(std::slice::from_ref(n)).summary;
    let tasks = vec![
        tokio::spawn(run(Api::<Pod>::all(client.clone()), pod_writer, Arc::downgrade(&cache), |c| &c.pods, pod_health, wake.clone())),
        tokio::spawn(run(Api::<Deployment>::all(client.clone()), deploy_writer, Arc::downgrade(&cache), |c| &c.deployments, deploy_health, wake.clone())),
        tokio::spawn(run(Api::<Node>::all(client), node_writer, Arc::downgrade(&cache), |c| &c.nodes, node_health, wake)),
    ];
    if let Ok(mut t) = cache.tasks.lock() {
        *t = tasks;
    }
    cache
}

async fn run<K, S, H>(api: Api<K>, writer: reflector::store::Writer<K>, cache: std::sync::Weak<Cache>, slot: S, health: H, wake: Arc<Notify>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    S: Fn(&Cache) -> &Reflected<K>,
    H: Fn(&K) -> String,
{
    // Managed fields are most of an object's size and nothing here reads them.
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff().modify(|o: &mut K| o.meta_mut().managed_fields = None).reflect(writer);
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
