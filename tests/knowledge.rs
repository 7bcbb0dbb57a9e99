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

    let human =
        "## Notes\n\nOn-call tip from Ana: if `fix` fails twice, check the *NFS* mount first.\n\n| host | owner |\n|---|---|\n| web-01 | ana |\n\n```sh\nmount | grep nfs   # ## not a heading\n```\n";
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

#[test]
fn compaction_folds_only_old_resolved_incidents_and_show_still_finds_them() {
    let ws = Ws::new(
        "commands:\n  fix-h: \"touch healthy-h\"\n  noop: \"true\"\nrules:\n  - action: run_command\n    decide: auto\n  - action: run_command\n    decide: confirm\n    match: {target: noop}\n",
        "checks:\n  - name: healer\n    kind: exec\n    command: \"test -f healthy-h\"\n    repair: fix-h\n    cooldown: 0s\n  - name: stuck\n    kind: exec\n    command: \"false\"\n  - name: waiting\n    kind: exec\n    command: \"test -f never\"\n    repair: noop\n",
    );
    assert_eq!(ws.run(&["heartbeat", "--execute", "--all"]).code, 1);
    let list = ws.run(&["incidents", "list"]).stdout;
    let id_of = |status: &str| list.lines().find(|l| l.contains(status)).unwrap().split_whitespace().next().unwrap().to_string();
    let (old_resolved, needs_human, open) = (id_of(" resolved "), id_of(" needs-human "), id_of(" open "));
    // The first resolution is 3 s old when compaction runs with a 2 s limit; the second, fresh.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    std::fs::remove_file(ws.path().join("healthy-h")).unwrap();
    ws.run(&["heartbeat", "--execute", "--all"]);

    let r = ws.run(&["memory", "compact", "--older-than", "2s"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("folded 1 resolved incident(s) into digests/"), "{}", r.stdout);
    let notes: Vec<String> = ws.incident_files().iter().map(|p| p.file_stem().unwrap().to_string_lossy().to_string()).collect();
    assert!(!notes.contains(&old_resolved), "{notes:?}");
    assert!(notes.contains(&needs_human) && notes.contains(&open), "{notes:?}");
    assert_eq!(notes.len(), 3, "the newer resolved incident stays: {notes:?}");

    let show = ws.run(&["incidents", "show", &old_resolved]);
    assert_eq!(show.code, 0);
    assert!(show.stdout.contains("- **Fix**: run_command on `fix-h`"), "{}", show.stdout);
    let commit = show.stdout.split("git show ").nth(1).unwrap().split(':').next().unwrap().to_string();
    let full = std::process::Command::new("git").arg("-C").arg(ws.memory()).args(["show", &format!("{commit}:incidents/{old_resolved}.md")]).output().unwrap();
    assert!(String::from_utf8_lossy(&full.stdout).contains("## Actions taken"), "the named commit holds the full note");
    assert!(ws.run(&["incidents", "list"]).stdout.contains(&format!("{old_resolved}  resolved")));
    let head = ws.commits()[0].clone();
    assert!(head.starts_with("memory compact: folded 1"), "{head}");
    let page = std::fs::read_to_string(ws.memory().join("knowledge/exec-failed.md")).unwrap();
    assert!(page.contains(&format!("[{old_resolved}](../digests/")), "knowledge links the digest: {page}");
    // Nothing more to fold: a second compaction changes nothing.
    let r = ws.run(&["memory", "compact", "--older-than", "1h"]);
    assert!(r.stdout.contains("nothing to fold"), "{}", r.stdout);
}

#[test]
fn sigkill_during_compaction_leaves_each_incident_in_exactly_one_place() {
    use nightshift::memory::notes::{Incident, IncidentStatus};
    use nightshift::severity::Severity;
    let ws = repairable("touch healthy");
    let mem = nightshift::memory::Memory::open(ws.path()).unwrap();
    let ids: Vec<String> = (0..1000).map(|i| format!("2026-08-{:02}-gen-{i}", 1 + i % 28)).collect();
    for id in &ids {
        let inc = Incident {
            id: id.clone(),
            title: format!("generated {id}"),
            fingerprint: format!("gen:disk-full:{id}"),
            class: "disk-full".into(),
            target: id.clone(),
            check: "gen (disk)".into(),
            failing_since: None,
            attempts: Vec::new(),
            tokens: 0,
            recalled_from: None,
            severity: Severity::Warning,
            status: IncidentStatus::Resolved,
            detected: format!("{}T03:00:00Z", &id[..10]),
            last_seen: format!("{}T03:00:00Z", &id[..10]),
            resolved: Some(format!("{}T03:05:00Z", &id[..10])),
            occurrences: 1,
            evidence: "used 95%".into(),
            diagnosis: vec!["largest: /var/log".into()],
            actions: Vec::new(),
            prevention: Vec::new(),
            related: Vec::new(),
        };
        mem.write_incident(&inc).unwrap();
    }
    mem.commit("generated").unwrap();
    let mut child = ws.cmd(&["memory", "compact", "--older-than", "1d"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Kill it once it has started writing digests, before it can finish.
    let start = std::time::Instant::now();
    while !ws.memory().join("state/compact.json").exists() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ws.memory().join("state/compact.json").exists(), "the kill must land mid-compaction");
    let where_is = |ws: &Ws| {
        let notes: std::collections::BTreeSet<String> = ws.incident_files().iter().map(|p| p.file_stem().unwrap().to_string_lossy().to_string()).collect();
        let folded: std::collections::BTreeSet<String> = nightshift::memory::Memory::open(ws.path()).unwrap().digested().unwrap().into_iter().map(|i| i.id).collect();
        (notes, folded)
    };
    let (notes, folded) = where_is(&ws);
    let nowhere: Vec<&String> = ids.iter().filter(|id| !notes.contains(*id) && !folded.contains(*id)).collect();
    assert!(nowhere.is_empty(), "lost by the crash: {nowhere:?}");
    // The next run finishes what the crash interrupted: each incident in exactly one place.
    let r = ws.run(&["memory", "compact", "--older-than", "10000d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("finished an interrupted compaction"), "{}", r.stdout);
    let (notes, folded) = where_is(&ws);
    let both: Vec<&String> = ids.iter().filter(|id| notes.contains(*id) && folded.contains(*id)).collect();
    let nowhere: Vec<&String> = ids.iter().filter(|id| !notes.contains(*id) && !folded.contains(*id)).collect();
    assert!(both.is_empty() && nowhere.is_empty(), "both: {} nowhere: {}", both.len(), nowhere.len());
    assert!(!ws.memory().join("state/compact.json").exists());
    let status = std::process::Command::new("git").arg("-C").arg(ws.memory()).args(["status", "--porcelain"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "", "the recovered layout is committed");
}

#[test]
fn stats_count_classes_repairs_recurrence_and_escalations() {
    let ws = Ws::new(
        "commands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: auto\n",
        "checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n    cooldown: 0s\n    threshold: 2\n  - name: db\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n",
    );
    for _ in 0..3 {
        let _ = std::fs::remove_file(ws.path().join("healthy"));
        ws.run(&["heartbeat", "--execute", "--all"]); // 1st failure: below threshold
        ws.run(&["heartbeat", "--execute", "--all"]); // 2nd: incident, repaired
    }
    let (code, s) = ws.json(&["incidents", "stats", "--since", "1d", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(s["incidents"], 4, "{s}");
    assert_eq!(s["by_class"]["exec-failed"], 3);
    assert_eq!(s["by_class"]["tcp-down"], 1);
    assert_eq!(s["auto_fixed"], 3);
    assert_eq!(s["escalated"], 1, "the db incident needs a human");
    assert_eq!(s["auto_fixed_share"], 0.75);
    assert_eq!(s["time_to_repair"]["count"], 3);
    assert_eq!(s["time_to_detect"]["count"], 4, "{s}");
    // The mean the notes themselves give: Detected minus Failing since, over every incident.
    let field = |note: &str, key: &str| note.lines().find_map(|l| l.strip_prefix(&format!("- **{key}**: "))).map(|v| chrono::DateTime::parse_from_rfc3339(v).unwrap());
    let waits: Vec<f64> =
        ws.incident_files().iter().map(|f| std::fs::read_to_string(f).unwrap()).map(|n| (field(&n, "Detected").unwrap() - field(&n, "Failing since").unwrap()).num_seconds() as f64).collect();
    assert_eq!(waits.len(), 4);
    let mean = waits.iter().sum::<f64>() / 4.0;
    assert!((s["time_to_detect"]["mean_seconds"].as_f64().unwrap() - mean).abs() < 0.01, "{s} against {waits:?}");
    assert_eq!(s["recurring"]["app:exec-failed:test -f healthy"], 3, "{s}");
    assert_eq!(s["tokens"], 0);
    let text = ws.run(&["incidents", "stats"]).stdout;
    assert!(text.contains("4 incident(s) since") && text.contains("auto-fixed 3, escalated 1 (75% auto-fixed)"), "{text}");
}

#[test]
fn search_ranks_title_matches_first_and_covers_knowledge_pages() {
    let ws = Ws::new(
        "commands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: auto\n",
        "checks:\n  - name: billing\n    kind: exec\n    command: \"echo payments queue stuck; exit 1\"\n  - name: payments-api\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n",
    );
    ws.run(&["heartbeat", "--execute"]);
    let (code, hits) = ws.json(&["incidents", "search", "payments", "--json"]);
    assert_eq!(code, 0);
    let titles: Vec<&str> = hits.as_array().unwrap().iter().filter(|h| h["kind"] == "incident").map(|h| h["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 2, "{hits}");
    assert!(titles[0].contains("(payments-api)"), "a title match ranks first: {titles:?}");
    assert!(hits[0]["score"].as_u64() > hits[1]["score"].as_u64());
    let (_, hits) = ws.json(&["incidents", "search", "run_command", "fix", "--json"]);
    assert!(hits.as_array().unwrap().iter().any(|h| h["kind"] == "knowledge" && h["id"] == "knowledge/exec-failed.md"), "{hits}");
    let (_, none) = ws.json(&["incidents", "search", "kubernetes", "--json"]);
    assert_eq!(none, serde_json::json!([]));
}

#[test]
fn memory_recalls_a_fix_and_stops_trusting_it_after_two_failures_in_a_row() {
    let ws = Ws::new(
        "commands:\n  fix: \"echo x >> tries; test -f fix-works && touch healthy\"\ncircuit_breaker: 0\nrules:\n  - action: run_command\n    decide: auto\n",
        "checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy\"\n    repair: fix\n    cooldown: 0s\n",
    );
    let tries = || std::fs::read_to_string(ws.path().join("tries")).map_or(0, |t| t.lines().count());
    std::fs::write(ws.path().join("fix-works"), "").unwrap();
    assert_eq!(break_and_heal(&ws), 1);
    let first = ws.run(&["incidents", "list"]).stdout.split_whitespace().next().unwrap().to_string();
    // The same problem again: memory's fix is reused, and the note says which incident it followed.
    let (_, v) = {
        let _ = std::fs::remove_file(ws.path().join("healthy"));
        ws.json(&["heartbeat", "--execute", "--all", "--json"])
    };
    let inc = &v["incidents"][0];
    assert_eq!(inc["status"], "resolved");
    assert!(inc["diagnosis"].to_string().contains(&format!("memory: incident {first} was fixed by run_command on `fix` (1 of 1 tries")), "{inc}");
    let note = std::fs::read_to_string(ws.memory().join(format!("incidents/{}.md", inc["id"].as_str().unwrap()))).unwrap();
    assert!(note.contains(&format!("- **Recalled from**: [{first}]({first}.md)")), "{note}");

    // The fix stops working: tried, fails; tried again, fails; then not again without a human.
    std::fs::remove_file(ws.path().join("fix-works")).unwrap();
    let _ = std::fs::remove_file(ws.path().join("healthy"));
    for _ in 0..2 {
        ws.run(&["heartbeat", "--execute", "--all"]);
    }
    assert_eq!(tries(), 4);
    let (_, v) = ws.json(&["heartbeat", "--execute", "--all", "--json"]);
    let a = &v["incidents"][0]["actions"][0];
    assert_eq!((a["decision"].as_str(), a["result"].as_str()), (Some("confirm"), Some("pending")), "{a}");
    assert!(a["reason"].as_str().unwrap().contains("failed twice in a row for this problem"), "{a}");
    assert_eq!(tries(), 4, "a distrusted fix ran without a human");

    // A human approves once it can work again; its success restores trust.
    std::fs::write(ws.path().join("fix-works"), "").unwrap();
    let (_, pending) = ws.json(&["approvals", "--json"]);
    let id = pending[0]["id"].as_str().unwrap().to_string();
    assert_eq!(ws.run(&["approve", &id]).code, 0);
    ws.run(&["heartbeat", "--execute"]);
    assert_eq!(tries(), 5);
    let (_, v) = {
        let _ = std::fs::remove_file(ws.path().join("healthy"));
        ws.json(&["heartbeat", "--execute", "--all", "--json"])
    };
    assert_eq!(v["incidents"][0]["actions"][0]["decision"], "auto", "{v}");
    assert_eq!(v["incidents"][0]["status"], "resolved");
    let page = std::fs::read_to_string(ws.memory().join("knowledge/exec-failed.md")).unwrap();
    assert!(page.contains("- run_command on `fix`: 4/6 succeeded (67%)"), "{page}");
}
