//! Wiring only: parse the command line, load config, start logging, build and run the
//! pingora server. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use guestgate::cli::{self, Cli, Command};
use guestgate::config::{Config, LogConfig};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            check,
            upgrade,
        } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("guestgate: invalid configuration:\n{e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(&cfg.log);
            if check {
                return match guestgate::server::check(&cfg) {
                    Ok(checked) => {
                        for w in &checked.warnings {
                            println!("warning: {w}");
                        }
                        println!("{}: ok", config.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("guestgate: {e:#}");
                        ExitCode::from(2)
                    }
                };
            }
            match guestgate::server::build(&cfg, upgrade) {
                Ok(server) => {
                    tracing::info!(listen = %cfg.listen, admin = %cfg.admin, upstream = %cfg.upstream.address, mode = ?cfg.mode, "guestgate starting");
                    server.run_forever()
                }
                Err(e) => {
                    eprintln!("guestgate: cannot start: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        other => match cli::run(other) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("guestgate: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
