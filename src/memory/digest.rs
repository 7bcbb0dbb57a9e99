//! Digests, `digests/YYYY-MM.md`: old resolved incidents folded into one
//! section each (title, class, target, time to repair, fix, and the commit
//! that held the full note), so memory stays readable after years.

use super::notes::{Incident, IncidentStatus, uncode};
use super::{Memory, Result, io_err};
use crate::markdown::{code, one_line};
use crate::severity::Severity;

/// One incident's digest section; secrets are redacted field by field
/// before it is rendered.
pub fn section(inc: &Incident, commit: &str) -> String {
    let inc = &inc.redacted();
    let mut s = format!("## {}\n\n", inc.id);
    // One line per field whatever the value holds, so no value adds a field.
    let mut field = |k: &str, v: String| s.push_str(&format!("- **{k}**: {}\n", one_line(&v)));
    field("Title", one_line(&inc.title));
    field("Class", one_line(&inc.class));
    field("Target", code(&inc.target));
    field("Fingerprint", code(&inc.fingerprint));
    field("Severity", inc.severity.as_str().into());
    field("Detected", inc.detected.clone());
    if let Some(f) = &inc.failing_since {
        field("Failing since", f.clone());
    }
    field("Resolved", inc.resolved.clone().unwrap_or_default());
    if let Some(t) = inc.time_to_repair() {
        field("Time to repair", super::knowledge::human_secs(t));
    }
    if let Some(f) = inc.fix() {
        field("Fix", format!("{} on {}", f.kind(), code(&f.target().id)));
    }
    if !inc.attempts.is_empty() {
        field("Fix attempts", code(&serde_json::to_string(&inc.attempts).unwrap_or_default()));
    }
    field("Tokens", inc.tokens.to_string());
    field("Full note", format!("commit {commit}: `git show {commit}:incidents/{}.md`", inc.id));
    s.push('\n');
    s
}

/// Parses the sections of a digest into (incident, commit) pairs.
pub fn parse(text: &str) -> Vec<(Incident, String)> {
    let mut out = Vec::new();
    for block in text.split("\n## ").skip(1) {
        let mut lines = block.lines();
        let id = lines.next().unwrap_or("").trim().to_string();
        let mut inc = Incident::blank(&id, IncidentStatus::Resolved);
        let mut commit = String::new();
        let mut seen = std::collections::BTreeSet::new();
        for line in lines {
            let Some((k, v)) = line.strip_prefix("- **").and_then(|r| r.split_once("**: ")) else { continue };
            if !seen.insert(k.to_string()) {
                continue;
            }
            let v = v.trim().to_string();
            match k {
                "Title" => inc.title = v,
                "Class" => inc.class = v,
                "Target" => inc.target = uncode(&v),
                "Fingerprint" => inc.fingerprint = uncode(&v),
                "Severity" => inc.severity = Severity::parse(&v).unwrap_or(Severity::Warning),
                "Detected" => inc.detected = v,
                "Failing since" => inc.failing_since = Some(v),
                "Resolved" => inc.resolved = Some(v),
                "Fix attempts" => inc.attempts = serde_json::from_str(&uncode(&v)).unwrap_or_default(),
                "Tokens" => inc.tokens = v.parse().unwrap_or(0),
                "Full note" => commit = v.strip_prefix("commit ").and_then(|r| r.split(':').next()).unwrap_or("").to_string(),
                _ => {}
            }
        }
        inc.check = inc.fingerprint.split(':').next().unwrap_or("").to_string();
        inc.last_seen = inc.resolved.clone().unwrap_or_default();
        if !inc.id.is_empty() {
            out.push((inc, commit));
        }
    }
    out
}

impl Memory {
    /// Every folded incident with the commit that holds its full note.
    pub fn digested_with_commits(&self) -> Result<Vec<(Incident, String)>> {
        let dir = self.root.join("digests");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "md") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
            out.extend(parse(&text));
        }
        Ok(out)
    }

    pub fn digested(&self) -> Result<Vec<Incident>> {
        Ok(self.digested_with_commits()?.into_iter().map(|(i, _)| i).collect())
    }
}
