//! The floor: a minimal WebSocket room server on tokio + tokio-tungstenite (no auth, no replay
//! checks, no game: one task per connection, rooms of 10 broadcasting 120 bytes at 30 Hz) and
//! bots for it, so tickroom's figures can be stated as a ratio to what the bare job costs on
//! the same machine. The server runs as a separate process (this binary again, with
//! `TICKROOM_FLOOR_SERVER=1`) so its CPU is measured apart from the bots'. Run:
//!
//! ```sh
//! cargo bench --bench floor -- --bots 1500 --ramp 10s --duration 30s
//! ```
//!
//! Flags: `--bots` (default 200), `--ramp` (5s), `--duration` (30s), `--max-errors` (0),
//! `--report FILE` (JSON). The same run is `tickroom-bot floor`, and `tickroom-bot sweep
//! --floor` runs it after every step; see `tickroom_bot::floor`.

use std::process::{Command, ExitCode};

use tickroom_bot::cli::{parse_duration, FloorArgs};

/// Set in the environment of the re-executed binary that acts as the floor server.
const SERVER_ENV: &str = "TICKROOM_FLOOR_SERVER";

fn main() -> ExitCode {
    if std::env::var_os(SERVER_ENV).is_some() {
        return tickroom_bot::floor::server_main();
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("floor bench: {e}\nusage: cargo bench --bench floor -- [--bots N] [--ramp 5s] [--duration 30s] [--max-errors N] [--report FILE]");
            return ExitCode::from(tickroom_bot::EXIT_USAGE);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("floor bench: cannot find this executable: {e}");
            return ExitCode::from(tickroom_bot::EXIT_FAILURE);
        }
    };
    let mut server = Command::new(exe);
    server.env(SERVER_ENV, "1");
    ExitCode::from(tickroom_bot::floor::run_blocking(&args, server))
}

/// `--name value` or `--name=value` pairs; cargo's own `--bench` is ignored.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<FloorArgs, String> {
    let mut floor = FloorArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--bench" {
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--bots" => {
                floor.bots = value()?
                    .parse()
                    .map_err(|_| "--bots needs a count".to_string())?;
            }
            "--ramp" => floor.ramp = parse_duration(&value()?)?,
            "--duration" => floor.duration = parse_duration(&value()?)?,
            "--max-errors" => {
                floor.max_errors = value()?
                    .parse()
                    .map_err(|_| "--max-errors needs a count".to_string())?;
            }
            "--report" => floor.report = Some(value()?.into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if floor.bots == 0 {
        return Err("--bots must be at least 1".to_string());
    }
    Ok(floor)
}
