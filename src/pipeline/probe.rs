//! `k8s-probe` thresholds: each failing pod counts one more consecutive
//! failure (memory/state/probes.json); only pods at the check's threshold
//! stay failing series, so each becomes its own incident and is healed by
//! the check's declared heal through the gate. The rest are notes.

use std::collections::BTreeSet;

use super::{RunError, Runner, now};
use crate::checks::spec::CheckSpec;
use crate::checks::{CheckResult, ProbeSpec, Status};

/// Below-threshold pods named in the run's notes; the rest are counted.
const NOTED: usize = 10;

impl Runner<'_> {
    pub(super) fn probe_thresholds(&mut self, spec: &CheckSpec, result: &mut CheckResult) -> Result<(), RunError> {
        let ProbeSpec::K8sProbe(p) = &spec.probe else { return Ok(()) };
        if result.status == Status::Error {
            // Nothing is known about the pods: their counts stay as they are.
            return Ok(());
        }
        let failing: Vec<(String, String)> = result.series.iter().map(|s| (s.target.clone(), s.evidence.get("uid").and_then(|v| v.as_str()).unwrap_or_default().to_string())).collect();
        let keep: BTreeSet<String> = result.evidence.get("not_probed").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let mut counts = self.mem.load_probe_counts()?;
        let before = counts.clone();
        let n = counts.record(&spec.name, &failing, &keep, now());
        if counts != before {
            self.mem.save_probe_counts(&counts)?;
        }
        let mut due = Vec::new();
        let mut below = Vec::new();
        for (mut s, count) in std::mem::take(&mut result.series).into_iter().zip(n) {
            s.evidence.insert("consecutive_failures".into(), count.into());
            s.evidence.insert("threshold".into(), p.threshold.into());
            if count >= p.threshold { due.push(s) } else { below.push((s.target, count)) }
        }
        for (target, count) in below.iter().take(NOTED) {
            self.report.notes.push(format!("{}: pod {target} failed its probe {count}/{} times before it is healed", spec.name, p.threshold));
        }
        if below.len() > NOTED {
            self.report.notes.push(format!("{}: … and {} more pod(s) below the threshold", spec.name, below.len() - NOTED));
        }
        result.evidence.insert("below_threshold".into(), below.len().into());
        if due.is_empty() && result.status == Status::Failing {
            result.status = Status::Ok;
            result.summary = format!("{}; {} below the threshold of {}", result.summary, below.len(), p.threshold);
        }
        result.series = due;
        Ok(())
    }
}
