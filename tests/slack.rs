//! Humans in the loop through Slack, end to end: the `nightshift` binary
//! (`serve` and one-shot runs) against a Slack stand-in on loopback that
//! checks every message against Block Kit's limits and answers like Slack;
//! interactions and thread replies signed with a real signing secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::slack::{SlackStandIn, buttons, click, signed_headers, texts, thread_reply};
use support::{HttpServer, Run, Serve, Ws, eventually};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN: &str = "xoxb-test-token";

/// Check output a stranger controls: mentions, links, markdown, a fence, JSON that looks like blocks.
const HOSTILE: &str = "disk on fire <!channel> <@U0EVE> <http://evil.example|click me> *urgent* `x`\n```\n{\"type\":\"actions\",\"elements\":[{\"type\":\"button\",\"action_id\":\"approve\",\"value\":\"00000000\"}]}\n```\n";

fn heartbeat(check_every: &str) -> String {
    format!("checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy || {{ cat hostile.txt; exit 1; }}\"\n    repair: fix\n{check_every}")
}

fn approval_id(ws: &Ws) -> String {
    let mut id = String::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            let (_, v) = ws.json(&["approvals", "--json"]);
            id = v[0]["id"].as_str().unwrap_or("").to_string();
            !id.is_empty()
        }),
        "no pending approval"
    );
    id
}

fn post(serve: &Serve, path: &str, body: &str, age_s: i64, secret: &str) -> (u16, String) {
    let (ts, sig) = signed_headers(secret, body, age_s);
    let ctype = if path.ends_with("interactions") { "application/x-www-form-urlencoded" } else { "application/json" };
    serve.request("POST", path, &[("X-Slack-Request-Timestamp", &ts), ("X-Slack-Signature", &sig), ("Content-Type", ctype)], body.as_bytes())
}

/// Nothing a stranger wrote became markup, a mention, a link or a button.
fn assert_inert(m: &Value, id: &str) {
    for t in texts(m) {
        for forged in ["<!channel>", "<@U0EVE>", "<http://evil"] {
            assert!(!t.contains(forged), "{forged} reached Slack as markup: {t}");
        }
        if t.contains("*Evidence*") {
            assert_eq!(t.matches("```").count(), 2, "the excerpt's own ``` must not close the fence: {t}");
            assert!(t.contains("&lt;!channel&gt;"), "the excerpt is shown, escaped: {t}");
        }
    }
    for (action, value) in buttons(m) {
        assert!(["approve", "abort", "ack"].contains(&action.as_str()), "{action}");
        assert_ne!(value, "00000000", "a button from the check output");
        if action != "ack" {
            assert_eq!(value, id);
        }
    }
}

fn json_bodies(hook: &HttpServer) -> Vec<Value> {
    hook.requests.lock().unwrap().iter().filter_map(|r| r.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok())).collect()
}

#[test]
fn a_confirm_decision_reaches_slack_with_buttons_and_an_approvers_signed_click_gets_it_done_and_the_message_updated() {
    let slack = SlackStandIn::start(TOKEN);
    let hook = HttpServer::start(200, "");
    let ws = Ws::new(
        &format!(
            "mode: execute\nnotify_window: 0s\nescalation: []\npublic_url: https://nightshift.example.test/\napprover_groups:\n  oncall: [U0ANA, bob]\ncommands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: confirm\n    approvers: [\"@oncall\"]\nwebhooks:\n  - name: team\n    format: slack\n    url: {}\n    token_env: SLACK_BOT_TOKEN\n    channel: C0OPS\n  - name: n8n\n    url: {}\n",
            slack.api_url(),
            hook.url("/n8n")
        ),
        &heartbeat("    every: 1s\n"),
    );
    std::fs::write(ws.path().join("hostile.txt"), HOSTILE).unwrap();
    let serve = Serve::start(&ws, &["--execute"], &[("SLACK_SIGNING_SECRET", SECRET), ("SLACK_BOT_TOKEN", TOKEN)]);
    let id = approval_id(&ws);

    // The request: Approve and Abort, everything a person needs to decide, nothing forged.
    assert!(eventually(Duration::from_secs(10), || slack.got("chat.postMessage").iter().any(|r| !buttons(&r.body).is_empty())));
    let request = slack.got("chat.postMessage").into_iter().find(|r| !buttons(&r.body).is_empty()).unwrap();
    assert_eq!(request.body["channel"], "C0OPS");
    assert_eq!(buttons(&request.body), vec![("approve".to_string(), id.clone()), ("abort".to_string(), id.clone())]);
    let all = texts(&request.body).join("\n");
    for want in [
        "Approval needed: run declared command `fix`",
        "run_command",
        "command=fix",
        "AGENTS.md line",
        "Blast radius:* 1",
        "Risk:*",
        &format!("`{id}`"),
        "Expires",
        &format!("nightshift approve {id}"),
        &format!("https://nightshift.example.test/approvals/{id}/approve"),
        "check `app",
        "*Evidence*",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert_inert(&request.body, &id);

    // The JSON webhook gets the same request as data.
    assert!(eventually(Duration::from_secs(5), || json_bodies(&hook).iter().any(|b| b["kind"] == "approval_request")));
    let j = json_bodies(&hook).into_iter().find(|b| b["kind"] == "approval_request").unwrap();
    assert_eq!(j["approval"]["id"], id.as_str());
    assert_eq!(j["approval"]["action"]["action"], "run_command");
    assert_eq!(j["approval"]["action"]["command"], "fix");
    assert_eq!(j["approval"]["approve_url"], format!("https://nightshift.example.test/approvals/{id}/approve"));
    assert_eq!(j["approval"]["abort_url"], format!("https://nightshift.example.test/approvals/{id}/abort"));
    assert!(j["approval"]["deadline"].as_str().is_some_and(|d| d.ends_with('Z')) && j["approval"]["reason"].as_str().is_some_and(|r| r.contains("decides confirm")), "{j}");
    assert_eq!((j["severity"].as_str(), j["incident"].is_string(), j["link"].as_str().is_some_and(|l| l.starts_with("incidents/"))), (Some("warning"), true, true), "{j}");

    // Stale and tampered clicks are refused; a stranger's click is refused to them alone, and audited.
    let ts = request.answer["ts"].as_str().map(str::to_string);
    assert!(ts.is_some(), "Slack answered with the message's ts");
    let ana = click("approve", &id, "U0ANA", "ana", &slack.response_url(1), ts.as_deref());
    assert_eq!(post(&serve, "/slack/interactions", &ana, 600, SECRET).0, 401, "a replayed click");
    assert_eq!(post(&serve, "/slack/interactions", &ana, 0, "another-secret").0, 401, "a forged signature");
    let eve = click("approve", &id, "U0EVE", "eve", &slack.response_url(2), ts.as_deref());
    let (code, text) = post(&serve, "/slack/interactions", &eve, 0, SECRET);
    assert_eq!(code, 200, "{text}");
    assert!(eventually(Duration::from_secs(5), || slack.got("response_url").iter().any(|r| r.path == "/response/2")));
    let refusal = slack.got("response_url").into_iter().find(|r| r.path == "/response/2").unwrap().body;
    assert_eq!(refusal["response_type"], "ephemeral");
    assert!(refusal["text"].as_str().unwrap().contains("slack:eve may not decide") && refusal["text"].as_str().unwrap().contains("U0ANA, bob"), "{refusal}");
    let (_, pending) = ws.json(&["approvals", "--json"]);
    assert_eq!(pending[0]["status"], "pending", "a stranger's click changed nothing");
    assert!(ws.audit_text().contains("approve refused"), "{}", ws.audit_text());
    assert!(!ws.path().join("healthy").exists());

    // An approver's click: the next pass acts, and the message says who, when, and the verified result.
    let (code, text) = post(&serve, "/slack/interactions", &ana, 0, SECRET);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("slack:ana"), "{text}");
    assert!(eventually(Duration::from_secs(15), || ws.path().join("healthy").exists()), "the approved action did not run");
    assert!(eventually(Duration::from_secs(15), || slack.got("chat.update").iter().any(|u| texts(&u.body).join(" ").contains("Result:"))), "no update with the result: {:?}", slack.got("chat.update"));
    let update = slack.got("chat.update").into_iter().rfind(|u| texts(&u.body).join(" ").contains("Result:")).unwrap().body;
    assert_eq!((update["channel"].as_str(), update["ts"].as_str()), (Some("C0OPS"), ts.as_deref()), "the request's own message is updated");
    let said = texts(&update).join("\n");
    assert!(said.contains("Approved by slack:ana at") && said.contains("*Result:* ok") && said.contains("incident resolved"), "{said}");
    assert!(buttons(&update).is_empty(), "a decided request has no buttons left: {update}");
    assert!(eventually(Duration::from_secs(5), || json_bodies(&hook).iter().any(|b| b["kind"] == "approval_outcome" && b["approval"]["status"] == "done")));
    let outcome = json_bodies(&hook).into_iter().find(|b| b["kind"] == "approval_outcome" && b["approval"]["status"] == "done").unwrap();
    assert_eq!(outcome["approval"]["decided_by"], "slack:ana");
    assert!(outcome["approval"]["result"].as_str().unwrap().starts_with("ok"), "{outcome}");
    assert_eq!(slack.violations(), Vec::<String>::new(), "every message within Block Kit's limits");
    drop(serve);
}

#[test]
fn an_abort_window_aborted_by_a_signed_thread_reply_never_runs_and_the_message_says_who() {
    let slack = SlackStandIn::start(TOKEN);
    let ws = Ws::new(
        &format!(
            "mode: execute\nnotify_window: 0s\nescalation: []\ncommands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: abort-window\n    abort_window: 15s\n    approvers: [U0ANA]\nwebhooks:\n  - name: team\n    format: slack\n    url: {}\n    token_env: SLACK_BOT_TOKEN\n    channel: C0OPS\n",
            slack.api_url()
        ),
        &heartbeat("    every: 1s\n    cooldown: 1h\n"),
    );
    std::fs::write(ws.path().join("hostile.txt"), HOSTILE).unwrap();
    // The window (15 s) leaves room for the refusals below on a loaded machine; the test
    // waits past its deadline before saying the action never ran.
    let serve = Serve::start(&ws, &["--execute"], &[("SLACK_SIGNING_SECRET", SECRET), ("SLACK_BOT_TOKEN", TOKEN)]);
    let id = approval_id(&ws);
    let started = std::time::Instant::now(); // the approval exists: its deadline is at most 15 s away
    assert!(eventually(Duration::from_secs(10), || slack.got("chat.postMessage").iter().any(|r| !buttons(&r.body).is_empty())));
    let posted = slack.got("chat.postMessage").into_iter().find(|r| !buttons(&r.body).is_empty()).unwrap();
    let request = posted.body;
    assert_eq!(buttons(&request), vec![("abort".to_string(), id.clone())], "an abort window offers Abort only");
    let header = texts(&request)[0].clone();
    assert!(header.starts_with("Acting at ") && header.contains("UTC unless aborted"), "{header}");
    assert_inert(&request, &id);
    let ts = posted.answer["ts"].as_str().unwrap().to_string();
    // Slack answers chat.postMessage before nightshift records the message's ts; a reply in
    // the thread finds its approval by that record, so the test waits for it as a user would
    // (no one replies within the millisecond between the two).
    assert!(
        eventually(Duration::from_secs(10), || ws.json(&["approvals", "--json"]).1[0]["posted"].as_array().is_some_and(|p| p.iter().any(|p| p["ts"].as_str() == Some(ts.as_str())))),
        "the posted message's ts is never recorded"
    );

    // Slack's URL check, and unsigned events, as Slack's own setup does them.
    let challenge = r#"{"type":"url_verification","token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#;
    let (code, text) = post(&serve, "/slack/events", challenge, 0, SECRET);
    assert_eq!((code, serde_json::from_str::<Value>(&text).unwrap()["challenge"].as_str()), (200, Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")));
    let abort_eve = thread_reply("abort", "U0EVE", "C0OPS", &ts);
    assert_eq!(serve.request("POST", "/slack/events", &[], abort_eve.as_bytes()).0, 401, "unsigned");
    assert_eq!(post(&serve, "/slack/events", &abort_eve, 400, SECRET).0, 401, "stale");

    // Someone not on the list: told why in the thread, only them; nothing changes.
    let (code, text) = post(&serve, "/slack/events", &abort_eve, 0, SECRET);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("may not decide"), "the reply is matched to its approval and refused: {text}");
    assert!(eventually(Duration::from_secs(5), || !slack.got("chat.postEphemeral").is_empty()));
    let eph = slack.got("chat.postEphemeral")[0].body.clone();
    assert_eq!((eph["user"].as_str(), eph["channel"].as_str(), eph["thread_ts"].as_str()), (Some("U0EVE"), Some("C0OPS"), Some(ts.as_str())));
    assert!(eph["text"].as_str().unwrap().contains("may not decide"), "{eph}");
    let (_, pending) = ws.json(&["approvals", "--json"]);
    assert_eq!(pending[0]["status"], "pending");

    // The approver replies `Abort` in the thread: nothing runs, ever; the message says who.
    let (code, text) = post(&serve, "/slack/events", &thread_reply("Abort", "U0ANA", "C0OPS", &ts), 0, SECRET);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("aborted"), "{text}");
    assert!(eventually(Duration::from_secs(10), || slack.got("chat.update").iter().any(|u| texts(&u.body).join(" ").contains("Aborted by slack:U0ANA"))), "{:?}", slack.got("chat.update"));
    let update = slack.got("chat.update").into_iter().find(|u| texts(&u.body).join(" ").contains("Aborted by")).unwrap().body;
    assert_eq!(update["ts"].as_str(), Some(ts.as_str()));
    assert!(buttons(&update).is_empty());
    std::thread::sleep(Duration::from_secs(18).saturating_sub(started.elapsed()).max(Duration::from_secs(2)));
    assert!(!ws.path().join("healthy").exists(), "an aborted window's action ran");
    assert!(ws.audit_text().contains("abort refused"), "the stranger's reply is audited");
    assert_eq!(slack.violations(), Vec::<String>::new());
    drop(serve);
}

#[test]
fn an_incoming_webhook_gets_the_request_the_escalation_with_ack_and_a_new_message_when_a_cli_approver_decides() {
    let slack = SlackStandIn::start(TOKEN);
    let ws = Ws::new(
        &format!(
            "mode: execute\nnotify_window: 0s\nescalation:\n  - after: 5s\ncommands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: confirm\n    approvers: [ana]\nwebhooks:\n  - name: team\n    format: slack\n    url: {}\n",
            slack.incoming_url()
        ),
        &heartbeat(""),
    );
    std::fs::write(ws.path().join("hostile.txt"), HOSTILE).unwrap();
    let as_user = |user: &str, args: &[&str]| -> Run { ws.cmd(args).env("USER", user).output().unwrap().into() };
    // The escalation is due 5 s after the incident opens: wide enough that a slow first pass
    // does not escalate too; the second pass starts once it is due.
    let opened = std::time::Instant::now();
    as_user("ana", &["heartbeat", "--all"]);
    let id = approval_id(&ws);
    let with_buttons = |action: &str| slack.got("incoming").into_iter().filter(|r| buttons(&r.body).iter().any(|(a, _)| a == action)).collect::<Vec<_>>();
    assert_eq!(with_buttons("approve").len(), 1, "{:?}", slack.got("incoming"));
    std::thread::sleep(Duration::from_millis(6100).saturating_sub(opened.elapsed()));
    as_user("ana", &["heartbeat", "--all"]);
    let esc = with_buttons("ack");
    assert_eq!(esc.len(), 1, "the escalation carries Ack: {:?}", slack.got("incoming"));
    let inc = ws.run(&["incidents", "list"]).stdout.split_whitespace().next().unwrap().to_string();
    let b = buttons(&esc[0].body);
    assert!(b.contains(&("ack".to_string(), inc.clone())) && b.contains(&("approve".to_string(), id.clone())), "the waiting approval rides along with the escalation: {b:?}");
    for r in slack.got("incoming") {
        assert_inert(&r.body, &id);
    }

    let out = as_user("eve", &["approve", &id]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("eve may not decide") && out.stderr.contains("names the approvers ana"), "{}", out.stderr);
    let out = as_user("ana", &["approve", &id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    as_user("ana", &["heartbeat"]);
    assert!(ws.path().join("healthy").exists(), "the approved action ran");
    // No message id to update through an incoming webhook nobody clicked: a new message says it.
    let outcomes: Vec<String> = slack.got("incoming").into_iter().map(|r| texts(&r.body).join("\n")).filter(|t| t.contains("Approved by ana")).collect();
    assert_eq!(outcomes.len(), 1, "one outcome message, though the request went out twice (request, escalation): {outcomes:?}");
    let outcome = &outcomes[0];
    assert!(outcome.contains("*Result:* ok"), "{outcome}");
    assert_eq!(slack.violations(), Vec::<String>::new());
}

#[test]
fn slack_webhooks_approvers_and_public_url_are_validated_with_line_and_fix() {
    let ws = Ws::new(
        "public_url: not a url\napprover_groups:\n  oncall: []\nrules:\n  - action: run_command\n    decide: confirm\n    approvers: [\"@nobody\"]\nwebhooks:\n  - name: team\n    format: slack\n    token_env: SLACK_BOT_TOKEN\n  - name: plain\n    url: http://127.0.0.1:1/x\n    channel: C1\n  - name: odd\n    format: teams\n    url: http://127.0.0.1:1/y\n",
        "checks: []\n",
    );
    let out = ws.run(&["validate"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let text = out.stdout + &out.stderr;
    for want in [
        "AGENTS.md:6: `public_url: not a url` is not an http(s) URL",
        "AGENTS.md:8: approver group `oncall` must list at least one",
        "approver group `@nobody` is not declared",
        "a Slack bot token needs both `token_env` and `channel`",
        "`token_env` and `channel` are for `format: slack`",
        "unknown format `teams`",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
