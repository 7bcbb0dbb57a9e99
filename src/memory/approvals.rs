//! Pending approvals (`memory/state/approvals.json`): actions waiting for a
//! human (`confirm`) or for their abort window to pass. They survive restarts;
//! other processes (`approve`, `abort`) change them under the state lock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Memory, Result, read_json, write_json};
use crate::actions::Action;
use crate::actions::notify::ApprovalInfo;
use crate::actions::notify::Posted;
use crate::severity::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalKind {
    /// Runs only once a human approves.
    Confirm,
    /// Runs when its window passes, unless a human aborts.
    AbortWindow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Aborted,
    Expired,
    /// Taken by a run and carried out (see the audit for its result).
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub kind: ApprovalKind,
    pub status: ApprovalStatus,
    pub action: Action,
    pub incident: Option<String>,
    pub check: Option<String>,
    pub level: Level,
    pub reason: String,
    pub created: DateTime<Utc>,
    /// For confirm: when it expires. For abort-window: when it acts.
    pub deadline: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The rule that asked, as `AGENTS.md line N` (none: a level or a limit asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Who may decide (the rule's `approvers`, groups expanded); empty: anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Where the request went, so the messages can be updated with the outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posted: Vec<Posted>,
    /// The last stage the humans were told of (`approved`, `aborted`, `expired`, `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<String>,
    /// What carrying it out did, once it was carried out (result: outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

impl Approval {
    /// What a message about this request says (approval requests and outcomes).
    pub fn info(&self, public_url: Option<&str>) -> ApprovalInfo {
        let a = self;
        use crate::duration::timestamp;
        let action = serde_json::to_value(&a.action).unwrap_or_default();
        let arguments = match &action {
            serde_json::Value::Object(m) => {
                m.iter().filter(|(k, _)| k.as_str() != "action").map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect::<Vec<_>>().join(" ")
            }
            _ => String::new(),
        };
        let url = |verb: &str| public_url.map(|u| format!("{}/approvals/{}/{verb}", u.trim_end_matches('/'), a.id));
        let abort_window = a.kind == ApprovalKind::AbortWindow;
        ApprovalInfo {
            id: a.id.clone(),
            target: a.action.target().id,
            reason: a.reason.clone(),
            deadline: timestamp(a.deadline),
            approve_url: if abort_window { None } else { url("approve") },
            abort_url: url("abort"),
            kind: if abort_window { "abort-window" } else { "confirm" },
            describe: a.action.describe(),
            rule: a.rule.clone().unwrap_or_else(|| "no rule (a level or a limit)".into()),
            risk: a.action.kind().risk().as_str(),
            blast_radius: a.action.blast_radius(),
            status: match a.status {
                ApprovalStatus::Pending => "pending",
                ApprovalStatus::Approved => "approved",
                ApprovalStatus::Aborted => "aborted",
                ApprovalStatus::Expired => "expired",
                ApprovalStatus::Done => "done",
            }
            .into(),
            decided_by: a.decided_by.clone(),
            decided_at: a.decided_at.map(timestamp),
            result: a.result.clone(),
            abort_window,
            kind_name: a.action.kind().to_string(),
            arguments,
            deadline_hms: a.deadline.format("%H:%M:%S").to_string(),
            action,
        }
    }

    /// Whether someone known by any of `ids` may decide it.
    pub fn may_decide(&self, ids: &[String]) -> bool {
        self.approvers.is_empty() || ids.iter().any(|i| self.approvers.contains(i))
    }

    /// The stage the humans should know of now, once decided.
    pub fn stage(&self) -> Option<&'static str> {
        match self.status {
            ApprovalStatus::Pending => None,
            ApprovalStatus::Approved => Some("approved"),
            ApprovalStatus::Aborted => Some("aborted"),
            ApprovalStatus::Expired => Some("expired"),
            ApprovalStatus::Done if self.result.is_some() || self.decided_by.is_none() => Some("done"),
            // Taken by a run but its result not written yet: told once it is.
            ApprovalStatus::Done => Some("approved"),
        }
    }
}

impl Memory {
    fn approvals_path(&self) -> std::path::PathBuf {
        self.state_dir().join("approvals.json")
    }

    pub fn load_approvals(&self) -> Result<Vec<Approval>> {
        read_json(&self.approvals_path())
    }

    pub fn save_approvals(&self, list: &[Approval]) -> Result<()> {
        write_json(&self.approvals_path(), &list)
    }

    /// Read-modify-write of the approvals under the state lock.
    pub fn update_approvals<T>(&self, f: impl FnOnce(&mut Vec<Approval>) -> T) -> Result<T> {
        let _lock = self.lock("approvals")?;
        let mut list = self.load_approvals()?;
        let before = serde_json::to_vec(&list).ok();
        let out = f(&mut list);
        // Closed approvals are kept a day for `nightshift approvals --all` and then dropped.
        let day_ago = Utc::now() - chrono::Duration::days(1);
        list.retain(|a| matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved) || a.decided_at.unwrap_or(a.created) > day_ago);
        // A pass that changed nothing writes nothing (a healthy heartbeat stays at the I/O floor).
        if before.is_none() || serde_json::to_vec(&list).ok() != before {
            self.save_approvals(&list)?;
        }
        Ok(out)
    }
}

impl Memory {
    /// Keeps the response_url of a Slack click on an approval's message, so
    /// the message can be updated with the outcome later.
    /// `ts` is the clicked message's, when Slack names it.
    pub fn remember_response_url(&self, id: &str, ts: Option<&str>, url: &str) -> Result<()> {
        let _write = self.write_lock()?;
        self.update_approvals(|list| {
            let Some(a) = list.iter_mut().find(|a| a.id == id) else { return };
            let slack = |p: &Posted| p.slack;
            let i = a.posted.iter().position(|p| slack(p) && ts.is_some() && p.ts.as_deref() == ts).or_else(|| a.posted.iter().position(|p| slack(p) && p.ts.is_none()));
            match i {
                Some(i) => a.posted[i].response_url = Some(url.to_string()),
                // A message with a ts is updated with chat.update already.
                None if a.posted.iter().any(|p| slack(p) && p.ts.is_some()) => {}
                None => a.posted.push(Posted { webhook: "slack".into(), slack: true, response_url: Some(url.to_string()), ..Posted::default() }),
            }
        })
    }
}

/// A short random id for approvals and journal entries.
pub fn new_id(prefix: &str) -> String {
    let mut buf = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf)).is_ok();
    if !ok {
        let n = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 ^ u64::from(std::process::id());
        buf = (n as u32).to_le_bytes();
    }
    format!("{prefix}{}", buf.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Why a human's decision could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no approval with id {0} (see `nightshift approvals`)")]
    NotFound(String),
    #[error("approval {id} is {status:?}, not pending")]
    NotPending { id: String, status: ApprovalStatus },
    #[error("{who} may not decide approval {id}: its rule ({rule}) names the approvers {approvers}")]
    NotApprover { id: String, who: String, rule: String, approvers: String },
    #[error(transparent)]
    Memory(#[from] super::MemoryError),
}

impl Memory {
    /// A human approves or aborts a pending action (CLI, Slack, approvals
    /// API): recorded at once in the approvals, the audit, the incident note
    /// and a commit. Approving only marks it; a run carries it out.
    pub fn decide_approval(&self, id: &str, approve: bool, who: &str) -> std::result::Result<Approval, DecideError> {
        self.decide_approval_as(id, approve, who, &[who.to_string()])
    }

    /// The same, by someone known by `ids` (a Slack user id, a login): refused
    /// and audited when the approval names approvers and none of them is one.
    pub fn decide_approval_as(&self, id: &str, approve: bool, who: &str, ids: &[String]) -> std::result::Result<Approval, DecideError> {
        use super::audit::AuditEntry;
        use super::notes::IncidentStatus;
        use crate::actions::ActionResult;
        use crate::duration::timestamp;
        let _write = self.write_lock()?;
        let t = Utc::now();
        let outcome = self.update_approvals(|list| {
            let a = list.iter_mut().find(|a| a.id == id).ok_or_else(|| DecideError::NotFound(id.to_string()))?;
            if !a.may_decide(ids) {
                return Err(DecideError::NotApprover { id: id.to_string(), who: who.to_string(), rule: a.rule.clone().unwrap_or_else(|| "-".into()), approvers: a.approvers.join(", ") });
            }
            let allowed = if approve { a.status == ApprovalStatus::Pending } else { matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved) };
            if !allowed {
                return Err(DecideError::NotPending { id: id.to_string(), status: a.status });
            }
            a.status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Aborted };
            a.decided_by = Some(who.to_string());
            a.decided_at = Some(t);
            Ok(a.clone())
        })?;
        let a = match outcome {
            Ok(a) => a,
            Err(e @ DecideError::NotApprover { .. }) => {
                let entry = AuditEntry {
                    time: timestamp(t),
                    action: "approval".into(),
                    target: id.to_string(),
                    incident: None,
                    check: None,
                    decision: if approve { "approve refused".into() } else { "abort refused".into() },
                    approved_by: format!("human:{who}"),
                    risk: "-".into(),
                    mode: "-".into(),
                    reason: e.to_string(),
                    result: ActionResult::Denied,
                    outcome: "not an approver: nothing changed".into(),
                    duration_ms: 0,
                };
                self.append_audit(t, &[entry])?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let verb = if approve { "approved" } else { "aborted" };
        let entry = AuditEntry {
            time: timestamp(t),
            action: a.action.kind().to_string(),
            target: a.action.target().id,
            incident: a.incident.clone(),
            check: a.check.clone(),
            decision: verb.into(),
            approved_by: format!("human:{who}"),
            risk: a.action.kind().risk().as_str().into(),
            mode: "-".into(),
            reason: format!("approval {id}: {}", a.reason),
            result: if approve { ActionResult::Pending } else { ActionResult::Aborted },
            outcome: if approve { "approved; the next run carries it out".into() } else { "aborted by a human; never carried out".into() },
            duration_ms: 0,
        };
        self.append_audit(t, &[entry])?;
        if let Some(inc_id) = &a.incident
            && let Ok(mut inc) = self.read_incident(inc_id)
        {
            inc.actions.push(format!("{} {who} {verb} {} (approval {})", timestamp(t), a.action.describe(), a.id));
            if !approve && inc.status == IncidentStatus::Open {
                inc.status = IncidentStatus::NeedsHuman;
            }
            self.write_incident(&inc)?;
        }
        self.commit(&format!("{who} {verb} approval {id} ({})", a.action.describe()))?;
        Ok(a)
    }
}
