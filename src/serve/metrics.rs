//! Prometheus metrics of the daemon (prometheus-client), updated from each
//! pass's report and served at `/metrics`. Label values that come from
//! outside (an incident's type is an alert's name) are bounded: the first
//! `MAX_TYPES` distinct ones are exported as they are, later ones as `other`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::pipeline::RunReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub check: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IncidentLabels {
    pub r#type: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
    pub decision: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionName {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabel {
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenKind {
    pub kind: String,
}

/// Distinct incident types exported as series of their own.
pub const MAX_TYPES: usize = 100;

pub struct Metrics {
    registry: Registry,
    /// The incident types with a series of their own.
    types: std::sync::Mutex<std::collections::BTreeSet<String>>,
    checks: Family<CheckLabels, Counter>,
    incidents: Family<IncidentLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    action_duration: Family<ActionName, Histogram>,
    pub active_incidents: Family<SeverityLabel, Gauge>,
    pub llm_tokens: Family<TokenKind, Counter>,
    pub pending_approvals: Gauge,
    pub alerts_received: Counter,
    pub passes: Counter,
    pub last_pass_timestamp: Gauge,
    pub kube_requests: Counter,
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let checks = Family::<CheckLabels, Counter>::default();
        let incidents = Family::<IncidentLabels, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let action_duration = Family::<ActionName, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        let active_incidents = Family::<SeverityLabel, Gauge>::default();
        let llm_tokens = Family::<TokenKind, Counter>::default();
        let pending_approvals = Gauge::default();
        let alerts_received = Counter::default();
        let passes = Counter::default();
        let last_pass_timestamp = Gauge::default();
        let kube_requests = Counter::default();
        registry.register("nightshift_kube_requests", "Requests the passes sent to Kubernetes API servers (the watch cache makes this flat in the pod count)", kube_requests.clone());
        registry.register("nightshift_checks", "Check runs by check and status", checks.clone());
        registry.register("nightshift_incidents", "Incidents opened by type and severity", incidents.clone());
        registry.register("nightshift_actions", "Decided actions by action, decision and outcome", actions.clone());
        registry.register("nightshift_action_duration_seconds", "Duration of executed actions", action_duration.clone());
        registry.register("nightshift_active_incidents", "Open incidents by severity", active_incidents.clone());
        registry.register("nightshift_llm_tokens", "Model tokens by kind (prompt, completion)", llm_tokens.clone());
        registry.register("nightshift_pending_approvals", "Actions waiting for a human or an abort window", pending_approvals.clone());
        registry.register("nightshift_alerts_received", "Alerts accepted by the intake", alerts_received.clone());
        registry.register("nightshift_passes", "Scheduler passes completed", passes.clone());
        registry.register("nightshift_last_pass_timestamp_seconds", "Unix time of the last completed pass (watch it: alert when it stops moving)", last_pass_timestamp.clone());
        // Exported from the start (at 0), so dashboards and alert rules find them.
        for kind in ["prompt", "completion"] {
            let _ = llm_tokens.get_or_create(&TokenKind { kind: kind.into() });
        }
        Self {
            registry,
            types: Default::default(),
            checks,
            incidents,
            actions,
            action_duration,
            active_incidents,
            llm_tokens,
            pending_approvals,
            alerts_received,
            passes,
            last_pass_timestamp,
            kube_requests,
        }
    }
}

impl Metrics {
    /// Counts what one pass did.
    pub fn record(&self, report: &RunReport) {
        self.kube_requests.inc_by(report.kube_requests);
        for c in &report.checks {
            self.checks.get_or_create(&CheckLabels { check: c.name.clone(), status: c.status.as_str().into() }).inc();
        }
        for i in report.incidents.iter() {
            if i.new {
                let class = self.type_label(i.fingerprint.split(':').nth(1).unwrap_or("unknown"));
                self.incidents.get_or_create(&IncidentLabels { r#type: class, severity: i.severity.clone() }).inc();
            }
            for a in &i.actions {
                self.actions.get_or_create(&ActionLabels { action: a.action.clone(), decision: a.decision.clone(), outcome: a.result.as_str().into() }).inc();
                if a.duration_ms > 0 {
                    self.action_duration.get_or_create(&ActionName { action: a.action.clone() }).observe(a.duration_ms as f64 / 1000.0);
                }
            }
        }
        if report.tokens.prompt > 0 {
            self.llm_tokens.get_or_create(&TokenKind { kind: "prompt".into() }).inc_by(report.tokens.prompt);
        }
        if report.tokens.completion > 0 {
            self.llm_tokens.get_or_create(&TokenKind { kind: "completion".into() }).inc_by(report.tokens.completion);
        }
        self.passes.inc();
        self.last_pass_timestamp.set(chrono::Utc::now().timestamp());
    }

    /// The `type` label of an incident: itself while fewer than `MAX_TYPES` are known, else `other`.
    fn type_label(&self, class: &str) -> String {
        let Ok(mut known) = self.types.lock() else { return "other".into() };
        if known.contains(class) || known.len() < MAX_TYPES && known.insert(class.to_string()) { class.to_string() } else { "other".into() }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{IncidentReport, RunReport};

    #[test]
    fn incident_types_from_alert_names_are_bounded() {
        let m = Metrics::default();
        let incident = |n: usize| IncidentReport {
            id: format!("i{n}"),
            fingerprint: format!("alert-a{n}:a{n}:{{}}"),
            severity: "warning".into(),
            status: "needs-human".into(),
            title: String::new(),
            new: true,
            diagnosis: Vec::new(),
            actions: Vec::new(),
        };
        m.record(&RunReport { incidents: (0..2000).map(incident).collect(), ..Default::default() });
        m.record(&RunReport { incidents: vec![incident(7), incident(5000)], ..Default::default() });
        let text = m.encode();
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with("nightshift_incidents_total{")).collect();
        assert_eq!(series.len(), MAX_TYPES + 1, "{series:?}");
        assert!(series.contains(&"nightshift_incidents_total{type=\"other\",severity=\"warning\"} 1901"), "{series:?}");
        assert!(series.contains(&"nightshift_incidents_total{type=\"a7\",severity=\"warning\"} 2"), "{series:?}");
    }
}
