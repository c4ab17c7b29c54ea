//! tickroom-bot: headless tickroom clients. `play` runs one bot and prints what it saw; `swarm`
//! runs many on one runtime for load tests and writes a JSON report (see DESIGN.md, operator
//! contract). The binary is a thin wrapper around [`run`].

pub mod bot;
pub mod cli;
pub mod link;
pub mod play;
pub mod report;
pub mod stats;
pub mod swarm;

use cli::{Cli, Command};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: runtime failure (could not join, closed with an error, too many swarm errors).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad usage.
pub const EXIT_USAGE: u8 = 2;

/// Runs a parsed command line on a multi-threaded runtime; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tickroom-bot: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Play(args) => {
                let outcome = play::run_play(&args).await;
                println!("{}", play::summary(&args, &outcome));
                if outcome.joined && outcome.error.is_none() {
                    EXIT_OK
                } else {
                    EXIT_FAILURE
                }
            }
            Command::Swarm(args) => {
                if args.bots == 0 {
                    eprintln!("tickroom-bot: --bots must be at least 1");
                    return EXIT_USAGE;
                }
                match swarm::run_swarm(&args).await {
                    Ok(result) => {
                        println!("{}", result.report);
                        println!("{}", result.counters_line());
                        if result.ok {
                            EXIT_OK
                        } else {
                            EXIT_FAILURE
                        }
                    }
                    Err(e) => {
                        eprintln!("tickroom-bot: {e:#}");
                        EXIT_FAILURE
                    }
                }
            }
        }
    })
}
