//! Finds the one fenced block with a given info string in a markdown file
//! (`policy` in AGENTS.md, `heartbeat` in HEARTBEAT.md) and the prose around it,
//! keeping the line the block starts on so YAML errors point into the file.

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// A fenced block found in a markdown document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedBlock {
    /// The block's content, without the fences.
    pub content: String,
    /// 1-based line of the file on which the content's first line stands.
    pub first_line: usize,
    /// 1-based line of the opening fence.
    pub fence_line: usize,
}

/// Everything a workspace file holds: its prose and its fenced blocks by info string.
#[derive(Debug, Clone, Default)]
pub struct MarkdownDoc {
    pub prose: String,
    pub blocks: Vec<(String, FencedBlock)>,
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Splits a markdown document into prose and fenced blocks.
pub fn parse(text: &str) -> MarkdownDoc {
    let mut doc = MarkdownDoc::default();
    let mut current: Option<(String, usize, String)> = None;
    let mut prose_cut: Vec<std::ops::Range<usize>> = Vec::new();
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let info = info.split_whitespace().next().unwrap_or("").to_string();
                current = Some((info, range.start, String::new()));
            }
            Event::Text(t) => {
                if let Some((_, _, content)) = current.as_mut() {
                    content.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((info, start, content)) = current.take() {
                    let fence_line = line_of(text, start);
                    prose_cut.push(range.clone());
                    if !info.is_empty() {
                        doc.blocks.push((info, FencedBlock { content, first_line: fence_line + 1, fence_line }));
                    }
                }
            }
            _ => {}
        }
    }
    let mut prose = String::new();
    let mut at = 0;
    for cut in prose_cut {
        if cut.start >= at {
            prose.push_str(&text[at..cut.start]);
            at = cut.end;
        }
    }
    prose.push_str(&text[at.min(text.len())..]);
    doc.prose = prose.trim().to_string();
    doc
}

impl MarkdownDoc {
    /// All blocks with this info string.
    pub fn blocks_named<'a>(&'a self, info: &'a str) -> impl Iterator<Item = &'a FencedBlock> + 'a {
        self.blocks.iter().filter(move |(i, _)| i == info).map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_block_and_its_line() {
        let text = "# Title\n\nSome prose.\n\n```policy\nmode: dry-run\nrules: []\n```\n\nMore prose.\n";
        let doc = parse(text);
        let blocks: Vec<_> = doc.blocks_named("policy").collect();
        assert_eq!(blocks, vec![&FencedBlock { content: "mode: dry-run\nrules: []\n".into(), first_line: 6, fence_line: 5 }]);
        assert_eq!(doc.prose, "# Title\n\nSome prose.\n\n\n\nMore prose.");
    }

    #[test]
    fn a_block_inside_a_list_or_tilde_fence_is_found() {
        let text = "intro\n\n~~~heartbeat\nchecks: []\n~~~\n";
        let doc = parse(text);
        assert_eq!(doc.blocks_named("heartbeat").count(), 1);
        assert_eq!(doc.blocks_named("heartbeat").next().map(|b| b.first_line), Some(4));
    }
}
