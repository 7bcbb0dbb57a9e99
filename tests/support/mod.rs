//! Test support: temporary workspaces, the built binary, and real servers on
//! loopback (an HTTP server whose status the test sets, a TLS server from
//! openssl with a certificate the test makes).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod github;
pub mod infra_repo;
pub mod kubelet;
pub mod slack;

/// Whether every real component is required: `.ci/run` sets
/// NIGHTSHIFT_REQUIRE_ALL=1, so a missing sshd, Prometheus, pebble or
/// control plane fails the run instead of passing it as a skip.
pub fn require_all() -> bool {
    std::env::var("NIGHTSHIFT_REQUIRE_ALL").as_deref() == Ok("1")
}

/// A test cannot find its real component: a `SKIP:` line where that is
/// allowed (a developer's machine), a failure naming it under CI.
pub fn skip(component: &str, why: &str) {
    if require_all() {
        panic!("{component} is required (NIGHTSHIFT_REQUIRE_ALL=1, as .ci/run sets it): {why}");
    }
    eprintln!("SKIP: {component}: {why}");
}

/// Whether a program can be started (found on PATH and executable).
pub fn have(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nightshift")
}

/// A workspace in a temporary directory.
pub struct Ws {
    pub dir: tempfile::TempDir,
}

impl Ws {
    pub fn new(policy: &str, heartbeat: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), format!("# Manual\n\nBe careful.\n\n```policy\n{policy}```\n")).unwrap();
        std::fs::write(dir.path().join("HEARTBEAT.md"), format!("# Watch\n\n```heartbeat\n{heartbeat}```\n")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--workspace").arg(self.path()).args(args);
        c.env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env("GIT_AUTHOR_NAME", "test")
            .env("GIT_COMMITTER_NAME", "test");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().unwrap();
        Run::from(out)
    }

    pub fn memory(&self) -> PathBuf {
        self.path().join("memory")
    }

    pub fn incident_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(self.memory().join("incidents")).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        v.sort();
        v
    }

    pub fn audit_text(&self) -> String {
        let mut s = String::new();
        if let Ok(r) = std::fs::read_dir(self.memory().join("audit")) {
            let mut files: Vec<_> = r.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                s.push_str(&std::fs::read_to_string(f).unwrap());
            }
        }
        s
    }

    /// Commit subjects of the memory repository, newest first.
    pub fn commits(&self) -> Vec<String> {
        let out = Command::new("git").arg("-C").arg(self.memory()).args(["log", "--format=%s"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let r = self.run(args);
        let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
        (r.code, v)
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into(), stderr: String::from_utf8_lossy(&o.stderr).into() }
    }
}

/// A real HTTP/1.1 server on loopback answering every request with the
/// status the test sets, counting requests.
pub struct HttpServer {
    pub addr: String,
    pub status: Arc<AtomicU16>,
    pub hits: Arc<AtomicUsize>,
    /// Every request received, head and body, as text.
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
    /// The body every response carries; tests may change it.
    pub body: Arc<std::sync::Mutex<String>>,
    /// Statuses for the next requests, in order; then `status`.
    pub script: Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
    /// How long every answer waits, in milliseconds (a slow service).
    pub delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    pub fn start(status: u16, body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = Arc::new(std::sync::Mutex::new(body.to_string()));
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (s, h, st, rq, b, sc, d) = (status.clone(), hits.clone(), stop.clone(), requests.clone(), body.clone(), script.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, h, rq, b, sc, d) = (s.clone(), h.clone(), rq.clone(), b.clone(), sc.clone(), d.clone());
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(d.load(Ordering::Relaxed)));
                            serve(conn, &s, &h, &rq, &b, &sc)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, status, hits, requests, body, script, delay_ms, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut conn: TcpStream,
    status: &AtomicU16,
    hits: &AtomicUsize,
    requests: &std::sync::Mutex<Vec<String>>,
    body: &std::sync::Mutex<String>,
    script: &std::sync::Mutex<std::collections::VecDeque<u16>>,
) {
    let body = body.lock().unwrap().clone();
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let Some((head, request_body)) = read_request(&mut conn) else { return };
    requests.lock().unwrap().push(format!("{head}{}", String::from_utf8_lossy(&request_body)));
    hits.fetch_add(1, Ordering::Relaxed);
    let code = script.lock().unwrap().pop_front().unwrap_or_else(|| status.load(Ordering::Relaxed));
    let resp = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = conn.write_all(resp.as_bytes());
}

/// Reads one HTTP/1.1 request: its head (through the blank line) and its
/// body (by Content-Length). `None` when the peer closed before a full head.
pub fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head.to_lowercase().lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some((head, buf[head_end..].to_vec()))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Makes a self-signed certificate for `localhost` valid for `days` days, with openssl.
pub fn make_cert(dir: &Path, days: u32) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("cert-{days}.pem"));
    let key = dir.join(format!("key-{days}.pem"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        .arg("-days")
        .arg(days.to_string())
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed for TLS tests (apt-get install openssl)");
    assert!(st.success());
    (cert, key)
}

/// A real TLS server (openssl s_server) on loopback serving `cert`.
pub struct TlsServer {
    pub addr: String,
    child: Child,
}

impl TlsServer {
    pub fn start(cert: &Path, key: &Path) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(&addr)
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_listening(&addr, Duration::from_secs(10)), "openssl s_server did not start");
        Self { addr, child }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets a file's modification time `days` days into the past.
pub fn age(path: &Path, days: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

/// Current used percent of the filesystem holding `path`, as df computes it.
pub fn used_percent(path: &Path) -> f64 {
    let out = Command::new("df").arg("--output=pcent").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).unwrap().trim().trim_end_matches('%').parse().unwrap()
}

/// A running `nightshift serve`, stopped with SIGTERM on drop.
pub struct Serve {
    pub addr: String,
    pub child: Child,
}

impl Serve {
    pub fn start(ws: &Ws, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = ws.cmd(&["serve", "--listen", &addr]);
        cmd.args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, addr)
    }

    /// Starts `cmd` (a `serve` command line) and waits until `addr` accepts connections.
    pub fn spawn(mut cmd: Command, addr: String) -> Self {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        assert!(wait_listening(&addr, Duration::from_secs(20)), "serve did not start");
        Self { addr, child }
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        http_request(&self.addr, method, path, headers, body)
    }

    /// Stops it with SIGTERM and returns what it wrote to stderr.
    pub fn stop(&mut self) -> String {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cmd` run under a soft and hard limit of `n` open files (`ulimit -n`).
pub fn with_open_files(cmd: &Command, n: u32) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// A plain HTTP/1.1 request over a fresh connection; (status, body).
pub fn http_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let _ = conn.write_all(body);
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Polls until `f` is true or the time is up.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A scripted OpenAI-compatible server: a real HTTP server on loopback that
/// answers each POST /v1/chat/completions with the next scripted response
/// and records the request the agent sent. It also holds the client to the
/// protocol: a request that comes before the previous answer's
/// `Retry-After` (or, after a 429/5xx without one, sooner than a backoff of
/// 50 ms) is refused with a 400 the client does not retry, and recorded in
/// `violations`, without using up the script.
pub struct ModelServer {
    pub addr: String,
    pub requests: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    violations: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

/// One scripted answer: status, extra headers, body. The pseudo-header
/// `x-stand-in-delay-ms` is not sent: the stand-in waits that long before answering.
pub type Scripted = (u16, Vec<(&'static str, String)>, serde_json::Value);

/// The earliest a retry may come after an error answer without `Retry-After`.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

impl ModelServer {
    pub fn start(script: Vec<Scripted>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let violations = Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(script)));
        let stop = Arc::new(AtomicBool::new(false));
        let (rq, vi, sc, st) = (requests.clone(), violations.clone(), script.clone(), stop.clone());
        std::thread::spawn(move || {
            // The previous answer's (when it was sent, how long the client must wait).
            let mut not_before: Option<(Instant, Duration, String)> = None;
            while !st.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).ok();
                conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let Some((_, request_body)) = read_request(&mut conn) else { continue };
                let body: serde_json::Value = serde_json::from_slice(&request_body).unwrap_or(serde_json::Value::Null);
                rq.lock().unwrap().push(body);
                let early = not_before.take().filter(|(sent, wait, _)| sent.elapsed() < *wait);
                let (status, headers, reply) = match early {
                    Some((sent, wait, why)) => {
                        let v = format!("a request came {} ms after an answer that asked for {} ms ({why})", sent.elapsed().as_millis(), wait.as_millis());
                        vi.lock().unwrap().push(v.clone());
                        (400, vec![], serde_json::json!({"error": {"message": format!("the stand-in refuses an early retry: {v}"), "type": "invalid_request_error"}}))
                    }
                    None => sc.lock().unwrap().pop_front().unwrap_or((500, vec![], serde_json::json!({"error": {"message": "the test's script is exhausted", "type": "server_error"}}))),
                };
                let text = reply.to_string();
                let mut resp = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", text.len());
                let mut retry_after = None;
                for (k, v) in headers {
                    if k.eq_ignore_ascii_case("x-stand-in-delay-ms") {
                        std::thread::sleep(Duration::from_millis(v.parse().unwrap()));
                        continue;
                    }
                    if k.eq_ignore_ascii_case("retry-after") {
                        retry_after = v.parse::<u64>().ok().map(Duration::from_secs);
                    }
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&text);
                let _ = conn.write_all(resp.as_bytes());
                not_before = match (retry_after, status) {
                    (Some(wait), _) => Some((Instant::now(), wait, "its Retry-After".into())),
                    (None, 429 | 500..=599) => Some((Instant::now(), MIN_BACKOFF, format!("a {status} without Retry-After: back off"))),
                    _ => None,
                };
            }
        });
        Self { addr, requests, violations, stop }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests that came before the previous answer allowed (none when the client keeps to the protocol).
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

/// A scripted server error (500, 503, …) in OpenAI's error shape.
pub fn server_error(status: u16) -> Scripted {
    (status, vec![], serde_json::json!({"error": {"message": format!("scripted {status}"), "type": "server_error"}}))
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn completion(message: serde_json::Value, finish: &str, usage: (u32, u32)) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_763_800_000, "model": "scripted",
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        "usage": { "prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1 }
    })
}

/// A response calling tools: (call id, tool name, arguments as the model wrote them).
pub fn tool_calls(calls: &[(&str, &str, &str)], usage: (u32, u32)) -> Scripted {
    let calls: Vec<serde_json::Value> = calls.iter().map(|(id, name, args)| serde_json::json!({ "id": id, "type": "function", "function": { "name": name, "arguments": args } })).collect();
    (200, vec![], completion(serde_json::json!({ "role": "assistant", "content": null, "tool_calls": calls }), "tool_calls", usage))
}

/// A final answer.
pub fn answer(text: &str, usage: (u32, u32)) -> Scripted {
    (200, vec![], completion(serde_json::json!({ "role": "assistant", "content": text }), "stop", usage))
}

/// A real Prometheus (Debian's) on loopback scraping `target` every second;
/// killed on drop. `None` where it is not installed (.ci/run installs it).
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn start(target: &str) -> Option<Self> {
        if Command::new("prometheus").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: ['{target}']}}]\n")).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir })
    }
}
