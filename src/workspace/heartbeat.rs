//! The `heartbeat` block of HEARTBEAT.md: what to watch, where, and how often.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::problems::Problems;
use super::yaml::{MapReader, Node};
use crate::checks::spec::{CheckSpec, Verification};
use crate::checks::{ProbeSpec, ProcessRef, TlsSource};
use crate::duration::HumanDuration;
use crate::schedule::{Cron, Schedule};
use crate::severity::{Level, Severity};
use crate::ssh::HostSpec;

/// Reads an optional `level:` (default L3), reporting a bad one.
pub fn level(m: &MapReader<'_>, problems: &mut Problems) -> Level {
    let Some(s) = m.str("level", problems) else { return Level::L3 };
    Level::parse(&s).unwrap_or_else(|| {
        problems.push(m.key_line("level"), format!("{}: unknown level `{s}`", m.what), "use L1 (monitor), L2 (suggest and wait), L3 (act then notify) or L4 (act silently)");
        Level::L3
    })
}

#[derive(Debug, Clone, Default)]
pub struct HeartbeatSpec {
    pub timezone: chrono_tz::Tz,
    pub hosts: Vec<HostSpec>,
    pub checks: Vec<CheckSpec>,
}

const TOP_KEYS: &[&str] = &["timezone", "hosts", "checks"];
const COMMON_KEYS: &[&str] = &["name", "kind", "every", "at", "threshold", "cooldown", "host", "level", "severity", "repair", "verify"];
const HOST_KEYS: &[&str] = &["name", "address", "port", "user", "key_file", "known_hosts", "jump", "tags"];

/// Kinds this build runs, with the fields each accepts.
const KINDS: &[(&str, &[&str])] = &[
    ("disk", &["path", "max_used_percent", "max_inodes_percent", "forecast"]),
    ("http", &["url", "expect_status", "body_contains", "timeout", "max_latency"]),
    ("tcp", &["address", "timeout"]),
    ("exec", &["command", "timeout"]),
    ("tls", &["address", "file", "server_name", "ca_file", "warn_days", "min_days", "timeout", "renew", "reload"]),
    ("process", &["process", "pidfile"]),
    ("backup", &["path", "max_age", "min_size"]),
    ("prometheus", &["url", "query", "above", "below", "absent", "token_env", "timeout"]),
    ("memory", &["min_available_percent"]),
    ("load", &["max_per_core"]),
    ("cpu", &["max_percent", "window"]),
    ("service", &["unit", "pidfile", "start"]),
    ("k8s-pods", &["context", "namespace", "selector", "max_restarts", "ready_grace", "pending_grace", "recovery_timeout"]),
    ("k8s-deployments", &["context", "namespace", "selector", "grace", "recovery_timeout"]),
    ("k8s-nodes", &["context", "selector"]),
    ("k8s-services", &["context", "namespace", "selector"]),
    ("dependency", &["target", "dependants", "namespace", "context"]),
    ("k8s-scaling", &["context", "namespace", "deployment", "min", "max", "prometheus", "query", "token_env", "http", "above", "below", "scale_down_after", "timeout"]),
    ("k8s-failover", &["context", "namespace", "service", "primary", "secondary", "switch_back_after", "recover_primary"]),
    ("k8s-probe", &["context", "namespace", "selector", "http", "tcp", "exec", "timeout", "heal", "replicas"]),
];

/// Kinds that run on an inventory host with `host:`.
const REMOTE_KINDS: &[&str] = &["disk", "exec", "load", "memory", "service"];

pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !name.starts_with('-')
}

/// Validates the parsed block into a `HeartbeatSpec`, reporting every problem.
pub fn from_node(root: &Node, problems: &mut Problems) -> HeartbeatSpec {
    let mut spec = HeartbeatSpec { timezone: chrono_tz::Tz::UTC, ..Default::default() };
    let Some(top) = MapReader::new(root, "the heartbeat block", problems) else {
        return spec;
    };
    if let Some(tz) = top.str("timezone", problems) {
        match crate::schedule::parse_tz(&tz) {
            Ok(tz) => spec.timezone = tz,
            Err(e) => problems.push(top.key_line("timezone"), e, "use an IANA name such as UTC, Europe/Berlin or America/New_York"),
        }
    }
    if let Some(hosts) = top.seq("hosts", problems) {
        for node in hosts {
            if let Some(h) = host(node, problems) {
                if spec.hosts.iter().any(|x| x.name == h.name) {
                    problems.push(Some(h.line), format!("host `{}` is declared twice", h.name), "give every host a unique name");
                }
                spec.hosts.push(h);
            }
        }
    }
    match top.seq("checks", problems) {
        Some(nodes) => {
            let mut seen = BTreeSet::new();
            for node in nodes {
                if let Some(c) = check(node, &spec.hosts, spec.timezone, problems) {
                    if !seen.insert(c.name.clone()) {
                        problems.push(Some(c.line), format!("check name `{}` is used twice", c.name), "give every check a unique name");
                    }
                    spec.checks.push(c);
                }
            }
        }
        None if !top.has("checks") => {
            problems.push(Some(root.line), "the heartbeat block has no `checks:` list", "add `checks:` with at least one check, or `checks: []`");
        }
        None => {}
    }
    // Verification steps name other declared checks.
    for c in &spec.checks {
        for (step, names) in c.verify.steps() {
            for n in names {
                if n == &c.name {
                    problems.push(Some(c.line), format!("check `{}`: verify {step} names the check itself", c.name), "the check passing is the first step already; name other checks");
                } else if !spec.checks.iter().any(|x| &x.name == n) {
                    problems.push(
                        Some(c.line),
                        format!("check `{}`: verify {step} names `{n}`, which is not a declared check", c.name),
                        format!("declare a check named `{n}` (e.g. an http check with max_latency for performance) or fix the name"),
                    );
                }
            }
        }
    }
    top.finish(TOP_KEYS, problems);
    spec
}

fn host(node: &Node, problems: &mut Problems) -> Option<HostSpec> {
    let m = MapReader::new(node, "host", problems)?;
    let name = m.required_str("name", problems);
    let what = format!("host `{}`", name.as_deref().unwrap_or("?"));
    let m = m.named(what);
    let address = m.required_str("address", problems);
    let port = m.int("port", 1, 65535, problems).unwrap_or(22) as u16;
    let spec = HostSpec {
        name: name.clone().unwrap_or_default(),
        line: node.line,
        address: address.clone().unwrap_or_default(),
        port,
        user: m.str("user", problems),
        key_file: m.str("key_file", problems).map(PathBuf::from),
        known_hosts: m.str("known_hosts", problems).map(PathBuf::from),
        jump: m.str("jump", problems),
        tags: m.str_list("tags", problems).unwrap_or_default(),
    };
    if let Some(n) = &name
        && !is_valid_name(n)
    {
        problems.push(m.key_line("name"), format!("host name `{n}` may only contain a-z, 0-9 and -"), "rename it, e.g. web-01");
    }
    m.finish(HOST_KEYS, problems);
    Some(spec).filter(|_| name.is_some() && address.is_some())
}

fn check(node: &Node, hosts: &[HostSpec], tz: chrono_tz::Tz, problems: &mut Problems) -> Option<CheckSpec> {
    let m = MapReader::new(node, "check", problems)?;
    let name = m.required_str("name", problems);
    let m = m.named(format!("check `{}`", name.as_deref().unwrap_or("?")));
    if let Some(n) = &name
        && !is_valid_name(n)
    {
        problems.push(m.key_line("name"), format!("check name `{n}` may only contain a-z, 0-9 and - (at most 63)"), "rename it, e.g. root-disk");
    }
    let kind = m.required_str("kind", problems);
    let every = m.duration("every", problems).map(HumanDuration::as_duration);
    if let Some(e) = every
        && e < Duration::from_secs(1)
    {
        problems.push(m.key_line("every"), format!("{}: `every` must be at least 1s", m.what), "write e.g. `every: 30s`");
    }
    let cron = m.str("at", problems).and_then(|text| match Cron::parse(&text) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(m.key_line("at"), format!("{}: `at: {text}`: {e}", m.what), "write five fields, e.g. `at: \"0 2 * * *\"` for 02:00 every day");
            None
        }
    });
    if m.has("at") && m.has("every") {
        problems.push(m.key_line("at"), format!("{}: `every` and `at` both set", m.what), "keep one: `every:` for an interval, `at:` for cron times");
    }
    // A k8s-probe's threshold counts each pod's failures (read with its kind); the check itself opens incidents at once.
    let threshold = if kind.as_deref() == Some("k8s-probe") { 1 } else { m.int("threshold", 1, 100, problems).unwrap_or(1) as u32 };
    let cooldown = m.duration("cooldown", problems).map_or(Duration::from_secs(300), HumanDuration::as_duration);
    let host = m.str("host", problems);
    if let Some(h) = &host {
        if !hosts.iter().any(|x| &x.name == h) {
            problems.push(m.key_line("host"), format!("{}: host `{h}` is not in `hosts:`", m.what), "declare the host under `hosts:` or fix the name");
        }
        if let Some(k) = kind.as_deref().filter(|k| !REMOTE_KINDS.contains(k)) {
            problems.push(m.key_line("host"), format!("{}: kind `{k}` cannot run over SSH", m.what), format!("remove `host:`; kinds that run on a host: {}", REMOTE_KINDS.join(", ")));
        }
    }
    let level = level(&m, problems);
    let severity = match m.str("severity", problems) {
        None => Severity::Warning,
        Some(s) => Severity::parse(&s).unwrap_or_else(|| {
            problems.push(m.key_line("severity"), format!("{}: unknown severity `{s}`", m.what), "use info, warning or critical");
            Severity::Warning
        }),
    };
    let repair = m.str("repair", problems);
    let mut verify = Verification::default();
    if let Some(v) = m.get("verify")
        && let Some(vm) = MapReader::new(v, format!("{}: verify", m.what), problems)
    {
        verify.connectivity = vm.str_list("connectivity", problems).unwrap_or_default();
        verify.performance = vm.str_list("performance", problems).unwrap_or_default();
        verify.dependencies = vm.str_list("dependencies", problems).unwrap_or_default();
        vm.finish(&Verification::STEPS, problems);
    }
    let probe = kind.as_deref().and_then(|k| probe(k, &m, problems));
    let mut known: Vec<&str> = COMMON_KEYS.to_vec();
    if let Some((_, fields)) = KINDS.iter().find(|(k, _)| Some(*k) == kind.as_deref()) {
        // Fields of other kinds get a precise message instead of "unknown key".
        for (key, line) in m.keys() {
            if !fields.contains(&key) && !COMMON_KEYS.contains(&key) && KINDS.iter().any(|(_, f)| f.contains(&key)) {
                m.get(key);
                problems.push(
                    Some(line),
                    format!("{}: `{key}` does not apply to kind `{}`", m.what, kind.as_deref().unwrap_or("")),
                    format!("kind `{}` takes: {}", kind.as_deref().unwrap_or(""), fields.join(", ")),
                );
            }
        }
        known.extend_from_slice(fields);
    }
    if probe.is_some() {
        m.finish(&known, problems);
    }
    Some(CheckSpec {
        name: name?,
        line: node.line,
        schedule: match cron {
            Some(expr) => Schedule::Cron { expr, tz },
            None => Schedule::Every(every.unwrap_or(Duration::from_secs(300))),
        },
        threshold,
        cooldown,
        host,
        level,
        severity,
        repair,
        probe: probe?,
        verify,
    })
}

fn timeout(m: &MapReader<'_>, default_secs: u64, problems: &mut Problems) -> Duration {
    let t = m.duration("timeout", problems).map_or(Duration::from_secs(default_secs), HumanDuration::as_duration);
    if t.is_zero() || t > Duration::from_secs(600) {
        problems.push(m.key_line("timeout"), format!("{}: `timeout` must be between 1ms and 10m", m.what), "write e.g. `timeout: 10s`");
    }
    t
}

fn probe(kind: &str, m: &MapReader<'_>, problems: &mut Problems) -> Option<ProbeSpec> {
    let what = &m.what;
    match kind {
        "disk" => {
            let path = m.required_str("path", problems).map(PathBuf::from);
            let used = m.number("max_used_percent", 1.0, 100.0, problems);
            let inodes = m.number("max_inodes_percent", 1.0, 100.0, problems);
            if !m.has("max_used_percent") && !m.has("max_inodes_percent") {
                problems.push(Some(m.line), format!("{what}: a disk check needs a limit"), "add `max_used_percent: 80` (and/or `max_inodes_percent`)");
            }
            if let Some(p) = &path
                && !p.is_absolute()
            {
                problems.push(m.key_line("path"), format!("{what}: path `{}` is not absolute", p.display()), "write an absolute path such as /var");
            }
            let forecast = m.duration("forecast", problems).map_or(Duration::from_secs(30 * 86_400), HumanDuration::as_duration);
            if forecast > Duration::from_secs(366 * 86_400) {
                problems.push(m.key_line("forecast"), format!("{what}: `forecast` is longer than a year"), "write e.g. `forecast: 30d` (the default), or `forecast: 0s` to turn the warning off");
            }
            Some(ProbeSpec::Disk { path: path?, max_used_percent: used, max_inodes_percent: inodes, forecast })
        }
        "http" => {
            let url = m.required_str("url", problems)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(&url).is_err() {
                problems.push(m.key_line("url"), format!("{what}: `{url}` is not an http(s) URL"), "write e.g. http://127.0.0.1:8080/healthz");
            }
            let expect_status = m.int("expect_status", 100, 599, problems).map(|s| s as u16);
            Some(ProbeSpec::Http {
                url,
                expect_status,
                body_contains: m.str("body_contains", problems),
                timeout: timeout(m, 10, problems),
                max_latency: m.duration("max_latency", problems).map(HumanDuration::as_duration),
            })
        }
        "tcp" => {
            let address = m.required_str("address", problems)?;
            check_address(&address, m, problems);
            Some(ProbeSpec::Tcp { address, timeout: timeout(m, 5, problems) })
        }
        "exec" => {
            let command = m.required_str("command", problems)?;
            if command.trim().is_empty() {
                problems.push(m.key_line("command"), format!("{what}: `command` is empty"), "write the command to run; exit status 0 means healthy");
            }
            Some(ProbeSpec::Exec { command, timeout: timeout(m, 30, problems) })
        }
        "tls" => {
            let address = m.str("address", problems);
            let file = m.str("file", problems);
            let warn_days = m.int("warn_days", 0, 3650, problems).unwrap_or(30) as u32;
            let min_days = m.int("min_days", 0, 3650, problems).unwrap_or(7) as u32;
            if min_days > warn_days {
                problems.push(
                    m.key_line("min_days"),
                    format!("{what}: min_days ({min_days}) is larger than warn_days ({warn_days})"),
                    "warn_days is when to warn, min_days when to act: make min_days the smaller",
                );
            }
            let server_name = m.str("server_name", problems);
            let source = match (address, file) {
                (Some(a), None) => {
                    check_address(&a, m, problems);
                    TlsSource::Address { address: a, server_name }
                }
                (None, Some(f)) => TlsSource::File(PathBuf::from(f)),
                _ => {
                    problems.push(
                        Some(m.line),
                        format!("{what}: a tls check needs exactly one of `address` or `file`"),
                        "write `address: host:443` for a served certificate, or `file: /path/cert.pem`",
                    );
                    return None;
                }
            };
            let renew = m.str("renew", problems);
            let reload = m.str("reload", problems);
            if reload.is_some() && renew.is_none() {
                problems.push(m.key_line("reload"), format!("{what}: `reload` without `renew`"), "name the renewal command with `renew:` too");
            }
            let ca_file = m.str("ca_file", problems).map(PathBuf::from);
            if ca_file.is_some() && matches!(source, TlsSource::File(_)) {
                problems.push(
                    m.key_line("ca_file"),
                    format!("{what}: `ca_file` applies to a served certificate"),
                    "remove `ca_file:`, or check the certificate where it is served with `address: host:443` (a file's chain is not verified)",
                );
            }
            Some(ProbeSpec::Tls { source, warn_days, min_days, timeout: timeout(m, 10, problems), renew, reload, ca_file })
        }
        "process" => {
            let by = match (m.str("process", problems), m.str("pidfile", problems)) {
                (Some(n), None) => ProcessRef::Name(n),
                (None, Some(p)) => ProcessRef::Pidfile(PathBuf::from(p)),
                _ => {
                    problems.push(Some(m.line), format!("{what}: a process check needs exactly one of `process` (a process name) or `pidfile`"), "write e.g. `process: nginx`");
                    return None;
                }
            };
            Some(ProbeSpec::Process { by })
        }
        "backup" => {
            let path = m.required_str("path", problems).map(PathBuf::from)?;
            if !path.is_absolute() {
                problems.push(m.key_line("path"), format!("{what}: path `{}` is not absolute", path.display()), "write e.g. /var/backups/db/*.tar.gz");
            }
            if path.parent().is_some_and(|p| p.to_string_lossy().contains(['*', '?'])) {
                problems.push(m.key_line("path"), format!("{what}: wildcards may only stand in the file name"), "write the directory literally, e.g. /var/backups/db/*.tar.gz");
            }
            let max_age = m.duration("max_age", problems).map(HumanDuration::as_duration);
            let min_size = m.get("min_size").and_then(|n| match n.scalar_text().map(|t| crate::checks::backup::parse_size(&t)) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    problems.push(Some(n.line), format!("{what}: min_size {e}"), "write e.g. `min_size: 10MB` or `min_size: 512KiB`");
                    None
                }
                None => None,
            });
            Some(ProbeSpec::Backup { path, max_age, min_size })
        }
        "prometheus" => {
            let url = m.required_str("url", problems)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(&url).is_err() {
                problems.push(m.key_line("url"), format!("{what}: `{url}` is not an http(s) URL"), "write the Prometheus base URL, e.g. http://127.0.0.1:9090");
            }
            let query = m.required_str("query", problems)?;
            let above = m.number("above", f64::MIN, f64::MAX, problems);
            let below = m.number("below", f64::MIN, f64::MAX, problems);
            let absent = m.bool("absent", problems);
            let condition = match (above, below, absent) {
                (Some(a), None, None) => crate::checks::prometheus::Condition::Above(a),
                (None, Some(b), None) => crate::checks::prometheus::Condition::Below(b),
                (None, None, Some(true)) => crate::checks::prometheus::Condition::Absent,
                _ => {
                    problems.push(Some(m.line), format!("{what}: a prometheus check needs exactly one condition"), "write one of `above: 0.9`, `below: 1` or `absent: true`");
                    return None;
                }
            };
            let token_env = m.str("token_env", problems);
            if let Some(t) = token_env.as_ref().filter(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')) {
                problems.push(m.key_line("token_env"), format!("{what}: `{t}` is not an environment variable name"), "name the variable that holds the token, e.g. PROM_TOKEN");
            }
            Some(ProbeSpec::Prometheus { url, query, condition, token_env, timeout: timeout(m, 10, problems) })
        }
        "service" => {
            let by = match (m.str("unit", problems), m.str("pidfile", problems)) {
                (Some(u), None) => {
                    if !crate::ssh::valid_unit(&u) {
                        problems.push(m.key_line("unit"), format!("{what}: `{u}` is not a service name"), "write the unit as systemctl knows it, e.g. nginx or app@1.service");
                    }
                    crate::checks::ServiceRef::Unit(u)
                }
                (None, Some(p)) => crate::checks::ServiceRef::Pidfile(PathBuf::from(p)),
                _ => {
                    problems.push(Some(m.line), format!("{what}: a service check needs exactly one of `unit` or `pidfile`"), "write e.g. `unit: nginx`");
                    return None;
                }
            };
            let start = m.str("start", problems).map(|command| crate::checks::Start { command, line: m.key_line("start").unwrap_or(m.line), command_line: String::new() });
            if start.is_some() && matches!(by, crate::checks::ServiceRef::Unit(_)) {
                problems.push(
                    m.key_line("start"),
                    format!("{what}: `start` applies to a pidfile service"),
                    "remove `start:`: a unit is restarted by its service manager (restart_service); `start:` names the command that starts a `pidfile:` service",
                );
            }
            Some(ProbeSpec::Service { by, start })
        }
        "memory" => Some(ProbeSpec::Memory { min_available_percent: required_number(m, "min_available_percent", 0.0, 100.0, "min_available_percent: 10", problems)? }),
        "load" => Some(ProbeSpec::Load { max_per_core: required_number(m, "max_per_core", 0.0, 1000.0, "max_per_core: 2", problems)? }),
        "cpu" => {
            let max_percent = required_number(m, "max_percent", 0.0, 100.0, "max_percent: 90", problems);
            let window = m.duration("window", problems).map_or(Duration::from_secs(1), HumanDuration::as_duration);
            if window < Duration::from_millis(100) || window > Duration::from_secs(60) {
                problems.push(m.key_line("window"), format!("{what}: `window` must be between 100ms and 60s"), "write e.g. `window: 5s`");
            }
            Some(ProbeSpec::Cpu { max_percent: max_percent?, window })
        }
        "k8s-pods" => {
            let scope = scope(m, problems);
            let max_restarts = m.int("max_restarts", 0, 100_000, problems).unwrap_or(5) as i32;
            let ready_grace = grace(m, "ready_grace", 60, problems);
            let pending_grace = grace(m, "pending_grace", 300, problems);
            Some(ProbeSpec::K8sPods { scope, rules: crate::checks::kube::observe::PodRules { max_restarts, ready_grace, pending_grace }, recovery_timeout: recovery_timeout(m, problems) })
        }
        "k8s-deployments" => Some(ProbeSpec::K8sDeployments { scope: scope(m, problems), grace: grace(m, "grace", 120, problems), recovery_timeout: recovery_timeout(m, problems) }),
        "k8s-nodes" => Some(ProbeSpec::K8sNodes { scope: scope(m, problems) }),
        "k8s-services" => Some(ProbeSpec::K8sServices { scope: scope(m, problems) }),
        "dependency" => {
            let scope = scope(m, problems);
            let dependants = m.required_str("dependants", problems);
            let target = m.required_str("target", problems)?;
            let target = if target.starts_with("http://") || target.starts_with("https://") {
                if reqwest::Url::parse(&target).is_err() {
                    problems.push(m.key_line("target"), format!("{what}: `{target}` is not a URL"), "write e.g. http://db.internal:8080/healthz");
                }
                crate::checks::kube::DependencyTarget::Http(target)
            } else if let Some((ns, name)) = target.split_once('/').filter(|(ns, n)| is_dns_label(ns) && is_dns_label(n)) {
                crate::checks::kube::DependencyTarget::Service { namespace: ns.to_string(), name: name.to_string() }
            } else if target.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)) {
                crate::checks::kube::DependencyTarget::Tcp(target)
            } else {
                problems.push(
                    m.key_line("target"),
                    format!("{what}: `{target}` is neither a Service, a URL nor host:port"),
                    "write a Service as namespace/name (e.g. shop/postgres), or http://host/healthz, or host:5432",
                );
                return None;
            };
            Some(ProbeSpec::Dependency { target, dependants: dependants?, scope })
        }
        "k8s-scaling" => scaling(m, problems),
        "k8s-failover" => failover(m, problems),
        "k8s-probe" => pod_probe(m, problems),
        other => {
            let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            let hint = match super::yaml::closest(other, &names) {
                Some(n) => format!("did you mean `{n}`? kinds: {}", kind_names()),
                None => format!("use one of: {}", kind_names()),
            };
            problems.push(m.key_line("kind"), format!("{what}: unknown kind `{other}`"), hint);
            None
        }
    }
}

/// A Kubernetes object's name: a DNS label, required.
fn object_name(m: &MapReader<'_>, key: &str, example: &str, problems: &mut Problems) -> Option<String> {
    let name = m.required_str(key, problems)?;
    if !is_dns_label(&name) {
        problems.push(m.key_line(key), format!("{}: `{name}` is not a {key} name", m.what), format!("write a lowercase DNS label, e.g. `{key}: {example}`"));
        return None;
    }
    Some(name)
}

/// `k8s-scaling`: a Deployment's bounds and its load signal.
fn scaling(m: &MapReader<'_>, problems: &mut Problems) -> Option<ProbeSpec> {
    let what = m.what.clone();
    let scope = scope(m, problems);
    let namespace = object_name(m, "namespace", "shop", problems);
    let deployment = object_name(m, "deployment", "checkout", problems);
    let min = required_number(m, "min", 1.0, 10_000.0, "min: 2", problems).map(|v| v as i32);
    let max = required_number(m, "max", 1.0, 10_000.0, "max: 10", problems).map(|v| v as i32);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        problems.push(m.key_line("max"), format!("{what}: `max` ({hi}) is below `min` ({lo})"), "write bounds with min <= max, e.g. `min: 2` and `max: 10`");
    }
    let above = required_number(m, "above", f64::MIN, f64::MAX, "above: 0.8 (under load above this)", problems);
    let below = m.number("below", f64::MIN, f64::MAX, problems);
    if let (Some(a), Some(b)) = (above, below)
        && b >= a
    {
        problems.push(
            m.key_line("below"),
            format!("{what}: `below` ({b}) must be less than `above` ({a})"),
            "leave a band between them so scaling up and down cannot chase each other, e.g. `above: 0.8` and `below: 0.3`",
        );
    }
    let load = match (m.str("prometheus", problems), m.str("query", problems), m.str("http", problems)) {
        (Some(url), Some(query), None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(&url).is_err() {
                problems.push(m.key_line("prometheus"), format!("{what}: `{url}` is not an http(s) URL"), "write the Prometheus base URL, e.g. http://127.0.0.1:9090");
            }
            crate::checks::strategy::LoadSignal::Prometheus { url, query, token_env: m.str("token_env", problems) }
        }
        (None, None, Some(url)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(&url).is_err() {
                problems.push(m.key_line("http"), format!("{what}: `{url}` is not an http(s) URL"), "write the URL whose latency is the load signal, e.g. http://checkout.shop/healthz");
            }
            crate::checks::strategy::LoadSignal::Http { url }
        }
        _ => {
            problems.push(
                Some(m.line),
                format!("{what}: a k8s-scaling check needs one load signal"),
                "write `prometheus: http://127.0.0.1:9090` with `query: …`, or `http: http://service/healthz` (its latency in ms)",
            );
            return None;
        }
    };
    let scale_down_after = m.duration("scale_down_after", problems).map_or(Duration::from_secs(900), HumanDuration::as_duration);
    Some(ProbeSpec::K8sScaling(Box::new(crate::checks::strategy::ScalingSpec {
        context: scope.context,
        namespace: namespace?,
        deployment: deployment?,
        min: min?,
        max: max?,
        load,
        above: above?,
        below,
        scale_down_after,
        timeout: timeout(m, 10, problems),
    })))
}

/// `k8s-failover`: a Service with a primary and a secondary Deployment.
fn failover(m: &MapReader<'_>, problems: &mut Problems) -> Option<ProbeSpec> {
    let scope = scope(m, problems);
    let namespace = object_name(m, "namespace", "shop", problems);
    let service = object_name(m, "service", "db", problems);
    let primary = object_name(m, "primary", "db-primary", problems);
    let secondary = object_name(m, "secondary", "db-standby", problems);
    if let (Some(p), Some(s)) = (&primary, &secondary)
        && p == s
    {
        problems.push(m.key_line("secondary"), format!("{}: `primary` and `secondary` are both `{p}`", m.what), "name two different Deployments: the one that serves and the one that stands by");
    }
    let switch_back_after = m.duration("switch_back_after", problems).map_or(Duration::from_secs(300), HumanDuration::as_duration);
    let recover = m.bool("recover_primary", problems).unwrap_or(true);
    Some(ProbeSpec::K8sFailover(Box::new(crate::checks::strategy::FailoverSpec {
        context: scope.context,
        namespace: namespace?,
        service: service?,
        primary: primary?,
        secondary: secondary?,
        switch_back_after,
        recover,
    })))
}

/// `k8s-probe`: pods by namespace and selector, one of `http`, `tcp` or
/// `exec`, and the heal (`restart`, or `scale` to `replicas`).
fn pod_probe(m: &MapReader<'_>, problems: &mut Problems) -> Option<ProbeSpec> {
    use crate::checks::pod_probe::{Heal, PodProbe, PodProbeSpec};
    let what = m.what.clone();
    let scope = scope(m, problems);
    if scope.namespace.is_none() {
        problems.push(Some(m.line), format!("{what}: a k8s-probe check needs `namespace`"), "name the namespace of the pods, e.g. `namespace: shop`");
    }
    if scope.selector.as_deref().is_none_or(|s| s.trim().is_empty()) {
        problems.push(Some(m.line), format!("{what}: a k8s-probe check needs `selector`"), "select the pods to probe by label, e.g. `selector: app=checkout`");
    }
    let given: Vec<&str> = ["http", "tcp", "exec"].into_iter().filter(|k| m.has(k)).collect();
    if given.len() != 1 {
        let line = given.get(1).and_then(|k| m.key_line(k)).or(Some(m.line));
        let found = if given.is_empty() { "none".to_string() } else { given.join(" and ") };
        problems.push(
            line,
            format!("{what}: a k8s-probe check needs exactly one of `http`, `tcp` or `exec` (found {found})"),
            "keep one probe per check, e.g. `http: {port: 8080, path: /healthz}`; declare another check for a second probe",
        );
        return None;
    }
    let probe = match given[0] {
        "http" => {
            let h = MapReader::new(m.get("http")?, format!("{what}: http"), problems)?;
            let port = probe_port(&h, problems);
            let path = h.str("path", problems).unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(h.key_line("path"), format!("{what}: http path `{path}` is not an absolute path"), "write e.g. `path: /healthz`");
            }
            let expect_status = h.int("expect_status", 100, 599, problems).map(|s| s as u16);
            h.finish(&["port", "path", "expect_status"], problems);
            PodProbe::Http { port: port?, path, expect_status }
        }
        "tcp" => {
            let t = MapReader::new(m.get("tcp")?, format!("{what}: tcp"), problems)?;
            let port = probe_port(&t, problems);
            t.finish(&["port"], problems);
            PodProbe::Tcp { port: port? }
        }
        _ => {
            let e = MapReader::new(m.get("exec")?, format!("{what}: exec"), problems)?;
            let container = e.required_str("container", problems);
            if let Some(c) = container.as_deref().filter(|c| !is_dns_label(c)) {
                problems.push(e.key_line("container"), format!("{what}: exec container `{c}` is not a container name"), "name a container of the pods, e.g. `container: app`");
            }
            let command = match e.get("command").map(|n| &n.value) {
                // A string is split on spaces (there is no shell); a list is the argv as written.
                Some(super::yaml::Value::Str(s)) => Some(s.split_whitespace().map(str::to_string).collect::<Vec<_>>()),
                Some(_) => e.str_list("command", problems),
                None => {
                    problems.push(Some(e.line), format!("{what}: exec `command` is missing"), "write the command as a list, e.g. `command: [cat, /tmp/healthy]`; exit status 0 is healthy");
                    None
                }
            };
            if command.as_ref().is_some_and(|c| c.is_empty() || c.iter().any(|a| a.is_empty())) {
                problems.push(e.key_line("command"), format!("{what}: exec `command` is empty"), "write the command as a list, e.g. `command: [cat, /tmp/healthy]`");
            }
            e.finish(&["container", "command"], problems);
            PodProbe::Exec { container: container?, command: command? }
        }
    };
    let threshold = m.int("threshold", 1, 100, problems).unwrap_or(3) as u32;
    let replicas = m.int("replicas", 0, 10_000, problems).map(|r| r as i32);
    let heal = match (m.str("heal", problems).as_deref(), replicas) {
        (None | Some("restart"), None) => Heal::Restart,
        (None | Some("restart"), Some(_)) => {
            problems.push(m.key_line("replicas"), format!("{what}: `replicas` is set but `heal` is not `scale`"), "write `heal: scale` to scale the Deployment to `replicas`, or remove `replicas`");
            Heal::Restart
        }
        (Some("scale"), Some(replicas)) => Heal::Scale { replicas },
        (Some("scale"), None) => {
            problems.push(m.key_line("heal"), format!("{what}: `heal: scale` without `replicas`"), "add how many replicas to scale the pods' Deployment to, e.g. `replicas: 5`");
            return None;
        }
        (Some(other), _) => {
            problems.push(m.key_line("heal"), format!("{what}: unknown heal `{other}`"), "write `heal: restart` (delete the pod; its controller replaces it) or `heal: scale` with `replicas`");
            return None;
        }
    };
    Some(ProbeSpec::K8sProbe(Box::new(PodProbeSpec { scope, probe, timeout: timeout(m, 5, problems), threshold, heal })))
}

/// A probe's `port`, required, 1–65535.
fn probe_port(m: &MapReader<'_>, problems: &mut Problems) -> Option<u16> {
    if !m.has("port") {
        problems.push(Some(m.line), format!("{}: `port` is missing", m.what), "add the container port to probe, e.g. `port: 8080`");
        return None;
    }
    m.int("port", 1, 65535, problems).map(|p| p as u16)
}

/// `context`, `namespace` and `selector` of a Kubernetes kind.
fn scope(m: &MapReader<'_>, problems: &mut Problems) -> crate::checks::kube::Scope {
    let context = m.str("context", problems);
    if context.as_deref().is_some_and(|c| c.trim().is_empty()) {
        problems.push(m.key_line("context"), format!("{}: `context` is empty", m.what), "name a kubeconfig context, or remove `context:` to use the current one");
    }
    let namespace = m.str("namespace", problems);
    if let Some(ns) = namespace.as_deref().filter(|ns| !is_dns_label(ns)) {
        problems.push(m.key_line("namespace"), format!("{}: `{ns}` is not a namespace name", m.what), "write a lowercase DNS label such as shop, or remove `namespace:` for all namespaces");
    }
    for key in ["selector", "dependants"] {
        if let Some(sel) = m.get(key).and_then(|n| n.scalar_text())
            && let Err(e) = crate::k8s::parse_selector(&sel)
        {
            problems.push(m.key_line(key), format!("{}: {key}: {e}", m.what), "write a label selector such as `app=web,tier in (front,api)`");
        }
    }
    crate::checks::kube::Scope { context, namespace, selector: m.str("selector", problems) }
}

fn grace(m: &MapReader<'_>, key: &str, default_secs: u64, problems: &mut Problems) -> Duration {
    let d = m.duration(key, problems).map_or(Duration::from_secs(default_secs), HumanDuration::as_duration);
    if d > Duration::from_secs(86_400) {
        problems.push(m.key_line(key), format!("{}: `{key}` is longer than a day", m.what), format!("write e.g. `{key}: 2m`"));
    }
    d
}

/// `recovery_timeout`: how long a Kubernetes repair may take to settle (the
/// seed's range, one second up to 30 minutes; absent: the Deployment's
/// `progressDeadlineSeconds`, else 300 s).
fn recovery_timeout(m: &MapReader<'_>, problems: &mut Problems) -> Option<Duration> {
    let d = m.duration("recovery_timeout", problems).map(HumanDuration::as_duration)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(1800) {
        problems.push(
            m.key_line("recovery_timeout"),
            format!("{}: `recovery_timeout` must be between 1s and 30m", m.what),
            "write e.g. `recovery_timeout: 5m` (the default when the Deployment sets no progressDeadlineSeconds)",
        );
    }
    Some(d)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !s.starts_with('-') && !s.ends_with('-')
}

fn required_number(m: &MapReader<'_>, key: &str, min: f64, max: f64, example: &str, problems: &mut Problems) -> Option<f64> {
    if !m.has(key) {
        problems.push(Some(m.line), format!("{}: `{key}` is missing", m.what), format!("add e.g. `{example}`"));
        return None;
    }
    m.number(key, min, max, problems)
}

fn kind_names() -> String {
    KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

fn check_address(address: &str, m: &MapReader<'_>, problems: &mut Problems) {
    let ok = address.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        problems.push(m.key_line("address"), format!("{}: address `{address}` is not host:port", m.what), "write e.g. 127.0.0.1:443 or example.internal:443");
    }
}
