//! Benchmark: the agent loop against a scripted OpenAI-compatible server on
//! loopback (answers instantly, so what is measured is nightshift). Prints,
//! per scripted scenario, requests and tokens per incident (the scripted
//! usage and, for the prompt, an estimate of what nightshift actually sent:
//! bytes / 4), the size of the first request, and the loop's overhead per
//! turn (heartbeat with the model minus the same heartbeat without, divided
//! by the turns). Each of those runs starts with an empty memory (a novel
//! problem every time); then a recall: one incident the model fixes, its
//! check failing again the same way, memory kept, and the requests the second
//! incident cost. With NIGHTSHIFT_REAL_MODEL_URL set (an OpenAI-compatible
//! server such as llama-server), also the real prompt tokens of the first
//! request as that model's tokenizer counts them.
//! Run with `cargo bench --bench model`.
#![allow(clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{measure, ms};
use serde_json::{Value, json};

fn completion(message: Value, usage: (u32, u32)) -> Value {
    json!({ "id": "b", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1 } })
}

fn call(name: &str, args: &str) -> Value {
    completion(json!({ "role": "assistant", "content": null, "tool_calls": [{ "id": "c", "type": "function", "function": { "name": name, "arguments": args } }] }), (0, 20))
}

fn done() -> Value {
    completion(json!({ "role": "assistant", "content": "Root cause: marker missing. Fixed by fix. Prevention: create it at deploy." }), (0, 40))
}

/// Serves the script forever (looping), recording request bodies.
fn serve(script: Vec<Value>, seen: Arc<Mutex<Vec<Vec<u8>>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().flatten().enumerate() {
            let mut conn = conn;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break 0,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            while buf.len() < head_end + len {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            seen.lock().expect("lock").push(buf[head_end..].to_vec());
            let body = script[i % script.len()].to_string();
            let _ = conn.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    addr
}

fn workspace(dir: &std::path::Path, model_url: Option<&str>) {
    let model = model_url.map(|u| format!("model:\n  base_url: {u}\n  name: bench\n")).unwrap_or_default();
    std::fs::write(dir.join("AGENTS.md"), format!("# Manual\n\nProduction web tier. Restart only through declared commands.\n\n```policy\nmode: dry-run\ncommands:\n  fix: \"true\"\nrules:\n  - action: run_command\n    decide: auto\n{model}```\n")).expect("write");
    std::fs::write(dir.join("HEARTBEAT.md"), "```heartbeat\nchecks:\n  - name: app\n    kind: exec\n    command: \"echo 'upstream timeout after 30s; pool exhausted (50/50)'; exit 1\"\n```\n")
        .expect("write");
}

fn run(dir: &std::path::Path) -> Duration {
    let _ = std::fs::remove_dir_all(dir.join("memory"));
    heartbeat(dir, &[])
}

/// One `heartbeat --all` (plus `extra`), memory as it is.
fn heartbeat(dir: &std::path::Path, extra: &[&str]) -> Duration {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nightshift"));
    cmd.arg("--workspace").arg(dir).args(["heartbeat", "--all"]).args(extra).env_remove("OPENAI_BASE_URL").env_remove("OPENAI_API_KEY");
    measure(&mut cmd).0
}

/// The recall: the model fixes the incident once (a declared command that
/// makes the check pass), the check fails again, memory kept. Returns the
/// requests of the first incident and of the second.
fn recall() -> (usize, usize) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(vec![call("repair", r#"{"action":"run_command","command":"fix","root":null,"process":null,"webhook":null,"message":null}"#), done()], seen.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("AGENTS.md"),
        format!("# Manual\n\n```policy\ncommands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: auto\nmodel:\n  base_url: http://{addr}/v1\n  name: bench\n```\n"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("HEARTBEAT.md"),
        "```heartbeat\nchecks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy || { echo 'upstream timeout after 30s; pool exhausted (50/50)'; exit 1; }\"\n    cooldown: 0s\n```\n",
    )
    .expect("write");
    heartbeat(dir.path(), &["--execute"]);
    assert!(dir.path().join("healthy").exists(), "the model's fix did not run");
    let first = seen.lock().expect("lock").len();
    std::fs::remove_file(dir.path().join("healthy")).expect("rm");
    heartbeat(dir.path(), &["--execute"]);
    assert!(dir.path().join("healthy").exists(), "the remembered fix did not run");
    (first, seen.lock().expect("lock").len() - first)
}

fn main() {
    let scenarios: Vec<(&str, Vec<Value>)> = vec![
        ("answer at once", vec![done()]),
        ("3 read-only calls, then answer", vec![call("health_check", r#"{"check":"app"}"#), call("diagnose", r#"{"check":"app"}"#), call("search_memory", r#"{"query":"upstream timeout"}"#), done()]),
        (
            "2 calls, a repair, then answer",
            vec![
                call("health_check", r#"{"check":"app"}"#),
                call("search_memory", r#"{"query":"pool exhausted"}"#),
                call("repair", r#"{"action":"run_command","command":"fix","root":null,"process":null,"webhook":null,"message":null}"#),
                done(),
            ],
        ),
    ];
    let base = tempfile::tempdir().expect("tempdir");
    workspace(base.path(), None);
    let mut without: Vec<Duration> = (0..10).map(|_| run(base.path())).collect();
    without.sort();
    let baseline = without[without.len() / 2];
    println!("agent loop against a scripted model on loopback (baseline heartbeat without the model: {:.1} ms median)", ms(baseline));
    let mut medians = Vec::new();
    for (name, script) in scenarios {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addr = serve(script.clone(), seen.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        workspace(dir.path(), Some(&format!("http://{addr}/v1")));
        let mut walls: Vec<Duration> = (0..10).map(|_| run(dir.path())).collect();
        walls.sort();
        let bodies = seen.lock().expect("lock").clone();
        let per_incident = bodies.len() / 10;
        let sizes: Vec<usize> = bodies.iter().take(per_incident).map(Vec::len).collect();
        let sent_tokens: usize = sizes.iter().map(|b| b / 4).sum();
        let completion: u64 = script.iter().map(|r| r["usage"]["completion_tokens"].as_u64().unwrap_or(0)).sum();
        let overhead = walls[walls.len() / 2].saturating_sub(baseline).as_secs_f64() * 1000.0 / per_incident.max(1) as f64;
        medians.push(sent_tokens as u64 + completion);
        println!(
            "  {name}: {per_incident} request(s); first request {} bytes ≈ {} tokens; whole investigation ≈ {} prompt + {completion} completion tokens; loop overhead {overhead:.1} ms per turn",
            sizes[0],
            sizes[0] / 4,
            sent_tokens
        );
    }
    medians.sort_unstable();
    println!("  median tokens per novel investigation ≈ {} (estimate: bytes / 4)", medians[medians.len() / 2]);
    let (first, again) = recall();
    println!("  a problem memory already knows: the first incident took {first} request(s), the same failure again {again} request(s)");
    if let Ok(url) = std::env::var("NIGHTSHIFT_REAL_MODEL_URL") {
        let dir = tempfile::tempdir().expect("tempdir");
        workspace(dir.path(), Some(&url));
        std::fs::write(dir.path().join("AGENTS.md"), std::fs::read_to_string(dir.path().join("AGENTS.md")).expect("read").replace("name: bench\n", "name: bench\n  max_turns: 1\n")).expect("write");
        run(dir.path());
        let audit = std::fs::read_dir(dir.path().join("memory/audit")).expect("audit").flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect::<String>();
        let line = audit.lines().find(|l| l.contains("tokens:")).unwrap_or("no model answer recorded");
        println!("  real model at {url}, first request: {line}");
    }
}
