//! How bad a problem is (`severity`) and how far nightshift may go alone (`level`):
//! the vocabulary the checks, the policy, the actions and the memory share. Imports nothing
//! of the pipeline.

use serde::Serialize;

/// Automation level of a check (the seed's table): how far nightshift may go alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum Level {
    /// Monitor only: alert, never act.
    L1,
    /// Suggest and wait for a human.
    L2,
    /// Act, then notify.
    L3,
    /// Act silently; notify only when something goes wrong.
    L4,
}

impl Level {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "L1" => Some(Self::L1),
            "L2" => Some(Self::L2),
            "L3" => Some(Self::L3),
            "L4" => Some(Self::L4),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}
