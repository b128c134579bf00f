//! `serve` (run the proxy and its admin listener, or `--check` the config and exit) and
//! `probe` (a health check for containers without curl).

use std::path::Path;
use std::process::ExitCode;

use crate::admin::client::AdminClient;
use crate::config::{Config, LogConfig};

fn init_logging(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if log.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// `serve`: load and validate the config, then run until a signal ends the process.
/// Exit 2 with the errors (file, line, key) when the config, policies or keys are wrong.
pub fn serve(config: &Path, check: bool, upgrade: bool) -> ExitCode {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("guestgate: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log);
    if check {
        return match crate::server::check(&cfg) {
            Ok(checked) => {
                println!("{}: ok", config.display());
                for (part, what) in &checked.summary {
                    println!("  {part:<9} {what}");
                }
                for w in &checked.warnings {
                    println!("warning: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("guestgate: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match crate::server::build(&cfg, upgrade) {
        Ok(crate::server::Built { server, audit }) => {
            for w in cfg.warnings() {
                tracing::warn!(warning = %w, "configuration");
            }
            tracing::info!(listen = %cfg.listen, admin = %cfg.admin, upstream = %cfg.upstream.address, mode = ?cfg.mode, "guestgate starting");
            server.run(pingora::server::RunArgs::default());
            // Every service has stopped: the audit stream's last lines, its stop record
            // and the final checkpoint go out before the process ends.
            audit.close();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("guestgate: cannot start: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `probe URL`: exit 0 when an `http://` URL answers 200 (no key needed).
pub fn probe(url: &str) -> ExitCode {
    let answered_ok = AdminClient::for_url(url)
        .and_then(|(client, path)| client.call("GET", &path, None))
        .is_ok_and(|(status, _)| status == 200);
    if answered_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
