//! Acknowledgements (`memory/state/acks.json`): a human has taken an
//! incident, so its escalation stops. Written by `nightshift ack`, the Slack
//! button and the API (under the state lock), read by every pass; the levels
//! already sent live in the run state beside the open incidents, so the
//! ladder's timers survive restarts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::notes::IncidentStatus;
pub use super::state::Escalated;
use super::{Memory, MemoryError, Result, read_json, write_json};
use crate::duration::timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no incident {0} (see `nightshift incidents`)")]
    NotFound(String),
    #[error("incident {0} is resolved: there is nothing to acknowledge")]
    Resolved(String),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl Memory {
    fn acks_path(&self) -> std::path::PathBuf {
        self.state_dir().join("acks.json")
    }

    pub fn load_acks(&self) -> Result<BTreeMap<String, Ack>> {
        read_json(&self.acks_path())
    }

    /// Records that `who` has taken incident `id`: the ladder stops for it.
    /// Acknowledging twice keeps the first acknowledgement (`false`).
    pub fn ack_incident(&self, id: &str, who: &str) -> std::result::Result<(Ack, bool), AckError> {
        use super::audit::AuditEntry;
        use crate::actions::ActionResult;
        // The note, the acks, the audit and the commit change together or not at all.
        let _write = self.write_lock()?;
        let mut inc = self.read_incident(id).map_err(|_| AckError::NotFound(id.to_string()))?;
        if inc.status == IncidentStatus::Resolved {
            return Err(AckError::Resolved(id.to_string()));
        }
        let t = Utc::now();
        let (ack, new) = {
            let _lock = self.lock("acks")?;
            let mut acks = self.load_acks()?;
            // Acknowledgements of incidents that are gone are dropped on the way.
            acks.retain(|k, _| self.read_incident(k).is_ok_and(|i| i.status != IncidentStatus::Resolved));
            match acks.get(id) {
                Some(a) => (a.clone(), false),
                None => {
                    let a = Ack { by: who.to_string(), at: t };
                    acks.insert(id.to_string(), a.clone());
                    write_json(&self.acks_path(), &acks)?;
                    (a, true)
                }
            }
        };
        if !new {
            return Ok((ack, false));
        }
        let entry = AuditEntry {
            time: timestamp(t),
            action: "acknowledge".into(),
            target: id.to_string(),
            incident: Some(id.to_string()),
            check: Some(inc.check.clone()),
            decision: "acknowledged".into(),
            approved_by: format!("human:{who}"),
            risk: "low".into(),
            mode: "-".into(),
            reason: "a human has taken the incident".into(),
            result: ActionResult::Ok,
            outcome: "escalation stops".into(),
            duration_ms: 0,
        };
        self.append_audit(t, &[entry])?;
        inc.actions.push(format!("{} {who} acknowledged the incident: escalation stops", timestamp(t)));
        self.write_incident(&inc)?;
        self.commit(&format!("{who} acknowledged {id}"))?;
        Ok((ack, true))
    }
}
