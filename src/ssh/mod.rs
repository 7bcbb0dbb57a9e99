//! Hosts over SSH, through the system `ssh` (openssh crate, multiplexed: one
//! master connection per host per run, reused by every check and action).
//! Key-based only; `known_hosts` is honoured strictly (an unknown or changed
//! host key is an error, never accepted); connect and every command have a
//! timeout. Commands are built from typed arguments, each shell-escaped;
//! their output is read through the cap of `crate::capture`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder};
use tokio::sync::Mutex;

/// An SSH inventory host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub name: String,
    pub line: usize,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub key_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub jump: Option<String>,
    pub tags: Vec<String>,
}

/// Whether `unit` is a plausible unit or service name (no shell, no paths).
pub fn valid_unit(unit: &str) -> bool {
    !unit.is_empty() && unit.len() <= 128 && !unit.starts_with('-') && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b"@._:-".contains(&b))
}

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a remote command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// SSH sessions of one run, by host name.
pub struct Pool {
    hosts: Vec<HostSpec>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

fn expand(path: &std::path::Path) -> std::path::PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => std::env::var_os("HOME").map_or_else(|| path.to_path_buf(), |h| std::path::PathBuf::from(h).join(rest)),
        Err(_) => path.to_path_buf(),
    }
}

impl Pool {
    pub fn new(hosts: Vec<HostSpec>) -> Self {
        Self { hosts, sessions: Mutex::new(HashMap::new()) }
    }

    fn host(&self, name: &str) -> Result<&HostSpec, String> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| format!("no host named {name} in HEARTBEAT.md hosts:"))
    }

    fn destination(h: &HostSpec) -> String {
        match &h.user {
            Some(u) => format!("{u}@{}", h.address),
            None => h.address.clone(),
        }
    }

    async fn session(&self, name: &str) -> Result<Arc<Session>, String> {
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(name) {
            return Ok(s.clone());
        }
        let h = self.host(name)?;
        let mut b = SessionBuilder::default();
        b.port(h.port).known_hosts_check(KnownHosts::Strict).connect_timeout(CONNECT_TIMEOUT).server_alive_interval(Duration::from_secs(15));
        if let Some(u) = &h.user {
            b.user(u.clone());
        }
        if let Some(k) = &h.key_file {
            b.keyfile(expand(k));
        }
        if let Some(k) = &h.known_hosts {
            b.user_known_hosts_file(expand(k));
        }
        // ssh applies its command line to the destination only: the jump host's
        // user, port, key and known_hosts go in a config file (`-F`), which ssh
        // hands to the jump's own connection too. Read at connect, then removed.
        let config = match &h.jump {
            Some(j) => {
                let path = std::env::temp_dir().join(format!("nightshift-ssh-{}-{}-{}.conf", std::process::id(), h.name, chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()));
                write_private(&path, &self.jump_config(j)?).map_err(|e| format!("ssh to {}: writing the jump host's config {}: {e}", h.name, path.display()))?;
                b.config_file(&path).jump_hosts([alias(j)]);
                Some(path)
            }
            None => None,
        };
        let connect = b.connect_mux(Self::destination(h));
        let connected = tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(5), connect).await;
        if let Some(path) = config {
            let _ = std::fs::remove_file(path);
        }
        let session = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(h, &e)),
            Err(_) => return Err(format!("ssh to {} ({}:{}) did not connect within {}s", h.name, h.address, h.port, CONNECT_TIMEOUT.as_secs())),
        };
        let s = Arc::new(session);
        sessions.insert(name.to_string(), s.clone());
        Ok(s)
    }

    /// ssh_config entries for the jump host `first` and the hosts it jumps through in turn.
    fn jump_config(&self, first: &str) -> Result<String, String> {
        let mut text = String::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut next = Some(first);
        while let Some(name) = next {
            if seen.contains(&name) {
                return Err(format!("the jump: hosts of {first} loop through {name}"));
            }
            seen.push(name);
            let h = self.host(name)?;
            text.push_str(&format!("Host {}\n  HostName {}\n  Port {}\n", alias(name), quoted(&h.address)?, h.port));
            if let Some(u) = &h.user {
                text.push_str(&format!("  User {}\n", quoted(u)?));
            }
            if let Some(k) = &h.key_file {
                text.push_str(&format!("  IdentityFile {}\n  IdentitiesOnly yes\n", quoted(&expand(k).display().to_string())?));
            }
            if let Some(k) = &h.known_hosts {
                text.push_str(&format!("  UserKnownHostsFile {}\n", quoted(&expand(k).display().to_string())?));
            }
            text.push_str(&format!("  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout {}\n", CONNECT_TIMEOUT.as_secs()));
            if let Some(j) = &h.jump {
                text.push_str(&format!("  ProxyJump {}\n", alias(j)));
            }
            next = h.jump.as_deref();
        }
        Ok(text)
    }

    /// Runs `program` with `args` (each escaped for the remote shell) on a host.
    pub async fn run(&self, host: &str, program: &str, args: &[&str], timeout: Duration) -> Result<Output, String> {
        let session = self.session(host).await?;
        let mut cmd = session.command(program);
        for a in args {
            cmd.arg(a);
        }
        cmd.stdin(openssh::Stdio::null()).stdout(openssh::Stdio::piped()).stderr(openssh::Stdio::piped());
        // Output through the cap, drained to its end before the exit status is read
        // (openssh ends the streams once the status is in).
        let finished = async {
            let mut child = cmd.spawn().await.map_err(|e| e.to_string())?;
            let (stdout, stderr) = (child.stdout().take(), child.stderr().take());
            let (stdout, stderr) = crate::capture::both(stdout, stderr).await.map_err(|e| e.to_string())?;
            let status = child.wait().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(Output { code: status.code(), stdout, stderr })
        };
        match tokio::time::timeout(timeout, finished).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(format!("{program} on {host}: {e}")),
            Err(_) => Err(format!("{program} on {host} did not finish within {}", crate::duration::format(timeout))),
        }
    }

    /// Runs a fixed shell script with positional arguments (`sh -c SCRIPT _ ARGS…`): the
    /// script is nightshift's own text, the arguments are escaped data.
    pub async fn script(&self, host: &str, script: &str, args: &[&str], timeout: Duration) -> Result<Output, String> {
        let mut all = vec!["-c", script, "nightshift"];
        all.extend_from_slice(args);
        self.run(host, "sh", &all, timeout).await
    }
}

/// A jump host's name in the generated ssh config (host names are a-z, 0-9 and -).
fn alias(name: &str) -> String {
    format!("nightshift-jump-{name}")
}

/// A value for ssh_config, quoted; one that could end the quote or the line is refused.
fn quoted(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(['"', '\n', '\r', '\0']) {
        return Err(format!("{value:?} cannot be written to an ssh config (a quote or a line break)"));
    }
    Ok(format!("\"{value}\""))
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

fn connect_error(h: &HostSpec, e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    let hint = if text.contains("Host key verification failed") || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || text.contains("No ED25519 host key is known") || text.contains("host key")
    {
        " — the host key is unknown or has changed: check it, then update known_hosts; nightshift never accepts a key by itself"
    } else {
        ""
    };
    format!("ssh to {} ({}:{}) failed: {text}{hint}", h.name, h.address, h.port)
}
