//! `pong-swarm`: many pong bots at once with a report (`tickroom-bot swarm` with the
//! ball-following bot). `pong-swarm --server http://127.0.0.1:7700 --bots 20`; `--help`.

fn main() -> std::process::ExitCode {
    tickroom_pong::bot::run_bot_cli("swarm")
}
