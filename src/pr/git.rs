//! The infrastructure repository's side of a pull request, with git2: keep a
//! clone, fetch the base and nightshift's branches, edit the manifest as the
//! base has it, commit on `nightshift/<incident>` and push that branch only.
//! Blocking: callers run it on a blocking thread.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

use git2::build::{CheckoutBuilder, TreeUpdateBuilder};
use git2::{Commit, Cred, CredentialType, FetchOptions, FetchPrune, FileMode, PushOptions, RemoteCallbacks, Repository, Signature};

use super::manifest;
use super::{PrRequest, RepoConfig};

/// A commit ready (or already) on the branch.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub branch: String,
    /// The manifest, relative to the repository root.
    pub path: PathBuf,
    pub changes: Vec<String>,
    /// Whether a commit was pushed (false in previews and when the branch already carries the change).
    pub pushed: bool,
    /// The branch's commit after this run, when it exists.
    pub commit: Option<String>,
}

/// Finds and edits the manifest without pushing (a preview).
pub fn prepare(cfg: &RepoConfig, req: &PrRequest, token: Option<&str>) -> Result<Prepared, String> {
    let (_lock, repo) = sync(cfg, token)?;
    let plan = plan(cfg, &repo, req)?;
    Ok(Prepared { branch: plan.branch, path: plan.edit.path, changes: plan.edit.changes, pushed: false, commit: plan.existing })
}

/// Finds and edits the manifest, commits on the branch and pushes it.
pub fn prepare_and_push(cfg: &RepoConfig, req: &PrRequest, token: Option<&str>) -> Result<Prepared, String> {
    let (_lock, repo) = sync(cfg, token)?;
    let plan = plan(cfg, &repo, req)?;
    if plan.carried {
        return Ok(Prepared { branch: plan.branch, path: plan.edit.path, changes: plan.edit.changes, pushed: false, commit: plan.existing });
    }
    let parent_id = plan.parent;
    let parent = repo.find_commit(parent_id).map_err(|e| git_err("reading the parent commit", &e))?;
    let tree = updated_tree(&repo, &parent, &plan.edit.path, plan.edit.after.as_bytes())?;
    let sig = Signature::now(&cfg.author_name, &cfg.author_email).map_err(|e| git_err("making the author signature", &e))?;
    let message = format!(
        "{}\n\n{}\n{}",
        req.title(&plan.edit.changes),
        plan.edit.changes.iter().map(|c| format!("- {}: {c}", plan.edit.path.display())).collect::<Vec<_>>().join("\n"),
        req.context.incident.as_ref().map(|i| format!("\nIncident: {i}\n")).unwrap_or_default()
    );
    let oid = repo.commit(None, &sig, &sig, &message, &tree, &[&parent]).map_err(|e| git_err("committing", &e))?;
    let local = format!("refs/heads/{}", plan.branch);
    repo.reference(&local, oid, true, "nightshift: pull request branch").map_err(|e| git_err("updating the local branch", &e))?;
    push(cfg, &repo, token, &plan.branch)?;
    Ok(Prepared { branch: plan.branch, path: plan.edit.path, changes: plan.edit.changes, pushed: true, commit: Some(oid.to_string()) })
}

struct Plan {
    branch: String,
    edit: manifest::Edit,
    parent: git2::Oid,
    existing: Option<String>,
    /// The remote branch already holds exactly this change.
    carried: bool,
}

/// The edit, computed from the base as it is now (the value in production),
/// and where it goes: a new branch from the base, or the existing branch of
/// an earlier run (never rewritten, so a reviewer's commits stay).
fn plan(cfg: &RepoConfig, repo: &Repository, req: &PrRequest) -> Result<Plan, String> {
    let branch = req.branch();
    if !branch.starts_with("nightshift/") || branch == cfg.base {
        return Err(format!("refusing to push to {branch}: nightshift only pushes nightshift/ branches"));
    }
    let base = tip(repo, &format!("refs/remotes/origin/{}", cfg.base))?.ok_or_else(|| format!("{} has no branch `{}`; set `base:` under repository: in AGENTS.md", cfg.remote, cfg.base))?;
    // The worktree shows the base, so the manifest is found and edited as merged.
    repo.set_head_detached(base.id()).map_err(|e| git_err("checking out the base", &e))?;
    repo.checkout_head(Some(CheckoutBuilder::new().force().remove_untracked(true))).map_err(|e| git_err("checking out the base", &e))?;
    let root = repo.workdir().ok_or("the repository cache has no worktree")?.to_path_buf();
    let path = manifest::find(&root, &cfg.manifests, &req.target).map_err(|e| e.to_string())?;
    let edit = manifest::edit(&root, &path, &req.target, &req.change.manifest_change()).map_err(|e| e.to_string())?;
    let existing = tip(repo, &format!("refs/remotes/origin/{branch}"))?;
    let Some(existing) = existing else {
        return Ok(Plan { branch, edit, parent: base.id(), existing: None, carried: false });
    };
    let on_branch = file_at(repo, &existing, &edit.path)?;
    let on_base = file_at(repo, &base, &edit.path)?;
    if on_branch.as_deref() == Some(edit.after.as_bytes()) {
        return Ok(Plan { branch, edit, parent: existing.id(), existing: Some(existing.id().to_string()), carried: true });
    }
    if on_branch != on_base {
        return Err(format!(
            "branch {branch} already changes {} differently (by a reviewer or an earlier run on an older base): nightshift leaves that branch to its pull request's reviewers",
            edit.path.display()
        ));
    }
    Ok(Plan { branch, edit, parent: existing.id(), existing: Some(existing.id().to_string()), carried: false })
}

/// Opens (or clones into) the cache, points `origin` at the remote and
/// fetches the base and nightshift's branches, pruning deleted ones. Holds a
/// lock on the cache while the caller works in it.
fn sync(cfg: &RepoConfig, token: Option<&str>) -> Result<(File, Repository), String> {
    let dir = &cfg.cache;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating the repository cache {}: {e}", dir.display()))?;
    // Beside the clone, not in it: the checkout removes untracked files.
    let lock = File::create(dir.with_extension("lock")).map_err(|e| format!("locking {}: {e}", dir.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", dir.display()))?;
    let repo = if dir.join(".git").exists() { Repository::open(dir) } else { Repository::init(dir) }.map_err(|e| git_err(&format!("opening the repository cache {}", dir.display()), &e))?;
    match repo.find_remote("origin") {
        Ok(r) if r.url().ok() == Some(cfg.remote.as_str()) => {}
        Ok(_) => repo.remote_set_url("origin", &cfg.remote).map_err(|e| git_err("setting the remote", &e))?,
        Err(_) => {
            repo.remote("origin", &cfg.remote).map_err(|e| git_err("adding the remote", &e))?;
        }
    }
    {
        let mut remote = repo.find_remote("origin").map_err(|e| git_err("reading the remote", &e))?;
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(callbacks(cfg, token));
        fo.prune(FetchPrune::On);
        let specs = [format!("+refs/heads/{0}:refs/remotes/origin/{0}", cfg.base), "+refs/heads/nightshift/*:refs/remotes/origin/nightshift/*".to_string()];
        remote.fetch(&specs, Some(&mut fo), None).map_err(|e| git_err(&format!("fetching {}", cfg.remote), &e))?;
    }
    Ok((lock, repo))
}

fn push(cfg: &RepoConfig, repo: &Repository, token: Option<&str>, branch: &str) -> Result<(), String> {
    let rejected: RefCell<Option<String>> = RefCell::new(None);
    {
        let mut cb = callbacks(cfg, token);
        cb.push_update_reference(|refname, status| {
            if let Some(why) = status {
                *rejected.borrow_mut() = Some(format!("{refname}: {why}"));
            }
            Ok(())
        });
        let mut po = PushOptions::new();
        po.remote_callbacks(cb);
        let mut remote = repo.find_remote("origin").map_err(|e| git_err("reading the remote", &e))?;
        // Never forced: a branch that moved under us is a rejection, not an overwrite.
        remote.push(&[format!("refs/heads/{branch}:refs/heads/{branch}")], Some(&mut po)).map_err(|e| git_err(&format!("pushing {branch} to {}", cfg.remote), &e))?;
    }
    match rejected.into_inner() {
        Some(why) => Err(format!("the remote rejected the push of {why}")),
        None => Ok(()),
    }
}

/// Credentials from the environment: the token for HTTPS (as GitHub takes
/// it), an ssh-agent or `NIGHTSHIFT_GIT_SSH_KEY` for SSH. Each kind is
/// offered once, so a refused credential ends in an error, not a loop.
fn callbacks<'a>(cfg: &RepoConfig, token: Option<&str>) -> RemoteCallbacks<'a> {
    let token = token.map(str::to_string);
    let token_env = cfg.token_env.clone();
    let mut offered = CredentialType::empty();
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, username, allowed| {
        if allowed.contains(CredentialType::SSH_KEY) && !offered.contains(CredentialType::SSH_KEY) {
            offered |= CredentialType::SSH_KEY;
            let user = username.unwrap_or("git");
            return match std::env::var_os("NIGHTSHIFT_GIT_SSH_KEY") {
                Some(key) => Cred::ssh_key(user, None, Path::new(&key), None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !offered.contains(CredentialType::USER_PASS_PLAINTEXT) {
            offered |= CredentialType::USER_PASS_PLAINTEXT;
            if let Some(t) = &token {
                return Cred::userpass_plaintext("x-access-token", t);
            }
        }
        Err(git2::Error::from_str(&format!("no accepted credentials: set ${token_env} for HTTPS remotes, or run an ssh-agent (or set NIGHTSHIFT_GIT_SSH_KEY) for SSH remotes")))
    });
    cb
}

fn tip<'r>(repo: &'r Repository, refname: &str) -> Result<Option<Commit<'r>>, String> {
    match repo.find_reference(refname) {
        Ok(r) => r.peel_to_commit().map(Some).map_err(|e| git_err(&format!("reading {refname}"), &e)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(git_err(&format!("reading {refname}"), &e)),
    }
}

fn file_at(repo: &Repository, commit: &Commit<'_>, path: &Path) -> Result<Option<Vec<u8>>, String> {
    let tree = commit.tree().map_err(|e| git_err("reading a tree", &e))?;
    match tree.get_path(path) {
        Ok(entry) => {
            let blob = entry.to_object(repo).and_then(|o| o.peel_to_blob()).map_err(|e| git_err(&format!("reading {}", path.display()), &e))?;
            Ok(Some(blob.content().to_vec()))
        }
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(git_err(&format!("reading {}", path.display()), &e)),
    }
}

/// The parent's tree with one file replaced, keeping its mode.
fn updated_tree<'r>(repo: &'r Repository, parent: &Commit<'_>, path: &Path, content: &[u8]) -> Result<git2::Tree<'r>, String> {
    let base = parent.tree().map_err(|e| git_err("reading the parent tree", &e))?;
    let mode = match base.get_path(path).map(|e| e.filemode()) {
        Ok(m) if m == i32::from(FileMode::BlobExecutable) => FileMode::BlobExecutable,
        _ => FileMode::Blob,
    };
    let blob = repo.blob(content).map_err(|e| git_err("writing the manifest", &e))?;
    let mut update = TreeUpdateBuilder::new();
    update.upsert(path, blob, mode);
    let oid = update.create_updated(repo, &base).map_err(|e| git_err("building the tree", &e))?;
    repo.find_tree(oid).map_err(|e| git_err("reading the new tree", &e))
}

fn git_err(doing: &str, e: &git2::Error) -> String {
    format!("{doing}: {}", e.message())
}
