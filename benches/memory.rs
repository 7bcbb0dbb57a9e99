//! Benchmark: a memory of 10,000 incidents written through the real write
//! path (atomic notes, one git commit), then `incidents search`, `incidents
//! stats` and `memory compact` as fresh processes: wall time and peak RSS.
//! Run with `cargo bench --bench memory`.
#![allow(clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Instant;

use common::{measure, ms};
use nightshift::actions::Action;
use nightshift::memory::Memory;
use nightshift::memory::audit::ActionResult;
use nightshift::memory::notes::{Attempt, Incident, IncidentStatus};
use nightshift::workspace::heartbeat::Severity;

const N: usize = 10_000;
const CLASSES: [&str; 5] = ["disk-full", "http-down", "process-down", "cert-expiring", "backup-stale"];

fn incident(i: usize) -> Incident {
    let class = CLASSES[i % CLASSES.len()];
    let day = 1 + i % 28;
    let month = 1 + (i / 28) % 10;
    let detected = format!("2026-{month:02}-{day:02}T03:{:02}:00Z", i % 60);
    let resolved = (!i.is_multiple_of(10)).then(|| format!("2026-{month:02}-{day:02}T03:{:02}:30Z", i % 60));
    Incident {
        id: format!("2026-{month:02}-{day:02}-web-{:02}-{class}-{i}", i % 40),
        title: format!("{class} on web-{:02} (check {})", i % 40, i % 7),
        fingerprint: format!("check-{}:{class}:web-{:02}", i % 7, i % 40),
        class: class.into(),
        target: format!("web-{:02}", i % 40),
        check: format!("check-{} (disk)", i % 7),
        failing_since: Some(detected.clone()),
        attempts: vec![Attempt {
            at: detected.clone(),
            action: Action::CleanLogs { root: format!("/var/log/app-{}", i % 3).into(), host: None },
            result: if i.is_multiple_of(9) { ActionResult::Failed } else { ActionResult::Ok },
            route: "policy".into(),
        }],
        tokens: 0,
        recalled_from: None,
        severity: Severity::Warning,
        status: if resolved.is_some() { IncidentStatus::Resolved } else { IncidentStatus::NeedsHuman },
        detected: detected.clone(),
        last_seen: detected,
        resolved,
        occurrences: 1,
        evidence: format!("{}% used of /var (limit 80%)\n{{\"used_percent\": {}}}", 80 + i % 20, 80 + i % 20),
        diagnosis: vec![format!("largest under `/var`: `/var/log` {} MiB", i % 900), "likely cause: logs not rotated".into()],
        actions: vec![format!("clean_logs on `/var/log/app-{}`: auto → ok", i % 3)],
        prevention: vec!["rotate and compress logs daily".into()],
        related: Vec::new(),
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("AGENTS.md"), "```policy\nmode: dry-run\n```\n").expect("write");
    std::fs::write(dir.path().join("HEARTBEAT.md"), "```heartbeat\nchecks: []\n```\n").expect("write");
    let mem = Memory::open(dir.path()).expect("memory");
    let start = Instant::now();
    for i in 0..N {
        mem.write_incident(&incident(i)).expect("write");
    }
    let written = start.elapsed();
    let start = Instant::now();
    mem.commit("10,000 generated incidents").expect("commit");
    let committed = start.elapsed();
    println!("memory of {N} incidents: written in {:.1} s (atomic, fsynced), committed in {:.1} s", written.as_secs_f64(), committed.as_secs_f64());
    let bin = env!("CARGO_BIN_EXE_nightshift");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.arg("--workspace").arg(dir.path()).args(args);
        let (wall, rss, code) = measure(&mut cmd);
        assert_eq!(code, 0, "{args:?} failed");
        println!("  {:<42} {:>8.1} ms  peak RSS {:>6.1} MiB", args.join(" "), ms(wall), rss as f64 / 1024.0);
    };
    run(&["incidents", "search", "web-07", "disk"]);
    run(&["incidents", "search", "rotated"]);
    run(&["incidents", "stats", "--since", "3650d"]);
    run(&["incidents", "list"]);
    run(&["memory", "compact", "--older-than", "30d"]);
    run(&["incidents", "search", "web-07", "disk"]);
    run(&["incidents", "stats", "--since", "3650d"]);
}
