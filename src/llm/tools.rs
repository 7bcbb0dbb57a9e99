//! The model's tools: each a type with `NAME` and typed `Args` (deriving
//! `JsonSchema`, so the schema the model sees and the type its arguments are
//! parsed into cannot drift). The registry is built in one place, refuses
//! duplicates, and takes each description from `tools/<name>.md`. Calls are
//! dispatched in one `match` (pipeline/investigate.rs); mutating ones go
//! through the policy gate.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One tool the model may call.
pub trait Tool {
    const NAME: &'static str;
    type Args: DeserializeOwned + JsonSchema;
    /// Defensive default: a tool changes things unless it says otherwise.
    fn is_mutating() -> bool {
        true
    }
}

/// Arguments naming one declared check.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckArgs {
    /// The check's name, as declared in HEARTBEAT.md.
    pub check: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskUsageArgs {
    /// An absolute path; its filesystem is scanned (bounded, same filesystem only).
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertInfoArgs {
    /// host:port serving the certificate; or null with `file`.
    pub address: Option<String>,
    /// Name sent as SNI (defaults to the host of `address`).
    pub server_name: Option<String>,
    /// Path of a PEM certificate file; or null with `address`.
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// Words to look for in past incidents and knowledge pages.
    pub query: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWebhookArgs {
    /// The name of a webhook declared in AGENTS.md.
    pub webhook: String,
    /// The message to send.
    pub message: String,
}

/// The actions the model may propose (those this build can take).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepairKind {
    CleanLogs,
    RunCommand,
    RestartProcess,
    SendWebhook,
}

/// One repair, as a flat object (strict mode wants an object at the root):
/// `action` says which, and only the fields it needs are set, the rest null.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairArgs {
    /// Which action.
    pub action: RepairKind,
    /// clean_logs: a directory listed in AGENTS.md `clean_roots`.
    pub root: Option<String>,
    /// run_command, restart_process: the *name* of a command declared in AGENTS.md `commands:`.
    pub command: Option<String>,
    /// restart_process: the process, as its check names it.
    pub process: Option<String>,
    /// send_webhook: the name of a webhook declared in AGENTS.md.
    pub webhook: Option<String>,
    /// send_webhook: the message.
    pub message: Option<String>,
}

impl RepairArgs {
    /// The typed action, or what is missing.
    pub fn into_action(self) -> Result<crate::actions::Action, String> {
        use crate::actions::Action;
        let need = |v: Option<String>, field: &str, action: &str| v.filter(|s| !s.is_empty()).ok_or_else(|| format!("{action} needs `{field}`"));
        Ok(match self.action {
            RepairKind::CleanLogs => Action::CleanLogs { root: need(self.root, "root", "clean_logs")?.into(), host: None },
            RepairKind::RunCommand => Action::RunCommand { command: need(self.command, "command", "run_command")? },
            RepairKind::RestartProcess => Action::RestartProcess { process: need(self.process, "process", "restart_process")?, command: need(self.command, "command", "restart_process")? },
            RepairKind::SendWebhook => Action::SendWebhook { webhook: need(self.webhook, "webhook", "send_webhook")?, message: need(self.message, "message", "send_webhook")? },
        })
    }
}

pub struct HealthCheck;
pub struct Diagnose;
pub struct DiskUsage;
pub struct CertInfo;
pub struct SearchMemory;
pub struct Repair;
pub struct SendWebhook;

impl Tool for HealthCheck {
    const NAME: &'static str = "health_check";
    type Args = CheckArgs;
    fn is_mutating() -> bool {
        false
    }
}
impl Tool for Diagnose {
    const NAME: &'static str = "diagnose";
    type Args = CheckArgs;
    fn is_mutating() -> bool {
        false
    }
}
impl Tool for DiskUsage {
    const NAME: &'static str = "disk_usage";
    type Args = DiskUsageArgs;
    fn is_mutating() -> bool {
        false
    }
}
impl Tool for CertInfo {
    const NAME: &'static str = "cert_info";
    type Args = CertInfoArgs;
    fn is_mutating() -> bool {
        false
    }
}
impl Tool for SearchMemory {
    const NAME: &'static str = "search_memory";
    type Args = SearchArgs;
    fn is_mutating() -> bool {
        false
    }
}
impl Tool for Repair {
    const NAME: &'static str = "repair";
    type Args = RepairArgs;
}
impl Tool for SendWebhook {
    const NAME: &'static str = "send_webhook";
    type Args = SendWebhookArgs;
}

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: String,
    pub parameters: Value,
    pub mutating: bool,
}

/// Builds the registry; each tool once, each with its description.
pub struct RegistryBuilder<'d> {
    descriptions: &'d BTreeMap<String, String>,
    specs: Vec<ToolSpec>,
    errors: Vec<String>,
}

impl<'d> RegistryBuilder<'d> {
    pub fn new(descriptions: &'d BTreeMap<String, String>) -> Self {
        Self { descriptions, specs: Vec::new(), errors: Vec::new() }
    }

    pub fn add<T: Tool>(mut self) -> Self {
        if self.specs.iter().any(|s| s.name == T::NAME) {
            self.errors.push(format!("tool {} registered twice", T::NAME));
            return self;
        }
        match self.descriptions.get(T::NAME) {
            Some(d) => self.specs.push(ToolSpec { name: T::NAME, description: d.trim().to_string(), parameters: super::schema::strict::<T::Args>(), mutating: T::is_mutating() }),
            None => self.errors.push(format!("tool {} has no tools/{}.md", T::NAME, T::NAME)),
        }
        self
    }

    pub fn build(self) -> Result<Vec<ToolSpec>, String> {
        if self.errors.is_empty() { Ok(self.specs) } else { Err(self.errors.join("; ")) }
    }
}

/// Every tool nightshift has, described by the workspace's `tools/`.
pub fn registry(descriptions: &BTreeMap<String, String>) -> Result<Vec<ToolSpec>, String> {
    RegistryBuilder::new(descriptions).add::<HealthCheck>().add::<Diagnose>().add::<DiskUsage>().add::<CertInfo>().add::<SearchMemory>().add::<Repair>().add::<SendWebhook>().build()
}

/// The tools worth offering for an incident of this check kind: fewer tools, fewer tokens.
pub fn relevant(kind: &str) -> &'static [&'static str] {
    match kind {
        "disk" | "backup" => &["health_check", "diagnose", "disk_usage", "search_memory", "repair", "send_webhook"],
        "tls" => &["health_check", "diagnose", "cert_info", "search_memory", "repair", "send_webhook"],
        _ => &["health_check", "diagnose", "search_memory", "repair", "send_webhook"],
    }
}
