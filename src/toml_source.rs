//! TOML sources and located errors: parses a file once into an index from dotted key
//! path to line, so that syntax, unknown-key, type and semantic errors in config and
//! policy files all name the file, the line and the key.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

/// An error in a source file (or in the environment that overrides it): where, which
/// key, what is wrong, and optionally how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// File the error is in, or `environment` for an env override.
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`rule[2].path`, `session.key_file`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// A hint at the fix.
    pub help: Option<String>,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {}

/// A list of located errors, printed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceErrors(pub Vec<SourceError>);

impl fmt::Display for SourceErrors {
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

impl std::error::Error for SourceErrors {}

/// A TOML file's text with its key index.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
    /// Dotted key path → byte span of the key (or of the array element).
    keys: HashMap<String, Range<usize>>,
}

impl Source {
    /// Reads and indexes a file; a syntax error is reported with its line.
    pub fn read(path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path).map_err(|e| SourceError {
            origin: path.display().to_string(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
            help: None,
        })?;
        Self::from_text(path, text)
    }

    /// Indexes text that came from `path`.
    pub fn from_text(path: &Path, text: String) -> Result<Self, SourceError> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut src = Self {
            path: path.to_path_buf(),
            text,
            line_starts,
            keys: HashMap::new(),
        };
        let keys = match DeTable::parse(&src.text) {
            Ok(table) => {
                let mut keys = HashMap::new();
                index_table(table.get_ref(), "", &mut keys);
                keys
            }
            Err(e) => return Err(src.error_from_toml(&e)),
        };
        src.keys = keys;
        Ok(src)
    }

    /// The file this source came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the whole file, turning serde errors into located ones.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SourceError> {
        toml::from_str(&self.text).map_err(|e| self.error_from_toml(&e))
    }

    /// 1-based line of a byte offset.
    pub fn line_of_offset(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// Line where a dotted key is defined, if it is in this file.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.keys.get(key).map(|r| self.line_of_offset(r.start))
    }

    /// Whether the file defines this dotted key.
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// A located error for a key of this file.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> SourceError {
        SourceError {
            origin: self.path.display().to_string(),
            line: self.line_of(key),
            key: Some(key.to_string()),
            message: message.into(),
            help: None,
        }
    }

    fn error_from_toml(&self, e: &toml::de::Error) -> SourceError {
        let span = e.span();
        let line = span.as_ref().map(|s| self.line_of_offset(s.start));
        // Name the innermost key whose span holds the error, so "invalid type" errors say which key.
        let key = span.and_then(|s| {
            self.keys
                .iter()
                .filter(|(_, r)| r.start <= s.start)
                .filter(|(_, r)| self.line_of_offset(r.start) == self.line_of_offset(s.start))
                .max_by_key(|(k, r)| (r.start, k.len()))
                .map(|(k, _)| k.clone())
        });
        SourceError {
            origin: self.path.display().to_string(),
            line,
            key,
            message: e.message().trim().to_string(),
            help: None,
        }
    }
}

fn index_table(table: &DeTable<'_>, prefix: &str, out: &mut HashMap<String, Range<usize>>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.insert(path.clone(), k.span());
        index_value(v.get_ref(), v.span(), &path, out);
    }
}

fn index_value(
    value: &DeValue<'_>,
    span: Range<usize>,
    path: &str,
    out: &mut HashMap<String, Range<usize>>,
) {
    match value {
        DeValue::Table(t) => index_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let item_span = if item.span().is_empty() {
                    span.clone()
                } else {
                    item.span()
                };
                out.insert(item_path.clone(), item_span.clone());
                index_value(item.get_ref(), item_span, &item_path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        a: u16,
        #[serde(default)]
        rule: Vec<Rule>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        name: String,
    }

    fn src(text: &str) -> Result<Source, SourceError> {
        Source::from_text(Path::new("x.toml"), text.to_string())
    }

    #[test]
    fn keys_map_to_lines() {
        let s = src("a = 1\n\n[[rule]]\nname = \"one\"\n\n[[rule]]\nname = \"two\"\n").unwrap();
        assert_eq!(s.line_of("a"), Some(1));
        assert_eq!(s.line_of("rule[0].name"), Some(4));
        assert_eq!(s.line_of("rule[1].name"), Some(7));
        assert_eq!(s.line_of("nope"), None);
    }

    #[test]
    fn unknown_keys_and_bad_types_name_line_and_key() {
        let s = src("a = 1\n[[rule]]\nname = \"x\"\nnmae = \"y\"\n").unwrap();
        let e = s.deserialize::<Doc>().unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("nmae"), "{e}");

        let s = src("a = \"one\"\n").unwrap();
        let e = s.deserialize::<Doc>().unwrap_err();
        assert_eq!(e.line, Some(1));
        assert_eq!(e.key.as_deref(), Some("a"), "{e}");
        assert!(e.to_string().starts_with("x.toml:1: key `a`:"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = src("a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
