//! Benchmark: from a `confirm` decision to its approval request leaving
//! `nightshift serve`. A JSON webhook receiver on loopback stamps each
//! `approval_request` as it arrives; the decision time is the approval's
//! `created` (set by the gate's decision, in `memory/state/approvals.json`).
//! 100 checks, each made to fail in turn (one new decision at a time), so
//! every figure is one request's own latency, not a queue's. Prints p50,
//! p99 and max. Run with `cargo bench --bench approval`; `NIGHTSHIFT_BIN=path`
//! measures another build of the binary.
#![allow(clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const N: usize = 100;

/// (approval id, arrival) of every approval request received.
type Arrivals = Arc<Mutex<Vec<(String, SystemTime)>>>;

fn receiver() -> (String, Arrivals) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            // Head, then the body by Content-Length.
            let (head_end, len) = loop {
                let Ok(n) = conn.read(&mut chunk) else { break (0, 0) };
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                    let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                    break (p + 4, len);
                }
            };
            while head_end > 0 && buf.len() < head_end + len {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let at = SystemTime::now();
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let body: serde_json::Value = serde_json::from_slice(buf.get(head_end..).unwrap_or_default()).unwrap_or_default();
            if body["kind"] == "approval_request"
                && let Some(id) = body["approval"]["id"].as_str()
            {
                g.lock().expect("lock").push((id.to_string(), at));
            }
        }
    });
    (addr, got)
}

fn main() {
    let bin = std::env::var("NIGHTSHIFT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_nightshift").to_string());
    let (hook, got) = receiver();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "mode: execute\nnotify_window: 0s\nescalation: []\ncommands:\n  fix: \"true\"\nrules:\n  - action: run_command\n    decide: confirm\nwebhooks:\n  - name: oncall\n    url: http://{hook}/hook\n    severities: [warning]\n"
    );
    std::fs::write(dir.path().join("AGENTS.md"), format!("```policy\n{policy}```\n")).expect("write");
    let checks: String = (0..N).map(|i| format!("  - name: c{i}\n    kind: exec\n    command: \"test ! -f fail-{i}\"\n    repair: fix\n    every: 1s\n")).collect();
    std::fs::write(dir.path().join("HEARTBEAT.md"), format!("```heartbeat\nchecks:\n{checks}```\n")).expect("write");
    let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut child = Command::new(&bin)
        .arg("--workspace")
        .arg(dir.path())
        .args(["serve", "--execute", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let approvals = dir.path().join("memory/state/approvals.json");
    let mut lat = Vec::with_capacity(N);
    for i in 0..N {
        std::fs::write(dir.path().join(format!("fail-{i}")), "").expect("write");
        let start = Instant::now();
        let arrived = loop {
            let seen = got.lock().expect("lock").len();
            if seen > i {
                break got.lock().expect("lock")[i].clone();
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no approval request for c{i}");
            std::thread::sleep(Duration::from_millis(5));
        };
        let list: serde_json::Value = serde_json::from_slice(&std::fs::read(&approvals).expect("approvals")).expect("json");
        let created = list.as_array().and_then(|l| l.iter().find(|a| a["id"] == arrived.0.as_str())).and_then(|a| a["created"].as_str()).expect("created");
        let created: SystemTime = chrono::DateTime::parse_from_rfc3339(created).expect("rfc3339").with_timezone(&chrono::Utc).into();
        lat.push(arrived.1.duration_since(created).unwrap_or_default());
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    lat.sort();
    println!(
        "confirm decision -> approval request received (serve, {N} requests, one at a time): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        common::ms(common::percentile(&lat, 0.5)),
        common::ms(common::percentile(&lat, 0.99)),
        common::ms(lat[lat.len() - 1])
    );
}
