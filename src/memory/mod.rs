//! The memory folder: its own git repository of markdown (incidents/, audit/)
//! and operational state (state/, ignored by git). Every write is atomic.

pub mod approvals;
pub mod audit;
pub mod compact;
pub mod digest;
pub mod escalation;
pub mod journal;
pub mod knowledge;
pub mod notes;
pub mod state;
pub mod state_probes;
pub mod stats;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git repository {path}: {source}")]
    Git {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

pub type Result<T> = std::result::Result<T, MemoryError>;

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MemoryError + '_ {
    move |source| MemoryError::Io { path: path.to_path_buf(), source }
}

/// Writes `data` to `path` through a synced temporary file and a rename, so a
/// crash leaves either the old file or the new one, never half of either.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    // Unique per write, not only per process: the daemon writes from several tasks.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        MemoryError::Io { path: path.to_path_buf(), source: e }
    })
}

/// Reads a JSON state file; a missing file is the default value.
pub fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MemoryError::Corrupt { path: path.to_path_buf(), message: format!("{e}; move the file away to start from a clean state") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(MemoryError::Io { path: path.to_path_buf(), source: e }),
    }
}

/// Writes a JSON state file atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| MemoryError::Corrupt { path: path.to_path_buf(), message: e.to_string() })?;
    atomic_write(path, &bytes)
}

/// The memory folder of a workspace.
#[derive(Debug, Clone)]
pub struct Memory {
    pub root: PathBuf,
}

/// An exclusive lock on the memory's state, released on drop.
pub struct StateLock(#[allow(dead_code)] Flock<File>);

thread_local! {
    /// Memory roots whose write lock this thread holds (the lock is re-entrant per thread).
    static WRITING: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The one memory-wide write lock (`state/memory.lock`): every audit append,
/// note read-modify-write and commit holds it, across processes (the daemon,
/// a CLI `approve` beside it) and threads. Re-entrant on one thread, so a
/// function that holds it may call another that takes it; never held across
/// an `.await`.
pub struct WriteLock {
    flock: Option<Flock<File>>,
    root: PathBuf,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if self.flock.take().is_some() {
            WRITING.with(|w| w.borrow_mut().retain(|r| r != &self.root));
        }
    }
}

impl Memory {
    /// Opens the memory folder, creating it and its git repository if absent.
    pub fn open(workspace: &Path) -> Result<Self> {
        let root = workspace.join("memory");
        for dir in ["incidents", "audit", "knowledge", "digests", "state"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let ignore = root.join(".gitignore");
        if !ignore.exists() {
            atomic_write(&ignore, b"# operational state: check state, journal, pending approvals\nstate/\n# temporary files of atomic writes\n.*.tmp-*\n")?;
        }
        // Only a memory without a repository asks libgit2 (whose first call loads OpenSSL
        // and parses the system's CA bundle: the longest step of a healthy heartbeat).
        if !root.join(".git/HEAD").is_file() && git2::Repository::open(&root).is_err() {
            git2::Repository::init(&root).map_err(|source| MemoryError::Git { path: root.clone(), source })?;
        }
        Ok(Self { root })
    }

    /// Opens existing memory without creating anything (for read-only commands).
    pub fn existing(workspace: &Path) -> Option<Self> {
        let root = workspace.join("memory");
        root.join("incidents").is_dir().then_some(Self { root })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Takes the state lock, waiting for another nightshift process to finish its update.
    /// Where undeliverable webhook messages are kept.
    pub fn dead_letters(&self) -> PathBuf {
        self.state_dir().join("dead-letters.jsonl")
    }

    pub fn lock(&self, name: &str) -> Result<StateLock> {
        let path = self.state_dir().join(format!("{name}.lock"));
        std::fs::create_dir_all(self.state_dir()).map_err(io_err(&path))?;
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        Flock::lock(f, FlockArg::LockExclusive).map(StateLock).map_err(|(_, e)| MemoryError::Io { path, source: std::io::Error::from(e) })
    }

    /// Takes the memory-wide write lock, waiting for its holder (see [`WriteLock`]).
    pub fn write_lock(&self) -> Result<WriteLock> {
        if WRITING.with(|w| w.borrow().contains(&self.root)) {
            return Ok(WriteLock { flock: None, root: self.root.clone() });
        }
        let StateLock(flock) = self.lock("memory")?;
        WRITING.with(|w| w.borrow_mut().push(self.root.clone()));
        Ok(WriteLock { flock: Some(flock), root: self.root.clone() })
    }

    /// Tries to take a lock without waiting; `None` if another process holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<StateLock>> {
        let path = self.state_dir().join(format!("{name}.lock"));
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(StateLock(l))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(MemoryError::Io { path, source: std::io::Error::from(e) }),
        }
    }

    /// Commits everything git does not ignore; returns the commit, or `None`
    /// when nothing changed.
    pub fn commit(&self, message: &str) -> Result<Option<git2::Oid>> {
        // One writer at a time, across processes (a CLI approval beside the daemon) and tasks.
        let _lock = self.write_lock()?;
        let git = |source| MemoryError::Git { path: self.root.clone(), source };
        let repo = git2::Repository::open(&self.root).map_err(git)?;
        // Only nightshift writes this repository, and only under the write lock:
        // an index lock left here is a crash's, and would fail every later commit.
        let stale = repo.path().join("index.lock");
        if stale.exists() {
            tracing::warn!(path = %stale.display(), "removing the git index lock a crashed run left");
            std::fs::remove_file(&stale).map_err(io_err(&stale))?;
        }
        let mut index = repo.index().map_err(git)?;
        // Temporary files of atomic writes (`.NAME.tmp-PID-N`) are never staged.
        let mut skip_temporary = |path: &Path, _: &[u8]| -> i32 { i32::from(is_temporary(path)) };
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, Some(&mut skip_temporary)).map_err(git)?;
        index.update_all(["*"], None).map_err(git)?;
        index.write().map_err(git)?;
        let tree_id = index.write_tree().map_err(git)?;
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
            return Ok(None);
        }
        let sig = repo.signature().or_else(|_| git2::Signature::now("nightshift", "nightshift@localhost")).map_err(git)?;
        let tree = repo.find_tree(tree_id).map_err(git)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents).map_err(git)?;
        Ok(Some(oid))
    }
}

/// A temporary file of [`atomic_write`].
fn is_temporary(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_take_the_next_free_suffix() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mem = Memory { root: dir.path().to_path_buf() };
        let now = crate::duration::parse_ts("2026-11-23T10:00:00Z").unwrap_or_default();
        let mut ids = Vec::new();
        for _ in 0..40 {
            let id = mem.new_incident_id(now, "alert-highlatency");
            atomic_write(&mem.incident_path(&id), b"# x\n").unwrap_or_else(|e| panic!("{e}"));
            ids.push(id);
        }
        let want: Vec<String> = std::iter::once("2026-11-23-alert-highlatency".to_string()).chain((2..=40).map(|n| format!("2026-11-23-alert-highlatency-{n}"))).collect();
        assert_eq!(ids, want);
        // A gap (a compacted note) is either reused or stepped over; never a taken id.
        std::fs::remove_file(mem.incident_path("2026-11-23-alert-highlatency-5")).unwrap_or_default();
        let next = mem.new_incident_id(now, "alert-highlatency");
        assert!(["2026-11-23-alert-highlatency-5", "2026-11-23-alert-highlatency-41"].contains(&next.as_str()), "{next}");
    }
}
