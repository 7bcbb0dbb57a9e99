//! Benchmark: what hostile inputs cost a heartbeat pass. Each run is a fresh
//! `nightshift heartbeat --all` process, measured alone (wall time, its own
//! peak RSS from wait4): an exec check whose command prints 1.5 GB and then
//! fails, a backup check on a crafted .tar.gz (a PAX extended header of
//! 1 GiB and a 3.5 GiB file of zeros, 4.5 MiB on disk), one on a gzip bomb
//! (4.5 GiB of zeros, 4.5 MiB on disk), and the exec and the PAX archive in
//! one pass. Prints each run's status and the check summaries. Then an OTLP
//! collector that is down: a healthy pass with no endpoint, with one that
//! refuses connections, and with one that accepts and never answers (the
//! export timeout, 5 s, bounds it), 5 runs each.
//! Run with `cargo bench --bench bounds` (`-- otlp`: only the collector);
//! `NIGHTSHIFT_BIN=path` measures another build of the binary (an older
//! one, for a before/after).
#![allow(clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{measure_into, ms};

/// A .tar.gz in one gzip member: a PAX record of `pax` bytes (none when 0), then a file of `zeros` zero bytes.
fn crafted(path: &Path, pax: u64, zeros: u64) {
    let file = std::fs::File::create(path).expect("create");
    let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::best());
    let header = |size: u64, kind: tar::EntryType, name: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).expect("name");
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h.set_cksum();
        h.as_bytes().to_vec()
    };
    let pad = |n: u64| vec![0u8; ((512 - n % 512) % 512) as usize];
    if pax > 0 {
        // One record: "<len> comment=aaaa…\n", its length counting itself.
        let value = pax - 30;
        let mut len = value + 10;
        loop {
            let total = len.to_string().len() as u64 + 1 + "comment=".len() as u64 + value + 1;
            if total == len {
                break;
            }
            len = total;
        }
        gz.write_all(&header(len, tar::EntryType::XHeader, "PaxHeaders/db.sql")).expect("write");
        gz.write_all(format!("{len} comment=").as_bytes()).expect("write");
        let chunk = vec![b'a'; 1 << 20];
        let mut left = value;
        while left > 0 {
            let n = left.min(chunk.len() as u64);
            gz.write_all(&chunk[..n as usize]).expect("write");
            left -= n;
        }
        gz.write_all(b"\n").expect("write");
        gz.write_all(&pad(len)).expect("write");
    }
    gz.write_all(&header(zeros, tar::EntryType::Regular, "db.sql")).expect("write");
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        gz.write_all(&chunk[..n as usize]).expect("write");
        left -= n;
    }
    gz.write_all(&pad(zeros)).expect("write");
    gz.write_all(&[0u8; 1024]).expect("write");
    gz.finish().expect("finish").flush().expect("flush");
}

fn run(bin: &str, dir: &Path, checks: &str) -> String {
    let ws = tempfile::tempdir_in(dir).expect("tempdir");
    std::fs::write(ws.path().join("AGENTS.md"), "```policy\nmode: dry-run\n```\n").expect("write");
    std::fs::write(ws.path().join("HEARTBEAT.md"), format!("```heartbeat\nchecks:\n{checks}```\n")).expect("write");
    let report = ws.path().join("report.json");
    let mut cmd = Command::new(bin);
    cmd.arg("--workspace").arg(ws.path()).args(["heartbeat", "--all", "--json"]).env("GIT_AUTHOR_NAME", "bench").env("GIT_COMMITTER_NAME", "bench");
    cmd.stdout(std::fs::File::create(&report).expect("report"));
    let (wall, rss_kib, code) = measure_into(&mut cmd);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default()).unwrap_or_default();
    let summaries: Vec<String> = v["checks"]
        .as_array()
        .map(|a| a.iter().map(|c| format!("{}: {}", c["status"].as_str().unwrap_or("?"), c["summary"].as_str().unwrap_or("?").chars().take(110).collect::<String>())).collect())
        .unwrap_or_default();
    format!("{:>8.0} ms {:>8.1} MiB peak RSS, exit {code}\n      {}", ms(wall), rss_kib as f64 / 1024.0, summaries.join("\n      "))
}

/// Wall time of `heartbeat --all` on a healthy workspace with the
/// environment `env`: (median, max) of 5 runs.
fn traced(bin: &str, dir: &Path, env: &[(&str, String)]) -> (f64, f64) {
    let ws = tempfile::tempdir_in(dir).expect("tempdir");
    std::fs::write(ws.path().join("AGENTS.md"), "```policy\nmode: dry-run\n```\n").expect("write");
    std::fs::write(ws.path().join("HEARTBEAT.md"), "```heartbeat\nchecks:\n  - name: ok\n    kind: exec\n    command: \"true\"\n```\n").expect("write");
    let mut walls: Vec<f64> = (0..5)
        .map(|_| {
            let mut cmd = Command::new(bin);
            cmd.arg("--workspace").arg(ws.path()).args(["heartbeat", "--all"]).env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
            for (k, v) in env {
                cmd.env(k, v);
            }
            let (wall, _, code) = common::measure(&mut cmd);
            assert_eq!(code, 0, "a healthy pass failed");
            ms(wall)
        })
        .collect();
    walls.sort_by(f64::total_cmp);
    (walls[2], walls[4])
}

fn otlp(bin: &str, dir: &Path) {
    // Refused: a port nothing listens on. Silent: a listener that accepts and never answers.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    println!("an OTLP collector that is down, one healthy `heartbeat --all` (median / max of 5):");
    let (m, x) = traced(bin, dir, &[]);
    println!("  no endpoint:                         {m:>7.0} / {x:>7.0} ms");
    let (m, x) = traced(bin, dir, &[("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{refused}"))]);
    println!("  endpoint refusing connections:       {m:>7.0} / {x:>7.0} ms");
    let (m, x) = traced(bin, dir, &[("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{silent_addr}"))]);
    println!("  endpoint accepting, never answering: {m:>7.0} / {x:>7.0} ms (the export timeout is 5 s)");
}

fn main() {
    let bin = std::env::var("NIGHTSHIFT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_nightshift").to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::args().any(|a| a == "otlp") {
        otlp(&bin, dir.path());
        return;
    }
    let backups = dir.path().join("backups");
    let bombs = dir.path().join("bombs");
    std::fs::create_dir_all(&backups).expect("mkdir");
    std::fs::create_dir_all(&bombs).expect("mkdir");
    let archive = backups.join("db.tar.gz");
    crafted(&archive, 1 << 30, 3584 << 20);
    crafted(&bombs.join("db.tar.gz"), 0, 4608 << 20);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / (1 << 20) as f64).unwrap_or(0.0);
    let exec = "  - name: loud\n    kind: exec\n    command: \"yes | head -c 1500000000; exit 1\"\n    timeout: 5m\n";
    let backup = format!("  - name: backup\n    kind: backup\n    path: {}/*.tar.gz\n", backups.display());
    let bomb = format!("  - name: bomb\n    kind: backup\n    path: {}/*.tar.gz\n", bombs.display());
    println!("hostile inputs to one `heartbeat --all` pass of {bin}:");
    println!("  crafted archive: {:.1} MiB on disk (PAX record 1 GiB, then 3.5 GiB of zeros)", size(&archive));
    println!("  gzip bomb: {:.1} MiB on disk (4.5 GiB of zeros in one file)", size(&bombs.join("db.tar.gz")));
    println!("  exec printing 1.5 GB:   {}", run(&bin, dir.path(), exec));
    println!("  backup, crafted PAX:    {}", run(&bin, dir.path(), &backup));
    println!("  backup, gzip bomb:      {}", run(&bin, dir.path(), &bomb));
    println!("  exec and PAX, one pass: {}", run(&bin, dir.path(), &format!("{exec}{backup}")));
    otlp(&bin, dir.path());
}
