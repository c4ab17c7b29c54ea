//! tickroom-bot: headless tickroom clients for any game. `play` runs one bot and prints what it
//! saw; `swarm` runs many on one runtime for load tests and writes a JSON report (see
//! DESIGN.md, operator contract). A game says how its bot plays by implementing [`GameBot`];
//! its own binary gets the same command line and report from [`run_cli`]:
//!
//! ```no_run
//! use tickroom_bot::{factory, run_cli, GameBot, RandomBot, SmallRng};
//!
//! struct Tapper;
//! impl GameBot for Tapper {
//!     fn next_input(&mut self, _rng: &mut SmallRng) -> Vec<u8> { vec![1] }
//!     fn frame_input(&mut self, _frame: u64, _rng: &mut SmallRng) -> Vec<u8> { vec![1] }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     run_cli(factory(|_welcome, mode| match mode {
//!         "tap-race" => Box::new(Tapper),
//!         _ => Box::new(RandomBot),
//!     }))
//! }
//! ```
//!
//! The `tickroom-bot` binary is `run_cli(default_factory())`.

pub mod bot;
pub mod cli;
pub mod error;
pub mod floor;
pub mod game_bot;
pub mod link;
pub mod netns;
pub mod play;
pub mod report;
pub mod stats;
pub mod swarm;
pub mod sweep;

use std::ffi::OsString;
use std::process::ExitCode;

pub use rand::rngs::SmallRng;
pub use tickroom_game::GameError;

use cli::{Cli, Command, DEFAULT_MODE};
pub use error::BotError;
pub use game_bot::{
    default_factory, factory, ArenaLockstepBot, ArenaStickBot, GameBot, GameBotFactory, RandomBot,
};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: runtime failure (could not join, closed with an error, too many swarm errors).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad usage.
pub const EXIT_USAGE: u8 = 2;

/// The whole `tickroom-bot` program for a game: parses the `play`/`swarm` command line from
/// the process arguments (printing help or usage errors as clap does, exit code 2), logs to
/// stderr (`--verbose`, `RUST_LOG`), and runs it with bots from `factory`.
pub fn run_cli(factory: GameBotFactory) -> ExitCode {
    run_cli_from(std::env::args_os(), factory)
}

/// [`run_cli`] with the arguments given (the first is the program name): for a binary that
/// fills in a subcommand or a default `--mode` before parsing.
pub fn run_cli_from<I, T>(args: I, factory: GameBotFactory) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_game_cli(args, DEFAULT_MODE, factory)
}

/// [`run_cli_from`] for a game's own bot binary: `--mode` defaults to `default_mode` (and
/// `--help` says so).
pub fn run_game_cli<I, T>(args: I, default_mode: &'static str, factory: GameBotFactory) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command()
        .mut_subcommand("play", |c| {
            c.mut_arg("mode", |a| a.default_value(default_mode))
        })
        .mut_subcommand("swarm", |c| {
            c.mut_arg("mode", |a| a.default_value(default_mode))
        })
        .mut_subcommand("sweep", |c| {
            c.mut_arg("mode", |a| a.default_value(default_mode))
        });
    let cli = command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .unwrap_or_else(|e| e.exit());
    let default_filter = if cli.verbose {
        "warn,tickroom_bot=debug"
    } else {
        "warn"
    };
    // A second subscriber (a test calling this twice) is not an error worth failing for.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .try_init();
    ExitCode::from(run(cli, factory))
}

/// Runs a parsed command line on a multi-threaded runtime with bots from `factory`; returns
/// the exit code.
pub fn run(cli: Cli, factory: GameBotFactory) -> u8 {
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
            Command::NetnsLoss(args) => netns::run_netns_loss(&args).await,
            Command::Play(args) => {
                let factory = if args.watch {
                    game_bot::watching_arena(factory)
                } else {
                    factory
                };
                let outcome = play::run_play(&args, factory).await;
                println!("{}", play::summary(&args, &outcome));
                if outcome.joined && outcome.error.is_none() {
                    EXIT_OK
                } else {
                    EXIT_FAILURE
                }
            }
            Command::Floor(args) => match floor::self_server_command() {
                Ok(server) => floor::run_and_print(&args, server).await,
                Err(e) => {
                    eprintln!("tickroom-bot: {e:#}");
                    EXIT_FAILURE
                }
            },
            Command::FloorServer => match floor::serve_stdio().await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("tickroom-bot: {e:#}");
                    EXIT_FAILURE
                }
            },
            Command::Sweep(args) => match sweep::run_sweep(&args, factory).await {
                Ok((rows, ok)) => {
                    println!(
                        "sweep: {} steps, CSV {}, plot {}",
                        rows.len(),
                        args.csv.display(),
                        args.plot.display()
                    );
                    if ok {
                        EXIT_OK
                    } else {
                        EXIT_FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("tickroom-bot: {e:#}");
                    EXIT_FAILURE
                }
            },
            Command::Swarm(args) => {
                if args.bots == 0 {
                    eprintln!("tickroom-bot: --bots must be at least 1");
                    return EXIT_USAGE;
                }
                match swarm::run_swarm(&args, factory).await {
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
