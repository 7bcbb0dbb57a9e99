//! `process`: a process is running, by name or by pidfile. A zombie is not
//! running, and neither is a pid that belongs to another program: a pidfile
//! outlives its daemon, and the kernel gives its pid to whatever starts next.
//!
//! The pid of a pidfile is the service only when
//! - it started no later than the pidfile was written (a process started
//!   after it cannot be the one that wrote it: the pid was reused), and
//! - when the check declares how the service starts (`start:` of a service
//!   check), its executable, name or command line share a name with that
//!   command line or the pidfile's name.
//!
//! A stale pidfile (its pid is gone) comes with the last lines of the
//! service's log: the file the declared start command sends its output to,
//! else the first of `/var/log/NAME.log`, `/var/log/NAME/NAME.log`,
//! `/var/log/NAME/error.log`, `DIR/NAME.log`, `DIR/../log/NAME.log` and
//! `DIR/../logs/NAME.log` (NAME the pidfile's name without `.pid`, DIR its
//! directory) that is a regular file; the last 64 KiB, at most 10 lines.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{Check, Context, Outcome, ProcessRef, Status};

pub struct Process<'a> {
    pub by: &'a ProcessRef,
}

/// (comm, state) of a pid from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(String, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(comm, state, _)| (comm, state))
}

/// (comm, state, start time in clock ticks after boot) of a /proc/<pid>/stat line.
fn parse_stat(text: &str) -> Option<(String, char, Option<u64>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // Field 22 of stat; `rest` starts at field 3.
    Some((comm, state, rest.get(19).and_then(|s| s.parse().ok())))
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

/// Linux reports process times in /proc in USER_HZ, 100 on every architecture nightshift runs on.
const TICKS_PER_SECOND: u64 = 100;
/// A process that started up to this long after its pidfile was written
/// still counts as its writer (clock steps, coarse timestamps).
const START_SLACK_SECS: i64 = 60;
/// How much of a log is read, and how many of its last lines are kept.
const LOG_BYTES: u64 = 64 * 1024;
const LOG_LINES: usize = 10;
const LINE_CHARS: usize = 300;
const CMDLINE_BYTES: usize = 4096;

/// What a pidfile names and what /proc says about that pid, here or on a host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PidFacts {
    /// The pidfile's first line (bounded), when the file could be read.
    pub content: Option<String>,
    /// Why the pidfile could not be read.
    pub unreadable: Option<String>,
    /// Unix seconds of the pidfile's last write.
    pub written: Option<i64>,
    pub pid: Option<u32>,
    /// (comm, state) when the pid exists.
    pub process: Option<(String, char)>,
    /// Unix seconds the process started.
    pub started: Option<i64>,
    /// Target of /proc/PID/exe (unreadable for another user's process unless root).
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    /// The log read for a stale pidfile, and its last lines.
    pub log: Option<(String, Vec<String>)>,
}

/// Reads the facts of `pidfile` on this host; `logs` are read, first that is
/// a regular file, only when the pid is gone.
pub fn local_facts(pidfile: &Path, logs: &[PathBuf]) -> PidFacts {
    let mut f = PidFacts::default();
    let meta = std::fs::metadata(pidfile);
    let text = match std::fs::File::open(pidfile) {
        Ok(file) => {
            let mut buf = Vec::new();
            let _ = file.take(64).read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => {
            f.unreadable = Some(e.to_string());
            return f;
        }
    };
    f.written = meta.ok().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64);
    f.pid = text.parse().ok();
    f.content = Some(text);
    let Some(pid) = f.pid else { return f };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_stat) {
        Some((comm, state, ticks)) => {
            f.process = Some((comm, state));
            let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok()));
            f.started = btime.zip(ticks).map(|(b, t)| b + (t / TICKS_PER_SECOND) as i64);
            f.exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.display().to_string());
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            f.cmdline = split_cmdline(&raw[..raw.len().min(CMDLINE_BYTES)], 0);
        }
        None => f.log = logs.iter().find_map(|p| tail(p).map(|lines| (p.display().to_string(), lines))),
    }
    f
}

fn split_cmdline(raw: &[u8], sep: u8) -> Vec<String> {
    raw.split(|b| *b == sep).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).to_string()).collect()
}

/// The last lines of a regular file (never through a symlink), bounded.
fn tail(path: &Path) -> Option<Vec<String>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(meta.len().saturating_sub(LOG_BYTES))).ok()?;
    let mut buf = Vec::new();
    file.take(LOG_BYTES).read_to_end(&mut buf).ok()?;
    Some(last_lines(&String::from_utf8_lossy(&buf)))
}

fn last_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(LOG_LINES)..].iter().map(|l| l.chars().take(LINE_CHARS).collect()).collect()
}

/// The fixed script that reads a pidfile's facts on a host: `$1` the pidfile,
/// the rest the log candidates. One round trip; every value is a line.
pub const SCRIPT: &str = r#"echo pidfile
[ -r "$1" ] || { echo "unreadable $(ls -d -- "$1" 2>&1 >/dev/null | head -c 300)"; exit 0; }
echo "written $(stat -c %Y -- "$1")"
echo "content $(head -n 1 -- "$1" | head -c 64)"
pid=$(head -n 1 -- "$1" | head -c 64 | tr -d ' \t\r')
case $pid in ''|*[!0-9]*) exit 0;; esac
shift
if [ -r "/proc/$pid/stat" ]; then
  echo "btime $(sed -n 's/^btime //p' /proc/stat)"
  echo "stat $(head -c 1024 "/proc/$pid/stat" | tr '\n' ' ')"
  echo "exe $(readlink "/proc/$pid/exe" 2>/dev/null)"
  printf 'cmdline '; head -c 4096 "/proc/$pid/cmdline" | tr '\000\n' '\037 '; echo
else
  for f in "$@"; do
    if [ -f "$f" ] && [ ! -L "$f" ] && [ -r "$f" ]; then echo "log $f"; tail -c 65536 -- "$f" | sed 's/^/| /'; break; fi
  done
fi"#;

/// Parses what `SCRIPT` printed.
pub fn parse_script(out: &str) -> PidFacts {
    let mut f = PidFacts::default();
    let (mut btime, mut ticks, mut log_lines, mut log) = (None, None, String::new(), None);
    for line in out.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "unreadable" => f.unreadable = Some(value.trim().to_string()).filter(|s| !s.is_empty()).or(Some("cannot be read".into())),
            "written" => f.written = value.trim().parse().ok(),
            "content" => {
                f.content = Some(value.trim().to_string());
                f.pid = value.trim().parse().ok();
            }
            "btime" => btime = value.trim().parse::<i64>().ok(),
            "stat" => {
                if let Some((comm, state, t)) = parse_stat(value) {
                    f.process = Some((comm, state));
                    ticks = t;
                }
            }
            "exe" => f.exe = Some(value.trim().to_string()).filter(|s| !s.is_empty()),
            "cmdline" => f.cmdline = split_cmdline(value.as_bytes(), 0x1f),
            "log" => log = Some(value.to_string()),
            "|" => {
                log_lines.push_str(value);
                log_lines.push('\n');
            }
            _ => {}
        }
    }
    f.started = btime.zip(ticks).map(|(b, t)| b + (t / TICKS_PER_SECOND) as i64);
    f.log = log.map(|l| (l, last_lines(&log_lines)));
    f
}

/// Words that name nothing in particular (path parts, shell words, tools).
const GENERIC: &[&str] = &[
    "usr",
    "bin",
    "sbin",
    "local",
    "opt",
    "srv",
    "var",
    "run",
    "tmp",
    "home",
    "etc",
    "lib",
    "libexec",
    "log",
    "logs",
    "pid",
    "pids",
    "dev",
    "null",
    "proc",
    "nohup",
    "setsid",
    "sudo",
    "exec",
    "env",
    "echo",
    "printf",
    "sleep",
    "true",
    "false",
    "then",
    "else",
    "start",
    "stop",
    "restart",
    "reload",
    "daemon",
    "daemonize",
    "service",
    "systemctl",
    "bash",
    "dash",
    "zsh",
    "and",
    "the",
    "for",
    "while",
    "kill",
    "test",
    "cat",
    "tee",
    "nice",
    "ionice",
    "timeout",
    "runuser",
    "chpst",
    "ssh",
    "data",
];
/// Programs that run the service's code: the service is named in their arguments.
const INTERPRETERS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "busybox", "env", "perl", "ruby", "node", "java", "php", "python", "python2", "python3", "pypy", "pypy3"];

/// The lowercase words of `s` (letters only, at least 3), without generic ones.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| w.len() >= 3).map(str::to_ascii_lowercase).filter(|w| !GENERIC.contains(&w.as_str())).collect()
}

/// The names that identify a service: the pidfile's name and directory
/// (`/run/postgresql/14-main.pid`), and the words of its declared start command line.
pub fn identity(pidfile: &Path, start_line: &str) -> Vec<String> {
    let stem = pidfile.file_name().map(|n| n.to_string_lossy().trim_end_matches(".pid").to_string()).unwrap_or_default();
    let mut all = words(&stem);
    all.extend(pidfile.parent().and_then(Path::file_name).map(|d| words(&d.to_string_lossy())).unwrap_or_default());
    all.extend(words(start_line));
    all.sort();
    all.dedup();
    all
}

/// The names a process goes by: comm, its executable, argv[0], and the
/// arguments of an interpreter (the script it runs).
fn process_words(f: &PidFacts) -> Vec<String> {
    let base = |s: &str| s.trim_end_matches(" (deleted)").rsplit('/').next().unwrap_or("").to_string();
    let mut names: Vec<String> = f.process.iter().map(|(c, _)| c.clone()).collect();
    names.extend(f.exe.as_deref().map(base));
    if let Some(a0) = f.cmdline.first() {
        // A title rewritten by the program itself (`nginx: master process …`) keeps its words.
        names.push(a0.clone());
        let prog = base(a0.split_whitespace().next().unwrap_or(a0));
        if INTERPRETERS.iter().any(|i| prog.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.') == *i || prog == *i) {
            names.extend(f.cmdline.iter().skip(1).take(8).map(|a| base(a)));
        }
    }
    names.iter().flat_map(|n| words(n)).collect()
}

fn related(a: &str, b: &str) -> bool {
    a == b || (a.len().min(b.len()) >= 4 && (a.starts_with(b) || b.starts_with(a)))
}

/// Paths where a stale service's log may be: the targets of the start
/// command's output redirections, then the common places (module docs).
pub fn log_candidates(pidfile: &Path, start_line: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let tokens: Vec<&str> = start_line.split_whitespace().collect();
    for (i, t) in tokens.iter().enumerate() {
        let t = t.trim_start_matches(['1', '2', '&']);
        let target = if let Some(rest) = t.strip_prefix(">>").or_else(|| t.strip_prefix('>')) {
            if rest.is_empty() { tokens.get(i + 1).copied().unwrap_or("") } else { rest }
        } else {
            continue;
        };
        let target = target.trim_matches(['"', '\'', ';', ')']);
        if target.starts_with('/') && target != "/dev/null" {
            out.push(PathBuf::from(target));
        }
    }
    let stem = pidfile.file_name().map(|n| n.to_string_lossy().trim_end_matches(".pid").to_string()).unwrap_or_default();
    if !stem.is_empty() && !stem.contains('/') {
        let dir = pidfile.parent().unwrap_or(Path::new("/"));
        for p in [
            PathBuf::from(format!("/var/log/{stem}.log")),
            PathBuf::from(format!("/var/log/{stem}/{stem}.log")),
            PathBuf::from(format!("/var/log/{stem}/error.log")),
            dir.join(format!("{stem}.log")),
            dir.join(format!("../log/{stem}.log")),
            dir.join(format!("../logs/{stem}.log")),
        ] {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map_or_else(|| ts.to_string(), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// The verdict on a pidfile's pid. `expected` are the service's names
/// (empty: none declared, only the start time is compared); `place` is
/// appended to summaries (" on web-01").
pub fn judge(pidfile: &Path, f: &PidFacts, expected: &[String], place: &str) -> Outcome {
    let p = pidfile.display().to_string();
    let base = |o: Outcome| o.with("pidfile", p.as_str());
    if let Some(e) = &f.unreadable {
        return base(Outcome::new(Status::Failing, format!("pidfile {p}{place} unreadable: {e}")).with("problem", "no-pidfile"));
    }
    let Some(pid) = f.pid else {
        return base(Outcome::new(Status::Failing, format!("pidfile {p}{place} holds no pid")).with("problem", "no-pid").with("content", f.content.clone().unwrap_or_default()));
    };
    let Some((comm, state)) = &f.process else {
        let mut o = Outcome::new(Status::Failing, format!("pid {pid} from {p}{place} is not running (stale pidfile)")).with("problem", "stale").with("pid", pid);
        if let Some(w) = f.written {
            o = o.with("pidfile_written", time(w));
        }
        o = match &f.log {
            Some((log, lines)) => o.with("log", log.as_str()).with("log_tail", lines.clone()),
            None => o.with("log", "none found"),
        };
        return base(o);
    };
    if matches!(state, 'Z' | 'X' | 'x') {
        return base(Outcome::new(Status::Failing, format!("pid {pid} ({comm}) from {p}{place} is a zombie")).with("problem", "zombie").with("pid", pid));
    }
    let cmdline = f.cmdline.join(" ");
    let facts = |o: Outcome| {
        let mut o = o.with("pid", pid).with("comm", comm.as_str()).with("cmdline", crate::capture::clip(&cmdline, 500));
        if let Some(e) = &f.exe {
            o = o.with("exe", e.as_str());
        }
        if let Some(s) = f.started {
            o = o.with("started", time(s));
        }
        if let Some(w) = f.written {
            o = o.with("pidfile_written", time(w));
        }
        base(o)
    };
    let program = format!("`{comm}` (executable {}, command line `{}`)", f.exe.as_deref().unwrap_or("unreadable"), crate::capture::clip(&cmdline, 200));
    if let (Some(s), Some(w)) = (f.started, f.written)
        && s > w + START_SLACK_SECS
    {
        let summary = format!("pid {pid} from {p}{place} is not the service: it is {program}, started {} after the pidfile was written ({}): the pid was reused", time(s), time(w));
        return facts(Outcome::new(Status::Failing, summary)).with("problem", "other-program").with("reason", "started after the pidfile was written");
    }
    if !expected.is_empty() {
        let names = process_words(f);
        if !names.iter().any(|n| expected.iter().any(|e| related(n, e))) {
            let summary = format!("pid {pid} from {p}{place} is not the service: it is {program}, which shares no name with the service ({})", expected.join(", "));
            return facts(Outcome::new(Status::Failing, summary))
                .with("problem", "other-program")
                .with("reason", "its name and command line do not match the service")
                .with("expected", expected.to_vec());
        }
    }
    facts(Outcome::new(Status::Ok, format!("pid {pid} ({comm}) from {p}{place} is running")))
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
        ProcessRef::Pidfile(p) => judge(p, &local_facts(p, &log_candidates(p, "")), &[], ""),
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

/// A failing pidfile verdict for the note: the problem class, what it means
/// in one sentence, then the evidence (the process the pid belongs to, or the
/// last lines of the service's log). `None` for verdicts with nothing more to say.
pub fn explain(result: &super::CheckResult) -> Option<(&'static str, Vec<String>)> {
    use crate::markdown::code;
    let ev = |k: &str| result.evidence.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let pid = result.evidence.get("pid").and_then(serde_json::Value::as_u64).unwrap_or(0);
    match ev("problem") {
        "other-program" => {
            let mut steps = vec![
                format!(
                    "the pidfile names a process that is not the service ({}): the service is not running under pid {pid}; that pid now belongs to another program, which nothing may signal",
                    ev("reason")
                ),
                code(&result.summary),
                format!("pid {pid}: {} (executable {}), command line {}", code(ev("comm")), code(ev("exe")), code(ev("cmdline"))),
            ];
            if !ev("started").is_empty() || !ev("pidfile_written").is_empty() {
                steps.push(format!("process started {}, pidfile written {}", code(ev("started")), code(ev("pidfile_written"))));
            }
            Some(("pid-reused", steps))
        }
        "stale" => {
            let mut steps = vec![format!("the service is not running: its pidfile names pid {pid}, which no longer exists (the process ended without removing its pidfile)"), code(&result.summary)];
            let lines: Vec<String> = result.evidence.get("log_tail").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|l| l.as_str()).map(code).collect()).unwrap_or_default();
            match (ev("log"), lines.is_empty()) {
                ("none found" | "", _) => steps.push("no log found beside the pidfile, under /var/log, or in the start command's redirections: its last words are unknown".into()),
                (log, true) => steps.push(format!("its log {} is empty", code(log))),
                (log, false) => steps.push(format!("last lines of its log {} (oldest first): {}", code(log), lines.join(" · "))),
            }
            Some(("process-down", steps))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(comm: &str, exe: &str, cmdline: &[&str], started: i64, written: i64) -> PidFacts {
        PidFacts {
            content: Some("42".into()),
            pid: Some(42),
            process: Some((comm.into(), 'S')),
            started: Some(started),
            written: Some(written),
            exe: Some(exe.into()),
            cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_pid_started_after_its_pidfile_was_written_is_not_the_service() {
        let p = Path::new("/run/app.pid");
        let o = judge(p, &running("sleep", "/usr/bin/sleep", &["sleep", "600"], 10_000, 1_000), &[], "");
        assert_eq!(o.status, Status::Failing, "{}", o.summary);
        assert!(o.summary.contains("`sleep`") && o.summary.contains("the pid was reused"), "{}", o.summary);
        // Written after the start (the daemon wrote it): the service.
        assert_eq!(judge(p, &running("sleep", "/usr/bin/sleep", &["sleep"], 1_000, 1_005), &[], "").status, Status::Ok);
    }

    #[test]
    fn names_are_compared_with_what_the_service_declares() {
        let p = Path::new("/run/postgresql/14-main.pid");
        let want = identity(p, "pg_ctlcluster 14 main start");
        let pg = running("postgres", "/usr/lib/postgresql/14/bin/postgres", &["/usr/lib/postgresql/14/bin/postgres", "-D", "/var/lib/postgresql/14/main"], 1, 2);
        assert_eq!(judge(p, &pg, &want, "").status, Status::Ok, "{want:?}");
        let other = running("sleep", "/usr/bin/sleep", &["sleep", "600"], 1, 2);
        let o = judge(p, &other, &want, "");
        assert_eq!(o.status, Status::Failing);
        assert!(o.summary.contains("shares no name with the service"), "{}", o.summary);
        // A script run by an interpreter is named by its argument; a rewritten title keeps its words.
        let p = Path::new("/srv/app/run/worker.pid");
        let want = identity(p, "cd /srv/app && nohup python3 worker.py >> /srv/app/log/worker.log 2>&1 &");
        assert_eq!(judge(p, &running("python3", "/usr/bin/python3.11", &["python3", "worker.py"], 1, 2), &want, "").status, Status::Ok);
        let want = identity(Path::new("/run/nginx.pid"), "");
        assert_eq!(judge(Path::new("/run/nginx.pid"), &running("nginx", "/usr/sbin/nginx", &["nginx: master process /usr/sbin/nginx"], 1, 2), &want, "").status, Status::Ok);
    }

    #[test]
    fn log_candidates_start_with_the_start_commands_redirections() {
        let c = log_candidates(Path::new("/srv/app/run/app.pid"), "nohup /srv/app/bin/app >>/srv/app/log/out.log 2> /srv/app/log/err.log &");
        assert_eq!(c[0], PathBuf::from("/srv/app/log/out.log"));
        assert_eq!(c[1], PathBuf::from("/srv/app/log/err.log"));
        assert!(c.contains(&PathBuf::from("/var/log/app.log")) && c.contains(&PathBuf::from("/srv/app/run/app.log")));
    }

    #[test]
    fn the_scripts_output_is_parsed() {
        let out =
            "pidfile\nwritten 1700000000\ncontent 4242\nbtime 1690000000\nstat 4242 (my app) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 500 0\nexe /usr/bin/app\ncmdline app\x1f--port\x1f80\n";
        let f = parse_script(out);
        assert_eq!((f.pid, f.process.clone(), f.started, f.exe.as_deref()), (Some(4242), Some(("my app".into(), 'S')), Some(1_690_000_005), Some("/usr/bin/app")));
        assert_eq!(f.cmdline, ["app", "--port", "80"]);
        let f = parse_script("pidfile\nwritten 1\ncontent 77\nlog /var/log/app.log\n| one\n| two\n");
        assert_eq!(f.log, Some(("/var/log/app.log".into(), vec!["one".into(), "two".into()])));
        assert!(f.process.is_none());
    }
}
