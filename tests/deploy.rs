//! What users install beside the binary, loaded into the real tools that use
//! it: the systemd units (systemd-analyze, and the unit's own command line
//! run as written), the shell completions (sourced into bash) and the manual
//! page (rendered by groff).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Ws, have};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The units as shipped, with the install path of the binary pointed at the one under test.
fn units(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("deploy/systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().replace("/usr/local/bin/nightshift", support::bin());
        let to = dir.join(path.file_name().unwrap());
        std::fs::write(&to, text).unwrap();
        out.push(to);
    }
    out.sort();
    out
}

fn directive<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

#[test]
fn systemd_units_verify_and_their_command_runs_a_heartbeat() {
    if !have("systemd-analyze") {
        support::skip("systemd-analyze", "the shipped units are checked by systemd's own verifier (package systemd)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let units = units(tmp.path());
    let names: Vec<_> = units.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["nightshift-heartbeat.service", "nightshift-heartbeat.timer", "nightshift.service"]);
    // The units name `man:nightshift(1)`; systemd-analyze looks it up, so install the page the
    // way the README says (`nightshift man > …/man1/nightshift.1`) under a MANPATH of its own.
    let man1 = tmp.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let page = Command::new(support::bin()).arg("man").output().unwrap();
    std::fs::write(man1.join("nightshift.1"), page.stdout).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").args(&units).env("MANPATH", tmp.path().join("man")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings to systemd: any line is a defect here.
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");

    // The timer starts the heartbeat service, every 5 minutes as the seed's cron.
    let timer = std::fs::read_to_string(tmp.path().join("nightshift-heartbeat.timer")).unwrap();
    assert_eq!(directive(&timer, "OnCalendar"), ["*:0/5"]);
    let calendar = Command::new("systemd-analyze").args(["calendar", "--iterations=2", "*:0/5"]).output().unwrap();
    assert!(String::from_utf8_lossy(&calendar.stdout).contains("Normalized form: *-*-* *:00/5:00"), "{}", String::from_utf8_lossy(&calendar.stdout));

    // The service's command line, run as written on a workspace: a healthy pass exits 0;
    // a failing check exits 1, which the unit counts as success (the pass did its job);
    // a workspace that does not validate exits 2, which fails the unit.
    let service = std::fs::read_to_string(tmp.path().join("nightshift-heartbeat.service")).unwrap();
    let exec = directive(&service, "ExecStart");
    assert_eq!(exec.len(), 1);
    let success: Vec<i32> = directive(&service, "SuccessExitStatus").iter().flat_map(|v| v.split_whitespace()).map(|c| c.parse().unwrap()).collect();
    let run = |ws: &Path| {
        let argv: Vec<String> = exec[0].split_whitespace().map(|a| if a == "/srv/nightshift" { ws.display().to_string() } else { a.to_string() }).collect();
        let out = Command::new(&argv[0]).args(&argv[1..]).env_remove("OPENAI_API_KEY").output().unwrap();
        out.status.code().unwrap()
    };
    let unit_ok = |code: i32| code == 0 || success.contains(&code);
    let healthy = Ws::new("mode: dry-run\n", "checks:\n  - name: shell\n    kind: exec\n    command: \"true\"\n");
    assert_eq!(run(healthy.path()), 0);
    assert!(healthy.memory().join(".git").exists(), "the pass made no memory");
    let failing = Ws::new("mode: dry-run\n", "checks:\n  - name: shell\n    kind: exec\n    command: \"false\"\n");
    let code = run(failing.path());
    assert_eq!(code, 1);
    assert!(unit_ok(code), "a failing check would mark the unit failed: SuccessExitStatus={success:?}");
    let invalid = Ws::new("mode: sometimes\n", "checks: []\n");
    let code = run(invalid.path());
    assert_eq!(code, 2);
    assert!(!unit_ok(code), "a workspace that does not validate must fail the unit");
}

#[test]
fn bash_completion_offers_the_commands_and_their_flags() {
    if !have("bash") {
        support::skip("bash", "the completion script is sourced into a real bash");
        return;
    }
    let script = Command::new(support::bin()).args(["completions", "bash"]).output().unwrap();
    assert!(script.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("nightshift.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // What bash offers after `nightshift inc<TAB>` and `nightshift heartbeat --<TAB>`.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n_nightshift nightshift '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            file.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash").arg("-c").arg(program).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(complete("nightshift inc"), ["incidents"]);
    let flags = complete("nightshift heartbeat --");
    for flag in ["--all", "--json", "--execute", "--workspace"] {
        assert!(flags.iter().any(|f| f == flag), "{flag} not offered: {flags:?}");
    }
    let bad = Command::new(support::bin()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_manual_page_renders_and_documents_every_command() {
    if !have("groff") {
        support::skip("groff", "the manual page is rendered by groff (package groff-base)");
        return;
    }
    let page = Command::new(support::bin()).arg("man").output().unwrap();
    assert!(page.status.success());
    let mut groff = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    groff.stdin.take().unwrap().write_all(&page.stdout).unwrap();
    let checked = groff.wait_with_output().unwrap();
    assert!(checked.status.success() && checked.stderr.is_empty(), "groff warns: {}", String::from_utf8_lossy(&checked.stderr));
    let text = Command::new("sh")
        .arg("-c")
        .arg("nightshift_page=$(cat); printf '%s' \"$nightshift_page\" | groff -man -Tutf8 -P-cbou")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = text;
    text.stdin.take().unwrap().write_all(&page.stdout).unwrap();
    let rendered = String::from_utf8_lossy(&text.wait_with_output().unwrap().stdout).into_owned();
    let help = Command::new(support::bin()).arg("--help").output().unwrap();
    let commands: Vec<String> = String::from_utf8_lossy(&help.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    for c in &commands {
        assert!(rendered.contains(&format!("NIGHTSHIFT {}", c.to_uppercase())), "the manual page has no section for `{c}`");
        assert!(rendered.contains(&format!("nightshift {c}")), "the manual page has no synopsis for `{c}`");
    }
    // The options users look up are there with their words, not only their names.
    assert!(rendered.contains("Act for real"));
    assert!(rendered.contains("Run every check now"));
}
