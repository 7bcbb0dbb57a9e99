//! Checks on an inventory host over SSH (`host:`), and the `service` kind
//! (local or remote). Each runs a fixed command or script whose data (paths,
//! unit names) are escaped positional arguments, and parses the output.

use std::time::Duration;

use super::{Context, Outcome, ProbeSpec, ServiceRef, Status, human_bytes};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a fixed script with positional arguments here (`host` None) or on a host.
pub async fn sh(ctx: &Context, host: Option<&str>, script: &str, args: &[&str], timeout: Duration) -> Result<crate::ssh::Output, String> {
    match host {
        Some(h) => {
            let pool = ctx.remote.as_ref().ok_or("no SSH inventory in this run")?;
            pool.script(h, script, args, timeout).await
        }
        None => match super::exec::run_shell(script, args, &ctx.workdir, timeout).await {
            Ok(r) if r.timed_out => Err(format!("did not finish within {}", crate::duration::format(timeout))),
            Ok(r) => Ok(crate::ssh::Output { code: r.code, stdout: r.stdout, stderr: r.stderr }),
            Err(e) => Err(format!("sh: {e}")),
        },
    }
}

/// Parses `df -P -k` output: (size, used, available) in bytes.
pub fn parse_df(text: &str) -> Option<(u64, u64, u64)> {
    let line = text.lines().nth(1)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((n(1)? * 1024, n(2)? * 1024, n(3)? * 1024))
}

/// Parses `df -P -i` output: inodes used percent.
pub fn parse_df_inodes(text: &str) -> Option<f64> {
    let f: Vec<&str> = text.lines().nth(1)?.split_whitespace().collect();
    let total: f64 = f.get(1)?.parse().ok()?;
    let used: f64 = f.get(2)?.parse().ok()?;
    (total > 0.0).then(|| used * 100.0 / total)
}

pub async fn run(probe: &ProbeSpec, host: &str, ctx: &Context) -> Outcome {
    let err = |e: String| Outcome::new(Status::Error, e);
    match probe {
        ProbeSpec::Disk { path, max_used_percent, max_inodes_percent, .. } => {
            let p = path.display().to_string();
            let out = match sh(ctx, Some(host), "df -P -k -- \"$1\" && df -P -i -- \"$1\"", &[&p], TIMEOUT).await {
                Ok(o) if o.code == Some(0) => o,
                Ok(o) => return err(format!("df {p} on {host}: {}", o.stderr.trim())),
                Err(e) => return err(e),
            };
            let mut parts = out.stdout.split("Filesystem").filter(|s| !s.trim().is_empty()).map(|s| format!("Filesystem{s}"));
            let (Some(blocks), inodes) = (parts.next().and_then(|t| parse_df(&t)), parts.next().and_then(|t| parse_df_inodes(&t))) else {
                return err(format!("cannot read df output of {p} on {host}"));
            };
            let (size, used, avail) = blocks;
            let pct = if used + avail == 0 { 0.0 } else { used as f64 * 100.0 / (used + avail) as f64 };
            let mut problems = Vec::new();
            if let Some(max) = max_used_percent.filter(|m| pct > *m) {
                problems.push(format!("{pct:.1}% used of {p} on {host} (limit {max}%)"));
            }
            if let (Some(max), Some(iu)) = (max_inodes_percent, inodes)
                && iu > *max
            {
                problems.push(format!("{iu:.1}% of inodes used on {p} on {host} (limit {max}%)"));
            }
            let (status, summary) = if problems.is_empty() {
                (Status::Ok, format!("{pct:.1}% used of {p} on {host}, {} free", human_bytes(avail)))
            } else {
                (Status::Failing, format!("{}, {} free", problems.join("; "), human_bytes(avail)))
            };
            let mut o = Outcome::new(status, summary).with("host", host).with("path", p).with("used_percent", (pct * 10.0).round() / 10.0).with("size_bytes", size).with("avail_bytes", avail);
            if let Some(m) = max_used_percent {
                o = o.with("max_used_percent", *m);
            }
            if let Some(iu) = inodes {
                o = o.with("inodes_used_percent", (iu * 10.0).round() / 10.0);
            }
            o
        }
        ProbeSpec::Exec { command, timeout } => match sh(ctx, Some(host), command, &[], *timeout).await {
            Ok(o) if o.code == Some(0) => Outcome::new(Status::Ok, format!("`{command}` on {host} exited 0")).with("host", host),
            Ok(o) => Outcome::new(Status::Failing, format!("`{command}` on {host} exited {}", o.code.map_or("on a signal".into(), |c| c.to_string())))
                .with("host", host)
                .with("stdout", crate::capture::clip(&o.stdout, super::exec::EVIDENCE))
                .with("stderr", crate::capture::clip(&o.stderr, super::exec::EVIDENCE)),
            Err(e) if e.contains("did not finish") => Outcome::new(Status::Failing, format!("`{command}` on {host}: {e}")),
            Err(e) => err(e),
        },
        ProbeSpec::Load { max_per_core } => match sh(ctx, Some(host), "cat /proc/loadavg && nproc", &[], TIMEOUT).await {
            Ok(o) => {
                let mut lines = o.stdout.lines();
                let five: Option<f64> = lines.next().and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
                let cores: Option<f64> = lines.next().and_then(|l| l.trim().parse().ok());
                let (Some(five), Some(cores)) = (five, cores) else { return err(format!("cannot read the load of {host}")) };
                let per_core = five / cores.max(1.0);
                let status = if per_core > *max_per_core { Status::Failing } else { Status::Ok };
                Outcome::new(status, format!("load {five:.2} over 5 min on {cores} cores of {host} = {per_core:.2} per core (limit {max_per_core})")).with("host", host).with("per_core", per_core)
            }
            Err(e) => err(e),
        },
        ProbeSpec::Memory { min_available_percent } => match sh(ctx, Some(host), "cat /proc/meminfo", &[], TIMEOUT).await {
            Ok(o) => match super::resources::parse_meminfo(&o.stdout) {
                Some((avail, total)) => {
                    let pct = avail as f64 * 100.0 / total as f64;
                    let status = if pct < *min_available_percent { Status::Failing } else { Status::Ok };
                    Outcome::new(status, format!("{pct:.1}% of memory available on {host} ({} of {})", human_bytes(avail), human_bytes(total)))
                        .with("host", host)
                        .with("available_percent", (pct * 10.0).round() / 10.0)
                }
                _ => err(format!("cannot read /proc/meminfo of {host}")),
            },
            Err(e) => err(e),
        },
        ProbeSpec::Service { by, start } => service(by, start.as_ref(), Some(host), ctx).await,
        other => err(format!("kind {} cannot run over SSH", other.kind())),
    }
}

/// Whether a service runs: a systemd unit (or a SysV service where there is
/// no systemd), or the process of a pidfile, which must be the service's
/// (see `process`: a zombie, a dead pid or another program's pid is not).
pub async fn service(by: &ServiceRef, start: Option<&super::Start>, host: Option<&str>, ctx: &Context) -> Outcome {
    let place = host.map_or("this host".to_string(), str::to_string);
    let with_host = |o: Outcome| match host {
        Some(h) => o.with("host", h),
        None => o,
    };
    let unit = match by {
        ServiceRef::Unit(u) => u,
        ServiceRef::Pidfile(p) => {
            let start_line = start.map_or("", |s| s.command_line.as_str());
            let logs = super::process::log_candidates(p, start_line);
            // Names are compared only when the check declares how the service starts.
            let expected = if start.is_some() { super::process::identity(p, start_line) } else { Vec::new() };
            let facts = match host {
                None => {
                    let (path, logs) = (p.clone(), logs.clone());
                    match tokio::task::spawn_blocking(move || super::process::local_facts(&path, &logs)).await {
                        Ok(f) => f,
                        Err(e) => return Outcome::new(Status::Error, e.to_string()),
                    }
                }
                Some(_) => {
                    let mut args: Vec<String> = vec![p.display().to_string()];
                    args.extend(logs.iter().map(|l| l.display().to_string()));
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    match sh(ctx, host, super::process::SCRIPT, &args, TIMEOUT).await {
                        Ok(o) if o.stdout.starts_with("pidfile") => super::process::parse_script(&o.stdout),
                        Ok(o) => return with_host(Outcome::new(Status::Error, format!("cannot read {} on {place}: {}", p.display(), crate::capture::clip(o.stderr.trim(), 300)))),
                        Err(e) => return with_host(Outcome::new(Status::Error, format!("cannot check the process of {} on {place}: {e}", p.display()))),
                    }
                }
            };
            let on = host.map(|h| format!(" on {h}")).unwrap_or_default();
            return with_host(super::process::judge(p, &facts, &expected, &on).with("manager", "pidfile"));
        }
    };
    let script = "if [ -d /run/systemd/system ]; then echo systemd; systemctl is-active --quiet -- \"$1\"; else echo sysv; service \"$1\" status >/dev/null 2>&1; fi";
    let what = format!("service {unit}");
    match sh(ctx, host, script, &[unit.as_str()], TIMEOUT).await {
        Ok(o) => {
            let manager = o.stdout.lines().next().unwrap_or("").trim().to_string();
            let out = if o.code == Some(0) { Outcome::new(Status::Ok, format!("{what} is running on {place}")) } else { Outcome::new(Status::Failing, format!("{what} is not running on {place}")) };
            with_host(out.with("manager", manager))
        }
        Err(e) => Outcome::new(Status::Error, format!("cannot check {what} on {place}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_is_parsed() {
        let df = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda        264210084  27361508 223372456      11% /\n";
        assert_eq!(parse_df(df), Some((264_210_084 * 1024, 27_361_508 * 1024, 223_372_456 * 1024)));
        let di = "Filesystem       Inodes  IUsed    IFree IUse% Mounted on\n/dev/vda       16777216 734003 16043213    5% /\n";
        assert!((parse_df_inodes(di).unwrap_or_default() - 4.375).abs() < 0.01);
    }
}
