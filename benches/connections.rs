//! Benchmark: `nightshift serve` under 1,000 slow clients on loopback. Each
//! client sends part of a request head and then one header line a second,
//! never finishing it (slowloris); a client the daemon closes reconnects at
//! once. For 20 s a probe asks `/healthz` on a fresh connection every 250 ms.
//! Prints how many probes were answered and their latency, the passes the
//! daemon ran meanwhile (a check is due every second), and how often it
//! closed a slow client. Twice: with the file descriptors the shell gives,
//! and with `ulimit -n 128`. Run with `cargo bench --bench connections`.
#![allow(clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ms, percentile};

const SLOW: usize = 1_000;
const WINDOW: Duration = Duration::from_secs(20);
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh connection's `GET /healthz`: (status, latency, passes so far).
fn healthz(addr: SocketAddr) -> Option<(u16, Duration, u64)> {
    let start = Instant::now();
    let mut c = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    c.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    c.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    let passes = serde_json::from_str::<serde_json::Value>(body).ok()?["passes"].as_u64()?;
    Some((status, start.elapsed(), passes))
}

fn slow_connect(addr: SocketAddr) -> Option<TcpStream> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n").ok()?;
    c.set_nonblocking(true).ok()?;
    Some(c)
}

/// Whether the daemon has closed `c` (or reset it).
fn closed(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// Keeps `SLOW` slow clients open until `stop`; returns how many times one was closed and reopened.
fn slow_clients(addr: SocketAddr, stop: Arc<AtomicBool>, reopened: Arc<AtomicU64>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut conns: Vec<Option<TcpStream>> = Vec::with_capacity(SLOW);
        for _ in 0..SLOW {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            conns.push(slow_connect(addr));
        }
        let opened = conns.iter().filter(|c| c.is_some()).count();
        while !stop.load(Ordering::Relaxed) {
            let round = Instant::now();
            for slot in conns.iter_mut() {
                let alive = slot.as_mut().is_some_and(|c| !closed(c) && c.write_all(b"X-Slow: 1\r\n").is_ok());
                if !alive && !stop.load(Ordering::Relaxed) {
                    *slot = slow_connect(addr);
                    reopened.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_secs(1).saturating_sub(round.elapsed()));
        }
        opened
    })
}

fn run(label: &str, open_files: Option<u32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("AGENTS.md"), "```policy\nmode: dry-run\n```\n").expect("write");
    std::fs::write(dir.path().join("HEARTBEAT.md"), "```heartbeat\nchecks:\n  - name: shell\n    kind: exec\n    command: \"true\"\n    every: 1s\n```\n").expect("write");
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let limit = open_files.map_or_else(|| "true".to_string(), |n| format!("ulimit -n {n}"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{limit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_nightshift"))
        .arg("--workspace")
        .arg(dir.path())
        .args(["serve", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let start = Instant::now();
    while healthz(addr).is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, _, passes_before) = healthz(addr).expect("healthz");

    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicU64::new(0));
    let clients = slow_clients(addr, stop.clone(), reopened.clone());
    let start = Instant::now();
    let (mut answered, mut probes, mut lat, mut passes) = (0, 0, Vec::new(), passes_before);
    while start.elapsed() < WINDOW {
        let probe = Instant::now();
        probes += 1;
        match healthz(addr) {
            Some((200, d, p)) => {
                answered += 1;
                lat.push(d);
                passes = passes.max(p);
            }
            _ => lat.push(probe.elapsed()),
        }
        std::thread::sleep(PROBE_EVERY.saturating_sub(probe.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    let opened = clients.join().expect("slow clients");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let stopping = Instant::now();
    let exited = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            _ if stopping.elapsed() > Duration::from_secs(15) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    lat.sort();
    println!("{label}: {opened} slow clients opened of {SLOW}, {} s", WINDOW.as_secs());
    println!("  /healthz answered {answered}/{probes} probes; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)), ms(lat[lat.len() - 1]));
    println!("  passes during the window: {} (a check every second)", passes - passes_before);
    println!("  slow clients closed by serve and reopened: {}", reopened.load(Ordering::Relaxed));
    println!("  SIGTERM: exit {exited:?} after {:.0} ms", ms(stopping.elapsed()));
}

fn main() {
    println!("`nightshift serve` under {SLOW} slow clients (loopback):");
    run("open files as given", None);
    run("ulimit -n 128", Some(128));
}
