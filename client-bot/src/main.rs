//! The `tickroom-bot` binary: the library's command line with the default bots (the arena
//! bots for the arena modes, random inputs for any other mode).

use std::process::ExitCode;

fn main() -> ExitCode {
    tickroom_bot::run_cli(tickroom_bot::default_factory())
}
