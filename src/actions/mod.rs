//! The closed set of actions nightshift can take. Both planners (runbooks and,
//! later, the model) emit these values; every one passes the policy gate.

pub mod clean_logs;
pub mod command;
pub mod host;
pub mod kube;
pub mod notify;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// What became of a decided action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionResult {
    /// Executed and the check passed again (or, for notify, delivered).
    Ok,
    /// Executed but failed, or the check still failed afterwards.
    Failed,
    DryRun,
    /// Waiting for a human (confirm) or for its abort window.
    Pending,
    /// Refused by the policy (forbid), or alert-only.
    Denied,
    Aborted,
    Expired,
    /// The process died mid-action; found by the journal and not repeated.
    Interrupted,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::DryRun => "dry-run",
            Self::Pending => "pending",
            Self::Denied => "denied",
            Self::Aborted => "aborted",
            Self::Expired => "expired",
            Self::Interrupted => "interrupted",
        }
    }

    /// The action really ran (to success, failure, or a crash mid-way).
    pub fn executed(self) -> bool {
        matches!(self, Self::Ok | Self::Failed | Self::Interrupted)
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Failed, Self::DryRun, Self::Pending, Self::Denied, Self::Aborted, Self::Expired, Self::Interrupted].into_iter().find(|r| r.as_str() == s)
    }
}

/// Every action name a rule may mention. Names of actions that later parts of
/// nightshift execute (Kubernetes, hosts, pull requests) are known here so
/// rules for them validate; a rule naming anything else is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    CleanLogs,
    RestartProcess,
    RunCommand,
    Notify,
    RestartService,
    RenewCert,
    RestartPod,
    RolloutRestart,
    RolloutUndo,
    Scale,
    CordonNode,
    DrainNode,
    RaiseMemoryLimit,
    OpenPr,
    SendWebhook,
    ReplaceNode,
    Failover,
    Failback,
    ResizeVolume,
}

impl ActionKind {
    pub const ALL: [ActionKind; 19] = [
        Self::CleanLogs,
        Self::RestartProcess,
        Self::RunCommand,
        Self::Notify,
        Self::RestartService,
        Self::RenewCert,
        Self::RestartPod,
        Self::RolloutRestart,
        Self::RolloutUndo,
        Self::Scale,
        Self::CordonNode,
        Self::DrainNode,
        Self::RaiseMemoryLimit,
        Self::OpenPr,
        Self::SendWebhook,
        Self::ReplaceNode,
        Self::Failover,
        Self::Failback,
        Self::ResizeVolume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CleanLogs => "clean_logs",
            Self::RestartProcess => "restart_process",
            Self::RunCommand => "run_command",
            Self::Notify => "notify",
            Self::RestartService => "restart_service",
            Self::RenewCert => "renew_cert",
            Self::RestartPod => "restart_pod",
            Self::RolloutRestart => "rollout_restart",
            Self::RolloutUndo => "rollout_undo",
            Self::Scale => "scale",
            Self::CordonNode => "cordon_node",
            Self::DrainNode => "drain_node",
            Self::RaiseMemoryLimit => "raise_memory_limit",
            Self::OpenPr => "open_pr",
            Self::SendWebhook => "send_webhook",
            Self::ReplaceNode => "replace_node",
            Self::Failover => "failover",
            Self::Failback => "failback",
            Self::ResizeVolume => "resize_volume",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this build can take the action (the others are known to rules
    /// so policies validate, and arrive with their issues: Kubernetes, hosts, PRs).
    pub fn available(self) -> bool {
        match self {
            Self::CleanLogs | Self::RenewCert | Self::RestartService | Self::RestartProcess | Self::RunCommand | Self::Notify | Self::SendWebhook => true,
            Self::RestartPod | Self::RolloutRestart | Self::RolloutUndo | Self::Scale | Self::CordonNode | Self::DrainNode | Self::RaiseMemoryLimit => true,
            Self::OpenPr | Self::ReplaceNode | Self::Failover | Self::Failback | Self::ResizeVolume => true,
        }
    }

    /// Whether success means the problem is fixed. Containment (cordon,
    /// drain) and proposals (a limit change for review) succeed without
    /// healing: the incident stays with a human; their success is checked by
    /// the action itself, not by the failing check passing.
    pub fn heals(self) -> bool {
        !matches!(
            self,
            Self::Notify | Self::SendWebhook | Self::CordonNode | Self::DrainNode | Self::RaiseMemoryLimit | Self::OpenPr | Self::ReplaceNode | Self::ResizeVolume | Self::Scale | Self::Failover
        )
    }

    /// Whether the action proposes a permanent fix for review (a limit
    /// change, a pull request): it goes out in the same pass as the repair,
    /// whatever the repair does, because the problem often comes back after
    /// a restart that verified healthy.
    pub fn is_proposal(self) -> bool {
        matches!(self, Self::RaiseMemoryLimit | Self::OpenPr)
    }

    /// Whether success keeps the incident open, watched, until its check
    /// passes: a scale (its replicas ready; the load may take longer to
    /// ease) and a failover (the secondary serves; the primary must recover
    /// and be switched back). Their success is checked by the action itself.
    pub fn holds_open(self) -> bool {
        matches!(self, Self::Scale | Self::Failover)
    }

    /// Whether the action changes anything. Only notifying is read-only.
    pub fn is_mutating(self) -> bool {
        !matches!(self, Self::Notify)
    }

    /// The inherent risk of the kind of action, recorded in the audit.
    pub fn risk(self) -> Risk {
        match self {
            Self::Notify => Risk::Low,
            Self::CleanLogs | Self::RestartPod | Self::RenewCert | Self::OpenPr | Self::RaiseMemoryLimit => Risk::Low,
            Self::RestartProcess | Self::RunCommand | Self::RestartService | Self::RolloutRestart | Self::Scale | Self::SendWebhook | Self::CordonNode | Self::ResizeVolume => Risk::Medium,
            Self::RolloutUndo | Self::DrainNode | Self::ReplaceNode | Self::Failover | Self::Failback => Risk::High,
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// What an action touches, as the policy matches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// A stable identifier: a path, `namespace/name`, a command name.
    pub id: String,
    pub namespace: Option<String>,
    pub host: Option<String>,
}

/// One concrete action, with everything needed to run it. Commands are names
/// declared in AGENTS.md, never command text from a log or a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Delete old `*.log` files, gzip big ones and remove core dumps under one
    /// of the workspace's `clean_roots`.
    CleanLogs {
        /// A directory listed in AGENTS.md `clean_roots`.
        root: PathBuf,
        /// An inventory host, or this host when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// Renew a certificate with the declared ACME command, then run the
    /// declared reload; verified by reading the served certificate again.
    RenewCert {
        /// What serves the certificate (host:port) or holds it (a file).
        certificate: String,
        /// The name of a command declared in AGENTS.md (e.g. certbot renew).
        renew: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reload: Option<String>,
    },
    /// Restart a systemd unit (or a SysV service where there is no systemd).
    RestartService {
        unit: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// Run a declared command that restarts a process.
    RestartProcess {
        /// The process, as its check names it.
        process: String,
        /// The name of a command declared in AGENTS.md `commands:`.
        command: String,
    },
    /// Run a declared command.
    RunCommand {
        /// The name of a command declared in AGENTS.md `commands:` (not a command line).
        command: String,
    },
    /// Tell the humans, through the configured webhooks.
    Notify {
        severity: Severity,
        message: String,
        /// How soon a person must look; absent: as the severity says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(skip)]
        urgency: Option<notify::Urgency>,
    },
    /// Post a message to one webhook declared in AGENTS.md (an n8n workflow
    /// holding the credentials): how credentialed actions are taken.
    SendWebhook {
        /// The name of a webhook declared in AGENTS.md.
        webhook: String,
        message: String,
    },
    /// Delete a pod so its controller replaces it.
    RestartPod {
        namespace: String,
        pod: String,
        /// The pod's workload (`deployment/checkout`): pods come and go, the
        /// workload is what cooldowns, hourly limits and memory count.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workload: Option<String>,
        /// A kubeconfig context; the current one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Restart a Deployment's pods in a rolling way (`kubectl rollout restart`).
    RolloutRestart {
        namespace: String,
        deployment: String,
        /// The replicas it restarts, as read when it was planned: its blast radius.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(skip)]
        replicas: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Roll a Deployment back to its previous revision (`kubectl rollout undo`).
    RolloutUndo {
        namespace: String,
        deployment: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Set a Deployment's replicas (refused while an autoscaler owns them).
    Scale {
        namespace: String,
        deployment: String,
        replicas: i32,
        /// The replicas when the scale was planned: the blast radius is the difference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Mark a node unschedulable.
    CordonNode {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Cordon a node and evict its pods, honouring PodDisruptionBudgets.
    DrainNode {
        node: String,
        /// The pods it evicts, as counted when it was planned: its blast radius.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(skip)]
        pods: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Propose a higher memory limit for a Deployment's container: the change
    /// is produced for review (a pull request), never applied to the cluster.
    RaiseMemoryLimit {
        namespace: String,
        /// The workload's name (a Deployment, or the kind below).
        deployment: String,
        /// The workload's kind: `Deployment` (when absent) or `StatefulSet`.
        #[serde(default = "deployment_kind", skip_serializing_if = "is_deployment_kind")]
        #[schemars(skip)]
        kind: String,
        container: String,
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Ask for a drained, NotReady node to be replaced: a request to the
    /// webhook of AGENTS.md `replace_node:` (an n8n workflow or the cloud's
    /// node-group API behind it holds the credentials; nightshift holds none).
    ReplaceNode {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Ask for a volume to grow: a request to the webhook of AGENTS.md
    /// `resize_volume:` (an n8n workflow holding the cloud's credentials;
    /// nightshift holds none). Planned when cleaning cannot bring a full
    /// disk under its limit or above 20% free.
    ResizeVolume {
        /// The full filesystem's path, as its disk check names it.
        path: PathBuf,
        /// An inventory host, or this host when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// Point a Service at its secondary workload (its selector becomes the
    /// secondary Deployment's); verified by the Service's endpoints.
    Failover {
        namespace: String,
        service: String,
        /// The Deployment that takes the traffic.
        to: String,
        /// The Deployment that failed.
        from: String,
        /// Whether to start `from`'s recovery after the switch (a rollback
        /// of a failed rollout, else a rolling restart).
        #[serde(default)]
        recover: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Point a Service back at its primary workload once that has been
    /// healthy for the declared window.
    Failback {
        namespace: String,
        service: String,
        to: String,
        from: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Open (or update) a pull request in the infrastructure repository
    /// (AGENTS.md `repository:`) with one typed change to a workload's
    /// manifest, on a `nightshift/` branch; never pushed to the base branch.
    OpenPr {
        namespace: String,
        /// The workload's kind as its manifest says (`Deployment` when absent).
        #[serde(default = "deployment_kind")]
        kind: String,
        /// The workload's name.
        name: String,
        /// What the pull request changes.
        change: crate::pr::PrChange,
    },
}

fn deployment_kind() -> String {
    "Deployment".into()
}

fn is_deployment_kind(kind: &str) -> bool {
    kind == "Deployment"
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::CleanLogs { .. } => ActionKind::CleanLogs,
            Action::RestartService { .. } => ActionKind::RestartService,
            Action::RenewCert { .. } => ActionKind::RenewCert,
            Action::RestartProcess { .. } => ActionKind::RestartProcess,
            Action::RunCommand { .. } => ActionKind::RunCommand,
            Action::Notify { .. } => ActionKind::Notify,
            Action::SendWebhook { .. } => ActionKind::SendWebhook,
            Action::RestartPod { .. } => ActionKind::RestartPod,
            Action::RolloutRestart { .. } => ActionKind::RolloutRestart,
            Action::RolloutUndo { .. } => ActionKind::RolloutUndo,
            Action::Scale { .. } => ActionKind::Scale,
            Action::CordonNode { .. } => ActionKind::CordonNode,
            Action::DrainNode { .. } => ActionKind::DrainNode,
            Action::RaiseMemoryLimit { .. } => ActionKind::RaiseMemoryLimit,
            Action::OpenPr { .. } => ActionKind::OpenPr,
            Action::ReplaceNode { .. } => ActionKind::ReplaceNode,
            Action::Failover { .. } => ActionKind::Failover,
            Action::Failback { .. } => ActionKind::Failback,
            Action::ResizeVolume { .. } => ActionKind::ResizeVolume,
        }
    }

    /// The kubeconfig context of a Kubernetes action.
    pub fn context(&self) -> Option<&str> {
        match self {
            Action::RestartPod { context, .. }
            | Action::RolloutRestart { context, .. }
            | Action::RolloutUndo { context, .. }
            | Action::Scale { context, .. }
            | Action::CordonNode { context, .. }
            | Action::DrainNode { context, .. }
            | Action::ReplaceNode { context, .. }
            | Action::Failover { context, .. }
            | Action::Failback { context, .. }
            | Action::RaiseMemoryLimit { context, .. } => context.as_deref(),
            Action::CleanLogs { .. }
            | Action::RenewCert { .. }
            | Action::RestartService { .. }
            | Action::RestartProcess { .. }
            | Action::RunCommand { .. }
            | Action::Notify { .. }
            | Action::SendWebhook { .. }
            | Action::ResizeVolume { .. }
            | Action::OpenPr { .. } => None,
        }
    }

    pub fn target(&self) -> Target {
        let host = match self {
            Action::CleanLogs { host, .. } | Action::RestartService { host, .. } | Action::ResizeVolume { host, .. } => host.clone(),
            _ => None,
        };
        let namespace = match self {
            Action::RestartPod { namespace, .. }
            | Action::RolloutRestart { namespace, .. }
            | Action::RolloutUndo { namespace, .. }
            | Action::Scale { namespace, .. }
            | Action::RaiseMemoryLimit { namespace, .. }
            | Action::OpenPr { namespace, .. }
            | Action::Failover { namespace, .. }
            | Action::Failback { namespace, .. } => Some(namespace.clone()),
            _ => None,
        };
        let id = match self {
            Action::CleanLogs { root, host } | Action::ResizeVolume { path: root, host } => host.as_ref().map_or_else(|| root.display().to_string(), |h| format!("{h}:{}", root.display())),
            Action::RestartService { unit, host } => host.as_ref().map_or_else(|| unit.clone(), |h| format!("{h}:{unit}")),
            Action::RenewCert { certificate, .. } => certificate.clone(),
            Action::RestartProcess { process, .. } => process.clone(),
            Action::RunCommand { command } => command.clone(),
            Action::Notify { severity, .. } => format!("humans ({})", severity.as_str()),
            Action::SendWebhook { webhook, .. } => format!("webhook {webhook}"),
            Action::RestartPod { namespace, pod, .. } => format!("{namespace}/{pod}"),
            Action::RolloutRestart { namespace, deployment, .. } | Action::RolloutUndo { namespace, deployment, .. } | Action::Scale { namespace, deployment, .. } => {
                format!("{namespace}/{deployment}")
            }
            Action::RaiseMemoryLimit { namespace, deployment, container, .. } => format!("{namespace}/{deployment}/{container}"),
            Action::CordonNode { node, .. } | Action::DrainNode { node, .. } | Action::ReplaceNode { node, .. } => node.clone(),
            Action::OpenPr { namespace, name, .. } => format!("{namespace}/{name}"),
            Action::Failover { namespace, service, .. } | Action::Failback { namespace, service, .. } => format!("{namespace}/service/{service}"),
        };
        Target { id, namespace, host }
    }

    /// What cooldowns, hourly limits and the memory of past tries count by:
    /// the target, except a pod restart counts by its workload (each restart
    /// makes a new pod name, and the loop must still be noticed).
    pub fn rate_key(&self) -> String {
        match self {
            Action::RestartPod { namespace, workload: Some(w), .. } => format!("{namespace}/{w}"),
            _ => self.target().id,
        }
    }

    /// The action without what was measured when it was planned (a rollout
    /// restart's replicas, a drain's pods): the same action on another pass.
    pub fn unmeasured(&self) -> Action {
        let mut a = self.clone();
        match &mut a {
            Action::RolloutRestart { replicas, .. } => *replicas = None,
            Action::DrainNode { pods, .. } => *pods = None,
            _ => {}
        }
        a
    }

    /// Whether a restart: several planned in one pass count together against `max_blast_radius`.
    pub fn is_restart(&self) -> bool {
        matches!(self, Action::RestartPod { .. } | Action::RolloutRestart { .. } | Action::RestartService { .. } | Action::RestartProcess { .. })
    }

    /// The same remedy for the same thing (a restart of any pod of one workload).
    pub fn same_remedy(&self, other: &Action) -> bool {
        self.kind() == other.kind() && self.rate_key() == other.rate_key()
    }

    /// How many instances the action touches.
    pub fn blast_radius(&self) -> u32 {
        match self {
            Action::CleanLogs { .. }
            | Action::RenewCert { .. }
            | Action::RestartService { .. }
            | Action::RestartProcess { .. }
            | Action::RunCommand { .. }
            | Action::Notify { .. }
            | Action::ResizeVolume { .. }
            | Action::SendWebhook { .. } => 1,
            Action::RestartPod { .. }
            | Action::RolloutUndo { .. }
            | Action::RaiseMemoryLimit { .. }
            | Action::CordonNode { .. }
            | Action::RolloutRestart { replicas: None, .. }
            | Action::DrainNode { pods: None, .. }
            | Action::OpenPr { .. }
            | Action::ReplaceNode { .. }
            | Action::Failover { .. }
            | Action::Failback { .. } => 1,
            // Every replica it restarts; every pod it evicts.
            Action::RolloutRestart { replicas: Some(n), .. } => (*n).max(1) as u32,
            Action::DrainNode { pods: Some(n), .. } => (*n).max(1),
            // The replicas it changes (50 → 0 touches 50); unknown, the replicas it sets.
            Action::Scale { replicas, from: Some(from), .. } => replicas.abs_diff(*from).max(1),
            Action::Scale { replicas, from: None, .. } => (*replicas).max(1) as u32,
        }
    }

    /// A one-line description for people.
    pub fn describe(&self) -> String {
        match self {
            Action::CleanLogs { root, host } => format!("clean old logs and core dumps under {}{}", root.display(), host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default()),
            Action::RestartService { unit, host } => format!("restart service {unit}{}", host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default()),
            Action::RenewCert { certificate, renew, reload } => {
                format!("renew the certificate of {certificate} with `{renew}`{}", reload.as_ref().map(|r| format!(", then `{r}`")).unwrap_or_default())
            }
            Action::RestartProcess { process, command } => format!("restart {process} with declared command `{command}`"),
            Action::RunCommand { command } => format!("run declared command `{command}`"),
            Action::Notify { severity, .. } => format!("notify humans ({})", severity.as_str()),
            Action::SendWebhook { webhook, .. } => format!("send a message to webhook {webhook}"),
            Action::RestartPod { namespace, pod, .. } => format!("restart pod {namespace}/{pod} (delete it; its controller replaces it)"),
            Action::RolloutRestart { namespace, deployment, replicas, .. } => {
                format!("rolling restart of deployment {namespace}/{deployment}{}", replicas.map(|n| format!(" ({n} replicas)")).unwrap_or_default())
            }
            Action::RolloutUndo { namespace, deployment, .. } => format!("roll deployment {namespace}/{deployment} back to its previous revision"),
            Action::Scale { namespace, deployment, replicas, .. } => format!("scale deployment {namespace}/{deployment} to {replicas} replicas"),
            Action::CordonNode { node, .. } => format!("cordon node {node}"),
            Action::DrainNode { node, pods, .. } => {
                format!("drain node {node}{} (evictions honour PodDisruptionBudgets)", pods.map(|n| format!(", evicting {n} pod(s)")).unwrap_or_default())
            }
            Action::ReplaceNode { node, .. } => format!("ask for node {node} to be replaced (a drained node that stays NotReady)"),
            Action::ResizeVolume { path, host } => format!("ask for the volume of {}{} to grow", path.display(), host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default()),
            Action::RaiseMemoryLimit { namespace, deployment, kind, container, from, to, .. } => {
                format!("propose raising the memory limit of {} {namespace}/{deployment} container {container} from {from} to {to}", kind.to_ascii_lowercase())
            }
            Action::Failover { namespace, service, to, from, .. } => format!("fail service {namespace}/{service} over from {from} to its secondary {to}"),
            Action::Failback { namespace, service, to, from, .. } => format!("switch service {namespace}/{service} back from {from} to its primary {to}"),
            Action::OpenPr { namespace, kind, name, change } => format!("open a pull request for {} {namespace}/{name}: {}", kind.to_ascii_lowercase(), change.describe()),
        }
    }
}
