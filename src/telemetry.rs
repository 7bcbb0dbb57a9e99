//! Logs, and traces of nightshift's own pipeline. Logs go to stderr. Traces
//! are off unless an OTLP endpoint is configured the standard way
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! with `/v1/traces` appended; `OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf`
//! (the default) or `http/json`; `OTEL_EXPORTER_OTLP_HEADERS`): then the
//! pipeline's spans (heartbeat → check → incident → decide → act → verify →
//! notify, each carrying the incident id where there is one) are exported
//! over OTLP/HTTP in batches. Only nightshift's own spans are exported, and
//! they carry names, ids, kinds and decisions, never check output or evidence;
//! every string they do carry (attributes, events such as an error, the
//! status) is redacted on its way out, in `Redacting`.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// What `init` set up; `shutdown` flushes the spans not yet exported.
#[must_use]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is left. Call it outside the runtime's workers (the
    /// exporter's requests run on the runtime).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("nightshift: exporting the last traces failed: {e}");
        }
    }
}

/// Whether an OTLP traces endpoint is configured.
pub fn traces_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"].iter().any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()))
}

/// Installs the log subscriber, and the trace exporter when an endpoint is
/// configured. `runtime` runs the exporter's HTTP requests (the batch
/// processor exports from a thread of its own). A bad trace configuration is
/// reported and leaves tracing off; it never stops a heartbeat.
pub fn init(filter: EnvFilter, json: bool, runtime: &tokio::runtime::Handle) -> Telemetry {
    let fmt = if json { tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed() } else { tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed() };
    let provider = if traces_configured() {
        match provider(runtime.clone()) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("nightshift: traces are off: {e}");
                None
            }
        }
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        let only_ours = tracing_subscriber::filter::Targets::new().with_target("nightshift", tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(p.tracer("nightshift")).with_filter(only_ours)
    });
    tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).init();
    Telemetry { provider }
}

fn provider(runtime: tokio::runtime::Handle) -> Result<SdkTracerProvider, String> {
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")).unwrap_or_default().trim() {
        "" | "http/protobuf" => Protocol::HttpBinary,
        "http/json" => Protocol::HttpJson,
        other => return Err(format!("OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported; use http/protobuf or http/json (OTLP over HTTP, port 4318)")),
    };
    let client = reqwest::Client::builder().user_agent(concat!("nightshift/", env!("CARGO_PKG_VERSION"))).timeout(EXPORT_TIMEOUT).build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_protocol(protocol)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("nightshift").with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(Redacting(exporter)).with_resource(resource).build())
}

/// An exporter that redacts every string of a span before handing the batch
/// on: the one place spans pass on their way out.
#[derive(Debug)]
struct Redacting<E>(E);

impl<E: SpanExporter> SpanExporter for Redacting<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.export(batch.into_iter().map(redact_span).collect())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

/// The span with its attributes, its events (name and attributes: a logged
/// error is one) and its error status redacted.
fn redact_span(mut span: SpanData) -> SpanData {
    span.attributes.iter_mut().for_each(redact_attribute);
    for event in &mut span.events.events {
        event.name = Cow::Owned(crate::redact::redact(&event.name));
        event.attributes.iter_mut().for_each(redact_attribute);
    }
    if let Status::Error { description } = &mut span.status {
        *description = Cow::Owned(crate::redact::redact(description));
    }
    span
}

fn redact_attribute(kv: &mut KeyValue) {
    match &mut kv.value {
        Value::String(s) => *s = crate::redact::redact(s.as_str()).into(),
        Value::Array(Array::String(items)) => items.iter_mut().for_each(|s| *s = crate::redact::redact(s.as_str()).into()),
        // Numbers and booleans (`Value` is non-exhaustive: a new kind stays as it is).
        _ => {}
    }
}

/// The exporter's HTTP client: reqwest, its requests run on nightshift's
/// runtime (the batch processor's own thread has none).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self.client.request(parts.method, parts.uri.to_string()).body(body);
        for (k, v) in &parts.headers {
            req = req.header(k, v);
        }
        let sent = self
            .runtime
            .spawn(async move {
                let resp = req.send().await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?;
        let (status, headers, body) = sent.map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?;
        let mut out = http::Response::builder().status(status);
        for (k, v) in &headers {
            out = out.header(k, v);
        }
        out.body(body).map_err(|e| Box::new(e) as opentelemetry_http::HttpError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind};

    #[test]
    fn a_span_leaves_without_the_secrets_its_fields_and_events_carried() {
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "cannot write the dead letter",
            std::time::SystemTime::UNIX_EPOCH,
            vec![KeyValue::new("error", "POST https://hooks.slack.com/services/T000/B000/XXXXXXXX: refused")],
            0,
        ));
        let span = SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "act".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: vec![KeyValue::new("target", "https://admin:hunter2@db.internal/x"), KeyValue::new("attempt", 2_i64)],
            dropped_attributes_count: 0,
            events,
            links: opentelemetry_sdk::trace::SpanLinks::default(),
            status: Status::error("token=abc123 rejected"),
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("nightshift").build(),
        };
        let out = redact_span(span);
        assert_eq!(out.attributes, vec![KeyValue::new("target", "https://admin:[REDACTED]@db.internal/x"), KeyValue::new("attempt", 2_i64)]);
        assert_eq!(out.events.events[0].attributes, vec![KeyValue::new("error", "POST https://hooks.slack.com/services/[REDACTED]: refused")]);
        assert_eq!(out.status, Status::error("token=[REDACTED] rejected"));
    }
}
