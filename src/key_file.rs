//! Secret key files (the session key, the assertion key): read only when others cannot
//! read them, and created once, with mode 0600, when absent; a replica that loses the race
//! to create one uses the winner's. What the bytes mean is the caller's business. A leaf.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Why a key file cannot be used; fatal at start.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Cannot read or create it.
    #[error("{what} file {path}: {source}")]
    Io {
        /// Which key.
        what: &'static str,
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Wrong content or mode.
    #[error("{what} file {path}: {why}")]
    Invalid {
        /// Which key.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl KeyFileError {
    /// The content of `path` is not a `what`.
    pub fn invalid(what: &'static str, path: &Path, why: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            path: path.display().to_string(),
            why: why.into(),
        }
    }

    fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Reads a key file's text, refusing one that others can read. Group read is allowed:
/// Kubernetes mounts secrets for a non-root user through `fsGroup`.
pub fn read_private(what: &'static str, path: &Path) -> Result<String, KeyFileError> {
    let meta = std::fs::metadata(path).map_err(|e| KeyFileError::io(what, path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(KeyFileError::invalid(
            what,
            path,
            format!("readable by others (mode {mode:o}); run `chmod 600` (or 640) on it"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| KeyFileError::io(what, path, e))
}

/// A hex key of at least 32 bytes (the session key, the audit key).
pub fn load_hex(what: &'static str, path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let text = read_private(what, path)?;
    let key = hex::decode(text.trim()).map_err(|_| KeyFileError::invalid(what, path, "not hex"))?;
    if key.len() < 32 {
        return Err(KeyFileError::invalid(
            what,
            path,
            format!("{} bytes; at least 32 are needed", key.len()),
        ));
    }
    Ok(key)
}

/// Loads a hex key, creating a random 32-byte one (mode 0600) if the file is absent.
pub fn load_or_create_hex(what: &'static str, path: &Path) -> Result<Vec<u8>, KeyFileError> {
    create_private(what, path, || {
        let mut key = [0u8; 32];
        rand::RngExt::fill(&mut rand::rng(), &mut key);
        format!("{}\n", hex::encode(key))
    })?;
    load_hex(what, path)
}

/// Creates `path` with mode 0600 holding `contents()` if it does not exist yet.
pub fn create_private(
    what: &'static str,
    path: &Path,
    contents: impl FnOnce() -> String,
) -> Result<(), KeyFileError> {
    if path.exists() {
        return Ok(());
    }
    let io = |e| KeyFileError::io(what, path, e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(contents().as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}
