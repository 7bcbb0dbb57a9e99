//! The audit log: `audit/YYYY-MM-DD.md`, one section per decision (denials
//! and dry-runs included), and the report that reads it back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

use super::{Memory, Result, atomic_write, io_err};
use crate::actions::ActionResult;
use crate::markdown::{code, one_line};

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time: String,
    pub action: String,
    pub target: String,
    pub incident: Option<String>,
    pub check: Option<String>,
    pub decision: String,
    /// Who or what let it through: `policy`, `human:<who>`, `abort-window`, or `-`.
    pub approved_by: String,
    pub risk: String,
    pub mode: String,
    pub reason: String,
    pub result: ActionResult,
    pub outcome: String,
    pub duration_ms: u64,
}

impl AuditEntry {
    /// The entry as markdown; secrets are redacted field by field, so no
    /// field's pattern can reach into the next.
    pub fn render(&self) -> String {
        use crate::redact::redact;
        let mut s = format!("## {} {} on {}\n\n", redact(&self.time), redact(&self.action), code(&redact(&self.target)));
        let mut field = |k: &str, v: &str| s.push_str(&format!("- {k}: {}\n", one_line(&redact(v))));
        field("incident", self.incident.as_deref().unwrap_or("-"));
        field("check", self.check.as_deref().unwrap_or("-"));
        field("decision", &self.decision);
        field("approved by", &self.approved_by);
        field("risk", &self.risk);
        field("mode", &self.mode);
        field("reason", &self.reason);
        field("result", self.result.as_str());
        field("outcome", &self.outcome);
        field("duration", &format!("{} ms", self.duration_ms));
        s.push('\n');
        s
    }
}

/// Parses the entries of one audit file.
pub fn parse(text: &str) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    let mut in_h2 = false;
    let mut heading = String::new();
    let mut depth = 0;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level: HeadingLevel::H2, .. }) => {
                in_h2 = true;
                heading.clear();
            }
            Event::Text(t) | Event::Code(t) if in_h2 => heading.push_str(&t),
            Event::End(TagEnd::Heading(HeadingLevel::H2)) => {
                in_h2 = false;
                let mut parts = heading.splitn(3, ' ');
                let time = parts.next().unwrap_or("").to_string();
                let action = parts.next().unwrap_or("").to_string();
                let target = parts.next().unwrap_or("").trim_start_matches("on ").to_string();
                out.push(AuditEntry {
                    time,
                    action,
                    target,
                    incident: None,
                    check: None,
                    decision: String::new(),
                    approved_by: String::new(),
                    risk: String::new(),
                    mode: String::new(),
                    reason: String::new(),
                    result: ActionResult::Ok,
                    outcome: String::new(),
                    duration_ms: 0,
                });
            }
            Event::Start(Tag::Item) => {
                depth += 1;
                let Some(entry) = out.last_mut().filter(|_| depth == 1) else { continue };
                let raw = text[range].lines().next().unwrap_or("").trim().trim_start_matches("- ");
                let Some((k, v)) = raw.split_once(": ") else { continue };
                let v = v.to_string();
                let opt = |v: String| (v != "-").then_some(v);
                match k {
                    "incident" => entry.incident = opt(v),
                    "check" => entry.check = opt(v),
                    "decision" => entry.decision = v,
                    "approved by" => entry.approved_by = v,
                    "risk" => entry.risk = v,
                    "mode" => entry.mode = v,
                    "reason" => entry.reason = v,
                    "result" => entry.result = ActionResult::parse(&v).unwrap_or(ActionResult::Failed),
                    "outcome" => entry.outcome = v,
                    "duration" => entry.duration_ms = v.trim_end_matches(" ms").parse().unwrap_or(0),
                    _ => {}
                }
            }
            Event::End(TagEnd::Item) => depth -= 1,
            _ => {}
        }
    }
    out
}

impl Memory {
    /// Appends entries to the audit file of each entry's own day, under the
    /// memory's write lock and atomically (the whole file is rewritten), so
    /// concurrent writers never lose an entry. `now` names the day of an
    /// entry whose time does not parse.
    pub fn append_audit(&self, now: DateTime<Utc>, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let _lock = self.write_lock()?;
        let mut by_day: BTreeMap<String, Vec<&AuditEntry>> = BTreeMap::new();
        for e in entries {
            let day = crate::duration::parse_ts(&e.time).unwrap_or(now).format("%Y-%m-%d").to_string();
            by_day.entry(day).or_default().push(e);
        }
        for (day, entries) in by_day {
            let path = self.root.join("audit").join(format!("{day}.md"));
            let mut text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("# Audit {day}\n\n"),
                Err(e) => return Err(io_err(&path)(e)),
            };
            for e in entries {
                text.push_str(&e.render());
            }
            atomic_write(&path, text.as_bytes())?;
        }
        Ok(())
    }

    /// Whether the audit shows that nightshift itself executed `action` on
    /// `target` for `incident` at `time`, successfully: what memory recall
    /// trusts, rather than what a note says.
    pub fn audit_confirms(&self, time: &str, action: &str, target: &str, incident: &str) -> bool {
        let Some(t) = crate::duration::parse_ts(time) else { return false };
        // An entry lands in the file of its own day (older builds: the day the pass ended).
        [t, t + chrono::Duration::days(1)].iter().any(|day| {
            let path = self.root.join("audit").join(format!("{}.md", day.format("%Y-%m-%d")));
            std::fs::read_to_string(&path).is_ok_and(|text| {
                parse(&text)
                    .iter()
                    .any(|e| e.time == time && e.action == action && e.target == target && e.incident.as_deref() == Some(incident) && e.result == ActionResult::Ok && e.mode == "execute")
            })
        })
    }

    /// Every audit entry of the days from `since` on.
    pub fn audit_since(&self, since: DateTime<Utc>) -> Result<Vec<AuditEntry>> {
        let dir = self.root.join("audit");
        let mut files: Vec<_> = std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten().map(|e| e.path()).collect();
        files.sort();
        let first_day = since.format("%Y-%m-%d").to_string();
        let mut out = Vec::new();
        for f in files {
            let day = f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            if day.as_str() < first_day.as_str() || f.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let text = std::fs::read_to_string(&f).map_err(io_err(&f))?;
            out.extend(parse(&text).into_iter().filter(|e| e.time.as_str() >= crate::duration::timestamp(since).as_str()));
        }
        Ok(out)
    }
}

/// Per action type: how often, how risky, which routes, how successful.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActionStats {
    pub total: u32,
    pub executed: u32,
    pub ok: u32,
    pub failed: u32,
    pub by_result: BTreeMap<String, u32>,
    pub by_risk: BTreeMap<String, u32>,
    pub by_route: BTreeMap<String, u32>,
    pub success_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub since: String,
    pub entries: u32,
    pub actions: BTreeMap<String, ActionStats>,
    /// Actions that recur often or fail often: candidates for a permanent fix.
    pub permanent_fix_candidates: Vec<String>,
    /// Rules promoted to `auto` by earned trust, or demoted back to `confirm`, in the period.
    pub trust: Vec<super::state::TrustEvent>,
}

/// Summarises entries over a period of `days` days.
pub fn report(entries: &[AuditEntry], since: &str, days: f64) -> Report {
    let mut r = Report { since: since.to_string(), entries: entries.len() as u32, ..Default::default() };
    let mut per_target: BTreeMap<(String, String), u32> = BTreeMap::new();
    for e in entries {
        let s = r.actions.entry(e.action.clone()).or_default();
        s.total += 1;
        *s.by_result.entry(e.result.as_str().to_string()).or_default() += 1;
        *s.by_risk.entry(e.risk.clone()).or_default() += 1;
        let route = if e.approved_by.is_empty() || e.approved_by == "-" { e.decision.clone() } else { format!("{} ({})", e.decision, e.approved_by) };
        *s.by_route.entry(route).or_default() += 1;
        match e.result {
            ActionResult::Ok => {
                s.executed += 1;
                s.ok += 1;
            }
            ActionResult::Failed | ActionResult::Interrupted => {
                s.executed += 1;
                s.failed += 1;
            }
            _ => {}
        }
        if e.result.executed() || e.result == ActionResult::DryRun {
            *per_target.entry((e.action.clone(), e.target.clone())).or_default() += 1;
        }
    }
    let weeks = (days / 7.0).max(1.0);
    for (name, s) in r.actions.iter_mut() {
        s.success_rate = (s.executed > 0).then(|| f64::from(s.ok) / f64::from(s.executed));
        if s.executed >= 1 && f64::from(s.failed) / f64::from(s.executed) > 0.2 {
            r.permanent_fix_candidates.push(format!("{name}: fails often ({} of {} runs failed)", s.failed, s.executed));
        }
    }
    for ((action, target), n) in per_target {
        if f64::from(n) / weeks > 10.0 {
            r.permanent_fix_candidates.push(format!("{action} on {target}: recurs often ({n} times since {since})"));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_cut_short_in_one_field_leaves_the_others_readable() {
        let mut entry = AuditEntry {
            time: "2026-11-23T16:40:01Z".into(),
            action: "run_command".into(),
            target: "rotate-keys".into(),
            incident: Some("2026-11-23-app-exec-failed".into()),
            check: Some("app".into()),
            decision: "auto".into(),
            approved_by: "policy".into(),
            risk: "medium".into(),
            mode: "execute".into(),
            reason: "the key in the log: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun".into(),
            result: ActionResult::Failed,
            outcome: "`rotate-keys` exited 1".into(),
            duration_ms: 120,
        };
        let parsed = parse(&entry.render());
        entry.reason = "the key in the log: [REDACTED PRIVATE KEY]".into();
        assert_eq!(parsed, vec![entry]);
    }
}
