//! `audit verify` and `audit search`: the audit files, read offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of audit files, given oldest first; reports the first break.
    Verify {
        /// Audit files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))
                .map(|t| (f.display().to_string(), t))
        })
        .collect()
}

/// Runs an `audit` verb.
pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { files } => {
            let texts = read_all(&files)?;
            match crate::audit::verify_files(&texts) {
                Ok(n) => {
                    println!("ok: {n} lines, chain intact");
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    println!("{}:{}: {}", b.file, b.line, b.problem);
                    Ok(ExitCode::from(1))
                }
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
                for event in crate::audit::search(
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
