//! Per-pod probe failure counts of the `k8s-probe` checks, in
//! `memory/state/probes.json`: consecutive failures by check and pod (a pod
//! recreated under the same name starts again from zero), reset when the
//! pod passes. Written under the memory lock, and only when a count changed,
//! so a healthy run over 2,000 pods writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Memory, Result, read_json, write_json};

/// One pod's run of failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodFailures {
    /// The pod's uid: a new pod with the old name is a new count.
    pub uid: String,
    pub failures: u32,
    /// The first failure of the run.
    pub since: DateTime<Utc>,
}

/// check name → `namespace/pod` → its failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    #[serde(default)]
    pub checks: BTreeMap<String, BTreeMap<String, PodFailures>>,
}

impl ProbeCounts {
    /// One run of a check: the failing pods (key, uid) count one more failure;
    /// pods in `keep` (listed but not probed this run) keep their count; every
    /// other pod passed or is gone, and its count is reset. `keep` holding
    /// `*` keeps every count. Returns each failing pod's count, in order.
    pub fn record(&mut self, check: &str, failing: &[(String, String)], keep: &BTreeSet<String>, now: DateTime<Utc>) -> Vec<u32> {
        let old = self.checks.remove(check).unwrap_or_default();
        let mut next = BTreeMap::new();
        let mut counts = Vec::with_capacity(failing.len());
        for (key, uid) in failing {
            let prev = old.get(key).filter(|p| &p.uid == uid);
            let entry = PodFailures { uid: uid.clone(), failures: prev.map_or(0, |p| p.failures) + 1, since: prev.map_or(now, |p| p.since) };
            counts.push(entry.failures);
            next.insert(key.clone(), entry);
        }
        for (key, p) in old {
            if !next.contains_key(&key) && (keep.contains(&key) || keep.contains("*")) {
                next.insert(key, p);
            }
        }
        if !next.is_empty() {
            self.checks.insert(check.to_string(), next);
        }
        counts
    }
}

impl Memory {
    pub fn load_probe_counts(&self) -> Result<ProbeCounts> {
        read_json(&self.state_dir().join("probes.json"))
    }

    pub fn save_probe_counts(&self, counts: &ProbeCounts) -> Result<()> {
        let _write = self.write_lock()?;
        write_json(&self.state_dir().join("probes.json"), counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn counts_grow_while_a_pod_fails_and_reset_when_it_passes_or_is_recreated() {
        let mut c = ProbeCounts::default();
        let none = BTreeSet::new();
        let a = ("shop/a".to_string(), "uid-a".to_string());
        let b = ("shop/b".to_string(), "uid-b".to_string());
        assert_eq!(c.record("p", &[a.clone(), b.clone()], &none, at(0)), vec![1, 1]);
        assert_eq!(c.record("p", &[a.clone(), b.clone()], &none, at(10)), vec![2, 2]);
        // b passes: its count is gone; a's run goes on from its first failure.
        assert_eq!(c.record("p", std::slice::from_ref(&a), &none, at(20)), vec![3]);
        assert_eq!(c.checks["p"].keys().collect::<Vec<_>>(), vec!["shop/a"]);
        assert_eq!(c.checks["p"]["shop/a"].since, at(0));
        // Not probed this run (not Running): the count is kept, not reset.
        let keep: BTreeSet<String> = ["shop/a".to_string()].into();
        assert_eq!(c.record("p", &[], &keep, at(30)), Vec::<u32>::new());
        assert_eq!(c.checks["p"]["shop/a"].failures, 3);
        // The same name with a new uid is a new pod.
        assert_eq!(c.record("p", &[("shop/a".into(), "uid-a2".into())], &none, at(40)), vec![1]);
        // Everything passes: the check has no entry left.
        c.record("p", &[], &none, at(50));
        assert_eq!(c, ProbeCounts::default());
    }
}
