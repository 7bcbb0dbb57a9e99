//! nightshift against a real model server (scripts/real-model.sh starts
//! llama-server with Gemma 3 270M and sets NIGHTSHIFT_REAL_MODEL_URL). A
//! recording proxy sits between them, so the test sees nightshift's real
//! requests and the real model's real responses. A base model this small
//! chooses nonsense: the test checks the protocol, not judgement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use support::Ws;

type Exchange = (serde_json::Value, serde_json::Value);

/// Forwards each request to `upstream` (host:port) and records both bodies.
fn proxy(upstream: String) -> (String, Arc<Mutex<Vec<Exchange>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let Some((head, body)) = support::read_request(&mut conn) else { continue };
            let first = head.lines().next().unwrap_or("").to_string();
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut up = TcpStream::connect(&upstream).unwrap();
            let req = format!("POST {path} HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
            up.write_all(req.as_bytes()).unwrap();
            up.write_all(&body).unwrap();
            let mut raw = Vec::new();
            up.read_to_end(&mut raw).unwrap();
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
            let reply: serde_json::Value = serde_json::from_slice(&raw[split..]).unwrap_or(serde_json::Value::Null);
            s.lock().unwrap().push((serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null), reply));
            let _ = conn.write_all(&raw);
        }
    });
    (addr, seen)
}

#[test]
#[ignore = "needs a real model server: run scripts/real-model.sh"]
fn a_real_model_speaks_the_protocol_end_to_end() {
    let url = std::env::var("NIGHTSHIFT_REAL_MODEL_URL").expect("NIGHTSHIFT_REAL_MODEL_URL");
    let upstream = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let (addr, seen) = proxy(upstream);
    let ws = Ws::new(
        &format!(
            "commands:\n  fix: \"touch healthy\"\nrules:\n  - action: run_command\n    decide: auto\nmodel:\n  base_url: http://{addr}/v1\n  name: gemma-3-270m\n  max_turns: 3\n  max_completion_tokens: 200\n  timeout: 120s\n  deadline: 300s\n"
        ),
        "checks:\n  - name: app\n    kind: exec\n    command: \"test -f healthy || { cat output.txt; exit 1; }\"\n",
    );
    std::fs::write(ws.path().join("output.txt"), "upstream timeout after 30s; connection pool exhausted (50/50)").unwrap();
    let (code, v) = ws.json(&["heartbeat", "--execute", "--json"]);
    assert_eq!(code, 1, "{v}");
    let exchanges = seen.lock().unwrap().clone();
    assert!(!exchanges.is_empty(), "nightshift sent nothing to the model");
    let mut prompt = 0u64;
    let mut completion = 0u64;
    for (i, (req, reply)) in exchanges.iter().enumerate() {
        assert_eq!(req["model"], "gemma-3-270m");
        assert!(!req["tools"].as_array().unwrap().is_empty());
        assert!(reply["choices"].is_array(), "exchange {i}: the real server answered {reply}");
        prompt += reply["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        completion += reply["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        // Every tool call nightshift saw earlier got exactly one result.
        let msgs = req["messages"].as_array().unwrap();
        for (j, m) in msgs.iter().enumerate() {
            for call in m["tool_calls"].as_array().into_iter().flatten() {
                let n = msgs[j + 1..].iter().filter(|x| x["role"] == "tool" && x["tool_call_id"] == call["id"]).count();
                assert_eq!(n, 1, "exchange {i}: call {} answered {n} times", call["id"]);
            }
        }
        let calls = reply["choices"][0]["message"]["tool_calls"].as_array().map_or(0, Vec::len);
        println!("exchange {i}: prompt {} tokens, completion {} tokens, {calls} tool call(s)", reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"]);
    }
    assert!(prompt > 0, "the real model reported no prompt tokens");
    let diagnosis = v["incidents"][0]["diagnosis"].to_string();
    let expected = format!("{} request(s), {prompt} prompt + {completion} completion tokens", exchanges.len());
    assert!(diagnosis.contains(&expected), "the note records what the model reported ({expected}): {diagnosis}");
    println!(
        "first request: {} prompt tokens (the model's own tokenizer); investigation ended: {}",
        exchanges[0].1["usage"]["prompt_tokens"],
        diagnosis.split("ended: ").nth(1).unwrap_or("?").split('"').next().unwrap_or("?")
    );
}
