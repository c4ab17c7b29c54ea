//! The `tickroom-bot` binary: parses flags, sets up logging, and runs `play` or `swarm`.

use std::process::ExitCode;

use clap::Parser;
use tickroom_bot::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = if cli.verbose {
        "warn,tickroom_bot=debug"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    ExitCode::from(tickroom_bot::run(cli))
}
