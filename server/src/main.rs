//! The `tickroom` binary: the server with the two sample games registered. With no
//! subcommand it runs the all-in-one server (gateway + room server + in-memory directory) on
//! loopback; `tickroom --help` lists every flag.

use std::process::ExitCode;

fn main() -> ExitCode {
    tickroom_server::Server::with_sample_games().run()
}
