//! Asking the humans: every pending decision (`confirm`, `abort-window`)
//! goes out as an approval request through the webhooks that take the
//! incident's severity, gated like any notification; once it is decided,
//! expires or is carried out, the Slack messages are updated in place and
//! JSON webhooks get an `approval_outcome` follow-up.

use super::{RunError, Runner};
use crate::actions::Action;
use crate::actions::ActionResult;
use crate::actions::notify::Webhook;
use crate::actions::notify::{ApprovalInfo, Envelope, Kind, Urgency, deliver_envelope, send_envelope};
use crate::memory::approvals::{Approval, ApprovalKind};
use crate::memory::notes::Incident;
use crate::policy::Verdict;
use crate::severity::Severity;

/// The request as one text: what, why, until when, and how to answer.
pub(super) fn request_text(inc: &Incident, info: &ApprovalInfo) -> String {
    let when = if info.abort_window { format!("acting at {} UTC unless aborted", info.deadline_hms) } else { format!("expires {}", info.deadline) };
    let answer = if info.abort_window { format!("nightshift abort {}", info.id) } else { format!("nightshift approve {0} (or nightshift abort {0})", info.id) };
    let urls = [info.approve_url.as_deref(), info.abort_url.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" / ");
    format!(
        "[{}] {} ({}, check {}, target {}): {}. Proposed: {} ({}; risk {}, blast radius {}); asked by {}: {}. Approval {}: {when}. Answer: {answer}{}",
        if info.abort_window { "acting unless aborted" } else { "approval needed" },
        inc.title,
        inc.severity.as_str(),
        inc.check,
        inc.target,
        inc.diagnosis.first().map(String::as_str).unwrap_or("no diagnosis yet"),
        info.describe,
        info.arguments,
        info.risk,
        info.blast_radius,
        info.rule,
        info.reason,
        info.id,
        if urls.is_empty() { String::new() } else { format!(" or POST {urls}") },
    )
}

/// The incident in one line: title, severity, check, target, diagnosis.
pub(super) fn incident_line(inc: &Incident) -> String {
    format!("{} ({}; check {}, target {}): {}", inc.title, inc.severity.as_str(), inc.check, inc.target, inc.diagnosis.first().map(String::as_str).unwrap_or("no diagnosis yet"))
}

impl Runner<'_> {
    /// Sends the requests for the approvals this step created.
    pub(super) async fn ask(&mut self, inc: &mut Incident) -> Result<(), RunError> {
        for a in std::mem::take(&mut self.asking) {
            if self.ws.policy.webhooks.is_empty() {
                continue;
            }
            let info = a.info(self.ws.policy.public_url.as_deref());
            let message = request_text(inc, &info);
            // A human must answer: at the incident's severity (critical pages).
            let action = Action::Notify { severity: inc.severity, message: message.clone(), urgency: Some(Urgency::of(inc.severity)) };
            let (verdict, held) = self.gate_notify(&action, Some(&inc.check));
            let verdict = Verdict { reason: format!("approval request {}; {}", a.id, verdict.reason), ..verdict };
            let (result, outcome) = match held {
                Some(held) => held,
                None => {
                    let mut e = Envelope::new(Kind::ApprovalRequest, inc.severity, &inc.check, &message, Some(&inc.id));
                    e.evidence = Some(inc.evidence.clone());
                    e.summary = Some(incident_line(inc));
                    e.approval = Some(info);
                    let (sent, posted) = send_envelope(&self.ws.policy.webhooks, &e, &self.mem.dead_letters()).await;
                    if !posted.is_empty() {
                        let _write = self.mem.write_lock()?;
                        self.mem.update_approvals(|list| {
                            if let Some(x) = list.iter_mut().find(|x| x.id == a.id) {
                                x.posted.extend(posted);
                            }
                        })?;
                    }
                    match sent {
                        Ok(o) => (ActionResult::Ok, o),
                        Err(e) => (ActionResult::Failed, e),
                    }
                }
            };
            self.record(Some(inc), None, &action, &verdict, "policy".into(), result, outcome, 0)?;
        }
        Ok(())
    }

    /// The pending approval of an incident, for an escalation to carry.
    pub(super) fn pending_for(&self, incident: &str) -> Option<ApprovalInfo> {
        let list = self.mem.load_approvals().ok()?;
        let a = list.iter().find(|a| a.incident.as_deref() == Some(incident) && a.stage().is_none())?;
        Some(a.info(self.ws.policy.public_url.as_deref()))
    }

    /// Tells the humans what became of every request they were sent whose
    /// stage changed: Slack messages updated in place (or a new message when
    /// there is nothing to update it by), `approval_outcome` to JSON webhooks.
    pub(super) async fn announce_outcomes(&mut self) -> Result<(), RunError> {
        let due: Vec<Approval> = self.mem.load_approvals()?.into_iter().filter(|a| !a.posted.is_empty() && a.stage().is_some() && a.announced.as_deref() != a.stage()).collect();
        for a in due {
            let stage = a.stage().unwrap_or_default();
            let info = a.info(self.ws.policy.public_url.as_deref());
            let severity = a.incident.as_deref().and_then(|i| self.mem.read_incident(i).ok()).map_or(Severity::Warning, |i| i.severity);
            let mut message = format!("approval {}: {}", a.id, info.outcome_line());
            if let Some(r) = &a.result {
                message.push_str(&format!("; result: {r}"));
            }
            // What became of a request: nobody needs to act on it.
            let action = Action::Notify { severity, message: message.clone(), urgency: Some(Urgency::Low) };
            let (verdict, held) = self.gate_notify(&action, a.check.as_deref());
            let verdict = Verdict { reason: format!("outcome of approval {}; {}", a.id, verdict.reason), ..verdict };
            let (result, outcome) = match held {
                Some(held) => held,
                None => {
                    let mut e = Envelope::new(Kind::ApprovalOutcome, severity, a.check.as_deref().unwrap_or("nightshift"), &message, a.incident.as_deref());
                    e.summary = a.incident.as_deref().and_then(|i| self.mem.read_incident(i).ok()).map(|i| incident_line(&i));
                    e.approval = Some(info);
                    e.urgency = Urgency::Low;
                    e.buttons = false;
                    self.tell_outcome(&a, &e).await
                }
            };
            {
                let _write = self.mem.write_lock()?;
                self.mem.update_approvals(|list| {
                    if let Some(x) = list.iter_mut().find(|x| x.id == a.id) {
                        x.announced = Some(stage.to_string());
                    }
                })?;
            }
            let mut inc = a.incident.as_deref().and_then(|i| self.mem.read_incident(i).ok());
            self.record(inc.as_mut(), a.check.as_deref(), &action, &verdict, "policy".into(), result, outcome, 0)?;
        }
        Ok(())
    }

    async fn tell_outcome(&self, a: &Approval, e: &Envelope) -> (ActionResult, String) {
        let webhooks = &self.ws.policy.webhooks;
        let find = |name: &str| webhooks.iter().find(|w| w.name == name);
        let blocks = {
            let mut v = crate::actions::notify::slack::blocks(e);
            crate::redact::redact_json(&mut v);
            v
        };
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut follow_up: Vec<&Webhook> = Vec::new();
        for p in &a.posted {
            let w = find(&p.webhook);
            if !p.slack {
                follow_up.extend(w);
                continue;
            }
            match crate::actions::notify::slack::update(w, p, &blocks).await {
                Ok(true) => done.push(format!("updated the Slack message on {}", p.webhook)),
                // An incoming webhook's message nobody clicked: a new message says it.
                Ok(false) => follow_up.extend(w),
                Err(err) => failed.push(format!("{}: {err}", p.webhook)),
            }
        }
        // One follow-up per webhook, however many of its messages carried the request.
        follow_up.sort_by(|a, b| a.name.cmp(&b.name));
        follow_up.dedup_by(|a, b| a.name == b.name);
        if !follow_up.is_empty() {
            match deliver_envelope(&follow_up, e, &self.mem.dead_letters()).await.0 {
                Ok(o) => done.push(o),
                Err(err) => failed.push(err),
            }
        }
        let kind = if a.kind == ApprovalKind::AbortWindow { "abort window" } else { "approval" };
        match failed.is_empty() {
            true => (ActionResult::Ok, format!("{kind} outcome: {}", done.join("; "))),
            false => (ActionResult::Failed, format!("{kind} outcome: {}", failed.join("; "))),
        }
    }
}
