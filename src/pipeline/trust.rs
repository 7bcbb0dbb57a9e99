//! Trust that is earned: a `decide: confirm` rule with `promote_after: N`
//! decides `auto` once N human-approved executions of its action on targets
//! it matches were each verified healthy in a row, and goes back to
//! `confirm` at the first failed or interrupted one. The count lives in the
//! run state (`state/state.json`), written with the action's rate record
//! before its journal entry ends: a crash before that write counts nothing
//! (the journal reports the action interrupted, which demotes), a crash
//! after it is reconciled as interrupted too, so nothing counts twice.

use chrono::{DateTime, Utc};

use super::{Runner, now};
use crate::actions::Action;
use crate::actions::ActionResult;
use crate::memory::state::{TRUST_EVENTS, TrustEvent};
use crate::policy::{Decision, History, Rule, Subject, Verdict};
use crate::severity::Level;

/// How an executed action bears on trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// A human approved it (not an abort window that passed).
    Approved,
    /// The policy (or an earned `auto`) let it run.
    Policy,
}

impl Runner<'_> {
    /// The one gate sequence every planned or approved action passes: its subject (the
    /// check and the check's level now; `together`, the instances the pass's restarts
    /// touch together), the history the policy counts (rates, trust earned; `distrust`
    /// when memory saw this remedy fail for the problem), the verdict.
    pub(super) fn gate(&self, action: &Action, check: Option<&str>, level: Level, distrust: Option<String>, together: u32) -> (Subject, Verdict) {
        let mut subject = Subject::for_action(action, check, level);
        subject.together = together;
        let mut history = self.gate_history(action, now());
        history.distrusted = distrust;
        let verdict = crate::policy::decide(&self.ws.policy, &subject, &history);
        (subject, verdict)
    }

    /// The gate's history for an action: rate figures and the trust its rules have earned.
    pub(super) fn gate_history(&self, action: &Action, t: DateTime<Utc>) -> History {
        let mut h = self.state.history(action.kind(), &action.rate_key(), t);
        h.earned = self
            .ws
            .policy
            .rules
            .iter()
            .filter_map(|r| {
                let n = r.promote_after.filter(|_| r.decide == Decision::Confirm)?;
                let trust = self.state.trust.get(&r.trust_key())?;
                let since = trust.since?;
                Some((r.trust_key(), format!("auto: earned after {n} verified approvals, since {}", since.format("%Y-%m-%d"))))
            })
            .collect();
        h
    }

    /// After an executed action: a human-approved one verified healthy counts
    /// toward the trust of every `promote_after` rule it matches (promoting
    /// the rule at N); a failed or interrupted one demotes them. Returns what
    /// changed, for the note and the audit. Call before `record`, which
    /// saves the state before the journal entry ends.
    pub(super) fn earn(&mut self, subject: &Subject, run: Run, verified: bool, result: ActionResult, journal: Option<&str>) -> Vec<String> {
        let t = now();
        let rules: Vec<Rule> = self.ws.policy.rules.iter().filter(|r| r.promote_after.is_some() && r.decide == Decision::Confirm && r.matches(subject)).cloned().collect();
        let mut said = Vec::new();
        for rule in rules {
            let n = rule.promote_after.unwrap_or(u32::MAX);
            let key = rule.trust_key();
            let trust = self.state.trust.entry(key.clone()).or_default();
            let event = match result {
                ActionResult::Ok if verified && run == Run::Approved => {
                    if journal.is_some() && trust.last.as_deref() == journal {
                        continue;
                    }
                    trust.verified += 1;
                    trust.last = journal.map(str::to_string);
                    if trust.since.is_none() && trust.verified >= n {
                        trust.since = Some(t);
                        Some(("promoted", format!("trust: {} of {n} verified approvals: the rule for {} at AGENTS.md line {} now decides auto", trust.verified, rule.action, rule.line)))
                    } else if trust.since.is_none() {
                        said.push(format!("trust: {} of {n} verified approvals for the rule for {} at AGENTS.md line {}", trust.verified, rule.action, rule.line));
                        None
                    } else {
                        None
                    }
                }
                ActionResult::Failed | ActionResult::Interrupted => {
                    let was = std::mem::take(trust);
                    match was.since {
                        Some(since) => Some((
                            "demoted",
                            format!(
                                "trust: {} {} after auto since {}: the rule for {} at AGENTS.md line {} decides confirm again",
                                subject.kind,
                                result.as_str(),
                                since.format("%Y-%m-%d"),
                                rule.action,
                                rule.line
                            ),
                        )),
                        None if was.verified > 0 => {
                            said.push(format!("trust: {} {}: the count of verified approvals for the rule at AGENTS.md line {} starts again from 0", subject.kind, result.as_str(), rule.line));
                            None
                        }
                        None => None,
                    }
                }
                // Succeeded unverified, or not approved by a human: counts nothing. Not carried out: neither.
                ActionResult::Ok | ActionResult::Pending | ActionResult::DryRun | ActionResult::Denied | ActionResult::Aborted | ActionResult::Expired => None,
            };
            if trust.verified == 0 && trust.since.is_none() {
                self.state.trust.remove(&key);
            }
            if let Some((what, detail)) = event {
                said.push(detail.clone());
                self.state.trust_events.push(TrustEvent { at: t, what: what.into(), rule: key, line: rule.line, target: subject.target.id.clone(), detail });
                let over = self.state.trust_events.len().saturating_sub(TRUST_EVENTS);
                self.state.trust_events.drain(..over);
            }
        }
        said
    }
}
