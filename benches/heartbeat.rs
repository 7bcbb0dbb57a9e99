//! Benchmark: `nightshift heartbeat --all` on a workspace of 50 healthy local
//! checks (20 http against a loopback server, 10 tcp, 10 disk, 10 exec
//! `true`), each run a fresh process (cold start included). Prints wall time
//! and peak RSS per run, and how many connections a loopback "model"
//! endpoint received (must be 0), then the I/O floor measured the same way in
//! the same run: one `curl --parallel` process fetching the same 20 URLs plus
//! 10 more requests to the same address for the 10 tcp connects (a connect
//! with a request costs at least a connect), and the ratio of the two
//! medians. Run with `cargo bench --bench heartbeat`.

#![allow(clippy::expect_used, clippy::zombie_processes)] // a benchmark harness: failing loudly is the point

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use common::{measure, ms, percentile};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const RUNS: usize = 30;

fn serve_ok(listener: TcpListener) {
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut conn = conn;
            let mut buf = [0u8; 2048];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        });
    }
}

fn main() {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = http.local_addr().expect("addr").to_string();
    std::thread::spawn(move || serve_ok(http));
    let model = TcpListener::bind("127.0.0.1:0").expect("bind");
    let model_url = format!("http://{}/v1", model.local_addr().expect("addr"));
    let model_calls = Arc::new(AtomicUsize::new(0));
    let mc = model_calls.clone();
    std::thread::spawn(move || {
        for _ in model.incoming() {
            mc.fetch_add(1, Ordering::Relaxed);
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut checks = String::from("checks:\n");
    for i in 0..20 {
        checks.push_str(&format!("  - name: http-{i}\n    kind: http\n    url: http://{addr}/health/{i}\n    body_contains: ok\n"));
    }
    for i in 0..10 {
        checks.push_str(&format!("  - name: tcp-{i}\n    kind: tcp\n    address: {addr}\n"));
    }
    for i in 0..10 {
        let path = if i % 2 == 0 { "/" } else { "/tmp" };
        checks.push_str(&format!("  - name: disk-{i}\n    kind: disk\n    path: {path}\n    max_used_percent: 99\n"));
    }
    for i in 0..10 {
        checks.push_str(&format!("  - name: exec-{i}\n    kind: exec\n    command: \"true\"\n"));
    }
    std::fs::write(dir.path().join("AGENTS.md"), "```policy\nmode: dry-run\n```\n").expect("write");
    std::fs::write(dir.path().join("HEARTBEAT.md"), format!("```heartbeat\n{checks}```\n")).expect("write");

    let bin = env!("CARGO_BIN_EXE_nightshift");
    let mut walls = Vec::new();
    let mut peak_kib = 0;
    for run in 0..RUNS + 1 {
        let mut cmd = Command::new(bin);
        cmd.args(["--workspace"]).arg(dir.path()).args(["heartbeat", "--all"]).env("OPENAI_BASE_URL", &model_url).env("OPENAI_API_KEY", "bench");
        let (wall, rss, code) = measure(&mut cmd);
        assert_eq!(code, 0, "the heartbeat was not healthy");
        if run > 0 {
            // Run 0 creates memory/ (git init); the rest are steady-state cron runs.
            walls.push(wall);
            peak_kib = peak_kib.max(rss);
        }
    }
    walls.sort();
    println!("heartbeat --all, 50 healthy local checks (20 http, 10 tcp, 10 disk, 10 exec), {RUNS} cold process runs:");
    println!("  wall  median {:.1} ms, p90 {:.1} ms, max {:.1} ms", ms(percentile(&walls, 0.5)), ms(percentile(&walls, 0.9)), ms(*walls.last().expect("runs")));
    println!("  peak RSS {:.1} MiB", peak_kib as f64 / 1024.0);
    println!("  model endpoint connections: {}", model_calls.load(Ordering::Relaxed));
    assert_eq!(model_calls.load(Ordering::Relaxed), 0, "a healthy heartbeat called the model");

    // The floor: what the network part of those checks costs a tool that does only that.
    let mut urls: Vec<String> = (0..20).map(|i| format!("http://{addr}/health/{i}")).collect();
    urls.extend((0..10).map(|i| format!("http://{addr}/tcp/{i}")));
    if Command::new("curl").arg("--version").output().is_err() {
        println!("  curl not found: no I/O floor to compare with");
        return;
    }
    let mut floor = Vec::new();
    for run in 0..RUNS + 1 {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--parallel", "--parallel-max", "50"]);
        for url in &urls {
            cmd.args(["-o", "/dev/null", url]);
        }
        let (wall, _, code) = measure(&mut cmd);
        assert_eq!(code, 0, "curl failed");
        if run > 0 {
            floor.push(wall);
        }
    }
    floor.sort();
    let median = |v: &[std::time::Duration]| ms(percentile(v, 0.5));
    println!("I/O floor, curl --parallel: 30 requests to the same server (20 URLs + 10 for the tcp connects), {RUNS} runs:");
    println!("  wall  median {:.1} ms, p90 {:.1} ms", median(&floor), ms(percentile(&floor, 0.9)));
    println!("  heartbeat / floor (medians): {:.2}x", median(&walls) / median(&floor));
}
