//! Where an error is: a field path (`port[1].forward`) looked up in the
//! parsed document gives the line and column, so every error names the
//! file, line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration error at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field (`port[1].forward`); empty for the file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        // One line, whatever the underlying message held.
        f.write_str(&self.message.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Errors found in one file (at least one).
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Maps field paths and byte offsets of one file to line and column.
pub(crate) struct Locator<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn file(&self) -> &'a Path {
        self.file
    }

    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Locator { file, text, doc: toml_edit::ImDocument::parse(text).ok() }
    }

    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// Byte offset of the deepest existing item along `path`.
    pub(crate) fn offset_of(&self, path: &[Seg]) -> usize {
        let Some(doc) = &self.doc else { return 0 };
        let mut item = doc.as_item();
        let mut best = 0;
        for seg in path {
            let next = match seg {
                Seg::Key(k) => item.get(k.as_str()),
                Seg::Index(i) => item.get(*i),
            };
            match next {
                Some(n) => {
                    item = n;
                    if let Some(span) = span_of(item) {
                        best = span.start;
                    }
                }
                None => break,
            }
        }
        best
    }

    pub(crate) fn error(&self, path: &[Seg], message: impl Into<String>) -> ConfigError {
        self.error_at(self.offset_of(path), path, message)
    }

    pub(crate) fn error_at(&self, offset: usize, path: &[Seg], message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_col(offset);
        ConfigError { file: self.file.to_owned(), line, column, field: path_string(path), message: message.into() }
    }
}

pub(crate) fn span_of(item: &toml_edit::Item) -> Option<std::ops::Range<usize>> {
    match item {
        toml_edit::Item::Value(v) => v.span(),
        toml_edit::Item::Table(t) => t.span(),
        toml_edit::Item::ArrayOfTables(a) => a.span(),
        toml_edit::Item::None => None,
    }
}

/// One step of a field path.
#[derive(Clone, Debug)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

pub(crate) fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

impl From<&str> for Seg {
    fn from(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

pub(crate) fn serde_path(p: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    p.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}
