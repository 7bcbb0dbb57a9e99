//! Traces of nightshift's own pipeline over OTLP/HTTP, received by a
//! loopback receiver: off unless an endpoint is configured; every stage of a
//! heartbeat is a span of one trace, and the incident's spans carry its id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{HttpServer, Ws};

/// A workspace whose check fails until its declared repair runs.
fn failing_until_repaired() -> Ws {
    Ws::new(
        "mode: execute\ncommands:\n  fix: touch repaired\nrules:\n  - action: run_command\n    decide: auto\n",
        "checks:\n  - name: app\n    kind: exec\n    command: test -f repaired\n    repair: fix\n",
    )
}

/// The bodies POSTed to /v1/traces.
fn exports(receiver: &HttpServer) -> Vec<(String, Vec<u8>)> {
    receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("POST /v1/traces "))
        .map(|r| {
            let (head, body) = r.split_once("\r\n\r\n").unwrap();
            (head.to_ascii_lowercase(), body.as_bytes().to_vec())
        })
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

fn attr_str<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attr(span, key).and_then(|v| v["stringValue"].as_str())
}

#[test]
fn a_heartbeat_is_one_trace_from_signal_to_notify_and_the_incident_spans_carry_its_id() {
    let receiver = HttpServer::start(200, "{}");
    let ws = failing_until_repaired();
    let out = ws.cmd(&["heartbeat", "--json"]).env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.addr)).env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json").output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let id = report["incidents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(report["incidents"][0]["status"], "resolved", "{report:#}");

    // The spans arrive before the process exits (the last batch is flushed at shutdown).
    let bodies = exports(&receiver);
    assert!(!bodies.is_empty(), "no export reached the receiver: {:?}", receiver.requests.lock().unwrap());
    assert!(bodies.iter().all(|(head, _)| head.contains("content-type: application/json")), "{bodies:?}");
    let mut spans = Vec::new();
    for (_, body) in &bodies {
        let v: Value = serde_json::from_slice(body).unwrap();
        for rs in v["resourceSpans"].as_array().unwrap() {
            let service = rs["resource"]["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "service.name").unwrap();
            assert_eq!(service["value"]["stringValue"], "nightshift");
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    let named = |name: &str| spans.iter().filter(|s| s["name"] == name).collect::<Vec<_>>();
    for stage in ["heartbeat", "signal", "check", "incident", "decide", "act", "verify", "notify", "escalate"] {
        assert!(!named(stage).is_empty(), "no {stage} span in {:?}", spans.iter().map(|s| s["name"].clone()).collect::<Vec<_>>());
    }
    let root = named("heartbeat")[0];
    assert_eq!(attr_str(root, "status"), Some("failing"));
    let trace = root["traceId"].as_str().unwrap();
    assert!(spans.iter().all(|s| s["traceId"] == trace), "one trace per heartbeat");
    let incident = named("incident")[0];
    assert_eq!(incident["parentSpanId"], root["spanId"], "the incident hangs off the heartbeat");
    assert_eq!(attr_str(incident, "incident.id"), Some(id.as_str()));
    assert_eq!(attr_str(incident, "class"), Some("exec-failed"));
    let check = named("check")[0];
    assert_eq!((attr_str(check, "check"), attr_str(check, "status")), (Some("app"), Some("failing")));
    let decide = named("decide")[0];
    assert_eq!(decide["parentSpanId"], incident["spanId"]);
    assert_eq!((attr_str(decide, "decision"), attr_str(decide, "incident.id")), (Some("auto"), Some(id.as_str())));
    let act = named("act")[0];
    assert_eq!((attr_str(act, "action"), attr_str(act, "result"), attr_str(act, "incident.id")), (Some("run_command"), Some("ok"), Some(id.as_str())));
    assert_eq!(named("verify")[0]["parentSpanId"], act["spanId"]);
    assert_eq!(attr_str(named("notify")[0], "incident.id"), Some(id.as_str()));
    // Names, ids and decisions only: no command output or evidence in the spans.
    assert!(!bodies.iter().any(|(_, b)| String::from_utf8_lossy(b).contains("test -f repaired")), "the check's command is not exported");
}

#[test]
fn traces_default_to_otlp_protobuf_and_a_bad_configuration_leaves_them_off_without_stopping_the_heartbeat() {
    let receiver = HttpServer::start(200, "");
    let ws = failing_until_repaired();
    let out = ws.cmd(&["heartbeat", "--json"]).env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url("/v1/traces")).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = report["incidents"][0]["id"].as_str().unwrap().to_string();
    let bodies = exports(&receiver);
    assert!(bodies.iter().any(|(head, _)| head.contains("content-type: application/x-protobuf")), "{bodies:?}");
    // Protobuf keeps strings as they are: the incident's id is in the export.
    assert!(bodies.iter().any(|(_, b)| String::from_utf8_lossy(b).contains(&id)), "the incident id is exported");

    let ws = failing_until_repaired();
    let before = receiver.hits.load(std::sync::atomic::Ordering::Relaxed);
    let out = ws.cmd(&["heartbeat"]).env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.addr)).env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("traces are off") && stderr.contains("use http/protobuf or http/json"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "the heartbeat ran and reported its failing check: {stderr}");
    assert!(ws.path().join("repaired").exists(), "and repaired it");
    assert_eq!(receiver.hits.load(std::sync::atomic::Ordering::Relaxed), before, "nothing exported");

    // An endpoint that does not answer leaves the run's result standing (what it
    // costs in time is `cargo bench --bench bounds -- otlp`).
    let ws = failing_until_repaired();
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let out = ws.cmd(&["heartbeat"]).env("OTEL_EXPORTER_OTLP_ENDPOINT", dead).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ws.path().join("repaired").exists());
}
