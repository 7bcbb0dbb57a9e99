//! Hosts over SSH against a real sshd (Debian openssh-server) on a loopback
//! port: key-only, a test known_hosts, the "remote" host being this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Ws, age};

/// The drill's sandbox host (a real sshd on a loopback port, key-only, a
/// known_hosts pinning its key) in a test's own directory.
struct Sshd {
    host: nightshift::sandbox::host::SshHost,
    port: u16,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    nightshift::sandbox::host::keygen(path).unwrap();
}

impl Sshd {
    /// None where there is no sshd (.ci/run installs openssh-server).
    fn start() -> Option<Self> {
        if !Path::new("/usr/sbin/sshd").exists() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let host = nightshift::sandbox::host::SshHost::start(dir.path()).unwrap();
        Some(Self { port: host.port, host, dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn hosts(&self) -> String {
        self.host.inventory("web-01")
    }
}

fn by_name(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap_or_else(|| panic!("{name}: {v}"))
}

#[test]
fn remote_checks_read_the_host_over_ssh() {
    let Some(sshd) = Sshd::start() else {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let pidfile = data.path().join("app.pid");
    let mut app = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(&pidfile, app.id().to_string()).unwrap();
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "{}checks:\n  - name: r-disk\n    kind: disk\n    host: web-01\n    path: {}\n    max_used_percent: 99.9\n  - name: r-exec\n    kind: exec\n    host: web-01\n    command: \"test -d /proc && echo fine\"\n  - name: r-load\n    kind: load\n    host: web-01\n    max_per_core: 1000\n  - name: r-mem\n    kind: memory\n    host: web-01\n    min_available_percent: 0.01\n  - name: r-app\n    kind: service\n    host: web-01\n    pidfile: {}\n",
            sshd.hosts(),
            data.path().display(),
            pidfile.display()
        ),
    );
    let (code, v) = ws.json(&["check", "--json"]);
    assert_eq!(code, 0, "{v}");
    for name in ["r-disk", "r-exec", "r-load", "r-mem", "r-app"] {
        assert_eq!(by_name(&v, name)["status"], "ok", "{}", by_name(&v, name));
    }
    assert!(by_name(&v, "r-disk")["target"].as_str().unwrap().starts_with("web-01:"), "{v}");
    assert!(by_name(&v, "r-disk")["evidence"]["used_percent"].as_f64().unwrap() > 0.0);
    app.kill().unwrap();
    app.wait().unwrap();
    let (code, v) = ws.json(&["check", "r-app", "--json"]);
    assert_eq!((code, by_name(&v, "r-app")["status"].as_str()), (1, Some("failing")), "{v}");
}

#[test]
fn a_host_behind_a_jump_host_is_reached_through_it_with_the_jump_hosts_own_key() {
    let (Some(target), Some(bastion)) = (Sshd::start(), Sshd::start()) else {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    };
    // Two sshds, each with its own host key, user key and known_hosts: the
    // jump's connection must use the bastion's, the last hop web-01's.
    let hosts = format!(
        "{}  - name: web-01\n    address: 127.0.0.1\n    port: {}\n    user: root\n    key_file: {}\n    known_hosts: {}\n    jump: bastion\n",
        bastion.host.inventory("bastion"),
        target.port,
        target.path("user_key").display(),
        target.path("known_hosts").display()
    );
    let ws = Ws::new("mode: dry-run\n", &format!("{hosts}checks:\n  - name: r-exec\n    kind: exec\n    host: web-01\n    command: \"echo reached\"\n"));
    let (code, v) = ws.json(&["check", "--json"]);
    assert_eq!((code, by_name(&v, "r-exec")["status"].as_str()), (0, Some("ok")), "{v}");
    let log = |s: &Sshd| std::fs::read_to_string(s.path("sshd.log")).unwrap_or_default();
    // Nothing but this run connects to the bastion: its login is the jump.
    assert!(log(&bastion).contains("Accepted publickey for root from 127.0.0.1"), "the bastion saw no login: {}", log(&bastion));
    assert!(log(&target).contains("Accepted publickey for root from 127.0.0.1"), "{}", log(&target));

    // With the bastion gone web-01 is unreachable, though its sshd still listens: the way in was the jump.
    drop(bastion);
    assert!(std::net::TcpStream::connect(("127.0.0.1", target.port)).is_ok());
    let (code, v) = ws.json(&["check", "--json"]);
    let c = by_name(&v, "r-exec");
    assert_eq!((code, c["status"].as_str()), (1, Some("error")), "{v}");
    assert!(c["summary"].as_str().unwrap().contains("ssh to web-01"), "{c}");
}

#[test]
fn remote_output_is_read_through_the_cap_too() {
    let Some(sshd) = Sshd::start() else {
        eprintln!("SKIP: no sshd (apt-get install openssh-server)");
        return;
    };
    let ws = Ws::new(
        "mode: dry-run\n",
        &format!(
            "{}checks:\n  - name: r-loud\n    kind: exec\n    host: web-01\n    command: \"echo FIRST-LINE; yes | head -c 50000000; echo; echo LAST-LINE; exit 4\"\n    timeout: 2m\n",
            sshd.hosts()
        ),
    );
    let (code, v) = ws.json(&["check", "--json"]);
    let c = by_name(&v, "r-loud");
    assert_eq!((code, c["status"].as_str()), (1, Some("failing")), "{c}");
    assert!(c["summary"].as_str().unwrap().ends_with("exited 4"), "{c}");
    let stdout = c["evidence"]["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("FIRST-LINE\n") && stdout.ends_with("LAST-LINE\n") && stdout.contains(" bytes truncated]") && stdout.len() <= 2100, "{stdout}");
}

#[test]
fn a_changed_host_key_is_a_clear_check_error() {
    let Some(sshd) = Sshd::start() else {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    };
    keygen(&sshd.path("other_key"));
    let other = std::fs::read_to_string(sshd.path("other_key.pub")).unwrap();
    std::fs::write(sshd.path("known_hosts"), format!("[127.0.0.1]:{} {other}", sshd.port)).unwrap();
    let ws = Ws::new("mode: dry-run\n", &format!("{}checks:\n  - name: r-exec\n    kind: exec\n    host: web-01\n    command: \"true\"\n", sshd.hosts()));
    let (code, v) = ws.json(&["check", "--json"]);
    assert_eq!(code, 1);
    let c = by_name(&v, "r-exec");
    assert_eq!(c["status"], "error", "{c}");
    assert!(c["summary"].as_str().unwrap().contains("host key is unknown or has changed"), "{c}");
}

#[test]
fn a_full_remote_disk_is_cleaned_over_ssh_only_under_the_root() {
    let Some(sshd) = Sshd::start() else {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("logs");
    let outside = data.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    for i in 0..3 {
        let p = root.join(format!("old-{i}.log"));
        std::fs::write(&p, vec![b'x'; 10_000]).unwrap();
        age(&p, 30);
    }
    std::fs::write(root.join("fresh.log"), b"today").unwrap();
    std::fs::write(root.join("core.777"), vec![0u8; 5000]).unwrap();
    let kept = outside.join("old.log");
    std::fs::write(&kept, b"keep").unwrap();
    age(&kept, 30);
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    let ws = Ws::new(
        &format!("clean_roots: [{}]\nrules:\n  - action: clean_logs\n    decide: auto\n", root.display()),
        &format!("{}checks:\n  - name: r-disk\n    kind: disk\n    host: web-01\n    path: {}\n    max_used_percent: 1\n", sshd.hosts(), data.path().display()),
    );
    let (code, v) = ws.json(&["heartbeat", "--json"]);
    assert_eq!(code, 1);
    let diagnosis = v["incidents"][0]["diagnosis"].to_string();
    assert!(diagnosis.contains("largest under") && diagnosis.contains("logs"), "{diagnosis}");
    assert!(diagnosis.contains("under clean root") && diagnosis.contains("3 log file(s) older than 7 days"), "the remote listing counts the old logs under the root: {diagnosis}");
    assert!(diagnosis.contains("1 symlink(s) under the path, reported and not followed"), "{diagnosis}");
    let a = &v["incidents"][0]["actions"][0];
    assert_eq!((a["action"].as_str(), a["result"].as_str()), (Some("clean_logs"), Some("dry-run")), "{a}");
    assert!(a["outcome"].as_str().unwrap().contains("delete 3 old log(s)") && a["outcome"].as_str().unwrap().contains("remove 1 core dump(s)"), "{a}");
    assert!(a["target"].as_str().unwrap().starts_with("web-01:"), "{a}");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 6, "dry-run touched files");
    let (_, v) = ws.json(&["heartbeat", "--execute", "--all", "--json"]);
    let a = &v["incidents"][0]["actions"][0];
    assert!(a["outcome"].as_str().unwrap().starts_with("deleted 3 old log(s)"), "{a}");
    let mut left: Vec<String> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    left.sort();
    assert_eq!(left, ["fresh.log", "link"]);
    assert!(kept.exists(), "a symlink out of the root was followed");
}

#[test]
fn a_stopped_service_is_restarted_over_ssh() {
    let Some(sshd) = Sshd::start() else {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    };
    if !Path::new("/usr/sbin/service").exists() || Path::new("/run/systemd/system").exists() {
        // CI's machines run no systemd; a developer's systemd host cannot run this one.
        support::skip("a SysV service manager", "this test drives a SysV service through `service` (a host without systemd, as CI's)");
        return;
    }
    // A SysV service of our own: start/stop/status/restart of a sleeping process with a pidfile.
    let name = format!("ns-test-{}", std::process::id());
    let pid = format!("/run/{name}.pid");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  start) nohup sleep 300 >/dev/null 2>&1 & echo $! > {pid} ;;\n  stop) [ -f {pid} ] && kill $(cat {pid}) 2>/dev/null; rm -f {pid} ;;\n  restart) $0 stop; $0 start ;;\n  status) [ -f {pid} ] && kill -0 $(cat {pid}) 2>/dev/null ;;\nesac\n"
    );
    let init = PathBuf::from(format!("/etc/init.d/{name}"));
    std::fs::write(&init, script).unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    struct Cleanup(PathBuf, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new(&self.0).arg("stop").status();
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::remove_file(&self.1);
        }
    }
    let _cleanup = Cleanup(init.clone(), pid.clone());
    let ws = Ws::new("rules:\n  - action: restart_service\n    decide: auto\n", &format!("{}checks:\n  - name: app\n    kind: service\n    host: web-01\n    unit: {name}\n", sshd.hosts()));
    let (code, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert_eq!(code, 1, "{v}");
    let inc = &v["incidents"][0];
    let a = &inc["actions"][0];
    assert_eq!((a["action"].as_str(), a["decision"].as_str(), a["result"].as_str()), (Some("restart_service"), Some("auto"), Some("ok")), "{v}");
    assert_eq!(inc["status"], "resolved");
    assert!(Command::new(&init).arg("status").status().unwrap().success(), "the service is not running");
}

#[test]
fn a_remote_pidfile_naming_another_program_fails_and_a_stale_one_brings_its_log_over_ssh() {
    let Some(sshd) = Sshd::start() else {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let (pidfile, log) = (data.path().join("billing.pid"), data.path().join("billing.log"));
    std::fs::write(&log, "billing: listening on :9000\nbilling: panic: runtime error: index out of range\n").unwrap();
    // The billing daemon is gone; its pid now belongs to `sleep`.
    let mut other = Command::new("sleep").arg("120").spawn().unwrap();
    std::fs::write(&pidfile, other.id().to_string()).unwrap();
    let ws = Ws::new(
        &format!("commands:\n  start-billing: \"ssh web-01 'nohup /opt/billing/bin/billing >> {} 2>&1 &'\"\n", log.display()),
        &format!("{}checks:\n  - name: billing\n    kind: service\n    host: web-01\n    pidfile: {}\n    start: start-billing\n", sshd.hosts(), pidfile.display()),
    );
    let (code, v) = ws.json(&["check", "--json"]);
    let c = by_name(&v, "billing");
    assert_eq!((code, c["status"].as_str(), c["evidence"]["problem"].as_str()), (1, Some("failing"), Some("other-program")), "{v}");
    assert!(c["summary"].as_str().unwrap().contains("on web-01 is not the service: it is `sleep`"), "{c}");
    other.kill().unwrap();
    other.wait().unwrap();
    let (_, v) = ws.json(&["check", "--json"]);
    let c = by_name(&v, "billing");
    assert_eq!(c["evidence"]["problem"], "stale", "{c}");
    assert_eq!(c["evidence"]["log"], log.display().to_string(), "{c}");
    assert_eq!(c["evidence"]["log_tail"][1], "billing: panic: runtime error: index out of range", "{c}");
}
