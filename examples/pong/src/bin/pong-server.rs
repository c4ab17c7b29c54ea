//! `pong-server`: a tickroom server that runs pong. The same command line as `tickroom`
//! (all-in-one by default, `room` and `gateway` roles, `--help`); modes from `modes.toml`.

fn main() -> std::process::ExitCode {
    tickroom::Server::builder()
        .state_game::<tickroom_pong::Pong>("pong")
        .default_modes(include_str!("../../modes.toml"))
        .run()
}
