//! The daemon's HTTP API (axum): health, metrics, the intake (Alertmanager,
//! Argo CD notifications, generic events), Slack interactions, and the
//! approvals API. Unauthenticated or malformed requests
//! get 401/400 with a reason; bodies are size-limited; nothing a request
//! carries changes the policy.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::App;
use crate::memory::approvals::{ApprovalStatus, DecideError};

/// Largest Alertmanager payload accepted.
pub const INTAKE_LIMIT: usize = 4 * 1024 * 1024;
/// Largest Argo CD notification or generic event accepted (one event each).
pub const EVENT_LIMIT: usize = 256 * 1024;
/// Largest body for every other route.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/webhook/alertmanager", post(alertmanager).layer(DefaultBodyLimit::max(INTAKE_LIMIT)))
        .route("/webhook/argocd", post(argocd).layer(DefaultBodyLimit::max(EVENT_LIMIT)))
        .route("/webhook/events", post(events).layer(DefaultBodyLimit::max(EVENT_LIMIT)))
        .route("/slack/interactions", post(slack).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/slack/events", post(slack_events).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/approvals", get(approvals))
        .route("/approvals/{id}/{verb}", post(decide).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/incidents/{id}/ack", post(ack).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .with_state(app)
}

fn error(status: StatusCode, why: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": why.into() }))).into_response()
}

/// Compares in constant time (no early exit on the first differing byte).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `Authorization: Bearer <token>` against the configured token;
/// `Some(response)` refuses the request.
fn unauthorized(headers: &HeaderMap, token: Option<&str>, what: &str, var: &str) -> Option<Response> {
    let Some(token) = token else {
        return Some(error(StatusCode::UNAUTHORIZED, format!("{what} is off: set {var} in nightshift's environment")));
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Some(error(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <token>")),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let last = app.last_pass.lock().map(|l| l.clone()).unwrap_or_default();
    axum::Json(json!({ "status": "ok", "passes": app.metrics.passes.get(), "last_pass": last })).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.encode()).into_response()
}

async fn alertmanager(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    intake(&app, &headers, &body, crate::pipeline::parse_alertmanager).await
}

async fn argocd(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    intake(&app, &headers, &body, crate::pipeline::parse_argocd).await
}

async fn events(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    intake(&app, &headers, &body, crate::pipeline::parse_event).await
}

/// Every intake route: the same token, validation before anything is kept,
/// and a 200 only once the alerts are durably in the intake journal.
async fn intake(app: &Arc<App>, headers: &HeaderMap, body: &[u8], parse: fn(&[u8]) -> Result<Vec<crate::pipeline::Alert>, crate::pipeline::AlertError>) -> Response {
    if app.intake_token.is_some()
        && let Some(r) = unauthorized(headers, app.intake_token.as_deref(), "the intake", "NIGHTSHIFT_INTAKE_TOKEN")
    {
        return r;
    }
    let alerts = match parse(body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    if alerts.is_empty() {
        return axum::Json(json!({ "accepted": 0 })).into_response();
    }
    if let Err(e) = app.intake.append(&alerts).await {
        tracing::error!(error = %e, "intake journal append failed");
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not record the alerts durably: {e}"));
    }
    app.metrics.alerts_received.inc_by(alerts.len() as u64);
    app.wake.notify_one();
    axum::Json(json!({ "accepted": alerts.len() })).into_response()
}

/// Both Slack endpoints: signed with the signing secret, or refused.
fn slack_signed(app: &App, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let Some(secret) = app.slack_secret.as_deref() else {
        return Some(error(StatusCode::UNAUTHORIZED, "Slack is off: set SLACK_SIGNING_SECRET in nightshift's environment"));
    };
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    super::slack::verify(secret, h("x-slack-request-timestamp"), h("x-slack-signature"), body, chrono::Utc::now().timestamp()).err().map(|e| error(StatusCode::UNAUTHORIZED, e.to_string()))
}

async fn slack(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = slack_signed(&app, &headers, &body) {
        return r;
    }
    let i = match super::slack::parse_interaction(&body) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let approve = match i.button {
        super::slack::Button::Approve => true,
        super::slack::Button::Abort => false,
        super::slack::Button::Ack => return acknowledge(&app, &i.value, &i.user).await,
    };
    let ids = vec![i.user_id.clone()];
    let r = decide_as(&app, &i.value, approve, &i.user, ids).await;
    match &r {
        Err(e @ DecideError::NotApprover { .. }) => {
            let why = format!("You may not {} this: {e}", if approve { "approve" } else { "abort" });
            if let Err(err) = crate::actions::notify::slack::ephemeral(i.response_url.as_deref(), None, "", &i.user_id, None, &why).await {
                tracing::warn!(error = %err, "could not send the ephemeral refusal");
            }
            // 200: Slack shows the clicker the ephemeral reply, not an error.
            return axum::Json(json!({ "ok": false, "error": e.to_string() })).into_response();
        }
        Ok(_) => {
            if let Some(url) = &i.response_url {
                let (mem, id, ts, url) = (app.mem.clone(), i.value.clone(), i.message_ts.clone(), url.clone());
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || mem.remember_response_url(&id, ts.as_deref(), &url)).await {
                    tracing::warn!(error = %e, "could not keep the response_url");
                }
            }
        }
        Err(_) => {}
    }
    decided(&app, r)
}

/// Thread replies (`approve` / `abort`) from the Events API, and its URL check.
async fn slack_events(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    use super::slack::Event;
    if let Some(r) = slack_signed(&app, &headers, &body) {
        return r;
    }
    let (approve, user, channel, thread_ts) = match super::slack::parse_event(&body) {
        Ok(Event::Challenge(c)) => return axum::Json(json!({ "challenge": c })).into_response(),
        Ok(Event::Ignored) => return axum::Json(json!({ "ok": true, "ignored": true })).into_response(),
        Ok(Event::Reply { approve, user, channel, thread_ts }) => (approve, user, channel, thread_ts),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let list = app.mem.load_approvals().unwrap_or_default();
    let found =
        list.iter().find_map(|a| a.posted.iter().find(|p| p.ts.as_deref() == Some(thread_ts.as_str()) && p.channel.as_deref() == Some(channel.as_str())).map(|p| (a.id.clone(), p.webhook.clone())));
    let Some((id, webhook)) = found else {
        // A reply under some other message: not ours to act on.
        return axum::Json(json!({ "ok": true, "ignored": true })).into_response();
    };
    let r = decide_as(&app, &id, approve, &format!("slack:{user}"), vec![user.clone()]).await;
    if let Err(e) = &r {
        let w = app.ws.read().ok().and_then(|ws| ws.policy.webhooks.iter().find(|w| w.name == webhook).cloned());
        let why = format!("nightshift did not {} approval {id}: {e}", if approve { "approve" } else { "abort" });
        if let Err(err) = crate::actions::notify::slack::ephemeral(None, w.as_ref(), &channel, &user, Some(&thread_ts), &why).await {
            tracing::warn!(error = %err, "could not send the ephemeral refusal");
        }
        // Slack retries an event that did not get a 200: the answer is given, once.
        return axum::Json(json!({ "ok": false, "error": e.to_string() })).into_response();
    }
    decided(&app, r)
}

async fn ack(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = unauthorized(&headers, app.api_token.as_deref(), "the incidents API", "NIGHTSHIFT_API_TOKEN") {
        return r;
    }
    acknowledge(&app, &id, "api").await
}

async fn acknowledge(app: &Arc<App>, id: &str, who: &str) -> Response {
    use crate::memory::escalation::AckError;
    let (mem, id2, who2) = (app.mem.clone(), id.to_string(), who.to_string());
    match tokio::task::spawn_blocking(move || mem.ack_incident(&id2, &who2)).await {
        Ok(Ok((a, new))) => {
            app.wake.notify_one();
            axum::Json(json!({ "id": id, "acknowledged_by": a.by, "at": crate::duration::timestamp(a.at), "new": new })).into_response()
        }
        Ok(Err(e @ AckError::NotFound(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ AckError::Resolved(_))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn approvals(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&headers, app.api_token.as_deref(), "the approvals API", "NIGHTSHIFT_API_TOKEN") {
        return r;
    }
    match app.mem.load_approvals() {
        Ok(list) => axum::Json(list.into_iter().filter(|a| matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)).collect::<Vec<_>>()).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn decide(State(app): State<Arc<App>>, headers: HeaderMap, Path((id, verb)): Path<(String, String)>) -> Response {
    if let Some(r) = unauthorized(&headers, app.api_token.as_deref(), "the approvals API", "NIGHTSHIFT_API_TOKEN") {
        return r;
    }
    let approve = match verb.as_str() {
        "approve" => true,
        "abort" => false,
        _ => return error(StatusCode::NOT_FOUND, "use /approvals/ID/approve or /approvals/ID/abort"),
    };
    apply(&app, &id, approve, "api").await
}

async fn apply(app: &Arc<App>, id: &str, approve: bool, who: &str) -> Response {
    let r = decide_as(app, id, approve, who, vec![who.to_string()]).await;
    decided(app, r)
}

/// A decision by someone known by `ids`, applied off the async threads.
async fn decide_as(app: &App, id: &str, approve: bool, who: &str, ids: Vec<String>) -> Result<crate::memory::approvals::Approval, DecideError> {
    let (mem, id2, who2) = (app.mem.clone(), id.to_string(), who.to_string());
    match tokio::task::spawn_blocking(move || mem.decide_approval_as(&id2, approve, &who2, &ids)).await {
        Ok(r) => r,
        Err(e) => Err(DecideError::Memory(crate::memory::MemoryError::Io { path: "approvals".into(), source: std::io::Error::other(e.to_string()) })),
    }
}

fn decided(app: &App, r: Result<crate::memory::approvals::Approval, DecideError>) -> Response {
    match r {
        Ok(a) => {
            app.wake.notify_one();
            axum::Json(json!({ "id": a.id, "status": a.status, "action": a.action.describe(), "decided_by": a.decided_by })).into_response()
        }
        Err(e @ DecideError::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ DecideError::NotPending { .. }) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ DecideError::NotApprover { .. }) => error(StatusCode::FORBIDDEN, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
