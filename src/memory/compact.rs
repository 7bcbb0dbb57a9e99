//! Retention: resolved incident notes older than a limit fold into
//! `digests/YYYY-MM.md` and are removed in the same commit; open and
//! needs-human incidents never fold. Git history keeps every full note.
//!
//! Crash safety: the ids to fold are written to `state/compact.json` before
//! anything changes; digests are written (atomically) before notes are
//! removed; a run that finds the intent finishes it (a note whose section is
//! in a digest is removed, one whose section is not stays). So after any
//! crash each incident is in exactly one place, and readers that meet both
//! mid-way prefer the note.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::notes::IncidentStatus;
use super::{Memory, Result, atomic_write, digest, read_json, write_json};
use crate::duration::parse_ts;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Intent {
    commit: String,
    ids: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Compaction {
    pub folded: Vec<String>,
    pub digests: Vec<String>,
    /// Notes removed while finishing an interrupted compaction; `None` if there was none.
    pub recovered: Option<usize>,
    pub commit: Option<String>,
}

impl Memory {
    fn intent_path(&self) -> std::path::PathBuf {
        self.state_dir().join("compact.json")
    }

    /// Finishes a compaction that a crash interrupted; returns how many notes
    /// it removed, or `None` when no compaction was interrupted.
    pub fn recover_compaction(&self) -> Result<Option<usize>> {
        let path = self.intent_path();
        if !path.exists() {
            return Ok(None);
        }
        let intent: Intent = read_json(&path)?;
        let folded: BTreeSet<String> = self.digested()?.into_iter().map(|i| i.id).collect();
        let mut classes = BTreeSet::new();
        let mut removed = 0;
        for id in intent.ids.iter().filter(|id| folded.contains(*id)) {
            let note = self.incident_path(id);
            if let Ok(inc) = self.read_incident(id) {
                classes.insert(inc.class);
            }
            if note.exists() {
                std::fs::remove_file(&note).map_err(super::io_err(&note))?;
                removed += 1;
            }
        }
        for class in classes {
            self.update_knowledge(&class)?;
        }
        self.commit("memory compact: finished an interrupted compaction")?;
        std::fs::remove_file(&path).map_err(super::io_err(&path))?;
        Ok(Some(removed))
    }

    /// Folds resolved incidents whose resolution is older than `older_than`.
    pub fn compact(&self, older_than: Duration, now: DateTime<Utc>) -> Result<Compaction> {
        let mut out = Compaction { recovered: self.recover_compaction()?, ..Default::default() };
        let cutoff = crate::duration::before(now, older_than).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let old: Vec<_> = self
            .all_incidents()?
            .into_iter()
            .map(|(i, _)| i)
            .filter(|i| i.status == IncidentStatus::Resolved)
            .filter(|i| parse_ts(i.resolved.as_deref().unwrap_or(&i.last_seen)).is_some_and(|t| t <= cutoff))
            .collect();
        if old.is_empty() {
            return Ok(out);
        }
        // The full notes must be in history before they leave the tree.
        self.commit("memory: record notes before compaction")?;
        let commit = git2::Repository::open(&self.root).ok().and_then(|r| r.head().ok()?.peel_to_commit().ok().map(|c| c.id().to_string()[..12].to_string())).unwrap_or_default();
        write_json(&self.intent_path(), &Intent { commit: commit.clone(), ids: old.iter().map(|i| i.id.clone()).collect() })?;
        let mut by_month: BTreeMap<String, Vec<&super::notes::Incident>> = BTreeMap::new();
        for inc in &old {
            by_month.entry(inc.detected.get(..7).unwrap_or("unknown").to_string()).or_default().push(inc);
        }
        for (month, incs) in &by_month {
            let path = self.root.join("digests").join(format!("{month}.md"));
            let mut text =
                std::fs::read_to_string(&path).unwrap_or_else(|_| format!("# Digest {month}\n\nResolved incidents folded out of incidents/; `git show` the named commit for a full note.\n\n"));
            let present: BTreeSet<String> = digest::parse(&text).into_iter().map(|(i, _)| i.id).collect();
            for inc in incs.iter().filter(|i| !present.contains(&i.id)) {
                text.push_str(&digest::section(inc, &commit));
            }
            atomic_write(&path, text.as_bytes())?;
            out.digests.push(format!("digests/{month}.md"));
        }
        let classes: BTreeSet<String> = old.iter().map(|i| i.class.clone()).collect();
        for inc in &old {
            let note = self.incident_path(&inc.id);
            std::fs::remove_file(&note).map_err(super::io_err(&note))?;
            out.folded.push(inc.id.clone());
        }
        for class in classes {
            self.update_knowledge(&class)?;
        }
        let msg = format!("memory compact: folded {} resolved incident(s) into {}", out.folded.len(), out.digests.join(", "));
        out.commit = self.commit(&msg)?.map(|o| o.to_string());
        let intent = self.intent_path();
        std::fs::remove_file(&intent).map_err(super::io_err(&intent))?;
        Ok(out)
    }
}
