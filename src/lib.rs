//! nightshift: an autonomous on-call engineer. Checks find what is wrong,
//! runbooks diagnose and plan, a policy gate enforced in code decides, and
//! everything is written as markdown into a git-backed memory.
//!
//! The modules follow the pipeline of DESIGN.md: `checks` (signals) →
//! `pipeline` (incidents) → `diagnosis` (runbooks: diagnosis, plan) → `policy`
//! (the gate) → `actions` (execute, behind the journal) → `memory` (record).
//! They sit in layers, each importing only those below it (`tests/layers.rs`
//! holds the order and fails the build on a cycle): the vocabulary (`severity`,
//! `duration`, `redact`, `markdown`, …), the clients (`ssh`, `k8s`), then
//! `checks`, `pr`, `actions`, `llm`, `policy`, `memory`, `diagnosis`,
//! `workspace`, `pipeline`, and on top `serve` and `cli`.

pub mod actions;
pub mod capture;
pub mod checks;
pub mod cli;
pub mod diagnosis;
pub mod drill;
pub mod duration;
pub mod k8s;
pub mod llm;
pub mod markdown;
pub mod memory;
pub mod pipeline;
pub mod policy;
pub mod pr;
pub mod redact;
pub mod sandbox;
pub mod schedule;
pub mod serve;
pub mod severity;
pub mod ssh;
pub mod telemetry;
pub mod trend;
pub mod workspace;

/// Installs the process-wide rustls crypto provider (aws-lc-rs). Several
/// dependencies enable different providers; without an explicit choice
/// rustls panics on first use.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
