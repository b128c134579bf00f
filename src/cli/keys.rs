//! `admin new-key` and `session mint`: an API key and its config lines, and a session
//! token signed directly with the key file (demos and tests).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;

use crate::config::Config;
use crate::session::{SessionKeys, ShareGrant};
use crate::stamp::unix_now;

/// `admin` verbs.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Generate an API key: prints the key (give it to the caller) and the config lines (hash only).
    NewKey {
        /// Key name (the actor in audit events).
        #[arg(long)]
        name: String,
        /// admin or sharer.
        #[arg(long, default_value = "sharer")]
        role: String,
    },
}

/// `session` verbs.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Mint a session cookie value with the configured key (prints the token).
    Mint {
        /// Config file naming the key file.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
        /// Guest email.
        #[arg(long)]
        email: String,
        /// A share as ID:CASE:VERSION[:PROFILE]; repeat for several.
        #[arg(long = "share", required = true)]
        shares: Vec<String>,
        /// Lifetime, e.g. 30m, 8h.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// `admin new-key`: a 256-bit key and the config lines holding only its hash.
pub fn new_key(name: &str, role: &str) -> anyhow::Result<String> {
    if role != "admin" && role != "sharer" {
        bail!("--role must be admin or sharer");
    }
    let key = format!("gg_{}", crate::stamp::random_hex(32));
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    Ok(format!(
        "API key (give it to the caller; it is not stored anywhere):\n  {key}\n\nAdd to guestgate.toml:\n[[admin.keys]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n"
    ))
}

/// `session mint`.
pub fn session_mint(
    config: &Path,
    email: &str,
    shares: &[String],
    ttl: &str,
) -> anyhow::Result<String> {
    let cfg = Config::load(config).map_err(|e| anyhow!("{e}"))?;
    let keys = SessionKeys::from_config(&cfg.session)?;
    let ttl = humantime::parse_duration(ttl).context("--ttl")?;
    let ttl = ttl.min(cfg.session.max_lifetime).as_secs();
    let mut grants = Vec::new();
    for s in shares {
        let parts: Vec<&str> = s.split(':').collect();
        let (id, case, version, profile) = match parts.as_slice() {
            [i, c, v] => (*i, *c, *v, "view-only"),
            [i, c, v, p] => (*i, *c, *v, *p),
            _ => bail!("--share `{s}`: expected ID:CASE:VERSION[:PROFILE]"),
        };
        grants.push(ShareGrant {
            id: id.into(),
            case: case.into(),
            version: version.into(),
            profile: profile.into(),
            exp: unix_now() + ttl,
        });
    }
    keys.mint(&email.trim().to_ascii_lowercase(), grants, ttl)
        .map_err(|e| anyhow!("{e}"))
}

/// Runs an `admin` verb.
pub fn admin(command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::NewKey { name, role } => {
            print!("{}", new_key(&name, &role)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a `session` verb.
pub fn session(command: SessionCommand) -> anyhow::Result<ExitCode> {
    match command {
        SessionCommand::Mint {
            config,
            email,
            shares,
            ttl,
        } => {
            println!("{}", session_mint(&config, &email, &shares, &ttl)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
