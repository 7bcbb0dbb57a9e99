//! Bounds on alert intake. A request may carry at most `MAX_ALERTS` alerts,
//! each with at most `MAX_ENTRIES` labels and annotations of bounded size;
//! a request over a bound is refused whole (400, naming the alert and the
//! bound), before anything of it is kept. One pass opens at most
//! `MAX_NEW_INCIDENTS` incidents from alerts: the firing alerts beyond them
//! are not dropped but folded into one `alert-storm` incident (counted by
//! name, with examples), which stays open, needing a human, and is updated
//! by every later storm; alerts with an open incident are always handled.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{RunError, Runner, now};
use crate::duration::timestamp;
use crate::memory::notes::{Incident, IncidentStatus};
use crate::severity::Severity;

use super::{Alert, AlertError};

/// Alerts in one Alertmanager request (its webhook's `max_alerts` bounds them at the sender).
pub const MAX_ALERTS: usize = 5_000;
/// Labels, and annotations, of one alert.
pub const MAX_ENTRIES: usize = 64;
/// Bytes of a label or annotation name.
pub const MAX_NAME: usize = 256;
/// Bytes of a label value (labels name the alert: they become its title and fingerprint).
pub const MAX_LABEL_VALUE: usize = 1024;
/// Bytes of an annotation value (free text: evidence only).
pub const MAX_ANNOTATION: usize = 16 * 1024;
/// Incidents alerts may open in one pass; the rest fold into the storm incident.
pub const MAX_NEW_INCIDENTS: usize = 100;

/// The storm incident's fingerprint: one for the whole intake.
pub const STORM_FINGERPRINT: &str = "alert-storm:alert-storm:intake";

/// Refuses a request of more than `MAX_ALERTS` alerts.
pub fn check_count(n: usize) -> Result<(), AlertError> {
    if n > MAX_ALERTS {
        return Err(AlertError(format!("{n} alerts in one request; at most {MAX_ALERTS}: set `max_alerts: {MAX_ALERTS}` in Alertmanager's webhook_config")));
    }
    Ok(())
}

/// Refuses an alert whose labels or annotations are over a bound (checked on
/// the raw JSON, before anything of it is copied).
pub fn check_alert(a: &Value, i: usize) -> Result<(), AlertError> {
    for (what, max_value) in [("labels", MAX_LABEL_VALUE), ("annotations", MAX_ANNOTATION)] {
        let Some(m) = a.get(what).and_then(Value::as_object) else { continue };
        if m.len() > MAX_ENTRIES {
            return Err(AlertError(format!("alerts[{i}].{what} has {} entries; at most {MAX_ENTRIES}", m.len())));
        }
        for (k, v) in m {
            if k.len() > MAX_NAME {
                let start: String = k.chars().take(32).collect();
                return Err(AlertError(format!("alerts[{i}].{what}: the name `{start}…` is {} bytes long; at most {MAX_NAME}", k.len())));
            }
            if let Some(s) = v.as_str().filter(|s| s.len() > max_value) {
                return Err(AlertError(format!("alerts[{i}].{what}.{k} is {} bytes long; at most {max_value}", s.len())));
            }
        }
    }
    Ok(())
}

/// The storm incident's evidence: the folded alerts counted by name (the 20
/// most frequent) and the label sets of the first 10.
fn storm_evidence(folded: &[(Alert, u32)]) -> String {
    let mut by_name: BTreeMap<&str, u32> = BTreeMap::new();
    for (a, seen) in folded {
        *by_name.entry(a.name()).or_default() += seen;
    }
    let mut names: Vec<(&str, u32)> = by_name.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut s = format!("{} firing label sets beyond the {MAX_NEW_INCIDENTS} new incidents of one pass; by alert name:\n", folded.len());
    for (name, n) in names.iter().take(20) {
        s.push_str(&format!("  {n} × {name}\n"));
    }
    if names.len() > 20 {
        s.push_str(&format!("  and {} more names\n", names.len() - 20));
    }
    s.push_str("examples (untrusted labels):\n");
    for (a, _) in folded.iter().take(10) {
        s.push_str(&format!("  {} {}\n", a.name(), a.target()));
    }
    crate::redact::redact(&s)
}

impl Runner<'_> {
    /// Opens, or updates, the one incident that counts the firing alerts a
    /// pass did not open incidents for.
    pub(super) async fn alert_storm(&mut self, folded: Vec<(Alert, u32)>) -> Result<(), RunError> {
        let t = timestamp(now());
        let count: u32 = folded.iter().map(|(_, n)| n).sum();
        let severity = folded.iter().map(|(a, _)| a.severity()).max().unwrap_or(Severity::Warning);
        tracing::warn!(folded = folded.len(), limit = MAX_NEW_INCIDENTS, "alert storm: firing alerts beyond the incidents one pass opens are folded into one incident");
        let evidence = storm_evidence(&folded);
        let existing = self.state.open.get(STORM_FINGERPRINT).and_then(|id| self.mem.read_incident(id).ok());
        let new = existing.is_none();
        let inc = match existing {
            Some(mut inc) => {
                inc.last_seen = t;
                inc.occurrences += count;
                inc.evidence = evidence;
                inc.severity = inc.severity.max(severity);
                inc
            }
            None => Incident {
                id: self.mem.new_incident_id(now(), "alert-storm"),
                title: format!("Alert storm: more alerts than the {MAX_NEW_INCIDENTS} incidents one pass opens"),
                fingerprint: STORM_FINGERPRINT.into(),
                class: "alert-storm".into(),
                target: "intake".into(),
                check: "alert:storm (intake)".into(),
                failing_since: Some(t.clone()),
                attempts: Vec::new(),
                tokens: 0,
                recalled_from: None,
                severity,
                status: IncidentStatus::NeedsHuman,
                detected: t.clone(),
                last_seen: t,
                resolved: None,
                occurrences: count,
                evidence,
                diagnosis: vec![
                    format!("alerts opened {MAX_NEW_INCIDENTS} incidents in one pass; the firing alerts beyond them are counted here instead of opening one incident each"),
                    "the alerts themselves are in Alertmanager; a later pass opens incidents for those that keep firing, at most the limit each pass".into(),
                ],
                actions: Vec::new(),
                prevention: vec!["group or inhibit the alerts in Alertmanager (`group_by`, `inhibit_rules`), so one problem sends one alert".into()],
                related: Vec::new(),
            },
        };
        self.report.notes.push(format!("incident {}: {} firing alert(s) folded beyond the {MAX_NEW_INCIDENTS} new incidents of one pass", inc.id, folded.len()));
        self.keep_alert_incident(STORM_FINGERPRINT, inc, new).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse_alertmanager;

    fn body(alerts: &[String]) -> Vec<u8> {
        format!(r#"{{"version":"4","status":"firing","alerts":[{}]}}"#, alerts.join(",")).into_bytes()
    }

    fn alert(labels: &str, annotations: &str) -> String {
        format!(r#"{{"status":"firing","labels":{{"alertname":"A"{labels}}},"annotations":{{{annotations}}}}}"#)
    }

    #[test]
    fn requests_over_a_bound_are_refused_naming_the_alert_and_the_bound() {
        let many_labels: String = (0..64).map(|i| format!(r#","l{i}":"v""#)).collect();
        let many_notes: String = (0..65).map(|i| format!(r#""n{i}":"v""#)).collect::<Vec<_>>().join(",");
        let cases = [
            (body(&vec![alert("", ""); MAX_ALERTS + 1]), "5001 alerts in one request; at most 5000: set `max_alerts: 5000` in Alertmanager's webhook_config".to_string()),
            (body(&[alert(&many_labels, "")]), "alerts[0].labels has 65 entries; at most 64".into()),
            (body(&[alert("", ""), alert(&format!(r#","instance":"{}""#, "x".repeat(1025)), "")]), "alerts[1].labels.instance is 1025 bytes long; at most 1024".into()),
            (body(&[alert(&format!(r#","{}":"v""#, "k".repeat(257)), "")]), format!("alerts[0].labels: the name `{}…` is 257 bytes long; at most 256", "k".repeat(32))),
            (body(&[alert("", &many_notes)]), "alerts[0].annotations has 65 entries; at most 64".into()),
            (body(&[alert("", &format!(r#""description":"{}""#, "d".repeat(16 * 1024 + 1)))]), "alerts[0].annotations.description is 16385 bytes long; at most 16384".into()),
        ];
        for (b, want) in cases {
            assert_eq!(parse_alertmanager(&b).map(|a| a.len()), Err(AlertError(want)));
        }
        // At the bounds, accepted.
        let full = alert(&(0..63).map(|i| format!(r#","l{i}":"{}""#, "v".repeat(1024))).collect::<String>(), &format!(r#""description":"{}""#, "d".repeat(16 * 1024)));
        assert_eq!(parse_alertmanager(&body(&[full])).map(|a| a.len()), Ok(1));
        assert_eq!(parse_alertmanager(&body(&vec![alert("", ""); MAX_ALERTS])).map(|a| a.len()), Ok(MAX_ALERTS));
    }
}
