//! `audit verify` and `audit search`: the audit files, read offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the keyed chain of audit files, given oldest first: reports every edited,
    /// inserted, dropped or reordered line, and, against checkpoints, a cut tail.
    Verify {
        /// Audit files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// An audit key file (repeat for keys that wrote earlier lines).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// A checkpoint from the process log, `LINES:HEAD`, of the last file (repeat).
        #[arg(long = "checkpoint")]
        checkpoints: Vec<crate::audit::chain::Checkpoint>,
    },
    /// Print the events matching every given filter.
    Search {
        /// Audit files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The deny id a guest quoted.
        #[arg(long)]
        deny_id: Option<String>,
        /// A share id.
        #[arg(long)]
        share: Option<String>,
        /// A guest email.
        #[arg(long)]
        email: Option<String>,
    },
}

fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|f| {
            // Bytes that are not UTF-8 become U+FFFD: that line then fails to verify and
            // is reported where it is, rather than the whole file being unreadable.
            std::fs::read(f)
                .with_context(|| format!("cannot read {}", f.display()))
                .map(|b| {
                    (
                        f.display().to_string(),
                        String::from_utf8_lossy(&b).into_owned(),
                    )
                })
        })
        .collect()
}

/// Runs an `audit` verb.
pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            files,
            keys,
            checkpoints,
        } => {
            let texts = read_all(&files)?;
            let keys = keys
                .iter()
                .map(|k| {
                    crate::key_file::load_hex("audit key", k)
                        .map(|bytes| crate::audit::chain::AuditKey::new(&bytes))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let report = crate::audit::chain::verify(&texts, &keys, &checkpoints);
            for f in &report.findings {
                println!("{}:{}: {}: {}", f.file, f.line, f.kind, f.detail);
            }
            if report.findings.is_empty() {
                let tail = if checkpoints.is_empty() {
                    "; the tail is proven only against a checkpoint (--checkpoint LINES:HEAD from the process log)"
                } else {
                    "; every checkpoint matches"
                };
                println!("ok: {} lines, chain intact{tail}", report.lines);
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "{} lines, {} problem(s)",
                    report.lines,
                    report.findings.len()
                );
                Ok(ExitCode::from(1))
            }
        }
        AuditCommand::Search {
            files,
            deny_id,
            share,
            email,
        } => {
            if deny_id.is_none() && share.is_none() && email.is_none() {
                bail!("give --deny-id, --share or --email");
            }
            let email = email.map(|e| e.trim().to_ascii_lowercase());
            let mut found = 0;
            for (_, text) in read_all(&files)? {
                for event in crate::audit::chain::search(
                    &text,
                    deny_id.as_deref(),
                    share.as_deref(),
                    email.as_deref(),
                ) {
                    println!("{event}");
                    found += 1;
                }
            }
            Ok(if found > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
