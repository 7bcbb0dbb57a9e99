//! The checks the seeds run: backups (real archives, built and broken here),
//! Prometheus (the real server from Debian scraping a loopback exporter),
//! cron schedules, and resource usage of this host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{HttpServer, Ws, age};

fn tar_gz(dir: &Path, name: &str) -> std::path::PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("table-{i}.sql")), format!("INSERT INTO t VALUES ({i});\n").repeat(2000)).unwrap();
    }
    let out = dir.join(format!("{name}.tar.gz"));
    let st = Command::new("tar").arg("czf").arg(&out).arg("-C").arg(&src).arg(".").status().unwrap();
    assert!(st.success());
    out
}

fn by_name(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[test]
fn backups_good_truncated_stale_small_and_wrong_sidecar() {
    let root = tempfile::tempdir().unwrap();
    let mk = |d: &str| {
        let p = root.path().join(d);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let good = tar_gz(&mk("good"), "db");
    std::fs::write(good.with_extension("gz.sha256"), format!("{}  db.tar.gz\n", sha256(&good))).unwrap();
    // An older, broken file beside it does not matter: the newest one is checked.
    let old = mk("good").join("db-old.tar.gz");
    std::fs::write(&old, b"garbage").unwrap();
    age(&old, 3);

    let trunc = tar_gz(&mk("truncated"), "db");
    let bytes = std::fs::read(&trunc).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();

    let stale = tar_gz(&mk("stale"), "db");
    age(&stale, 3);

    let side = tar_gz(&mk("sidecar"), "db");
    std::fs::write(side.with_extension("gz.sha256"), format!("{}  db.tar.gz\n", "0".repeat(64))).unwrap();

    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "checks:\n{}",
            [("good", "1d", "1KB"), ("truncated", "1d", "1"), ("stale", "1d", "1"), ("small", "1d", "10MB"), ("sidecar", "1d", "1"), ("missing", "1d", "1")]
                .iter()
                .map(|(n, age, size)| {
                    let dir = if *n == "small" { "good" } else { n };
                    format!("  - name: backup-{n}\n    kind: backup\n    path: {}/*.tar.gz\n    max_age: {age}\n    min_size: {size}\n", root.path().join(dir).display())
                })
                .collect::<String>()
        ),
    );
    let (_, v) = ws.json(&["check", "--json"]);
    let good_c = by_name(&v, "backup-good");
    assert_eq!(good_c["status"], "ok", "{good_c}");
    assert_eq!(good_c["evidence"]["tests_passed"].as_array().unwrap().len(), 3, "gzip, tar and sidecar: {good_c}");
    let expect = [
        ("backup-truncated", "gzip stream broken"),
        ("backup-stale", "old (max_age 1d)"),
        ("backup-small", "(min_size 9.5 MiB)"),
        ("backup-sidecar", "does not match the sidecar"),
        ("backup-missing", "no backup matches"),
    ];
    for (name, why) in expect {
        let c = by_name(&v, name);
        assert_eq!(c["status"], "failing", "{c}");
        assert!(c["summary"].as_str().unwrap().contains(why), "{name}: {c}");
    }
}

#[test]
fn a_tar_bomb_is_not_verifiable_and_fails_never_intact() {
    // A PAX extended header of 8 MiB (a few KiB on disk) before an ordinary file:
    // the tar reader would hold the whole record in memory and call the archive intact.
    let root = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("comment", vec![b'a'; 8 << 20].as_slice())]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(6);
    h.set_mode(0o644);
    b.append_data(&mut h, "db.sql", &b"SELECT"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    std::fs::write(root.path().join("db.tar.gz"), gz.finish().unwrap()).unwrap();
    let ws = Ws::new("mode: dry-run\n", &format!("checks:\n  - name: bomb\n    kind: backup\n    path: {}/*.tar.gz\n", root.path().display()));
    let (code, v) = ws.json(&["check", "--json"]);
    let c = by_name(&v, "bomb");
    assert_eq!((code, c["status"].as_str(), c["evidence"]["problem"].as_str()), (1, Some("failing"), Some("corrupt")), "{c}");
    assert!(c["summary"].as_str().unwrap().contains("not verifiable: an extension header of 8.0 MiB (more than 1.0 MiB)"), "{c}");
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_failed_backup_names_its_likely_cause_and_proposes_the_declared_job() {
    let root = tempfile::tempdir().unwrap();
    let f = tar_gz(root.path(), "db");
    age(&f, 2);
    let ws = Ws::new(
        "commands:\n  backup-db: /usr/local/bin/backup-db\nrules:\n  - action: run_command\n    decide: auto\n",
        &format!("checks:\n  - name: db-backup\n    kind: backup\n    path: {}/*.tar.gz\n    max_age: 1d\n    repair: backup-db\n", root.path().display()),
    );
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1);
    let inc = &v["incidents"][0];
    assert!(inc["fingerprint"].as_str().unwrap().starts_with("db-backup:backup-stale:"), "{inc}");
    assert!(inc["diagnosis"].to_string().contains("the backup job has not run"), "{inc}");
    assert_eq!(inc["actions"][0]["action"], "run_command");
    assert_eq!(inc["actions"][0]["result"], "dry-run");
}

/// Waits until Prometheus returns `n` series for `query`.
fn wait_series(url: &str, query: &str, n: usize) {
    let start = Instant::now();
    loop {
        let out = Command::new("curl").args(["-s", "-G", &format!("{url}/api/v1/query"), "--data-urlencode", &format!("query={query}")]).output();
        if let Ok(o) = out
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            && v["data"]["result"].as_array().is_some_and(|a| a.len() == n)
        {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus never scraped the exporter");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_queries_per_series_and_a_down_prometheus_is_a_check_error() {
    let exporter = HttpServer::start(200, "# TYPE demo_value gauge\ndemo_value{shard=\"a\"} 1\ndemo_value{shard=\"b\"} 5\ndemo_value{shard=\"c\"} 2\n");
    let Some(prom) = support::Prometheus::start(&exporter.addr) else {
        support::skip("prometheus", "prometheus is not installed (.ci/run installs Debian's prometheus)");
        return;
    };
    wait_series(&prom.url, "demo_value", 3);
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "checks:\n  - name: shard-load\n    kind: prometheus\n    url: {u}\n    query: demo_value\n    above: 3\n  - name: shard-quiet\n    kind: prometheus\n    url: {u}\n    query: demo_value\n    above: 10\n  - name: heartbeat-metric\n    kind: prometheus\n    url: {u}\n    query: nightshift_heartbeat_missing\n    absent: true\n",
            u = prom.url
        ),
    );
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(by_name(&v, "shard-quiet")["status"], "ok");
    let load = by_name(&v, "shard-load");
    assert_eq!(load["status"], "failing");
    assert!(load["summary"].as_str().unwrap().starts_with("1 of 3 series failing"), "{load}");
    assert_eq!(by_name(&v, "heartbeat-metric")["status"], "failing");
    let fps: Vec<String> = v["incidents"].as_array().unwrap().iter().map(|i| i["fingerprint"].as_str().unwrap().to_string()).collect();
    let shard = format!("shard-load:metric-threshold:demo_value{{instance=\"{}\",job=\"demo\",shard=\"b\"}}", exporter.addr);
    assert!(fps.contains(&shard), "one incident for the failing series, named by its labels: {fps:?}");
    assert_eq!(fps.len(), 2, "{fps:?}");

    // Prometheus stopped: an error about the check, not about the shards.
    drop(prom);
    let (code, v) = ws.json(&["heartbeat", "--all", "--json"]);
    assert_eq!(code, 1);
    let load = by_name(&v, "shard-load");
    assert_eq!(load["status"], "error", "{load}");
    assert!(load["summary"].as_str().unwrap().contains("unreachable"), "{load}");
    let fps: Vec<String> = v["incidents"].as_array().unwrap().iter().map(|i| i["fingerprint"].as_str().unwrap().to_string()).collect();
    assert!(fps.iter().any(|f| f.starts_with("shard-load:check-error:")), "{fps:?}");
    let list = ws.run(&["incidents", "list"]).stdout;
    assert!(!list.contains("resolved"), "the shard's incident must stay open while Prometheus is down:\n{list}");
}

#[test]
fn cron_checks_run_once_when_due() {
    let ws = Ws::new("mode: dry-run\n", "timezone: Europe/Berlin\nchecks:\n  - name: yearly\n    kind: exec\n    command: \"echo ran >> runs.txt\"\n    at: \"0 0 1 1 *\"\n");
    ws.run(&["heartbeat"]);
    ws.run(&["heartbeat"]);
    let runs = std::fs::read_to_string(ws.path().join("runs.txt")).unwrap();
    assert_eq!(runs.lines().count(), 1, "first run: due (never ran); second: not before next New Year");
}

#[test]
fn resource_checks_read_this_host() {
    let ws = Ws::new(
        "mode: dry-run\n",
        "checks:\n  - name: mem-ok\n    kind: memory\n    min_available_percent: 0.001\n  - name: mem-impossible\n    kind: memory\n    min_available_percent: 100\n  - name: load\n    kind: load\n    max_per_core: 1000\n  - name: cpu\n    kind: cpu\n    max_percent: 100\n    window: 200ms\n",
    );
    let (_, v) = ws.json(&["check", "--json"]);
    assert_eq!(by_name(&v, "mem-ok")["status"], "ok");
    let m = by_name(&v, "mem-impossible");
    assert_eq!(m["status"], "failing");
    assert!(m["evidence"]["total_bytes"].as_u64().unwrap() > 0);
    let load = by_name(&v, "load");
    assert_eq!(load["status"], "ok");
    assert!(load["evidence"]["cores"].as_u64().unwrap() >= 1);
    let cpu = by_name(&v, "cpu");
    assert_eq!(cpu["status"], "ok", "{cpu}");
    assert!((0.0..=100.0).contains(&cpu["evidence"]["busy_percent"].as_f64().unwrap()));
}
