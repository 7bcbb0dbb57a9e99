//! `incidents stats` and `incidents search`: figures and relevance-ranked
//! search over every incident nightshift remembers (notes and digests) and
//! its knowledge pages.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::notes::{Incident, IncidentStatus};
use super::{Memory, Result};
use crate::duration::parse_ts;

/// Notes and digested incidents, each once (a note wins over its digest section).
pub fn remembered(mem: &Memory) -> Result<Vec<(Incident, Option<String>)>> {
    let mut out: Vec<(Incident, Option<String>)> = mem.all_incidents()?.into_iter().map(|(i, raw)| (i, Some(raw))).collect();
    let seen: BTreeSet<String> = out.iter().map(|(i, _)| i.id.clone()).collect();
    out.extend(mem.digested()?.into_iter().filter(|i| !seen.contains(&i.id)).map(|i| (i, None)));
    Ok(out)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub mean_seconds: Option<f64>,
    pub p90_seconds: Option<i64>,
}

fn spread(mut v: Vec<i64>) -> Spread {
    v.sort_unstable();
    if v.is_empty() {
        return Spread::default();
    }
    Spread { count: v.len(), mean_seconds: Some(v.iter().sum::<i64>() as f64 / v.len() as f64), p90_seconds: Some(v[((v.len() as f64 - 1.0) * 0.9).round() as usize]) }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub since: String,
    pub incidents: usize,
    pub by_class: BTreeMap<String, usize>,
    pub by_target: BTreeMap<String, usize>,
    pub time_to_detect: Spread,
    pub time_to_repair: Spread,
    /// Fingerprints seen more than once: the same problem coming back.
    pub recurring: BTreeMap<String, usize>,
    pub auto_fixed: usize,
    pub escalated: usize,
    pub auto_fixed_share: Option<f64>,
    pub tokens: u64,
}

/// Figures over incidents detected at or after `since`.
pub fn stats(incidents: &[Incident], since: DateTime<Utc>) -> Stats {
    let recent: Vec<&Incident> = incidents.iter().filter(|i| parse_ts(&i.detected).is_some_and(|t| t >= since)).collect();
    let mut s = Stats { since: crate::duration::timestamp(since), incidents: recent.len(), ..Default::default() };
    let mut fps: BTreeMap<String, usize> = BTreeMap::new();
    for i in &recent {
        *s.by_class.entry(i.class.clone()).or_default() += 1;
        *s.by_target.entry(i.target.clone()).or_default() += 1;
        *fps.entry(i.fingerprint.clone()).or_default() += 1;
        s.tokens += i.tokens;
        let fixed_by = i.attempts.iter().rev().find(|a| a.result == crate::actions::ActionResult::Ok && a.action.kind().is_mutating()).map(|a| a.route.as_str());
        match (i.status, fixed_by) {
            (IncidentStatus::NeedsHuman, _) => s.escalated += 1,
            (_, Some(route)) if route.starts_with("human:") => s.escalated += 1,
            (IncidentStatus::Resolved, Some(_)) => s.auto_fixed += 1,
            _ => {}
        }
    }
    s.time_to_detect = spread(recent.iter().filter_map(|i| i.time_to_detect()).collect());
    s.time_to_repair = spread(recent.iter().filter_map(|i| i.time_to_repair()).collect());
    s.recurring = fps.into_iter().filter(|(_, n)| *n > 1).collect();
    let decided = s.auto_fixed + s.escalated;
    s.auto_fixed_share = (decided > 0).then(|| s.auto_fixed as f64 / decided as f64);
    s
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// `incident`, `digest` (a folded incident) or `knowledge`.
    pub kind: &'static str,
    pub id: String,
    pub title: String,
    pub status: String,
    pub score: u32,
    pub detected: String,
}

fn count(hay: &str, term: &str) -> u32 {
    hay.matches(term).count() as u32
}

/// A term's score in one document: where it stands matters more than how
/// often (a title match beats many mentions in the evidence).
fn term_score(term: &str, title: &str, diagnosis: &str, evidence: &str, all: &str) -> u32 {
    let has = |hay: &str| u32::from(hay.contains(term));
    10 * has(title) + 4 * has(diagnosis) + 2 * has(evidence) + has(all) + count(all, term).min(3)
}

/// Every term must occur. A term in the title weighs 10, in the diagnosis 4,
/// in the evidence 2, anywhere 1, plus up to 3 for repeats. Ties: most recent first.
pub fn search(mem: &Memory, query: &str) -> Result<Vec<Hit>> {
    let terms: Vec<String> = query.to_lowercase().split_whitespace().map(str::to_string).collect();
    let mut hits = Vec::new();
    if terms.is_empty() {
        return Ok(hits);
    }
    for (inc, raw) in remembered(mem)? {
        let title = inc.title.to_lowercase();
        let diagnosis = inc.diagnosis.join("\n").to_lowercase();
        let evidence = inc.evidence.to_lowercase();
        let rest = match &raw {
            Some(r) => r.to_lowercase(),
            None => format!("{} {} {}", inc.class, inc.target, inc.fingerprint).to_lowercase(),
        };
        if !terms.iter().all(|t| rest.contains(t.as_str()) || title.contains(t.as_str())) {
            continue;
        }
        let score = terms.iter().map(|t| term_score(t, &title, &diagnosis, &evidence, &rest)).sum();
        hits.push(Hit { kind: if raw.is_some() { "incident" } else { "digest" }, id: inc.id, title: inc.title, status: inc.status.as_str().into(), score, detected: inc.detected });
    }
    let dir = mem.root.join("knowledge");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let lower = text.to_lowercase();
        if !terms.iter().all(|t| lower.contains(t.as_str())) {
            continue;
        }
        let title = text.lines().next().unwrap_or("").trim_start_matches("# ").to_string();
        let score = terms.iter().map(|t| term_score(t, &title.to_lowercase(), "", "", &lower)).sum();
        let id = format!("knowledge/{}", entry.file_name().to_string_lossy());
        hits.push(Hit { kind: "knowledge", id, title, status: "-".into(), score, detected: String::new() });
    }
    hits.sort_by(|a, b| b.score.cmp(&a.score).then(b.detected.cmp(&a.detected)).then(a.id.cmp(&b.id)));
    Ok(hits)
}
