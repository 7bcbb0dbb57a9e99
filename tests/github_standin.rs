//! The GitHub stand-in itself (tests/support/github.rs) is strict, so the
//! tests that rely on it cannot pass vacuously: a request GitHub's
//! description rejects, a route or repository it does not serve, and a
//! response missing what GitHub always sends are all caught; a wrong token
//! is 401 and a pull request for a branch that was never pushed is 422, as
//! on GitHub. Skipped (with a SKIP line) without the description; run
//! scripts/github-openapi.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::github::GitHub;

const TOKEN: &str = "ghp_standInSelfTestToken0123456789abcdef";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A bare repository whose `main` has one commit, and the clone that pushes to it.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "--bare", "-q", "-b", "main", "remote.git"]);
        git(dir.path(), &["clone", "-q", "remote.git", "work"]);
        let r = Self { dir };
        r.commit_and_push("main", "README.md", "# infra\n");
        r
    }

    fn bare(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn commit_and_push(&self, branch: &str, path: &str, content: &str) {
        let w = self.dir.path().join("work");
        std::fs::write(w.join(path), content).unwrap();
        git(&w, &["add", "-A"]);
        git(&w, &["-c", "user.name=T", "-c", "user.email=t@example.test", "commit", "-q", "-m", "change"]);
        git(&w, &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")]);
    }
}

fn start() -> Option<(GitHub, Remote)> {
    let gh = GitHub::start(TOKEN)?;
    let remote = Remote::new();
    gh.with_git_remote("acme", "infra", &remote.bare());
    Some((gh, remote))
}

/// A request over a fresh connection with the right token (or `auth`): (status, JSON body).
fn call(gh: &GitHub, method: &str, path: &str, body: Option<Value>, auth: Option<&str>) -> (u16, Value) {
    let addr = gh.url().trim_start_matches("http://").to_string();
    let auth = auth.map_or_else(|| format!("Bearer {TOKEN}"), str::to_string);
    let mut headers = vec![("Authorization", auth.as_str()), ("Accept", "application/vnd.github+json"), ("User-Agent", "standin-test")];
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    if !text.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let (status, reply) = support::http_request(&addr, method, path, &headers, text.as_bytes());
    (status, serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {reply}")))
}

/// What `f` panicked with (it must panic).
fn panics(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("it should have panicked");
    err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn a_request_body_the_description_rejects_is_422_and_makes_the_run_unclean() {
    let Some((gh, remote)) = start() else { return };
    remote.commit_and_push("fix", "a.txt", "a\n");

    let (status, reply) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(json!({ "title": 5, "head": "fix", "base": "main" })), None);
    assert_eq!(status, 422, "{reply}");
    assert!(gh.pulls("acme", "infra").is_empty(), "nothing was opened");
    let problems = gh.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("POST /repos/acme/infra/pulls") && problems[0].contains("/title"), "{}", problems[0]);

    // `head` is required by the description.
    let (status, _) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(json!({ "title": "t", "base": "main" })), None);
    assert_eq!(status, 422);
    // An empty label list breaks `minItems`; a query parameter's value its enum; an unknown parameter.
    assert_eq!(call(&gh, "POST", "/repos/acme/infra/issues/1/labels", Some(json!({ "labels": [] })), None).0, 422);
    assert_eq!(call(&gh, "GET", "/repos/acme/infra/pulls?state=merged", None, None).0, 422);
    call(&gh, "GET", "/repos/acme/infra/pulls?color=red", None, None);
    let problems = gh.problems();
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(problems[1].contains("head"), "{}", problems[1]);
    assert!(problems[2].contains("/labels"), "{}", problems[2]);
    assert!(problems[3].contains("state=\"merged\""), "{}", problems[3]);
    assert!(problems[4].contains("\"color\""), "{}", problems[4]);

    let message = panics(|| gh.assert_clean());
    assert!(message.contains("5 problem(s)") && message.contains("@octokit/openapi@23.0.2"), "{message}");
}

#[test]
fn a_wrong_or_missing_token_is_401_bad_credentials_and_not_a_problem() {
    let Some((gh, _remote)) = start() else { return };
    for auth in [Some("Bearer ghp_wrong"), Some(&*format!("token {TOKEN}x")), Some("Basic dXNlcjpwYXNz"), Some("")] {
        let (status, reply) = call(&gh, "GET", "/repos/acme/infra/pulls", None, auth);
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(reply["message"], "Bad credentials");
    }
    // Both schemes GitHub accepts.
    assert_eq!(call(&gh, "GET", "/repos/acme/infra", None, Some(&format!("token {TOKEN}"))).0, 200);
    assert_eq!(call(&gh, "GET", "/repos/acme/infra", None, Some(&format!("Bearer {TOKEN}"))).0, 200);
    gh.assert_clean();
}

#[test]
fn an_unknown_route_or_repository_is_404_and_recorded() {
    let Some((gh, _remote)) = start() else { return };
    let (status, reply) = call(&gh, "GET", "/repos/acme/infra/branches", None, None);
    assert_eq!(status, 404);
    assert_eq!(reply, json!({ "message": "Not Found", "documentation_url": "https://docs.github.com/rest" }));
    assert_eq!(call(&gh, "GET", "/repos/acme/other/pulls", None, None).0, 404);
    assert_eq!(call(&gh, "DELETE", "/repos/acme/infra", None, None).0, 404);
    assert_eq!(call(&gh, "GET", "/nowhere", None, None).0, 404);
    let problems = gh.problems();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems.iter().all(|p| p.contains("unexpected request")), "{problems:#?}");
    assert!(problems[1].contains("acme/other"), "{}", problems[1]);
    let message = panics(|| gh.assert_clean());
    assert!(message.contains("GET /repos/acme/infra/branches"), "{message}");
}

#[test]
fn a_pull_request_needs_its_branch_pushed_first_and_only_one_is_open_per_branch() {
    let Some((gh, remote)) = start() else { return };
    let open = json!({ "title": "raise the limit", "head": "acme:nightshift/x", "base": "main", "body": "why" });

    // The branch was never pushed: GitHub's 422, which is valid, so not a problem.
    let (status, reply) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(open.clone()), None);
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["errors"][0]["field"], "head", "{reply}");
    // A branch with nothing beyond main is refused too.
    git(&remote.dir.path().join("work"), &["push", "-q", "origin", "HEAD:refs/heads/nightshift/x"]);
    let (status, reply) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(open.clone()), None);
    assert_eq!(status, 422, "{reply}");
    assert!(reply["errors"][0]["message"].as_str().unwrap().starts_with("No commits between main and nightshift/x"), "{reply}");
    assert!(gh.pulls("acme", "infra").is_empty());

    remote.commit_and_push("nightshift/x", "limits.yaml", "memory: 768Mi\n");
    let (status, pr) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(open.clone()), None);
    assert_eq!(status, 201, "{pr}");
    assert_eq!((pr["number"].as_u64(), pr["head"]["ref"].as_str(), pr["additions"].as_u64(), pr["changed_files"].as_u64()), (Some(1), Some("nightshift/x"), Some(1), Some(1)));
    assert!(pr["html_url"].as_str().unwrap().ends_with("/acme/infra/pull/1"), "{}", pr["html_url"]);

    let (status, reply) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(open), None);
    assert_eq!(status, 422);
    assert_eq!(reply["errors"][0]["message"], "A pull request already exists for acme:nightshift/x.");

    // Listing filters by head and base; updating, labelling and commenting.
    let (_, list) = call(&gh, "GET", "/repos/acme/infra/pulls?state=open&head=acme%3Anightshift%2Fx&base=main", None, None);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (_, list) = call(&gh, "GET", "/repos/acme/infra/pulls?state=open&head=acme%3Aother&base=main", None, None);
    assert_eq!(list, json!([]));
    let (status, pr) = call(&gh, "PATCH", "/repos/acme/infra/pulls/1", Some(json!({ "title": "raise it more", "body": "because" })), None);
    assert_eq!((status, pr["title"].as_str()), (200, Some("raise it more")));
    let (status, labels) = call(&gh, "POST", "/repos/acme/infra/issues/1/labels", Some(json!({ "labels": ["nightshift", "oom"] })), None);
    assert_eq!(status, 200);
    assert_eq!(labels.as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect::<Vec<_>>(), ["nightshift", "oom"]);
    let (_, list) = call(&gh, "GET", "/repos/acme/infra/pulls?state=all", None, None);
    assert_eq!(list[0]["labels"][1]["name"], "oom", "{list}");
    assert_eq!(call(&gh, "POST", "/repos/acme/infra/issues/1/comments", Some(json!({ "body": "note" })), None).0, 201);
    assert_eq!(call(&gh, "GET", "/repos/acme/infra/issues/1/comments", None, None).1.as_array().unwrap().len(), 1);
    assert_eq!(call(&gh, "GET", "/repos/acme/infra/pulls/2", None, None).0, 404, "a pull request that does not exist");

    let pulls = gh.pulls("acme", "infra");
    assert_eq!(pulls.len(), 1);
    assert_eq!((pulls[0].title.as_str(), pulls[0].body.as_str(), pulls[0].labels.clone()), ("raise it more", "because", vec!["nightshift".to_string(), "oom".to_string()]));
    gh.assert_clean();
}

#[test]
fn a_response_missing_what_github_always_sends_does_not_validate() {
    let Some((gh, remote)) = start() else { return };
    remote.commit_and_push("b", "f", "x\n");
    let (_, pr) = call(&gh, "POST", "/repos/acme/infra/pulls", Some(json!({ "title": "t", "head": "b", "base": "main" })), None);
    let path = "/repos/acme/infra/pulls/1";
    assert_eq!(GitHub::check_response("GET", path, 200, &pr), Ok(()));

    let mut no_head = pr.clone();
    no_head.as_object_mut().unwrap().remove("head");
    let errors = GitHub::check_response("GET", path, 200, &no_head).unwrap_err();
    assert!(errors.iter().any(|e| e.contains("head")), "{errors:?}");
    let mut merged = pr.clone();
    merged["state"] = json!("merged");
    assert!(GitHub::check_response("GET", path, 200, &merged).is_err(), "state is open or closed");
    let mut not_a_date = pr.clone();
    not_a_date["created_at"] = json!("yesterday");
    assert!(GitHub::check_response("GET", path, 200, &not_a_date).is_err(), "formats are asserted");
    let mut null_user = pr.clone();
    null_user["head"]["repo"]["owner"] = Value::Null;
    assert!(GitHub::check_response("GET", path, 200, &null_user).is_err(), "a nested $ref is followed");
    let mut null_body = pr;
    null_body["body"] = Value::Null;
    assert_eq!(GitHub::check_response("GET", path, 200, &null_body), Ok(()), "nullable: true admits null");
    gh.assert_clean();
}

/// The calls src/infra/github.rs makes, with octocrab, read back into its models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octocrab_reads_every_response_and_sends_only_valid_requests() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some((gh, remote)) = start() else { return };
    remote.commit_and_push("nightshift/y", "f", "y\n");
    let client = octocrab::Octocrab::builder().base_uri(gh.url()).unwrap().personal_token(TOKEN.to_string()).build().unwrap();
    let pulls = client.pulls("acme", "infra");
    let open = pulls.list().state(octocrab::params::State::Open).head("acme:nightshift/y").base("main").send().await.unwrap();
    assert!(open.items.is_empty());
    let pr = pulls.create("title", "nightshift/y", "main").body("body").send().await.unwrap();
    assert_eq!(pr.number, 1);
    assert!(pr.html_url.as_ref().unwrap().as_str().ends_with("/acme/infra/pull/1"));
    let open = pulls.list().state(octocrab::params::State::Open).head("acme:nightshift/y").base("main").send().await.unwrap();
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].head.ref_field, "nightshift/y");
    let updated = pulls.update(1).title("new title").body("new body").send().await.unwrap();
    assert_eq!(updated.title.as_deref(), Some("new title"));
    let labels = client.issues("acme", "infra").add_labels(1, &["nightshift".to_string()]).await.unwrap();
    assert_eq!(labels[0].name, "nightshift");
    let open = pulls.list().state(octocrab::params::State::Open).head("acme:nightshift/y").base("main").send().await.unwrap();
    assert_eq!(open.items[0].labels.as_ref().map(Vec::len), Some(1));
    let repo = client.repos("acme", "infra").get().await.unwrap();
    assert_eq!(repo.default_branch.as_deref(), Some("main"));

    let err = octocrab::Octocrab::builder().base_uri(gh.url()).unwrap().personal_token("ghp_wrong".to_string()).build().unwrap().pulls("acme", "infra").list().send().await.unwrap_err();
    assert!(matches!(&err, octocrab::Error::GitHub { source, .. } if source.status_code.as_u16() == 401 && source.message == "Bad credentials"), "{err:?}");
    gh.assert_clean();
}
