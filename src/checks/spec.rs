//! One declared check as HEARTBEAT.md declares it (parsed by `workspace::heartbeat`).

use std::time::Duration;

use super::ProbeSpec;
use crate::schedule::Schedule;
use crate::severity::{Level, Severity};

/// One declared check.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub name: String,
    pub line: usize,
    pub schedule: Schedule,
    pub threshold: u32,
    pub cooldown: Duration,
    pub host: Option<String>,
    pub level: Level,
    pub severity: Severity,
    /// A command declared in AGENTS.md `commands:` that repairs what this check watches.
    pub repair: Option<String>,
    pub probe: ProbeSpec,
    /// Verification beyond the check passing (`verify:`): other declared
    /// checks that must pass before a repair counts and the incident resolves.
    pub verify: Verification,
}

/// The seed's four verification steps; the first, status, is the check itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Checks that reach the service through its Service or address.
    pub connectivity: Vec<String>,
    /// Checks with latency or error-rate bounds (an http check's `max_latency`, a Prometheus query).
    pub performance: Vec<String>,
    /// Checks of what the service needs.
    pub dependencies: Vec<String>,
}

impl Verification {
    pub const STEPS: [&'static str; 3] = ["connectivity", "performance", "dependencies"];

    pub fn is_empty(&self) -> bool {
        self.steps().all(|(_, names)| names.is_empty())
    }

    pub fn steps(&self) -> impl Iterator<Item = (&'static str, &Vec<String>)> {
        Self::STEPS.into_iter().zip([&self.connectivity, &self.performance, &self.dependencies])
    }
}
