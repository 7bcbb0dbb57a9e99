//! The escalation ladder (AGENTS.md `escalation:`; by default the seed's 5,
//! 15 and 30 minutes): an incident that stays unresolved and unacknowledged
//! that long is sent to each level's receivers in turn. A human's
//! acknowledgement (`nightshift ack`, the Slack button, the API) stops it;
//! resolution ends it. Levels sent are kept in the run state, so a restart
//! between levels neither repeats one nor forgets the next.

use chrono::{DateTime, Utc};

use super::{RunError, Runner, now};
use crate::actions::Action;
use crate::actions::ActionResult;
use crate::actions::notify::Urgency;
use crate::actions::notify::{Envelope, Kind, deliver_envelope, send_envelope};
use crate::duration::parse_ts;
use crate::memory::notes::{Incident, IncidentStatus};
use crate::memory::state::Escalated;
use crate::policy::{EscalationLevel, Verdict};

/// What the ladder says for an incident opened at `opened`, `sent` levels
/// in: the level now due (1-based) if it is higher than `sent`, and when the
/// level after the due ones falls due. Levels skipped while nightshift was
/// down are folded into the highest one due.
pub fn due(levels: &[EscalationLevel], opened: DateTime<Utc>, sent: usize, t: DateTime<Utc>) -> (Option<usize>, Option<DateTime<Utc>>) {
    let elapsed = (t - opened).to_std().unwrap_or_default();
    let reached = levels.iter().take_while(|l| elapsed >= l.after).count();
    let next = levels.get(reached).and_then(|l| crate::duration::after(opened, l.after));
    ((reached > sent).then_some(reached), next)
}

fn minutes(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) { format!("{}m", s / 60) } else { format!("{s}s") }
}

impl Runner<'_> {
    /// Sends the levels that have fallen due for every open incident.
    #[tracing::instrument(name = "escalate", skip_all)]
    pub(super) async fn escalate(&mut self) -> Result<(), RunError> {
        let open: std::collections::BTreeSet<String> = self.state.open.values().cloned().collect();
        self.state.escalated.retain(|id, _| open.contains(id));
        let levels = self.ws.policy.escalation.clone();
        if levels.is_empty() {
            return Ok(());
        }
        let acks = self.mem.load_acks().unwrap_or_default();
        let t = now();
        for id in open {
            let Ok(mut inc) = self.mem.read_incident(&id) else { continue };
            if inc.status == IncidentStatus::Resolved {
                self.state.escalated.remove(&id);
                continue;
            }
            let sent = self.state.escalated.get(&id).map_or(0, |e| e.level);
            if acks.contains_key(&id) {
                self.state.escalated.insert(id, Escalated { level: sent, next_at: None });
                continue;
            }
            let Some(opened) = parse_ts(&inc.detected) else { continue };
            let (level, next_at) = due(&levels, opened, sent, t);
            self.state.escalated.insert(id.clone(), Escalated { level: level.unwrap_or(sent), next_at });
            if let Some(n) = level {
                self.send_level(&mut inc, &levels, n, t - opened).await?;
                self.mem.write_incident(&inc)?;
            }
        }
        Ok(())
    }

    async fn send_level(&mut self, inc: &mut Incident, levels: &[EscalationLevel], n: usize, open_for: chrono::Duration) -> Result<(), RunError> {
        if self.ws.policy.webhooks.is_empty() {
            // Nobody to tell: the level counts as passed, the note is not padded.
            return Ok(());
        }
        let level = &levels[n - 1];
        let open_for = minutes(open_for.to_std().unwrap_or_default());
        let message = format!(
            "[escalation level {n} of {}] {} ({}, {}) has been open {open_for} without being resolved or acknowledged; take it with `nightshift ack {}`",
            levels.len(),
            inc.title,
            inc.id,
            inc.severity.as_str(),
            inc.id
        );
        // Nobody answered: a critical incident pages, anything else goes out at high.
        let urgency = if inc.severity == crate::severity::Severity::Critical { Urgency::Page } else { Urgency::High };
        let action = Action::Notify { severity: inc.severity, message: message.clone(), urgency: Some(urgency) };
        // Through the gate like any notification: a `notify: forbid` rule stops it, dry-run sends nothing.
        let (verdict, held) = self.gate_notify(&action, Some(&inc.check));
        let ladder = format!("escalation level {n} of {}: unresolved and unacknowledged after {}", levels.len(), minutes(level.after));
        let verdict = Verdict { reason: format!("{ladder}; {}", verdict.reason), ..verdict };
        let (result, outcome) = match held {
            Some(held) => held,
            None => {
                let dead = self.mem.dead_letters();
                let webhooks = &self.ws.policy.webhooks;
                // An approval still waiting rides along: its buttons reach the next level.
                let mut e = Envelope::new(Kind::Escalation, inc.severity, &inc.check, &message, Some(&inc.id));
                e.evidence = Some(inc.evidence.clone());
                e.urgency = urgency;
                e.approval = self.pending_for(&inc.id);
                if let Some(a) = &e.approval {
                    e.summary = Some(message.clone());
                    e.message = format!("{message}; approval {} is waiting: {}", a.id, super::ask::request_text(inc, a));
                }
                let (sent, posted) = if level.notify.is_empty() {
                    send_envelope(webhooks, &e, &dead).await
                } else {
                    let targets: Vec<&crate::actions::notify::Webhook> = webhooks.iter().filter(|w| level.notify.contains(&w.name)).collect();
                    deliver_envelope(&targets, &e, &dead).await
                };
                if let Some(a) = e.approval.as_ref().filter(|_| !posted.is_empty()) {
                    // Updated with the outcome too, like the first request.
                    let _write = self.mem.write_lock()?;
                    self.mem.update_approvals(|list| {
                        if let Some(x) = list.iter_mut().find(|x| x.id == a.id) {
                            x.posted.extend(posted.into_iter().filter(|p| p.slack));
                        }
                    })?;
                }
                match sent {
                    Ok(o) => (ActionResult::Ok, o),
                    Err(e) => (ActionResult::Failed, e),
                }
            }
        };
        self.record(Some(inc), None, &action, &verdict, "escalation".into(), result, outcome, 0)?;
        self.report.notes.push(format!("incident {} escalated to level {n}", inc.id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn levels_fall_due_in_turn_and_missed_ones_fold_into_the_highest() {
        let levels = crate::policy::default_escalation();
        let opened = parse_ts("2026-11-23T03:00:00Z").unwrap_or_default();
        let at = |m: i64| opened + chrono::Duration::minutes(m);
        assert_eq!(due(&levels, opened, 0, at(4)), (None, Some(at(5))));
        assert_eq!(due(&levels, opened, 0, at(5)), (Some(1), Some(at(15))));
        assert_eq!(due(&levels, opened, 1, at(14)), (None, Some(at(15))));
        // Down from minute 4 to minute 20: one message, level 2.
        assert_eq!(due(&levels, opened, 0, at(20)), (Some(2), Some(at(30))));
        assert_eq!(due(&levels, opened, 3, at(90)), (None, None));
        let one = [EscalationLevel { after: Duration::from_secs(30), notify: vec![] }];
        assert_eq!(due(&one, opened, 0, opened - chrono::Duration::seconds(5)), (None, Some(opened + chrono::Duration::seconds(30))), "a clock behind the note is not a level");
    }
}
