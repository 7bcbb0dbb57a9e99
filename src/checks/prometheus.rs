//! `prometheus`: a PromQL instant query with a condition (`above`, `below`,
//! `absent`), evaluated per returned series, so one check covers every node
//! or pod the query returns and each failing series is its own target. A
//! Prometheus that is down or slow is a check error, not an incident about
//! the targets.

use std::time::Duration;

use serde_json::Value;

use super::{Check, Context, Outcome, Series, Status};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Above(f64),
    Below(f64),
    /// Failing when the query returns no series at all.
    Absent,
}

pub struct Prometheus<'a> {
    pub url: &'a str,
    pub query: &'a str,
    pub condition: Condition,
    pub token_env: Option<&'a str>,
    pub timeout: Duration,
}

/// `name{a="1",b="2"}` with labels sorted, the stable target of a series.
pub fn series_name(metric: &serde_json::Map<String, Value>) -> String {
    let name = metric.get("__name__").and_then(Value::as_str).unwrap_or("");
    let mut labels: Vec<(&String, &Value)> = metric.iter().filter(|(k, _)| k.as_str() != "__name__").collect();
    labels.sort_by(|a, b| a.0.cmp(b.0));
    let inner = labels.iter().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",");
    format!("{name}{{{inner}}}")
}

fn number(v: &Value) -> Option<f64> {
    // Prometheus sends [timestamp, "value"]; values may be "NaN", "+Inf".
    v.get(1)?.as_str()?.parse().ok()
}

impl Check for Prometheus<'_> {
    const KIND: &'static str = "prometheus";

    fn target(&self) -> String {
        format!("{} {}", self.url, self.query)
    }

    async fn run(&self, ctx: &Context) -> Outcome {
        let samples = match instant(ctx, self.url, self.query, self.token_env, self.timeout).await {
            Ok(s) => s,
            Err(e) => return Outcome::new(Status::Error, e),
        };
        let mut o = Outcome::new(Status::Ok, "").with("query", self.query).with("series_count", samples.len());
        if self.condition == Condition::Absent {
            if samples.is_empty() {
                o.status = Status::Failing;
                o.summary = format!("`{}` returned no series", self.query);
            } else {
                o.summary = format!("`{}` returned {} series", self.query, samples.len());
            }
            return o;
        }
        for (name, labels, value) in samples {
            let failing = match (self.condition, value) {
                (Condition::Above(t), Some(v)) => v > t,
                (Condition::Below(t), Some(v)) => v < t,
                _ => false,
            };
            let (word, limit) = match self.condition {
                Condition::Above(t) => ("above", t),
                Condition::Below(t) => ("below", t),
                Condition::Absent => ("", 0.0),
            };
            let shown = value.map_or("no value".to_string(), |v| format!("{v}"));
            let summary = if failing { format!("{name} = {shown}, {word} {limit}") } else { format!("{name} = {shown}") };
            let mut evidence = serde_json::Map::new();
            evidence.insert("labels".into(), Value::Object(labels));
            evidence.insert("value".into(), value.map_or(Value::Null, Value::from));
            evidence.insert(word.into(), Value::from(limit));
            o.series.push(Series { target: name, status: if failing { Status::Failing } else { Status::Ok }, summary, evidence });
        }
        let bad = o.series.iter().filter(|s| s.status == Status::Failing).count();
        o.status = if bad > 0 { Status::Failing } else { Status::Ok };
        o.summary = if bad > 0 {
            format!("{bad} of {} series failing: {}", o.series.len(), o.series.iter().filter(|s| s.status == Status::Failing).map(|s| s.summary.as_str()).collect::<Vec<_>>().join("; "))
        } else {
            format!(
                "{} series, none {} {}",
                o.series.len(),
                match self.condition {
                    Condition::Above(_) => "above",
                    _ => "below",
                },
                match self.condition {
                    Condition::Above(t) | Condition::Below(t) => t,
                    Condition::Absent => 0.0,
                }
            )
        };
        o
    }
}

/// One instant query: each returned series as (name, labels, value). A
/// Prometheus that is down, slow, or answers with an error is an `Err`.
pub async fn instant(ctx: &Context, url: &str, query: &str, token_env: Option<&str>, timeout: Duration) -> Result<Vec<(String, serde_json::Map<String, Value>, Option<f64>)>, String> {
    let client = ctx.http()?;
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let mut req = client.get(&endpoint).query(&[("query", query)]).timeout(timeout);
    if let Some(var) = token_env {
        match std::env::var(var) {
            Ok(token) => req = req.bearer_auth(token),
            Err(_) => return Err(format!("environment variable {var} (token_env) is not set")),
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(format!("Prometheus at {url} did not answer within {}", crate::duration::format(timeout))),
        Err(e) => return Err(format!("Prometheus at {url} unreachable: {e}")),
    };
    let code = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return Err(format!("Prometheus answered {code} with no JSON: {e}")),
    };
    if body.get("status").and_then(Value::as_str) != Some("success") {
        let why = body.get("error").and_then(Value::as_str).unwrap_or("no reason given");
        return Err(format!("query failed ({code}): {why}"));
    }
    let data = &body["data"];
    let samples = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let metric = s["metric"].as_object().cloned().unwrap_or_default();
                        (series_name(&metric), metric, number(&s["value"]))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some("scalar") => vec![("scalar".into(), serde_json::Map::new(), number(&data["result"]))],
        other => return Err(format!("query returned {} results; use an instant vector or scalar", other.unwrap_or("no"))),
    };
    Ok(samples)
}
