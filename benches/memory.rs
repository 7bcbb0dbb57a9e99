//! Benchmark: a memory of 10,000 incidents written through the real write
//! path (atomic notes, one git commit), then `incidents search`, `incidents
//! stats` and `memory compact` as fresh processes: wall time and peak RSS.
//! The incidents are dated relative to the run (40 on each of the last 250
//! days, 36 of them resolved), so every run measures the same memory:
//! `incidents stats` (its default, the last 30 days) reads 1,200 of them,
//! `--since 365d` all 10,000, and `memory compact --older-than 30d` folds
//! the 7,920 resolved ones older than 30 days, whatever the date.
//! Run with `cargo bench --bench memory`.
#![allow(clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Utc};

use common::ms;
use nightshift::actions::Action;
use nightshift::actions::ActionResult;
use nightshift::memory::Memory;
use nightshift::memory::notes::{Attempt, Incident, IncidentStatus};
use nightshift::severity::Severity;

const N: usize = 10_000;
const CLASSES: [&str; 5] = ["disk-full", "http-down", "process-down", "cert-expiring", "backup-stale"];

/// Days in the past the incidents span (40 a day). Each is its day's whole
/// days plus 1 h to 1 h 49 min old, so none is near a cutoff of whole days.
const DAYS: usize = 250;

fn incident(i: usize, now: DateTime<Utc>) -> Incident {
    let class = CLASSES[i % CLASSES.len()];
    // Day `i % 250`; the first of every ten rounds of 250 stays open: 9 in 10 resolved, 36 a day.
    let at = now - chrono::Duration::days((i % DAYS) as i64) - chrono::Duration::hours(1) - chrono::Duration::minutes((i % 50) as i64);
    let detected = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resolved = (!(i / DAYS).is_multiple_of(10)).then(|| (at + chrono::Duration::seconds(30)).format("%Y-%m-%dT%H:%M:%SZ").to_string());
    Incident {
        id: format!("{}-web-{:02}-{class}-{i}", at.format("%Y-%m-%d"), i % 40),
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
    let now = Utc::now();
    for i in 0..N {
        mem.write_incident(&incident(i, now)).expect("write");
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
        let out = dir.path().join("out.txt");
        cmd.stdout(std::fs::File::create(&out).expect("out"));
        let (wall, rss, code) = common::measure_into(&mut cmd);
        assert_eq!(code, 0, "{args:?} failed");
        let said = std::fs::read_to_string(&out).unwrap_or_default();
        let first = said.lines().next().unwrap_or("").chars().take(90).collect::<String>();
        println!("  {:<42} {:>8.1} ms  peak RSS {:>6.1} MiB  | {first}", args.join(" "), ms(wall), rss as f64 / 1024.0);
    };
    run(&["incidents", "search", "web-07", "disk"]);
    run(&["incidents", "search", "rotated"]);
    run(&["incidents", "stats"]);
    run(&["incidents", "stats", "--since", "365d"]);
    run(&["incidents", "list"]);
    run(&["memory", "compact", "--older-than", "30d"]);
    run(&["incidents", "search", "web-07", "disk"]);
    run(&["incidents", "stats"]);
    run(&["incidents", "stats", "--since", "365d"]);
}
