//! Kubernetes in the pass: the evidence a diagnosis reads from the cluster
//! (events, logs, rollout history), and cascades: dependants of a declared
//! dependency that is down are one incident naming the dependency, and are
//! not restarted.

use serde_json::{Map, Value};

use super::{DownDependency, Runner};
use crate::actions::Action;
use crate::checks::spec::CheckSpec;
use crate::checks::{CheckResult, ProbeSpec, Status};
use crate::diagnosis::Diagnosis;
use crate::markdown::code;

impl Runner<'_> {
    /// The declared dependencies that are down: failing in this pass, or
    /// failing when they last ran if they were not due.
    pub(super) fn down_dependencies(&self, due: &[&CheckSpec], results: &[CheckResult]) -> Vec<DownDependency> {
        let mut out = Vec::new();
        for spec in &self.ws.heartbeat.checks {
            let ProbeSpec::Dependency { target, dependants, scope } = &spec.probe else { continue };
            let now = due.iter().zip(results).find(|(s, _)| s.name == spec.name).map(|(_, r)| (r.status, r.summary.clone()));
            let (status, summary) = match now {
                Some(x) => x,
                None => match self.state.checks.get(&spec.name) {
                    Some(s) => (s.status, s.summary.clone()),
                    None => continue,
                },
            };
            if status == Status::Failing {
                out.push(DownDependency { check: spec.name.clone(), target: target.describe(), dependants: dependants.clone(), namespace: scope.namespace.clone(), summary });
            }
        }
        out
    }

    /// Splits a pods check's failing workloads into cascades (one result per
    /// down dependency whose dependants they are) and the rest.
    pub(super) fn cascades(&self, spec: &CheckSpec, failing: Vec<CheckResult>) -> (Vec<CheckResult>, Vec<CheckResult>) {
        if !matches!(spec.probe, ProbeSpec::K8sPods { .. } | ProbeSpec::K8sProbe(_)) || self.down.is_empty() {
            return (Vec::new(), failing);
        }
        let mut groups: Vec<(DownDependency, Vec<CheckResult>)> = Vec::new();
        let mut rest = Vec::new();
        for r in failing {
            let labels: std::collections::BTreeMap<String, String> = r.evidence.get("labels").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
            let ns = r.evidence.get("namespace").and_then(|v| v.as_str()).unwrap_or("");
            let dep = self.down.iter().find(|d| d.namespace.as_deref().is_none_or(|n| n == ns) && crate::k8s::selector_matches(&d.dependants, &labels));
            match dep {
                Some(d) => match groups.iter_mut().find(|(g, _)| g.check == d.check) {
                    Some((_, list)) => list.push(r),
                    None => groups.push((d.clone(), vec![r])),
                },
                None => rest.push(r),
            }
        }
        let cascades = groups
            .into_iter()
            .map(|(dep, list)| {
                // A probe's series is one pod: the cascade names its workload, once.
                let mut workloads: Vec<String> = Vec::new();
                for r in &list {
                    let w = r.evidence.get("workload_target").and_then(|v| v.as_str()).map_or_else(|| r.target.clone(), str::to_string);
                    if !workloads.contains(&w) {
                        workloads.push(w);
                    }
                }
                let pods: usize = list.iter().map(|r| r.evidence.get("pods").and_then(|v| v.as_array()).map_or(0, Vec::len)).sum();
                let mut evidence = Map::new();
                evidence.insert("cascade".into(), Value::String(dep.check.clone()));
                evidence.insert("dependency".into(), Value::String(dep.target.clone()));
                evidence.insert("dependency_status".into(), Value::String(dep.summary.clone()));
                evidence.insert("workloads".into(), workloads.clone().into());
                evidence.insert("pods".into(), list.iter().flat_map(|r| r.evidence.get("pods").and_then(|v| v.as_array()).cloned().unwrap_or_default()).collect::<Vec<_>>().into());
                let summary = format!("{pods} pod(s) in {} workload(s) fail because dependency {} is down: {}", workloads.len(), dep.target, workloads.join(", "));
                CheckResult { target: format!("cascade/{}", dep.check), status: Status::Failing, summary, evidence, series: Vec::new(), ..list[0].clone() }
            })
            .collect();
        (cascades, rest)
    }

    /// Adds what the cluster says (events, logs, revisions) to a Kubernetes diagnosis.
    pub(super) async fn kube_findings(&self, spec: &CheckSpec, result: &CheckResult, diag: &mut Diagnosis) {
        let context = spec.probe.kube_context();
        let wants = match (&spec.probe, diag.class) {
            (ProbeSpec::K8sPods { .. }, "cascade") => false,
            (ProbeSpec::K8sPods { .. }, _) | (ProbeSpec::K8sDeployments { .. }, "rollout-stuck") => true,
            (ProbeSpec::K8sNodes { .. }, "node-not-ready") => true,
            (ProbeSpec::K8sServices { .. }, _) => true,
            _ => false,
        };
        if !wants || result.status == Status::Error {
            return;
        }
        let client = match self.ctx.kube.get(context).await {
            Ok(c) => c,
            Err(e) => {
                diag.steps.push(format!("could not gather evidence from the cluster: {}", code(&e)));
                return;
            }
        };
        match &spec.probe {
            ProbeSpec::K8sPods { .. } => crate::diagnosis::kube::pod_findings(&client, result, diag).await,
            ProbeSpec::K8sServices { .. } => crate::diagnosis::kube::service_findings(&client, result, diag).await,
            ProbeSpec::K8sNodes { .. } => {
                let after = self.ws.policy.replace_node.as_ref().map(|r| r.after);
                crate::diagnosis::kube::containment(&client, result, diag, after, context).await;
            }
            _ => crate::diagnosis::kube::rollout_findings(&client, result, diag).await,
        }
    }

    /// Fills in what a Kubernetes action touches, read from the cluster
    /// before the gate judges it: a rollout restart's replicas, the pods a
    /// drain evicts. Unreadable, the action is left as planned (radius 1 for
    /// the gate; the action itself reads the cluster again when it runs).
    pub(super) async fn measure(&self, action: Action) -> Action {
        match action {
            Action::RolloutRestart { namespace, deployment, replicas: None, context } => {
                let replicas = match self.ctx.kube.get(context.as_deref()).await {
                    Ok(client) => kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, &namespace)
                        .get_opt(&deployment)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|d| d.spec.and_then(|s| s.replicas).or(Some(1))),
                    Err(_) => None,
                };
                Action::RolloutRestart { namespace, deployment, replicas, context }
            }
            Action::DrainNode { node, pods: None, context } => {
                let pods = match self.ctx.kube.get(context.as_deref()).await {
                    Ok(client) => {
                        let api = kube::Api::<k8s_openapi::api::core::v1::Pod>::all(client);
                        api.list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"))).await.ok().map(|l| crate::actions::kube::drainable(l.items).0.len() as u32)
                    }
                    Err(_) => None,
                };
                Action::DrainNode { node, pods, context }
            }
            other => other,
        }
    }

    /// The instances the restarts planned in this pass touch together: the
    /// plans of every failing Kubernetes target past its threshold, as the
    /// runbooks make them (cascades left out: their dependants are not
    /// restarted). Only the Kubernetes runbooks are asked: they read
    /// nothing, where the disk runbook scans a filesystem.
    pub(super) fn restarts_planned(&self, due: &[&crate::checks::spec::CheckSpec], results: &[CheckResult]) -> u32 {
        let mut total = 0;
        for (spec, result) in due.iter().zip(results) {
            if !result.status.is_bad() || result.status == Status::Error || !spec.probe.is_kubernetes() {
                continue;
            }
            let failures = self.state.checks.get(&spec.name).map_or(0, |s| s.consecutive_failures) + 1;
            if failures < spec.threshold {
                continue;
            }
            let series: Vec<CheckResult> = result
                .series
                .iter()
                .filter(|s| s.status.is_bad())
                .map(|s| CheckResult { target: s.target.clone(), status: s.status, summary: s.summary.clone(), evidence: s.evidence.clone(), series: Vec::new(), ..result.clone() })
                .collect();
            let (_, rest) = self.cascades(spec, series);
            for r in &rest {
                let d = crate::diagnosis::diagnose(spec, r, &self.ws.policy);
                total += d.plan.iter().filter(|a| a.is_restart()).map(Action::blast_radius).sum::<u32>();
            }
        }
        total
    }
}
