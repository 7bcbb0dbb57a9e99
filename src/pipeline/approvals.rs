//! The human in the loop inside a run: pending approvals are created here,
//! abort windows waited out, and approved or unaborted actions carried out
//! (re-gated, and never on a target that healed meanwhile).

use std::time::{Duration, Instant};

use super::{MAX_WAIT, RunError, Runner, fingerprint_target, healthy_for, now};
use crate::actions::Action;
use crate::actions::ActionResult;
use crate::checks;
use crate::checks::spec::CheckSpec;
use crate::duration::timestamp;
use crate::memory::approvals::{Approval, ApprovalKind, ApprovalStatus, new_id};
use crate::memory::notes::{Incident, IncidentStatus};
use crate::policy::{Decision, Mode, Subject, Verdict};

impl Runner<'_> {
    pub(super) fn pending(&mut self, spec: &CheckSpec, inc: &Incident, action: &Action, verdict: &Verdict, kind: ApprovalKind, wait: Duration) -> Result<Approval, RunError> {
        let t = now();
        let subject = Subject::for_action(action, Some(&spec.name), spec.level);
        let rule = self.ws.policy.deciding_rule(&subject);
        let a = Approval {
            id: new_id(""),
            kind,
            status: ApprovalStatus::Pending,
            action: action.clone(),
            incident: Some(inc.id.clone()),
            check: Some(spec.name.clone()),
            level: spec.level,
            reason: verdict.reason.clone(),
            created: t,
            deadline: crate::duration::after(t, wait).unwrap_or(t),
            decided_by: None,
            decided_at: None,
            rule: rule.map(|r| format!("AGENTS.md line {}", r.line)),
            approvers: rule.map(|r| self.ws.policy.approvers(r)).unwrap_or_default(),
            posted: Vec::new(),
            announced: None,
            result: None,
        };
        let copy = a.clone();
        self.mem.update_approvals(|list| list.push(copy))?;
        self.asking.push(a.clone());
        Ok(a)
    }

    /// Expires old confirmations and carries out approved actions and abort
    /// windows that passed while no run was waiting.
    pub(super) async fn carry_out_approvals(&mut self) -> Result<(), RunError> {
        let t = now();
        let execute = self.mode == Mode::Execute;
        let (taken, expired) = self.mem.update_approvals(|list| {
            let mut taken = Vec::new();
            let mut expired = Vec::new();
            for a in list.iter_mut() {
                match (a.kind, a.status) {
                    (ApprovalKind::Confirm, ApprovalStatus::Pending) if a.deadline <= t => {
                        a.status = ApprovalStatus::Expired;
                        a.decided_at = Some(t);
                        expired.push(a.clone());
                    }
                    // Marked done by `execute` once its journal entry is written (or by
                    // `carry_out` when it is not carried out), so a crash loses none.
                    (ApprovalKind::Confirm, ApprovalStatus::Approved) | (ApprovalKind::AbortWindow, ApprovalStatus::Approved) if execute => taken.push(a.clone()),
                    (ApprovalKind::AbortWindow, ApprovalStatus::Pending) if execute && a.deadline <= t => taken.push(a.clone()),
                    _ => {}
                }
            }
            (taken, expired)
        })?;
        for a in expired {
            let verdict = Verdict { decision: Decision::Confirm, reason: a.reason.clone(), abort_window: None };
            let mut inc = a.incident.as_deref().and_then(|id| self.mem.read_incident(id).ok());
            self.record(inc.as_mut(), a.check.as_deref(), &a.action, &verdict, "-".into(), ActionResult::Expired, format!("approval {} expired unanswered", a.id), 0)?;
        }
        for a in taken {
            self.carry_out(a).await?;
        }
        Ok(())
    }

    /// Carries out one approval that a human approved or whose window passed.
    pub(super) async fn carry_out(&mut self, a: Approval) -> Result<(), RunError> {
        let spec = a.check.as_deref().and_then(|c| self.spec(c));
        // Re-gated with the check's level now: a check moved to L1 since the approval stops it.
        let level = spec.map_or(a.level, |s| s.level);
        let (subject, verdict) = self.gate(&a.action, a.check.as_deref(), level, None, 0);
        let satisfied = match (a.kind, a.status, a.decided_by.is_some()) {
            (_, _, true) => Decision::Confirm,
            _ => Decision::AbortWindow,
        };
        let mut inc = a.incident.as_deref().and_then(|id| self.mem.read_incident(id).ok());
        let route = a.decided_by.clone().map_or_else(|| "abort-window passed".to_string(), |who| format!("human:{who}"));
        let target_of = inc.as_ref().map(|i| fingerprint_target(&i.fingerprint).to_string());
        let passes_now = match spec {
            Some(s) => {
                let r = checks::run_one(s, &self.ctx).await;
                healthy_for(&r, target_of.as_deref()).then_some(r.summary)
            }
            None => None,
        };
        let (result, outcome, ms) = if verdict.decision > satisfied {
            self.close_approval(&a.id)?;
            (ActionResult::Denied, format!("not carried out: the policy now decides {} ({})", verdict.decision, verdict.reason), 0)
        } else if let Some(summary) = passes_now {
            self.close_approval(&a.id)?;
            (ActionResult::Aborted, format!("not carried out: the check passes now ({summary})"), 0)
        } else {
            let started = Instant::now();
            self.carrying = Some(a.id.clone());
            let (r, mut o) = self
                .execute(
                    &a.action,
                    inc.as_ref(),
                    spec,
                    &format!(
                        "{}, {route} ({})",
                        match a.kind {
                            ApprovalKind::Confirm => "confirm",
                            ApprovalKind::AbortWindow => "abort-window",
                        },
                        a.reason
                    ),
                )
                .await?;
            if a.action.kind().is_mutating() && r.executed() {
                // Only a human's approval earns trust; a verified success is one whose check passed again.
                let run = if a.kind == ApprovalKind::Confirm && a.decided_by.is_some() { super::trust::Run::Approved } else { super::trust::Run::Policy };
                let verified = r == ActionResult::Ok && spec.is_some() && a.action.kind().heals();
                let journal = self.unended.as_ref().map(|e| e.id.clone());
                for said in self.earn(&subject, run, verified, r, journal.as_deref()) {
                    o = format!("{o}; {said}");
                }
            }
            (r, o, started.elapsed().as_millis() as u64)
        };
        let report = self.record(inc.as_mut(), a.check.as_deref(), &a.action, &verdict, route, result, outcome, ms)?;
        if result == ActionResult::Ok
            && let Some(inc) = inc.as_mut()
            && let Some(r) = self.recover_primary(spec, level, inc, &a.action).await?
        {
            self.report.notes.push(format!("approval {}: {} on {} → {}: {}", a.id, r.action, r.target, r.result.as_str(), r.outcome));
        }
        let mut inc_status = None;
        if let Some(mut inc) = inc {
            if result == ActionResult::Ok && a.action.kind().holds_open() {
                inc.status = IncidentStatus::Open;
            } else if result == ActionResult::Ok && !a.action.kind().heals() {
                inc.status = IncidentStatus::NeedsHuman;
            } else if result == ActionResult::Ok {
                inc.status = IncidentStatus::Resolved;
                inc.resolved = Some(timestamp(now()));
                self.state.open.remove(&inc.fingerprint);
                self.resolved_classes.insert(inc.class.clone());
            } else if result != ActionResult::Ok && inc.status != IncidentStatus::Resolved {
                inc.status = IncidentStatus::NeedsHuman;
            }
            inc_status = Some(inc.status.as_str());
            self.mem.write_incident(&inc)?;
        }
        // What the humans are told when the request's message is updated.
        let status = inc_status.map(|s| format!("; incident {s}")).unwrap_or_default();
        let told = format!("{}: {}{status}", report.result.as_str(), report.outcome);
        let _write = self.mem.write_lock()?;
        self.mem.update_approvals(|list| {
            if let Some(x) = list.iter_mut().find(|x| x.id == a.id) {
                x.result = Some(told);
            }
        })?;
        drop(_write);
        self.report.notes.push(format!("approval {}: {} on {} → {}: {}", a.id, report.action, report.target, report.result.as_str(), report.outcome));
        Ok(())
    }

    /// Marks an approval that will not be carried out as done.
    pub(super) fn close_approval(&self, id: &str) -> Result<(), RunError> {
        self.mem.update_approvals(|list| {
            if let Some(a) = list.iter_mut().find(|a| a.id == id && matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)) {
                a.status = ApprovalStatus::Done;
            }
        })?;
        Ok(())
    }

    /// Waits out the abort windows this run announced (bounded by MAX_WAIT),
    /// then acts on those no human aborted.
    pub(super) async fn wait_windows(&mut self) -> Result<(), RunError> {
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.sort_by_key(|a| a.deadline);
        for a in waiting {
            let wait = (a.deadline - now()).to_std().unwrap_or_default();
            if wait > MAX_WAIT {
                self.report.notes.push(format!("approval {}: acts at {} unless aborted; a later run will carry it out", a.id, timestamp(a.deadline)));
                continue;
            }
            while now() < a.deadline {
                let decided = self.mem.load_approvals()?.iter().any(|x| x.id == a.id && matches!(x.status, ApprovalStatus::Aborted | ApprovalStatus::Approved));
                if decided {
                    break;
                }
                let left = (a.deadline - now()).to_std().unwrap_or_default();
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
            let taken = self.mem.load_approvals()?.into_iter().find(|x| x.id == a.id && matches!(x.status, ApprovalStatus::Pending | ApprovalStatus::Approved));
            match taken {
                Some(a) => self.carry_out(a).await?,
                None => self.report.notes.push(format!("approval {}: aborted by a human; not carried out", a.id)),
            }
        }
        Ok(())
    }
}
