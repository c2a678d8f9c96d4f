//! Diagnostics that point into a hand-edited file: `file:line:column: reason` (PURE, shared).
//!
//! Operators edit TOML by hand (the service config, queue files, the prompt manifest); every
//! error Hammond reports about such a file names the exact place. It lives below `config/`,
//! `media/` and `workflow/` so each can report into a file without importing another.
//! `toml` errors carry a byte span, which we turn into a 1-based line and column (in characters).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, counted in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for Diagnostic {}

impl Diagnostic {
    /// A diagnostic at byte offset `span.start` of `src`.
    pub fn at_span(file: &Path, src: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_column(src, span.start);
        Self {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A diagnostic for a whole file (I/O errors, or a value with no span): line 1, column 1.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message: message.into(),
        }
    }

    /// Turn a `toml` error (syntax, unknown key, bad type) into a located diagnostic. The
    /// message keeps toml's reason but drops its own multi-line rendering of the source.
    pub fn from_toml(file: &Path, src: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().to_owned();
        match err.span() {
            Some(span) => Self::at_span(file, src, span, message),
            None => Self::whole_file(file, message),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`. Offsets past the end or
/// inside a multi-byte character are clamped to the nearest boundary before them.
pub fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = \"é\"\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        assert_eq!(line_column(src, 11), (2, 6));
        assert_eq!(line_column(src, 999), (3, 1));
    }

    #[test]
    fn toml_errors_point_at_the_key() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Cfg {
            a: u32,
        }
        let src = "a = 1\nb = 2\n";
        let err = toml::from_str::<Cfg>(src).unwrap_err();
        let d = Diagnostic::from_toml(Path::new("x.toml"), src, &err);
        assert_eq!((d.line, d.column), (2, 1), "{d}");
        assert!(
            d.to_string().starts_with("x.toml:2:1: unknown field `b`"),
            "{d}"
        );
    }
}
