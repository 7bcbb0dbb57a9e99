//! Telling the humans without tiring them: notifications pass the gate like
//! any action; L4 checks speak only when a human is needed; an auto-fixed
//! info-level problem is only audited; incidents of the same type and
//! service within `notify_window` fold into one message (a summary with the
//! count and examples follows when the window closes); a problem seen more
//! than three times is escalated as needing a permanent fix.

use chrono::Duration as ChronoDuration;

use super::{ActionReport, RunError, Runner, now};
use crate::actions::Action;
use crate::actions::ActionResult;
use crate::actions::notify::Urgency;
use crate::checks::spec::CheckSpec;
use crate::checks::{CheckResult, Status};
use crate::duration::timestamp;
use crate::memory::notes::{Incident, IncidentStatus};
use crate::memory::state::NotifyWindow;
use crate::policy::{self, Decision};
use crate::severity::{Level, Severity};

impl Runner<'_> {
    /// Tells the humans about a check's incident, as an action through the gate.
    #[tracing::instrument(name = "notify", skip_all, fields(check = %spec.name, incident.id = %inc.id, status = inc.status.as_str()))]
    pub(super) async fn notify(&mut self, spec: &CheckSpec, inc: &mut Incident, reports: &mut Vec<ActionReport>, healed_now: bool, occurrences: usize) -> Result<(), RunError> {
        if self.ws.policy.webhooks.is_empty() {
            return Ok(());
        }
        if spec.level == Level::L4 && inc.status != IncidentStatus::NeedsHuman {
            return Ok(());
        }
        let permanent = occurrences > 3;
        if healed_now && inc.severity == Severity::Info && !permanent {
            self.report.notes.push(format!("incident {}: auto-fixed, info level: audited, not sent", inc.id));
            return Ok(());
        }
        let mut message = format!("[{}] {}: {}", inc.status.as_str(), inc.title, inc.diagnosis.first().cloned().unwrap_or_default());
        // The seed's levels: fixed → low, with what was done; recurring → high; needs a human → its severity.
        let (severity, urgency) = if permanent {
            message = format!("needs a permanent fix (happened {occurrences} times): {message}");
            (Severity::Critical, Urgency::High)
        } else if healed_now {
            if let Some(done) = reports.iter().rev().find(|r| r.result == ActionResult::Ok && r.action != "notify") {
                message = format!("{message}; fixed automatically: {} on {}: {}", done.action, done.target, done.outcome.chars().take(300).collect::<String>());
            }
            (inc.severity, Urgency::Low)
        } else if inc.status == IncidentStatus::Resolved {
            (inc.severity, Urgency::Low)
        } else {
            (inc.severity, Urgency::of(inc.severity))
        };
        let key = format!("{}:{}", inc.class, spec.name);
        if !permanent {
            match self.aggregate(&key, severity, &message) {
                Some(earlier) => message.push_str(&earlier),
                None => {
                    self.report.notes.push(format!("incident {}: notification folded into the open window for {key}", inc.id));
                    return Ok(());
                }
            }
        }
        let action = Action::Notify { severity, message, urgency: Some(urgency) };
        let step = self.step(spec, inc, &action, &[]).await?;
        reports.push(step);
        Ok(())
    }

    /// Notifies about an incident that no check declared (an alert), through the gate.
    pub(super) async fn notify_plain(&mut self, inc: &mut Incident, reports: &mut Vec<ActionReport>) -> Result<(), RunError> {
        if self.ws.policy.webhooks.is_empty() {
            return Ok(());
        }
        let mut message = format!("[{}] {}: {}", inc.status.as_str(), inc.title, inc.diagnosis.first().cloned().unwrap_or_default());
        match self.aggregate(&format!("{}:{}", inc.class, inc.check), inc.severity, &message) {
            Some(earlier) => message.push_str(&earlier),
            None => return Ok(()),
        }
        let urgency = if inc.status == IncidentStatus::Resolved { Urgency::Low } else { Urgency::of(inc.severity) };
        let action = Action::Notify { severity: inc.severity, message, urgency: Some(urgency) };
        let subject = policy::Subject::for_action(&action, Some(&inc.check), Level::L3);
        let verdict = policy::decide(&self.ws.policy, &subject, &policy::History::default());
        let (result, outcome) = if verdict.decision >= Decision::Alert { (ActionResult::Denied, format!("refused: {}", verdict.reason)) } else { self.execute(&action, Some(inc), None, "").await? };
        reports.push(self.record(Some(inc), None, &action, &verdict, "policy".into(), result, outcome, 0)?);
        Ok(())
    }

    /// A warning that opens no incident (a certificate inside `warn_days`, a
    /// disk filling toward its limit) goes out at `low`, once a day (UTC) per
    /// check and target; the day sent is kept in the run state, so restarts
    /// do not repeat it.
    pub(super) async fn warn_daily(&mut self, spec: &CheckSpec, result: &CheckResult) -> Result<(), RunError> {
        if self.ws.policy.webhooks.is_empty() || spec.level == Level::L4 {
            return Ok(());
        }
        let mut warned: Vec<(String, String)> = result.series.iter().filter(|s| s.status == Status::Warning).map(|s| (s.target.clone(), s.summary.clone())).collect();
        if result.series.is_empty() && result.status == Status::Warning {
            warned.push((result.target.clone(), result.summary.clone()));
        }
        let today = now().format("%Y-%m-%d").to_string();
        for (target, summary) in warned {
            let key = format!("{} {target}", spec.name);
            if self.state.warned.get(&key) == Some(&today) {
                continue;
            }
            self.state.warned.insert(key, today.clone());
            let message = format!("[warning] {} on {target}: {summary} (no incident; sent once a day while it lasts)", spec.name);
            let action = Action::Notify { severity: Severity::Warning, message, urgency: Some(Urgency::Low) };
            let subject = policy::Subject::for_action(&action, Some(&spec.name), Level::L3);
            let verdict = policy::decide(&self.ws.policy, &subject, &policy::History::default());
            let verdict = policy::Verdict { reason: format!("a warning, once a day per target; {}", verdict.reason), ..verdict };
            let (result, outcome) =
                if verdict.decision >= Decision::Alert { (ActionResult::Denied, format!("refused: {}", verdict.reason)) } else { self.execute(&action, None, Some(spec), "").await? };
            self.record(None, Some(&spec.name), &action, &verdict, "policy".into(), result, outcome, 0)?;
        }
        Ok(())
    }

    /// `Some(suffix)` when a message for `key` may go now (the suffix counts
    /// what an earlier, closed window folded); `None` when it folds into the
    /// open window.
    fn aggregate(&mut self, key: &str, severity: Severity, message: &str) -> Option<String> {
        let t = now();
        let window = ChronoDuration::from_std(self.ws.policy.notify_window).unwrap_or_default();
        match self.state.notified.get_mut(key) {
            Some(w) if t - w.opened < window => {
                w.suppressed += 1;
                if w.examples.len() < 3 {
                    // Redacted before it is cut: a secret cut in half no longer looks like one.
                    w.examples.push(crate::redact::redact(message).chars().take(160).collect());
                }
                w.severity = w.severity.max(Some(severity));
                None
            }
            _ => {
                let prev = self.state.notified.insert(key.to_string(), NotifyWindow { opened: t, severity: Some(severity), suppressed: 0, examples: Vec::new() });
                Some(match prev {
                    Some(p) if p.suppressed > 0 => format!(" (and {} similar since {}: {})", p.suppressed, timestamp(p.opened), p.examples.join(" | ")),
                    _ => String::new(),
                })
            }
        }
    }

    /// The gate for a notification nightshift sends of its own accord (an
    /// escalation, a summary): the verdict, and the result when it must not
    /// be sent (refused by a rule, or a dry run).
    pub(super) fn gate_notify(&self, action: &Action, check: Option<&str>) -> (policy::Verdict, Option<(ActionResult, String)>) {
        let subject = policy::Subject::for_action(action, check, Level::L3);
        let verdict = policy::decide(&self.ws.policy, &subject, &policy::History::default());
        let held = if verdict.decision >= Decision::Alert {
            Some((ActionResult::Denied, format!("refused: {}", verdict.reason)))
        } else if self.mode == policy::Mode::DryRun {
            Some((ActionResult::DryRun, format!("dry-run: would send: {}", action.describe())))
        } else {
            None
        };
        (verdict, held)
    }

    /// Sends one summary for every closed window that folded messages.
    pub(super) async fn flush_notifications(&mut self) -> Result<(), RunError> {
        if self.ws.policy.webhooks.is_empty() {
            return Ok(());
        }
        let t = now();
        let window = ChronoDuration::from_std(self.ws.policy.notify_window).unwrap_or_default();
        let closed: Vec<(String, NotifyWindow)> = self.state.notified.iter().filter(|(_, w)| t - w.opened >= window && w.suppressed > 0).map(|(k, w)| (k.clone(), w.clone())).collect();
        for (key, w) in closed {
            self.state.notified.remove(&key);
            let message = format!("{} more notification(s) for {key} since {}: {}", w.suppressed, timestamp(w.opened), w.examples.join(" | "));
            // A summary of messages already sent never pages.
            let severity = w.severity.unwrap_or(Severity::Warning);
            let urgency = if severity == Severity::Critical { Urgency::High } else { Urgency::Low };
            let action = Action::Notify { severity, message, urgency: Some(urgency) };
            let (verdict, held) = self.gate_notify(&action, None);
            let verdict = policy::Verdict { reason: format!("summary of an aggregation window; {}", verdict.reason), ..verdict };
            let (result, outcome) = match held {
                Some(held) => held,
                None => self.execute(&action, None, None, "").await?,
            };
            self.record(None, None, &action, &verdict, "policy".into(), result, outcome, 0)?;
        }
        // Windows with nothing folded simply expire.
        self.state.notified.retain(|_, w| t - w.opened < window || w.suppressed > 0);
        Ok(())
    }
}
