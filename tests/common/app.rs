//! The sample app as the upstream of a test instance, recording every request it
//! receives to a file, and what it recorded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Proc;

/// One request as the app received it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// All values of a header (case-insensitive name, exact spelling).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(all.len() <= 1, "header {name} repeated: {all:?}");
        all.first().copied()
    }

    /// Whether any header folds to `name` the way CGI backends fold names (case, and every
    /// character but letters and digits read as `-`).
    pub fn has_header_folded(&self, name: &str) -> bool {
        let fold = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect()
        };
        self.headers.iter().any(|(k, _)| fold(k) == fold(name))
    }
}

/// The sample app, recording to a file.
pub struct App {
    pub addr: SocketAddr,
    record: PathBuf,
    proc: Option<Proc>,
}

impl App {
    /// The sample app with extra arguments (`--csp`, `--compress`, ...).
    pub fn start(dir: &Path, args: &[String]) -> App {
        let record = dir.join("app-requests.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_guestgate-sample-app"))
            .args(["--listen", "127.0.0.1:0", "--record"])
            .arg(&record)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sample app");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sample app banner");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("sample app banner: {line:?}"));
        App {
            addr,
            record,
            proc: Some(Proc(child)),
        }
    }

    /// The file the app records every request to.
    pub fn record_path(&self) -> &Path {
        &self.record
    }

    /// Stops the app (its port then refuses connections).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Everything the app has received so far.
    pub fn seen(&self) -> Vec<Seen> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line"))
            .collect()
    }
}
