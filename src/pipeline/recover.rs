//! After a crash: actions the write-ahead journal shows as begun and never
//! ended are recorded as interrupted (so cooldowns and the circuit breaker
//! count them) and never re-run.

use super::{RunError, Runner};
use crate::actions::ActionResult;
use crate::checks;
use crate::duration::timestamp;
use crate::memory::approvals::{ApprovalKind, ApprovalStatus};
use crate::policy::{Decision, Verdict};

impl Runner<'_> {
    /// After a restart: actions that began and never ended are recorded as
    /// interrupted (so cooldowns and the circuit breaker count them), and never re-run.
    pub(super) async fn reconcile_journal(&mut self) -> Result<(), RunError> {
        for u in self.mem.unfinished()? {
            let spec = u.check.as_deref().and_then(|c| self.spec(c));
            let now_state = match spec {
                Some(s) => {
                    let r = checks::run_one(s, &self.ctx).await;
                    format!("check {} is now {}: {}", s.name, r.status.as_str(), r.summary)
                }
                None => "its check no longer exists".into(),
            };
            let outcome = format!("the process stopped during this action (begun {}); not repeated; {now_state}", timestamp(u.at));
            // A stop between the journal's begin and the approval's update left the approval
            // approved: it is this action's, and it is done (never carried out twice).
            self.mem.update_approvals(|list| {
                for a in list.iter_mut().filter(|a| a.action == u.action && a.incident == u.incident) {
                    let started = match (a.kind, a.status) {
                        (_, ApprovalStatus::Approved) => true,
                        (ApprovalKind::AbortWindow, ApprovalStatus::Pending) => a.deadline <= u.at,
                        _ => false,
                    };
                    if !started {
                        continue;
                    }
                    a.status = ApprovalStatus::Done;
                }
            })?;
            self.state.record(u.action.kind(), &u.action.rate_key(), u.at, ActionResult::Interrupted);
            // Ended once recorded: a crash during this reconciliation reconciles it again.
            self.unended = Some(super::JournalEnd { id: u.id.clone(), result: ActionResult::Interrupted, detail: outcome.clone() });
            let verdict = Verdict { decision: Decision::Auto, reason: "reconciled from the write-ahead journal".into(), abort_window: None };
            let mut inc = u.incident.as_deref().and_then(|id| self.mem.read_incident(id).ok());
            // An interrupted action takes back the trust its rules earned.
            let subject = crate::policy::Subject::for_action(&u.action, u.check.as_deref(), spec.map_or(crate::severity::Level::L3, |s| s.level));
            let mut outcome = outcome;
            for said in self.earn(&subject, super::trust::Run::Policy, false, ActionResult::Interrupted, Some(&u.id)) {
                outcome = format!("{outcome}; {said}");
            }
            let report = self.record(inc.as_mut(), u.check.as_deref(), &u.action, &verdict, "journal".into(), ActionResult::Interrupted, outcome, 0)?;
            self.report.notes.push(format!("reconciled interrupted {} on {}: {}", report.action, report.target, report.outcome));
        }
        self.mem.rotate_journal()?;
        Ok(())
    }
}
