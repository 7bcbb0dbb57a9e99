//! The full-disk diagnosis, on real states made the way they happen: a
//! process writing a log in a loop, a deleted file a running process still
//! holds, a directory of small session files using up the inodes, real core
//! dumps of a program that aborts, a disk full of nothing clean_logs may
//! remove. Each on a small tmpfs (the sandbox host's helper), here and, for
//! the first two, over SSH (the sandbox sshd: this machine on loopback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nightshift::sandbox::host::{SmallFs, SshHost};
use support::Ws;

/// A tmpfs of `size` (and `inodes`) in a directory of its own, or None (the test says why).
fn small_fs(size: &str, inodes: Option<u32>) -> Option<(tempfile::TempDir, SmallFs)> {
    if let Some(why) = nightshift::sandbox::host::missing() {
        support::skip("a small tmpfs", &why);
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount_with(&dir.path().join("vol"), size, inodes).unwrap();
    Some((dir, fs))
}

fn sshd(dir: &Path) -> SshHost {
    SshHost::start(&dir.join("sshd")).unwrap()
}

/// A child killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        // Its last child (a `sleep` of the loop) lets go of the filesystem a moment later.
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spawn(script: &str, arg: &Path) -> Proc {
    Proc(Command::new("sh").arg("-c").arg(script).arg("sh").arg(arg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
}

/// Fills `path` with `mb` MiB of data nobody may delete (a database, say).
fn fill(path: &Path, mb: usize) -> Vec<u8> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..mb * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(path, &data).unwrap();
    data
}

fn policy(root: &Path, extra: &str) -> String {
    format!(
        "clean_roots: [{}]\nwebhooks:\n  - name: n8n\n    url: http://127.0.0.1:9/resize\n    severities: [critical]\nresize_volume:\n  webhook: n8n\nrules:\n  - action: clean_logs\n    decide: auto\n{extra}",
        root.display()
    )
}

fn check(path: &Path, host: Option<&SshHost>, limits: &str) -> String {
    match host {
        Some(h) => format!("{}checks:\n  - name: vol\n    kind: disk\n    host: web-01\n    path: {}\n{limits}", h.inventory("web-01"), path.display()),
        None => format!("checks:\n  - name: vol\n    kind: disk\n    path: {}\n{limits}", path.display()),
    }
}

/// The incident's diagnosis (one string), its planned actions (kind, decision) and its note.
fn incident(ws: &Ws, args: &[&str]) -> (String, Vec<(String, String)>, String) {
    let (code, v) = ws.json(args);
    assert_eq!(code, 1, "{v}");
    let inc = &v["incidents"][0];
    let diagnosis = inc["diagnosis"].as_array().filter(|d| !d.is_empty()).unwrap_or_else(|| panic!("{v}")).iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n");
    let actions = inc["actions"].as_array().unwrap().iter().map(|a| (a["action"].as_str().unwrap().to_string(), a["decision"].as_str().unwrap_or("").to_string())).collect();
    let note = std::fs::read_to_string(&ws.incident_files()[0]).unwrap();
    (diagnosis, actions, note)
}

/// The repairs planned (telling the humans comes with every incident).
fn kinds(actions: &[(String, String)]) -> Vec<&str> {
    actions.iter().map(|a| a.0.as_str()).filter(|k| *k != "notify").collect()
}

/// A service stuck in an error loop writes its log as fast as it can; the
/// disk fills with the same error. The note names the file, its writer, its
/// rate and the error (redacted, unable to forge a heading); the plan holds
/// no clean_logs (nothing old to clean) and asks for the volume to grow.
fn log_loop(remote: bool) {
    let Some((dir, fs)) = small_fs("16m", None) else { return };
    let vol = fs.path.clone();
    let host = remote.then(|| sshd(dir.path()));
    let db = vol.join("db/data.bin");
    let kept = fill(&db, 9);
    std::fs::create_dir_all(vol.join("app")).unwrap();
    std::fs::create_dir_all(vol.join("logs")).unwrap();
    let pad = "x".repeat(900);
    let _writer =
        spawn(&format!("exec >>\"$1/app/app.log\"; i=0; while :; do echo \"ERROR db connect refused password=hunter2 attempt $i {pad}\"; echo '## Actions taken'; i=$((i+1)); sleep 0.01; done"), &vol);
    std::thread::sleep(Duration::from_millis(500));
    let ws = Ws::new(&policy(&vol.join("logs"), ""), &check(&vol, host.as_ref(), "    max_used_percent: 50\n"));
    let (diagnosis, actions, note) = incident(&ws, &["heartbeat", "--json"]);
    let first = diagnosis.lines().next().unwrap();
    assert!(first.contains("app/app.log") && first.contains("is growing at") && first.contains("error loop"), "the sentence names the growing log: {diagnosis}");
    assert!(diagnosis.contains("written by `sh` (pid "), "the writer is named: {diagnosis}");
    assert!(diagnosis.contains("last lines of") && diagnosis.contains("ERROR db connect refused"), "its last lines: {diagnosis}");
    assert!(!note.contains("hunter2") && note.contains("[REDACTED]"), "the log's secret reaches the note: {note}");
    assert_eq!(note.lines().filter(|l| l.starts_with("## Actions taken")).count(), 1, "a log line forged a heading: {note}");
    assert!(diagnosis.contains("nothing for clean_logs there, so it is not planned"), "{diagnosis}");
    assert_eq!(kinds(&actions), ["resize_volume"], "only the expansion is useful: {actions:?}");
    assert_eq!(actions[0].1, "confirm", "a volume grows when a human confirms: {actions:?}");
    assert_eq!(std::fs::read(&db).unwrap(), kept, "the database changed");
}

#[test]
fn a_log_written_in_a_loop_is_named_with_its_writer_rate_and_error() {
    log_loop(false);
}

#[test]
fn a_log_written_in_a_loop_is_named_over_ssh() {
    if !Path::new("/usr/sbin/sshd").exists() {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    }
    log_loop(true);
}

/// Someone deleted a big log its writer still holds: `df` counts it, `du`
/// cannot see it, and cleaning frees nothing. The note names the holder; the
/// plan is no clean_logs (a human truncates through the descriptor, nightshift
/// may not restart an undeclared process).
fn held_open(remote: bool) {
    let Some((dir, fs)) = small_fs("16m", None) else { return };
    let vol = fs.path.clone();
    let host = remote.then(|| sshd(dir.path()));
    std::fs::create_dir_all(vol.join("logs")).unwrap();
    let old = vol.join("logs/old.log");
    std::fs::write(&old, b"last month\n").unwrap();
    let kept = std::fs::read(&old).unwrap();
    let _holder = spawn("exec 3>\"$1/logs/huge.log\"; head -c 10000000 /dev/zero >&3; rm \"$1/logs/huge.log\"; exec sleep 120", &vol);
    let pid = _holder.0.id();
    for _ in 0..100 {
        if std::fs::read_link(format!("/proc/{pid}/fd/3")).is_ok_and(|l| l.to_string_lossy().ends_with("(deleted)"))
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ws = Ws::new(&policy(&vol.join("logs"), ""), &check(&vol, host.as_ref(), "    max_used_percent: 50\n"));
    let (diagnosis, actions, _) = incident(&ws, &["heartbeat", "--json"]);
    let first = diagnosis.lines().next().unwrap();
    assert!(first.starts_with("Deleted files still held open") && first.contains(&format!("(`sleep` pid {pid})")), "the sentence names the holder: {diagnosis}");
    assert!(diagnosis.contains("huge.log") && diagnosis.contains(&format!("held by `sleep` (pid {pid}, fd 3)")), "{diagnosis}");
    assert!(diagnosis.contains("is not visible in any directory"), "df and du are compared: {diagnosis}");
    assert!(diagnosis.contains(&format!("`: > /proc/{pid}/fd/3`")) && diagnosis.contains("a human must free"), "the safe fix, for a human: {diagnosis}");
    assert!(!kinds(&actions).contains(&"clean_logs"), "cleaning cannot free a deleted file: {actions:?}");
    let (_, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert!(v["incidents"].as_array().unwrap().iter().flat_map(|i| i["actions"].as_array().cloned().unwrap_or_default()).all(|a| a["action"] != "clean_logs"), "{v}");
    assert_eq!(std::fs::read(&old).unwrap(), kept, "a file the repair must not touch changed");
    assert!(std::fs::read_link(format!("/proc/{pid}/fd/3")).is_ok(), "the holder lost its file");
}

#[test]
fn a_deleted_file_held_open_is_named_with_its_process() {
    held_open(false);
}

#[test]
fn a_deleted_file_held_open_is_named_over_ssh() {
    if !Path::new("/usr/sbin/sshd").exists() {
        support::skip("sshd", "no sshd (apt-get install openssh-server)");
        return;
    }
    held_open(true);
}

#[test]
fn sessions_filling_the_inodes_are_found_in_their_directory() {
    let Some((_dir, fs)) = small_fs("8m", Some(400)) else { return };
    let vol = fs.path.clone();
    let sessions = vol.join("php/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    std::fs::create_dir_all(vol.join("logs")).unwrap();
    for i in 0..360 {
        let p = sessions.join(format!("sess_{i:04}"));
        std::fs::write(&p, b"user|s:5:\"alice\";").unwrap();
        support::age(&p, i % 12);
    }
    let ws = Ws::new(&policy(&vol.join("logs"), ""), &check(&vol, None, "    max_used_percent: 95\n    max_inodes_percent: 80\n"));
    let (diagnosis, actions, _) = incident(&ws, &["heartbeat", "--json"]);
    let first = diagnosis.lines().next().unwrap();
    assert!(first.contains("run out of inodes") && first.contains("360 entries in `") && first.contains("php/sessions`"), "the directory holding them: {diagnosis}");
    assert!(diagnosis.contains("php/sessions` were modified between 11d ago and"), "the age spread of its files: {diagnosis}");
    assert!(!kinds(&actions).contains(&"clean_logs"), "{actions:?}");
    assert_eq!(std::fs::read_dir(&sessions).unwrap().count(), 360);
}

#[test]
fn core_dumps_name_the_program_that_aborted() {
    if !support::have("python3") {
        support::skip("python3", "the program that aborts");
        return;
    }
    let Some((_dir, fs)) = small_fs("40m", None) else { return };
    let vol = fs.path.clone();
    let crash = vol.join("crash");
    std::fs::create_dir_all(&crash).unwrap();
    // A real abort (SIGABRT), dumped by the kernel: core_pattern here is `core` in the cwd.
    for n in 0..2 {
        let st = Command::new("sh").arg("-c").arg("ulimit -c unlimited; cd \"$1\" && exec python3 -c 'import os; os.abort()'").arg("sh").arg(&crash).status().unwrap();
        assert!(!st.success());
        let core = crash.join("core");
        if !core.exists() {
            let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
            support::skip("core dumps in the cwd", &format!("the kernel's core_pattern is {pattern:?}"));
            return;
        }
        std::fs::rename(&core, crash.join(format!("core.{}", 1000 + n))).unwrap();
    }
    let limit = (support::used_percent(&vol) - 5.0).max(1.0);
    let ws = Ws::new(&policy(&crash, ""), &check(&vol, None, &format!("    max_used_percent: {limit}\n")));
    let (diagnosis, actions, _) = incident(&ws, &["heartbeat", "--json"]);
    let first = diagnosis.lines().next().unwrap();
    assert!(first.starts_with("Core dumps take") && first.contains("python3") && first.contains("dumped 2 time(s)"), "the program and how often: {diagnosis}");
    assert_eq!(kinds(&actions), ["clean_logs"], "the dumps are under a clean root: removing them helps: {actions:?}");
}

#[test]
fn a_disk_full_of_nothing_cleanable_asks_for_expansion() {
    let Some((_dir, fs)) = small_fs("8m", None) else { return };
    let vol = fs.path.clone();
    let blob = vol.join("data/uploads/blob.bin");
    let kept = fill(&blob, 6);
    std::fs::create_dir_all(vol.join("logs")).unwrap();
    std::fs::write(vol.join("logs/today.log"), b"fresh\n").unwrap();
    let ws = Ws::new(&policy(&vol.join("logs"), ""), &check(&vol, None, "    max_used_percent: 50\n"));
    let (diagnosis, actions, _) = incident(&ws, &["heartbeat", "--execute", "--json"]);
    let first = diagnosis.lines().next().unwrap();
    assert!(first.contains("data/uploads`") && first.contains("a human must decide what to remove, or the volume must grow"), "{diagnosis}");
    assert!(diagnosis.contains("largest files under `") && diagnosis.contains("blob.bin` 6.0 MiB"), "{diagnosis}");
    assert!(diagnosis.contains("still above the limit of 50%: the volume must grow"), "{diagnosis}");
    assert_eq!(kinds(&actions), ["resize_volume"], "no clean_logs, expansion asked: {diagnosis}");
    assert_eq!(actions[0].1, "confirm", "{actions:?}");
    assert_eq!(std::fs::read(&blob).unwrap(), kept);
    assert_eq!(std::fs::read(vol.join("logs/today.log")).unwrap(), b"fresh\n");
    let _: PathBuf = vol;
}
