//! `process`: a process is running, by name or by pidfile. A zombie is not running.

use std::path::Path;

use super::{Check, Context, Outcome, ProcessRef, Status};

pub struct Process<'a> {
    pub by: &'a ProcessRef,
}

/// (comm, state) of a pid from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(String, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let state = text[close + 1..].trim_start().chars().next()?;
    Some((comm, state))
}

fn argv0(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = raw.split(|b| *b == 0).next()?;
    let s = String::from_utf8_lossy(first);
    Some(s.rsplit('/').next().unwrap_or(&s).to_string())
}

/// Pids whose name (comm, or the base name of argv[0]) is `name`, split into live and zombie.
pub fn find_by_name(name: &str) -> std::io::Result<(Vec<u32>, Vec<u32>)> {
    let (mut live, mut zombies) = (Vec::new(), Vec::new());
    let comm_name: String = name.chars().take(15).collect();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some((comm, state)) = stat(pid) else { continue };
        if comm == comm_name || argv0(pid).as_deref() == Some(name) {
            if matches!(state, 'Z' | 'X' | 'x') { zombies.push(pid) } else { live.push(pid) }
        }
    }
    Ok((live, zombies))
}

fn by_pidfile(path: &Path) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Outcome::new(Status::Failing, format!("pidfile {} unreadable: {e}", path.display())),
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Outcome::new(Status::Failing, format!("pidfile {} holds no pid", path.display()));
    };
    match stat(pid) {
        Some((comm, state)) if !matches!(state, 'Z' | 'X' | 'x') => Outcome::new(Status::Ok, format!("pid {pid} ({comm}) from {} is running", path.display())).with("pid", pid).with("comm", comm),
        Some((comm, _)) => Outcome::new(Status::Failing, format!("pid {pid} ({comm}) from {} is a zombie", path.display())).with("pid", pid),
        None => Outcome::new(Status::Failing, format!("pid {pid} from {} is not running (stale pidfile)", path.display())).with("pid", pid),
    }
}

impl Check for Process<'_> {
    const KIND: &'static str = "process";

    fn target(&self) -> String {
        match self.by {
            ProcessRef::Name(n) => n.clone(),
            ProcessRef::Pidfile(p) => p.display().to_string(),
        }
    }

    async fn run(&self, _ctx: &Context) -> Outcome {
        // A pidfile on a hung mount (or a FIFO) blocks its reader: off the async threads, so the check's time limit still ends it.
        let by = self.by.clone();
        tokio::task::spawn_blocking(move || find(&by)).await.unwrap_or_else(|e| Outcome::new(Status::Error, e.to_string()))
    }
}

/// The verdict on a process, by pidfile or by name (blocking: reads /proc and the pidfile).
fn find(by: &ProcessRef) -> Outcome {
    match by {
        ProcessRef::Pidfile(p) => by_pidfile(p),
        ProcessRef::Name(name) => match find_by_name(name) {
            Err(e) => Outcome::new(Status::Error, format!("cannot read /proc: {e}")),
            Ok((live, zombies)) if !live.is_empty() => Outcome::new(Status::Ok, format!("{name} is running (pid {})", join(&live))).with("pids", live).with("zombies", zombies),
            Ok((_, zombies)) if !zombies.is_empty() => Outcome::new(Status::Failing, format!("{name} is not running: only zombies (pid {})", join(&zombies))).with("zombies", zombies),
            Ok(_) => Outcome::new(Status::Failing, format!("no process named {name} is running")),
        },
    }
}

fn join(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
