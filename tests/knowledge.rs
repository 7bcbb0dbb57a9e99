//! The knowledge base that keeps itself, on a real git memory filled by real
//! heartbeats against real failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::Ws;

/// An exec check on `healthy`, repaired by the declared command `fix`, no cooldown.
fn repairable(fix: &str) -> Ws {
    Ws::new(
        &format!("commands:\n  fix: \"{fix}\"\nrules:\n  - action: run_command\n    decide: auto\n"),
        "checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n    cooldown: 0s\n",
    )
}

/// Breaks the app, runs a heartbeat that repairs it; returns the exit code.
fn break_and_heal(ws: &Ws) -> i32 {
    let _ = std::fs::remove_file(ws.path().join("healthy"));
    ws.run(&["heartbeat", "--execute", "--all"]).code
}

#[test]
fn three_repairs_make_one_page_with_a_3_of_3_rate_and_human_notes_survive() {
    let ws = repairable("touch healthy");
    for _ in 0..3 {
        assert_eq!(break_and_heal(&ws), 1);
    }
    let page_path = ws.memory().join("knowledge/exec-failed.md");
    let pages: Vec<_> = std::fs::read_dir(ws.memory().join("knowledge")).unwrap().flatten().collect();
    assert_eq!(pages.len(), 1);
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.contains("- run_command on `fix`: 3/3 succeeded (100%)"), "{page}");
    assert!(page.contains("3 incident(s), 3 resolved"), "{page}");
    assert_eq!(page.matches("](../incidents/").count(), 3, "{page}");
    assert!(page.trim_end().ends_with("## Notes"), "{page}");

    let human = "## Notes\n\nOn-call tip from Ana: if `fix` fails twice, check the *NFS* mount first.\n\n| host | owner |\n|---|---|\n| web-01 | ana |\n\n```sh\nmount | grep nfs   # ## not a heading\n```\n";
    let generated = page.split("\n## Notes\n").next().unwrap().to_string() + "\n";
    std::fs::write(&page_path, format!("{generated}{human}")).unwrap();
    for _ in 0..10 {
        assert_eq!(break_and_heal(&ws), 1);
    }
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.ends_with(human), "the notes changed:\n{page}");
    assert!(page.contains("- run_command on `fix`: 13/13 succeeded (100%)"), "{page}");
    assert_eq!(page.matches("## Notes").count(), 1);
    let tracked = std::process::Command::new("git").arg("-C").arg(ws.memory()).args(["ls-files", "knowledge"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&tracked.stdout).trim(), "knowledge/exec-failed.md");
}
