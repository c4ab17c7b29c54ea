//! Game modes: the parsed form of `assets/modes.toml`, the single source of modes for gateways
//! and room servers. Pure parsing: the caller passes the text in.

use std::time::Duration;

use serde::Deserialize;

/// The modes file built into every binary, used when no `--modes` file is given.
pub const EMBEDDED_MODES_TOML: &str = include_str!("../../assets/modes.toml");

/// The largest `max_input_bytes` a mode may set (16 KiB).
pub const MAX_INPUT_BYTES_LIMIT: u32 = 16 * 1024;

/// How a mode keeps players in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSync {
    /// Server-authoritative simulation with snapshots.
    State,
    /// Input relay per frame, clients simulate.
    Lockstep,
}

/// One game mode.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeConfig {
    /// The name players queue for.
    pub name: String,
    /// The registered game that runs it (the `tickroom` binary registers `arena` (state) and
    /// `arena-lockstep` (lockstep); a server built with the SDK registers its own).
    pub game: String,
    /// State sync or lockstep.
    pub sync: ModeSync,
    /// Ticks (state) or frames (lockstep) per second.
    pub tick_rate_hz: u16,
    /// Room size: matchmaking fills rooms of this many players.
    pub players: u8,
    /// Fewest players a match may start with once `matchmaking_wait_s` has passed.
    #[serde(default = "one")]
    pub min_players: u8,
    /// How long matchmaking waits for a full room before starting with `min_players`.
    #[serde(default = "ten")]
    pub matchmaking_wait_s: u32,
    /// A room starts when full or this long after it was created.
    #[serde(default = "ten")]
    pub start_timeout_s: u32,
    /// A match ends after this long.
    #[serde(default = "six_hundred")]
    pub match_duration_s: u32,
    /// How long a dropped player's slot is kept for a resume.
    #[serde(default = "thirty")]
    pub grace_s: u32,
    /// State sync: how many unacknowledged inputs each client message repeats (at most; a
    /// message with more is refused as `BadMessage`). Clients learn it from `Welcome`.
    #[serde(default = "eight")]
    pub input_redundancy: u8,
    /// Largest single input (state) or frame input (lockstep) a client may send, in bytes
    /// (default 256); a larger one is refused as `BadMessage` before it reaches the room.
    #[serde(default = "two_hundred_fifty_six")]
    pub max_input_bytes: u32,
    /// Lockstep: clients send a checksum every this many frames.
    #[serde(default = "ten")]
    pub checksum_interval_frames: u32,
    /// Lockstep: the server also steps the simulation, so it can tell which player desynced
    /// (default false: the server only relays).
    #[serde(default)]
    pub server_sim: bool,
    /// Largest custom message a client may send, in bytes (default 1,024).
    #[serde(default = "kib")]
    pub max_message_bytes: u32,
    /// Custom messages per second one session may send, sustained (default 10).
    #[serde(default = "ten")]
    pub message_rate_per_s: u32,
    /// Custom messages one session may send in a burst (default 20).
    #[serde(default = "twenty")]
    pub message_burst: u32,
    /// State sync: the lowest snapshot rate a room may fall to while its worker is
    /// overloaded (the room halves its snapshot rate, down to this, before its ticks overrun;
    /// it recovers when load falls). Default: a quarter of `tick_rate_hz`, at least 1.
    /// Setting it to `tick_rate_hz` turns the degradation off for the mode.
    #[serde(default)]
    pub min_snapshot_hz: Option<u16>,
    /// State sync: a running match that loses a player for good (grace expired, left, kicked)
    /// asks matchmaking for a replacement, who joins in progress with a full snapshot
    /// (default false). Modes with `[mode.matchmaking]` rules may not set it: the room's
    /// players are not kept to judge a newcomer by.
    #[serde(default)]
    pub backfill: bool,
    /// Teams a match is split into (default 1: none); `players` must divide evenly. A party
    /// always lands on one team, and the match result says who is on which.
    #[serde(default = "one")]
    pub teams: u8,
    /// A private room of this mode (`POST /v1/rooms`) keeps its join code this long while
    /// nobody has joined it (default 600).
    #[serde(default = "six_hundred")]
    pub private_room_ttl_s: u32,
    /// Spectators a room of this mode takes besides its players (default 16; 0: none),
    /// at most `MAX_SPECTATORS`. They never take a player seat and may not send input.
    #[serde(default = "sixteen")]
    pub spectators: u16,
    /// Lockstep: spectators see each frame this long after it closed (default 3,000 ms, at
    /// most 60,000), so a player watching a friend's stream learns nothing in time to use.
    #[serde(default = "three_thousand")]
    pub spectator_delay_ms: u32,
    /// State sync with a shared directory (Redis): how often a room's owner stores the room's
    /// failover image, from which another server takes the match over if the owner dies
    /// (default 1,000 ms, at least 100). Players lose at most this much of the match.
    #[serde(default = "thousand")]
    pub checkpoint_interval_ms: u32,
    /// How matchmaking groups players (`[mode.matchmaking]`): a rating window that widens
    /// with the wait, a region, properties that must match exactly. Absent: first come,
    /// first served, and tickets carry no properties.
    #[serde(default)]
    pub matchmaking: Option<MatchRules>,
    /// The game's own parameters, decoded into its `Params` type at start-up.
    #[serde(default)]
    pub params: toml::Table,
}

/// Most spectators a mode may allow per room.
pub const MAX_SPECTATORS: u16 = 1024;
/// Longest lockstep spectator delay a mode may set, in milliseconds.
pub const MAX_SPECTATOR_DELAY_MS: u32 = 60_000;

/// Most string properties a mode may require to match exactly.
pub const MAX_EXACT_PROPERTIES: usize = 4;
/// The prefix of a ticket's latency properties: `latency.<region>` in milliseconds.
pub const LATENCY_PREFIX: &str = "latency.";

/// A mode's matchmaking rules (`[mode.matchmaking]` in modes.toml). Each names the ticket
/// property it reads; a ticket of the mode must carry every property named here (and may
/// carry `latency.<region>` numbers when `region` is set), and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// A whole-number property (a rating): every player of a match lies within the window of
    /// the match's anchor (the oldest ticket that could start it), and the anchor within each
    /// one's own window.
    #[serde(default)]
    pub rating: Option<String>,
    /// The rating window at the start: ± this much.
    #[serde(default = "fifty")]
    pub window: u32,
    /// The window grows by this much...
    #[serde(default = "twenty_five")]
    pub widen_by: u32,
    /// ...every this many seconds of waiting...
    #[serde(default = "five")]
    pub widen_every_s: u32,
    /// ...up to ± this much.
    #[serde(default = "four_hundred")]
    pub max_window: u32,
    /// A string property naming the player's region: a match plays in its anchor's region and
    /// takes only players of that region, except, once both waited `region_fallback_s`,
    /// players whose best-latency region besides their own it is (`latency.<region>` ms).
    #[serde(default)]
    pub region: Option<String>,
    /// See `region`.
    #[serde(default = "ten")]
    pub region_fallback_s: u32,
    /// String properties (a game version) that must be equal across a match.
    #[serde(default)]
    pub exact: Vec<String>,
}

/// No rules: first come, first served (how modes without `[mode.matchmaking]` match).
impl Default for MatchRules {
    fn default() -> Self {
        MatchRules {
            rating: None,
            window: fifty(),
            widen_by: twenty_five(),
            widen_every_s: five(),
            max_window: four_hundred(),
            region: None,
            region_fallback_s: 10,
            exact: Vec::new(),
        }
    }
}

impl MatchRules {
    /// The rating window after waiting `waited_ms`.
    pub fn window_after(&self, waited_ms: u64) -> u32 {
        let steps = waited_ms / (u64::from(self.widen_every_s.max(1)) * 1000);
        let widened = u64::from(self.window) + steps.saturating_mul(u64::from(self.widen_by));
        widened.min(u64::from(self.max_window)) as u32
    }

    /// Whether `key` is a property a ticket of this mode may carry.
    pub fn knows(&self, key: &str) -> bool {
        self.rating.as_deref() == Some(key)
            || self.region.as_deref() == Some(key)
            || self.exact.iter().any(|e| e == key)
            || (self.region.is_some() && key.starts_with(LATENCY_PREFIX))
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.rating.is_none() && self.region.is_none() && self.exact.is_empty() {
            return Err("matchmaking needs a rating, a region or exact properties");
        }
        if self.window > self.max_window || self.widen_every_s == 0 {
            return Err("matchmaking needs window <= max_window and widen_every_s >= 1");
        }
        if self.exact.len() > MAX_EXACT_PROPERTIES {
            return Err("matchmaking takes at most 4 exact properties");
        }
        let names = self
            .rating
            .iter()
            .chain(&self.region)
            .chain(&self.exact)
            .collect::<Vec<_>>();
        if names
            .iter()
            .any(|n| n.is_empty() || n.starts_with(LATENCY_PREFIX))
            || names
                .iter()
                .enumerate()
                .any(|(i, n)| names[..i].contains(n))
        {
            return Err("matchmaking property names must be distinct, non-empty and not latency.*");
        }
        Ok(())
    }
}

fn fifty() -> u32 {
    50
}
fn twenty_five() -> u32 {
    25
}
fn five() -> u32 {
    5
}
fn four_hundred() -> u32 {
    400
}

fn one() -> u8 {
    1
}
fn eight() -> u8 {
    8
}
fn ten() -> u32 {
    10
}
fn twenty() -> u32 {
    20
}
fn two_hundred_fifty_six() -> u32 {
    256
}
fn kib() -> u32 {
    1024
}
fn thousand() -> u32 {
    1000
}
fn sixteen() -> u16 {
    16
}
fn three_thousand() -> u32 {
    3000
}
fn thirty() -> u32 {
    30
}
fn six_hundred() -> u32 {
    600
}

impl ModeConfig {
    /// The fixed time between two ticks.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.tick_rate_hz))
    }

    /// Lockstep: how many frames behind the newest closed one spectators are kept
    /// (`spectator_delay_ms` at `tick_rate_hz`, rounded up).
    pub fn spectator_delay_frames(&self) -> u64 {
        (u64::from(self.spectator_delay_ms) * u64::from(self.tick_rate_hz)).div_ceil(1000)
    }

    /// The most a room of this mode may divide its snapshot rate by under load: a power of
    /// two, so that `tick_rate_hz / divisor >= min_snapshot_hz` (1 for lockstep, which sends
    /// frames, not snapshots).
    pub fn max_snapshot_divisor(&self) -> u32 {
        if self.sync == ModeSync::Lockstep {
            return 1;
        }
        let floor = self
            .min_snapshot_hz
            .unwrap_or((self.tick_rate_hz / 4).max(1))
            .max(1);
        let mut divisor = 1u32;
        while u32::from(self.tick_rate_hz) / (divisor * 2) >= u32::from(floor) {
            divisor *= 2;
        }
        divisor
    }
}

/// Why a modes file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModesError {
    /// The TOML does not parse or has unknown fields.
    #[error("modes file does not parse: {0}")]
    Parse(String),
    /// A mode has an impossible value.
    #[error("mode {mode}: {problem}")]
    Invalid { mode: String, problem: &'static str },
}

/// All modes, looked up by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Modes {
    modes: Vec<ModeConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModesFile {
    mode: Vec<ModeConfig>,
}

impl Modes {
    /// Parses and checks a modes file.
    pub fn parse(text: &str) -> Result<Modes, ModesError> {
        let file: ModesFile = toml::from_str(text).map_err(|e| ModesError::Parse(e.to_string()))?;
        for m in &file.mode {
            let invalid = |problem| ModesError::Invalid {
                mode: m.name.clone(),
                problem,
            };
            if m.game.is_empty() {
                return Err(invalid("game must name a registered game"));
            }
            if m.tick_rate_hz == 0 || m.tick_rate_hz > 240 {
                return Err(invalid("tick_rate_hz must be 1..=240"));
            }
            if m.players == 0 || m.players > 64 {
                return Err(invalid("players must be 1..=64"));
            }
            if m.teams == 0 || m.players % m.teams != 0 {
                return Err(invalid("teams must be at least 1 and divide players"));
            }
            if m.min_players == 0 || m.min_players > m.players {
                return Err(invalid("min_players must be 1..=players"));
            }
            if m.checksum_interval_frames == 0 {
                return Err(invalid("checksum_interval_frames must be at least 1"));
            }
            if m.input_redundancy == 0 {
                return Err(invalid("input_redundancy must be at least 1"));
            }
            if m.max_input_bytes == 0 || m.max_input_bytes > MAX_INPUT_BYTES_LIMIT {
                return Err(invalid("max_input_bytes must be 1..=16384"));
            }
            if m.min_snapshot_hz
                .is_some_and(|hz| hz == 0 || hz > m.tick_rate_hz)
            {
                return Err(invalid("min_snapshot_hz must be 1..=tick_rate_hz"));
            }
            if let Some(rules) = &m.matchmaking {
                rules.check().map_err(invalid)?;
            }
            if m.backfill && (m.matchmaking.is_some() || m.sync != ModeSync::State) {
                return Err(invalid(
                    "backfill is for state-sync modes without matchmaking rules",
                ));
            }
            if m.checkpoint_interval_ms < 100 {
                return Err(invalid("checkpoint_interval_ms must be at least 100"));
            }
            if m.spectators > MAX_SPECTATORS {
                return Err(invalid("spectators must be 0..=1024"));
            }
            if m.spectator_delay_ms > MAX_SPECTATOR_DELAY_MS {
                return Err(invalid("spectator_delay_ms must be 0..=60000"));
            }
            if m.message_rate_per_s == 0 || m.message_burst == 0 {
                return Err(invalid(
                    "message_rate_per_s and message_burst must be at least 1",
                ));
            }
        }
        if file
            .mode
            .iter()
            .enumerate()
            .any(|(i, m)| file.mode[..i].iter().any(|o| o.name == m.name))
        {
            return Err(ModesError::Invalid {
                mode: String::new(),
                problem: "two modes share a name",
            });
        }
        Ok(Modes { modes: file.mode })
    }

    /// The modes built into the binary (parsed once per process).
    pub fn embedded() -> Modes {
        static EMBEDDED: std::sync::OnceLock<Modes> = std::sync::OnceLock::new();
        EMBEDDED
            .get_or_init(|| {
                Modes::parse(EMBEDDED_MODES_TOML).expect("the embedded modes file is valid")
            })
            .clone()
    }

    /// The mode called `name`.
    pub fn by_name(&self, name: &str) -> Option<&ModeConfig> {
        self.modes.iter().find(|m| m.name == name)
    }

    /// Every mode.
    pub fn iter(&self) -> impl Iterator<Item = &ModeConfig> {
        self.modes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_modes_parse() {
        let modes = Modes::embedded();
        let arena = modes.by_name("arena").unwrap();
        assert_eq!(arena.sync, ModeSync::State);
        assert_eq!(arena.players, 10);
        assert_eq!(
            modes.by_name("arena-lockstep").unwrap().sync,
            ModeSync::Lockstep
        );
        assert!(modes.by_name("nope").is_none());
    }

    #[test]
    fn matchmaking_rules_parse_and_impossible_ones_are_refused() {
        let ranked = Modes::embedded().by_name("ranked").unwrap().clone();
        let rules = ranked.matchmaking.expect("ranked has rules");
        assert_eq!(rules.rating.as_deref(), Some("rating"));
        assert_eq!(rules.exact, ["version"]);
        assert_eq!(rules.window_after(0), 50);
        assert_eq!(rules.window_after(4_999), 50);
        assert_eq!(rules.window_after(5_000), 75);
        assert_eq!(rules.window_after(u64::MAX), 400);
        assert!(rules.knows("latency.eu") && rules.knows("region") && !rules.knows("map"));
        assert!(Modes::embedded()
            .by_name("arena")
            .unwrap()
            .matchmaking
            .is_none());
        let mode = |table: &str| {
            Modes::parse(&format!(
                "[[mode]]\nname='m'\ngame='g'\nsync='state'\ntick_rate_hz=30\nplayers=2\n[mode.matchmaking]\n{table}"
            ))
        };
        assert!(mode("rating='r'").is_ok());
        let header = "[[mode]]\nname='m'\ngame='g'\ntick_rate_hz=30\nplayers=4\nbackfill=true\n";
        assert!(Modes::parse(&format!("{header}sync='state'\n")).is_ok());
        assert!(Modes::parse(&format!("{header}sync='lockstep'\n")).is_err());
        assert!(Modes::parse(&format!(
            "{header}sync='state'\n[mode.matchmaking]\nrating='r'\n"
        ))
        .is_err());
        assert!(Modes::parse(&format!("{header}sync='state'\nteams=3\n")).is_err());
        for bad in [
            "",
            "rating='r'\nwindow=500",
            "rating='r'\nwiden_every_s=0",
            "rating='latency.eu'",
            "rating='r'\nregion='r'",
            "exact=['a','b','c','d','e']",
            "rating='r'\nmystery=1",
        ] {
            assert!(mode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_snapshot_floor_bounds_the_divisor() {
        let modes = Modes::embedded();
        // 30 Hz with the default floor of 7 Hz: 30 → 15 → 7.5, so at most ÷4 (7 Hz).
        assert_eq!(modes.by_name("arena").unwrap().max_snapshot_divisor(), 4);
        assert_eq!(
            modes
                .by_name("arena-lockstep")
                .unwrap()
                .max_snapshot_divisor(),
            1
        );
        let mode = |floor: &str| {
            let text = format!(
                "[[mode]]\nname = \"m\"\ngame = \"g\"\nsync = \"state\"\ntick_rate_hz = 60\nplayers = 2\n{floor}"
            );
            Modes::parse(&text).map(|m| m.by_name("m").unwrap().max_snapshot_divisor())
        };
        assert_eq!(mode("").unwrap(), 4);
        assert_eq!(mode("min_snapshot_hz = 60").unwrap(), 1);
        assert_eq!(mode("min_snapshot_hz = 30").unwrap(), 2);
        assert_eq!(mode("min_snapshot_hz = 1").unwrap(), 32);
        assert!(mode("min_snapshot_hz = 0").is_err());
        assert!(mode("min_snapshot_hz = 61").is_err());
    }

    #[test]
    fn params_and_message_limits_parse() {
        let text = "[[mode]]\nname='a'\ngame='pong'\nsync='state'\ntick_rate_hz=30\nplayers=2\nmax_message_bytes=64\n[mode.params]\nscore_limit=3\n";
        let modes = Modes::parse(text).unwrap();
        let a = modes.by_name("a").unwrap();
        assert_eq!(a.max_message_bytes, 64);
        assert_eq!(a.message_rate_per_s, 10);
        assert_eq!(
            a.params.get("score_limit").and_then(|v| v.as_integer()),
            Some(3)
        );
        assert!(!a.server_sim);
        assert_eq!((a.spectators, a.spectator_delay_ms), (16, 3000));
        // 3 s at 30 Hz is 90 frames; a delay that is not a whole frame rounds up.
        assert_eq!(a.spectator_delay_frames(), 90);
        let odd = Modes::parse(&text.replace("players=2", "players=2\nspectator_delay_ms=1001"));
        assert_eq!(
            odd.unwrap().by_name("a").unwrap().spectator_delay_frames(),
            31
        );
    }

    #[test]
    fn bad_modes_are_refused() {
        let base = |extra: &str| {
            format!(
                "[[mode]]\nname='a'\ngame='arena'\nsync='state'\ntick_rate_hz=30\nplayers=4\n{extra}"
            )
        };
        assert!(Modes::parse(&base("")).is_ok());
        assert!(Modes::parse(&base("min_players=5")).is_err());
        assert!(Modes::parse(&base("bogus=1")).is_err());
        assert!(Modes::parse(&base("").replace("'arena'", "''")).is_err());
        assert!(Modes::parse(&base("message_rate_per_s=0")).is_err());
        assert!(Modes::parse(&base("spectators=1024")).is_ok());
        assert!(Modes::parse(&base("spectators=1025")).is_err());
        assert!(Modes::parse(&base("spectator_delay_ms=60001")).is_err());
        assert!(Modes::parse(&base("").replace("tick_rate_hz=30", "tick_rate_hz=0")).is_err());
        let twice = format!("{}\n{}", base(""), base(""));
        assert!(Modes::parse(&twice).is_err());
    }
}
