//! Resource usage of this host from /proc: `memory` (available percent),
//! `load` (load average per core), `cpu` (busy percent over a short window).

use std::time::Duration;

use super::{Check, Context, Outcome, Status};

pub struct Memory {
    pub min_available_percent: f64,
}

pub struct Load {
    pub max_per_core: f64,
}

pub struct Cpu {
    pub max_percent: f64,
    pub window: Duration,
}

/// (available, total) bytes from the text of /proc/meminfo (this host's or another's).
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map(|kb| kb * 1024);
    match (field("MemAvailable:"), field("MemTotal:")) {
        (Some(a), Some(t)) if t > 0 => Some((a, t)),
        _ => None,
    }
}

/// (available, total) bytes from this host's /proc/meminfo.
pub fn meminfo() -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    parse_meminfo(&text).ok_or_else(|| "/proc/meminfo has no MemAvailable/MemTotal".into())
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_times() -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = text.lines().find(|l| l.starts_with("cpu ")).ok_or("/proc/stat has no cpu line")?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return Err("/proc/stat cpu line is short".into());
    }
    let idle = v[3] + v[4]; // idle + iowait
    let total: u64 = v.iter().take(8).sum(); // guest time is already in user
    Ok((total - idle, total))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Check for Memory {
    const KIND: &'static str = "memory";
    fn target(&self) -> String {
        "localhost:memory".into()
    }
    async fn run(&self, _ctx: &Context) -> Outcome {
        let (avail, total) = match meminfo() {
            Ok(v) => v,
            Err(e) => return Outcome::new(Status::Error, e),
        };
        let pct = avail as f64 * 100.0 / total as f64;
        let status = if pct < self.min_available_percent { Status::Failing } else { Status::Ok };
        let limit = if status == Status::Failing { format!(", under the limit {}%", self.min_available_percent) } else { String::new() };
        Outcome::new(status, format!("{pct:.1}% of memory available ({} of {}){limit}", super::human_bytes(avail), super::human_bytes(total)))
            .with("available_percent", (pct * 10.0).round() / 10.0)
            .with("available_bytes", avail)
            .with("total_bytes", total)
    }
}

impl Check for Load {
    const KIND: &'static str = "load";
    fn target(&self) -> String {
        "localhost:load".into()
    }
    async fn run(&self, _ctx: &Context) -> Outcome {
        let text = match std::fs::read_to_string("/proc/loadavg") {
            Ok(t) => t,
            Err(e) => return Outcome::new(Status::Error, format!("/proc/loadavg: {e}")),
        };
        let loads: Vec<f64> = text.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
        let [one, five, fifteen] = loads.as_slice() else {
            return Outcome::new(Status::Error, "/proc/loadavg is malformed");
        };
        let n = cores();
        // The 5-minute average: steadier than the 1-minute one, faster than the 15.
        let per_core = five / n as f64;
        let status = if per_core > self.max_per_core { Status::Failing } else { Status::Ok };
        Outcome::new(status, format!("load {five:.2} over 5 min on {n} cores = {per_core:.2} per core (limit {})", self.max_per_core))
            .with("load1", *one)
            .with("load5", *five)
            .with("load15", *fifteen)
            .with("cores", n)
            .with("per_core", (per_core * 100.0).round() / 100.0)
    }
}

impl Check for Cpu {
    const KIND: &'static str = "cpu";
    fn target(&self) -> String {
        "localhost:cpu".into()
    }
    async fn run(&self, _ctx: &Context) -> Outcome {
        let first = match cpu_times() {
            Ok(v) => v,
            Err(e) => return Outcome::new(Status::Error, e),
        };
        tokio::time::sleep(self.window).await;
        let second = match cpu_times() {
            Ok(v) => v,
            Err(e) => return Outcome::new(Status::Error, e),
        };
        let total = second.1.saturating_sub(first.1).max(1);
        let pct = second.0.saturating_sub(first.0) as f64 * 100.0 / total as f64;
        let status = if pct > self.max_percent { Status::Failing } else { Status::Ok };
        Outcome::new(status, format!("CPU {pct:.1}% busy over {} (limit {}%)", crate::duration::format(self.window), self.max_percent))
            .with("busy_percent", (pct * 10.0).round() / 10.0)
            .with("cores", cores())
    }
}
