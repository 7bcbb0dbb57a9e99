//! Validation problems: each names the file, the line and the fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        write!(f, "\n    fix: {}", self.fix)
    }
}

/// Problems collected for one file.
#[derive(Debug, Default)]
pub struct Problems {
    file: PathBuf,
    pub list: Vec<Problem>,
}

impl Problems {
    pub fn for_file(file: impl AsRef<Path>) -> Self {
        Self { file: file.as_ref().to_path_buf(), list: Vec::new() }
    }

    pub fn push(&mut self, line: Option<usize>, message: impl Into<String>, fix: impl Into<String>) {
        self.list.push(Problem { file: self.file.clone(), line, message: message.into(), fix: fix.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
