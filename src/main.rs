//! Wiring only: parse the command line and run the verb. Everything else lives in the
//! library (`guestgate::cli`).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: the proxy allocates and frees many small
/// buffers per request, and under load glibc's allocator cost about 9 µs of CPU per
/// allowed request against about 3 µs for bare pingora (measured with scripts/load.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    guestgate::cli::run(guestgate::cli::Cli::parse())
}
