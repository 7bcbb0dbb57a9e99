//! `nightshift serve`: the daemon. A scheduler runs each pass of the same
//! pipeline as `heartbeat` when a check is due, an alert arrives or a human
//! decides; the HTTP API takes alerts, Slack and API approvals, and serves
//! health and metrics. SIGHUP reloads the workspace (an invalid one keeps the
//! old running); SIGTERM lets the pass in flight finish, then stops. The
//! HTTP server's timeouts and connection limit are in `server`.

pub mod http;
pub mod intake;
pub mod metrics;
pub mod server;
pub mod slack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::duration::timestamp;
use crate::memory::Memory;
use crate::memory::approvals::{ApprovalKind, ApprovalStatus};
use crate::memory::notes::IncidentStatus;
use crate::pipeline::{RunError, Runner};
use crate::schedule::Schedule;
use crate::workspace::{self, Problem, Workspace};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the workspace does not validate ({} problem(s))", .0.len())]
    Invalid(Vec<Problem>),
    #[error(
        "refusing to serve the intake on {0}, which is not a loopback address, without NIGHTSHIFT_INTAKE_TOKEN: anyone who reaches the port could post alerts. Set NIGHTSHIFT_INTAKE_TOKEN to a secret (Alertmanager and Argo CD send it as a bearer token), or listen on 127.0.0.1"
    )]
    IntakeOpen(SocketAddr),
    #[error("the HTTP limits in the environment: {0}")]
    Limits(#[from] server::LimitError),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What the HTTP handlers and the scheduler share.
pub struct App {
    pub root: PathBuf,
    pub mem: Memory,
    pub ws: RwLock<Arc<Workspace>>,
    pub metrics: metrics::Metrics,
    /// Wakes the scheduler: an alert arrived, a human decided.
    pub wake: tokio::sync::Notify,
    pub intake: intake::IntakeLog,
    pub intake_path: PathBuf,
    pub api_token: Option<String>,
    pub intake_token: Option<String>,
    pub slack_secret: Option<String>,
    pub execute: bool,
    pub last_pass: Mutex<Option<String>>,
    /// Kubernetes clients shared by every pass.
    pub kube: Arc<crate::k8s::Clients>,
    /// The watch cache of the current context, when a Kubernetes check uses it.
    pub kube_cache: Mutex<Option<Arc<crate::checks::kube::watch::Cache>>>,
    /// Set by the watch: the next pass runs the Kubernetes checks even if not due.
    pub kube_changed: std::sync::atomic::AtomicBool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(root: PathBuf, listen: SocketAddr, execute: bool) -> Result<(), ServeError> {
    let intake_token = env("NIGHTSHIFT_INTAKE_TOKEN");
    if intake_token.is_none() && !is_loopback(listen) {
        return Err(ServeError::IntakeOpen(listen));
    }
    let limits = server::Limits::from_env()?;
    let ws = workspace::load(&root).map_err(ServeError::Invalid)?;
    let mem = Memory::open(&root)?;
    let intake_path = mem.state_dir().join("intake.jsonl");
    let app = Arc::new(App {
        root: root.clone(),
        intake: intake::IntakeLog::open(intake_path.clone())?,
        intake_path,
        mem,
        ws: RwLock::new(Arc::new(ws)),
        metrics: metrics::Metrics::default(),
        wake: tokio::sync::Notify::new(),
        api_token: env("NIGHTSHIFT_API_TOKEN"),
        intake_token,
        slack_secret: env("SLACK_SIGNING_SECRET"),
        execute,
        last_pass: Mutex::new(None),
        kube: Arc::new(crate::k8s::Clients::default()),
        kube_cache: Mutex::new(None),
        kube_changed: std::sync::atomic::AtomicBool::new(false),
    });
    let kube_wake = Arc::new(tokio::sync::Notify::new());
    start_watch(&app, &kube_wake).await;
    // Signals are ours before anyone can reach the port: a SIGTERM right after start still stops cleanly.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    info!(listen = %addr, mode = if execute { "execute" } else { "policy" }, "nightshift serving");
    println!("nightshift serving on http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = http::router(app.clone());
    let server = tokio::spawn(server::serve(listener, router, limits, async {
        let _ = stop_rx.await;
    }));
    loop {
        let ok = pass(&app).await;
        let wait = next_wake(&app, ok);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = app.wake.notified() => {}
            _ = kube_wake.notified() => app.kube_changed.store(true, std::sync::atomic::Ordering::Release),
            _ = hup.recv() => {
                reload(&app);
                start_watch(&app, &kube_wake).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("stopping: the pass in flight has finished");
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

/// Whether only this machine can reach `addr` (`::ffff:127.0.0.1` included).
fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Starts the watch cache when a Kubernetes check reads the current context
/// and none runs yet. Without a reachable configuration the checks report
/// the error themselves.
async fn start_watch(app: &App, wake: &Arc<tokio::sync::Notify>) {
    let wanted = app.ws.read().is_ok_and(|ws| ws.heartbeat.checks.iter().any(|c| c.probe.is_kubernetes() && c.probe.kube_context().is_none()));
    let running = app.kube_cache.lock().is_ok_and(|c| c.is_some());
    if !wanted || running {
        return;
    }
    match app.kube.get(None).await {
        Ok(client) => {
            let cache = crate::checks::kube::watch::start(client, wake.clone());
            info!("watching pods, deployments and nodes");
            if let Ok(mut c) = app.kube_cache.lock() {
                *c = Some(cache);
            }
        }
        Err(e) => warn!(error = %e, "no Kubernetes watch; the checks will report why"),
    }
}

/// SIGHUP: a workspace that validates replaces the running one; one that
/// does not is logged and the old one keeps running.
fn reload(app: &App) {
    match workspace::load(&app.root) {
        Ok(ws) => {
            info!(checks = ws.heartbeat.checks.len(), rules = ws.policy.rules.len(), "workspace reloaded");
            if let Ok(mut w) = app.ws.write() {
                *w = Arc::new(ws);
            }
        }
        Err(problems) => {
            for p in &problems {
                warn!(problem = %p, "reload refused");
            }
            error!(problems = problems.len(), "the new workspace does not validate; the old one keeps running");
        }
    }
}

/// One pass: alerts from the intake journal, due approvals, due checks.
/// Returns false when the pass could not run.
async fn pass(app: &App) -> bool {
    let ws = match app.ws.read() {
        Ok(w) => w.clone(),
        Err(_) => return false,
    };
    let (alerts, offset) = match intake::pending(&app.intake_path) {
        Ok(p) => p,
        Err(e) => {
            error!(error = %e, "cannot read the intake journal");
            (Vec::new(), 0)
        }
    };
    let n_alerts = alerts.len();
    let (mut runner, _lock) = match Runner::new(&ws, app.execute) {
        Ok(r) => r,
        Err(RunError::Busy(lock)) => {
            info!(lock = %lock, "another nightshift run holds the memory; next pass later");
            return false;
        }
        Err(e) => {
            error!(error = %e, "pass failed to start");
            return false;
        }
    };
    runner.announce = false;
    runner.wait_for_windows = false;
    let cache = app.kube_cache.lock().ok().and_then(|c| c.clone());
    // A change the watch saw, or a rollout Argo CD reports as failed: the Kubernetes checks run now.
    // Not the per-pod probes: their threshold counts runs on their own schedule, not pod churn.
    let rollout = alerts.iter().any(crate::pipeline::Alert::is_rollout);
    let forced: Vec<String> = if app.kube_changed.swap(false, std::sync::atomic::Ordering::AcqRel) | rollout {
        ws.heartbeat
            .checks
            .iter()
            .filter(|c| c.probe.is_kubernetes() && !matches!(c.probe, crate::checks::ProbeSpec::K8sProbe(_)) && (rollout || c.probe.kube_context().is_none()))
            .map(|c| c.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    match runner.with_alerts(alerts).with_kube(app.kube.clone(), cache).with_forced(forced).heartbeat(false).await {
        Ok(report) => {
            if n_alerts > 0
                && let Err(e) = app.intake.commit_offset(offset).await
            {
                error!(error = %e, "cannot record the intake offset");
            }
            for i in &report.incidents {
                info!(incident = %i.id, status = %i.status, new = i.new, "incident");
                for a in &i.actions {
                    info!(incident = %i.id, action = %a.action, target = %a.target, decision = %a.decision, result = a.result.as_str(), "action decided");
                }
            }
            app.metrics.record(&report);
            update_gauges(app);
            if let Ok(mut l) = app.last_pass.lock() {
                *l = Some(timestamp(Utc::now()));
            }
            true
        }
        Err(e) => {
            error!(error = %e, "pass failed");
            false
        }
    }
}

fn update_gauges(app: &App) {
    if let Ok(list) = app.mem.load_approvals() {
        app.metrics.pending_approvals.set(list.iter().filter(|a| matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)).count() as i64);
    }
    if let Ok(state) = app.mem.load_state() {
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for id in state.open.values() {
            if let Ok(inc) = app.mem.read_incident(id)
                && inc.status != IncidentStatus::Resolved
            {
                *counts.entry(inc.severity.as_str().to_string()).or_default() += 1;
            }
        }
        for sev in ["info", "warning", "critical"] {
            app.metrics.active_incidents.get_or_create(&metrics::SeverityLabel { severity: sev.into() }).set(counts.get(sev).copied().unwrap_or(0));
        }
    }
}

/// When the next pass is due: the earliest check, abort-window deadline or
/// approved action; at least 200 ms (1 s after a failed pass), at most 60 s,
/// plus up to 250 ms of jitter so many daemons do not fire in lockstep.
fn next_wake(app: &App, last_ok: bool) -> Duration {
    let now = Utc::now();
    let (Ok(ws), Ok(state), Ok(approvals)) = (app.ws.read(), app.mem.load_state(), app.mem.load_approvals()) else {
        return Duration::from_secs(1);
    };
    let at = next_pass_at(&ws.heartbeat.checks, &state, &approvals, now);
    let floor = if last_ok { Duration::from_millis(200) } else { Duration::from_secs(1) };
    let jitter = Duration::from_millis(u64::from(std::process::id() ^ now.timestamp_subsec_nanos()) % 250);
    (at - now).to_std().unwrap_or_default().max(floor) + jitter
}

/// The time of the next pass, as a pure function of the schedule, the state and the clock.
pub fn next_pass_at(
    checks: &[crate::checks::spec::CheckSpec],
    state: &crate::memory::state::State,
    approvals: &[crate::memory::approvals::Approval],
    now: chrono::DateTime<Utc>,
) -> chrono::DateTime<Utc> {
    let mut next = now + chrono::Duration::seconds(60);
    for c in checks {
        let due = match (state.checks.get(&c.name).map(|s| s.last_run), &c.schedule) {
            (None, _) => now,
            (Some(last), Schedule::Every(every)) => crate::duration::after(last, *every).unwrap_or(chrono::DateTime::<Utc>::MAX_UTC),
            (Some(last), Schedule::Cron { expr, tz }) => expr.next_after(last, *tz).unwrap_or(next),
        };
        next = next.min(due);
    }
    for a in approvals {
        match (a.kind, a.status) {
            (_, ApprovalStatus::Approved) => next = next.min(now),
            (ApprovalKind::AbortWindow, ApprovalStatus::Pending) => next = next.min(a.deadline),
            _ => {}
        }
    }
    // The next escalation level of an unacknowledged incident.
    for e in state.escalated.values() {
        if let Some(at) = e.next_at {
            next = next.min(at);
        }
    }
    next.max(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::ProbeSpec;
    use crate::checks::spec::CheckSpec;
    use crate::memory::state::{CheckState, State};
    use crate::severity::{Level, Severity};
    use chrono::TimeZone;

    fn check(name: &str, schedule: Schedule) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            line: 1,
            schedule,
            threshold: 1,
            cooldown: Duration::from_secs(300),
            host: None,
            level: Level::L3,
            severity: Severity::Warning,
            repair: None,
            probe: ProbeSpec::Exec { command: "true".into(), timeout: Duration::from_secs(1) },
            verify: Default::default(),
        }
    }

    fn t(h: u32, m: u32, s: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).single().unwrap_or_default()
    }

    fn ran(state: &mut State, name: &str, at: chrono::DateTime<Utc>) {
        state.checks.insert(name.into(), CheckState { last_run: at, status: crate::checks::Status::Ok, consecutive_failures: 0, summary: String::new(), failing_since: None });
    }

    #[test]
    fn only_loopback_listen_addresses_go_without_an_intake_token() {
        let table =
            [("127.0.0.1:9469", true), ("127.0.0.2:9469", true), ("[::1]:9469", true), ("[::ffff:127.0.0.1]:9469", true), ("0.0.0.0:9469", false), ("[::]:9469", false), ("10.0.0.5:9469", false)];
        let got: Vec<(&str, bool)> = table.iter().map(|(a, _)| (*a, a.parse().is_ok_and(is_loopback))).collect();
        assert_eq!(got, table);
    }

    #[test]
    fn the_earliest_due_check_sets_the_next_pass() {
        let checks = vec![check("fast", Schedule::Every(Duration::from_secs(30))), check("slow", Schedule::Every(Duration::from_secs(900)))];
        let mut state = State::default();
        assert_eq!(next_pass_at(&checks, &state, &[], t(10, 0, 0)), t(10, 0, 0), "never-run checks are due now");
        ran(&mut state, "fast", t(10, 0, 0));
        ran(&mut state, "slow", t(10, 0, 0));
        assert_eq!(next_pass_at(&checks, &state, &[], t(10, 0, 5)), t(10, 0, 30));
        // Overdue (the daemon was stopped): now, not in the past.
        assert_eq!(next_pass_at(&checks, &state, &[], t(11, 0, 0)), t(11, 0, 0));
    }

    #[test]
    fn cron_checks_and_the_one_minute_ceiling() {
        let cron = crate::schedule::Cron::parse("0 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        let checks = vec![check("nightly", Schedule::Cron { expr: cron, tz: chrono_tz::Tz::UTC })];
        let mut state = State::default();
        ran(&mut state, "nightly", t(1, 0, 0));
        assert_eq!(next_pass_at(&checks, &state, &[], t(1, 59, 30)), t(2, 0, 0));
        assert_eq!(next_pass_at(&checks, &state, &[], t(1, 0, 10)), t(1, 1, 10), "at most a minute between passes");
    }

    #[test]
    fn abort_windows_and_approvals_wake_the_scheduler() {
        use crate::memory::approvals::{Approval, ApprovalKind, ApprovalStatus};
        let mut state = State::default();
        let checks = vec![check("c", Schedule::Every(Duration::from_secs(3600)))];
        ran(&mut state, "c", t(10, 0, 0));
        let mut a = Approval {
            id: "a1".into(),
            kind: ApprovalKind::AbortWindow,
            status: ApprovalStatus::Pending,
            action: crate::actions::Action::RunCommand { command: "fix".into() },
            incident: None,
            check: Some("c".into()),
            level: Level::L3,
            reason: String::new(),
            created: t(10, 0, 0),
            deadline: t(10, 0, 30),
            decided_by: None,
            decided_at: None,
            rule: None,
            approvers: Vec::new(),
            posted: Vec::new(),
            announced: None,
            result: None,
        };
        assert_eq!(next_pass_at(&checks, &state, std::slice::from_ref(&a), t(10, 0, 1)), t(10, 0, 30));
        a.status = ApprovalStatus::Approved;
        assert_eq!(next_pass_at(&checks, &state, std::slice::from_ref(&a), t(10, 0, 1)), t(10, 0, 1));
        a.status = ApprovalStatus::Aborted;
        assert_eq!(next_pass_at(&checks, &state, &[a], t(10, 0, 1)), t(10, 1, 1));
    }
}
