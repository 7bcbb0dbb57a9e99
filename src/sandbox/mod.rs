//! The sandbox `nightshift drill` breaks things in, and the tests use: the
//! Kubernetes test control plane on loopback (scripts/test-cluster.sh: etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler; no kubelet), the
//! simulated kubelet that drives its pods (`kubelet`), a Deployment builder,
//! and namespaces that a later run cleans up. Never a real cluster: the
//! drill refuses an API server that is not on loopback.

pub mod acme;
pub mod github;
pub mod host;
pub mod kubelet;
pub mod model;
pub mod pod_probes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, PodTemplateSpec, ResourceRequirements, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A free TCP port on 127.0.0.1 (for a sandbox server to listen on).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > limit {
            return Err(format!("nothing listens on 127.0.0.1:{port} after {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A bare git repository at `path` whose `main` holds `files` in one
/// commit: the infrastructure repository pull requests go to.
pub fn bare_repo(path: &Path, files: &[(&str, &str)]) -> Result<(), String> {
    let git = |dir: &Path, args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "drill")
            .env("GIT_AUTHOR_EMAIL", "drill@localhost")
            .env("GIT_COMMITTER_NAME", "drill")
            .env("GIT_COMMITTER_EMAIL", "drill@localhost")
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if out.status.success() { Ok(()) } else { Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())) }
    };
    let parent = path.parent().ok_or("a bare repository needs a parent directory")?;
    let seed = parent.join("seed");
    let _ = std::fs::remove_dir_all(path);
    let _ = std::fs::remove_dir_all(&seed);
    std::fs::create_dir_all(&seed).map_err(|e| e.to_string())?;
    git(parent, &["init", "--bare", "-q", "-b", "main", &path.display().to_string()])?;
    git(&seed, &["init", "-q", "-b", "main"])?;
    for (file, content) in files {
        let p = seed.join(file);
        std::fs::create_dir_all(p.parent().unwrap_or(&seed)).map_err(|e| e.to_string())?;
        std::fs::write(&p, content).map_err(|e| e.to_string())?;
    }
    git(&seed, &["add", "-A"])?;
    git(&seed, &["commit", "-q", "-m", "the manifests"])?;
    git(&seed, &["push", "-q", &path.display().to_string(), "main"])?;
    let _ = std::fs::remove_dir_all(&seed);
    Ok(())
}

/// Where scripts/test-cluster.sh writes the sandbox's kubeconfig:
/// `$NIGHTSHIFT_CLUSTER_DIR`, else `$NIGHTSHIFT_CACHE/cluster`, else
/// `~/.cache/nightshift/cluster`.
pub fn kubeconfig_path() -> PathBuf {
    let root = std::env::var_os("NIGHTSHIFT_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/nightshift"));
    let dir = std::env::var_os("NIGHTSHIFT_CLUSTER_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("cluster"));
    dir.join("kubeconfig")
}

/// The API server a kubeconfig names (its first cluster).
pub fn server(kubeconfig: &Path) -> Result<String, String> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| format!("cannot read {}: {e}", kubeconfig.display()))?;
    kc.clusters.first().and_then(|c| c.cluster.as_ref()).and_then(|c| c.server.clone()).ok_or_else(|| format!("{} names no cluster", kubeconfig.display()))
}

/// Whether an API server URL is on loopback (the only place faults may be injected).
pub fn is_loopback(server: &str) -> bool {
    reqwest::Url::parse(server).ok().and_then(|u| u.host_str().map(str::to_string)).is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]" || h == "::1")
}

/// A client from a kubeconfig file, for the current tokio runtime.
pub async fn client(kubeconfig: &Path) -> Result<kube::Client, String> {
    crate::install_crypto_provider();
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| format!("reading {}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    kube::Client::try_from(config).map_err(|e| format!("a client for {}: {e}", kubeconfig.display()))
}

/// Creates `<prefix>-<pid>-<n>-<random>`, labelled for clean-up by a later
/// process (`kubelet::process_labels`), and waits until its `default`
/// ServiceAccount has its token (1.20 admits pods only then).
pub async fn namespace(client: &kube::Client, prefix: &str, n: usize) -> Result<String, String> {
    let suffix = format!("-{}-{n}-{}", std::process::id(), random_suffix(5));
    let mut base: String = prefix.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    base.truncate(63 - suffix.len());
    let base = base.trim_matches('-');
    let name = format!("{}{suffix}", if base.is_empty() { "t" } else { base });
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.clone()), labels: Some(kubelet::process_labels()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.map_err(|e| format!("creating namespace {name}: {e}"))?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    let start = Instant::now();
    loop {
        if sas.get_opt("default").await.ok().flatten().is_some_and(|sa| sa.secrets.is_some_and(|s| !s.is_empty())) {
            return Ok(name);
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("namespace {name}: no default ServiceAccount after 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `len` random characters from [a-z0-9].
pub fn random_suffix(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    let mut x = h.finish();
    (0..len)
        .map(|_| {
            let c = b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize] as char;
            x /= 36;
            c
        })
        .collect()
}

/// A valid Deployment: `replicas` pods labelled `app=<name>`, one container
/// `app` (image registry.example/app:1, memory request 128Mi, limit 256Mi),
/// and the pod-template annotation `sim.nightshift.test/behavior: <behavior>`
/// that tells the simulated kubelet what the container does. Change it with
/// the `DeploymentExt` methods or by mutating the fields.
pub fn deployment(name: &str, replicas: i32, behavior: &str) -> Deployment {
    let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    let resources = ResourceRequirements {
        limits: Some([("memory".to_string(), Quantity("256Mi".into()))].into()),
        requests: Some([("memory".to_string(), Quantity("128Mi".into()))].into()),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta { name: Some(name.to_string()), labels: Some(labels.clone()), ..Default::default() },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), annotations: Some([(kubelet::BEHAVIOR.to_string(), behavior.to_string())].into()), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![Container { name: "app".into(), image: Some("registry.example/app:1".into()), resources: Some(resources), ..Default::default() }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Builder-style changes to a Deployment from `deployment()`.
pub trait DeploymentExt: Sized {
    /// Sets a pod-template annotation (see the `kubelet::` annotation names).
    fn annotate(self, key: &str, value: &str) -> Self;
    /// Sets spec.progressDeadlineSeconds.
    fn progress_deadline(self, seconds: i32) -> Self;
    /// Puts the pods on the namespace's dedicated node(s) (`Kubelet::add_node(_, true)`):
    /// a nodeSelector and a toleration for the dedicated taint.
    fn dedicated(self, namespace: &str) -> Self;
    /// The pod template's spec, for other changes.
    fn pod_spec(&mut self) -> &mut PodSpec;
}

impl DeploymentExt for Deployment {
    fn annotate(mut self, key: &str, value: &str) -> Self {
        let spec = self.spec.get_or_insert_with(Default::default);
        let meta = spec.template.metadata.get_or_insert_with(Default::default);
        meta.annotations.get_or_insert_with(Default::default).insert(key.to_string(), value.to_string());
        self
    }

    fn progress_deadline(mut self, seconds: i32) -> Self {
        self.spec.get_or_insert_with(Default::default).progress_deadline_seconds = Some(seconds);
        self
    }

    fn dedicated(mut self, namespace: &str) -> Self {
        kubelet::dedicate(self.pod_spec(), namespace);
        self
    }

    fn pod_spec(&mut self) -> &mut PodSpec {
        self.spec.get_or_insert_with(Default::default).template.spec.get_or_insert_with(Default::default)
    }
}
