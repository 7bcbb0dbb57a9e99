//! `nightshift validate`: every kind of mistake is reported with its file,
//! line and fix, exit 2, and no other command runs on such a workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::Ws;

const OK_POLICY: &str = "mode: dry-run\n";
const OK_CHECKS: &str = "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n";

// AGENTS.md's YAML starts on line 6, HEARTBEAT.md's on line 4 (see support::Ws).
#[test]
fn every_validation_error_names_file_line_and_fix() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (policy, heartbeat, expected "file:line", expected message part)
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    every: 5 minutes\n", "HEARTBEAT.md:8", "invalid duration `5 minutes`"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n  - name: a\n    kind: exec\n    command: \"false\"\n", "HEARTBEAT.md:8", "check name `a` is used twice"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    intervall: 5m\n", "HEARTBEAT.md:8", "unknown key `intervall`"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    threshold: 0\n", "HEARTBEAT.md:8", "`threshold: 0` is out of range"),
        (OK_POLICY, "checks:\n  - name: d\n    kind: disk\n    path: /\n    max_used_percent: 150\n", "HEARTBEAT.md:8", "`max_used_percent: 150` is out of range"),
        (OK_POLICY, "checks:\n  - name: d\n    kind: disk\n    path: /\n    max_used_percent: 80%\n", "HEARTBEAT.md:8", "with a percent sign"),
        (OK_POLICY, "checks:\n  - name: d\n    kind: disk\n    path: /\n", "HEARTBEAT.md:5", "a disk check needs a limit"),
        (OK_POLICY, "checks:\n  - name: h\n    kind: htpp\n    url: http://127.0.0.1:1/\n", "HEARTBEAT.md:6", "unknown kind `htpp`"),
        (OK_POLICY, "checks:\n  - name: Root_Disk\n    kind: exec\n    command: \"true\"\n", "HEARTBEAT.md:5", "may only contain a-z, 0-9 and -"),
        (OK_POLICY, "checks:\n  - name: h\n    kind: http\n    url: localhost:8080\n", "HEARTBEAT.md:7", "is not an http(s) URL"),
        (OK_POLICY, "checks:\n  - name: d\n    kind: disk\n    path: /\n    max_used_percent: 80\n    url: http://x/\n", "HEARTBEAT.md:9", "`url` does not apply to kind `disk`"),
        (OK_POLICY, "checks:\n  - name: t\n    kind: tcp\n    address: 127.0.0.1\n", "HEARTBEAT.md:7", "is not host:port"),
        (OK_POLICY, "checks:\n  - name: t\n    kind: tls\n    address: 127.0.0.1:443\n    warn_days: 5\n    min_days: 10\n", "HEARTBEAT.md:9", "min_days (10) is larger than warn_days (5)"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    level: L9\n", "HEARTBEAT.md:8", "unknown level `L9`"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    repair: restart-app\n", "HEARTBEAT.md:5", "repair command `restart-app` is not declared"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n   command: \"true\"\n", "HEARTBEAT.md:", "YAML syntax error"),
        (OK_POLICY, "checks:\n  - name: p\n    kind: process\n", "HEARTBEAT.md:5", "needs exactly one of `process`"),
        (OK_POLICY, "checks:\n  - name: t\n    kind: tls\n    file: /etc/ssl/site.pem\n    ca_file: /etc/ssl/ca.pem\n", "HEARTBEAT.md:8", "`ca_file` applies to a served certificate"),
        (OK_POLICY, "checks:\n  - name: s\n    kind: service\n    unit: nginx\n    start: start-nginx\n", "HEARTBEAT.md:8", "`start` applies to a pidfile service"),
        (OK_POLICY, "checks:\n  - name: s\n    kind: service\n    pidfile: /run/app.pid\n    start: start-app\n", "HEARTBEAT.md:8", "start command `start-app` is not declared"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    every: 5\n", "HEARTBEAT.md:8", "`every: 5` has no unit"),
        (
            OK_POLICY,
            "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    every: 100000000d\n",
            "HEARTBEAT.md:8",
            "`100000000d` is longer than the longest nightshift accepts, 36500d (100 years)",
        ),
        (OK_POLICY, "hosts: []\n", "HEARTBEAT.md:4", "has no `checks:` list"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    at: \"0 2 * *\"\n", "HEARTBEAT.md:8", "cron needs five"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    at: \"0 25 * * *\"\n", "HEARTBEAT.md:8", "hour: 25 is outside 0-23"),
        (OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    at: \"0 2 * * *\"\n    every: 5m\n", "HEARTBEAT.md:8", "`every` and `at` both set"),
        (OK_POLICY, "timezone: Mars/Olympus\nchecks: []\n", "HEARTBEAT.md:4", "unknown time zone `Mars/Olympus`"),
        (OK_POLICY, "checks:\n  - name: b\n    kind: backup\n    path: /var/*/db.tar.gz\n", "HEARTBEAT.md:7", "wildcards may only stand in the file name"),
        (OK_POLICY, "checks:\n  - name: b\n    kind: backup\n    path: /var/b/*.gz\n    min_size: 5 parsecs\n", "HEARTBEAT.md:8", "unknown unit"),
        (OK_POLICY, "checks:\n  - name: p\n    kind: k8s-pods\n    namespace: Shop_Prod\n", "HEARTBEAT.md:7", "`Shop_Prod` is not a namespace name"),
        (OK_POLICY, "checks:\n  - name: p\n    kind: k8s-pods\n    selector: app in web\n", "HEARTBEAT.md:7", "is not a label selector term"),
        (OK_POLICY, "checks:\n  - name: p\n    kind: k8s-pods\n    ready_grace: soon\n", "HEARTBEAT.md:7", "invalid duration `soon`"),
        (OK_POLICY, "checks:\n  - name: n\n    kind: k8s-nodes\n    namespace: shop\n", "HEARTBEAT.md:7", "`namespace` does not apply to kind `k8s-nodes`"),
        (OK_POLICY, "checks:\n  - name: d\n    kind: dependency\n    target: postgres\n    dependants: tier=front\n", "HEARTBEAT.md:7", "neither a Service, a URL nor host:port"),
        (OK_POLICY, "checks:\n  - name: d\n    kind: dependency\n    target: shop/db\n", "HEARTBEAT.md:5", "`dependants` is missing"),
        (OK_POLICY, "checks:\n  - name: p\n    kind: k8s-pods\n    host: web-01\n", "HEARTBEAT.md:7", "kind `k8s-pods` cannot run over SSH"),
        (OK_POLICY, "checks:\n  - name: p\n    kind: prometheus\n    url: http://127.0.0.1:9090\n    query: up\n", "HEARTBEAT.md:5", "needs exactly one condition"),
        (
            OK_POLICY,
            "checks:\n  - name: p\n    kind: prometheus\n    url: http://127.0.0.1:9090\n    query: up\n    below: 1\n    token_env: my-token\n",
            "HEARTBEAT.md:10",
            "is not an environment variable name",
        ),
        (OK_POLICY, "checks:\n  - name: m\n    kind: memory\n", "HEARTBEAT.md:5", "`min_available_percent` is missing"),
        (
            OK_POLICY,
            "checks:\n  - name: s\n    kind: k8s-scaling\n    namespace: shop\n    deployment: web\n    min: 5\n    max: 2\n    http: http://127.0.0.1:1/\n    above: 500\n",
            "HEARTBEAT.md:10",
            "`max` (2) is below `min` (5)",
        ),
        (OK_POLICY, "checks:\n  - name: s\n    kind: k8s-scaling\n    namespace: shop\n    deployment: web\n    min: 1\n    max: 4\n    above: 0.8\n", "HEARTBEAT.md:5", "needs one load signal"),
        (
            OK_POLICY,
            "checks:\n  - name: s\n    kind: k8s-scaling\n    namespace: shop\n    deployment: web\n    min: 1\n    max: 4\n    http: http://127.0.0.1:1/\n    above: 0.5\n    below: 0.8\n",
            "HEARTBEAT.md:13",
            "`below` (0.8) must be less than `above` (0.5)",
        ),
        (
            OK_POLICY,
            "checks:\n  - name: f\n    kind: k8s-failover\n    namespace: shop\n    service: db\n    primary: db\n    secondary: db\n",
            "HEARTBEAT.md:10",
            "`primary` and `secondary` are both `db`",
        ),
        (OK_POLICY, "checks:\n  - name: f\n    kind: k8s-failover\n    namespace: shop\n    primary: db-a\n    secondary: db-b\n", "HEARTBEAT.md:5", "`service` is missing"),
        (OK_POLICY, "checks:\n  - name: c\n    kind: cpu\n    max_percent: 90\n    window: 5m\n", "HEARTBEAT.md:8", "`window` must be between 100ms and 60s"),
        ("rules:\n  - action: restart_everything\n    decide: auto\n", OK_CHECKS, "AGENTS.md:7", "nightshift has no action `restart_everything`"),
        ("rules:\n  - action: restart_pod\n    decide: yes-please\n", OK_CHECKS, "AGENTS.md:8", "is not a decision"),
        ("rules:\n  - action: restart_pod\n", OK_CHECKS, "AGENTS.md:7", "`decide` is missing"),
        ("rules:\n  - action: restart_pod\n    decide: auto\n    examples:\n      - {target: shop/x, expect: confirm}\n", OK_CHECKS, "AGENTS.md:10", "expects confirm but the rules decide auto"),
        ("mode: live\n", OK_CHECKS, "AGENTS.md:6", "unknown mode `live`"),
        ("mod: execute\n", OK_CHECKS, "AGENTS.md:6", "unknown key `mod`"),
        ("rules:\n  - action: clean_logs\n    decide: auto\n    abort_window: 30s\n", OK_CHECKS, "AGENTS.md:9", "only applies to `decide: abort-window`"),
        ("unknown_action: auto\n", OK_CHECKS, "AGENTS.md:6", "would let any action without a rule run unasked"),
        ("webhooks:\n  - name: n8n\n    url: http://127.0.0.1:5678/x\n    auth_header: Bearer abc\n", OK_CHECKS, "AGENTS.md:9", "would put a secret in AGENTS.md"),
        ("max_blast_radius: -1\n", OK_CHECKS, "AGENTS.md:6", "out of range"),
        ("approval_ttl: 100000000d\n", OK_CHECKS, "AGENTS.md:6", "`100000000d` is longer than the longest nightshift accepts"),
        ("clean_roots: [var/log]\n", OK_CHECKS, "AGENTS.md:6", "must be an absolute directory"),
        ("rules:\n  - action: scale\n    decide: auto\n    match: {namespce: shop}\n", OK_CHECKS, "AGENTS.md:9", "unknown key `namespce`"),
    ];
    let mut failures = Vec::new();
    for (policy, heartbeat, place, message) in cases {
        let ws = Ws::new(policy, heartbeat);
        let r = ws.run(&["validate"]);
        let found = r.stderr.lines().any(|l| l.contains(&place.to_string()) && l.contains(message));
        let has_fix = r.stderr.contains("fix: ");
        if r.code != 2 || !found || !has_fix {
            failures.push(format!("case {place} {message:?}: exit {} stderr:\n{}", r.code, r.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn a_missing_file_or_block_is_an_error() {
    let ws = Ws::new(OK_POLICY, OK_CHECKS);
    std::fs::write(ws.path().join("AGENTS.md"), "# no policy block here\n").unwrap();
    let r = ws.run(&["validate"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("AGENTS.md: AGENTS.md has no fenced block with info string `policy`"), "{}", r.stderr);
    std::fs::remove_file(ws.path().join("AGENTS.md")).unwrap();
    let r = ws.run(&["validate"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("AGENTS.md not found"), "{}", r.stderr);
}

#[test]
fn all_problems_are_reported_at_once() {
    let ws = Ws::new("mode: live\n", "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    every: 5 minutes\n    threshold: 0\n");
    let r = ws.run(&["validate"]);
    assert_eq!(r.code, 2);
    let problems: Vec<&str> = r.stderr.lines().filter(|l| l.contains(".md:")).collect();
    assert_eq!(problems.len(), 3, "{}", r.stderr);
}

#[test]
fn no_command_runs_on_an_invalid_workspace() {
    let ws = Ws::new(OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"touch ran\"\n    every: 5 minutes\n");
    for args in [&["heartbeat"][..], &["heartbeat", "--all", "--execute"], &["check"]] {
        let r = ws.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("does not validate"), "{}", r.stderr);
    }
    assert!(!ws.path().join("ran").exists(), "a check ran on an invalid workspace");
    assert!(!ws.memory().exists(), "memory was written for an invalid workspace");
}

#[test]
fn tools_and_prompts_are_checked() {
    let ws = Ws::new(OK_POLICY, OK_CHECKS);
    std::fs::create_dir(ws.path().join("tools")).unwrap();
    std::fs::write(ws.path().join("tools/delete_everything.md"), "no").unwrap();
    let r = ws.run(&["validate"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("tools/delete_everything.md: names no known tool"), "{}", r.stderr);
    assert!(r.stderr.contains("tools/health_check.md: is missing"), "{}", r.stderr);
}

#[test]
fn the_repository_root_is_a_valid_workspace() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(support::bin()).args(["--workspace", root, "validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_usage_exits_2() {
    let ws = Ws::new(OK_POLICY, OK_CHECKS);
    assert_eq!(ws.run(&["no-such-command"]).code, 2);
    assert_eq!(ws.run(&["check", "no-such-check"]).code, 2);
}

#[test]
fn replace_node_names_a_declared_webhook() {
    let ws = Ws::new("replace_node:\n  webhook: node-pool\n  after: soon\n  url: http://x\n", "checks: []\n");
    let out = ws.run(&["validate"]);
    assert_eq!(out.code, 2);
    let text = out.stdout + &out.stderr;
    for want in ["replace_node: no webhook named `node-pool`", "declare it under webhooks:", "replace_node: `after`", "unknown key `url`"] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let ws = Ws::new("webhooks:\n  - name: node-pool\n    url: http://127.0.0.1:5678/webhook/replace-node\nreplace_node:\n  webhook: node-pool\n", "checks: []\n");
    assert_eq!(ws.run(&["validate"]).code, 0);
}

#[test]
fn verification_steps_name_other_declared_checks() {
    let ws = Ws::new(OK_POLICY, "checks:\n  - name: a\n    kind: exec\n    command: \"true\"\n    verify:\n      connectivity: a\n      performance: [a-latency]\n      speed: b\n");
    let out = ws.run(&["validate"]);
    assert_eq!(out.code, 2);
    let text = out.stdout + &out.stderr;
    for want in ["verify connectivity names the check itself", "verify performance names `a-latency`, which is not a declared check", "unknown key `speed`", "HEARTBEAT.md:"] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn durations_on_the_command_line_are_bounded() {
    let ws = Ws::new(OK_POLICY, OK_CHECKS);
    assert_eq!(ws.run(&["heartbeat"]).code, 0);
    for args in [&["memory", "compact", "--older-than", "100000000d"][..], &["audit", "report", "--since", "100000000d"], &["incidents", "stats", "--since", "100000000d"]] {
        let r = ws.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("duration `100000000d` is longer than the longest nightshift accepts, 36500d (100 years): write a shorter one"), "{args:?}: {}", r.stderr);
    }
    let r = ws.run(&["memory", "compact", "--older-than", "36500d"]);
    assert_eq!(r.code, 0, "the longest accepted duration works: {}", r.stderr);
}
