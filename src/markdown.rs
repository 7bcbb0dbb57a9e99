//! Untrusted text placed in markdown (notes, knowledge pages, PR bodies, messages) so it
//! cannot forge structure: one line for list items, code spans and fences longer than any
//! run of backticks inside. Redaction is `crate::redact`'s; this only quotes.

/// Single-line text safe to place in a markdown list item: control characters
/// and newlines become spaces, so untrusted text can never start a section.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// Inline code span for untrusted text, with a fence longer than any backtick run inside.
pub fn code(s: &str) -> String {
    let s = one_line(s);
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if s.starts_with('`') || s.ends_with('`') { format!("{fence} {s} {fence}") } else { format!("{fence}{s}{fence}") }
}

/// A fenced block for untrusted multi-line text; its fence is longer than any
/// run of backticks or tildes inside, so the text cannot close it early.
pub fn fenced(info: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let body = text.trim_end_matches('\n');
    format!("{fence}{info}\n{body}\n{fence}\n")
}
