//! Memory recall: the fix that healed a fingerprint before, and how often
//! it worked.

use std::collections::BTreeMap;

use super::Runner;
use crate::actions::Action;
use crate::actions::ActionResult;
use crate::memory::notes::{Attempt, Incident};

impl Runner<'_> {
    /// Earlier incidents of this fingerprint (notes and digests): their ids,
    /// newest first, and every repair tried on them, oldest first. Memory is
    /// read once per pass, on first use, not once per incident (a check with
    /// thousands of failing series opens thousands in one pass).
    pub(super) fn earlier(&self, fingerprint: &str, current: Option<&str>) -> (Vec<String>, Vec<(Attempt, String)>) {
        let past = self.past.get_or_init(|| {
            let mut by: BTreeMap<String, Vec<Incident>> = BTreeMap::new();
            for (i, _) in crate::memory::stats::remembered(&self.mem).unwrap_or_default() {
                by.entry(i.fingerprint.clone()).or_default().push(i);
            }
            by
        });
        let mut earlier: Vec<&Incident> = past.get(fingerprint).map(|v| v.iter().filter(|i| Some(i.id.as_str()) != current).collect()).unwrap_or_default();
        earlier.sort_by(|a, b| b.detected.cmp(&a.detected).then(b.id.cmp(&a.id)));
        let ids = earlier.iter().map(|i| i.id.clone()).collect();
        let mut tries: Vec<(Attempt, String)> = earlier.iter().flat_map(|i| i.attempts.iter().map(|a| (a.clone(), i.id.clone()))).collect();
        tries.sort_by(|a, b| a.0.at.cmp(&b.0.at));
        (ids, tries)
    }
}

/// The fix to reuse: the latest one that healed an earlier incident of the
/// fingerprint and that the audit shows nightshift carried out itself
/// (`carried_out(attempt, incident)`): a note's text alone never makes a fix.
pub(super) fn recall(past: &[(Attempt, String)], carried_out: impl Fn(&Attempt, &str) -> bool) -> Option<(Action, String)> {
    past.iter()
        .rev()
        .filter(|(a, _)| a.result == ActionResult::Ok && a.action.kind().is_mutating() && a.action.kind() != crate::actions::ActionKind::RestartPod)
        .find(|(a, id)| carried_out(a, id))
        .map(|(a, id)| (a.action.clone(), id.clone()))
}

/// (succeeded, tried) of one fix over the attempts.
pub(super) fn success(past: &[(Attempt, String)], fix: &Action) -> (usize, usize) {
    let tries: Vec<_> = past.iter().filter(|(a, _)| a.action.same_remedy(fix)).collect();
    (tries.iter().filter(|(a, _)| a.result == ActionResult::Ok).count(), tries.len())
}
