//! Declared commands (`restart_process`, `run_command`): only the command
//! lines written in AGENTS.md `commands:` ever run, looked up by name.

use std::path::Path;
use std::time::Duration;

use crate::checks::exec::run_shell;

/// How long a declared command may run.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the declared command `name`; Ok(description) when it exits 0.
pub async fn run_declared(commands: &std::collections::BTreeMap<String, String>, name: &str, dir: &Path) -> Result<String, String> {
    let Some(line) = commands.get(name) else {
        return Err(format!("command `{name}` is not declared in AGENTS.md `commands:`"));
    };
    let ran = run_shell(line, &[], dir, TIMEOUT).await.map_err(|e| format!("cannot run `{name}`: {e}"))?;
    let output = crate::redact::redact(ran.stderr.trim().lines().chain(ran.stdout.trim().lines()).last().unwrap_or(""));
    match (ran.timed_out, ran.code) {
        (true, _) => Err(format!("`{name}` did not finish within {}", crate::duration::format(TIMEOUT))),
        (false, Some(0)) => Ok(format!("`{name}` exited 0 in {} ms", ran.elapsed.as_millis())),
        (false, code) => Err(format!("`{name}` exited {}: {output}", code.map_or("on a signal".into(), |c| c.to_string()))),
    }
}
