//! `clean_logs`: under one declared root, delete `*.log` files (and rotated
//! ones) older than `max_age`, gzip big logs nobody has written to for an
//! hour, and remove core dumps. Symlinks are never followed and the walk
//! never leaves the root's filesystem.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::checks::human_bytes;
use crate::policy::CleanSettings;

const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub delete: Vec<(PathBuf, u64)>,
    pub gzip: Vec<(PathBuf, u64)>,
    pub cores: Vec<(PathBuf, u64)>,
    pub symlinks_skipped: u32,
    /// The walk stopped at its entry limit.
    pub truncated: bool,
}

/// `app.log`, `app.log.1`, `app.log.2.gz`, `app.log.gz`
pub fn is_log(name: &str) -> bool {
    let base = name.strip_suffix(".gz").unwrap_or(name);
    if base.ends_with(".log") {
        return true;
    }
    match base.rsplit_once(".log.") {
        Some((stem, n)) => !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// `core`, `core.1234`, `app.core`
pub fn is_core(name: &str) -> bool {
    name == "core" || name.strip_prefix("core.").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) || (name.ends_with(".core") && name.len() > 5)
}

/// Checks that `root` is a real directory (not a symlink) and returns its canonical path.
pub fn check_root(root: &Path) -> io::Result<PathBuf> {
    let meta = fs::symlink_metadata(root)?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::other(format!("{} is a symlink; clean roots must be real directories", root.display())));
    }
    if !meta.is_dir() {
        return Err(io::Error::other(format!("{} is not a directory", root.display())));
    }
    fs::canonicalize(root)
}

/// Lists what cleaning `root` would do, touching nothing.
pub fn plan(root: &Path, settings: &CleanSettings, now: SystemTime) -> io::Result<Plan> {
    let root = check_root(root)?;
    let dev = fs::metadata(&root)?.dev();
    let mut plan = Plan::default();
    let mut stack = vec![root];
    let mut seen = 0usize;
    let old_before = now.checked_sub(settings.max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let quiet_before = now.checked_sub(Duration::from_secs(3600)).unwrap_or(SystemTime::UNIX_EPOCH);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                plan.truncated = true;
                return Ok(plan);
            }
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let ft = meta.file_type();
            if ft.is_symlink() {
                plan.symlinks_skipped += 1;
                continue;
            }
            if ft.is_dir() {
                if meta.dev() == dev {
                    stack.push(path);
                }
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let modified = meta.modified().unwrap_or(now);
            let size = meta.len();
            if settings.core_dumps && is_core(&name) {
                plan.cores.push((path, size));
            } else if is_log(&name) && modified < old_before {
                plan.delete.push((path, size));
            } else if is_log(&name) && !name.ends_with(".gz") && size > settings.gzip_over_bytes && modified < quiet_before {
                plan.gzip.push((path, size));
            }
        }
    }
    for list in [&mut plan.delete, &mut plan.gzip, &mut plan.cores] {
        list.sort();
    }
    Ok(plan)
}

fn total(list: &[(PathBuf, u64)]) -> u64 {
    list.iter().map(|(_, s)| s).sum()
}

fn names(list: &[(PathBuf, u64)], root: &Path) -> String {
    let mut shown: Vec<String> = list.iter().take(5).map(|(p, _)| p.strip_prefix(root).unwrap_or(p).display().to_string()).collect();
    if list.len() > 5 {
        shown.push(format!("and {} more", list.len() - 5));
    }
    shown.join(", ")
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.gzip.is_empty() && self.cores.is_empty()
    }

    /// What the plan does, for the audit and the note ("would" in dry-run).
    pub fn describe(&self, root: &Path) -> String {
        if self.is_empty() {
            return format!("nothing to clean under {}", root.display());
        }
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut parts = Vec::new();
        if !self.delete.is_empty() {
            parts.push(format!("delete {} old log(s) ({}): {}", self.delete.len(), human_bytes(total(&self.delete)), names(&self.delete, &root)));
        }
        if !self.gzip.is_empty() {
            parts.push(format!("gzip {} big log(s) ({}): {}", self.gzip.len(), human_bytes(total(&self.gzip)), names(&self.gzip, &root)));
        }
        if !self.cores.is_empty() {
            parts.push(format!("remove {} core dump(s) ({}): {}", self.cores.len(), human_bytes(total(&self.cores)), names(&self.cores, &root)));
        }
        if self.symlinks_skipped > 0 {
            parts.push(format!("{} symlink(s) not followed", self.symlinks_skipped));
        }
        parts.join("; ")
    }
}

/// A file may be touched only if its real parent directory is inside the root
/// (guards against a directory swapped for a symlink after planning).
fn inside(root: &Path, path: &Path) -> bool {
    let Some(parent) = path.parent() else { return false };
    fs::canonicalize(parent).is_ok_and(|p| p.starts_with(root)) && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn gzip_file(path: &Path) -> io::Result<()> {
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz_path = PathBuf::from(gz_name);
    let mut src = OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)?;
    let out = OpenOptions::new().write(true).create_new(true).open(&gz_path)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let result = io::copy(&mut src, &mut enc).and_then(|_| enc.finish()).and_then(|f: File| f.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(&gz_path);
        return Err(e);
    }
    fs::remove_file(path)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub deleted: u32,
    pub gzipped: u32,
    pub cores: u32,
    pub freed_bytes: u64,
    pub errors: Vec<String>,
}

/// Cleans `root` as `plan` would describe it now.
pub fn execute(root: &Path, settings: &CleanSettings, now: SystemTime) -> io::Result<(Plan, Done)> {
    let canonical = check_root(root)?;
    let plan = plan(root, settings, now)?;
    let mut done = Done::default();
    for (path, size) in plan.delete.iter().chain(plan.cores.iter()) {
        if !inside(&canonical, path) {
            done.errors.push(format!("{} left alone: no longer inside {}", path.display(), canonical.display()));
            continue;
        }
        match fs::remove_file(path) {
            Ok(()) => {
                done.freed_bytes += size;
                if plan.cores.iter().any(|(p, _)| p == path) { done.cores += 1 } else { done.deleted += 1 }
            }
            Err(e) => done.errors.push(format!("{}: {e}", path.display())),
        }
    }
    for (path, size) in &plan.gzip {
        if !inside(&canonical, path) {
            done.errors.push(format!("{} left alone: no longer inside {}", path.display(), canonical.display()));
            continue;
        }
        let mut gz = path.as_os_str().to_owned();
        gz.push(".gz");
        match gzip_file(path) {
            Ok(()) => {
                done.gzipped += 1;
                done.freed_bytes += size.saturating_sub(fs::metadata(PathBuf::from(gz)).map(|m| m.len()).unwrap_or(0));
            }
            Err(e) => done.errors.push(format!("gzip {}: {e}", path.display())),
        }
    }
    Ok((plan, done))
}

impl Done {
    pub fn describe(&self) -> String {
        let mut s = format!("deleted {} old log(s), gzipped {}, removed {} core dump(s), freed {}", self.deleted, self.gzipped, self.cores, human_bytes(self.freed_bytes));
        if !self.errors.is_empty() {
            s.push_str(&format!("; {} error(s): {}", self.errors.len(), self.errors.join("; ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_logs_and_cores() {
        for n in ["app.log", "app.log.1", "app.log.12.gz", "app.log.gz"] {
            assert!(is_log(n), "{n}");
        }
        for n in ["app.logger", "log", "app.log.x", "notes.txt", ".log.1x"] {
            assert!(!is_log(n), "{n}");
        }
        for n in ["core", "core.1234", "java.core"] {
            assert!(is_core(n), "{n}");
        }
        for n in ["core.c", "corefile", "score", ".core"] {
            assert!(!is_core(n), "{n}");
        }
    }
}
