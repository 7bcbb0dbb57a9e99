//! Actions on a host (over SSH, or here): `clean_logs` under a declared root
//! and `restart_service`. Each is a fixed script; the root, ages, sizes and
//! unit names are escaped positional arguments, never spliced into it.

use std::time::Duration;

use super::clean_logs::CleanSettings;
use crate::checks::{Context, host::sh, human_bytes};

const TIMEOUT: Duration = Duration::from_secs(300);

const CLEAN: &str = r#"set -u
root=$1; mins=$2; kb=$3; cores=$4; mode=$5
if [ ! -d "$root" ] || [ -L "$root" ]; then echo "$root is not a real directory" >&2; exit 2; fi
old -printf '%s\n' | count
big -printf '%s\n' | count
if [ "$cores" = 1 ]; then cores -printf '%s\n' | count; else echo "0 0"; fi
if [ "$mode" = clean ]; then
  old -delete
  big -exec gzip -- {} +
  if [ "$cores" = 1 ]; then cores -delete; fi
fi"#;

const RESTART: &str = r#"if [ -d /run/systemd/system ]; then systemctl restart -- "$1"; else service "$1" restart; fi"#;

fn counts(line: Option<&str>) -> (u64, u64) {
    let mut f = line.unwrap_or("0 0").split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

/// Lists (and with `clean`, does) the cleanup of `root` on `host`.
pub async fn clean_logs(ctx: &Context, host: Option<&str>, root: &std::path::Path, s: &CleanSettings, clean: bool) -> Result<String, String> {
    let root_s = root.display().to_string();
    let mins = (s.max_age.as_secs() / 60).max(1).to_string();
    let kb = (s.gzip_over_bytes / 1024).max(1).to_string();
    let cores = if s.core_dumps { "1" } else { "0" };
    let mode = if clean { "clean" } else { "list" };
    let script = format!("{}\n{CLEAN}", super::clean_logs::SELECT_SH);
    let out = sh(ctx, host, &script, &[&root_s, &mins, &kb, cores, mode], TIMEOUT).await?;
    if out.code != Some(0) {
        return Err(format!("cleanup of {root_s}{} failed: {}", host.map(|h| format!(" on {h}")).unwrap_or_default(), out.stderr.trim()));
    }
    let mut lines = out.stdout.lines();
    let (o, ob) = counts(lines.next());
    let (b, bb) = counts(lines.next());
    let (c, cb) = counts(lines.next());
    let verb = |would: &str, did: &str| if clean { did.to_string() } else { would.to_string() };
    Ok(format!(
        "{} {o} old log(s) ({}), {} {b} big log(s) ({}), {} {c} core dump(s) ({}) under {root_s}{}",
        verb("delete", "deleted"),
        human_bytes(ob),
        verb("gzip", "gzipped"),
        human_bytes(bb),
        verb("remove", "removed"),
        human_bytes(cb),
        host.map(|h| format!(" on {h}")).unwrap_or_default()
    ))
}

pub async fn restart_service(ctx: &Context, host: Option<&str>, unit: &str) -> Result<String, String> {
    if !crate::ssh::valid_unit(unit) {
        return Err(format!("{unit:?} is not a service name"));
    }
    let out = sh(ctx, host, RESTART, &[unit], Duration::from_secs(120)).await?;
    let place = host.map(|h| format!(" on {h}")).unwrap_or_default();
    match out.code {
        Some(0) => Ok(format!("restarted {unit}{place}")),
        code => Err(format!("restart of {unit}{place} exited {}: {}", code.map_or("on a signal".into(), |c| c.to_string()), out.stderr.trim())),
    }
}
