//! The command line: one verb group per file, each a small function over the library.
//! `serve` runs the proxy; `share` and `guests` drive the admin API; `policy` checks and
//! explains policies; `audit` verifies and searches audit files; `admin new-key` and
//! `session mint` make keys and tokens; `probe` is a health check for containers.

mod audit;
mod keys;
pub mod policy;
mod serve;
mod staff;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// guestgate: share one case, at one version, with an outside guest.
#[derive(Debug, Parser)]
#[command(name = "guestgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (and its admin listener).
    Serve {
        /// Config file.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
        /// Validate config, policies and keys, then exit.
        #[arg(long)]
        check: bool,
        /// Take the listening sockets over from a running guestgate (zero-downtime upgrade):
        /// start this, then send SIGQUIT to the old process. Needs the Redis store.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate and try out policies.
    Policy {
        /// Policy verb.
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Create, list, show, revoke and review shares (over the admin API).
    #[command(alias = "shares")]
    Share {
        /// Admin API access.
        #[command(flatten)]
        admin: staff::AdminArgs,
        /// Share verb.
        #[command(subcommand)]
        command: staff::ShareCommand,
    },
    /// The guest directory (over the admin API; needs an `admin` key).
    Guests {
        /// Admin API access.
        #[command(flatten)]
        admin: staff::AdminArgs,
        /// Guests verb.
        #[command(subcommand)]
        command: staff::GuestsCommand,
    },
    /// Exit 0 if an http:// URL answers 200 (container health checks without curl).
    Probe {
        /// e.g. http://127.0.0.1:9190/readyz
        url: String,
    },
    /// Check and search audit files.
    Audit {
        /// Audit verb.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Admin API keys.
    Admin {
        /// Admin verb.
        #[command(subcommand)]
        command: keys::AdminCommand,
    },
    /// Session tokens signed directly with the key file (demos and tests).
    Session {
        /// Session verb.
        #[command(subcommand)]
        command: keys::SessionCommand,
    },
}

/// Runs a verb; errors are printed with their causes and exit with 2.
pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Serve {
            config,
            check,
            upgrade,
        } => return serve::serve(&config, check, upgrade),
        Command::Probe { url } => Ok(serve::probe(&url)),
        Command::Share { admin, command } => staff::share(&admin, command),
        Command::Guests { admin, command } => staff::guests(&admin, command),
        Command::Policy { command } => policy::run(command),
        Command::Audit { command } => audit::run(command),
        Command::Admin { command } => keys::admin(command),
        Command::Session { command } => keys::session(command),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("guestgate: {e:#}");
        ExitCode::from(2)
    })
}
