//! Benchmark: Alertmanager intake throughput of `nightshift serve`. A bounded
//! load generator on loopback posts 10,000 alerts (100 per request, 8
//! connections at once) and then 2,000 single-alert requests (16 at once);
//! each 200 means the alerts were fsynced to the intake journal. Prints
//! alerts/s, p50/p99 request latency and the daemon's peak RSS. Then a
//! burst: 3,000 alerts of one name (3,000 label sets) in one request to a
//! fresh daemon, timed until the pass that takes them has committed the
//! intake offset, with the incidents it wrote.
//! Run with `cargo bench --bench intake`; `NIGHTSHIFT_BIN=path` measures
//! another build of the binary (an older one, for a before/after).
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn post(addr: &str, body: &str) -> (u16, Duration) {
    let start = Instant::now();
    let mut c = TcpStream::connect(addr).expect("connect");
    let req = format!("POST /webhook/alertmanager HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    c.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("read");
    let status = String::from_utf8_lossy(&out).split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, start.elapsed())
}

fn payload(batch: usize, offset: usize) -> String {
    let alerts: Vec<String> = (0..batch)
        .map(|i| {
            let n = offset + i;
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"HighLatency","service":"svc-{}","instance":"web-{}:9100","severity":"warning"}},"annotations":{{"summary":"p99 above 2s"}},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"{n:016x}"}}"#,
                n % 50,
                n % 200
            )
        })
        .collect();
    format!(r#"{{"version":"4","status":"firing","receiver":"nightshift","alerts":[{}]}}"#, alerts.join(","))
}

/// Posts `requests` bodies from `threads` connections at once; returns (wall, latencies).
fn load(addr: &str, requests: usize, batch: usize, threads: usize) -> (Duration, Vec<Duration>) {
    let next = Arc::new(Mutex::new(0usize));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (next, lat, addr) = (next.clone(), lat.clone(), addr.to_string());
            std::thread::spawn(move || {
                loop {
                    let i = {
                        let mut n = next.lock().expect("lock");
                        if *n >= requests {
                            return;
                        }
                        *n += 1;
                        *n - 1
                    };
                    let (status, d) = post(&addr, &payload(batch, i * batch));
                    assert_eq!(status, 200, "intake refused a request");
                    lat.lock().expect("lock").push(d);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("load thread");
    }
    let wall = start.elapsed();
    let mut l = Arc::try_unwrap(lat).expect("threads done").into_inner().expect("lock");
    l.sort();
    (wall, l)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))))
        .unwrap_or(0)
}

fn bin() -> String {
    std::env::var("NIGHTSHIFT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_nightshift").to_string())
}

/// A fresh workspace and `serve` on it, listening.
fn start_serve() -> (tempfile::TempDir, std::process::Child, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("AGENTS.md"), "```policy\nmode: dry-run\n```\n").expect("write");
    std::fs::write(dir.path().join("HEARTBEAT.md"), "```heartbeat\nchecks: []\n```\n").expect("write");
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin())
        .arg("--workspace")
        .arg(dir.path())
        .args(["serve", "--listen", &addr])
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_COMMITTER_NAME", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (dir, child, addr)
}

/// Waits until `serve`'s start-up pass is over (a pass has been counted).
fn first_pass(addr: &str) {
    let start = Instant::now();
    loop {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).expect("write");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        if out.contains("\"passes\":1") || start.elapsed() > Duration::from_secs(20) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Alerts `from..to` of one name (one label set each), as one request body.
fn one_name(from: usize, to: usize) -> String {
    let alerts: Vec<String> = (from..to)
        .map(|i| format!(r#"{{"status":"firing","labels":{{"alertname":"HighLatency","instance":"web-{i}:9100","severity":"warning"}},"annotations":{{"summary":"p99 above 2s"}},"startsAt":"2026-11-23T03:00:00Z"}}"#))
        .collect();
    format!(r#"{{"version":"4","status":"firing","receiver":"nightshift","alerts":[{}]}}"#, alerts.join(","))
}

/// Posts a body and waits until the pass that takes it has committed the intake offset.
fn post_and_wait(addr: &str, state: &std::path::Path, body: &str) -> Duration {
    let start = Instant::now();
    let (status, _) = post(addr, body);
    assert_eq!(status, 200, "intake refused the alerts");
    let journal = std::fs::metadata(state.join("intake.jsonl")).map(|m| m.len()).unwrap_or(0);
    let handled = || std::fs::read_to_string(state.join("intake.offset")).ok().and_then(|s| s.trim().parse::<u64>().ok()) == Some(journal);
    while !handled() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// 3,000 alerts of one name in one request: how long the pass that takes them holds.
/// Then the same 3,000 label sets, 100 per request, each after the previous pass
/// (under the per-pass limit, so every one opens an incident of the same day and name).
fn burst() {
    let (dir, mut child, addr) = start_serve();
    first_pass(&addr);
    let state = dir.path().join("memory/state");
    let took = post_and_wait(&addr, &state, &one_name(0, 3000));
    let incidents = std::fs::read_dir(dir.path().join("memory/incidents")).map(|r| r.count()).unwrap_or(0);
    println!("  3,000 alerts of one name in one request: handled by the next pass in {:.2} s; {incidents} incident notes written", took.as_secs_f64());
    let _ = child.kill();
    let _ = child.wait();

    let (dir, mut child, addr) = start_serve();
    first_pass(&addr);
    let state = dir.path().join("memory/state");
    let passes: Vec<Duration> = (0..30).map(|k| post_and_wait(&addr, &state, &one_name(k * 100, k * 100 + 100))).collect();
    let incidents = std::fs::read_dir(dir.path().join("memory/incidents")).map(|r| r.count()).unwrap_or(0);
    let total: Duration = passes.iter().sum();
    println!(
        "  the same in 30 requests of 100, one pass each: first pass {:.2} s, last (2,900 ids of the name already that day) {:.2} s, all {:.1} s; {incidents} incident notes",
        passes[0].as_secs_f64(),
        passes[29].as_secs_f64(),
        total.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let (dir, mut child, addr) = start_serve();
    println!("intake of `nightshift serve` (each 200 = alerts fsynced to the intake journal):");
    for (requests, batch, threads) in [(100, 100, 8), (2000, 1, 16)] {
        let (wall, lat) = load(&addr, requests, batch, threads);
        let alerts = requests * batch;
        let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
        println!("  {alerts} alerts in {requests} requests of {batch}, {threads} at once: {:.0} alerts/s, latency p50 {:.1} ms, p99 {:.1} ms", alerts as f64 / wall.as_secs_f64(), p(0.5), p(0.99));
    }
    // Let the passes fold the alerts into incidents, then read the daemon's peak memory.
    std::thread::sleep(Duration::from_secs(3));
    println!("  peak RSS of serve: {:.1} MiB", peak_rss_kib(child.id()) as f64 / 1024.0);
    let incidents = std::fs::read_dir(dir.path().join("memory/incidents")).map(|r| r.count()).unwrap_or(0);
    println!("  incidents written so far: {incidents} (200 distinct label sets; at most 100 new per pass, the rest fold into one alert-storm incident)");
    let _ = child.kill();
    let _ = child.wait();
    drop(dir);
    burst();
}
