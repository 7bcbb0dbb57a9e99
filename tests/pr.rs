//! Pull requests for permanent fixes, end to end without a cluster: a real
//! bare git repository as the remote, the GitHub stand-in on loopback (every
//! request and response checked against GitHub's REST description), and the
//! `heartbeat` binary's workspace validation for the `repository:` block.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nightshift::pr::manifest::{Locate, Target};
use nightshift::pr::{PrChange, PrContext, PrRequest, RepoConfig, open_pr};
use support::Ws;
use support::github::GitHub;
use support::infra_repo::{InfraRepo, changed_lines};

const TOKEN: &str = "ghp_testTokenForTheStandIn0123456789ab";

/// Two Deployments in one file; the first one commented the way people do.
const SHOP: &str = "# Shop workloads. Owned by team-payments.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout   # the payment flow
  namespace: shop
  labels:
    app: checkout
spec:
  replicas: 3
  selector:
    matchLabels:
      app: checkout
  template:
    metadata:
      labels:
        app: checkout
    spec:
      containers:
        - name: app
          image: registry.example/checkout:1.4.2
          resources:
            # sized from the load test of 2026-10
            limits:
              memory: \"512Mi\"   # do not lower: JVM heap is 384m
              cpu: 500m
            requests:
              memory: 256Mi
              cpu: 100m
        - name: sidecar
          image: registry.example/envoy:1.30
          resources:
            limits:
              memory: 128Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.example/cart:2.0.0
          resources:
            limits:
              memory: 1Gi
";

fn provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn config(repo: &InfraRepo, gh: &GitHub, cache: &std::path::Path) -> RepoConfig {
    RepoConfig {
        remote: repo.remote().display().to_string(),
        owner: "acme".into(),
        name: "infra".into(),
        token_env: "NIGHTSHIFT_TEST_GITHUB_TOKEN".into(),
        base: "main".into(),
        cache: cache.join("infra"),
        manifests: Locate::Search,
        api_url: gh.url(),
        author_name: "nightshift".into(),
        author_email: "nightshift@acme.example".into(),
        labels: vec!["nightshift".into(), "oom".into()],
        notes_url: Some("https://git.acme.example/ops/memory/src/branch/main/incidents/{id}.md".into()),
    }
}

fn request(name: &str, change: PrChange) -> PrRequest {
    PrRequest {
        target: Target { kind: "Deployment".into(), namespace: "shop".into(), name: name.into() },
        change,
        context: PrContext {
            incident: Some(format!("2026-11-23-pod-oom-shop-{name}")),
            title: Some(format!("shop/{name} is OOMKilled in a loop")),
            severity: Some("critical".into()),
            detected: Some("2026-11-23T03:12:09Z".into()),
            check: Some("pods".into()),
            evidence: vec![
                "pod `checkout-7c9-x2k` container `app`: CrashLoopBackOff, 14 restarts, last exit OOMKilled (137)".into(),
                "container `app` was OOMKilled at its memory limit `512Mi` (request `256Mi`): usage reached the limit".into(),
            ],
            allowed: "open_pr on shop/checkout: auto (rule for open_pr at AGENTS.md line 5 decides auto)".into(),
        },
    }
}

fn memory(container: &str) -> PrChange {
    PrChange::RaiseMemory { container: Some(container.into()), factor: None }
}

/// The stand-in, a remote seeded with the shop's manifests, and the token in the environment.
fn setup() -> Option<(GitHub, InfraRepo, tempfile::TempDir)> {
    setup_with(&[("k8s/shop/workloads.yaml", SHOP), ("README.md", "# infra\n")])
}

/// The stand-in, a remote seeded with `files`, and the token in the environment.
fn setup_with(files: &[(&str, &str)]) -> Option<(GitHub, InfraRepo, tempfile::TempDir)> {
    provider();
    let gh = GitHub::start(TOKEN)?;
    let repo = InfraRepo::new(files);
    gh.with_git_remote("acme", "infra", &repo.remote());
    // SAFETY: set before any thread of this test reads it; every test sets the same value.
    unsafe { std::env::set_var("NIGHTSHIFT_TEST_GITHUB_TOKEN", TOKEN) };
    Some((gh, repo, tempfile::tempdir().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_changes_only_the_limit_and_keeps_comments_and_the_other_deployment() {
    let Some((gh, repo, cache)) = setup() else { return };
    let cfg = config(&repo, &gh, cache.path());
    let req = request("checkout", memory("app"));

    let opened = open_pr(&cfg, &req).await.unwrap();
    assert!(opened.created && opened.pushed, "{opened:?}");
    assert_eq!(opened.branch, "nightshift/shop-checkout-memory", "one branch per workload and change");
    assert_eq!(opened.path, std::path::Path::new("k8s/shop/workloads.yaml"));

    // The pushed branch differs from main in exactly the limit and the request.
    let diff = repo.diff("main", &opened.branch);
    assert_eq!(
        changed_lines(&diff),
        [
            "-              memory: \"512Mi\"   # do not lower: JVM heap is 384m",
            "+              memory: \"768Mi\"   # do not lower: JVM heap is 384m",
            "-              memory: 256Mi",
            "+              memory: 384Mi",
        ],
        "{diff}"
    );
    let after = repo.file(&opened.branch, "k8s/shop/workloads.yaml").unwrap();
    assert_eq!(after.replace("\"768Mi\"", "\"512Mi\"").replace("memory: 384Mi", "memory: 256Mi"), SHOP, "the rest of the file, comments and the cart Deployment included, is byte for byte the same");
    assert_eq!(repo.file("main", "k8s/shop/workloads.yaml").unwrap(), SHOP, "main is never pushed to");
    assert_eq!(repo.commits("main", &opened.branch), ["nightshift <nightshift@acme.example>|nightshift: shop/checkout: memory limit of container app: 512Mi → 768Mi"]);

    // The pull request the stand-in recorded.
    let pulls = gh.pulls("acme", "infra");
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!((pr.head.as_str(), pr.base.as_str(), pr.state.as_str()), (opened.branch.as_str(), "main", "open"));
    assert_eq!(opened.number, pr.number);
    assert!(opened.url.ends_with(&format!("/acme/infra/pull/{}", pr.number)), "{}", opened.url);
    assert!(pr.title.contains("shop/checkout") && pr.title.contains("512Mi → 768Mi"), "{}", pr.title);
    for want in [
        "shop/checkout is OOMKilled in a loop",
        "last exit OOMKilled (137)",
        "at its memory limit `512Mi`",
        "memory limit of container app: 512Mi → 768Mi",
        "memory request of container app: 256Mi → 384Mi",
        "k8s/shop/workloads.yaml",
        "auto (rule for open_pr at AGENTS.md line 5 decides auto)",
        "https://git.acme.example/ops/memory/src/branch/main/incidents/2026-11-23-pod-oom-shop-checkout.md",
    ] {
        assert!(pr.body.contains(want), "the body lacks {want:?}:\n{}", pr.body);
    }
    let mut labels = pr.labels.clone();
    labels.sort();
    assert_eq!(labels, ["nightshift", "oom"]);
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurrence_on_the_same_workload_updates_the_same_branch_and_pull_request() {
    let Some((gh, repo, cache)) = setup() else { return };
    let cfg = config(&repo, &gh, cache.path());
    let req = request("checkout", memory("app"));
    let first = open_pr(&cfg, &req).await.unwrap();
    let tip = repo.tip(&first.branch);

    // The OOM comes back a week later: another incident, the same workload and change.
    let mut recurrence = req.clone();
    recurrence.context.incident = Some("2026-11-30-pod-oom-shop-checkout".into());
    let second = open_pr(&cfg, &recurrence).await.unwrap();
    assert!(!second.created && !second.pushed, "{second:?}");
    assert_eq!(second.number, first.number);
    assert!(gh.pulls("acme", "infra")[0].body.contains("2026-11-30-pod-oom-shop-checkout"), "the body names the latest incident: {}", gh.pulls("acme", "infra")[0].body);
    assert_eq!(repo.tip(&first.branch), tip, "no second commit for the same change");
    assert!(second.describe().starts_with(&format!("updated pull request #{}", first.number)), "{}", second.describe());

    // A teammate changes another file on main; the change is still carried, nothing is pushed,
    // and the base's other changes are not dragged into the branch.
    repo.commit("main", "README.md", "# infra\n\nOwned by platform.\n", "docs");
    let third = open_pr(&cfg, &req).await.unwrap();
    assert!(!third.created && !third.pushed, "{third:?}");
    assert_eq!(gh.pulls("acme", "infra").len(), 1, "one pull request per workload");
    assert_eq!(repo.branches().len(), 2, "{:?}", repo.branches());

    // A different incident on another workload of the same file gets its own branch and PR.
    let cart = open_pr(&cfg, &request("cart", PrChange::RaiseMemory { container: None, factor: None })).await.unwrap();
    assert!(cart.created && cart.number != first.number);
    assert_eq!(changed_lines(&repo.diff("main", &cart.branch)), ["-              memory: 1Gi", "+              memory: 1536Mi"]);
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewers_commit_on_the_branch_is_never_overwritten() {
    let Some((gh, repo, cache)) = setup() else { return };
    let cfg = config(&repo, &gh, cache.path());
    let req = request("checkout", memory("app"));
    let first = open_pr(&cfg, &req).await.unwrap();
    let reviewed = SHOP.replace("\"512Mi\"", "\"1Gi\"");
    repo.commit(&first.branch, "k8s/shop/workloads.yaml", &reviewed, "review: 1Gi is what the load test says");
    let tip = repo.tip(&first.branch);

    let err = open_pr(&cfg, &req).await.unwrap_err();
    assert!(err.contains("leaves that branch to its pull request's reviewers"), "{err}");
    assert_eq!(repo.tip(&first.branch), tip, "the reviewer's commit stays the tip");
    assert_eq!(repo.file(&first.branch, "k8s/shop/workloads.yaml").unwrap(), reviewed);
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_uneditable_manifest_is_refused_before_anything_is_pushed() {
    let Some((gh, repo, cache)) = setup() else { return };
    let cfg = config(&repo, &gh, cache.path());

    let err = open_pr(&cfg, &request("payments", memory("app"))).await.unwrap_err();
    assert!(err.contains("payments") && err.contains("manifests"), "the error names the workload and the setting to fix: {err}");
    // The sidecar has no request, the cart no second container: the named container must exist.
    let err = open_pr(&cfg, &request("cart", memory("worker"))).await.unwrap_err();
    assert!(err.contains("worker"), "{err}");
    // Two containers and none named: nightshift does not guess.
    let err = open_pr(&cfg, &request("checkout", PrChange::RaiseMemory { container: None, factor: None })).await.unwrap_err();
    assert!(err.contains("app") && err.contains("sidecar"), "{err}");
    // A factor no reviewer would accept.
    let err = open_pr(&cfg, &request("checkout", PrChange::RaiseMemory { container: Some("app".into()), factor: Some(20.0) })).await.unwrap_err();
    assert!(err.contains("factor"), "{err}");

    assert_eq!(repo.branches(), ["main"], "nothing pushed");
    assert!(gh.pulls("acme", "infra").is_empty());
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_template_finds_the_overlay_and_other_changes_are_typed_too() {
    let overlay = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: search\nspec:\n  replicas: 2 # peak traffic needs 4\n  template:\n    spec:\n      containers:\n      - name: api\n        livenessProbe:\n          httpGet: {path: /healthz, port: 8080}\n          periodSeconds: 10\n";
    let Some((gh, repo, cache)) = setup_with(&[("k8s/overlays/prod/search/deployment.yaml", overlay), ("k8s/overlays/staging/search/deployment.yaml", overlay)]) else { return };
    let mut cfg = config(&repo, &gh, cache.path());
    cfg.manifests = Locate::Template("k8s/overlays/{namespace}/{name}/".into());
    let mut req = request("search", PrChange::SetReplicas { replicas: 4 });
    req.target.namespace = "prod".into();

    let opened = open_pr(&cfg, &req).await.unwrap();
    assert_eq!(opened.path, std::path::Path::new("k8s/overlays/prod/search/deployment.yaml"));
    assert_eq!(changed_lines(&repo.diff("main", &opened.branch)), ["-  replicas: 2 # peak traffic needs 4", "+  replicas: 4 # peak traffic needs 4"]);

    let mut req = request("search", PrChange::LivenessDelay { container: Some("api".into()), seconds: 30 });
    req.target.namespace = "prod".into();
    req.context.incident = Some("2026-11-23-pod-liveness-failing-prod-search".into());
    let opened = open_pr(&cfg, &req).await.unwrap();
    let changed = changed_lines(&repo.diff("main", &opened.branch));
    assert_eq!(changed, ["+          initialDelaySeconds: 30"], "the key is added beside its siblings");
    assert_eq!(repo.file(&opened.branch, "k8s/overlays/staging/search/deployment.yaml").unwrap(), overlay, "the other overlay is untouched");
    gh.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_a_clear_error_after_the_branch_is_pushed() {
    let Some((gh, repo, cache)) = setup() else { return };
    let mut cfg = config(&repo, &gh, cache.path());
    cfg.token_env = "NIGHTSHIFT_TEST_WRONG_TOKEN".into();
    unsafe { std::env::set_var("NIGHTSHIFT_TEST_WRONG_TOKEN", "ghp_notTheRightOne") };
    let err = open_pr(&cfg, &request("checkout", memory("app"))).await.unwrap_err();
    assert!(err.contains("401") && err.contains("token"), "{err}");
    assert!(gh.pulls("acme", "infra").is_empty());

    cfg.token_env = "NIGHTSHIFT_TEST_UNSET_TOKEN".into();
    let err = open_pr(&cfg, &request("checkout", memory("app"))).await.unwrap_err();
    assert!(err.contains("$NIGHTSHIFT_TEST_UNSET_TOKEN is not set"), "{err}");
}

#[test]
fn the_repository_block_is_validated_with_file_line_and_fix() {
    let ws = Ws::new(
        "repository:\n  remote: /srv/git/infra.git\n  base: nightshift/x\n  manifests: /etc/k8s/{app}\n  author: nightshift\n  token: ghp_abc\n  notes_url: https://git.example/notes\n",
        "checks: []\n",
    );
    let out = ws.cmd(&["validate"]).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    for want in
        ["cannot tell the GitHub repository", "repo: owner/name", "cannot be the base branch", "is not a path template", "is not `Name <email>`", "would put a secret in AGENTS.md", "has no {id}"]
    {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(text.contains("AGENTS.md:"), "problems name the file and line: {text}");

    let ws = Ws::new("repository:\n  remote: git@github.com:acme/infra.git\n  manifests: k8s/{namespace}/{name}.yaml\n  author: nightshift <nightshift@acme.example>\n", "checks: []\n");
    let out = ws.cmd(&["validate"]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
