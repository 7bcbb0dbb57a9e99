//! The write-ahead journal (`memory/state/journal`, JSON lines): an entry is
//! written and synced before a mutating action runs, and its end after. An
//! entry without an end means the process died mid-action; the next run
//! reconciles it and never repeats it blindly.

use std::fs::OpenOptions;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Memory, Result, io_err};
use crate::actions::Action;
use crate::actions::ActionResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum JournalEntry {
    Begin { id: String, at: DateTime<Utc>, action: Action, incident: Option<String>, check: Option<String> },
    End { id: String, at: DateTime<Utc>, result: ActionResult, detail: String },
}

/// An action that began and never ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    pub id: String,
    pub at: DateTime<Utc>,
    pub action: Action,
    pub incident: Option<String>,
    pub check: Option<String>,
}

const ROTATE_BYTES: u64 = 1024 * 1024;

impl Memory {
    fn journal_path(&self) -> std::path::PathBuf {
        self.state_dir().join("journal")
    }

    /// Appends one entry and syncs it to disk before returning.
    pub fn journal(&self, entry: &JournalEntry) -> Result<()> {
        let path = self.journal_path();
        let mut line = serde_json::to_string(entry).map_err(|e| super::MemoryError::Corrupt { path: path.clone(), message: e.to_string() })?;
        line.push('\n');
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        f.write_all(line.as_bytes()).map_err(io_err(&path))?;
        f.sync_data().map_err(io_err(&path))
    }

    /// Entries that began and have no end. A torn last line (a crash while
    /// appending) is ignored: its action had not started.
    pub fn unfinished(&self) -> Result<Vec<Unfinished>> {
        let path = self.journal_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut open: Vec<Unfinished> = Vec::new();
        for line in text.lines() {
            match serde_json::from_str::<JournalEntry>(line) {
                Ok(JournalEntry::Begin { id, at, action, incident, check }) => open.push(Unfinished { id, at, action, incident, check }),
                Ok(JournalEntry::End { id, .. }) => open.retain(|u| u.id != id),
                Err(_) => {}
            }
        }
        Ok(open)
    }

    /// Starts a new journal file once everything in the old one has ended.
    pub fn rotate_journal(&self) -> Result<()> {
        let path = self.journal_path();
        let big = std::fs::metadata(&path).map(|m| m.len() > ROTATE_BYTES).unwrap_or(false);
        if big && self.unfinished()?.is_empty() {
            super::atomic_write(&path, b"")?;
        }
        Ok(())
    }
}
