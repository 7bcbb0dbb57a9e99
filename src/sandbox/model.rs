//! A scripted OpenAI-compatible model on loopback, for the drill: each
//! `POST …/chat/completions` gets the next scripted answer (then an error),
//! and every request is kept so the drill can check what the agent sent.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct ScriptedModel {
    pub addr: String,
    requests: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::AbortHandle,
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An answer calling tools: (call id, tool, arguments as JSON text).
pub fn tool_calls(calls: &[(&str, &str, &str)]) -> Value {
    let calls: Vec<Value> = calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect();
    completion(json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls")
}

/// A final answer.
pub fn answer(text: &str) -> Value {
    completion(json!({"role": "assistant", "content": text}), "stop")
}

fn completion(message: Value, finish: &str) -> Value {
    json!({"id": "chatcmpl-drill", "object": "chat.completion", "created": 1_764_000_000, "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040}})
}

impl ScriptedModel {
    pub async fn start(script: Vec<Value>) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (seen, script) = (seen.clone(), script.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut conn).await else { return };
                    if let Ok(mut s) = seen.lock() {
                        s.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    }
                    let next = script.lock().ok().and_then(|mut s| s.pop_front());
                    let (status, reply) = match next {
                        Some(r) => (200, r),
                        None => (500, json!({"error": {"message": "the drill's script is exhausted", "type": "server_error"}})),
                    };
                    let text = reply.to_string();
                    let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", text.len());
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(text.as_bytes()).await;
                });
            }
        })
        .abort_handle();
        Ok(ScriptedModel { addr, requests, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The request bodies received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// One HTTP/1.1 request's body (by Content-Length).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}
