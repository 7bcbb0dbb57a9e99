//! `exec`: a command from HEARTBEAT.md exits 0 within its timeout. Its output
//! is captured, cut and redacted: it is untrusted evidence, never instructions.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Check, Context, Outcome, Status};

/// Bytes of each stream a failing command leaves in its evidence (the start and the end).
pub const EVIDENCE: usize = 2000;

pub struct Exec<'a> {
    pub command: &'a str,
    pub timeout: Duration,
}

/// What running a shell command produced.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Runs `sh -c command nightshift ARGS…` in `dir` in its own process group
/// (the arguments are the script's `$1`…); on timeout the whole group is
/// killed. Output is read through the cap of `crate::capture`, to its end.
pub async fn run_shell(command: &str, args: &[&str], dir: &std::path::Path, timeout: Duration) -> std::io::Result<Ran> {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(command).arg("nightshift").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).process_group(0);
    if dir.is_dir() {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = async {
        let (out, err) = crate::capture::both(stdout, stderr).await?;
        Ok::<_, std::io::Error>((child.wait().await?, out, err))
    };
    match tokio::time::timeout(timeout, finished).await {
        Ok(done) => {
            let (status, stdout, stderr) = done?;
            Ok(Ran { code: status.code(), stdout, stderr, timed_out: false, elapsed: started.elapsed() })
        }
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            Ok(Ran { code: None, stdout: String::new(), stderr: String::new(), timed_out: true, elapsed: started.elapsed() })
        }
    }
}

impl Check for Exec<'_> {
    const KIND: &'static str = "exec";

    fn target(&self) -> String {
        self.command.to_string()
    }

    async fn run(&self, ctx: &Context) -> Outcome {
        let ran = match run_shell(self.command, &[], &ctx.workdir, self.timeout).await {
            Ok(r) => r,
            Err(e) => return Outcome::new(Status::Error, format!("cannot run `{}`: {e}", self.command)),
        };
        let ms = ran.elapsed.as_millis() as u64;
        let mut o = if ran.timed_out {
            Outcome::new(Status::Failing, format!("`{}` did not finish within {}", self.command, crate::duration::format(self.timeout)))
        } else if ran.code == Some(0) {
            Outcome::new(Status::Ok, format!("`{}` exited 0 ({ms} ms)", self.command))
        } else {
            let code = ran.code.map_or("a signal".to_string(), |c| c.to_string());
            Outcome::new(Status::Failing, format!("`{}` exited {code}", self.command))
        };
        o = o.with("duration_ms", ms);
        if let Some(c) = ran.code {
            o = o.with("exit_code", c);
        }
        if o.status != Status::Ok {
            if !ran.stdout.trim().is_empty() {
                o = o.with("stdout", crate::capture::clip(&ran.stdout, EVIDENCE));
            }
            if !ran.stderr.trim().is_empty() {
                o = o.with("stderr", crate::capture::clip(&ran.stderr, EVIDENCE));
            }
        }
        o
    }
}
