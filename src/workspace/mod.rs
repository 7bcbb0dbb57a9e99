//! The workspace: AGENTS.md (how nightshift may act), HEARTBEAT.md (what it
//! watches), prompts/ and tools/. Loading validates everything and collects
//! every problem; nothing runs on a workspace that does not validate.

pub mod heartbeat;
pub mod markdown;
pub mod policy;
pub mod problems;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use problems::Problem;
use problems::Problems;

use crate::policy::Policy;
use heartbeat::HeartbeatSpec;

/// Prompt templates every workspace has (its own, or these built-in ones).
pub const PROMPTS: [(&str, &str); 3] =
    [("system", include_str!("../../prompts/system.md")), ("investigate", include_str!("../../prompts/investigate.md")), ("incident", include_str!("../../prompts/incident.md"))];

/// The tools the model may be offered, one `tools/<name>.md` each (kept
/// one-to-one with the registry in llm/tools.rs by a test).
pub const TOOLS: [(&str, &str); 7] = [
    ("health_check", include_str!("../../tools/health_check.md")),
    ("diagnose", include_str!("../../tools/diagnose.md")),
    ("disk_usage", include_str!("../../tools/disk_usage.md")),
    ("cert_info", include_str!("../../tools/cert_info.md")),
    ("search_memory", include_str!("../../tools/search_memory.md")),
    ("repair", include_str!("../../tools/repair.md")),
    ("send_webhook", include_str!("../../tools/send_webhook.md")),
];

/// A validated workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub policy: Policy,
    pub heartbeat: HeartbeatSpec,
    /// AGENTS.md without its policy block: the operating manual for the model.
    pub manual: String,
    pub prompts: BTreeMap<String, String>,
    pub tools: BTreeMap<String, String>,
}

fn display_path(root: &Path, file: &str) -> PathBuf {
    if root == Path::new(".") || root.as_os_str().is_empty() { PathBuf::from(file) } else { root.join(file) }
}

/// Reads one markdown file and returns its prose and the one block named `info`.
fn read_block(root: &Path, file: &str, info: &str, problems: &mut Problems) -> Option<(String, Option<yaml::Node>)> {
    let path = root.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(None, format!("{file} not found in {}", root.display()), format!("create {file} with a fenced ```{info} block (see README.md, \"The workspace\")"));
            return None;
        }
        Err(e) => {
            problems.push(None, format!("cannot read {file}: {e}"), "make the file readable");
            return None;
        }
    };
    let doc = markdown::parse(&text);
    let blocks: Vec<_> = doc.blocks_named(info).collect();
    match blocks.as_slice() {
        [] => {
            problems.push(None, format!("{file} has no fenced block with info string `{info}`"), format!("add a block that starts with ```{info} and holds the YAML settings"));
            Some((doc.prose.clone(), None))
        }
        [block] => Some((doc.prose.clone(), yaml::parse(&block.content, block.first_line, problems))),
        [_, second, ..] => {
            problems.push(Some(second.fence_line), format!("{file} has more than one `{info}` block"), "merge them into one block");
            None
        }
    }
}

fn read_dir_md(root: &Path, dir: &str, known: &[(&str, &str)], all_required: bool, problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut push = |file: &str, message: String, fix: String| {
        problems.push(Problem { file: display_path(root, file), line: None, message, fix });
    };
    let mut out: BTreeMap<String, String> = known.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let path = root.join(dir);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return out;
    };
    let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = file_name.strip_suffix(".md") else { continue };
        let display = format!("{dir}/{file_name}");
        if !names.contains(&stem) {
            push(&display, format!("names no known {}", if dir == "tools" { "tool" } else { "prompt" }), format!("rename or remove it; known: {}", names.join(", ")));
            continue;
        }
        match std::fs::read_to_string(entry.path()) {
            Ok(t) if !t.trim().is_empty() => {
                out.insert(stem.to_string(), t);
                found.push(stem.to_string());
            }
            Ok(_) => push(&display, "is empty".into(), "write the text, or delete the file to use the built-in one".into()),
            Err(e) => push(&display, format!("cannot be read: {e}"), "make it readable".into()),
        }
    }
    if all_required {
        for name in names.iter().filter(|n| !found.iter().any(|f| f == *n)) {
            push(&format!("{dir}/{name}.md"), "is missing".into(), format!("every tool has its description in {dir}/: add {name}.md"));
        }
    }
    out
}

/// Loads and validates the workspace at `root`.
pub fn load(root: &Path) -> Result<Workspace, Vec<Problem>> {
    let mut all = Vec::new();
    let mut agents_problems = Problems::for_file(display_path(root, "AGENTS.md"));
    let agents = read_block(root, "AGENTS.md", "policy", &mut agents_problems);
    let mut policy = Policy::default();
    let mut manual = String::new();
    if let Some((prose, node)) = agents {
        manual = prose;
        if let Some(node) = node {
            policy = policy::from_node(&node, &mut agents_problems);
        }
    }
    let mut hb_problems = Problems::for_file(display_path(root, "HEARTBEAT.md"));
    let mut spec = HeartbeatSpec::default();
    if let Some((_, Some(node))) = read_block(root, "HEARTBEAT.md", "heartbeat", &mut hb_problems) {
        spec = heartbeat::from_node(&node, &mut hb_problems);
    }
    for check in &spec.checks {
        if let Some(cmd) = &check.repair
            && !policy.commands.contains_key(cmd)
        {
            hb_problems.push(
                Some(check.line),
                format!("check `{}`: repair command `{cmd}` is not declared in AGENTS.md `commands:`", check.name),
                "declare it under `commands:` in AGENTS.md's policy block, or fix the name",
            );
        }
    }
    // A pidfile service starts through a declared command, whose line the check compares the pid with.
    for check in &mut spec.checks {
        if let crate::checks::ProbeSpec::Service { start: Some(start), .. } = &mut check.probe {
            match policy.commands.get(&start.command) {
                Some(line) => start.command_line = line.clone(),
                None => hb_problems.push(
                    Some(start.line),
                    format!("check `{}`: start command `{}` is not declared in AGENTS.md `commands:`", check.name, start.command),
                    "declare the command that starts the service under `commands:` in AGENTS.md's policy block (e.g. `start-app: \"/srv/app/bin/app --daemon\"`), or fix the name",
                ),
            }
        }
    }
    all.extend(agents_problems.list);
    all.extend(hb_problems.list);
    let prompts = read_dir_md(root, "prompts", &PROMPTS, false, &mut all);
    let tools = read_dir_md(root, "tools", &TOOLS, root.join("tools").is_dir(), &mut all);
    if !all.is_empty() {
        return Err(all);
    }
    Ok(Workspace { root: root.to_path_buf(), policy, heartbeat: spec, manual, prompts, tools })
}
