//! `backup`: the newest file matching a glob is younger than `max_age`, at
//! least `min_size`, and passes the integrity tests of `super::archive`,
//! chosen by its type, within their limits.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Check, Context, Outcome, Status, human_bytes};

pub struct Backup<'a> {
    /// A path whose last component may hold `*` and `?` wildcards.
    pub pattern: &'a Path,
    pub max_age: Option<Duration>,
    pub min_size: Option<u64>,
}

fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// The newest regular file matching the pattern, with its modification time.
pub fn newest(pattern: &Path) -> io::Result<Option<(PathBuf, SystemTime, u64)>> {
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let glob = pattern.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut best: Option<(PathBuf, SystemTime, u64)> = None;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // No directory: no backup was ever written there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !wildcard(&glob, &name) || name.ends_with(".sha256") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(_, t, _)| mtime > *t) {
            best = Some((entry.path(), mtime, meta.len()));
        }
    }
    Ok(best)
}

impl Check for Backup<'_> {
    const KIND: &'static str = "backup";

    fn target(&self) -> String {
        self.pattern.display().to_string()
    }

    async fn run(&self, _ctx: &Context) -> Outcome {
        let pattern = self.pattern.to_path_buf();
        let found = match tokio::task::spawn_blocking(move || newest(&pattern)).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Outcome::new(Status::Error, format!("cannot list {}: {e}", self.pattern.parent().unwrap_or(Path::new("/")).display())),
            Err(e) => return Outcome::new(Status::Error, e.to_string()),
        };
        let Some((file, mtime, size)) = found else {
            return Outcome::new(Status::Failing, format!("no backup matches {}", self.pattern.display())).with("problem", "missing");
        };
        let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
        let mut o = Outcome::new(Status::Ok, "").with("file", file.display().to_string()).with("size_bytes", size).with("age_seconds", age.as_secs());
        let mut failures: Vec<(&str, String)> = Vec::new();
        if let Some(max) = self.max_age.filter(|m| age > *m) {
            failures.push(("stale", format!("newest backup is {} old (max_age {})", crate::duration::format(Duration::from_secs(age.as_secs())), crate::duration::format(max))));
        }
        if let Some(min) = self.min_size.filter(|m| size < *m) {
            failures.push(("small", format!("newest backup is {} (min_size {})", human_bytes(size), human_bytes(min))));
        }
        let f = file.clone();
        // The tests stop themselves at the limits (time included): the blocking thread does not outlive them.
        let tests = tokio::task::spawn_blocking(move || super::archive::verify(&f, &super::archive::Limits::for_size(size))).await.unwrap_or_default();
        let passed: Vec<String> = tests.iter().filter_map(|t| t.as_ref().ok().cloned()).collect();
        for t in tests.iter().filter_map(|t| t.as_ref().err()) {
            failures.push(("corrupt", t.clone()));
        }
        o = o.with("tests_passed", passed);
        if failures.is_empty() {
            o.summary = format!("{} ({}, {} old) is intact", file.display(), human_bytes(size), crate::duration::format(Duration::from_secs(age.as_secs())));
        } else {
            o.status = Status::Failing;
            o.summary = format!("{}: {}", file.display(), failures.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "));
            o = o.with("problem", failures[0].0).with("failed_tests", failures.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>());
        }
        o
    }
}

/// Parses sizes such as `10MB`, `512KiB`, `1G`, `2048`: bare units and IEC
/// units are powers of 1024, SI units (kB, MB, GB, TB) powers of 1000.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024f64.powi(4),
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => return Err(format!("`{s}`: unknown unit `{other}`")),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_sizes() {
        assert!(wildcard("*.tar.gz", "db-2026-11-23.tar.gz"));
        assert!(wildcard("db-????.sql", "db-0001.sql"));
        assert!(!wildcard("*.tar.gz", "db.tar"));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512KiB"), Ok(524_288));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert!(parse_size("ten").is_err() && parse_size("5 parsecs").is_err());
    }
}
