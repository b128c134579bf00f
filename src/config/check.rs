//! The error collector every section's validation shares: it locates each error (file and
//! line, or the environment variable that set the key) and parses the value kinds that
//! recur across sections (durations, addresses, paths), so all errors of a file are
//! reported at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env::Override;
use crate::toml_source::{Source, SourceError};

/// Collects located errors while sections are validated.
pub struct Check<'a> {
    src: &'a Source,
    overrides: &'a [Override],
    base: &'a Path,
    errors: Vec<SourceError>,
}

impl<'a> Check<'a> {
    /// A collector for a file, its environment overrides, and the directory relative
    /// paths are resolved against.
    pub fn new(src: &'a Source, overrides: &'a [Override], base: &'a Path) -> Self {
        Self {
            src,
            overrides,
            base,
            errors: Vec::new(),
        }
    }

    /// Records an error at `key`: in the environment if a variable set it, in the file
    /// otherwise.
    pub fn err(&mut self, key: &str, message: impl Into<String>) {
        let e = match self.overrides.iter().find(|o| o.key == key) {
            Some(o) => SourceError {
                origin: format!("environment ({})", o.var),
                line: None,
                key: Some(key.to_string()),
                message: message.into(),
                help: None,
            },
            None => self.src.error_at(key, message),
        };
        self.errors.push(e);
    }

    /// Whether no error has been recorded yet.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors recorded so far.
    pub fn into_errors(self) -> Vec<SourceError> {
        self.errors
    }

    /// The file being validated.
    pub fn file(&self) -> &Path {
        self.src.path()
    }

    /// A path relative to the config file's directory (absolute paths stay).
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// Every path of a list, resolved.
    pub fn resolve_all(&self, list: Option<Vec<String>>) -> Vec<PathBuf> {
        list.unwrap_or_default()
            .iter()
            .map(|p| self.resolve(p))
            .collect()
    }

    /// A non-zero duration like `250ms`, `5s`, `8h`.
    pub fn duration(&mut self, key: &str, value: Option<String>, default: &str) -> Duration {
        let v = value.unwrap_or_else(|| default.to_string());
        match humantime::parse_duration(&v) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                self.err(key, format!("`{v}` is not a duration like 250ms, 5s, 8h"));
                Duration::from_secs(1)
            }
        }
    }

    /// A socket address like `127.0.0.1:8080`.
    pub fn addr(&mut self, key: &str, value: Option<String>, default: &str) -> SocketAddr {
        let v = value.unwrap_or_else(|| default.to_string());
        v.parse().unwrap_or_else(|_| {
            self.err(key, format!("`{v}` is not an address like 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
}
