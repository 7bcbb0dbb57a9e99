//! The command line: parsing, the commands, their output and exit codes
//! (0 nothing failing, 1 something failing or refused, 2 bad usage or a
//! workspace that does not validate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;
use clap::{Parser, Subcommand};

use crate::checks::{CheckResult, Status};
use crate::memory::approvals::ApprovalStatus;

use crate::duration::timestamp;
use crate::memory::Memory;
use crate::pipeline::{RunReport, Runner};
use crate::workspace::{self, Workspace};

#[derive(Debug, Parser)]
#[command(name = "nightshift", version, about = "An autonomous on-call engineer: checks, runbooks, a policy gate, a git-backed incident memory")]
pub struct Cli {
    /// The workspace folder (AGENTS.md, HEARTBEAT.md, memory/).
    #[arg(long, global = true, default_value = ".")]
    pub workspace: PathBuf,
    /// Act for real. Without it (or `mode: execute` in AGENTS.md) every mutating action is a dry-run.
    #[arg(long, global = true)]
    pub execute: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass: run the due checks (--all: every check), handle what fails.
    Heartbeat {
        /// Run every check now, not only the due ones.
        #[arg(long)]
        all: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run checks now and report; repairs nothing and records nothing.
    Check {
        /// The checks to run (default: all), by name.
        names: Vec<String>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check AGENTS.md, HEARTBEAT.md, prompts/ and tools/.
    Validate,
    /// The daemon: scheduler, alert intake, approvals API, Slack, /healthz, /metrics.
    Serve {
        #[arg(long, default_value = "127.0.0.1:9469")]
        listen: std::net::SocketAddr,
    },
    /// List actions waiting for a human or for their abort window.
    Approvals {
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending action; the next `heartbeat --execute` carries it out.
    Approve { id: String },
    /// Refuse a pending action, or cancel one inside its abort window.
    Abort { id: String },
    /// A human has taken an incident: its escalation stops.
    Ack { id: String },
    /// The incident notes.
    Incidents {
        #[command(subcommand)]
        command: Option<IncidentsCommand>,
    },
    /// Memory upkeep.
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
    /// What the agent did.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Break things in the sandbox (the test control plane on loopback), let
    /// nightshift heal them with --execute, and report how it went.
    Drill {
        /// Scenarios to run (default: all): pod-oom, bad-deploy, crashloop-cascade, node-notready, prompt-injection, disk-full, cert-expiry.
        scenarios: Vec<String>,
        /// Where the report (drill.md, drill.json) and the sandbox workspaces go.
        #[arg(long, default_value = "drill-report")]
        report: PathBuf,
        /// Short abort windows and time limits (CI).
        #[arg(long)]
        short: bool,
        /// The sandbox's kubeconfig (default: scripts/test-cluster.sh's, ~/.cache/nightshift/cluster/kubeconfig). Only a server on loopback is accepted.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// List the scenarios and stop.
        #[arg(long)]
        list: bool,
        /// Random faults from the catalogue on a small fleet for --duration, instead of the scenarios.
        #[arg(long)]
        chaos: bool,
        /// How long --chaos injects faults (then it waits for the last ones to heal).
        #[arg(long, default_value = "5m")]
        duration: String,
        /// Replay a chaos run: the seed its report names.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff, section 1) to stdout: `nightshift man > nightshift.1`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    List,
    Show {
        id: String,
    },
    /// Ranked search over incidents, digests and knowledge pages.
    Search {
        text: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Incidents per class and target, detect/repair times, recurrence, auto-fixed share, tokens.
    Stats {
        #[arg(long, default_value = "30d")]
        since: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Fold resolved incidents older than the limit into monthly digests.
    Compact {
        #[arg(long, default_value = "90d")]
        older_than: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Summary by action type, risk, approval route and success rate.
    Report {
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nightshift: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Logs go to stderr; NIGHTSHIFT_LOG sets the filter (serve defaults to info), NIGHTSHIFT_LOG_FORMAT=json makes them JSON.
    // Traces go to an OTLP endpoint when one is configured (crate::telemetry).
    let default = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIGHTSHIFT_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let json = std::env::var("NIGHTSHIFT_LOG_FORMAT").is_ok_and(|f| f == "json");
    let telemetry = crate::telemetry::init(filter, json, runtime.handle());
    let code = runtime.block_on(run(cli));
    // The runtime's workers still run: the last spans are exported through them.
    telemetry.shutdown();
    ExitCode::from(code)
}

/// `nightshift drill`: 0 when no scenario failed (skipped ones say why), 1 when one did, 2 on bad input.
async fn drill(scenarios: Vec<String>, report: PathBuf, short: bool, kubeconfig: Option<PathBuf>, list: bool) -> Result<u8, u8> {
    if list {
        for (name, what) in crate::drill::SCENARIOS {
            println!("{name:<18} {what}");
        }
        return Ok(0);
    }
    match crate::drill::run(crate::drill::Options { scenarios, report, short, kubeconfig }).await {
        Ok(r) if r.passed() => Ok(0),
        Ok(_) => Ok(1),
        Err(e) => {
            eprintln!("nightshift drill: {e}");
            Err(2)
        }
    }
}

async fn drill_chaos(scenarios: &[String], report: &Path, short: bool, kubeconfig: Option<PathBuf>, duration: &str, seed: Option<u64>) -> Result<u8, u8> {
    if !scenarios.is_empty() {
        eprintln!("nightshift drill: --chaos draws its faults from the whole catalogue; name no scenarios with it");
        return Err(2);
    }
    let duration = crate::duration::parse(duration).map_err(|e| {
        eprintln!("nightshift drill: --duration: {e}");
        2
    })?;
    if duration.is_zero() || duration > std::time::Duration::from_secs(3600) {
        eprintln!("nightshift drill: --duration must be between 1s and 1h (chaos is bounded)");
        return Err(2);
    }
    match crate::drill::run_chaos(report, kubeconfig, duration, seed, short).await {
        Ok(r) if r.passed() => Ok(0),
        Ok(_) => Ok(1),
        Err(e) => {
            eprintln!("nightshift drill: {e}");
            Err(2)
        }
    }
}

/// The manual page, from the same definitions as `--help`.
fn man() -> Result<u8, u8> {
    let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
    let mut out = Vec::new();
    page.render(&mut out).map_err(|e| {
        eprintln!("nightshift man: {e}");
        1
    })?;
    // Each subcommand gets its own section, as `nightshift help CMD` prints it.
    for sub in <Cli as clap::CommandFactory>::command().get_subcommands().filter(|c| c.get_name() != "help") {
        let name = sub.get_name().to_string();
        out.extend_from_slice(format!(".SH \"NIGHTSHIFT {}\"\n", name.to_uppercase()).as_bytes());
        let sub = sub.clone().bin_name(format!("nightshift {name}"));
        let page = clap_mangen::Man::new(sub);
        let mut part = Vec::new();
        let _ = page.render_synopsis_section(&mut part).and_then(|_| page.render_description_section(&mut part)).and_then(|_| page.render_options_section(&mut part));
        out.extend_from_slice(&demote(&part));
    }
    use std::io::Write;
    std::io::stdout().write_all(&out).map_err(|_| 1)?;
    Ok(0)
}

/// A subcommand's sections become subsections of its own section.
fn demote(roff: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(roff).replace(".SH ", ".SS ").into_bytes()
}

fn load(root: &Path) -> Result<Workspace, u8> {
    workspace::load(root).map_err(|problems| {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("nightshift: the workspace does not validate ({} problem(s)); nothing was run", problems.len());
        2
    })
}

fn memory_or_exit(root: &Path) -> Result<Memory, u8> {
    Memory::existing(root).ok_or_else(|| {
        eprintln!("nightshift: no memory in {} yet (run `nightshift heartbeat` first)", root.join("memory").display());
        1
    })
}

async fn run(cli: Cli) -> u8 {
    let root = cli.workspace.clone();
    let result = match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "nightshift", &mut script);
            use std::io::Write;
            std::io::stdout().write_all(&script).map(|()| 0).map_err(|_| 1)
        }
        Command::Man => man(),
        Command::Validate => load(&root).map(|ws| {
            println!("workspace {} is valid: {} check(s), {} rule(s), mode {}", root.display(), ws.heartbeat.checks.len(), ws.policy.rules.len(), ws.policy.mode.as_str());
            0
        }),
        Command::Heartbeat { all, json } => heartbeat(&root, cli.execute, all, json).await,
        Command::Serve { listen } => match crate::serve::run(root.clone(), listen, cli.execute).await {
            Ok(()) => Ok(0),
            Err(crate::serve::ServeError::Invalid(problems)) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!("nightshift: the workspace does not validate ({} problem(s)); nothing was run", problems.len());
                Err(2)
            }
            Err(e @ (crate::serve::ServeError::IntakeOpen(_) | crate::serve::ServeError::Limits(_))) => {
                eprintln!("nightshift: {e}");
                Err(2)
            }
            Err(e) => {
                eprintln!("nightshift: {e}");
                Err(1)
            }
        },
        Command::Check { names, json } => check(&root, &names, json).await,
        Command::Approvals { json } => approvals(&root, json),
        Command::Approve { id } => decide(&root, &id, true),
        Command::Abort { id } => decide(&root, &id, false),
        Command::Ack { id } => ack(&root, &id),
        Command::Incidents { command } => incidents(&root, command.unwrap_or(IncidentsCommand::List)),
        Command::Audit { command: AuditCommand::Report { since, json } } => audit_report(&root, &since, json),
        Command::Memory { command: MemoryCommand::Compact { older_than } } => compact(&root, &older_than),
        Command::Drill { scenarios, report, short, kubeconfig, list, chaos, duration, seed } => {
            if chaos {
                drill_chaos(&scenarios, &report, short, kubeconfig, &duration, seed).await
            } else {
                drill(scenarios, report, short, kubeconfig, list).await
            }
        }
    };
    result.unwrap_or_else(|code| code)
}

fn print_checks(results: &[CheckResult]) {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in results {
        println!("  {:<8} {:<width$}  {}", r.status.as_str(), r.name, crate::redact::redact(&r.summary));
    }
}

/// A report as JSON on stdout, where it goes on into pipelines and logs:
/// redacted like every other exit.
fn print_json(mut v: serde_json::Value) {
    use std::io::Write;
    crate::redact::redact_json(&mut v);
    // A reader that stops early (`| head`) closes the pipe: that ends the output, not the run.
    let _ = writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

async fn heartbeat(root: &Path, execute: bool, all: bool, json: bool) -> Result<u8, u8> {
    let ws = load(root)?;
    let (mut runner, _lock) = Runner::new(&ws, execute).map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    runner.announce = !json;
    let report = runner.heartbeat(all).await.map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    if json {
        print_json(serde_json::to_value(&report).unwrap_or_default());
    } else {
        print_report(&report);
    }
    Ok(u8::from(report.failing))
}

fn print_report(r: &RunReport) {
    if !r.checks.is_empty() {
        println!("checks:");
        print_checks(&r.checks);
    }
    let mut text = String::new();
    for i in &r.incidents {
        text.push_str(&format!("incident {} ({}, {}{}): {}\n", i.id, i.severity, i.status, if i.new { ", new" } else { "" }, i.title));
        for step in &i.diagnosis {
            text.push_str(&format!("  - {step}\n"));
        }
        for a in &i.actions {
            text.push_str(&format!("  {} on {}: {} → {}: {}\n", a.action, a.target, a.decision, a.result.as_str(), a.outcome));
        }
    }
    for n in &r.notes {
        text.push_str(&format!("{n}\n"));
    }
    print!("{}", crate::redact::redact(&text));
    let warnings = r.checks.iter().filter(|c| c.status == Status::Warning).count();
    if !r.failing {
        if warnings > 0 {
            println!("HEARTBEAT_OK ({warnings} warning(s))");
        } else {
            println!("HEARTBEAT_OK");
        }
    }
}

async fn check(root: &Path, names: &[String], json: bool) -> Result<u8, u8> {
    let ws = load(root)?;
    for n in names {
        if !ws.heartbeat.checks.iter().any(|c| &c.name == n) {
            eprintln!("nightshift: no check named `{n}` in HEARTBEAT.md");
            return Err(2);
        }
    }
    let results = crate::pipeline::check_only(&ws, names).await;
    let failing = results.iter().any(|r| r.status.is_bad());
    if json {
        print_json(serde_json::json!({"status": if failing { "failing" } else { "ok" }, "checks": results, "incidents": []}));
    } else {
        print_checks(&results);
    }
    Ok(u8::from(failing))
}

fn approvals(root: &Path, json: bool) -> Result<u8, u8> {
    let Some(mem) = Memory::existing(root) else {
        if json {
            println!("[]")
        } else {
            println!("no pending approvals")
        }
        return Ok(0);
    };
    let list = mem.load_approvals().map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    let open: Vec<_> = list.into_iter().filter(|a| matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&open).unwrap_or_default());
        return Ok(0);
    }
    if open.is_empty() {
        println!("no pending approvals");
    }
    for a in open {
        let when = match a.kind {
            crate::memory::approvals::ApprovalKind::Confirm => format!("expires {}", timestamp(a.deadline)),
            crate::memory::approvals::ApprovalKind::AbortWindow => format!("acts at {} unless aborted", timestamp(a.deadline)),
        };
        println!("{}  {:?}  {}  {}  incident {}  {when}\n    why: {}", a.id, a.status, a.action.kind(), a.action.describe(), a.incident.as_deref().unwrap_or("-"), a.reason);
    }
    Ok(0)
}

/// `approve` / `abort`: a human's decision, audited at once.
fn decide(root: &Path, id: &str, approve: bool) -> Result<u8, u8> {
    let ws = load(root)?;
    let mem = memory_or_exit(&ws.root)?;
    let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let a = mem.decide_approval(id, approve, &who).map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    if approve {
        println!("approved {id}: {}; the next `nightshift heartbeat --execute` carries it out", a.action.describe());
    } else {
        println!("aborted {id}: {} will not run", a.action.describe());
    }
    Ok(0)
}

/// `ack`: a human takes an incident; the escalation ladder stops for it.
fn ack(root: &Path, id: &str) -> Result<u8, u8> {
    let ws = load(root)?;
    let mem = memory_or_exit(&ws.root)?;
    let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    match mem.ack_incident(id, &who) {
        Ok((a, true)) => println!("acknowledged {id} as {}: escalation stops", a.by),
        Ok((a, false)) => println!("{id} was already acknowledged by {} at {}: escalation had stopped", a.by, crate::duration::timestamp(a.at)),
        Err(e) => {
            eprintln!("nightshift: {e}");
            return Err(1);
        }
    }
    Ok(0)
}

fn incidents(root: &Path, command: IncidentsCommand) -> Result<u8, u8> {
    let mem = memory_or_exit(root)?;
    let fail = |e: crate::memory::MemoryError| {
        eprintln!("nightshift: {e}");
        1
    };
    match command {
        IncidentsCommand::List => {
            // Notes (newest first), then incidents folded into digests.
            let (noted, mut folded): (Vec<_>, Vec<_>) = crate::memory::stats::remembered(&mem).map_err(fail)?.into_iter().partition(|(_, raw)| raw.is_some());
            folded.sort_by(|a, b| b.0.detected.cmp(&a.0.detected));
            if noted.is_empty() && folded.is_empty() {
                println!("no incidents");
            }
            for (i, _) in noted {
                println!("{}  {:<11} {:<8} {}", i.id, i.status.as_str(), i.severity.as_str(), i.title);
            }
            for (i, _) in folded {
                println!("{}  {:<11} {:<8} {} (in digests/{}.md)", i.id, i.status.as_str(), i.severity.as_str(), i.title, i.detected.get(..7).unwrap_or(""));
            }
            Ok(0)
        }
        IncidentsCommand::Show { id } => {
            if mem.read_incident(&id).is_ok() {
                print!("{}", std::fs::read_to_string(mem.incident_path(&id)).unwrap_or_default());
                return Ok(0);
            }
            match mem.digested_with_commits().map_err(fail)?.into_iter().find(|(i, _)| i.id == id) {
                Some((inc, commit)) => {
                    print!("{}", crate::memory::digest::section(&inc, &commit));
                    println!("(folded into digests/{}.md; the full note: git -C {} show {commit}:incidents/{id}.md)", inc.detected.get(..7).unwrap_or(""), mem.root.display());
                    Ok(0)
                }
                None => {
                    eprintln!("nightshift: no incident {id} (see `nightshift incidents list`)");
                    Err(1)
                }
            }
        }
        IncidentsCommand::Search { text, json } => {
            let query = text.join(" ");
            if query.trim().is_empty() {
                eprintln!("nightshift: search needs some text, e.g. `nightshift incidents search disk`");
                return Err(2);
            }
            let hits = crate::memory::stats::search(&mem, &query).map_err(fail)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits).unwrap_or_default());
                return Ok(0);
            }
            if hits.is_empty() {
                println!("nothing mentions {query:?}");
            }
            for h in hits {
                println!("{}  {:<9} {:<11} {}", h.id, h.kind, h.status, h.title);
            }
            Ok(0)
        }
        IncidentsCommand::Stats { since, json } => {
            let period = crate::duration::parse(&since).map_err(|e| {
                eprintln!("nightshift: --since: {e}");
                2
            })?;
            let from = crate::duration::before(Utc::now(), period).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
            let all: Vec<_> = crate::memory::stats::remembered(&mem).map_err(fail)?.into_iter().map(|(i, _)| i).collect();
            let s = crate::memory::stats::stats(&all, from);
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                return Ok(0);
            }
            print_stats(&s);
            Ok(0)
        }
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| crate::memory::knowledge::human_secs(s.round() as i64))
}

fn print_stats(s: &crate::memory::stats::Stats) {
    println!("{} incident(s) since {}", s.incidents, s.since);
    println!("  by class: {}", s.by_class.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    let mut targets: Vec<_> = s.by_target.iter().collect();
    targets.sort_by(|a, b| b.1.cmp(a.1));
    println!("  top targets: {}", targets.iter().take(5).map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    println!("  time to detect: mean {}, p90 {} ({} incidents)", secs(s.time_to_detect.mean_seconds), secs(s.time_to_detect.p90_seconds.map(|v| v as f64)), s.time_to_detect.count);
    println!("  time to repair: mean {}, p90 {} ({} incidents)", secs(s.time_to_repair.mean_seconds), secs(s.time_to_repair.p90_seconds.map(|v| v as f64)), s.time_to_repair.count);
    println!("  auto-fixed {}, escalated {}{}", s.auto_fixed, s.escalated, s.auto_fixed_share.map(|x| format!(" ({:.0}% auto-fixed)", x * 100.0)).unwrap_or_default());
    println!("  model tokens: {}", s.tokens);
    for (fp, n) in &s.recurring {
        println!("  recurring: {fp} ({n}×)");
    }
}

fn audit_report(root: &Path, since: &str, json: bool) -> Result<u8, u8> {
    let period = crate::duration::parse(since).map_err(|e| {
        eprintln!("nightshift: --since: {e}");
        2
    })?;
    let mem = memory_or_exit(root)?;
    let from = crate::duration::before(Utc::now(), period).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let entries = mem.audit_since(from).map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    let mut report = crate::memory::audit::report(&entries, &timestamp(from), period.as_secs_f64() / 86_400.0);
    let all: Vec<_> = crate::memory::stats::remembered(&mem)
        .map_err(|e| {
            eprintln!("nightshift: {e}");
            1
        })?
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    for (fp, n) in crate::memory::stats::stats(&all, from).recurring.into_iter().filter(|(_, n)| *n > 3) {
        report.permanent_fix_candidates.push(format!("{fp}: the same incident {n} times since {}", report.since));
    }
    let state = mem.load_state().map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    report.trust = state.trust_events.into_iter().filter(|e| e.at >= from).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(0);
    }
    println!("audit since {} ({} entries)", report.since, report.entries);
    for (action, s) in &report.actions {
        let rate = s.success_rate.map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
        println!("  {action}: {} decision(s), {} executed, success {rate}", s.total, s.executed);
        println!("    results: {}", fmt_map(&s.by_result));
        println!("    risk: {}", fmt_map(&s.by_risk));
        println!("    routes: {}", fmt_map(&s.by_route));
    }
    if !report.trust.is_empty() {
        println!("earned trust (promoted to auto, demoted to confirm):");
        for e in &report.trust {
            println!("  - {} {} {} (rule at AGENTS.md line {}, on {}): {}", timestamp(e.at), e.what, e.rule, e.line, e.target, crate::redact::redact(&e.detail));
        }
    }
    if !report.permanent_fix_candidates.is_empty() {
        println!("needs a permanent fix:");
        for c in &report.permanent_fix_candidates {
            println!("  - {c}");
        }
    }
    Ok(0)
}

fn compact(root: &Path, older_than: &str) -> Result<u8, u8> {
    let limit = crate::duration::parse(older_than).map_err(|e| {
        eprintln!("nightshift: --older-than: {e}");
        2
    })?;
    let mem = memory_or_exit(root)?;
    let _lock = mem.try_lock("run").ok().flatten().ok_or_else(|| {
        eprintln!("nightshift: another nightshift run holds the memory; try again when it has finished");
        1
    })?;
    let done = mem.compact(limit, Utc::now()).map_err(|e| {
        eprintln!("nightshift: {e}");
        1
    })?;
    if let Some(n) = done.recovered {
        println!("finished an interrupted compaction ({n} note(s) removed whose digest was written)");
    }
    if done.folded.is_empty() {
        println!("nothing to fold: no resolved incident older than {older_than}");
    } else {
        println!("folded {} resolved incident(s) into {}", done.folded.len(), done.digests.join(", "));
    }
    Ok(0)
}

fn fmt_map(m: &std::collections::BTreeMap<String, u32>) -> String {
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
