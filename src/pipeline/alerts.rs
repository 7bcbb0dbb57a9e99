//! Alertmanager alerts as incidents, through the same memory and notifications
//! as failing checks: a firing alert opens (or updates) the incident of its
//! label set, a resolved alert resolves it. Annotations are untrusted text:
//! they go into the fenced evidence, never into titles or decisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IncidentReport, RunError, Runner, now, slug};
use crate::memory::notes::{Incident, IncidentStatus, timestamp};
use crate::workspace::heartbeat::Severity;

/// One alert of an Alertmanager webhook (payload version 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    pub starts_at: String,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AlertError(pub String);

fn strings(v: &Value, what: &str, i: usize) -> Result<BTreeMap<String, String>, AlertError> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())).ok_or_else(|| AlertError(format!("alerts[{i}].{what}.{k} must be a string"))))
            .collect(),
        _ => Err(AlertError(format!("alerts[{i}].{what} must be an object of strings"))),
    }
}

/// Validates an Alertmanager webhook body and returns its alerts.
pub fn parse_alertmanager(body: &[u8]) -> Result<Vec<Alert>, AlertError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AlertError(format!("not JSON: {e}")))?;
    match v.get("version").and_then(Value::as_str) {
        Some("4") => {}
        Some(other) => return Err(AlertError(format!("unsupported payload version {other:?}; Alertmanager sends version \"4\""))),
        None => return Err(AlertError("missing \"version\": not an Alertmanager webhook payload".into())),
    }
    let alerts = v.get("alerts").and_then(Value::as_array).ok_or_else(|| AlertError("missing \"alerts\" array".into()))?;
    let mut out = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        let status = a.get("status").and_then(Value::as_str).ok_or_else(|| AlertError(format!("alerts[{i}].status is missing")))?;
        if status != "firing" && status != "resolved" {
            return Err(AlertError(format!("alerts[{i}].status is {status:?}; expected \"firing\" or \"resolved\"")));
        }
        let labels = strings(a.get("labels").unwrap_or(&Value::Null), "labels", i)?;
        if !labels.contains_key("alertname") {
            return Err(AlertError(format!("alerts[{i}].labels.alertname is missing")));
        }
        out.push(Alert {
            status: status.to_string(),
            labels,
            annotations: strings(a.get("annotations").unwrap_or(&Value::Null), "annotations", i)?,
            starts_at: a.get("startsAt").and_then(Value::as_str).unwrap_or("").to_string(),
            fingerprint: a.get("fingerprint").and_then(Value::as_str).unwrap_or("").to_string(),
        });
    }
    Ok(out)
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("alert", String::as_str)
    }

    /// The stable target: the label set without the alert's name.
    pub fn target(&self) -> String {
        let inner: Vec<String> = self.labels.iter().filter(|(k, _)| k.as_str() != "alertname").map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", inner.join(","))
    }

    pub fn fingerprint(&self) -> String {
        format!("alert-{}:{}:{}", slug(self.name()), slug(self.name()), self.target())
    }

    pub fn severity(&self) -> Severity {
        self.labels.get("severity").and_then(|s| Severity::parse(&s.to_lowercase())).unwrap_or(Severity::Warning)
    }
}

impl Runner<'_> {
    /// Handles a batch of alerts: the last word on each label set wins.
    pub(super) async fn ingest_alerts(&mut self, alerts: Vec<Alert>) -> Result<(), RunError> {
        let mut latest: BTreeMap<String, (Alert, u32)> = BTreeMap::new();
        for a in alerts {
            let entry = latest.entry(a.fingerprint()).or_insert_with(|| (a.clone(), 0));
            entry.0 = a;
            entry.1 += 1;
        }
        for (fp, (alert, seen)) in latest {
            let open = self.state.open.get(&fp).cloned();
            match (alert.status.as_str(), open) {
                ("resolved", Some(id)) => {
                    self.state.open.remove(&fp);
                    if let Ok(mut inc) = self.mem.read_incident(&id) {
                        inc.status = IncidentStatus::Resolved;
                        inc.resolved = Some(timestamp(now()));
                        inc.actions.push(format!("{} Alertmanager reports the alert resolved", timestamp(now())));
                        self.resolved_classes.insert(inc.class.clone());
                        self.mem.write_incident(&inc)?;
                        self.changed = true;
                        self.report.notes.push(format!("incident {id} resolved: alert {} resolved", alert.name()));
                    }
                }
                ("resolved", None) => {}
                _ => self.alert_fires(&fp, &alert, seen).await?,
            }
        }
        Ok(())
    }

    async fn alert_fires(&mut self, fp: &str, alert: &Alert, seen: u32) -> Result<(), RunError> {
        let t = timestamp(now());
        let annotations = serde_json::to_string_pretty(&alert.annotations).unwrap_or_default();
        let evidence = crate::redact::redact(&format!("alert {} {} since {}\nlabels: {}\nannotations (untrusted):\n{annotations}", alert.name(), alert.status, alert.starts_at, alert.target()));
        let existing = self.state.open.get(fp).and_then(|id| self.mem.read_incident(id).ok());
        let new = existing.is_none();
        let mut inc = match existing {
            Some(mut inc) => {
                inc.last_seen = t;
                inc.occurrences += seen;
                inc.evidence = evidence;
                inc
            }
            None => Incident {
                id: self.mem.new_incident_id(now(), &slug(&format!("alert-{}", alert.name()))),
                title: format!("Alert {} on {}", alert.name(), alert.target()),
                fingerprint: fp.to_string(),
                class: slug(alert.name()),
                target: alert.target(),
                check: format!("alert:{} (alertmanager)", alert.name()),
                failing_since: Some(if alert.starts_at.is_empty() { t.clone() } else { alert.starts_at.clone() }),
                attempts: Vec::new(),
                tokens: 0,
                recalled_from: None,
                severity: alert.severity(),
                status: IncidentStatus::NeedsHuman,
                detected: t.clone(),
                last_seen: t,
                resolved: None,
                occurrences: seen,
                evidence,
                diagnosis: vec![
                    format!("Alertmanager reports {} firing for {}", crate::memory::code(alert.name()), crate::memory::code(&alert.target())),
                    "no runbook acts on alerts in this build: a human decides; the annotations are in the evidence".into(),
                ],
                actions: Vec::new(),
                prevention: vec!["give the alert a runbook link and, where it is safe, a declared repair".into()],
                related: Vec::new(),
            },
        };
        self.state.open.insert(fp.to_string(), inc.id.clone());
        let mut reports = Vec::new();
        if new {
            self.notify_plain(&mut inc, &mut reports).await?;
        }
        self.mem.write_incident(&inc)?;
        self.changed = true;
        self.report.failing = true;
        self.report.incidents.push(IncidentReport::of(&inc, new, reports));
        Ok(())
    }
}
