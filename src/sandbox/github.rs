//! A stand-in for GitHub's REST API: a real HTTP server (axum) on loopback,
//! on its own thread and tokio runtime, holding repositories whose branches
//! live in real bare git repositories. Every request it receives and every
//! response it gives is checked against GitHub's own OpenAPI description
//! (@octokit/openapi, fetched by scripts/github-openapi.sh): the request's
//! query parameters and JSON body, and the response's JSON body for its
//! status. What does not validate, and every request for a route or a
//! repository the stand-in does not serve, is recorded; `assert_clean`
//! fails the test with the list. A test that passes against it therefore
//! sent requests GitHub would accept and read responses shaped as GitHub's.
//!
//! Served: GET /repos/{o}/{r}; GET, POST /repos/{o}/{r}/pulls; GET, PATCH
//! /repos/{o}/{r}/pulls/{n}; GET, POST /repos/{o}/{r}/issues/{n}/labels and
//! /repos/{o}/{r}/issues/{n}/comments. Anything else is 404 (and recorded).
//! A token other than the one given to `start` is 401, as GitHub answers it.

// A stand-in's invariants (a registered repository, a bound listener) are
// asserted: a broken stand-in is a broken sandbox. The drill runs each
// scenario in a task of its own and reports a panic as its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The pinned package the description comes from (see scripts/github-openapi.sh).
pub const SPEC_PACKAGE: &str = "@octokit/openapi@23.0.2";
const DOCS: &str = "https://docs.github.com/rest";
/// The account the token belongs to: the author of pull requests and comments.
const BOT: &str = "nightshift-bot";
const BOT_ID: u64 = 90_001;

/// A pull request as the stand-in holds it.
#[derive(Debug, Clone)]
pub struct PullRecord {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub state: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

/// The running stand-in; stopped on drop.
pub struct GitHub {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GitHub {
    /// Starts the stand-in accepting `token`. `None`, after a `SKIP` line on
    /// stderr, when GitHub's OpenAPI description is not on disk — unless
    /// NIGHTSHIFT_REQUIRE_GITHUB_SPEC=1, which makes that a failure.
    pub fn start(token: &str) -> Option<GitHub> {
        match spec() {
            Ok(_) => {}
            Err(SpecError::Missing(why)) => {
                if std::env::var("NIGHTSHIFT_REQUIRE_GITHUB_SPEC").as_deref() == Ok("1") || std::env::var("NIGHTSHIFT_REQUIRE_ALL").as_deref() == Ok("1") {
                    panic!("NIGHTSHIFT_REQUIRE_GITHUB_SPEC=1 but {why}");
                }
                eprintln!("SKIP GitHub stand-in: {why}");
                return None;
            }
            Err(SpecError::Broken(why)) => panic!("GitHub stand-in: {why}"),
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the GitHub stand-in on loopback");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the stand-in's address");
        let shared = Arc::new(Mutex::new(Shared::new(token, format!("http://{addr}"))));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel::<()>();
        let state = shared.clone();
        std::thread::Builder::new()
            .name("github-stand-in".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("the stand-in's tokio runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let app = axum::Router::new().fallback(handle).with_state(state);
                    let _ = ready.send(());
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("spawn the stand-in's thread");
        is_ready.recv().expect("the stand-in started");
        Some(GitHub { addr, shared, stop: Some(stop) })
    }

    /// The API's base URL, e.g. `http://127.0.0.1:PORT` (octocrab's `base_uri`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `owner/repo`, whose branches are those of the bare repository `bare_repo`.
    pub fn with_git_remote(&self, owner: &str, repo: &str, bare_repo: &Path) {
        let mut s = lock(&self.shared);
        s.next_id += 1;
        let id = s.next_id;
        let entry = s.repos.entry((owner.to_string(), repo.to_string())).or_insert_with(|| RepoState { id, bare: PathBuf::new(), pulls: Vec::new(), labels: BTreeMap::new() });
        entry.bare = bare_repo.to_path_buf();
    }

    /// The pull requests of `owner/repo`, in number order.
    pub fn pulls(&self, owner: &str, repo: &str) -> Vec<PullRecord> {
        let s = lock(&self.shared);
        let Some(r) = s.repos.get(&(owner.to_string(), repo.to_string())) else { return Vec::new() };
        r.pulls
            .iter()
            .map(|p| PullRecord {
                number: p.number,
                head: p.head.clone(),
                base: p.base.clone(),
                state: p.state.clone(),
                title: p.title.clone(),
                body: p.body.clone().unwrap_or_default(),
                labels: p.labels.clone(),
            })
            .collect()
    }

    /// Every request that did not validate against GitHub's description, every
    /// response the stand-in gave that did not, and every request for a route
    /// or repository it does not serve.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.shared).problems.clone()
    }

    /// Every request received, as `METHOD /path?query -> status`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared).log.clone()
    }

    /// Checks `body` as GitHub's response to `method path` with `status`, the
    /// way the stand-in checks its own responses: the validation errors, if any.
    pub fn check_response(method: &str, path: &str, status: u16, body: &Value) -> Result<(), Vec<String>> {
        let spec = spec().map_err(|_| vec!["no OpenAPI description".to_string()])?;
        let path = path.split('?').next().unwrap_or(path);
        let op = spec.operation(method, path).ok_or_else(|| vec![format!("no operation for {method} {path}")])?;
        match op.responses.get(&status.to_string()) {
            Some(Some(schema)) => check(spec, &format!("{} {} response {status}", op.method, op.template), schema, body),
            Some(None) => Err(vec![format!("{status} has no JSON body")]),
            None => Err(vec![format!("{} {} does not document {status}", op.method, op.template)]),
        }
    }

    /// Panics listing every problem (see `problems`), with the requests received.
    pub fn assert_clean(&self) {
        let (problems, log) = {
            let s = lock(&self.shared);
            (s.problems.clone(), s.log.clone())
        };
        if !problems.is_empty() {
            panic!("the GitHub stand-in saw {} problem(s) against {SPEC_PACKAGE}:\n  - {}\nrequests received:\n  {}", problems.len(), problems.join("\n  - "), log.join("\n  "));
        }
    }
}

impl Drop for GitHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// GitHub's OpenAPI description, converted to JSON Schema once per process.

enum SpecError {
    /// The file is not there: the tests skip.
    Missing(String),
    /// The file is there but unusable: the tests fail.
    Broken(String),
}

struct Spec {
    operations: Vec<Operation>,
    /// components.schemas, each converted from OpenAPI 3.0 to JSON Schema.
    schemas: Map<String, Value>,
}

struct Operation {
    method: String,
    template: String,
    segments: Vec<String>,
    /// The JSON request body's schema and whether a body is required.
    request: Option<(Value, bool)>,
    /// Status (or "default") to the JSON body's schema (`None`: no JSON body).
    responses: BTreeMap<String, Option<Value>>,
    /// Query parameters: name, schema, required.
    query: Vec<(String, Value, bool)>,
}

/// Where the description is read from: $NIGHTSHIFT_GITHUB_OPENAPI, else the cache
/// scripts/github-openapi.sh fills ($NIGHTSHIFT_CACHE, default ~/.cache/nightshift).
pub fn spec_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NIGHTSHIFT_GITHUB_OPENAPI").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let root =
        std::env::var_os("NIGHTSHIFT_CACHE").filter(|p| !p.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/nightshift"));
    root.join("octokit-openapi/generated/api.github.com.json")
}

/// Whether the stand-in can run here: GitHub's description is on disk and reads.
pub fn available() -> Result<(), String> {
    match spec() {
        Ok(_) => Ok(()),
        Err(SpecError::Missing(why) | SpecError::Broken(why)) => Err(why.clone()),
    }
}

fn spec() -> Result<&'static Spec, &'static SpecError> {
    static SPEC: OnceLock<Result<Spec, SpecError>> = OnceLock::new();
    SPEC.get_or_init(load_spec).as_ref()
}

fn load_spec() -> Result<Spec, SpecError> {
    let path = spec_path();
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => return Err(SpecError::Missing(format!("GitHub's OpenAPI description ({SPEC_PACKAGE}) is not at {} ({e}); run scripts/github-openapi.sh", path.display()))),
    };
    let doc: Value = serde_json::from_slice(&text).map_err(|e| SpecError::Broken(format!("{} is not JSON ({e}); delete it and run scripts/github-openapi.sh", path.display())))?;
    let version = doc["openapi"].as_str().unwrap_or("");
    if !version.starts_with("3.0.") {
        return Err(SpecError::Broken(format!("{} is OpenAPI {version:?}, the stand-in reads 3.0", path.display())));
    }
    let components = &doc["components"];
    let schemas: Map<String, Value> = components["schemas"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), convert(v))).collect()).unwrap_or_default();
    if schemas.is_empty() {
        return Err(SpecError::Broken(format!("{} has no components.schemas", path.display())));
    }
    let mut operations = Vec::new();
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        let shared_params: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
            let op = &item[method];
            if !op.is_object() {
                continue;
            }
            let request = {
                let body = resolve(components, &op["requestBody"]);
                body["content"]["application/json"]["schema"].as_object().map(|_| (convert(&body["content"]["application/json"]["schema"]), body["required"] == json!(true)))
            };
            let mut responses = BTreeMap::new();
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                let r = resolve(components, r);
                let schema = r["content"]["application/json"]["schema"].as_object().map(|_| convert(&r["content"]["application/json"]["schema"]));
                responses.insert(status.clone(), schema);
            }
            let mut query = Vec::new();
            for p in shared_params.iter().chain(op["parameters"].as_array().into_iter().flatten()) {
                let p = resolve(components, p);
                if p["in"] == "query"
                    && let Some(name) = p["name"].as_str()
                {
                    query.push((name.to_string(), convert(&p["schema"]), p["required"] == json!(true)));
                }
            }
            operations.push(Operation {
                method: method.to_uppercase(),
                template: template.clone(),
                segments: template.trim_start_matches('/').split('/').map(str::to_string).collect(),
                request,
                responses,
                query,
            });
        }
    }
    Ok(Spec { operations, schemas })
}

/// Follows a `$ref` into `components` (responses, parameters, request bodies).
fn resolve<'a>(components: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/")) {
        Some(rest) => {
            let mut cur = components;
            for part in rest.split('/') {
                cur = &cur[part];
            }
            cur
        }
        None => v,
    }
}

/// An OpenAPI 3.0 schema object as JSON Schema: `nullable: true` admits
/// null; annotations only OpenAPI knows (example, discriminator, x-…) and
/// prose are dropped. `$ref`s keep pointing at `#/components/schemas/…`.
fn convert(v: &Value) -> Value {
    let Value::Object(m) = v else { return v.clone() };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "properties" | "patternProperties" => {
                let props: Map<String, Value> = v.as_object().map(|p| p.iter().map(|(n, s)| (n.clone(), convert(s))).collect()).unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.clone(), convert(v));
            }
            "allOf" | "anyOf" | "oneOf" => {
                out.insert(k.clone(), Value::Array(v.as_array().map(|a| a.iter().map(convert).collect()).unwrap_or_default()));
            }
            "nullable" | "example" | "examples" | "discriminator" | "xml" | "externalDocs" | "description" | "title" | "readOnly" | "writeOnly" | "deprecated" => {}
            k if k.starts_with("x-") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if m.get("nullable") == Some(&Value::Bool(true)) {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = t.clone();
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(ts)) => {
                if !ts.contains(&json!("null")) {
                    ts.push(json!("null"));
                }
            }
            _ => return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] }),
        }
        if let Some(Value::Array(e)) = out.get_mut("enum")
            && !e.contains(&Value::Null)
        {
            e.push(Value::Null);
        }
    }
    Value::Object(out)
}

impl Spec {
    /// The operation for `method` and a concrete path: the template matching
    /// it with the most literal segments (`/pulls/comments` before `/pulls/{n}`).
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|o| o.method == method && o.segments.len() == segs.len())
            .filter(|o| o.segments.iter().zip(&segs).all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s))
            .max_by_key(|o| o.segments.iter().filter(|t| !t.starts_with('{')).count())
    }

    /// `schema` as a standalone JSON Schema document: itself at the root and
    /// the component schemas it reaches under `components.schemas`, where its
    /// `$ref`s point.
    fn document(&self, schema: &Value) -> Value {
        let mut seen = BTreeSet::new();
        let mut todo = Vec::new();
        refs(schema, &mut todo);
        while let Some(name) = todo.pop() {
            if seen.insert(name.clone())
                && let Some(s) = self.schemas.get(&name)
            {
                refs(s, &mut todo);
            }
        }
        let reached: Map<String, Value> = seen.into_iter().filter_map(|n| self.schemas.get(&n).map(|s| (n, s.clone()))).collect();
        let mut root = match schema {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), json!([other]));
                m
            }
        };
        root.insert("components".into(), json!({ "schemas": reached }));
        Value::Object(root)
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref"
                    && let Some(name) = v.as_str().and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(name.to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Validates `instance` against `schema` (compiled once per `key` per process,
/// formats asserted). The errors, each with where in the instance it is.
fn check(spec: &Spec, key: &str, schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
    type Cache = Mutex<HashMap<String, Arc<jsonschema::Validator>>>;
    static VALIDATORS: OnceLock<Cache> = OnceLock::new();
    let cache = VALIDATORS.get_or_init(Default::default);
    let cached = lock(cache).get(key).cloned();
    let validator = match cached {
        Some(v) => v,
        None => {
            let doc = spec.document(schema);
            let v = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .should_ignore_unknown_formats(true)
                .build(&doc)
                .map_err(|e| vec![format!("the stand-in could not compile the schema for {key}: {e}")])?;
            let v = Arc::new(v);
            lock(cache).insert(key.to_string(), v.clone());
            v
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .take(12)
        .map(|e| {
            let path = e.instance_path().to_string();
            let text = e.to_string();
            let text = if text.chars().count() > 300 { format!("{}…", text.chars().take(300).collect::<String>()) } else { text };
            format!("at {:?}: {text}", if path.is_empty() { "/" } else { path.as_str() })
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

// ---------------------------------------------------------------------------
// The server's state and its one handler.

struct Shared {
    token: String,
    /// `http://127.0.0.1:PORT`: the API's and the web pages' base.
    base: String,
    repos: BTreeMap<(String, String), RepoState>,
    problems: Vec<String>,
    log: Vec<String>,
    next_id: u64,
}

struct RepoState {
    id: u64,
    bare: PathBuf,
    pulls: Vec<Pull>,
    /// The repository's labels, name to id (GitHub creates them on first use).
    labels: BTreeMap<String, u64>,
}

struct Pull {
    number: u64,
    id: u64,
    head: String,
    base: String,
    state: String,
    title: String,
    body: Option<String>,
    labels: Vec<String>,
    draft: bool,
    maintainer_can_modify: bool,
    created: String,
    updated: String,
    closed: Option<String>,
    head_sha: String,
    base_sha: String,
    comments: Vec<Comment>,
}

struct Comment {
    id: u64,
    body: String,
    created: String,
}

struct Reply {
    status: u16,
    body: Value,
    location: Option<String>,
    /// Why the request was not one the stand-in expects (recorded as a problem).
    unexpected: Option<String>,
}

impl Reply {
    fn ok(status: u16, body: Value) -> Self {
        Self { status, body, location: None, unexpected: None }
    }
    fn error(status: u16, message: &str) -> Self {
        Self::ok(status, json!({ "message": message, "documentation_url": DOCS }))
    }
    fn unexpected(why: String) -> Self {
        Self { unexpected: Some(why), ..Self::error(404, "Not Found") }
    }
    /// GitHub's 422 with its `errors` list.
    fn invalid(errors: Value) -> Self {
        Self::ok(422, json!({ "message": "Validation Failed", "errors": errors, "documentation_url": DOCS }))
    }
}

impl Shared {
    fn new(token: &str, base: String) -> Self {
        Self { token: token.to_string(), base, repos: BTreeMap::new(), problems: Vec::new(), log: Vec::new(), next_id: 1000 }
    }
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = lock(&shared);
    let path = uri.path().to_string();
    let target = uri.path_and_query().map_or(path.clone(), |p| p.to_string());
    let query: Vec<(String, String)> = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let Ok(spec) = spec() else { return (StatusCode::INTERNAL_SERVER_ERROR, "no OpenAPI description").into_response() };
    let op = spec.operation(method.as_str(), &path);
    let what = format!("{method} {target}");

    let reply = 'reply: {
        // GitHub refuses a wrong token before it looks at anything else.
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")).then(|| rest.trim().to_string())
        });
        if given.as_deref() != Some(s.token.as_str()) {
            break 'reply Reply::error(401, "Bad credentials");
        }
        // The request against the description.
        let mut parsed = Value::Null;
        if !body.is_empty() {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => parsed = v,
                Err(e) => {
                    s.problems.push(format!("{what}: the request body is not JSON ({e})"));
                    break 'reply Reply::error(400, "Problems parsing JSON");
                }
            }
        }
        if let Some(op) = op {
            let mut bad = Vec::new();
            for (name, value) in &query {
                match op.query.iter().find(|(n, _, _)| n == name) {
                    None => bad.push(format!("query parameter {name:?} is not one {} {} takes", op.method, op.template)),
                    Some((_, schema, _)) => {
                        let typed = typed_param(schema, value);
                        if let Err(errors) = check(spec, &format!("{} {} query {name}", op.method, op.template), schema, &typed) {
                            bad.push(format!("query parameter {name}={value:?}: {}", errors.join("; ")));
                        }
                    }
                }
            }
            for (name, _, required) in &op.query {
                if *required && !query.iter().any(|(n, _)| n == name) {
                    bad.push(format!("the required query parameter {name:?} is missing"));
                }
            }
            match &op.request {
                Some((schema, required)) => {
                    if body.is_empty() {
                        if *required {
                            bad.push("the required JSON body is missing".into());
                        }
                    } else if let Err(errors) = check(spec, &format!("{} {} request", op.method, op.template), schema, &parsed) {
                        bad.push(format!("request body {parsed}: {}", errors.join("; ")));
                    }
                }
                None if !body.is_empty() => bad.push(format!("a body was sent to {} {}, which takes none", op.method, op.template)),
                None => {}
            }
            if !bad.is_empty() {
                for b in &bad {
                    s.problems.push(format!("{what}: request does not match the description: {b}"));
                }
                // As GitHub does for a body it cannot accept.
                break 'reply Reply::ok(422, json!({ "message": format!("Invalid request.\n\n{}", bad.join("\n")), "documentation_url": DOCS }));
            }
        }
        s.route(method.as_str(), &path, &query, &parsed)
    };

    if let Some(why) = &reply.unexpected {
        s.problems.push(format!("{what}: unexpected request: {why}"));
    }
    // The response against the description.
    let status = reply.status.to_string();
    match op {
        Some(op) => match op.responses.get(&status).or_else(|| op.responses.get("default")) {
            Some(Some(schema)) => {
                if let Err(errors) = check(spec, &format!("{} {} response {status}", op.method, op.template), schema, &reply.body) {
                    s.problems.push(format!("{what}: the stand-in's {status} response does not match the description: {}", errors.join("; ")));
                }
            }
            Some(None) => s.problems.push(format!("{what}: the description gives {status} for {} {} no JSON body, the stand-in sent one", op.method, op.template)),
            // GitHub answers 401 and 404 on any operation, documented or not, with its basic error.
            None if matches!(reply.status, 401 | 404) => {
                let schema = json!({ "$ref": "#/components/schemas/basic-error" });
                if let Err(errors) = check(spec, "basic-error", &schema, &reply.body) {
                    s.problems.push(format!("{what}: the stand-in's {status} response is not GitHub's basic error: {}", errors.join("; ")));
                }
            }
            None => s.problems.push(format!("{what}: {} {} does not document status {status}", op.method, op.template)),
        },
        None if reply.unexpected.is_none() && reply.status != 401 => s.problems.push(format!("{what}: no operation in the description matches")),
        None => {}
    }
    s.log.push(format!("{what} -> {status}"));
    drop(s);

    let mut resp = (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), reply.body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert("x-github-media-type", HeaderValue::from_static("github.v3; format=json"));
    if let Some(loc) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, loc);
    }
    resp
}

/// A query string's value as the parameter's schema types it.
fn typed_param(schema: &Value, value: &str) -> Value {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.contains(&"integer") || types.contains(&"number") {
        if let Ok(n) = value.parse::<i64>() {
            return json!(n);
        }
        if let Ok(f) = value.parse::<f64>() {
            return json!(f);
        }
    }
    if types.contains(&"boolean") && (value == "true" || value == "false") {
        return json!(value == "true");
    }
    if types.contains(&"array") {
        return Value::Array(value.split(',').map(|v| json!(v)).collect());
    }
    json!(value)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn git(bare: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("--git-dir").arg(bare).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit `refs/heads/<branch>` of the bare repository points at.
fn branch_sha(bare: &Path, branch: &str) -> Option<String> {
    git(bare, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")]).filter(|s| !s.is_empty())
}

impl Shared {
    fn route(&mut self, method: &str, path: &str, query: &[(String, String)], body: &Value) -> Reply {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let ["repos", owner, name, rest @ ..] = segs.as_slice() else { return Reply::unexpected(format!("the stand-in serves no {method} {path}")) };
        let key = (owner.to_string(), name.to_string());
        if !self.repos.contains_key(&key) {
            return Reply::unexpected(format!("no repository {owner}/{name} was registered with with_git_remote"));
        }
        let number = |s: &str| s.parse::<u64>().ok().filter(|n| *n > 0);
        match (method, rest) {
            ("GET", []) => self.get_repo(&key),
            ("GET", ["pulls"]) => self.list_pulls(&key, query),
            ("POST", ["pulls"]) => self.create_pull(&key, body),
            ("GET", ["pulls", n]) if number(n).is_some() => self.with_pull(&key, number(n).unwrap_or(0), |s, k, i| Reply::ok(200, s.pull_json(k, i, true))),
            ("PATCH", ["pulls", n]) if number(n).is_some() => self.update_pull(&key, number(n).unwrap_or(0), body),
            ("GET", ["issues", n, "labels"]) if number(n).is_some() => self.with_pull(&key, number(n).unwrap_or(0), |s, k, i| Reply::ok(200, s.labels_json(k, i))),
            ("POST", ["issues", n, "labels"]) if number(n).is_some() => self.add_labels(&key, number(n).unwrap_or(0), body),
            ("GET", ["issues", n, "comments"]) if number(n).is_some() => self.with_pull(&key, number(n).unwrap_or(0), |s, k, i| {
                let r = &s.repos[k];
                Reply::ok(200, Value::Array(r.pulls[i].comments.iter().map(|c| s.comment_json(k, r.pulls[i].number, c)).collect()))
            }),
            ("POST", ["issues", n, "comments"]) if number(n).is_some() => self.add_comment(&key, number(n).unwrap_or(0), body),
            _ => Reply::unexpected(format!("the stand-in serves no {method} {path}")),
        }
    }

    fn with_pull(&mut self, key: &(String, String), number: u64, f: impl FnOnce(&mut Self, &(String, String), usize) -> Reply) -> Reply {
        match self.repos[key].pulls.iter().position(|p| p.number == number) {
            Some(i) => f(self, key, i),
            None => Reply::error(404, "Not Found"),
        }
    }

    fn get_repo(&self, key: &(String, String)) -> Reply {
        let mut repo = self.repo_json(key);
        if let Value::Object(m) = &mut repo {
            m.insert("network_count".into(), json!(0));
            m.insert("subscribers_count".into(), json!(1));
            m.insert("permissions".into(), json!({ "admin": false, "maintain": false, "push": true, "triage": true, "pull": true }));
        }
        Reply::ok(200, repo)
    }

    fn list_pulls(&self, key: &(String, String), query: &[(String, String)]) -> Reply {
        let q = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let state = q("state").unwrap_or("open");
        let head = q("head").map(|h| match h.split_once(':') {
            Some((user, branch)) => (Some(user), branch),
            None => (None, h),
        });
        let base = q("base");
        let sort = q("sort").unwrap_or("created");
        let desc = q("direction").map_or(matches!(sort, "created" | "updated"), |d| d == "desc");
        let per_page = q("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
        let page = q("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
        let repo = &self.repos[key];
        let mut picked: Vec<usize> = (0..repo.pulls.len())
            .filter(|&i| {
                let p = &repo.pulls[i];
                (state == "all" || p.state == state) && head.is_none_or(|(user, branch)| user.is_none_or(|u| u.eq_ignore_ascii_case(&key.0)) && p.head == branch) && base.is_none_or(|b| p.base == b)
            })
            .collect();
        match sort {
            "updated" => picked.sort_by(|a, b| repo.pulls[*a].updated.cmp(&repo.pulls[*b].updated).then(a.cmp(b))),
            "popularity" => picked.sort_by_key(|i| (repo.pulls[*i].comments.len(), *i)),
            _ => picked.sort_by_key(|i| repo.pulls[*i].number),
        }
        if desc {
            picked.reverse();
        }
        let items: Vec<Value> = picked.into_iter().skip((page - 1) * per_page).take(per_page).map(|i| self.pull_json(key, i, false)).collect();
        Reply::ok(200, Value::Array(items))
    }

    fn create_pull(&mut self, key: &(String, String), body: &Value) -> Reply {
        let field = |name: &str| body[name].as_str().map(str::to_string);
        let missing = |field: &str| Reply::invalid(json!([{ "resource": "PullRequest", "field": field, "code": "missing_field" }]));
        let Some(title) = field("title") else { return missing("title") };
        let Some(head) = field("head") else { return missing("head") };
        let Some(base) = field("base") else { return missing("base") };
        let branch = match head.split_once(':') {
            Some((user, branch)) if user.eq_ignore_ascii_case(&key.0) => branch.to_string(),
            Some(_) => return Reply::invalid(json!([{ "resource": "PullRequest", "field": "head", "code": "invalid" }])),
            None => head.clone(),
        };
        let bare = self.repos[key].bare.clone();
        let Some(head_sha) = branch_sha(&bare, &branch) else { return Reply::invalid(json!([{ "resource": "PullRequest", "field": "head", "code": "invalid" }])) };
        let Some(base_sha) = branch_sha(&bare, &base) else { return Reply::invalid(json!([{ "resource": "PullRequest", "field": "base", "code": "invalid" }])) };
        if self.repos[key].pulls.iter().any(|p| p.state == "open" && p.head == branch && p.base == base) {
            return Reply::invalid(json!([{ "resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{branch}.", key.0) }]));
        }
        let ahead = git(&bare, &["rev-list", "--count", &format!("{base_sha}..{head_sha}")]).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        if ahead == 0 {
            return Reply::invalid(json!([{ "resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {branch}") }]));
        }
        self.next_id += 1;
        let id = self.next_id;
        let t = now();
        let repo = self.repos.get_mut(key).expect("the repository is registered");
        let number = repo.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        repo.pulls.push(Pull {
            number,
            id,
            head: branch,
            base,
            state: "open".into(),
            title,
            body: field("body"),
            labels: Vec::new(),
            draft: body["draft"].as_bool().unwrap_or(false),
            maintainer_can_modify: body["maintainer_can_modify"].as_bool().unwrap_or(true),
            created: t.clone(),
            updated: t,
            closed: None,
            head_sha,
            base_sha,
            comments: Vec::new(),
        });
        let i = repo.pulls.len() - 1;
        let mut reply = Reply::ok(201, self.pull_json(key, i, true));
        reply.location = Some(format!("{}/repos/{}/{}/pulls/{number}", self.base, key.0, key.1));
        reply
    }

    fn update_pull(&mut self, key: &(String, String), number: u64, body: &Value) -> Reply {
        let Some(i) = self.repos[key].pulls.iter().position(|p| p.number == number) else { return Reply::error(404, "Not Found") };
        let bare = self.repos[key].bare.clone();
        if let Some(base) = body["base"].as_str() {
            match branch_sha(&bare, base) {
                Some(sha) => {
                    let p = &mut self.repos.get_mut(key).expect("registered").pulls[i];
                    p.base = base.to_string();
                    p.base_sha = sha;
                }
                None => return Reply::invalid(json!([{ "resource": "PullRequest", "field": "base", "code": "invalid" }])),
            }
        }
        if body["state"] == "open" {
            let (head, base) = (self.repos[key].pulls[i].head.clone(), self.repos[key].pulls[i].base.clone());
            if self.repos[key].pulls.iter().any(|p| p.number != number && p.state == "open" && p.head == head && p.base == base) {
                return Reply::invalid(json!([{ "resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{head}.", key.0) }]));
            }
        }
        let t = now();
        let p = &mut self.repos.get_mut(key).expect("registered").pulls[i];
        if let Some(title) = body["title"].as_str() {
            p.title = title.to_string();
        }
        if let Some(text) = body["body"].as_str() {
            p.body = Some(text.to_string());
        }
        if let Some(m) = body["maintainer_can_modify"].as_bool() {
            p.maintainer_can_modify = m;
        }
        match body["state"].as_str() {
            Some("closed") if p.state == "open" => {
                p.state = "closed".into();
                p.closed = Some(t.clone());
            }
            Some("open") if p.state == "closed" => {
                p.state = "open".into();
                p.closed = None;
            }
            _ => {}
        }
        p.updated = t;
        Reply::ok(200, self.pull_json(key, i, true))
    }

    fn add_labels(&mut self, key: &(String, String), number: u64, body: &Value) -> Reply {
        let Some(i) = self.repos[key].pulls.iter().position(|p| p.number == number) else { return Reply::error(404, "Not Found") };
        let names: Vec<String> = body["labels"].as_array().into_iter().flatten().filter_map(|l| l.as_str().or_else(|| l["name"].as_str())).map(str::to_string).collect();
        if names.is_empty() {
            return Reply::invalid(json!([{ "resource": "Label", "field": "labels", "code": "missing_field" }]));
        }
        for name in names {
            if !self.repos[key].labels.contains_key(&name) {
                self.next_id += 1;
                let id = self.next_id;
                self.repos.get_mut(key).expect("registered").labels.insert(name.clone(), id);
            }
            let p = &mut self.repos.get_mut(key).expect("registered").pulls[i];
            if !p.labels.contains(&name) {
                p.labels.push(name);
            }
        }
        self.repos.get_mut(key).expect("registered").pulls[i].updated = now();
        Reply::ok(200, self.labels_json(key, i))
    }

    fn add_comment(&mut self, key: &(String, String), number: u64, body: &Value) -> Reply {
        let Some(i) = self.repos[key].pulls.iter().position(|p| p.number == number) else { return Reply::error(404, "Not Found") };
        let Some(text) = body["body"].as_str() else { return Reply::invalid(json!([{ "resource": "IssueComment", "field": "body", "code": "missing_field" }])) };
        self.next_id += 1;
        let comment = Comment { id: self.next_id, body: text.to_string(), created: now() };
        let json = self.comment_json(key, number, &comment);
        let p = &mut self.repos.get_mut(key).expect("registered").pulls[i];
        p.comments.push(comment);
        p.updated = now();
        let mut reply = Reply::ok(201, json);
        reply.location = reply.body["url"].as_str().map(str::to_string);
        reply
    }

    // --- JSON as GitHub writes it ------------------------------------------

    fn user_json(&self, login: &str, id: u64, kind: &str) -> Value {
        let b = &self.base;
        let u = format!("{b}/users/{login}");
        json!({
            "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"), "avatar_url": format!("{b}/avatars/u/{id}?v=4"), "gravatar_id": "",
            "url": u, "html_url": format!("{b}/{login}"), "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
            "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"), "subscriptions_url": format!("{u}/subscriptions"),
            "organizations_url": format!("{u}/orgs"), "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
            "received_events_url": format!("{u}/received_events"), "type": kind, "site_admin": false, "user_view_type": "public"
        })
    }

    fn repo_json(&self, key: &(String, String)) -> Value {
        let (owner, name) = (key.0.as_str(), key.1.as_str());
        let r = &self.repos[key];
        let b = &self.base;
        let a = format!("{b}/repos/{owner}/{name}");
        let host = b.trim_start_matches("http://");
        let default_branch = git(&r.bare, &["symbolic-ref", "--short", "HEAD"]).filter(|s| !s.is_empty()).unwrap_or_else(|| "main".into());
        let created = "2024-01-15T09:00:00Z";
        let mut m = Map::new();
        for (k, v) in [
            ("archive_url", format!("{a}/{{archive_format}}{{/ref}}")),
            ("assignees_url", format!("{a}/assignees{{/user}}")),
            ("blobs_url", format!("{a}/git/blobs{{/sha}}")),
            ("branches_url", format!("{a}/branches{{/branch}}")),
            ("collaborators_url", format!("{a}/collaborators{{/collaborator}}")),
            ("comments_url", format!("{a}/comments{{/number}}")),
            ("commits_url", format!("{a}/commits{{/sha}}")),
            ("compare_url", format!("{a}/compare/{{base}}...{{head}}")),
            ("contents_url", format!("{a}/contents/{{+path}}")),
            ("contributors_url", format!("{a}/contributors")),
            ("deployments_url", format!("{a}/deployments")),
            ("downloads_url", format!("{a}/downloads")),
            ("events_url", format!("{a}/events")),
            ("forks_url", format!("{a}/forks")),
            ("git_commits_url", format!("{a}/git/commits{{/sha}}")),
            ("git_refs_url", format!("{a}/git/refs{{/sha}}")),
            ("git_tags_url", format!("{a}/git/tags{{/sha}}")),
            ("hooks_url", format!("{a}/hooks")),
            ("issue_comment_url", format!("{a}/issues/comments{{/number}}")),
            ("issue_events_url", format!("{a}/issues/events{{/number}}")),
            ("issues_url", format!("{a}/issues{{/number}}")),
            ("keys_url", format!("{a}/keys{{/key_id}}")),
            ("labels_url", format!("{a}/labels{{/name}}")),
            ("languages_url", format!("{a}/languages")),
            ("merges_url", format!("{a}/merges")),
            ("milestones_url", format!("{a}/milestones{{/number}}")),
            ("notifications_url", format!("{a}/notifications{{?since,all,participating}}")),
            ("pulls_url", format!("{a}/pulls{{/number}}")),
            ("releases_url", format!("{a}/releases{{/id}}")),
            ("stargazers_url", format!("{a}/stargazers")),
            ("statuses_url", format!("{a}/statuses/{{sha}}")),
            ("subscribers_url", format!("{a}/subscribers")),
            ("subscription_url", format!("{a}/subscription")),
            ("tags_url", format!("{a}/tags")),
            ("teams_url", format!("{a}/teams")),
            ("trees_url", format!("{a}/git/trees{{/sha}}")),
            ("url", a.clone()),
            ("html_url", format!("{b}/{owner}/{name}")),
            ("clone_url", format!("{b}/{owner}/{name}.git")),
            ("git_url", format!("git://{host}/{owner}/{name}.git")),
            ("ssh_url", format!("git@{host}:{owner}/{name}.git")),
            ("svn_url", format!("{b}/{owner}/{name}")),
            ("name", name.to_string()),
            ("full_name", format!("{owner}/{name}")),
            ("node_id", format!("R_kgDO{:08}", r.id)),
            ("description", format!("{owner}'s {name} (GitHub stand-in)")),
            ("default_branch", default_branch),
            ("visibility", "private".into()),
            ("created_at", created.into()),
            ("updated_at", created.into()),
            ("pushed_at", now()),
        ] {
            m.insert(k.into(), json!(v));
        }
        for (k, v) in [
            ("fork", false),
            ("private", true),
            ("has_issues", true),
            ("has_projects", false),
            ("has_wiki", false),
            ("has_pages", false),
            ("has_downloads", true),
            ("has_discussions", false),
            ("archived", false),
            ("disabled", false),
            ("is_template", false),
            ("allow_forking", false),
            ("web_commit_signoff_required", false),
        ] {
            m.insert(k.into(), json!(v));
        }
        let open = r.pulls.iter().filter(|p| p.state == "open").count();
        for (k, v) in
            [("id", r.id as usize), ("forks", 0), ("forks_count", 0), ("stargazers_count", 0), ("watchers", 0), ("watchers_count", 0), ("size", 1), ("open_issues", open), ("open_issues_count", open)]
        {
            m.insert(k.into(), json!(v));
        }
        for k in ["homepage", "language", "mirror_url", "license"] {
            m.insert(k.into(), Value::Null);
        }
        m.insert("topics".into(), json!([]));
        m.insert("owner".into(), self.user_json(owner, 7_000 + r.id, "Organization"));
        Value::Object(m)
    }

    fn label_json(&self, key: &(String, String), name: &str) -> Value {
        let id = self.repos[key].labels.get(name).copied().unwrap_or(0);
        json!({
            "id": id, "node_id": format!("LA_kwDO{id:08}"), "url": format!("{}/repos/{}/{}/labels/{}", self.base, key.0, key.1, encode(name)),
            // A string, not null: the list's `pull-request-simple` has no null description.
            "name": name, "description": "", "color": "ededed", "default": false
        })
    }

    fn labels_json(&self, key: &(String, String), i: usize) -> Value {
        Value::Array(self.repos[key].pulls[i].labels.iter().map(|l| self.label_json(key, l)).collect())
    }

    fn comment_json(&self, key: &(String, String), number: u64, c: &Comment) -> Value {
        let a = format!("{}/repos/{}/{}", self.base, key.0, key.1);
        json!({
            "id": c.id, "node_id": format!("IC_kwDO{:08}", c.id), "url": format!("{a}/issues/comments/{}", c.id),
            "html_url": format!("{}/{}/{}/pull/{number}#issuecomment-{}", self.base, key.0, key.1, c.id),
            "body": c.body, "user": self.user_json(BOT, BOT_ID, "User"), "created_at": c.created, "updated_at": c.created,
            "issue_url": format!("{a}/issues/{number}"), "author_association": "CONTRIBUTOR"
        })
    }

    /// A pull request: the full object (`pull-request`) or the list's (`pull-request-simple`).
    fn pull_json(&self, key: &(String, String), i: usize, full: bool) -> Value {
        let r = &self.repos[key];
        let p = &r.pulls[i];
        let (owner, name) = (key.0.as_str(), key.1.as_str());
        let a = format!("{}/repos/{owner}/{name}", self.base);
        let html = format!("{}/{owner}/{name}/pull/{}", self.base, p.number);
        // The branches as the remote has them now (a pushed branch moves the pull request's head).
        let head_sha = branch_sha(&r.bare, &p.head).unwrap_or_else(|| p.head_sha.clone());
        let base_sha = branch_sha(&r.bare, &p.base).unwrap_or_else(|| p.base_sha.clone());
        let repo = self.repo_json(key);
        let bot = self.user_json(BOT, BOT_ID, "User");
        let owner_user = self.user_json(owner, 7_000 + r.id, "Organization");
        let link = |href: String| json!({ "href": href });
        let links: Map<String, Value> = [
            ("self", format!("{a}/pulls/{}", p.number)),
            ("html", html.clone()),
            ("issue", format!("{a}/issues/{}", p.number)),
            ("comments", format!("{a}/issues/{}/comments", p.number)),
            ("review_comments", format!("{a}/pulls/{}/comments", p.number)),
            ("review_comment", format!("{a}/pulls/comments{{/number}}")),
            ("commits", format!("{a}/pulls/{}/commits", p.number)),
            ("statuses", format!("{a}/statuses/{head_sha}")),
        ]
        .into_iter()
        .map(|(k, href)| (k.to_string(), link(href)))
        .collect();
        let head = json!({ "label": format!("{owner}:{}", p.head), "ref": p.head, "sha": head_sha, "user": owner_user, "repo": repo });
        let base = json!({ "label": format!("{owner}:{}", p.base), "ref": p.base, "sha": base_sha, "user": owner_user, "repo": repo });
        let mut v = Value::Object(
            [
                ("url", json!(format!("{a}/pulls/{}", p.number))),
                ("id", json!(p.id)),
                ("node_id", json!(format!("PR_kwDO{:08}", p.id))),
                ("html_url", json!(html)),
                ("diff_url", json!(format!("{html}.diff"))),
                ("patch_url", json!(format!("{html}.patch"))),
                ("issue_url", json!(format!("{a}/issues/{}", p.number))),
                ("commits_url", json!(format!("{a}/pulls/{}/commits", p.number))),
                ("review_comments_url", json!(format!("{a}/pulls/{}/comments", p.number))),
                ("review_comment_url", json!(format!("{a}/pulls/comments{{/number}}"))),
                ("comments_url", json!(format!("{a}/issues/{}/comments", p.number))),
                ("statuses_url", json!(format!("{a}/statuses/{head_sha}"))),
                ("number", json!(p.number)),
                ("state", json!(p.state)),
                ("locked", json!(false)),
                ("title", json!(p.title)),
                ("user", bot),
                ("body", json!(p.body)),
                ("labels", self.labels_json(key, i)),
                ("milestone", Value::Null),
                ("active_lock_reason", Value::Null),
                ("created_at", json!(p.created)),
                ("updated_at", json!(p.updated)),
                ("closed_at", json!(p.closed)),
                ("merged_at", Value::Null),
                ("merge_commit_sha", Value::Null),
                ("assignee", Value::Null),
                ("assignees", json!([])),
                ("requested_reviewers", json!([])),
                ("requested_teams", json!([])),
                ("head", head),
                ("base", base),
                ("_links", Value::Object(links)),
                ("author_association", json!("CONTRIBUTOR")),
                ("auto_merge", Value::Null),
                ("draft", json!(p.draft)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        );
        if full && let Value::Object(m) = &mut v {
            let range = format!("{base_sha}...{head_sha}");
            let (mut additions, mut deletions, mut files) = (0u64, 0u64, 0u64);
            for line in git(&r.bare, &["diff", "--numstat", &range]).unwrap_or_default().lines() {
                let mut cols = line.split('\t');
                additions += cols.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                deletions += cols.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                files += 1;
            }
            let commits = git(&r.bare, &["rev-list", "--count", &format!("{base_sha}..{head_sha}")]).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            for (k, val) in [
                ("merged", json!(false)),
                ("mergeable", json!(true)),
                ("rebaseable", json!(true)),
                ("mergeable_state", json!("clean")),
                ("merged_by", Value::Null),
                ("comments", json!(p.comments.len())),
                ("review_comments", json!(0)),
                ("maintainer_can_modify", json!(p.maintainer_can_modify)),
                ("commits", json!(commits)),
                ("additions", json!(additions)),
                ("deletions", json!(deletions)),
                ("changed_files", json!(files)),
            ] {
                m.insert(k.into(), val);
            }
        }
        v
    }
}

/// Percent-encodes a URL path segment.
fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
