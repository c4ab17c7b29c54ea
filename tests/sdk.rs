//! The server SDK through a real in-process room server: custom messages both ways with the
//! mode's size and rate limits, admission refusals reaching the client typed, and a game that
//! panics on purpose ending only its own room.

mod common;

use common::{next_matching, test_config, within, TestServer};
use tickroom::game::modes::Modes;
use tickroom::game::{
    Ctx, GameError, MetaValue, NoParams, Player, PlayerMetadata, Refusal, Setup, StateCodec,
    StateGame, Viewer,
};
use tickroom::protocol::connect::TransportKind;
use tickroom::protocol::session::SessionEvent;
use tickroom::protocol::ErrorCode;
use tickroom::server::{RoomServerConfig, Server};

/// A game whose players chat; it ends the match on the line "end", panics on the line
/// "panic", and refuses player 13 and anyone whose ticket names them "mallory".
#[derive(Debug, Default)]
struct Fragile {
    tick: u64,
}

impl StateCodec for Fragile {
    type Input = u8;
    type View = u64;
    type ClientMessage = String;
    type ServerMessage = String;
    fn decode_input(bytes: &[u8]) -> Result<u8, GameError> {
        Ok(bytes.first().copied().unwrap_or_default())
    }
    fn encode_input(input: &u8, out: &mut Vec<u8>) {
        out.push(*input);
    }
    fn encode_full(view: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&view.to_le_bytes());
    }
    fn decode_full(bytes: &[u8]) -> Result<u64, GameError> {
        Ok(u64::from_le_bytes(
            bytes.try_into().map_err(|_| GameError::Truncated)?,
        ))
    }
    fn encode_delta(_: &u64, current: &u64, out: &mut Vec<u8>) {
        Self::encode_full(current, out);
    }
    fn decode_delta(_: &u64, bytes: &[u8]) -> Result<u64, GameError> {
        Self::decode_full(bytes)
    }
}

impl StateGame for Fragile {
    type Params = NoParams;
    fn create(_: &Setup<'_, NoParams>) -> Self {
        Fragile::default()
    }
    fn join_attempt(&self, player: &Player<'_>) -> Result<(), Refusal> {
        if player.player_id == 13 {
            return Err(Refusal::new("no player 13 here"));
        }
        if player.metadata.str("name") == Some("mallory") {
            return Err(Refusal::new("banned name"));
        }
        Ok(())
    }
    fn on_join(&mut self, player: &Player<'_>, _: &mut Ctx<String>) {
        if player.metadata.str("name") == Some("slowpoke") {
            // A slow game: this hook takes SLOW_JOIN of CPU, longer than a test's handshake
            // timeout, so the client gives up while the room is seating it.
            let until = std::time::Instant::now() + SLOW_JOIN;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
    }
    fn on_leave(&mut self, _: u8, _: &mut Ctx<String>) {}
    fn apply_input(&mut self, _: u8, _: &u8) {}
    fn on_message(&mut self, slot: u8, line: String, ctx: &mut Ctx<String>) {
        assert_ne!(line, "panic", "the game panics on purpose");
        if line == "end" {
            ctx.end_match(&format!("ended by {slot}"));
            return;
        }
        ctx.broadcast(&format!("{slot}: {line}"));
    }
    fn step(&mut self, _: f32, _: &mut Ctx<String>) {
        self.tick += 1;
    }
    fn view(&self, _: Viewer) -> u64 {
        self.tick
    }
    fn save(&self, out: &mut Vec<u8>) {
        Self::encode_full(&self.tick, out);
    }
    fn restore(_: &Setup<'_, NoParams>, _: u16, bytes: &[u8]) -> Result<Self, GameError> {
        Ok(Fragile {
            tick: Self::decode_full(bytes)?,
        })
    }
}

/// How long the game's join hook takes for a player named "slowpoke".
const SLOW_JOIN: std::time::Duration = std::time::Duration::from_millis(600);

const MODES: &str = "
[[mode]]
name = 'chat'
game = 'fragile'
sync = 'state'
tick_rate_hz = 30
players = 2
start_timeout_s = 0
grace_s = 1
max_message_bytes = 16
message_rate_per_s = 1
message_burst = 2
";

async fn server() -> TestServer {
    let games = Server::builder().state_game::<Fragile>("fragile");
    TestServer::start_with_games(test_config(), Modes::parse(MODES).unwrap(), games.games()).await
}

fn message(e: &SessionEvent) -> Option<String> {
    match e {
        SessionEvent::Message { payload } => Some(String::from_utf8(payload.clone()).unwrap()),
        _ => None,
    }
}

fn refused(e: &SessionEvent) -> Option<(u64, ErrorCode)> {
    match e {
        SessionEvent::Refused { seq, code } => Some((*seq, *code)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_messages_travel_both_ways_within_the_modes_limits() {
    let server = server().await;
    let mut a = server.join(TransportKind::Ws, 1, 500, "chat").await;
    let mut b = server.join(TransportKind::Quic, 2, 500, "chat").await;
    for s in [&mut a, &mut b] {
        next_matching(s, "started", |e| {
            matches!(e, SessionEvent::Started { .. }).then_some(())
        })
        .await;
    }
    assert!(a.handle.message(b"hello".to_vec()).await);
    for s in [&mut a, &mut b] {
        assert_eq!(next_matching(s, "the chat line", message).await, "0: hello");
    }
    // Too big for the mode (16 bytes): refused, typed, and the session goes on.
    assert!(a.handle.message(vec![b'x'; 17]).await);
    let (_, code) = next_matching(&mut a, "a refusal", refused).await;
    assert_eq!(code, ErrorCode::MessageTooLarge);
    // Burst of 2 at 1 per second: "hello" took one token, "one" the other, "two" is refused.
    assert!(a.handle.message(b"one".to_vec()).await);
    assert!(a.handle.message(b"two".to_vec()).await);
    assert_eq!(
        next_matching(&mut b, "the second line", message).await,
        "0: one"
    );
    let (_, code) = next_matching(&mut a, "a rate refusal", refused).await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert_eq!(server.server().shared.metrics.refused_messages.value(), 2);
    // The session is still in the room: snapshots keep coming.
    next_matching(&mut a, "a snapshot", |e| {
        matches!(e, SessionEvent::Snapshot { .. }).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_game_refuses_a_player_with_a_typed_error() {
    let server = server().await;
    let mut refused = server.join(TransportKind::Ws, 13, 600, "chat").await;
    let code = within("the refusal", async {
        loop {
            match refused.events.recv().await {
                Some(SessionEvent::Closed { code }) => return code,
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    assert_eq!(code, Some(ErrorCode::JoinRefused));
    // The seat was not taken: two others fill the room (one after the other, so the second
    // is the one told the room holds two).
    let mut a = server.join(TransportKind::Ws, 1, 600, "chat").await;
    next_matching(&mut a, "the first seated", |e| {
        matches!(e, SessionEvent::Joined(_)).then_some(())
    })
    .await;
    let mut b = server.join(TransportKind::Ws, 2, 600, "chat").await;
    next_matching(&mut b, "started with two", |e| {
        matches!(e, SessionEvent::Started { players: 2, .. }).then_some(())
    })
    .await;
}

/// The ticket's metadata (put there by the gateway) reaches the game's admission hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_metadata_reaches_admission() {
    let server = server().await;
    let named = |name: &str| {
        let mut m = PlayerMetadata::default();
        m.0.insert("name".into(), MetaValue::Str(name.into()));
        m.0.insert("rating".into(), MetaValue::Int(1500));
        m
    };
    let mut mallory = server
        .join_with_metadata(TransportKind::Ws, 5, 650, "chat", named("mallory"))
        .await;
    let code = within("the refusal", async {
        loop {
            match mallory.events.recv().await {
                Some(SessionEvent::Closed { code }) => return code,
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    assert_eq!(code, Some(ErrorCode::JoinRefused));
    let mut alice = server
        .join_with_metadata(TransportKind::Ws, 6, 650, "chat", named("alice"))
        .await;
    next_matching(&mut alice, "alice seated", |e| {
        matches!(e, SessionEvent::Joined(_)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_game_ends_only_its_own_room() {
    let server = server().await;
    let mut victim = server.join(TransportKind::Ws, 1, 700, "chat").await;
    let mut bystander = server.join(TransportKind::Ws, 2, 701, "chat").await;
    for s in [&mut victim, &mut bystander] {
        next_matching(s, "a snapshot", |e| {
            matches!(e, SessionEvent::Snapshot { .. }).then_some(())
        })
        .await;
    }
    assert!(victim.handle.message(b"panic".to_vec()).await);
    let code = within("the room's end", async {
        loop {
            match victim.events.recv().await {
                Some(SessionEvent::Closed { code }) => return code,
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    assert_eq!(code, Some(ErrorCode::Internal));
    // The metric is bumped right after the players are told: poll it with a deadline.
    let metrics = &server.server().shared.metrics;
    within("the panic metric", async {
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(5));
        while metrics.game_panics.value("chat") == 0 {
            poll.tick().await;
        }
    })
    .await;
    assert_eq!(metrics.game_panics.value("chat"), 1);
    // The other room of the same game goes on ticking.
    let before = next_matching(&mut bystander, "a snapshot", |e| match e {
        SessionEvent::Snapshot { tick, .. } => Some(*tick),
        _ => None,
    })
    .await;
    let after = next_matching(&mut bystander, "a later snapshot", |e| match e {
        SessionEvent::Snapshot { tick, .. } if *tick > before => Some(*tick),
        _ => None,
    })
    .await;
    assert!(after > before);
}

/// The end of a match reaches a player who is still sending: the server must not drop the
/// socket with the player's inputs unread (a TCP reset would discard `MatchEnded` and the
/// close in flight to the player).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_player_still_gets_the_result_and_the_close() {
    // Rate limits out of the way: the player sends as fast as it can.
    let config = RoomServerConfig {
        session_message_rate_per_s: 1_000_000,
        session_message_burst: 1_000_000,
        ..test_config()
    };
    let games = Server::builder().state_game::<Fragile>("fragile");
    let server =
        TestServer::start_with_games(config, Modes::parse(MODES).unwrap(), games.games()).await;
    for round in 0..10u64 {
        let room = 800 + round;
        let mut busy = server.join(TransportKind::Ws, 1, room, "chat").await;
        let mut ender = server.join(TransportKind::Ws, 2, room, "chat").await;
        for s in [&mut busy, &mut ender] {
            next_matching(s, "started", |e| {
                matches!(e, SessionEvent::Started { .. }).then_some(())
            })
            .await;
        }
        let handle = busy.handle.clone();
        let flood = tokio::spawn(async move { while handle.input(vec![1; 64]).await {} });
        assert!(ender.handle.message(b"end".to_vec()).await);
        let mut ended = None;
        let code = within("the busy player's close", async {
            loop {
                match busy.events.recv().await {
                    Some(SessionEvent::MatchEnded { result }) => ended = Some(result),
                    Some(SessionEvent::Closed { code }) => return code,
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await;
        flood.abort();
        let ended = ended.unwrap_or_else(|| panic!("round {round}: no MatchEnded"));
        assert!(ended.starts_with(b"ended by "), "round {round}");
        assert_eq!(code, Some(ErrorCode::RoomClosed), "round {round}");
    }
}

/// A handshake that times out while the room is seating the player must not leave the
/// session and its seat behind: the seat is detached and freed after the grace period (it
/// used to stay bound to the closed connection, so it never expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_times_out_during_seating_leaves_no_session_behind() {
    let config = RoomServerConfig {
        handshake_timeout: SLOW_JOIN / 2,
        ..test_config()
    };
    let games = Server::builder().state_game::<Fragile>("fragile");
    let server =
        TestServer::start_with_games(config, Modes::parse(MODES).unwrap(), games.games()).await;
    let mut name = PlayerMetadata::default();
    name.0
        .insert("name".into(), MetaValue::Str("slowpoke".into()));
    let mut slow = server
        .join_with_metadata(TransportKind::Ws, 1, 900, "chat", name)
        .await;
    let code = within("the handshake timeout", async {
        loop {
            match slow.events.recv().await {
                Some(SessionEvent::Closed { code }) => return code,
                Some(SessionEvent::Joined(_)) => panic!("joined despite the timeout"),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    assert_eq!(code, Some(ErrorCode::HandshakeTimeout));
    // The room seated the session after the client gave up; it must go within the grace
    // period (1 s in this mode), not stay forever.
    let sessions = &server.server().shared.sessions;
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(20));
    within("the room to seat the session", async {
        while sessions.is_empty() {
            poll.tick().await;
        }
    })
    .await;
    within("the orphan session to go", async {
        while !sessions.is_empty() {
            poll.tick().await;
        }
    })
    .await;
}
