//! The pull request itself, through octocrab against GitHub or GitHub
//! Enterprise (`api_url`). One open pull request per branch: a second run
//! for the same incident updates it instead of opening another.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::params::State;

use super::RepoConfig;

pub struct Pr {
    pub number: u64,
    pub url: String,
    pub created: bool,
}

/// Opens the pull request from `branch` to the base, or updates the open
/// one, then adds the configured labels.
pub async fn upsert(cfg: &RepoConfig, token: &str, branch: &str, title: &str, body: &str) -> Result<Pr, String> {
    let gh = Octocrab::builder()
        .base_uri(cfg.api_url.as_str())
        .map_err(|e| format!("api_url {}: {e}", cfg.api_url))?
        .personal_token(token.to_string())
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)))
        .build()
        .map_err(|e| explain(&e, "building the GitHub client"))?;
    let pulls = gh.pulls(&cfg.owner, &cfg.name);
    let open = pulls.list().state(State::Open).head(format!("{}:{branch}", cfg.owner)).base(cfg.base.as_str()).send().await.map_err(|e| explain(&e, "listing pull requests"))?;
    let (pr, created) = match open.items.into_iter().find(|p| p.head.ref_field == branch) {
        Some(existing) => (pulls.update(existing.number).title(title).body(body).send().await.map_err(|e| explain(&e, &format!("updating pull request #{}", existing.number)))?, false),
        None => (pulls.create(title, branch, cfg.base.as_str()).body(body).send().await.map_err(|e| explain(&e, "opening the pull request"))?, true),
    };
    if !cfg.labels.is_empty() {
        gh.issues(&cfg.owner, &cfg.name).add_labels(pr.number, &cfg.labels).await.map_err(|e| explain(&e, &format!("labelling pull request #{}", pr.number)))?;
    }
    let url = pr.html_url.map(|u| u.to_string()).unwrap_or_else(|| format!("{}/repos/{}/{}/pulls/{}", cfg.api_url, cfg.owner, cfg.name, pr.number));
    Ok(Pr { number: pr.number, url, created })
}

/// GitHub's own message (and its validation errors), not a debug dump.
fn explain(e: &octocrab::Error, doing: &str) -> String {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let details: Vec<String> = source.errors.iter().flatten().map(|v| v.get("message").and_then(|m| m.as_str()).map_or_else(|| v.to_string(), str::to_string)).collect();
            let hint = match source.status_code.as_u16() {
                401 => ": the token was refused; check the token variable",
                403 => ": the token may not do this (it needs pull request write access to the repository)",
                404 => ": no such repository for this token; check repository:/repo: and api_url",
                _ => "",
            };
            format!("{doing}: GitHub answered {} {}{}{hint}", source.status_code.as_u16(), source.message, if details.is_empty() { String::new() } else { format!(" ({})", details.join("; ")) })
        }
        other => format!("{doing}: {other}"),
    }
}
