//! A pull request's branch pushed to real git servers, not a local path:
//! over SSH (the tests' sshd, git-receive-pack on a bare repository) and over
//! HTTPS (git's own git-http-backend through fcgiwrap, behind nginx with an
//! openssl certificate and basic auth taking the token as GitHub does). What
//! arrived is read back with the git command line on the server's side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nightshift::pr::manifest::{Locate, Target};
use nightshift::pr::{PrChange, PrContext, PrRequest, RepoConfig};
use support::infra_repo::{InfraRepo, changed_lines};

const TOKEN: &str = "ghp_testTokenForTheGitServer0123456789ab";

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.example/checkout:1.4.2
          resources:
            limits:
              memory: 512Mi   # sized from the load test
";

/// What the process-wide settings of this test binary point at: the HTTPS
/// server's certificate (SSL_CERT_FILE, as a private CA is trusted), the SSH
/// key nightshift pushes with (NIGHTSHIFT_GIT_SSH_KEY) and a HOME whose
/// `.ssh/known_hosts` libgit2 checks SSH servers against. Set once, before
/// any test reads them.
struct Trust {
    dir: tempfile::TempDir,
}

fn trust() -> &'static Trust {
    static TRUST: OnceLock<Trust> = OnceLock::new();
    TRUST.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2"])
            .arg("-keyout")
            .arg(dir.path().join("site.key"))
            .arg("-out")
            .arg(dir.path().join("site.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        nightshift::sandbox::host::keygen(&dir.path().join("push_key")).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
        // SAFETY: inside the OnceLock, before any thread of this binary uses git or TLS.
        unsafe {
            std::env::set_var("SSL_CERT_FILE", dir.path().join("site.pem"));
            std::env::set_var("NIGHTSHIFT_GIT_SSH_KEY", dir.path().join("push_key"));
            std::env::set_var("HOME", dir.path().join("home"));
        }
        Trust { dir }
    })
}

fn find(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]).map(|d| d.join(bin)).find(|p| p.is_file())
}

fn config(remote: String, cache: &Path) -> RepoConfig {
    RepoConfig {
        remote,
        owner: "acme".into(),
        name: "infra".into(),
        token_env: "NIGHTSHIFT_TEST_GIT_TOKEN".into(),
        base: "main".into(),
        cache: cache.join("infra"),
        manifests: Locate::Search,
        api_url: "http://127.0.0.1:9".into(),
        author_name: "nightshift".into(),
        author_email: "nightshift@acme.example".into(),
        labels: vec![],
        notes_url: None,
    }
}

fn request() -> PrRequest {
    PrRequest {
        target: Target { kind: "Deployment".into(), namespace: "shop".into(), name: "checkout".into() },
        change: PrChange::RaiseMemory { container: Some("app".into()), factor: None },
        context: PrContext { incident: Some("2026-11-23-pod-oom-shop-checkout".into()), allowed: "open_pr: auto".into(), ..Default::default() },
    }
}

/// The branch is on the server, at the commit nightshift made, changing only the limit.
fn assert_arrived(repo: &InfraRepo, pushed: &nightshift::pr::git::Prepared) {
    assert!(pushed.pushed, "{pushed:?}");
    let branch = "nightshift/shop-checkout-memory";
    assert_eq!(pushed.branch, branch);
    assert!(repo.branches().contains(&branch.to_string()), "{:?}", repo.branches());
    assert_eq!(Some(repo.tip(branch)), pushed.commit, "the server's branch is at nightshift's commit");
    assert_eq!(changed_lines(&repo.diff("main", branch)), ["-              memory: 512Mi   # sized from the load test", "+              memory: 768Mi   # sized from the load test"]);
    assert_eq!(repo.commits("main", branch).len(), 1);
}

#[test]
fn a_branch_is_pushed_over_ssh_to_a_real_sshd_with_the_configured_key() {
    if nightshift::sandbox::host::missing().is_some_and(|m| m.contains("no sshd")) {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    }
    let t = trust();
    let repo = InfraRepo::new(&[("k8s/shop/app.yaml", APP)]);
    let dir = tempfile::tempdir().unwrap();
    let sshd = nightshift::sandbox::host::SshHost::start(dir.path()).unwrap();
    // The push key is the only one the server takes.
    std::fs::copy(t.dir.path().join("push_key.pub"), dir.path().join("authorized_keys")).unwrap();
    let main_before = repo.tip("main");
    let remote = format!("ssh://root@127.0.0.1:{}{}", sshd.port, repo.remote().display());
    let cache = tempfile::tempdir().unwrap();

    // A server whose host key ~/.ssh/known_hosts does not hold is refused: nothing arrives.
    let err = nightshift::pr::git::prepare_and_push(&config(remote.clone(), cache.path()), &request(), None).unwrap_err();
    assert!(err.contains("unknown remote ssh hostkey"), "{err}");
    assert_eq!(repo.branches(), ["main"]);

    let host_key = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
    std::fs::write(t.dir.path().join("home/.ssh/known_hosts"), format!("[127.0.0.1]:{} {host_key}", sshd.port)).unwrap();
    let pushed = nightshift::pr::git::prepare_and_push(&config(remote, cache.path()), &request(), None).unwrap_or_else(|e| panic!("{e}"));
    assert_arrived(&repo, &pushed);
    assert_eq!(repo.tip("main"), main_before);
    let log = std::fs::read_to_string(dir.path().join("sshd.log")).unwrap();
    assert!(log.contains("Accepted publickey for root from 127.0.0.1"), "{log}");
}

/// nginx (TLS, basic auth) in front of fcgiwrap running git-http-backend.
struct GitHttps {
    fcgiwrap: Child,
    nginx: String,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for GitHttps {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(format!("{} -s stop", self.nginx)).stderr(Stdio::null()).status();
        let _ = self.fcgiwrap.kill();
        let _ = self.fcgiwrap.wait();
    }
}

impl GitHttps {
    fn start(t: &Trust, project_root: &Path) -> Option<Self> {
        let (nginx, fcgiwrap) = (find("nginx")?, find("fcgiwrap")?);
        let backend = ["/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend"].into_iter().find(|p| Path::new(p).is_file())?;
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let hash = Command::new("openssl").args(["passwd", "-apr1", TOKEN]).output().unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("x-access-token:{}", String::from_utf8_lossy(&hash.stdout))).unwrap();
        let fcgi_port = support::free_port();
        let fcgiwrap = Command::new(fcgiwrap).args(["-s", &format!("tcp:127.0.0.1:{fcgi_port}")]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let port = support::free_port();
        let user = if nix::unistd::geteuid().is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}pid {pid};\nerror_log {err};\nworker_processes 1;\nevents {{}}\nhttp {{\n  access_log {access};\n  client_body_temp_path {t};\n  proxy_temp_path {t};\n  fastcgi_temp_path {t};\n  uwsgi_temp_path {t};\n  scgi_temp_path {t};\n  client_max_body_size 50m;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    ssl_certificate {crt};\n    ssl_certificate_key {key};\n    location / {{\n      auth_basic \"git\";\n      auth_basic_user_file {htpasswd};\n      fastcgi_pass 127.0.0.1:{fcgi_port};\n      fastcgi_param SCRIPT_FILENAME {backend};\n      fastcgi_param GIT_PROJECT_ROOT {root};\n      fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n      fastcgi_param PATH_INFO $uri;\n      fastcgi_param REMOTE_USER $remote_user;\n      fastcgi_param QUERY_STRING $query_string;\n      fastcgi_param REQUEST_METHOD $request_method;\n      fastcgi_param CONTENT_TYPE $content_type;\n      fastcgi_param CONTENT_LENGTH $content_length;\n    }}\n  }}\n}}\n",
            pid = p("nginx.pid"),
            err = p("logs/error.log"),
            access = p("logs/access.log"),
            t = p("tmp"),
            crt = t.dir.path().join("site.pem").display(),
            key = t.dir.path().join("site.key").display(),
            htpasswd = p("htpasswd"),
            root = project_root.display(),
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let nginx = format!("{} -c {} -p {}/", nginx.display(), p("nginx.conf"), dir.path().display());
        let out = Command::new("sh").arg("-c").arg(&nginx).output().unwrap();
        assert!(out.status.success(), "nginx: {}{}", String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(p("logs/error.log")).unwrap_or_default());
        let server = Self { fcgiwrap, nginx, dir, port };
        assert!(support::wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10)) && support::wait_listening(&format!("127.0.0.1:{fcgi_port}"), Duration::from_secs(10)));
        Some(server)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }
}

#[test]
fn a_branch_is_pushed_over_https_with_the_token_and_refused_without_it() {
    let t = trust();
    let repo = InfraRepo::new(&[("k8s/shop/app.yaml", APP)]);
    let Some(server) = GitHttps::start(t, repo.dir.path()) else {
        support::skip("nginx, fcgiwrap, git-http-backend", "not installed (apt-get install nginx-light fcgiwrap git)");
        return;
    };
    let remote = format!("https://localhost:{}/remote.git", server.port);
    let main_before = repo.tip("main");

    // Without the token the server refuses (basic auth): nothing arrives.
    let cache = tempfile::tempdir().unwrap();
    let err = nightshift::pr::git::prepare_and_push(&config(remote.clone(), cache.path()), &request(), None).unwrap_err();
    assert!(err.contains("no accepted credentials: set $NIGHTSHIFT_TEST_GIT_TOKEN"), "{err}");
    assert_eq!(repo.branches(), ["main"]);

    let pushed = nightshift::pr::git::prepare_and_push(&config(remote, cache.path()), &request(), Some(TOKEN)).unwrap_or_else(|e| panic!("{e}"));
    assert_arrived(&repo, &pushed);
    assert_eq!(repo.tip("main"), main_before);
    let log = server.access_log();
    assert!(log.lines().any(|l| l.contains(" x-access-token ") && l.contains("POST /remote.git/git-receive-pack") && l.contains("\" 200 ")), "{log}");
}
