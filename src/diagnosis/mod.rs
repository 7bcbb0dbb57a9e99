//! Deterministic runbooks: for a failing check, the problem class, the stable
//! target of its fingerprint, the diagnosis steps with evidence, prevention
//! advice, and the ordered repair plan. No model, no network.

pub mod disk;
pub mod kube;

use std::fs;
use std::path::Path;

use crate::actions::Action;
use crate::checks::spec::CheckSpec;
use crate::checks::{CheckResult, ProbeSpec, ProcessRef, Status, human_bytes};
use crate::markdown::code;
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// Problem class: disk-full, http-down, cert-expiring, …
    pub class: &'static str,
    pub title: String,
    pub steps: Vec<String>,
    pub prevention: Vec<String>,
    /// Repairs to try in order; the next is tried when one does not heal.
    pub plan: Vec<Action>,
    /// Whether the model may investigate when the plan is empty (not for a
    /// cascade: the cause is known and restarting dependants is wrong).
    pub investigate: bool,
}

impl Diagnosis {
    pub fn fingerprint(&self, check: &str, target: &str) -> String {
        format!("{check}:{}:{target}", self.class)
    }
}

pub fn diagnose(spec: &CheckSpec, result: &CheckResult, policy: &Policy) -> Diagnosis {
    if result.status == Status::Error {
        return Diagnosis {
            investigate: true,
            class: "check-error",
            title: format!("Check {} could not run", spec.name),
            steps: vec![format!("the check itself failed, so nothing is known about {}: {}", code(&result.target), code(&result.summary))],
            prevention: vec!["fix the check or what it needs (paths, permissions, tools) so it can watch its target again".into()],
            plan: Vec::new(),
        };
    }
    let repair = spec.repair.clone();
    let run_repair = |plan: &mut Vec<Action>| {
        if let Some(cmd) = &repair {
            plan.push(Action::RunCommand { command: cmd.clone() });
        }
    };
    let mut d = match &spec.probe {
        ProbeSpec::Disk { path, .. } => disk(path, spec.host.as_deref(), result),
        ProbeSpec::Http { url, .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            Diagnosis {
                investigate: true,
                class: "http-down",
                title: format!("{} is unhealthy ({})", url, spec.name),
                steps: vec![format!("GET {}: {}", code(url), code(&result.summary))],
                prevention: vec!["add a readiness endpoint that checks dependencies without failing on them (see the cascade seed)".into()],
                plan,
            }
        }
        ProbeSpec::Tcp { address, .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            Diagnosis {
                investigate: true,
                class: "tcp-down",
                title: format!("{address} refuses connections ({})", spec.name),
                steps: vec![format!("connect to {}: {}", code(address), code(&result.summary))],
                prevention: vec!["supervise the listener (systemd Restart=on-failure) so it comes back by itself".into()],
                plan,
            }
        }
        ProbeSpec::Exec { .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            Diagnosis {
                investigate: true,
                class: "exec-failed",
                title: format!("Check command failed ({})", spec.name),
                steps: vec![format!("{} → {}", code(&result.target), code(&result.summary))],
                prevention: vec!["make the command's failure message name its cause; it is the evidence the next on-call reads".into()],
                plan,
            }
        }
        ProbeSpec::Tls { renew, reload, .. } => {
            let (class, title, meaning, renewable) = crate::checks::tls::explain(result);
            let mut plan = Vec::new();
            if let Some(r) = renew.as_ref().filter(|_| renewable) {
                plan.push(Action::RenewCert { certificate: result.target.clone(), renew: r.clone(), reload: reload.clone() });
            }
            run_repair(&mut plan);
            let ev = |k: &str| result.evidence.get(k).and_then(|v| v.as_str()).unwrap_or("unknown").to_string();
            let list = |k: &str| result.evidence.get(k).and_then(|v| v.as_array()).map(|c| c.iter().filter_map(|x| x.as_str()).map(code).collect::<Vec<_>>());
            let mut steps = vec![meaning, code(&result.summary)];
            if class == "cert-name-mismatch" {
                steps.push(format!("names the certificate covers: {}", list("dns_names").filter(|n| !n.is_empty()).map_or("none (clients ignore the subject's CN)".into(), |n| n.join(", "))));
            }
            steps.push(format!("issuer: {}", code(&ev("issuer"))));
            steps.push(format!("expires: {}", code(&ev("not_after"))));
            steps.push(format!("chain served: {}", list("chain").map_or("unknown".into(), |c| c.join(" ← "))));
            if let Some(by) = result.evidence.get("trusted_by").and_then(|v| v.as_str()) {
                steps.push(format!("trusted roots: {}", code(by)));
            }
            for also in list("also").unwrap_or_default() {
                steps.push(format!("also: {also}"));
            }
            if renew.is_some() && !renewable {
                steps.push("renewal (`renew:`) is not planned: it would serve the same kind of certificate the same way".into());
            }
            Diagnosis {
                investigate: true,
                class,
                title: format!("{title} ({})", spec.name),
                steps,
                prevention: vec![match class {
                    "cert-name-mismatch" => "check the served certificate's names after every configuration change (a tls check per name, with server_name)".into(),
                    "cert-incomplete-chain" => "deploy the full chain file the CA issues (fullchain.pem) and test with a client that does not fetch intermediates".into(),
                    "cert-self-signed" | "cert-unknown-issuer" => "issue certificates from a CA the clients trust, by automation (ACME), and keep placeholders out of production configuration".into(),
                    _ => "automate renewal (ACME) and alert at 30 days, act at 7".into(),
                }],
                plan,
            }
        }
        ProbeSpec::Process { by } => {
            let process = match by {
                ProcessRef::Name(n) => n.clone(),
                ProcessRef::Pidfile(p) => p.display().to_string(),
            };
            let plan = repair.iter().map(|c| Action::RestartProcess { process: process.clone(), command: c.clone() }).collect();
            let (class, steps) = match crate::checks::process::explain(result) {
                Some(("pid-reused", steps)) => ("pid-reused", steps),
                Some((_, steps)) => ("process-down", steps),
                None => ("process-down", vec![code(&result.summary)]),
            };
            Diagnosis {
                investigate: true,
                class,
                title: format!("{process} is not running{} ({})", if class == "pid-reused" { ": its pidfile names another program's pid" } else { "" }, spec.name),
                steps,
                prevention: vec!["run the process under a supervisor that restarts it and keeps its last exit status".into()],
                plan,
            }
        }
        ProbeSpec::Backup { path, .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            let problem = result.evidence.get("problem").and_then(|v| v.as_str()).unwrap_or("corrupt");
            let (class, cause) = match problem {
                "missing" => ("backup-missing", "no file at all: the backup job did not run, or writes somewhere else"),
                "stale" => ("backup-stale", "no new file: the backup job has not run (or not succeeded) since"),
                "small" => ("backup-small", "the file is too small: the job probably failed midway"),
                _ => ("backup-corrupt", "the file does not pass its integrity test: the job failed midway or the file was damaged"),
            };
            Diagnosis {
                investigate: true,
                class,
                title: format!("Backup check failed: {} ({})", path.display(), spec.name),
                steps: vec![code(&result.summary), format!("likely cause: {cause}")],
                prevention: vec!["alert on the backup job's own exit status, and restore a backup on a schedule to prove it".into()],
                plan,
            }
        }
        ProbeSpec::Prometheus { query, .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            Diagnosis {
                investigate: true,
                class: if result.series.is_empty() && result.evidence.get("series_count").and_then(|v| v.as_u64()) == Some(0) { "metric-absent" } else { "metric-threshold" },
                title: format!("{} ({})", result.target, spec.name),
                steps: vec![format!("query {}: {}", code(query), code(&result.summary))],
                prevention: vec!["turn a recurring threshold breach into a Prometheus alert rule with a runbook link".into()],
                plan,
            }
        }
        ProbeSpec::Service { by, start } => {
            let mut plan = Vec::new();
            let what = match by {
                crate::checks::ServiceRef::Unit(u) => {
                    plan.push(Action::RestartService { unit: u.clone(), host: spec.host.clone() });
                    format!("service {u}")
                }
                crate::checks::ServiceRef::Pidfile(p) => {
                    // Started again through its declared command; no pid is ever signalled.
                    if let Some(s) = start {
                        plan.push(Action::RestartProcess { process: result.target.clone(), command: s.command.clone() });
                    }
                    format!("the process of {}", p.display())
                }
            };
            run_repair(&mut plan);
            let (class, mut steps) = match crate::checks::process::explain(result) {
                Some(("pid-reused", steps)) => ("pid-reused", steps),
                Some((_, steps)) => ("service-down", steps),
                None => ("service-down", vec![code(&result.summary)]),
            };
            if matches!(by, crate::checks::ServiceRef::Pidfile(_)) && start.is_none() {
                steps.push("no `start:` is declared for this pidfile service: nightshift does not start it, and never signals a pid nobody proved is the service".into());
            }
            Diagnosis {
                investigate: true,
                class,
                title: format!(
                    "{what} is down{}{} ({})",
                    spec.host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default(),
                    if class == "pid-reused" { ": its pidfile names another program's pid" } else { "" },
                    spec.name
                ),
                steps,
                prevention: vec!["let the service manager restart it (systemd Restart=on-failure) and alert on restart loops".into()],
                plan,
            }
        }
        ProbeSpec::K8sPods { scope, .. } => {
            let mut d = kube::pods(result, scope.context.as_deref());
            if policy.repository.is_some() {
                as_pull_requests(&mut d.plan);
            }
            d
        }
        ProbeSpec::K8sDeployments { scope, .. } => kube::deployment(result, scope.context.as_deref()),
        ProbeSpec::K8sNodes { scope } => kube::node(result, scope.context.as_deref()),
        ProbeSpec::K8sServices { .. } => kube::service(result),
        ProbeSpec::K8sScaling(s) => kube::scaling(result, s),
        ProbeSpec::K8sFailover(s) => kube::failover(result, s),
        ProbeSpec::K8sProbe(s) => kube::probe(result, s),
        ProbeSpec::Dependency { target, dependants, .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            Diagnosis {
                investigate: true,
                class: "dependency-down",
                title: format!("Dependency {} is down ({})", target.describe(), spec.name),
                steps: vec![code(&result.summary), format!("its dependants (pods matching {}) fail with it; they are not restarted", code(dependants))],
                prevention: vec!["make dependants degrade instead of failing readiness when a shared dependency is down (see the cascade seed)".into()],
                plan,
            }
        }
        ProbeSpec::Memory { .. } | ProbeSpec::Load { .. } | ProbeSpec::Cpu { .. } => {
            let mut plan = Vec::new();
            run_repair(&mut plan);
            let class = match &spec.probe {
                ProbeSpec::Memory { .. } => "memory-low",
                ProbeSpec::Load { .. } => "load-high",
                _ => "cpu-high",
            };
            let mut steps = vec![code(&result.summary)];
            let top = top_memory(5);
            if !top.is_empty() {
                steps.push(format!("largest processes by memory: {}", top.join(", ")));
            }
            Diagnosis {
                investigate: true,
                class,
                title: format!("{} on this host ({})", result.summary.split(" (").next().unwrap_or(&result.summary), spec.name),
                steps,
                prevention: vec!["set memory and CPU limits on the services (systemd MemoryMax=, CPUQuota=) so one cannot starve the host".into()],
                plan,
            }
        }
    };
    // The strategy checks say themselves why they plan nothing (at the maximum, waiting, an unexpected selector).
    if d.plan.is_empty() && d.class != "disk-full" && d.class != "inodes-full" && !matches!(spec.probe, ProbeSpec::K8sScaling(_) | ProbeSpec::K8sFailover(_) | ProbeSpec::K8sProbe(_)) {
        d.steps.push("no repair is declared for this check (`repair:` in HEARTBEAT.md naming a command of AGENTS.md): a human must act".into());
    }
    d
}

/// What an incident waits for when nothing is to be done now and no human
/// is needed yet (a failed-over Service while its primary recovers). Only
/// the strategy checks say so; their evidence is nightshift's own reading
/// of the cluster, never text from an alert or a log.
pub fn waiting(spec: &CheckSpec, result: &CheckResult) -> Option<String> {
    match &spec.probe {
        ProbeSpec::K8sFailover(_) => result.evidence.get("waiting").and_then(|v| v.as_str()).map(str::to_string),
        _ => None,
    }
}

/// A full disk (here or on a host): the class and the title. The findings
/// and the plan come from `disk::look` and `disk::findings` (the pipeline runs
/// the listing, which is async and, on a host, one SSH round trip): nothing is
/// planned before the listing shows what would help.
fn disk(path: &Path, host: Option<&str>, result: &CheckResult) -> Diagnosis {
    Diagnosis {
        investigate: true,
        class: if result.summary.contains("inodes") { "inodes-full" } else { "disk-full" },
        title: format!("Disk almost full: {}{}", path.display(), host.map(|h| format!(" on {h}")).unwrap_or_default()),
        steps: vec![format!("usage: {}", code(&result.summary))],
        prevention: vec![
            "rotate and compress logs daily (logrotate with compress and maxage)".into(),
            "alert at 70% so there is time before the limit".into(),
            "disable or size-limit core dumps (systemd-coredump MaxUse=)".into(),
        ],
        plan: Vec::new(),
    }
}

/// The `n` processes with the largest resident memory, as `name (pid) size`.
pub fn top_memory(n: usize) -> Vec<String> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    let mut procs: Vec<(u64, String)> = dir
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let name = status.lines().find_map(|l| l.strip_prefix("Name:"))?.trim().to_string();
            let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some((kb * 1024, format!("{} ({pid}) {}", code(&name), human_bytes(kb * 1024))))
        })
        .collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.0));
    procs.into_iter().take(n).map(|(_, s)| s).collect()
}

/// With an infrastructure repository configured, a memory-limit proposal
/// becomes a pull request that raises the limit in the workload's manifest
/// (the manifest is what the cluster is deployed from; the factor applies to
/// the value written there).
fn as_pull_requests(plan: &mut [Action]) {
    for a in plan.iter_mut() {
        if let Action::RaiseMemoryLimit { namespace, deployment, kind, container, .. } = a {
            *a = Action::OpenPr {
                namespace: namespace.clone(),
                kind: kind.clone(),
                name: deployment.clone(),
                change: crate::pr::PrChange::RaiseMemory { container: Some(container.clone()).filter(|c| !c.is_empty()), factor: None },
            };
        }
    }
}
