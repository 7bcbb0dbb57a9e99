//! Incident notes: `incidents/<id>.md`, written for people (the seed's layout
//! in English) and read back with pulldown-cmark.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

use super::{Memory, MemoryError, Result, atomic_write, io_err};
use crate::duration::parse_ts;
use crate::markdown::{fenced, one_line};
use crate::severity::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentStatus {
    Open,
    Resolved,
    NeedsHuman,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
            Self::NeedsHuman => "needs-human",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "resolved" => Some(Self::Resolved),
            "needs-human" => Some(Self::NeedsHuman),
            _ => None,
        }
    }
}

/// One try of a repair on an incident, kept in the note for recall and success rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: String,
    pub action: crate::actions::Action,
    pub result: crate::actions::ActionResult,
    /// `policy`, `human:<who>`, `abort-window passed`, `journal`.
    pub route: String,
}

/// One incident, as its note holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub fingerprint: String,
    /// Problem class (disk-full, http-down, …) and stable target: the fingerprint's parts.
    pub class: String,
    pub target: String,
    pub check: String,
    /// When the check first failed in the run of failures that opened the incident.
    pub failing_since: Option<String>,
    pub attempts: Vec<Attempt>,
    /// Model tokens spent on the incident.
    pub tokens: u64,
    /// The past incident whose fix this one reused, if any.
    pub recalled_from: Option<String>,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub detected: String,
    pub last_seen: String,
    pub resolved: Option<String>,
    pub occurrences: u32,
    /// Untrusted text (check output, summaries): rendered inside a fenced block.
    pub evidence: String,
    pub diagnosis: Vec<String>,
    pub actions: Vec<String>,
    pub prevention: Vec<String>,
    pub related: Vec<String>,
}

impl Incident {
    /// The repair that healed it: the last attempt that succeeded.
    pub fn fix(&self) -> Option<&crate::actions::Action> {
        self.attempts.iter().rev().find(|a| a.result == crate::actions::ActionResult::Ok && a.action.kind().is_mutating()).map(|a| &a.action)
    }

    /// Seconds from detection to resolution.
    pub fn time_to_repair(&self) -> Option<i64> {
        Some((parse_ts(self.resolved.as_deref()?)? - parse_ts(&self.detected)?).num_seconds())
    }

    /// Seconds from the first failure to detection.
    pub fn time_to_detect(&self) -> Option<i64> {
        Some((parse_ts(&self.detected)? - parse_ts(self.failing_since.as_deref()?)?).num_seconds())
    }

    /// The note as markdown; secrets are redacted from every part of it.
    pub fn render(&self) -> String {
        self.redacted().render_raw()
    }

    /// A copy with secrets redacted field by field, before anything is
    /// rendered: a secret's pattern never reaches across fields (a private
    /// key cut short in one field cannot take the severity or the status
    /// with it).
    pub fn redacted(&self) -> Incident {
        use crate::redact::redact;
        let lines = |v: &[String]| v.iter().map(|s| redact(s)).collect::<Vec<_>>();
        let Incident {
            id,
            title,
            fingerprint,
            class,
            target,
            check,
            failing_since,
            attempts,
            tokens,
            recalled_from,
            severity,
            status,
            detected,
            last_seen,
            resolved,
            occurrences,
            evidence,
            diagnosis,
            actions,
            prevention,
            related,
        } = self;
        Incident {
            id: id.clone(),
            title: redact(title),
            fingerprint: redact(fingerprint),
            class: redact(class),
            target: redact(target),
            check: redact(check),
            failing_since: failing_since.as_deref().map(redact),
            // An attempt whose redacted form no longer reads as one is left out rather than kept in clear.
            attempts: attempts.iter().filter_map(redacted_attempt).collect(),
            tokens: *tokens,
            recalled_from: recalled_from.as_deref().map(redact),
            severity: *severity,
            status: *status,
            detected: redact(detected),
            last_seen: redact(last_seen),
            resolved: resolved.as_deref().map(redact),
            occurrences: *occurrences,
            evidence: redact(evidence),
            diagnosis: lines(diagnosis),
            actions: lines(actions),
            prevention: lines(prevention),
            related: lines(related),
        }
    }

    fn render_raw(&self) -> String {
        let mut s = format!("# {}\n\n", one_line(&self.title));
        // Every header field goes through `field`: one line, no control characters,
        // so no value (an alert's timestamp, a target) can add a field of its own.
        let mut field = |key: &str, value: &str| s.push_str(&format!("- **{key}**: {}\n", one_line(value)));
        field("Detected", &self.detected);
        field("Severity", self.severity.as_str());
        field("Status", self.status.as_str());
        field("Check", &self.check);
        field("Fingerprint", &crate::markdown::code(&self.fingerprint));
        field("Class", &self.class);
        field("Target", &crate::markdown::code(&self.target));
        if let Some(t) = &self.failing_since {
            field("Failing since", t);
        }
        field("Last seen", &self.last_seen);
        field("Occurrences", &self.occurrences.to_string());
        if let Some(r) = &self.resolved {
            field("Resolved", r);
        }
        if let Some(fix) = self.fix() {
            field("Fixed by", &format!("{} on {}", fix.kind(), crate::markdown::code(&fix.target().id)));
        }
        if let Some(r) = &self.recalled_from {
            field("Recalled from", &format!("[{r}]({r}.md)"));
        }
        if !self.attempts.is_empty() {
            field("Fix attempts", &crate::markdown::code(&serde_json::to_string(&self.attempts).unwrap_or_default()));
        }
        field("Tokens", &self.tokens.to_string());
        s.push_str("\n## Evidence\n\n");
        s.push_str(&fenced("text", &self.evidence));
        for (title, items, numbered) in [("Diagnosis", &self.diagnosis, true), ("Actions taken", &self.actions, false), ("Prevention", &self.prevention, false)] {
            s.push_str(&format!("\n## {title}\n\n"));
            if items.is_empty() {
                s.push_str("- none yet\n");
            }
            for (i, item) in items.iter().enumerate() {
                if numbered { s.push_str(&format!("{}. {}\n", i + 1, list_item(item))) } else { s.push_str(&format!("- {}\n", list_item(item))) }
            }
        }
        s.push_str("\n## Knowledge\n\n");
        if self.related.is_empty() {
            s.push_str("- no related incidents yet\n");
        }
        for id in &self.related {
            s.push_str(&format!("- related: [{id}]({id}.md)\n"));
        }
        s
    }

    /// A blank incident to fill in (parsers start from this).
    pub fn blank(id: &str, status: IncidentStatus) -> Incident {
        Incident {
            id: id.to_string(),
            title: String::new(),
            fingerprint: String::new(),
            class: String::new(),
            target: String::new(),
            check: String::new(),
            failing_since: None,
            attempts: Vec::new(),
            tokens: 0,
            recalled_from: None,
            severity: Severity::Warning,
            status,
            detected: String::new(),
            last_seen: String::new(),
            resolved: None,
            occurrences: 1,
            evidence: String::new(),
            diagnosis: Vec::new(),
            actions: Vec::new(),
            prevention: Vec::new(),
            related: Vec::new(),
        }
    }

    /// Parses a note written by `render` (or edited by a person within its layout).
    pub fn parse(id: &str, text: &str) -> Option<Incident> {
        let mut inc = Incident::blank(id, IncidentStatus::Open);
        let mut section = String::new();
        let mut in_heading: Option<HeadingLevel> = None;
        let mut heading = String::new();
        let mut in_code = false;
        let mut depth = 0usize;
        let mut seen = std::collections::BTreeSet::new();
        for (event, range) in Parser::new(text).into_offset_iter() {
            match event {
                Event::Start(Tag::Heading { level, .. }) => {
                    in_heading = Some(level);
                    heading.clear();
                }
                Event::End(TagEnd::Heading(level)) => {
                    in_heading = None;
                    // Only the note's own headings count, never one inside a list item.
                    if depth == 0 && level == HeadingLevel::H1 && inc.title.is_empty() {
                        inc.title = heading.clone();
                    } else if depth == 0 && level == HeadingLevel::H2 {
                        section = heading.clone();
                    }
                }
                Event::Text(t) | Event::Code(t) if in_heading.is_some() => heading.push_str(&t),
                Event::Start(Tag::CodeBlock(_)) => in_code = true,
                Event::End(TagEnd::CodeBlock) => in_code = false,
                Event::Text(t) if in_code && section == "Evidence" => inc.evidence.push_str(&t),
                Event::Start(Tag::Item) => {
                    depth += 1;
                    if depth == 1 {
                        let raw = text[range.clone()].lines().next().unwrap_or("").trim();
                        let item = strip_marker(raw).to_string();
                        apply_item(&mut inc, &section, item, &mut seen);
                    }
                }
                Event::End(TagEnd::Item) => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        inc.evidence = inc.evidence.trim_end_matches('\n').to_string();
        (!inc.title.is_empty()).then_some(inc)
    }
}

/// An attempt with every string of its action redacted.
fn redacted_attempt(a: &Attempt) -> Option<Attempt> {
    let mut v = serde_json::to_value(a).ok()?;
    crate::redact::redact_json(&mut v);
    serde_json::from_value(v).ok()
}

/// The text of an inline code span written by `code`.
pub fn uncode(value: &str) -> String {
    value.trim().trim_start_matches('`').trim_end_matches('`').trim().to_string()
}

/// Whether text at the start of a list item would open a block of its own:
/// a heading, a quote, a nested list, a rule, a fence, an HTML block.
fn opens_block(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else { return false };
    let second = chars.next();
    match first {
        '#' | '>' | '<' | '\\' => true,
        '-' | '*' | '+' | '_' => second.is_none_or(char::is_whitespace) || s.chars().all(|c| c == first || c.is_whitespace()),
        '`' | '~' => s.starts_with("```") || s.starts_with("~~~"),
        _ => false,
    }
}

/// A list item's text as written: one line, with a start that could open a
/// block escaped, so an item can neither vanish (`- - -` is a rule) nor
/// start a section (`## Status`) that the items after it fall into.
fn list_item(text: &str) -> String {
    let s = one_line(text);
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    if opens_block(&s) {
        format!("\\{s}")
    } else if digits > 0 && digits < 10 && s[digits..].starts_with(['.', ')']) {
        // `1. x` would be a numbered list: escape its dot.
        format!("{}\\{}", &s[..digits], &s[digits..])
    } else {
        s
    }
}

/// The text of a list item written by `list_item`.
fn unescape_item(item: &str) -> String {
    if let Some(rest) = item.strip_prefix('\\').filter(|r| opens_block(r)) {
        return rest.to_string();
    }
    let digits = item.chars().take_while(char::is_ascii_digit).count();
    match item[digits..].strip_prefix('\\') {
        Some(rest) if digits > 0 && rest.starts_with(['.', ')']) => format!("{}{rest}", &item[..digits]),
        _ => item.to_string(),
    }
}

fn strip_marker(raw: &str) -> &str {
    let s = raw.trim_start_matches(['-', '*', '+']).trim_start();
    match s.split_once(". ") {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => rest,
        _ => s,
    }
}

fn apply_item(inc: &mut Incident, section: &str, item: String, seen: &mut std::collections::BTreeSet<String>) {
    match section {
        "" => {
            let Some((key, value)) = item.strip_prefix("**").and_then(|r| r.split_once("**:")) else { return };
            // nightshift writes each field once; a second one is not ours and never wins.
            if !seen.insert(key.to_string()) {
                return;
            }
            let value = value.trim().to_string();
            match key {
                "Detected" => inc.detected = value,
                "Severity" => inc.severity = Severity::parse(&value).unwrap_or(Severity::Warning),
                "Status" => inc.status = IncidentStatus::parse(&value).unwrap_or(IncidentStatus::Open),
                "Check" => inc.check = value,
                "Fingerprint" => inc.fingerprint = uncode(&value),
                "Class" => inc.class = value,
                "Target" => inc.target = uncode(&value),
                "Failing since" => inc.failing_since = Some(value),
                "Fix attempts" => inc.attempts = serde_json::from_str(&uncode(&value)).unwrap_or_default(),
                "Tokens" => inc.tokens = value.parse().unwrap_or(0),
                "Recalled from" => inc.recalled_from = value.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(id, _)| id.to_string()),
                "Last seen" => inc.last_seen = value,
                "Occurrences" => inc.occurrences = value.parse().unwrap_or(1),
                "Resolved" => inc.resolved = Some(value),
                _ => {}
            }
        }
        "Diagnosis" if item != "none yet" => inc.diagnosis.push(unescape_item(&item)),
        "Actions taken" if item != "none yet" => inc.actions.push(unescape_item(&item)),
        "Prevention" if item != "none yet" => inc.prevention.push(unescape_item(&item)),
        "Knowledge" => {
            if let Some(id) = item.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(id, _)| id.to_string()) {
                inc.related.push(id);
            }
        }
        _ => {}
    }
}

impl Memory {
    pub fn incident_path(&self, id: &str) -> PathBuf {
        self.root.join("incidents").join(format!("{id}.md"))
    }

    /// Writes a note under the memory's write lock. Lines a human added to
    /// its actions meanwhile (an approval, an acknowledgement from the daemon
    /// or the command line) are kept: a pass that read the note earlier never
    /// erases them.
    pub fn write_incident(&self, inc: &Incident) -> Result<()> {
        let _write = self.write_lock()?;
        let path = self.incident_path(&inc.id);
        let text = inc.render();
        let Some(on_disk) = std::fs::read_to_string(&path).ok().and_then(|t| Incident::parse(&inc.id, &t)) else {
            return atomic_write(&path, text.as_bytes());
        };
        // Compared as written (redacted, one line each), not as held in memory.
        let ours = Incident::parse(&inc.id, &text).map(|i| i.actions).unwrap_or_default();
        let added: Vec<String> = on_disk.actions.into_iter().filter(|l| !ours.contains(l)).collect();
        if added.is_empty() {
            return atomic_write(&path, text.as_bytes());
        }
        let mut merged = inc.clone();
        merged.actions.extend(added);
        atomic_write(&path, merged.render().as_bytes())
    }

    pub fn read_incident(&self, id: &str) -> Result<Incident> {
        if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(MemoryError::Corrupt { path: PathBuf::from(id), message: "not an incident id".into() });
        }
        let path = self.incident_path(id);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        Incident::parse(id, &text).ok_or_else(|| MemoryError::Corrupt { path, message: "not an incident note (no title)".into() })
    }

    /// Every incident note, newest first, with its raw text.
    pub fn all_incidents(&self) -> Result<Vec<(Incident, String)>> {
        let dir = self.root.join("incidents");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let path = entry.path();
            let Some(id) = stem(&path) else { continue };
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if let Some(inc) = Incident::parse(&id, &text) {
                out.push((inc, text));
            }
        }
        out.sort_by(|a, b| b.0.detected.cmp(&a.0.detected).then(b.0.id.cmp(&a.0.id)));
        Ok(out)
    }

    /// A fresh id `YYYY-MM-DD-<slug>`, suffixed `-2`, `-3`, … if the day
    /// already has one. Suffixes are taken in order, so the first free one
    /// is found by doubling, then bisecting: O(log n) lookups, not n (a storm
    /// of one alert name opens thousands in a day). Any free suffix will do,
    /// so a gap left by compaction is never a problem.
    pub fn new_incident_id(&self, now: DateTime<Utc>, slug: &str) -> String {
        let base = format!("{}-{}", now.format("%Y-%m-%d"), slug);
        let id = |n: u64| if n < 2 { base.clone() } else { format!("{base}-{n}") };
        let taken = |n: u64| self.incident_path(&id(n)).exists();
        if !taken(1) {
            return id(1);
        }
        // `lo` is taken, `hi` is free.
        let (mut lo, mut hi) = (1u64, 2u64);
        while taken(hi) {
            lo = hi;
            hi = hi.saturating_mul(2);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if taken(mid) { lo = mid } else { hi = mid }
        }
        id(hi)
    }
}

fn stem(path: &Path) -> Option<String> {
    (path.extension()? == "md").then(|| path.file_stem().map(|s| s.to_string_lossy().to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Incident {
        Incident {
            id: "2026-11-23-root-disk-disk-full".into(),
            title: "Disk almost full: / (root-disk)".into(),
            fingerprint: "root-disk:disk-full:localhost:/".into(),
            class: "disk-full".into(),
            target: "localhost:/".into(),
            check: "root-disk (disk)".into(),
            failing_since: Some("2026-11-23T16:35:00Z".into()),
            attempts: vec![Attempt {
                at: "2026-11-23T16:40:01Z".into(),
                action: crate::actions::Action::CleanLogs { root: "/var/log/app`x".into(), host: None },
                result: crate::actions::ActionResult::Ok,
                route: "policy".into(),
            }],
            tokens: 0,
            recalled_from: Some("2026-11-20-root-disk-disk-full".into()),
            severity: Severity::Critical,
            status: IncidentStatus::Open,
            detected: "2026-11-23T16:40:00Z".into(),
            last_seen: "2026-11-23T16:45:00Z".into(),
            resolved: None,
            occurrences: 2,
            evidence: "used 91%\n```\n## Status: resolved\n```".into(),
            diagnosis: vec!["largest: `/var/log` 1.2 GiB".into()],
            actions: vec!["clean_logs on `/var/log/app`: auto, dry-run".into()],
            prevention: vec!["rotate logs daily".into()],
            related: vec!["2026-11-20-root-disk-disk-full".into()],
        }
    }

    #[test]
    fn a_note_round_trips_and_evidence_cannot_forge_a_section() {
        let inc = sample();
        let text = inc.render();
        assert_eq!(Incident::parse(&inc.id, &text), Some(inc));
    }

    #[test]
    fn a_key_cut_short_in_one_field_leaves_the_others_readable() {
        let mut inc = sample();
        inc.status = IncidentStatus::NeedsHuman;
        inc.title = "Deploy key in the event: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW".into();
        inc.diagnosis.push("password=hunter2 in the unit file".into());
        let parsed = Incident::parse(&inc.id, &inc.render());
        inc.title = "Deploy key in the event: [REDACTED PRIVATE KEY]".into();
        inc.diagnosis[1] = "password=[REDACTED] in the unit file".into();
        assert_eq!(parsed, Some(inc));
    }

    #[test]
    fn list_items_that_look_like_markdown_blocks_stay_items_of_their_section() {
        let mut inc = sample();
        inc.actions =
            vec!["- - -".into(), "##".into(), "**Fix attempts**: `[]`".into(), "1. one".into(), "> quote".into(), "```".into(), "<div>".into(), "\\x".into(), "2026-12-02T00:00:00Z ok".into()];
        inc.diagnosis = vec!["# Title".into(), "`code` first".into()];
        let parsed = Incident::parse(&inc.id, &inc.render());
        assert_eq!(parsed.as_ref().map(|p| (&p.actions, &p.diagnosis, p.attempts.len(), p.prevention.len())), Some((&inc.actions, &inc.diagnosis, 1, 1)), "{}", inc.render());
    }

    #[test]
    fn untrusted_list_text_stays_on_one_line() {
        let mut inc = sample();
        inc.actions = vec!["deleted x\n## Status\n- **Status**: resolved".into()];
        let parsed = Incident::parse(&inc.id, &inc.render());
        assert_eq!(parsed.map(|p| (p.status, p.actions.len())), Some((IncidentStatus::Open, 1)));
    }
}
