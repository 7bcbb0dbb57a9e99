//! `clean_logs`: under one declared root, delete `*.log` files (and rotated
//! ones) older than `max_age`, gzip big logs nobody has written to for an
//! hour, and remove core dumps. The walk holds each directory open and
//! reaches everything relative to it (`openat`, `unlinkat`, `O_NOFOLLOW`):
//! a symlink is never followed, a directory swapped for one mid-walk is not
//! entered, and nothing outside the root is touched. The walk never leaves
//! the root's filesystem. A `.gz` takes its log's owner and mode.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::dir::Dir;
use nix::fcntl::AtFlags;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};

use crate::checks::human_bytes;

/// Where `clean_logs` looks and what it removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanSettings {
    /// `*.log` files older than this are deleted.
    pub max_age: Duration,
    /// `*.log` files larger than this (and not written to for an hour) are gzipped.
    pub gzip_over_bytes: u64,
    pub core_dumps: bool,
}

impl Default for CleanSettings {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(7 * 86_400), gzip_over_bytes: 50 * 1024 * 1024, core_dumps: true }
    }
}

const MAX_ENTRIES: usize = 200_000;
/// Directories deeper than this are not entered (the walk holds one descriptor per level).
const MAX_DEPTH: usize = 64;

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

/// What `clean_logs` takes under `$root`, as shell functions (`old`, `big`,
/// `cores`, each a `find` taking more predicates, and `count`): the remote
/// cleanup runs them, and the disk diagnosis lists with them, read-only.
/// They read `$root`, `$mins` (max_age in minutes) and `$kb` (gzip_over in KiB).
pub const SELECT_SH: &str = r#"count() { awk '{s+=$1; n++} END {printf "%d %d\n", n+0, s+0}'; }
old() { find "$root" -xdev -type f \( -name '*.log' -o -name '*.log.[0-9]*' -o -name '*.log.gz' \) -mmin +"$mins" "$@"; }
big() { find "$root" -xdev -type f -name '*.log' -size +"$kb"k -mmin +60 ! -mmin +"$mins" "$@"; }
cores() { find "$root" -xdev -type f \( -name core -o -name 'core.[0-9]*' -o -name '*.core' \) "$@"; }"#;

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
    walk(root, settings, now, |_| {}, |_, _, _, _, _| {})
}

/// What cleaning does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clean {
    Delete,
    Gzip,
    Core,
}

/// One directory of the walk, open, and the subdirectories still to enter.
struct Frame {
    dir: Dir,
    path: PathBuf,
    subdirs: Vec<CString>,
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn modified(st: &FileStat) -> SystemTime {
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos.min(999_999_999))
}

/// Opens `name` under `parent` as a directory, never through a symlink.
fn open_dir<Fd: AsFd>(parent: Fd, name: &CStr) -> nix::Result<Dir> {
    Dir::openat(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
}

/// The names in a directory, `.` and `..` left out.
fn entries(dir: &mut Dir) -> Vec<CString> {
    dir.iter().flatten().map(|e| e.file_name().to_owned()).filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..").collect()
}

/// Walks `root` depth first, one open directory per level, and calls
/// `found` with the open parent of every file cleaning concerns. Every
/// directory is opened relative to its parent with `O_NOFOLLOW`, so one
/// swapped for a symlink after it was listed is not entered; `entering`
/// runs just before (the tests swap directories there).
fn walk(root: &Path, settings: &CleanSettings, now: SystemTime, mut entering: impl FnMut(&Path), mut found: impl FnMut(&Dir, &CStr, &Path, Clean, u64)) -> io::Result<Plan> {
    let root = check_root(root)?;
    let top = Dir::open(&root, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
    let dev = fstat(top.as_fd())?.st_dev;
    let mut plan = Plan::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut next = Some((top, root));
    let mut seen = 0usize;
    let old_before = now.checked_sub(settings.max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let quiet_before = now.checked_sub(Duration::from_secs(3600)).unwrap_or(SystemTime::UNIX_EPOCH);
    loop {
        if let Some((mut dir, path)) = next.take() {
            let mut subdirs = Vec::new();
            for name in entries(&mut dir) {
                seen += 1;
                if seen > MAX_ENTRIES {
                    plan.truncated = true;
                    return Ok(sorted(plan));
                }
                let Ok(st) = fstatat(dir.as_fd(), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else { continue };
                let file = path.join(OsStr::from_bytes(name.as_bytes()));
                let t = kind(&st);
                if t == SFlag::S_IFLNK {
                    plan.symlinks_skipped += 1;
                } else if t == SFlag::S_IFDIR {
                    if st.st_dev == dev {
                        subdirs.push(name);
                    }
                } else if t == SFlag::S_IFREG {
                    let n = String::from_utf8_lossy(name.as_bytes());
                    let size = u64::try_from(st.st_size).unwrap_or(0);
                    let mtime = modified(&st);
                    let what = if settings.core_dumps && is_core(&n) {
                        Clean::Core
                    } else if is_log(&n) && mtime < old_before {
                        Clean::Delete
                    } else if is_log(&n) && !n.ends_with(".gz") && size > settings.gzip_over_bytes && mtime < quiet_before {
                        Clean::Gzip
                    } else {
                        continue;
                    };
                    match what {
                        Clean::Delete => plan.delete.push((file.clone(), size)),
                        Clean::Gzip => plan.gzip.push((file.clone(), size)),
                        Clean::Core => plan.cores.push((file.clone(), size)),
                    }
                    found(&dir, &name, &file, what, size);
                }
            }
            subdirs.reverse();
            stack.push(Frame { dir, path, subdirs });
        }
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else { break };
        let Some(name) = frame.subdirs.pop() else {
            stack.pop();
            continue;
        };
        if depth >= MAX_DEPTH {
            plan.truncated = true;
            continue;
        }
        let path = frame.path.join(OsStr::from_bytes(name.as_bytes()));
        entering(&path);
        match open_dir(frame.dir.as_fd(), &name) {
            // Another filesystem mounted here since the listing is left alone too.
            Ok(dir) if fstat(dir.as_fd()).is_ok_and(|st| st.st_dev == dev) => next = Some((dir, path)),
            Ok(_) => {}
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => plan.symlinks_skipped += 1,
            Err(_) => {}
        }
    }
    Ok(sorted(plan))
}

fn sorted(mut plan: Plan) -> Plan {
    for list in [&mut plan.delete, &mut plan.gzip, &mut plan.cores] {
        list.sort();
    }
    plan
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

/// Compresses `name` in `dir` to `name.gz` with the log's owner and mode,
/// then removes the log; returns the size of the `.gz`. Nothing is opened
/// through a symlink, and a `.gz` that cannot take the log's owner is
/// removed again (the log stays as it was).
fn gzip_at(dir: &Dir, name: &CStr) -> io::Result<u64> {
    let src: OwnedFd = openat(dir.as_fd(), name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())?;
    let st = fstat(&src)?;
    if kind(&st) != SFlag::S_IFREG {
        return Err(io::Error::other("no longer a regular file"));
    }
    let mut gz = name.to_bytes().to_vec();
    gz.extend_from_slice(b".gz");
    let gz = CString::new(gz).map_err(io::Error::other)?;
    // Owner-only until it has the log's owner and mode.
    let out: OwnedFd = openat(dir.as_fd(), gz.as_c_str(), OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::S_IRUSR | Mode::S_IWUSR)?;
    let written = compress(File::from(src), File::from(out), &st);
    match written {
        Ok(size) => {
            unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir)?;
            Ok(size)
        }
        Err(e) => {
            let _ = unlinkat(dir.as_fd(), gz.as_c_str(), UnlinkatFlags::NoRemoveDir);
            Err(e)
        }
    }
}

/// Writes `src` gzipped into `out`, gives `out` the owner and permission
/// bits of `log`, syncs it; returns its size.
fn compress(mut src: File, out: File, log: &FileStat) -> io::Result<u64> {
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut src, &mut enc)?;
    let out = enc.finish()?;
    let mine = fstat(&out)?;
    if (mine.st_uid, mine.st_gid) != (log.st_uid, log.st_gid) {
        fchown(&out, Some(Uid::from_raw(log.st_uid)), Some(Gid::from_raw(log.st_gid)))
            .map_err(|e| io::Error::other(format!("cannot give the .gz the log's owner {}:{} ({e}); the log is left uncompressed", log.st_uid, log.st_gid)))?;
    }
    // After fchown, which may clear set-id bits; an archive gets none.
    fchmod(&out, Mode::from_bits_truncate(log.st_mode & 0o777))?;
    fsync(&out)?;
    Ok(u64::try_from(fstat(&out)?.st_size).unwrap_or(0))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub deleted: u32,
    pub gzipped: u32,
    pub cores: u32,
    pub freed_bytes: u64,
    pub errors: Vec<String>,
}

/// Cleans `root` as `plan` would describe it now, acting on each file as
/// the walk finds it, through its open parent directory.
pub fn execute(root: &Path, settings: &CleanSettings, now: SystemTime) -> io::Result<(Plan, Done)> {
    clean(root, settings, now, |_| {})
}

fn clean(root: &Path, settings: &CleanSettings, now: SystemTime, entering: impl FnMut(&Path)) -> io::Result<(Plan, Done)> {
    let mut done = Done::default();
    let plan = walk(root, settings, now, entering, |dir, name, path, what, size| match what {
        Clean::Delete | Clean::Core => match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                done.freed_bytes += size;
                if what == Clean::Core { done.cores += 1 } else { done.deleted += 1 }
            }
            Err(e) => done.errors.push(format!("{}: {}", path.display(), io::Error::from(e))),
        },
        Clean::Gzip => match gzip_at(dir, name) {
            Ok(gz) => {
                done.gzipped += 1;
                done.freed_bytes += size.saturating_sub(gz);
            }
            Err(e) => done.errors.push(format!("gzip {}: {e}", path.display())),
        },
    })?;
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

    fn write_aged(path: &Path, bytes: usize, hours: u64) {
        fs::write(path, vec![b'x'; bytes]).unwrap_or_else(|e| panic!("{e}"));
        let f = File::options().write(true).open(path).unwrap_or_else(|e| panic!("{e}"));
        f.set_modified(SystemTime::now() - Duration::from_secs(hours * 3600)).unwrap_or_else(|e| panic!("{e}"));
    }

    fn small() -> CleanSettings {
        CleanSettings { gzip_over_bytes: 1024, ..CleanSettings::default() }
    }

    fn stat(path: &Path) -> (u32, u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (m.mode() & 0o7777, m.uid(), m.gid())
    }

    #[test]
    fn a_gzipped_log_keeps_its_owner_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = root.path().join("secret.log");
        write_aged(&log, 4096, 2);
        fs::set_permissions(&log, fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
        // As root, the log belongs to someone else, as a service's logs do.
        let other = Uid::effective().is_root().then(|| (Uid::from_raw(4242), Gid::from_raw(4343)));
        if let Some((uid, gid)) = other {
            nix::unistd::chown(&log, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("{e}"));
        }
        let before = stat(&log);
        let (plan, done) = execute(root.path(), &small(), SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((plan.gzip.len(), done.gzipped, done.errors.clone()), (1, 1, Vec::<String>::new()));
        assert!(!log.exists());
        assert_eq!(stat(&root.path().join("secret.log.gz")), before);
        if let Some((uid, gid)) = other {
            assert_eq!((before.1, before.2), (uid.as_raw(), gid.as_raw()));
        }
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_mid_walk_is_not_followed() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (root, outside) = (base.path().join("root"), base.path().join("outside"));
        for d in [root.join("sub"), outside.clone()] {
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        }
        for dir in [&root, &root.join("sub"), &outside] {
            write_aged(&dir.join("old.log"), 10, 24 * 30);
            write_aged(&dir.join("big.log"), 4096, 2);
            write_aged(&dir.join("core"), 10, 1);
        }
        let listing = |d: &Path| {
            let mut v: Vec<String> = fs::read_dir(d).map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()).unwrap_or_default();
            v.sort();
            v
        };
        // root lists sub as a real directory; before it is entered, sub becomes a symlink out of the root.
        let (plan, done) = clean(&root, &small(), SystemTime::now(), |path| {
            if path.ends_with("sub") {
                fs::rename(path, base.path().join("moved")).unwrap_or_else(|e| panic!("{e}"));
                std::os::unix::fs::symlink(&outside, path).unwrap_or_else(|e| panic!("{e}"));
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listing(&outside), ["big.log", "core", "old.log"], "nothing outside the root is touched");
        assert_eq!(listing(&base.path().join("moved")), ["big.log", "core", "old.log"]);
        assert_eq!(listing(&root), ["big.log.gz", "sub"]);
        assert_eq!((done.deleted, done.gzipped, done.cores, plan.symlinks_skipped), (1, 1, 1, 1));

        // A symlink already there is not followed either.
        let (_, done) = execute(&root, &small(), SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((done.deleted, done.gzipped, done.cores), (0, 0, 0));
        assert_eq!(listing(&outside), ["big.log", "core", "old.log"]);
    }
}
