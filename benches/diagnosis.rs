//! Benchmark: the cost of one full-disk diagnosis over SSH (the sandbox
//! sshd: this machine on loopback, key-only). The disk is a 64 MiB tmpfs in
//! the state the tests make: a log written in a loop, a deleted file held
//! open, old logs under a clean root, 2,000 small files. Prints, over N
//! diagnoses, the commands the server ran (its log's `Starting session`
//! lines: each is one round trip on the multiplexed connection), the output
//! read, and the wall time p50/p99 (which includes the fixed 2 s between the
//! two growth samples). Then one whole `nightshift heartbeat` of that check:
//! its commands over SSH (the check, the diagnosis, the dry-run preview).
//! Needs root (the tmpfs) and sshd. Run with `cargo bench --bench diagnosis`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ms, percentile};
use nightshift::sandbox::host::{SmallFs, SshHost};

const RUNS: usize = 15;

fn sessions(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains("Starting session")).count()
}

fn main() {
    if let Some(why) = nightshift::sandbox::host::missing() {
        println!("SKIP: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let vol_path = dir.path().join("vol");
    let fs = SmallFs::mount(&vol_path, "64m").expect("tmpfs");
    let vol = fs.path.clone();
    let logs = vol.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(vol.join("app/sessions")).unwrap();
    for i in 0..2_000 {
        std::fs::write(vol.join(format!("app/sessions/sess_{i}")), b"x").unwrap();
    }
    for i in 0..20 {
        let p = logs.join(format!("old-{i}.log"));
        std::fs::write(&p, vec![b'x'; 200_000]).unwrap();
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(std::time::SystemTime::now() - Duration::from_secs(30 * 86_400)).unwrap();
    }
    let spawn = |script: &str| Command::new("sh").arg("-c").arg(script).arg("sh").arg(&vol).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("sh");
    let mut writer = spawn("exec >>\"$1/app/app.log\"; while :; do echo \"ERROR upstream refused $(date +%s%N)\"; sleep 0.02; done");
    let mut holder = spawn("exec 3>\"$1/logs/huge.log\"; head -c 8000000 /dev/zero >&3; rm \"$1/logs/huge.log\"; exec sleep 600");
    std::thread::sleep(Duration::from_millis(500));

    let host = SshHost::start(&dir.path().join("sshd")).expect("sshd");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("AGENTS.md"), format!("# M\n\n```policy\nclean_roots: [{}]\n```\n", logs.display())).unwrap();
    std::fs::write(
        ws.join("HEARTBEAT.md"),
        format!("# W\n\n```heartbeat\n{}checks:\n  - name: vol\n    kind: disk\n    host: web-01\n    path: {}\n    max_used_percent: 1\n```\n", host.inventory("web-01"), vol.display()),
    )
    .unwrap();
    let loaded = nightshift::workspace::load(&ws).unwrap_or_else(|_| panic!("the workspace does not load"));
    let log = dir.path().join("sshd/sshd.log");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ctx = nightshift::checks::Context::new(ws.clone());
    ctx.remote = Some(Arc::new(nightshift::ssh::Pool::new(loaded.heartbeat.hosts.clone())));
    // The connection first (a heartbeat opens it for the check before any diagnosis).
    rt.block_on(async { ctx.remote.as_ref().unwrap().script("web-01", "true", &[], Duration::from_secs(20)).await }).expect("ssh");
    let mut times = Vec::new();
    let mut commands = Vec::new();
    let mut bytes = 0usize;
    let mut steps = Vec::new();
    for _ in 0..RUNS {
        let before = sessions(&log);
        let start = Instant::now();
        let facts = rt.block_on(nightshift::diagnosis::disk::look(&ctx, Some("web-01"), &vol, &loaded.policy, 90.0)).expect("diagnosis");
        times.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        commands.push(sessions(&log) - before);
        let lim = nightshift::diagnosis::disk::Limits { host: Some("web-01"), max_used_percent: Some(1.0), inodes_full: false, units: Vec::new() };
        let (s, _) = nightshift::diagnosis::disk::findings(&facts, &vol, &loaded.policy, &lim);
        bytes = s.iter().map(String::len).sum();
        steps = s;
    }
    times.sort();
    commands.sort_unstable();
    println!("disk diagnosis over SSH, {RUNS} runs on a 64 MiB tmpfs (log loop, held deleted file, 20 old logs, 2,000 small files):");
    println!("  commands (= round trips) per diagnosis: min {} max {}; note steps: {} ({} bytes)", commands[0], commands[RUNS - 1], steps.len(), bytes);
    println!(
        "  wall: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (of which {:.0} ms is the interval between the two growth samples)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[RUNS - 1]),
        ms(nightshift::diagnosis::disk::SAMPLE)
    );
    println!("  first step: {}", steps.first().map(String::as_str).unwrap_or(""));
    drop(ctx);

    let before = sessions(&log);
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nightshift")).arg("--workspace").arg(&ws).args(["heartbeat", "--json"]).output().expect("nightshift");
    let wall = start.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let plan: Vec<String> = v["incidents"][0]["actions"].as_array().map(|a| a.iter().filter_map(|x| x["action"].as_str().map(str::to_string)).collect()).unwrap_or_default();
    println!("one `nightshift heartbeat` of that check over SSH: {} commands, {:.0} ms wall; plan: {}", sessions(&log) - before, ms(wall), plan.join(", "));
    let _ = writer.kill();
    let _ = holder.kill();
    let _ = writer.wait();
    let _ = holder.wait();
    std::thread::sleep(Duration::from_millis(200));
}
