//! What the simulated kubelet's pods answer on their own addresses and
//! through `pods/exec`, for `k8s-probe`.
//!
//! A pod with the annotation [`PROBE`] gets a loopback address
//! (127.a.b.c, from 127.1.0.1 up; the rest of the simulator's pods keep
//! 10.x addresses, because the API server refuses loopback addresses in
//! Endpoints) and listens on each container port its spec declares:
//!
//! - `ok`: HTTP 200 to any request (a TCP connect succeeds);
//! - `fail`: HTTP 500 (a TCP connect still succeeds);
//! - `refuse`: nothing listens: connections are refused;
//! - `hang`: the port's accept queue is full, so a connect never completes
//!   (the kernel drops the SYNs) and HTTP and TCP probes time out.
//!
//! Patch a live pod's annotation to change its answer.
//!
//! Exec: the API server proxies `pods/exec` to the node's kubelet port
//! (`GET /exec/{namespace}/{pod}/{container}?command=…&output=1&error=1`,
//! upgraded to a WebSocket); the kubelet endpoint answers it from the pod's
//! [`EXEC`] annotation: `ok` (the default; exit 0), `fail` (exit 1), a
//! number (that exit code), or `hang` (no answer). The output is
//! [`EXEC_OUTPUT`], else `ran <command> in <container>`. As a 1.20 kubelet
//! does, it speaks the `v4.channel.k8s.io` WebSocket protocol (channel 1
//! stdout, 2 stderr, 3 the exit status as a `Status`); SPDY (kubectl's
//! exec) is refused with a 400 that says so.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const PROBE: &str = "sim.nightshift.test/probe";
pub const EXEC: &str = "sim.nightshift.test/exec";
pub const EXEC_OUTPUT: &str = "sim.nightshift.test/exec-output";

/// How a pod answers on its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Fail,
    Refuse,
    Hang,
}

impl Answer {
    /// The pod's [`PROBE`] annotation; `None` when it has none (no loopback address, no listeners).
    pub fn of(pod: &Pod) -> Option<Answer> {
        let v = pod.metadata.annotations.as_ref()?.get(PROBE)?;
        Some(match v.trim() {
            "fail" => Answer::Fail,
            "refuse" => Answer::Refuse,
            "hang" => Answer::Hang,
            "" | "ok" => Answer::Ok,
            other => {
                eprintln!("sim kubelet: unknown {PROBE} {other:?}; the pod answers ok");
                Answer::Ok
            }
        })
    }
}

/// A loopback address for a probed pod: 127.a.b.c from a per-process
/// counter with a random start (concurrent test processes rarely meet).
pub fn next_loopback_ip() -> String {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    const SPACE: u32 = 254 * 256 * 254;
    let n = NEXT
        .get_or_init(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            AtomicU32::new((std::process::id().wrapping_mul(7919) ^ t.subsec_nanos()) % SPACE)
        })
        .fetch_add(1, Ordering::Relaxed)
        % SPACE;
    format!("127.{}.{}.{}", n / (256 * 254) + 1, (n / 254) % 256, n % 254 + 1)
}

/// The container ports a pod declares.
pub fn ports(pod: &Pod) -> Vec<u16> {
    let mut out: Vec<u16> = pod.spec.iter().flat_map(|s| s.containers.iter()).flat_map(|c| c.ports.iter().flatten()).filter_map(|p| u16::try_from(p.container_port).ok()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Serves one port of a pod's address the way `answer` says, until aborted.
pub async fn serve(ip: String, port: u16, answer: Answer) {
    let Ok(addr) = ip.parse::<Ipv4Addr>() else { return };
    let addr = std::net::SocketAddr::from((addr, port));
    match answer {
        Answer::Refuse => std::future::pending::<()>().await,
        Answer::Hang => {
            // An accept queue of one, filled by a connection nobody accepts: later SYNs are dropped.
            let Some(listener) = bind(addr, 0).await else { return };
            let _filler = tokio::net::TcpStream::connect(addr).await;
            let _keep = listener;
            std::future::pending::<()>().await
        }
        Answer::Ok | Answer::Fail => {
            let Some(listener) = bind(addr, 1024).await else { return };
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { continue };
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), async {
                        let mut buf = [0u8; 2048];
                        // A TCP probe connects and closes; an HTTP one sends its request first.
                        let n = conn.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let (status, body) = if answer == Answer::Ok { ("200 OK", "ok\n") } else { ("500 Internal Server Error", "unhealthy\n") };
                        let resp = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        let _ = conn.write_all(resp.as_bytes()).await;
                        let _ = conn.shutdown().await;
                    })
                    .await;
                });
            }
        }
    }
}

/// Binds the pod's address, retrying for a while (a pod of a test process
/// that just exited may still hold it).
async fn bind(addr: std::net::SocketAddr, backlog: u32) -> Option<tokio::net::TcpListener> {
    for _ in 0..50 {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        let _ = socket.set_reuseaddr(true);
        if socket.bind(addr).is_ok()
            && let Ok(l) = socket.listen(backlog)
        {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("sim kubelet: cannot listen on {addr}");
    None
}

/// Whether the request head asks for an exec.
pub fn is_exec(target: &str) -> bool {
    target.starts_with("/exec/")
}

/// Answers `GET /exec/{ns}/{pod}/{container}?command=…` on the kubelet port.
pub async fn exec<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, head: &str, client: &kube::Client) -> std::io::Result<()> {
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let headers: HashMap<String, String> = head.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let refuse = |code: u16, msg: String| format!("HTTP/1.1 {code} Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
    let [_, ns, name, container] = parts[..] else {
        return conn.write_all(refuse(404, format!("404 page not found: {path}")).as_bytes()).await;
    };
    let websocket = headers.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let protocols = headers.get("sec-websocket-protocol").cloned().unwrap_or_default();
    let (Some(key), true, true) = (headers.get("sec-websocket-key"), websocket, protocols.split(',').any(|p| p.trim() == "v4.channel.k8s.io")) else {
        let msg = "the simulated kubelet answers exec over WebSocket (v4.channel.k8s.io) only, not SPDY".to_string();
        return conn.write_all(refuse(400, msg).as_bytes()).await;
    };
    let command: Vec<String> = query.split('&').filter_map(|kv| kv.split_once('=')).filter(|(k, _)| *k == "command").map(|(_, v)| unescape(v)).collect();
    let pod = match Api::<Pod>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => return conn.write_all(refuse(404, format!("pod {name} not found")).as_bytes()).await,
        Err(e) => return conn.write_all(refuse(500, e.to_string()).as_bytes()).await,
    };
    let ann = pod.metadata.annotations.unwrap_or_default();
    let accept = base64(&sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes()));
    let upgrade = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n");
    conn.write_all(upgrade.as_bytes()).await?;
    let code: i32 = match ann.get(EXEC).map(|s| s.trim()) {
        None | Some("") | Some("ok") => 0,
        Some("fail") => 1,
        Some("hang") => return std::future::pending().await,
        Some(n) => n.parse().unwrap_or(1),
    };
    let output = ann.get(EXEC_OUTPUT).cloned().unwrap_or_else(|| format!("ran {} in {container}\n", command.join(" ")));
    let mut frames = frame(0x2, &[&[1u8][..], output.as_bytes()].concat());
    let status = if code == 0 {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        frames.extend(frame(0x2, &[&[2u8][..], format!("command exited with {code}\n").as_bytes()].concat()));
        serde_json::json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    frames.extend(frame(0x2, &[&[3u8][..], status.to_string().as_bytes()].concat()));
    frames.extend(frame(0x8, &1000u16.to_be_bytes()));
    conn.write_all(&frames).await?;
    conn.flush().await?;
    // Wait briefly for the client's close frame, then end the connection.
    let mut sink = [0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut sink)).await;
    conn.shutdown().await
}

/// One unmasked server frame (FIN set).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Percent-decoding of a query value (`+` is a space, as Go's url.Values writes it).
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(()) {
                Ok(x) => {
                    out.push(x);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SHA-1, for the WebSocket handshake's accept key only (RFC 6455 fixes it).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() { s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char) } else { s.push('=') }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_accept_key_is_rfc_6455s_example() {
        // RFC 6455 section 1.3.
        let key = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        assert_eq!(base64(&sha1(key.as_bytes())), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(unescape("cat+%2Ftmp%2Fhealthy"), "cat /tmp/healthy");
    }
}
