//! A real infrastructure repository for the pull-request tests: a bare git
//! repository on disk as the remote, seeded with manifests on `main`, read
//! back with the git command line (not with the code under test).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct InfraRepo {
    pub dir: tempfile::TempDir,
}

impl InfraRepo {
    /// A bare remote whose `main` holds `files` in one commit.
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Self { dir };
        git(repo.dir.path(), &["init", "--bare", "-q", "-b", "main", "remote.git"]);
        git(repo.dir.path(), &["clone", "-q", "remote.git", "seed"]);
        for (path, content) in files {
            repo.write(path, content);
        }
        repo.push_seed("seed the manifests", "main");
        repo
    }

    /// The clone URL nightshift is given.
    pub fn remote(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn seed(&self) -> PathBuf {
        self.dir.path().join("seed")
    }

    fn write(&self, path: &str, content: &str) {
        let p = self.seed().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn push_seed(&self, message: &str, branch: &str) {
        let s = self.seed();
        git(&s, &["add", "-A"]);
        git(&s, &["-c", "user.name=Seed", "-c", "user.email=seed@example.test", "commit", "-q", "-m", message]);
        git(&s, &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")]);
    }

    /// Someone else commits `content` to `path` on `branch` (a teammate on
    /// main, a reviewer on nightshift's branch).
    pub fn commit(&self, branch: &str, path: &str, content: &str, message: &str) {
        let s = self.seed();
        git(&s, &["fetch", "-q", "origin"]);
        git(&s, &["checkout", "-q", "-B", "work", &format!("origin/{branch}")]);
        self.write(path, content);
        self.push_seed(message, branch);
    }

    /// A file as a branch of the remote has it.
    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        let out = Command::new("git").arg("-C").arg(self.remote()).args(["show", &format!("{branch}:{path}")]).output().unwrap();
        out.status.success().then(|| String::from_utf8(out.stdout).unwrap())
    }

    pub fn branches(&self) -> Vec<String> {
        git(&self.remote(), &["for-each-ref", "--format=%(refname:short)", "refs/heads/"]).lines().map(str::to_string).collect()
    }

    pub fn tip(&self, branch: &str) -> String {
        git(&self.remote(), &["rev-parse", &format!("refs/heads/{branch}")]).trim().to_string()
    }

    /// `git diff base...branch` with no context lines: only what changed.
    pub fn diff(&self, base: &str, branch: &str) -> String {
        git(&self.remote(), &["diff", "-U0", &format!("{base}...{branch}")])
    }

    /// Commits on `branch` that `base` lacks, as "author email|subject".
    pub fn commits(&self, base: &str, branch: &str) -> Vec<String> {
        git(&self.remote(), &["log", "--format=%an <%ae>|%s", &format!("{base}..{branch}")]).lines().map(str::to_string).collect()
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Lines a diff adds and removes, without the file headers.
pub fn changed_lines(diff: &str) -> Vec<String> {
    diff.lines().filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---")).map(str::to_string).collect()
}
