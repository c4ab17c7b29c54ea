//! `pong-play`: one bot plays pong (`tickroom-bot play` with the ball-following bot).
//! `pong-play --server http://127.0.0.1:7700` queues for mode `pong`; `--help` for the rest.

fn main() -> std::process::ExitCode {
    tickroom_pong::bot::run_bot_cli("play")
}
