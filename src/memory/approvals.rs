//! Pending approvals (`memory/state/approvals.json`): actions waiting for a
//! human (`confirm`) or for their abort window to pass. They survive restarts;
//! other processes (`approve`, `abort`) change them under the state lock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Memory, Result, read_json, write_json};
use crate::actions::Action;
use crate::workspace::heartbeat::Level;

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
    #[error(transparent)]
    Memory(#[from] super::MemoryError),
}

impl Memory {
    /// A human approves or aborts a pending action (CLI, Slack, approvals
    /// API): recorded at once in the approvals, the audit, the incident note
    /// and a commit. Approving only marks it; a run carries it out.
    pub fn decide_approval(&self, id: &str, approve: bool, who: &str) -> std::result::Result<Approval, DecideError> {
        use super::audit::{ActionResult, AuditEntry};
        use super::notes::{IncidentStatus, timestamp};
        let _write = self.write_lock()?;
        let t = Utc::now();
        let outcome = self.update_approvals(|list| {
            let a = list.iter_mut().find(|a| a.id == id).ok_or_else(|| DecideError::NotFound(id.to_string()))?;
            let allowed = if approve { a.status == ApprovalStatus::Pending } else { matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved) };
            if !allowed {
                return Err(DecideError::NotPending { id: id.to_string(), status: a.status });
            }
            a.status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Aborted };
            a.decided_by = Some(who.to_string());
            a.decided_at = Some(t);
            Ok(a.clone())
        })?;
        let a = outcome?;
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
