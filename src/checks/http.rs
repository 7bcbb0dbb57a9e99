//! `http`: a GET answers with the expected status (any 2xx/3xx by default),
//! optionally containing a string, within the timeout.

use std::time::{Duration, Instant};

use super::{Check, Context, Outcome, Status};

pub struct Http<'a> {
    pub url: &'a str,
    pub expect_status: Option<u16>,
    pub body_contains: Option<&'a str>,
    pub timeout: Duration,
    pub max_latency: Option<Duration>,
}

const MAX_BODY: usize = 1024 * 1024;

impl Check for Http<'_> {
    const KIND: &'static str = "http";

    fn target(&self) -> String {
        self.url.to_string()
    }

    async fn run(&self, ctx: &Context) -> Outcome {
        let client = match ctx.http() {
            Ok(c) => c,
            Err(e) => return Outcome::new(Status::Error, e),
        };
        let started = Instant::now();
        let mut resp = match client.get(self.url).timeout(self.timeout).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() { format!("no answer within {}", crate::duration::format(self.timeout)) } else { error_chain(&e) };
                return Outcome::new(Status::Failing, format!("GET {}: {why}", self.url)).with("error", why);
            }
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        if self.body_contains.is_some() || !status_ok(status, self.expect_status) {
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) if body.len() < MAX_BODY => body.extend_from_slice(&chunk),
                    Ok(_) => break,
                    Err(e) => return Outcome::new(Status::Failing, format!("GET {}: body: {}", self.url, error_chain(&e))),
                }
            }
        }
        let latency = started.elapsed();
        let ms = latency.as_millis() as u64;
        let text = String::from_utf8_lossy(&body);
        let mut failures = Vec::new();
        if !status_ok(status, self.expect_status) {
            match self.expect_status {
                Some(e) => failures.push(format!("status {status}, expected {e}")),
                None => failures.push(format!("status {status}")),
            }
        }
        if let Some(needle) = self.body_contains
            && !text.contains(needle)
        {
            failures.push(format!("body does not contain {needle:?}"));
        }
        if let Some(max) = self.max_latency.filter(|m| latency > *m) {
            failures.push(format!("took {ms} ms, limit {} ms", max.as_millis()));
        }
        let mut o = if failures.is_empty() {
            Outcome::new(Status::Ok, format!("GET {} → {status} in {ms} ms", self.url))
        } else {
            Outcome::new(Status::Failing, format!("GET {}: {}", self.url, failures.join(", "))).with("body_excerpt", super::tail(&text, 512))
        };
        o = o.with("status", status).with("latency_ms", ms);
        o
    }
}

fn status_ok(status: u16, expect: Option<u16>) -> bool {
    match expect {
        Some(e) => status == e,
        None => (200..400).contains(&status),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}
