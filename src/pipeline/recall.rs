//! Memory recall: the fix that healed a fingerprint before, and how often
//! it worked.

use super::Runner;
use crate::actions::Action;
use crate::memory::audit::ActionResult;
use crate::memory::notes::Attempt;

impl Runner<'_> {
    /// Every repair tried on earlier incidents of this fingerprint (notes and
    /// digests), oldest first, and how many earlier incidents there were.
    pub(super) fn past_attempts(&self, fingerprint: &str, current: &str) -> (Vec<(Attempt, String)>, usize) {
        let earlier: Vec<_> = crate::memory::stats::remembered(&self.mem)
            .unwrap_or_default()
            .into_iter()
            .filter(|(i, _)| i.fingerprint == fingerprint && i.id != current)
            .collect();
        let count = earlier.len();
        let mut out: Vec<(Attempt, String)> = earlier.into_iter().flat_map(|(i, _)| i.attempts.into_iter().map(move |a| (a, i.id.clone()))).collect();
        out.sort_by(|a, b| a.0.at.cmp(&b.0.at));
        (out, count)
    }
}

/// The fix to reuse: the latest one that healed an earlier incident of the fingerprint.
pub(super) fn recall(past: &[(Attempt, String)]) -> Option<(Action, String)> {
    past.iter().rev().find(|(a, _)| a.result == ActionResult::Ok && a.action.kind().is_mutating()).map(|(a, id)| (a.action.clone(), id.clone()))
}

/// (succeeded, tried) of one fix over the attempts.
pub(super) fn success(past: &[(Attempt, String)], fix: &Action) -> (usize, usize) {
    let tries: Vec<_> = past.iter().filter(|(a, _)| &a.action == fix).collect();
    (tries.iter().filter(|(a, _)| a.result == ActionResult::Ok).count(), tries.len())
}

