//! Permanent fixes as pull requests to the team's infrastructure repository:
//! find the workload's manifest, make one typed change that keeps the file's
//! comments and layout, commit it on `nightshift/<namespace>-<name>-<change>`
//! (one branch, so one pull request, per workload and kind of change: a
//! recurrence updates it) from the up-to-date base, push, and open (or update) the pull request with the
//! evidence. nightshift never pushes to the base branch.

pub mod git;
pub mod github;
pub mod manifest;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use manifest::{Change, Locate, Target};

/// The `repository:` block of AGENTS.md.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    /// Clone URL: https, ssh (`git@host:owner/repo.git`) or a local path.
    pub remote: String,
    /// The GitHub repository, `owner/name` (from the remote unless given).
    pub owner: String,
    pub name: String,
    /// Environment variable holding the token for the API and HTTPS pushes.
    pub token_env: String,
    /// The branch pull requests target; never pushed to.
    pub base: String,
    /// The local clone nightshift keeps.
    pub cache: PathBuf,
    pub manifests: Locate,
    /// REST API root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise.
    pub api_url: String,
    pub author_name: String,
    pub author_email: String,
    pub labels: Vec<String>,
    /// Where people read incident notes, with `{id}`; the PR links the note there.
    pub notes_url: Option<String>,
}

pub const DEFAULT_API: &str = "https://api.github.com";

impl RepoConfig {
    /// `owner/name` from a clone URL: `https://host/owner/name(.git)`,
    /// `ssh://git@host/owner/name.git`, `git@host:owner/name.git`.
    pub fn owner_repo(remote: &str) -> Option<(String, String)> {
        let rest = if let Some((_, r)) = remote.split_once("://") {
            r.split_once('/')?.1
        } else if let Some((host, r)) = remote.split_once(':') {
            if host.contains('/') {
                return None;
            }
            r
        } else {
            return None;
        };
        let mut parts = rest.trim_end_matches('/').trim_end_matches(".git").rsplitn(3, '/');
        let name = parts.next().filter(|s| !s.is_empty())?;
        let owner = parts.next().filter(|s| !s.is_empty())?;
        Some((owner.to_string(), name.to_string()))
    }

    /// The default clone location: `~/.cache/nightshift/repos/OWNER-NAME`.
    pub fn default_cache(owner: &str, name: &str) -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))).unwrap_or_else(std::env::temp_dir);
        base.join("nightshift").join("repos").join(format!("{owner}-{name}"))
    }

    pub fn token(&self) -> Option<String> {
        std::env::var(&self.token_env).ok().filter(|t| !t.trim().is_empty())
    }

    /// Where the PR points readers for the incident note.
    pub fn note_link(&self, id: &str) -> String {
        match &self.notes_url {
            Some(u) => u.replace("{id}", id),
            None => format!("`memory/incidents/{id}.md` in nightshift's memory"),
        }
    }
}

/// The change a pull request carries, as the `open_pr` action names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrChange {
    /// Raise a container's memory limit (and its request, when set) by `factor`.
    RaiseMemory {
        /// The container; the only one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
        /// Between 1.1 and 4; 1.5 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        factor: Option<f64>,
    },
    /// Set the workload's replicas.
    SetReplicas { replicas: i32 },
    /// Give the liveness probe at least this initial delay.
    LivenessDelay {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
        seconds: u32,
    },
}

impl Eq for PrChange {}

pub const DEFAULT_FACTOR: f64 = 1.5;

impl PrChange {
    pub fn manifest_change(&self) -> Change {
        match self {
            PrChange::RaiseMemory { container, factor } => Change::RaiseMemory { container: container.clone(), factor: factor.unwrap_or(DEFAULT_FACTOR) },
            PrChange::SetReplicas { replicas } => Change::SetReplicas { replicas: *replicas },
            PrChange::LivenessDelay { container, seconds } => Change::LivenessDelay { container: container.clone(), seconds: *seconds },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PrChange::RaiseMemory { container, factor } => {
                format!("raise the memory limit{} ×{}", container.as_ref().map(|c| format!(" of container {c}")).unwrap_or_default(), factor.unwrap_or(DEFAULT_FACTOR))
            }
            PrChange::SetReplicas { replicas } => format!("set replicas to {replicas}"),
            PrChange::LivenessDelay { container, seconds } => {
                format!("give the liveness probe{} an initial delay of {seconds}s", container.as_ref().map(|c| format!(" of container {c}")).unwrap_or_default())
            }
        }
    }

    /// Values a human would call absurd are refused before anything is touched.
    pub fn check(&self) -> Result<(), String> {
        match self {
            PrChange::RaiseMemory { factor: Some(f), .. } if !(1.1..=4.0).contains(f) => Err(format!("factor {f} is outside 1.1-4")),
            PrChange::SetReplicas { replicas } if !(0..=1000).contains(replicas) => Err(format!("{replicas} replicas is outside 0-1000")),
            PrChange::LivenessDelay { seconds, .. } if *seconds > 3600 => Err(format!("an initial delay of {seconds}s is over an hour")),
            _ => Ok(()),
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            PrChange::RaiseMemory { .. } => "memory",
            PrChange::SetReplicas { .. } => "replicas",
            PrChange::LivenessDelay { .. } => "liveness",
        }
    }
}

/// What a pull request is about: the incident behind it, for its branch,
/// title and body.
#[derive(Debug, Clone, Default)]
pub struct PrContext {
    pub incident: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub detected: Option<String>,
    pub check: Option<String>,
    /// Diagnosis lines (already redacted markdown).
    pub evidence: Vec<String>,
    /// The policy decision that let the action run.
    pub allowed: String,
}

/// The request of one `open_pr` action.
#[derive(Debug, Clone)]
pub struct PrRequest {
    pub target: Target,
    pub change: PrChange,
    pub context: PrContext,
}

impl PrRequest {
    /// `nightshift/<namespace>-<name>-<change>`: one per workload and kind
    /// of change, whatever the incident, so a recurrence updates the open
    /// pull request instead of opening a second one.
    pub fn branch(&self) -> String {
        let raw = format!("{}-{}-{}", self.target.namespace, self.target.name, self.change.slug());
        let clean: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c.to_ascii_lowercase() } else { '-' }).collect();
        let mut clean = clean.trim_matches(|c| c == '-' || c == '.').replace("..", ".");
        while clean.contains("--") {
            clean = clean.replace("--", "-");
        }
        format!("nightshift/{}", if clean.is_empty() { "change" } else { &clean })
    }

    pub fn title(&self, changes: &[String]) -> String {
        let what = changes.first().cloned().unwrap_or_else(|| self.change.describe());
        format!("nightshift: {}/{}: {what}", self.target.namespace, self.target.name)
    }

    /// The pull request's body: the incident, the evidence, the change, the
    /// decision that allowed it and where the note is.
    pub fn body(&self, cfg: &RepoConfig, edit: &git::Prepared) -> String {
        let c = &self.context;
        let mut b = String::new();
        b.push_str(&format!("## {}\n\n", c.title.clone().unwrap_or_else(|| format!("{} {}/{}", self.target.kind, self.target.namespace, self.target.name))));
        let facts: Vec<String> = [("Incident", c.incident.clone()), ("Severity", c.severity.clone()), ("Detected", c.detected.clone()), ("Check", c.check.clone())]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("**{k}:** {}", inline(&v))))
            .collect();
        if !facts.is_empty() {
            b.push_str(&facts.join(" · "));
            b.push_str("\n\n");
        }
        if !c.evidence.is_empty() {
            b.push_str("### Evidence\n\n");
            for e in &c.evidence {
                b.push_str(&format!("- {}\n", crate::redact::redact(e)));
            }
            b.push('\n');
        }
        b.push_str(&format!("### Change\n\n`{}`:\n\n", edit.path.display()));
        for line in &edit.changes {
            b.push_str(&format!("- {line}\n"));
        }
        b.push_str("\nOnly these values change; comments, key order and the file's other documents are kept.\n\n");
        b.push_str(&format!("### Why nightshift opened it\n\n{}\n\n", inline(&c.allowed)));
        if let Some(id) = &c.incident {
            b.push_str(&format!("### Incident note\n\n{}\n\n", cfg.note_link(id)));
        }
        b.push_str("A restart only buys time; this change is the fix. Review it like any other change: nightshift never merges and never pushes to the base branch.\n");
        if let Some(id) = &c.incident {
            b.push_str(&format!("\n<!-- nightshift:incident={} -->\n", inline(id)));
        }
        b
    }
}

/// One line of untrusted text made inert in markdown.
fn inline(s: &str) -> String {
    crate::redact::redact(s).replace(['\n', '\r'], " ").replace("<!--", "&lt;!--")
}

/// The pull request made or updated.
#[derive(Debug, Clone)]
pub struct Opened {
    pub number: u64,
    pub url: String,
    pub branch: String,
    pub created: bool,
    /// Whether this run pushed a commit (false when the branch already held the change).
    pub pushed: bool,
    pub path: PathBuf,
    pub changes: Vec<String>,
}

impl Opened {
    pub fn describe(&self) -> String {
        format!(
            "{} pull request #{} {} (branch {}{}): {}: {}",
            if self.created { "opened" } else { "updated" },
            self.number,
            self.url,
            self.branch,
            if self.pushed { "" } else { ", already carrying the change" },
            self.path.display(),
            self.changes.join("; ")
        )
    }
}

/// Carries out `open_pr`: prepare the commit, push the branch, open or update the PR.
pub async fn open_pr(cfg: &RepoConfig, req: &PrRequest) -> Result<Opened, String> {
    req.change.check()?;
    let token = cfg.token();
    let (c, r) = (cfg.clone(), req.clone());
    let tok = token.clone();
    let prepared = tokio::task::spawn_blocking(move || git::prepare_and_push(&c, &r, tok.as_deref())).await.map_err(|e| format!("the git task failed: {e}"))??;
    let Some(token) = token else {
        return Err(format!("branch {} pushed, but ${} is not set: nightshift cannot open the pull request; set it to a token that may open pull requests", prepared.branch, cfg.token_env));
    };
    let title = req.title(&prepared.changes);
    let body = req.body(cfg, &prepared);
    let pr = github::upsert(cfg, &token, &prepared.branch, &title, &body).await.map_err(|e| format!("branch {} pushed, but the pull request failed: {e}", prepared.branch))?;
    Ok(Opened { number: pr.number, url: pr.url, branch: prepared.branch, created: pr.created, pushed: prepared.pushed, path: prepared.path, changes: prepared.changes })
}

/// What `open_pr` would do, without pushing or calling the API (it fetches).
pub async fn preview(cfg: &RepoConfig, req: &PrRequest) -> String {
    if let Err(e) = req.change.check() {
        return format!("refused: {e}");
    }
    let (c, r, token) = (cfg.clone(), req.clone(), cfg.token());
    match tokio::task::spawn_blocking(move || git::prepare(&c, &r, token.as_deref())).await {
        Ok(Ok(p)) => format!("would push branch {} to {} and open a pull request to {}: {}: {}", p.branch, cfg.remote, cfg.base, p.path.display(), p.changes.join("; ")),
        Ok(Err(e)) => format!("cannot prepare the pull request: {e}"),
        Err(e) => format!("the git task failed: {e}"),
    }
}

/// Resolves a `cache:` setting against the workspace.
pub fn resolve_cache(root: &Path, cache: &str) -> PathBuf {
    let p = PathBuf::from(cache);
    if p.is_absolute() { p } else { root.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_name_come_from_every_remote_form() {
        for (remote, want) in [
            ("https://github.com/acme/infra", Some(("acme", "infra"))),
            ("https://github.com/acme/infra.git", Some(("acme", "infra"))),
            ("https://ghe.example.com/platform/k8s-config.git/", Some(("platform", "k8s-config"))),
            ("git@github.com:acme/infra.git", Some(("acme", "infra"))),
            ("ssh://git@github.com/acme/infra.git", Some(("acme", "infra"))),
            ("/srv/git/infra.git", None),
            ("infra", None),
        ] {
            assert_eq!(RepoConfig::owner_repo(remote), want.map(|(o, n)| (o.to_string(), n.to_string())), "{remote}");
        }
    }

    #[test]
    fn branches_are_named_after_the_workload_and_safe_for_git() {
        let req = |incident: Option<&str>| PrRequest {
            target: Target { kind: "Deployment".into(), namespace: "shop".into(), name: "checkout".into() },
            change: PrChange::RaiseMemory { container: None, factor: None },
            context: PrContext { incident: incident.map(str::to_string), ..Default::default() },
        };
        // Every incident of the workload shares the branch (and so the pull request).
        assert_eq!(req(Some("2026-11-23-pod-oom-shop-checkout")).branch(), "nightshift/shop-checkout-memory");
        assert_eq!(req(Some("2026-11-30-pod-oom-shop-checkout")).branch(), "nightshift/shop-checkout-memory");
        assert_eq!(req(None).branch(), "nightshift/shop-checkout-memory");
        let odd = PrRequest { target: Target { kind: "Deployment".into(), namespace: "../..".into(), name: "main ~^:?*[".into() }, ..req(None) };
        assert_eq!(odd.branch(), "nightshift/main-memory", "{}", odd.branch());
    }

    #[test]
    fn absurd_changes_are_refused() {
        assert!(PrChange::RaiseMemory { container: None, factor: Some(10.0) }.check().is_err());
        assert!(PrChange::SetReplicas { replicas: -1 }.check().is_err());
        assert!(PrChange::RaiseMemory { container: None, factor: None }.check().is_ok());
    }
}
