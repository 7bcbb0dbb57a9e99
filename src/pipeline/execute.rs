//! Carrying an action out: behind the write-ahead journal, on this host or
//! over SSH, then verified by re-running the check (for its own target when
//! the check watches many); and previews of what an action would do.

use std::time::Duration;

use super::{RunError, Runner, fingerprint_target, healthy_for, now};
use crate::actions::ActionResult;
use crate::actions::{self, Action};
use crate::checks::spec::CheckSpec;
use crate::checks::{self};
use crate::markdown::code;
use crate::memory::approvals::{ApprovalStatus, new_id};
use crate::memory::journal::JournalEntry;
use crate::memory::notes::Incident;

impl Runner<'_> {
    /// A full disk, here or on a host: one read-only listing (`diagnosis::disk`,
    /// one round trip over SSH) gives the note its findings and the plan its
    /// steps; nothing is planned that the findings do not show would help.
    pub(super) async fn disk_findings(&self, spec: &CheckSpec, diag: &mut crate::diagnosis::Diagnosis) {
        let checks::ProbeSpec::Disk { path, max_used_percent, max_inodes_percent, .. } = &spec.probe else { return };
        let host = spec.host.as_deref();
        let inodes_full = diag.class == "inodes-full";
        // The services nightshift may restart on that host: the units of its declared `service` checks.
        let units = self
            .ws
            .heartbeat
            .checks
            .iter()
            .filter(|c| c.host.as_deref() == host)
            .filter_map(|c| match &c.probe {
                checks::ProbeSpec::Service { by: checks::ServiceRef::Unit(u), .. } => Some(u.clone()),
                _ => None,
            })
            .collect();
        let from = if inodes_full { 0.0 } else { max_inodes_percent.unwrap_or(90.0).min(90.0) };
        match crate::diagnosis::disk::look(&self.ctx, host, path, &self.ws.policy, from).await {
            Ok(facts) => {
                let lim = crate::diagnosis::disk::Limits { host, max_used_percent: *max_used_percent, inodes_full, units };
                let (steps, plan) = crate::diagnosis::disk::findings(&facts, path, &self.ws.policy, &lim);
                // The sentence first, then the check's own figures, then the rest.
                let usage = std::mem::take(&mut diag.steps);
                let mut it = steps.into_iter();
                diag.steps = it.next().into_iter().chain(usage).chain(it).collect();
                diag.plan.extend(plan);
            }
            Err(e) => {
                diag.steps.push(format!("could not list what fills the disk{}: {}; nothing is planned without it, a human must look", host.map(|h| format!(" on {h}")).unwrap_or_default(), code(&e)))
            }
        }
    }

    /// What the action would do now, without doing it.
    pub(super) async fn preview(&self, action: &Action) -> String {
        match action {
            Action::CleanLogs { root, host: Some(h) } => actions::host::clean_logs(&self.ctx, Some(h), root, &self.ws.policy.clean_logs, false).await.unwrap_or_else(|e| e),
            Action::CleanLogs { root, host: None } => match actions::clean_logs::plan(root, &self.ws.policy.clean_logs, std::time::SystemTime::now()) {
                Ok(p) => p.describe(root),
                Err(e) => format!("cannot plan under {}: {e}", root.display()),
            },
            Action::RestartService { .. } | Action::RenewCert { .. } => action.describe(),
            Action::RestartProcess { command, .. } | Action::RunCommand { command } => {
                format!("run `{command}`: {}", self.ws.policy.commands.get(command).map_or("(not declared)", String::as_str))
            }
            Action::Notify { .. } | Action::SendWebhook { .. } => action.describe(),
            Action::RestartPod { .. } | Action::RolloutRestart { .. } | Action::Scale { .. } | Action::CordonNode { .. } => action.describe(),
            Action::RolloutUndo { namespace, deployment, context } => match self.ctx.kube.get(context.as_deref()).await {
                Ok(c) => crate::actions::kube::preview_undo(&c, namespace, deployment).await,
                Err(e) => e,
            },
            Action::DrainNode { node, context, .. } => match self.ctx.kube.get(context.as_deref()).await {
                Ok(c) => crate::actions::kube::preview_drain(&c, node).await,
                Err(e) => e,
            },
            Action::RaiseMemoryLimit { namespace, deployment, kind, container, from, to, context } => match self.ctx.kube.get(context.as_deref()).await {
                Ok(c) => crate::actions::kube::memory_proposal(&c, namespace, kind, deployment, container, from, to).await.unwrap_or_else(|e| e),
                Err(e) => e,
            },
            Action::OpenPr { .. } => match self.pr_request(action, None, "") {
                Ok((cfg, req)) => crate::pr::preview(&cfg, &req).await,
                Err(e) => e,
            },
            Action::ResizeVolume { .. } => match &self.ws.policy.resize_volume {
                Some(r) => format!("would ask webhook {} to {}", r.webhook, action.describe()),
                None => "no `resize_volume:` in AGENTS.md: nothing to ask".into(),
            },
            Action::ReplaceNode { node, .. } => match &self.ws.policy.replace_node {
                Some(r) => format!("would ask webhook {} to replace node {node}", r.webhook),
                None => "no `replace_node:` in AGENTS.md: nothing to ask".into(),
            },
            Action::Failover { recover, from, .. } if *recover => format!("{}, then start the recovery of {from} (a rollback of a failed rollout, else a rolling restart)", action.describe()),
            Action::Failover { .. } | Action::Failback { .. } => action.describe(),
        }
    }

    /// The repository and request of an `open_pr`, with the incident's
    /// evidence for the pull request's body.
    fn pr_request(&self, action: &Action, incident: Option<&Incident>, allowed: &str) -> Result<(crate::pr::RepoConfig, crate::pr::PrRequest), String> {
        let Action::OpenPr { namespace, kind, name, change } = action else { return Err("not a pull request".into()) };
        let Some(repo) = &self.ws.policy.repository else {
            return Err("no `repository:` in AGENTS.md's policy: nightshift has nowhere to open pull requests (add remote:, and the token variable)".into());
        };
        let mut cfg = repo.clone();
        cfg.cache = crate::pr::resolve_cache(&self.ws.root, &cfg.cache.to_string_lossy());
        let context = crate::pr::PrContext {
            incident: incident.map(|i| i.id.clone()),
            title: incident.map(|i| i.title.clone()),
            severity: incident.map(|i| i.severity.as_str().to_string()),
            detected: incident.map(|i| i.detected.clone()),
            check: incident.map(|i| i.check.clone()),
            evidence: incident.map(|i| i.diagnosis.clone()).unwrap_or_default(),
            allowed: format!("{} on {}: {allowed}", action.kind(), action.target().id),
        };
        let target = crate::pr::manifest::Target { kind: kind.clone(), namespace: namespace.clone(), name: name.clone() };
        Ok((cfg, crate::pr::PrRequest { target, change: change.clone(), context }))
    }

    /// `replace_node`: the request goes to the webhook that holds the cloud's credentials.
    async fn replace_node(&self, action: &Action, incident: Option<&Incident>) -> Result<String, String> {
        let Action::ReplaceNode { node, context } = action else { return Err("not a node replacement".into()) };
        let Some(cfg) = &self.ws.policy.replace_node else {
            return Err("no `replace_node:` in AGENTS.md: name the webhook that replaces nodes".into());
        };
        let w = self.ws.policy.webhook(&cfg.webhook)?;
        let mut fields = serde_json::Map::new();
        fields.insert("node".into(), node.clone().into());
        fields.insert("context".into(), context.clone().into());
        fields.insert("reason".into(), incident.map_or_else(|| "drained and NotReady".to_string(), |i| i.title.clone()).into());
        let dead = self.mem.dead_letters();
        crate::actions::notify::request(w, "replace_node", fields, incident.map(|i| i.id.as_str()), &dead).await
    }

    /// `resize_volume`: the request goes to the webhook that holds the cloud's credentials.
    async fn resize_volume(&self, action: &Action, incident: Option<&Incident>) -> Result<String, String> {
        let Action::ResizeVolume { path, host } = action else { return Err("not a volume resize".into()) };
        let Some(cfg) = &self.ws.policy.resize_volume else {
            return Err("no `resize_volume:` in AGENTS.md: name the webhook that grows volumes".into());
        };
        let w = self.ws.policy.webhook(&cfg.webhook)?;
        let mut fields = serde_json::Map::new();
        fields.insert("path".into(), path.display().to_string().into());
        fields.insert("host".into(), host.clone().into());
        fields.insert("reason".into(), incident.map_or_else(|| "cleaning cannot bring the disk under its limit".to_string(), |i| i.title.clone()).into());
        let dead = self.mem.dead_letters();
        crate::actions::notify::request(w, "resize_volume", fields, incident.map(|i| i.id.as_str()), &dead).await
    }

    async fn open_pr(&self, action: &Action, incident: Option<&Incident>, allowed: &str) -> Result<String, String> {
        let (cfg, req) = self.pr_request(action, incident, allowed)?;
        crate::pr::open_pr(&cfg, &req).await.map(|o| o.describe())
    }

    /// Runs a mutating action behind the journal, then verifies by re-running
    /// the check. `allowed` is the policy decision that let it run, for
    /// actions that show it to people (a pull request's body).
    #[tracing::instrument(name = "act", skip_all, fields(action = %action.kind(), target = %action.target().id, incident.id = incident.map(|i| i.id.as_str()), mode = self.mode.as_str(), result = tracing::field::Empty))]
    pub(super) async fn execute(&mut self, action: &Action, incident: Option<&Incident>, spec: Option<&CheckSpec>, allowed: &str) -> Result<(ActionResult, String), RunError> {
        let target_of = incident.map(|i| fingerprint_target(&i.fingerprint).to_string());
        let service = spec.map(|s| s.name.clone()).or_else(|| incident.map(|i| i.check.clone())).unwrap_or_else(|| "nightshift".into());
        let about = incident;
        let incident = incident.map(|i| i.id.clone());
        let kind = action.kind();
        if !kind.is_mutating() {
            // Nothing to journal: an approval of it is simply done.
            if let Some(approval) = self.carrying.take() {
                self.close_approval(&approval)?;
            }
            let Action::Notify { severity, message, urgency } = action else { return Ok((ActionResult::Failed, "not a notification".into())) };
            let dead = self.mem.dead_letters();
            let kind = if incident.is_some() { actions::notify::Kind::Incident } else { actions::notify::Kind::Summary };
            let mut e = actions::notify::Envelope::new(kind, *severity, &service, message, incident.as_deref());
            e.evidence = about.map(|i| i.evidence.clone());
            e.urgency = urgency.unwrap_or(actions::notify::Urgency::of(*severity));
            return Ok(match actions::notify::send_envelope(&self.ws.policy.webhooks, &e, &dead).await.0 {
                Ok(o) => (ActionResult::Ok, o),
                Err(e) => (ActionResult::Failed, e),
            });
        }
        let id = new_id("j-");
        self.mem.journal(&JournalEntry::Begin { id: id.clone(), at: now(), action: action.clone(), incident, check: spec.map(|s| s.name.clone()) })?;
        // An approval is done from here on: a crash now is reconciled from the journal, never repeated.
        if let Some(approval) = self.carrying.take() {
            let still = self.mem.update_approvals(|list| match list.iter_mut().find(|a| a.id == approval) {
                Some(a) if matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved) => {
                    a.status = ApprovalStatus::Done;
                    true
                }
                _ => false,
            })?;
            if !still {
                let detail = format!("approval {approval} was aborted before the action started; not carried out");
                self.mem.journal(&JournalEntry::End { id, at: now(), result: ActionResult::Aborted, detail: detail.clone() })?;
                return Ok((ActionResult::Aborted, detail));
            }
        }
        let ran = self.run_action(action, about, allowed).await;
        let (mut result, mut outcome) = match ran {
            Ok(o) => (ActionResult::Ok, o),
            Err(e) => (ActionResult::Failed, e),
        };
        // Containment and proposals check their own effect; the check keeps failing after them.
        if result == ActionResult::Ok
            && kind.heals()
            && let Some(spec) = spec
        {
            let (healthy, summary) = self.verify(spec, target_of.as_deref()).await;
            if healthy && !spec.verify.is_empty() {
                // The check passes: then the other declared steps, each named in the outcome.
                let (all, steps) = self.verify_steps(spec).await;
                outcome = format!("{outcome}; verified: status: {summary}; {}", steps.join("; "));
                if !all {
                    result = ActionResult::Failed;
                }
            } else if healthy {
                outcome = format!("{outcome}; verified: {summary}");
            } else {
                result = ActionResult::Failed;
                outcome = format!("{outcome}; verify: still failing: {summary}");
            }
        }
        tracing::Span::current().record("result", result.as_str());
        self.state.record(kind, &action.rate_key(), now(), result);
        // Ended by `record`, once the audit, the note and the state hold it.
        self.unended = Some(super::JournalEnd { id, result, detail: outcome.clone() });
        Ok((result, outcome))
    }

    /// Carries the action out. `incident` and `allowed` feed the actions that
    /// tell people why (a pull request's body, a node replacement's reason).
    pub(super) async fn run_action(&self, action: &Action, incident: Option<&Incident>, allowed: &str) -> Result<String, String> {
        match action {
            Action::CleanLogs { root, .. } if !self.ws.policy.clean_roots.iter().any(|r| r == root) => Err(format!("{} is not one of AGENTS.md's clean_roots", root.display())),
            Action::CleanLogs { root, host: Some(h) } => actions::host::clean_logs(&self.ctx, Some(h), root, &self.ws.policy.clean_logs, true).await,
            Action::RestartService { unit, host } => actions::host::restart_service(&self.ctx, host.as_deref(), unit).await,
            Action::RenewCert { renew, reload, .. } => {
                let renewed = actions::command::run_declared(&self.ws.policy.commands, renew, &self.ws.root).await?;
                match reload {
                    Some(r) => Ok(format!("{renewed}; {}", actions::command::run_declared(&self.ws.policy.commands, r, &self.ws.root).await?)),
                    None => Ok(renewed),
                }
            }
            Action::CleanLogs { root, host: None } => {
                let (root, settings) = (root.clone(), self.ws.policy.clean_logs.clone());
                let done =
                    tokio::task::spawn_blocking(move || actions::clean_logs::execute(&root, &settings, std::time::SystemTime::now())).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
                let (_, done) = done;
                if done.errors.is_empty() { Ok(done.describe()) } else { Err(done.describe()) }
            }
            Action::RestartProcess { command, .. } | Action::RunCommand { command } => actions::command::run_declared(&self.ws.policy.commands, command, &self.ws.root).await,
            Action::SendWebhook { webhook, message } => {
                let w = self.ws.policy.webhook(webhook)?;
                let dead = self.mem.dead_letters();
                actions::notify::deliver(&[w], crate::severity::Severity::Warning, "nightshift", message, None, &dead).await
            }
            Action::Notify { .. } => Err("notify is not run here".into()),
            Action::OpenPr { .. } => self.open_pr(action, incident, allowed).await,
            Action::ReplaceNode { .. } => self.replace_node(action, incident).await,
            Action::ResizeVolume { .. } => self.resize_volume(action, incident).await,
            Action::Failover { namespace, service, to, from, recover, context } => {
                let client = self.ctx.kube.get(context.as_deref()).await?;
                let switched = crate::actions::kube::switch_service(&client, namespace, service, to, KUBE_VERIFY).await?;
                if !*recover {
                    return Ok(format!("{switched}; the recovery of {from} is left to its own checks (recover_primary: false)"));
                }
                // The recovery is an action of its own (`recover_primary`): gated, journaled, counted.
                Ok(switched)
            }
            Action::Failback { namespace, service, to, context, .. } => {
                let client = self.ctx.kube.get(context.as_deref()).await?;
                crate::actions::kube::switch_service(&client, namespace, service, to, KUBE_VERIFY).await
            }
            Action::RestartPod { .. }
            | Action::RolloutRestart { .. }
            | Action::RolloutUndo { .. }
            | Action::Scale { .. }
            | Action::CordonNode { .. }
            | Action::DrainNode { .. }
            | Action::RaiseMemoryLimit { .. } => {
                let client = self.ctx.kube.get(action.context()).await?;
                use crate::actions::kube as kube_actions;
                match action {
                    Action::RestartPod { namespace, pod, .. } => kube_actions::restart_pod(&client, namespace, pod).await,
                    Action::RolloutRestart { namespace, deployment, .. } => kube_actions::rollout_restart(&client, namespace, deployment).await,
                    Action::RolloutUndo { namespace, deployment, .. } => kube_actions::rollout_undo(&client, namespace, deployment).await,
                    Action::Scale { namespace, deployment, replicas, .. } => kube_actions::scale(&client, namespace, deployment, *replicas, KUBE_VERIFY).await,
                    Action::CordonNode { node, .. } => kube_actions::cordon(&client, node).await,
                    Action::DrainNode { node, .. } => kube_actions::drain(&client, node, kube_actions::DRAIN_TIMEOUT).await,
                    Action::RaiseMemoryLimit { namespace, deployment, kind, container, from, to, .. } => kube_actions::memory_proposal(&client, namespace, kind, deployment, container, from, to).await,
                    _ => Err(format!("{} is not a Kubernetes action", action.kind())),
                }
            }
        }
    }

    /// After a failover: the primary's recovery (a rollback of a rollout that
    /// never completed, else a rolling restart) as an action of its own, with
    /// its own decision, journal entry and rate accounting. The switch stands
    /// whatever the recovery does: the secondary serves meanwhile. The check
    /// says when the incident is over, so the recovery is not verified here.
    pub(super) async fn recover_primary(&mut self, check: Option<&CheckSpec>, level: crate::severity::Level, inc: &mut Incident, failover: &Action) -> Result<Option<super::ActionReport>, RunError> {
        let Action::Failover { namespace, from, recover: true, context, .. } = failover else { return Ok(None) };
        let undo = match self.ctx.kube.get(context.as_deref()).await {
            Ok(client) => crate::actions::kube::recovery_is_undo(&client, namespace, from).await,
            Err(e) => Err(e),
        };
        let undo = match undo {
            Ok(u) => u,
            Err(e) => {
                inc.actions.push(format!("{} the recovery of {} could not be planned: {}", crate::duration::timestamp(now()), code(from), code(&e)));
                return Ok(None);
            }
        };
        let action = if undo {
            Action::RolloutUndo { namespace: namespace.clone(), deployment: from.clone(), context: context.clone() }
        } else {
            Action::RolloutRestart { namespace: namespace.clone(), deployment: from.clone(), replicas: None, context: context.clone() }
        };
        let action = self.measure(action).await;
        let (subject, verdict) = self.gate(&action, check.map(|c| c.name.as_str()), level, None, 0);
        let (result, outcome, by, ms) = match verdict.decision {
            crate::policy::Decision::Auto if self.mode == crate::policy::Mode::DryRun => (ActionResult::DryRun, format!("dry-run: would {}", action.describe()), "policy", 0),
            crate::policy::Decision::Auto => {
                let started = std::time::Instant::now();
                let (r, mut o) = self.execute(&action, Some(&*inc), None, &format!("recovery after failover: {}", verdict.reason)).await?;
                let journal = self.unended.as_ref().map(|e| e.id.clone());
                for said in self.earn(&subject, super::trust::Run::Policy, false, r, journal.as_deref()) {
                    o = format!("{o}; {said}");
                }
                (r, o, "policy", started.elapsed().as_millis() as u64)
            }
            // Too far-reaching for the rule (its blast radius), or a confirm rule: a human approves it.
            crate::policy::Decision::Confirm if let Some(spec) = check => {
                let a = self.pending(spec, inc, &action, &verdict, crate::memory::approvals::ApprovalKind::Confirm, self.ws.policy.approval_ttl)?;
                (ActionResult::Pending, format!("needs approval: nightshift approve {} (or abort {}); expires {}", a.id, a.id, crate::duration::timestamp(a.deadline)), "-", 0)
            }
            other => (ActionResult::Denied, format!("not started: the policy decides {other} ({}); a human recovers {from}", verdict.reason), "-", 0),
        };
        self.record(Some(inc), check.map(|c| c.name.as_str()), &action, &verdict, by.into(), result, outcome, ms).map(Some)
    }

    /// The declared verification steps after the check itself (connectivity,
    /// performance, dependencies), each by running the checks it names:
    /// whether all pass, and one line per step.
    #[tracing::instrument(name = "verify-steps", skip_all, fields(check = %spec.name))]
    pub(super) async fn verify_steps(&self, spec: &CheckSpec) -> (bool, Vec<String>) {
        let mut all = true;
        let mut lines = Vec::new();
        for (step, names) in spec.verify.steps() {
            if names.is_empty() {
                continue;
            }
            let mut failing = Vec::new();
            let mut passing = Vec::new();
            for name in names {
                let Some(other) = self.ws.heartbeat.checks.iter().find(|c| &c.name == name) else {
                    failing.push(format!("{name}: not a declared check"));
                    continue;
                };
                let r = checks::run_one(other, &self.ctx).await;
                if r.status.is_bad() {
                    failing.push(format!("{name}: {}", r.summary));
                } else {
                    passing.push(format!("{name}: {}", r.summary));
                }
            }
            if failing.is_empty() {
                lines.push(format!("{step}: ok ({})", passing.join(", ")));
            } else {
                all = false;
                lines.push(format!("{step}: FAILING ({})", failing.join(", ")));
            }
        }
        (all, lines)
    }

    /// Re-runs the check, a few times over about two seconds for things that take a moment to come up.
    #[tracing::instrument(name = "verify", skip_all, fields(check = %spec.name))]
    pub(super) async fn verify(&self, spec: &CheckSpec, target: Option<&str>) -> (bool, String) {
        if spec.probe.is_kubernetes() {
            return self.verify_settled(spec, target).await;
        }
        let mut last = String::new();
        for wait in [0u64, 300, 700, 1000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let r = checks::run_one(spec, &self.ctx).await;
            if healthy_for(&r, target) {
                return (true, r.summary);
            }
            last = r.summary;
        }
        (false, last)
    }

    /// How long a Kubernetes repair of `target` may take to settle: the
    /// check's `recovery_timeout`, else the Deployment's own
    /// `progressDeadlineSeconds` (when the target is a Deployment), else
    /// `RECOVERY_TIMEOUT` (the seed's 300 s).
    pub(super) async fn recovery_timeout(&self, spec: &CheckSpec, target: Option<&str>) -> Duration {
        if let Some(t) = spec.probe.recovery_timeout() {
            return t;
        }
        let deployment = target.and_then(|t| {
            let mut parts = t.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(ns), Some("deployment"), Some(name)) => Some((ns.to_string(), name.to_string())),
                _ => None,
            }
        });
        let Some((ns, name)) = deployment else { return RECOVERY_TIMEOUT };
        let Ok(client) = self.ctx.kube.get(spec.probe.kube_context()).await else { return RECOVERY_TIMEOUT };
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client, &ns);
        match api.get_opt(&name).await {
            Ok(Some(d)) => d.spec.and_then(|s| s.progress_deadline_seconds).filter(|s| *s > 0).map_or(RECOVERY_TIMEOUT, |s| Duration::from_secs(s as u64)),
            _ => RECOVERY_TIMEOUT,
        }
    }

    /// Kubernetes repairs take effect through controllers: the target is
    /// healthy when it is settled (its pods ready, its rollout complete) and
    /// unhealthy on two polls in a row; a target that keeps settling fails
    /// after its recovery timeout (see `recovery_timeout`).
    async fn verify_settled(&self, spec: &CheckSpec, target: Option<&str>) -> (bool, String) {
        let timeout = self.recovery_timeout(spec, target).await;
        let started = std::time::Instant::now();
        let (mut good, mut bad) = (0, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        loop {
            let r = checks::run_one(spec, &self.ctx).await;
            let settling = target.is_some_and(|t| r.evidence.get("settling").and_then(|v| v.as_array()).is_some_and(|a| a.iter().any(|x| x.as_str() == Some(t))));
            let last = match target.and_then(|t| r.series.iter().find(|s| s.target == t)) {
                Some(s) => s.summary.clone(),
                None if settling => format!("{} is still settling", target.unwrap_or("")),
                None => r.summary.clone(),
            };
            if r.status == checks::Status::Error {
                (good, bad) = (0, bad + 1);
            } else if settling {
                (good, bad) = (0, 0);
            } else if healthy_for(&r, target) {
                (good, bad) = (good + 1, 0);
            } else {
                (good, bad) = (0, bad + 1);
            }
            if good >= 2 {
                return (true, last);
            }
            if bad >= 2 {
                return (false, last);
            }
            if started.elapsed() >= timeout {
                return (false, format!("not settled within {}: {last}", crate::duration::format(timeout)));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// How long a scale or a Service switch may take to show its effect.
pub const KUBE_VERIFY: Duration = Duration::from_secs(90);

/// How long a Kubernetes repair may take to settle when neither the check
/// (`recovery_timeout:`) nor the Deployment (`progressDeadlineSeconds`) says:
/// the seed's `recovery_timeout` default.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(300);
