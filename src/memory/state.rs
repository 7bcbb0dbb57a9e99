//! Operational state in `memory/state/state.json`: per-check run state (for
//! `every`, thresholds and cooldowns), the history of actions (rate limits,
//! circuit breaker) and the open incident of each fingerprint.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Memory, Result, read_json, write_json};
use crate::actions::ActionKind;
use crate::actions::ActionResult;
use crate::checks::Status;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    pub last_run: DateTime<Utc>,
    pub status: Status,
    pub consecutive_failures: u32,
    pub summary: String,
    /// First failure of the current run of failures.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub kind: ActionKind,
    pub target: String,
    pub at: DateTime<Utc>,
    pub result: ActionResult,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub checks: BTreeMap<String, CheckState>,
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
    /// fingerprint → id of its open incident
    #[serde(default)]
    pub open: BTreeMap<String, String>,
    /// Usage samples of disk checks, for trends.
    #[serde(default)]
    pub disk_history: BTreeMap<String, Vec<crate::trend::Sample>>,
    /// Open notification windows by `class:service`.
    #[serde(default)]
    pub notified: BTreeMap<String, NotifyWindow>,
    /// Scaling checks → since when their Deployment has been lightly loaded.
    #[serde(default)]
    pub light_since: BTreeMap<String, DateTime<Utc>>,
    /// incident id → how far it has been escalated
    #[serde(default)]
    pub escalated: BTreeMap<String, Escalated>,
    /// Earned trust of `promote_after` rules, by `Rule::trust_key`.
    #[serde(default)]
    pub trust: BTreeMap<String, Trust>,
    /// Promotions and demotions, newest last (the last `TRUST_EVENTS`), for `audit report`.
    #[serde(default)]
    pub trust_events: Vec<TrustEvent>,
    /// `check target` → the last day (YYYY-MM-DD) a warning about it was sent.
    #[serde(default)]
    pub warned: BTreeMap<String, String>,
}

/// How many promotions and demotions the state keeps.
pub const TRUST_EVENTS: usize = 200;

/// One rule's run of human-approved, verified executions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// Human-approved executions verified healthy, in a row.
    pub verified: u32,
    /// When the rule earned `auto`; `None` while it still asks.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// The journal id of the last execution counted: one execution never counts twice.
    #[serde(default)]
    pub last: Option<String>,
}

/// How far an open incident has climbed the ladder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalated {
    /// Levels sent so far (1 = the first level).
    pub level: usize,
    /// When the next level is due, while one is left and nobody acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
}

/// A rule promoted to `auto` or demoted back to `confirm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEvent {
    pub at: DateTime<Utc>,
    /// `promoted` or `demoted`.
    pub what: String,
    /// The rule, as `Rule::trust_key` names it.
    pub rule: String,
    pub line: usize,
    pub target: String,
    pub detail: String,
}

impl Memory {
    pub fn load_state(&self) -> Result<State> {
        read_json(&self.state_dir().join("state.json"))
    }

    pub fn save_state(&self, state: &State) -> Result<()> {
        // Earned trust lives here: written by one writer at a time, like every memory file.
        let _write = self.write_lock()?;
        write_json(&self.state_dir().join("state.json"), state)
    }
}

impl State {
    /// Whether a check is due under its schedule.
    pub fn is_due(&self, check: &str, schedule: &crate::schedule::Schedule, now: DateTime<Utc>) -> bool {
        schedule.is_due(self.checks.get(check).map(|s| s.last_run), now)
    }

    /// The figures the policy gate needs for one action on one target.
    pub fn history(&self, kind: ActionKind, target: &str, now: DateTime<Utc>) -> crate::policy::History {
        let hour_ago = now - Duration::hours(1);
        let executed = |r: &&ActionRecord| r.result.executed();
        let target_last_hour = self.actions.iter().filter(|r| r.kind == kind && r.target == target && r.at > hour_ago).filter(executed).count() as u32;
        let global_last_hour = self.actions.iter().filter(|r| r.kind.is_mutating() && r.at > hour_ago).filter(executed).count() as u32;
        let consecutive_failures =
            self.actions.iter().rev().filter(|r| r.kind == kind && r.target == target).filter(executed).take_while(|r| matches!(r.result, ActionResult::Failed | ActionResult::Interrupted)).count()
                as u32;
        crate::policy::History { target_last_hour, global_last_hour, consecutive_failures, distrusted: None, earned: Vec::new() }
    }

    /// The last execution attempt of this action on this target, for cooldowns.
    pub fn last_attempt(&self, kind: ActionKind, target: &str) -> Option<DateTime<Utc>> {
        self.actions.iter().rev().find(|r| r.kind == kind && r.target == target && r.result.executed()).map(|r| r.at)
    }

    pub fn record(&mut self, kind: ActionKind, target: &str, at: DateTime<Utc>, result: ActionResult) {
        self.actions.push(ActionRecord { kind, target: target.to_string(), at, result });
        let week_ago = at - Duration::days(7);
        self.actions.retain(|r| r.at > week_ago);
    }
}

/// One aggregation window: the first message was sent, later ones counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyWindow {
    pub opened: chrono::DateTime<chrono::Utc>,
    pub severity: Option<crate::severity::Severity>,
    pub suppressed: u32,
    pub examples: Vec<String>,
}
