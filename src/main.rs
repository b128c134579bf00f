//! Wiring only: parse the command line and run the verb. Everything else lives in the
//! library (`guestgate::cli`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    guestgate::cli::run(guestgate::cli::Cli::parse())
}
