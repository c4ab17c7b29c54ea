//! The room core with fake time and fake connections (`u32`): joins, leaves, grace expiry,
//! resume, tick catch-up, lockstep deadlines, custom messages, admission, per-player views,
//! match end and a panicking game, each without a socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use tickroom_game::modes::Modes;
use tickroom_game::{
    ArenaLockstep, Ctx, GameError, Lobby, LockstepGame, NoParams, Player, Refusal, Setup,
    StateCodec, StateGame, Viewer,
};
use tickroom_protocol::codec::decode_server;
use tickroom_protocol::{ErrorCode, ServerMsg, SPECTATOR_SLOT};

use super::*;
use crate::room::lockstep::LockstepSim;
use crate::room::state::StateSim;

/// A state game made to be probed: it refuses player 13, ends the match on the message
/// "end", panics on "panic", shows each player a view of its own (`[slot, tick]`), and
/// answers a time-up with the result "time".
#[derive(Debug, Default)]
struct Probe {
    tick: u64,
    joined: Vec<u8>,
}

impl StateCodec for Probe {
    type Input = u8;
    type View = Vec<u8>;
    type ClientMessage = String;
    type ServerMessage = String;
    fn decode_input(bytes: &[u8]) -> Result<u8, GameError> {
        Ok(bytes.first().copied().unwrap_or_default())
    }
    fn encode_input(input: &u8, out: &mut Vec<u8>) {
        out.push(*input);
    }
    fn encode_full(view: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(view);
    }
    fn decode_full(bytes: &[u8]) -> Result<Vec<u8>, GameError> {
        Ok(bytes.to_vec())
    }
    fn encode_delta(_: &Vec<u8>, current: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(current);
    }
    fn decode_delta(_: &Vec<u8>, bytes: &[u8]) -> Result<Vec<u8>, GameError> {
        Ok(bytes.to_vec())
    }
}

impl StateGame for Probe {
    type Params = NoParams;
    const PER_PLAYER_VIEWS: bool = true;
    fn create(_: &Setup<'_, NoParams>) -> Self {
        Probe::default()
    }
    fn join_attempt(&self, player: &Player<'_>) -> Result<(), Refusal> {
        if player.player_id == 13 {
            return Err(Refusal::new("unlucky"));
        }
        Ok(())
    }
    fn on_join(&mut self, player: &Player<'_>, ctx: &mut Ctx<String>) {
        self.joined.push(player.slot);
        ctx.broadcast(&format!("hello {}", player.slot));
    }
    fn on_leave(&mut self, slot: u8, _: &mut Ctx<String>) {
        self.joined.retain(|s| *s != slot);
    }
    fn apply_input(&mut self, _: u8, _: &u8) {}
    fn on_message(&mut self, slot: u8, msg: String, ctx: &mut Ctx<String>) {
        match msg.as_str() {
            "end" => ctx.end_match(&format!("won by {slot}")),
            "panic" => panic!("the probe panics on purpose"),
            other => ctx.send(slot, &format!("echo {other}")),
        }
    }
    fn step(&mut self, _: f32, _: &mut Ctx<String>) {
        self.tick += 1;
    }
    fn view(&self, viewer: Viewer) -> Vec<u8> {
        match viewer {
            Viewer::Slot(slot) => vec![slot, self.tick as u8],
            Viewer::Everyone => vec![255, self.tick as u8],
            Viewer::Spectator => vec![254, self.tick as u8],
        }
    }
    fn on_time_up(&mut self, ctx: &mut Ctx<String>) {
        ctx.end_match(&"time".to_string());
    }
    fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tick.to_le_bytes());
    }
    fn restore(_: &Setup<'_, NoParams>, _: u16, bytes: &[u8]) -> Result<Self, GameError> {
        let tick = u64::from_le_bytes(bytes.try_into().map_err(|_| GameError::Truncated)?);
        Ok(Probe {
            tick,
            joined: Vec::new(),
        })
    }
}

const TICK: Duration = Duration::from_millis(50);

fn mode(sync: &str, extra: &str) -> Arc<ModeConfig> {
    let text = format!(
        "[[mode]]\nname='m'\ngame='g'\nsync='{sync}'\ntick_rate_hz=20\nplayers=2\nstart_timeout_s=10\ngrace_s=2\nmatch_duration_s=60\n{extra}"
    );
    Arc::new(Modes::parse(&text).unwrap().by_name("m").unwrap().clone())
}

/// A state-sync room of game `G` (no parameters) in the test mode, with `extra` mode lines.
fn state_room<G: StateGame<Params = NoParams>>(t0: Instant, extra: &str) -> RoomCore<u32> {
    let mode = mode("state", extra);
    let setup = Setup {
        mode: "m",
        max_players: mode.players,
        tick_rate_hz: mode.tick_rate_hz,
        seed: 1,
        params: &NoParams {},
    };
    RoomCore::new(7, mode.clone(), Box::new(StateSim::<G>::new(&setup)), t0)
}

fn probe_room(t0: Instant, extra: &str) -> RoomCore<u32> {
    state_room::<Probe>(t0, extra)
}

fn lockstep_room(t0: Instant, server_sim: bool) -> RoomCore<u32> {
    lockstep_room_with(t0, server_sim, "")
}

/// A lockstep room in the test mode with `extra` mode lines (its spectator delay applied).
fn lockstep_room_with(t0: Instant, server_sim: bool, extra: &str) -> RoomCore<u32> {
    let mode = mode("lockstep", extra);
    let setup = Setup {
        mode: "m",
        max_players: 2,
        tick_rate_hz: 20,
        seed: 9,
        params: &NoParams {},
    };
    RoomCore::new(
        9,
        mode.clone(),
        Box::new(
            LockstepSim::<ArenaLockstep>::new(&setup, server_sim)
                .with_spectator_delay(mode.spectator_delay_frames()),
        ),
        t0,
    )
}

fn seating(session_id: u64, player_id: u64) -> Seating {
    Seating {
        session_id,
        player_id,
        resume_counter: 0,
        next_seq: 1,
        metadata: PlayerMetadata::default(),
        spectator: false,
    }
}

fn spectator(session_id: u64, player_id: u64) -> Seating {
    Seating {
        spectator: true,
        ..seating(session_id, player_id)
    }
}

/// The effects since the last call, with sent bytes decoded.
#[derive(Debug, PartialEq)]
enum Seen {
    Msg(u32, ServerMsg),
    Close(u32, ErrorCode),
    Ended(SessionId),
    Room(RoomEnd),
    SeatsOpen(usize),
}

fn seen(room: &mut RoomCore<u32>) -> Vec<Seen> {
    room.drain_effects()
        .map(|e| match e {
            Effect::Send { to, bytes, .. } => Seen::Msg(to, decode_server(&bytes).unwrap()),
            Effect::Close { to, code } => Seen::Close(to, code),
            Effect::SessionEnded { session_id } => Seen::Ended(session_id),
            Effect::RoomEnded(end) => Seen::Room(end),
            Effect::SeatsOpen { free } => Seen::SeatsOpen(free),
        })
        .collect()
}

fn messages_to(effects: &[Seen], conn: u32) -> Vec<&ServerMsg> {
    effects
        .iter()
        .filter_map(|e| match e {
            Seen::Msg(to, m) if *to == conn => Some(m),
            _ => None,
        })
        .collect()
}

fn kinds(msgs: &[&ServerMsg]) -> Vec<&'static str> {
    msgs.iter()
        .map(|m| match m {
            ServerMsg::Welcome(_) => "welcome",
            ServerMsg::Started { .. } => "started",
            ServerMsg::Snapshot { .. } => "snapshot",
            ServerMsg::Frame { .. } => "frame",
            ServerMsg::Message { .. } => "message",
            ServerMsg::MatchEnded { .. } => "match_ended",
            ServerMsg::Kicked { .. } => "kicked",
            ServerMsg::Refused { .. } => "refused",
            ServerMsg::Desync { .. } => "desync",
            _ => "other",
        })
        .collect()
}

/// Two players seated at t0 (the room starts full).
fn full_probe_room(t0: Instant) -> RoomCore<u32> {
    let mut room = probe_room(t0, "");
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    seen(&mut room);
    room
}

#[test]
fn joins_are_welcomed_and_a_full_room_starts() {
    let t0 = Instant::now();
    let mut room = probe_room(t0, "");
    assert_eq!(room.join(t0, seating(100, 1), 1).unwrap().slot, 0);
    let first = seen(&mut room);
    assert_eq!(kinds(&messages_to(&first, 1)), ["welcome", "message"]);
    assert_eq!(room.join(t0, seating(200, 2), 2).unwrap().slot, 1);
    let second = seen(&mut room);
    // The newcomer gets its welcome, the game's greeting (to both), then the room starts.
    assert_eq!(
        kinds(&messages_to(&second, 2)),
        ["welcome", "message", "started"]
    );
    assert_eq!(kinds(&messages_to(&second, 1)), ["message", "started"]);
    assert_eq!(
        room.join(t0, seating(300, 3), 3).unwrap_err().code,
        ErrorCode::RoomFull
    );
}

#[test]
fn admission_refusal_reaches_the_client_typed_and_leaves_no_trace() {
    let t0 = Instant::now();
    let mut room = probe_room(t0, "");
    let refusal = room.join(t0, seating(100, 13), 1).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::JoinRefused);
    assert_eq!(refusal.detail, "unlucky");
    assert_eq!(room.occupied(), 0);
    assert!(seen(&mut room).is_empty());
}

#[test]
fn each_player_gets_its_own_view() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.tick(t0 + TICK);
    let effects = seen(&mut room);
    for (conn, slot) in [(1u32, 0u8), (2, 1)] {
        let snapshots: Vec<Vec<u8>> = messages_to(&effects, conn)
            .into_iter()
            .filter_map(|m| match m {
                ServerMsg::Snapshot { payload, .. } => Some(payload.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(snapshots, [vec![slot, 1]], "conn {conn}");
    }
}

#[test]
fn a_leave_frees_the_seat_and_an_empty_room_ends() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.leave(100);
    assert_eq!(
        seen(&mut room),
        [Seen::Close(1, ErrorCode::Kicked), Seen::Ended(100)]
    );
    room.leave(200);
    seen(&mut room);
    room.tick(t0 + TICK);
    let effects = seen(&mut room);
    assert!(room.is_ended());
    assert_eq!(
        effects.last(),
        Some(&Seen::Room(RoomEnd {
            reason: EndReason::Empty,
            result: None
        }))
    );
}

#[test]
fn an_operator_kick_tells_the_player_its_code_and_frees_only_its_seat() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.detach(t0, 200, &2);
    let seats = room.seats();
    assert!(seats.started);
    assert_eq!(
        seats.seats,
        [
            SeatView {
                slot: 0,
                player_id: 1,
                connected: true
            },
            SeatView {
                slot: 1,
                player_id: 2,
                connected: false
            }
        ]
    );
    seen(&mut room);
    assert!(!room.kick(3, ErrorCode::Kicked), "not seated");
    assert!(seen(&mut room).is_empty());
    assert!(room.kick(1, ErrorCode::Desync));
    assert_eq!(
        seen(&mut room),
        [
            Seen::Msg(
                1,
                ServerMsg::Kicked {
                    code: ErrorCode::Desync
                }
            ),
            Seen::Close(1, ErrorCode::Desync),
            Seen::Ended(100)
        ]
    );
    assert_eq!(room.occupied(), 1);
    assert!(!room.is_ended());
    // A player in grace is kicked too (no connection to tell).
    assert!(room.kick(2, ErrorCode::Kicked));
    assert_eq!(seen(&mut room), [Seen::Ended(200)]);
    assert!(room.seats().seats.is_empty());
}

#[test]
fn an_operator_close_ends_the_room_with_room_closed() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.close();
    let effects = seen(&mut room);
    assert!(room.is_ended());
    for conn in [1, 2] {
        assert_eq!(
            messages_to(&effects, conn),
            [&ServerMsg::Kicked {
                code: ErrorCode::RoomClosed
            }]
        );
        assert!(effects.contains(&Seen::Close(conn, ErrorCode::RoomClosed)));
    }
    assert_eq!(
        effects.last(),
        Some(&Seen::Room(RoomEnd {
            reason: EndReason::Closed,
            result: None
        }))
    );
    room.close();
    assert!(seen(&mut room).is_empty(), "closing twice does nothing");
}

#[test]
fn a_dropped_seat_is_kept_for_the_grace_period_then_freed() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.detach(t0, 100, &1);
    assert_eq!(room.occupied(), 2);
    // Just inside the grace period (2 s): the seat stays, and no snapshot goes to conn 1.
    room.tick(t0 + Duration::from_millis(1999));
    let effects = seen(&mut room);
    assert!(messages_to(&effects, 1).is_empty());
    assert_eq!(room.occupied(), 2);
    room.tick(t0 + Duration::from_secs(2));
    let effects = seen(&mut room);
    assert!(effects.contains(&Seen::Ended(100)));
    assert_eq!(room.occupied(), 1);
}

#[test]
fn a_resume_reattaches_the_seat_and_a_stale_detach_is_ignored() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.detach(t0, 100, &1);
    let seated = room.resume(seating(100, 1), 0, 11).unwrap();
    assert_eq!(seated.slot, 0);
    let effects = seen(&mut room);
    let to_new = messages_to(&effects, 11);
    assert!(matches!(to_new[0], ServerMsg::Welcome(w) if w.resumed && w.slot == 0));
    assert_eq!(kinds(&to_new), ["welcome", "started"]);
    // The old connection's late detach must not take the seat off the new one.
    room.detach(t0, 100, &1);
    room.tick(t0 + Duration::from_secs(5));
    assert!(!seen(&mut room).contains(&Seen::Ended(100)));
    assert_eq!(
        room.resume(seating(999, 1), 0, 12).unwrap_err().code,
        ErrorCode::SessionExpired
    );
}

/// A player who joins again with a fresh ticket (a new session in the same seat) numbers its
/// inputs from 1: they are applied and acknowledged, not skipped as older than the old
/// session's.
#[test]
fn a_new_session_in_the_same_seat_has_its_inputs_applied() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    let input = |n: u8| vec![serde_bytes::ByteBuf::from(vec![n])];
    room.input(100, 50, 0, &input(1), t0);
    room.join(t0, seating(101, 1), 3).unwrap();
    seen(&mut room);
    room.input(101, 1, 0, &input(2), t0);
    room.tick(t0 + TICK);
    let acks: Vec<u64> = messages_to(&seen(&mut room), 3)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Snapshot { ack_seq, .. } => Some(*ack_seq),
            _ => None,
        })
        .collect();
    assert_eq!(acks, [1], "the new session's first input was applied");
}

/// A tick that answers players' inputs measures, per player, the wait from its oldest
/// unanswered input's arrival; a tick with no new input measures nothing.
#[test]
fn ticks_measure_the_wait_from_input_to_answer() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    let input = |n: u8| vec![serde_bytes::ByteBuf::from(vec![n])];
    let earlier = Instant::now();
    room.input(100, 1, 0, &input(1), earlier);
    room.input(100, 2, 0, &input(2), Instant::now());
    room.input(200, 1, 0, &input(3), Instant::now());
    room.tick(t0 + TICK);
    let waits: Vec<Duration> = room.drain_input_waits().collect();
    assert_eq!(waits.len(), 2, "one wait per player with new input");
    assert!(waits.iter().all(|w| *w <= earlier.elapsed()), "{waits:?}");
    room.tick(t0 + 2 * TICK);
    assert_eq!(room.drain_input_waits().count(), 0);
}

#[test]
fn a_late_room_catches_up_three_ticks_then_skips() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    // The first tick was due at t0 + 50 ms; at t0 + 500 ms ten are due.
    let now = t0 + Duration::from_millis(500);
    assert_eq!(room.due_ticks(now), MAX_CATCH_UP_TICKS);
    for _ in 0..MAX_CATCH_UP_TICKS {
        room.tick(now);
    }
    assert_eq!(room.skip_missed(now), 7);
    assert!(room.next_tick_at() > now);
    assert_eq!(room.due_ticks(now), 0);
}

#[test]
fn custom_messages_reach_the_game_and_bad_ones_are_refused() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.message(100, 5, b"hi");
    let effects = seen(&mut room);
    assert_eq!(
        messages_to(&effects, 1),
        [&ServerMsg::Message {
            payload: b"echo hi".to_vec()
        }]
    );
    assert!(messages_to(&effects, 2).is_empty());
    // Not UTF-8: the game's String message type cannot decode it.
    room.message(100, 6, &[0xff, 0xfe]);
    assert_eq!(
        seen(&mut room),
        [Seen::Msg(
            1,
            ServerMsg::Refused {
                seq: 6,
                code: ErrorCode::BadMessage
            }
        )]
    );
}

#[test]
fn the_game_ends_the_match_with_a_result_for_every_player() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.message(200, 5, b"end");
    let effects = seen(&mut room);
    let result = b"won by 1".to_vec();
    for conn in [1, 2] {
        let msgs = messages_to(&effects, conn);
        assert_eq!(kinds(&msgs), ["match_ended", "kicked"]);
        assert_eq!(
            msgs[0],
            &ServerMsg::MatchEnded {
                result: result.clone()
            }
        );
        assert!(effects.contains(&Seen::Close(conn, ErrorCode::RoomClosed)));
    }
    assert_eq!(
        effects.last(),
        Some(&Seen::Room(RoomEnd {
            reason: EndReason::MatchOver,
            result: Some(MatchOutcome {
                result,
                players: vec![(1, 0), (2, 1)],
            }),
        }))
    );
    assert!(room.is_ended());
    assert_eq!(room.due_ticks(t0 + Duration::from_secs(10)), 0);
}

#[test]
fn the_match_duration_asks_the_game_for_a_result() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.tick(t0 + Duration::from_secs(60));
    let effects = seen(&mut room);
    assert!(matches!(
        effects.last(),
        Some(Seen::Room(RoomEnd { result: Some(MatchOutcome { result, .. }), .. })) if result == b"time"
    ));
}

#[test]
fn a_panicking_game_ends_only_its_room_with_internal() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    let mut other = full_probe_room(t0);
    assert!(room.guarded(|r| r.message(100, 5, b"panic")).is_none());
    let effects = seen(&mut room);
    for conn in [1, 2] {
        assert_eq!(
            messages_to(&effects, conn),
            [&ServerMsg::Kicked {
                code: ErrorCode::Internal
            }]
        );
    }
    assert!(matches!(
        effects.last(),
        Some(Seen::Room(RoomEnd {
            reason: EndReason::GamePanicked,
            result: None
        }))
    ));
    // Another room of the same game goes on.
    other.tick(t0 + TICK);
    assert!(!other.is_ended());
    assert_eq!(kinds(&messages_to(&seen(&mut other), 1)), ["snapshot"]);
}

#[test]
fn lockstep_closes_frames_at_the_deadline_with_empty_inputs_for_the_late() {
    let t0 = Instant::now();
    let mut room = lockstep_room(t0, false);
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    seen(&mut room);
    room.frame_input(100, 1, vec![1, 2, 3]);
    room.tick(t0 + TICK);
    let effects = seen(&mut room);
    assert_eq!(
        messages_to(&effects, 2),
        [&ServerMsg::Frame {
            n: 1,
            inputs: vec![ByteBuf::from(vec![1, 2, 3]), ByteBuf::new()]
        }]
    );
    // An input for a closed frame is late; it is counted, not applied.
    room.frame_input(200, 1, vec![9, 9, 9]);
    assert_eq!(room.take_counters().late_frame_inputs, 1);
    // A late joiner (resume from frame 0) gets the log from frame 1.
    room.detach(t0, 200, &2);
    room.resume(seating(200, 2), 0, 22).unwrap();
    let effects = seen(&mut room);
    assert_eq!(
        kinds(&messages_to(&effects, 22)),
        ["welcome", "started", "frame"]
    );
}

#[test]
fn with_server_sim_only_the_desynced_player_is_told() {
    let t0 = Instant::now();
    let mut room = lockstep_room(t0, true);
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    let mut now = t0;
    for _ in 0..3 {
        now += TICK;
        room.tick(now);
    }
    seen(&mut room);
    // What an honest client computes after frame 3 of empty inputs.
    let mut sim = ArenaLockstep::new(2, 9);
    for f in 1..=3 {
        sim.step(f, &[Default::default(), Default::default()]);
    }
    room.checksum(100, 3, sim.checksum());
    room.checksum(200, 3, sim.checksum() ^ 1);
    let effects = seen(&mut room);
    assert_eq!(effects, [Seen::Msg(2, ServerMsg::Desync { frame: 3 })]);
    assert_eq!(room.take_counters().desyncs, 1);
}

#[test]
fn a_relay_judges_a_frame_once_everyone_reported() {
    let t0 = Instant::now();
    let mut room = lockstep_room(t0, false);
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    room.tick(t0 + TICK);
    room.tick(t0 + TICK * 2);
    seen(&mut room);
    room.checksum(100, 2, 7);
    assert!(seen(&mut room).is_empty(), "one report cannot be judged");
    room.checksum(200, 2, 7);
    assert!(seen(&mut room).is_empty(), "agreement is no desync");
}

#[test]
fn a_long_frame_log_reaches_a_resumer_in_paced_chunks_and_in_order() {
    let t0 = Instant::now();
    let mut room = lockstep_room(t0, false);
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    let mut now = t0;
    // 200 frames of 1,000-byte inputs: about 200 KB of log.
    for f in 1..=200 {
        room.frame_input(100, f, vec![7; 1000]);
        now += TICK;
        room.tick(now);
    }
    room.detach(now, 200, &2);
    seen(&mut room);
    room.resume(seating(200, 2), 0, 22).unwrap();
    let mut frames = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..40 {
        let effects = seen(&mut room);
        let mut bytes = 0;
        for m in messages_to(&effects, 22) {
            if let ServerMsg::Frame { n, inputs } = m {
                frames.push(*n);
                bytes += inputs.iter().map(|i| i.len()).sum::<usize>();
            }
        }
        sizes.push(bytes);
        now += TICK;
        room.tick(now);
    }
    // Every frame, once, in order, although new ones closed during the catch-up.
    let newest = *frames.last().unwrap();
    assert!(newest > 200);
    assert_eq!(frames, (1..=newest).collect::<Vec<u64>>());
    // No tick sent much more than the chunk size.
    let limit = crate::room::lockstep::CATCH_UP_BYTES_PER_TICK + 2 * 1000;
    assert!(sizes.iter().all(|b| *b <= limit), "{sizes:?}");
    // The player who stayed got each new frame once, in order.
    let effects = seen(&mut room);
    assert_eq!(kinds(&messages_to(&effects, 1)), ["frame"]);
}

/// The snapshot ticks of `effects`, for connection `conn`.
fn snapshot_ticks(effects: &[Seen], conn: u32) -> Vec<u64> {
    messages_to(effects, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Snapshot { tick, .. } => Some(*tick),
            _ => None,
        })
        .collect()
}

#[test]
fn a_degraded_room_steps_every_tick_but_snapshots_every_nth_within_its_floor() {
    let t0 = Instant::now();
    // 20 Hz with a floor of 5 Hz: at most ÷4, whatever the worker asks.
    let mut room = probe_room(t0, "min_snapshot_hz=5");
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    seen(&mut room);
    assert_eq!(room.set_snapshot_divisor(32), 4);
    let mut ticks = Vec::new();
    for _ in 0..8 {
        let now = room.next_tick_at();
        room.tick(now);
        ticks.extend(snapshot_ticks(&seen(&mut room), 1));
    }
    assert_eq!(
        ticks,
        [4, 8],
        "the game stepped 8 times, snapshots on every 4th"
    );
    // Back to full rate: every tick again.
    assert_eq!(room.set_snapshot_divisor(1), 1);
    for _ in 0..3 {
        let now = room.next_tick_at();
        room.tick(now);
        ticks.extend(snapshot_ticks(&seen(&mut room), 1));
    }
    assert_eq!(ticks, [4, 8, 9, 10, 11]);
    // A mode whose floor is its tick rate never degrades.
    let mut strict = probe_room(t0, "min_snapshot_hz=20");
    assert_eq!(strict.set_snapshot_divisor(8), 1);
}

/// The snapshots of `effects` for connection `conn`, as (tick, ack_seq, baseline).
fn snapshots(effects: &[Seen], conn: u32) -> Vec<(u64, u64, u64)> {
    messages_to(effects, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Snapshot {
                tick,
                ack_seq,
                baseline,
                ..
            } => Some((*tick, *ack_seq, *baseline)),
            _ => None,
        })
        .collect()
}

/// Ticks `room` `n` times on its schedule and returns everything it sent.
fn run_ticks(room: &mut RoomCore<u32>, n: usize) -> Vec<Seen> {
    let mut effects = Vec::new();
    for _ in 0..n {
        let now = room.next_tick_at();
        room.tick(now);
        effects.extend(seen(room));
    }
    effects
}

/// A lobby of two seated players whose views no longer change goes quiet after the repeats,
/// and speaks again for a change (to everyone), a new input acknowledgement (to its sender
/// only, as a delta on the acknowledged view) and a resume (a full view on the new connection).
#[test]
fn a_quiet_player_is_sent_nothing_until_its_view_or_acknowledgement_changes() {
    let t0 = Instant::now();
    let mut room = state_room::<Lobby>(t0, "");
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    seen(&mut room);
    let first = run_ticks(&mut room, 10);
    let ticks: Vec<u64> = snapshots(&first, 1).iter().map(|s| s.0).collect();
    let repeats = u64::from(crate::room::state::QUIET_REPEATS);
    assert_eq!(ticks, (1..=1 + repeats).collect::<Vec<_>>());
    assert_eq!(snapshots(&first, 2).len(), ticks.len());
    assert!(snapshots(&run_ticks(&mut room, 20), 1).is_empty(), "quiet");

    // Player 1 acknowledges tick 2 and marks itself ready: the view changed for everyone.
    let ready = vec![ByteBuf::from(vec![1])];
    room.input(100, 1, 2, &ready, t0);
    let changed = run_ticks(&mut room, 10);
    let to_sender = snapshots(&changed, 1);
    assert_eq!(to_sender.len(), 1 + repeats as usize);
    let (tick, ack, baseline) = to_sender[0];
    assert_eq!((ack, baseline), (1, 2), "a delta on the acknowledged view");
    assert_eq!(
        snapshots(&changed, 2)[0],
        (tick, 0, 0),
        "never acknowledged: full"
    );
    assert_eq!(snapshots(&changed, 2).len(), to_sender.len());

    // The same input again (an idle client's redundant copy) is already applied; a new one
    // that changes nothing is acknowledged to its sender alone. Its baseline is the tick it
    // acknowledged, inside the range the unchanged view covered.
    room.input(100, 2, tick + 5, &ready, t0);
    let acked = run_ticks(&mut room, 10);
    assert_eq!(
        snapshots(&acked, 1)[0].1..=snapshots(&acked, 1)[0].2,
        2..=tick + 5
    );
    assert!(
        snapshots(&acked, 2).is_empty(),
        "nothing changed for player 2"
    );

    // A resume on a new connection gets the full view at once.
    room.detach(t0, 200, &2);
    room.resume(seating(200, 2), 0, 22).unwrap();
    seen(&mut room);
    let resumed = snapshots(&run_ticks(&mut room, 1), 22);
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].2, 0, "full");
}

/// A running match of a `backfill` mode that loses a player for good asks for a replacement
/// (its open seats); before it starts, without `backfill`, or when the last player goes, it
/// does not.
#[test]
fn a_backfill_room_reports_a_seat_lost_for_good() {
    let opened = |effects: &[Seen]| {
        effects
            .iter()
            .filter_map(|e| match e {
                Seen::SeatsOpen(free) => Some(*free),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let t0 = Instant::now();
    for (extra, expect) in [("backfill=true", vec![1]), ("", vec![])] {
        let mut room = probe_room(t0, extra);
        room.join(t0, seating(100, 1), 1).unwrap();
        room.join(t0, seating(200, 2), 2).unwrap();
        seen(&mut room);
        // The grace period (2 s) of a dropped player runs out mid-match.
        room.detach(t0, 200, &2);
        room.tick(t0 + Duration::from_secs(3));
        assert_eq!(opened(&seen(&mut room)), expect, "{extra:?}");
        // The last player leaving ends the room: nothing to fill.
        room.leave(100);
        assert_eq!(opened(&seen(&mut room)), Vec::<usize>::new(), "{extra:?}");
    }
    // Before the match starts, a seat lost is not a seat to backfill.
    let mut waiting = probe_room(t0, "backfill=true");
    waiting.join(t0, seating(100, 1), 1).unwrap();
    waiting.leave(100);
    assert!(opened(&seen(&mut waiting)).is_empty());
}

#[test]
fn rooms_aligned_to_one_grid_tick_at_the_same_instants() {
    let epoch = Instant::now();
    let mut a = probe_room(epoch + Duration::from_millis(7), "");
    let mut b = probe_room(epoch + Duration::from_millis(31), "");
    a.align_ticks_to(epoch);
    b.align_ticks_to(epoch);
    assert_eq!(a.next_tick_at(), epoch + TICK);
    assert_eq!(b.next_tick_at(), epoch + TICK);
    // A room that starts between two grid points (its last player joined) stays on the grid.
    let joined = epoch + TICK + Duration::from_millis(12);
    a.tick(epoch + TICK);
    a.join(joined, seating(100, 1), 1).unwrap();
    a.join(joined, seating(200, 2), 2).unwrap();
    assert_eq!(a.next_tick_at(), epoch + TICK * 2);
    // Without alignment the grid starts at the room's creation.
    let c = probe_room(epoch + Duration::from_millis(7), "");
    assert_eq!(c.next_tick_at(), epoch + Duration::from_millis(7) + TICK);
}

/// The frame numbers of `effects` for connection `conn`.
fn frames_to(effects: &[Seen], conn: u32) -> Vec<u64> {
    messages_to(effects, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Frame { n, .. } => Some(*n),
            _ => None,
        })
        .collect()
}

#[test]
fn a_spectator_watches_outside_the_seats_within_the_modes_limit() {
    let t0 = Instant::now();
    let mut room = probe_room(t0, "spectators=1");
    // A spectator neither takes a seat nor starts the room.
    assert_eq!(
        room.join(t0, spectator(300, 3), 3).unwrap().slot,
        SPECTATOR_SLOT
    );
    let effects = seen(&mut room);
    match messages_to(&effects, 3)[..] {
        [ServerMsg::Welcome(w)] => assert_eq!((w.slot, w.player_id), (SPECTATOR_SLOT, 3)),
        ref other => panic!("expected a welcome, got {other:?}"),
    }
    assert_eq!(room.occupied(), 0);
    let refusal = room.join(t0, spectator(400, 4), 4).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::RoomFull);
    // Both seats are still free for players; the spectator hears the start, not the game's
    // broadcasts to players.
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    assert_eq!(kinds(&messages_to(&seen(&mut room), 3)), ["started"]);
    // Full snapshots of the spectator view, every tick it changes.
    let effects = run_ticks(&mut room, 2);
    let full: Vec<(u64, Vec<u8>)> = messages_to(&effects, 3)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Snapshot {
                tick,
                baseline: 0,
                payload,
                ..
            } => Some((*tick, payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(full, [(1, vec![254, 1]), (2, vec![254, 2])]);
    // What a spectator's session could send reaches no game hook.
    room.input(300, 1, 1, &[ByteBuf::from(vec![1])], t0);
    room.message(300, 5, b"end");
    assert!(seen(&mut room).is_empty());
    assert!(!room.is_ended());
    // An operator can remove a spectator; its place is free again.
    assert!(room.kick(3, ErrorCode::Kicked));
    assert_eq!(
        seen(&mut room),
        [
            Seen::Msg(
                3,
                ServerMsg::Kicked {
                    code: ErrorCode::Kicked
                }
            ),
            Seen::Close(3, ErrorCode::Kicked),
            Seen::Ended(300)
        ]
    );
    room.join(t0, spectator(400, 4), 4).unwrap();
}

#[test]
fn a_spectator_resumes_after_a_drop_and_is_dropped_after_the_grace() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.join(t0, spectator(300, 3), 3).unwrap();
    room.detach(t0, 300, &3);
    seen(&mut room);
    assert!(snapshots(&run_ticks(&mut room, 1), 3).is_empty(), "away");
    let now = room.next_tick_at();
    room.resume(seating(300, 3), 0, 33).unwrap();
    let effects = seen(&mut room);
    match messages_to(&effects, 33)[..] {
        [ServerMsg::Welcome(w), ServerMsg::Started { .. }] => {
            assert!(w.resumed);
            assert_eq!(w.slot, SPECTATOR_SLOT);
        }
        ref other => panic!("expected welcome and started, got {other:?}"),
    }
    assert_eq!(snapshots(&run_ticks(&mut room, 1), 33).len(), 1);
    // Dropped again, and not back within the grace (2 s): its session ends.
    room.detach(now, 300, &33);
    seen(&mut room);
    room.tick(now + Duration::from_secs(3));
    assert!(seen(&mut room).contains(&Seen::Ended(300)));
    let refusal = room.resume(seating(300, 3), 0, 34).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::SessionExpired);
}

#[test]
fn a_room_of_spectators_only_ends_and_tells_them() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.join(t0, spectator(300, 3), 3).unwrap();
    room.leave(100);
    room.leave(200);
    seen(&mut room);
    room.tick(room.next_tick_at());
    let effects = seen(&mut room);
    assert!(room.is_ended(), "spectators do not keep a room alive");
    assert!(effects.contains(&Seen::Msg(
        3,
        ServerMsg::Kicked {
            code: ErrorCode::RoomClosed
        }
    )));
    assert!(effects.contains(&Seen::Close(3, ErrorCode::RoomClosed)));
    assert!(effects.contains(&Seen::Ended(300)));
}

#[test]
fn a_lockstep_spectator_sees_each_frame_only_after_the_delay_and_the_rest_at_the_end() {
    let t0 = Instant::now();
    // 20 Hz and 500 ms: spectators stay 10 frames behind.
    let mut room = lockstep_room_with(t0, false, "spectator_delay_ms=500");
    room.join(t0, seating(100, 1), 1).unwrap();
    room.join(t0, seating(200, 2), 2).unwrap();
    seen(&mut room);
    let effects = run_ticks(&mut room, 15);
    assert_eq!(frames_to(&effects, 1), (1..=15).collect::<Vec<_>>());
    // A spectator arriving at frame 15 gets the log up to frame 5, then one frame a tick.
    room.join(t0, spectator(300, 3), 3).unwrap();
    let mut frames = frames_to(&seen(&mut room), 3);
    for _ in 0..10 {
        frames.extend(frames_to(&run_ticks(&mut room, 1), 3));
        let closed = room.current_tick() - 1;
        assert_eq!(frames.last(), Some(&(closed - 10)), "{frames:?}");
    }
    assert_eq!(frames, (1..=15).collect::<Vec<_>>());
    // The match ends at frame 25: the delay no longer matters, the spectator gets the rest
    // before the end.
    room.close();
    let effects = seen(&mut room);
    let to_spectator = messages_to(&effects, 3);
    let kinds = kinds(&to_spectator);
    assert_eq!(kinds.last(), Some(&"kicked"));
    assert_eq!(frames_to(&effects, 3), (16..=25).collect::<Vec<_>>());
}

/// A room's image restores on another "server" (a fresh core): the game goes on from the
/// image's tick, the match is still started, every seat waits for its player, a resume takes
/// its seat back, and a seat nobody resumes is freed after the grace period.
#[test]
fn a_room_restored_from_its_image_goes_on_and_its_players_resume() {
    use crate::room::core::SessionState;
    use crate::room::image::RoomImage;
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    run_ticks(&mut room, 5);
    let state = |session_id: u64| {
        Some(SessionState {
            key_id: 1,
            nonce: [session_id as u8; 16],
            resume_counter: 2,
            highest_seq: 40,
        })
    };
    let taken = room.next_tick_at();
    let image = room.image(taken, state);
    assert_eq!((image.tick, image.seats.len()), (5, 2));
    assert!(image.played_ms.is_some());
    let image = RoomImage::decode(&image.encode(), 7).unwrap();

    let mode = mode("state", "");
    let setup = Setup {
        mode: "m",
        max_players: mode.players,
        tick_rate_hz: mode.tick_rate_hz,
        seed: 0,
        params: &NoParams {},
    };
    let game = Probe::restore(&setup, image.save_version, &image.game).unwrap();
    let sim = StateSim::with_game(game, &setup).at_tick(image.tick);
    let t1 = taken + Duration::from_secs(10);
    let mut moved: RoomCore<u32> =
        RoomCore::restored(&image, mode.clone(), Box::new(sim), t1).unwrap();
    assert_eq!((moved.occupied(), moved.current_tick()), (2, 5));
    assert!(moved.seats().started);
    moved.resume(seating(100, 1), 4, 11).unwrap();
    let effects = seen(&mut moved);
    match messages_to(&effects, 11)[..] {
        [ServerMsg::Welcome(w), ServerMsg::Started { .. }] => {
            assert!(w.resumed);
            assert_eq!((w.slot, w.tick), (0, 5));
        }
        ref other => panic!("expected welcome and started, got {other:?}"),
    }
    // The game steps on from tick 5; the player that came back gets a full view.
    moved.tick(moved.next_tick_at());
    let effects = seen(&mut moved);
    assert_eq!(snapshots(&effects, 11), [(6, 0, 0)]);
    // Player 2 never comes back: freed after the grace period (2 s) from the takeover.
    moved.tick(t1 + Duration::from_secs(3));
    assert!(seen(&mut moved).contains(&Seen::Ended(200)));
    assert_eq!(moved.occupied(), 1);
    // An image of a seat beyond the mode's players is refused, typed.
    let mut broken = image.clone();
    broken.seats[0].slot = 9;
    let game = Probe::restore(&setup, image.save_version, &image.game).unwrap();
    let sim = StateSim::with_game(game, &setup);
    assert!(RoomCore::<u32>::restored(&broken, mode, Box::new(sim), t1).is_err());
}

/// A held room does not tick (its game does not step) until released; a room that moved
/// away tells its players `RoomMoved` and ends.
#[test]
fn a_held_room_waits_and_a_moved_room_tells_its_players_to_follow_it() {
    let t0 = Instant::now();
    let mut room = full_probe_room(t0);
    room.hold();
    assert!(room.is_held());
    let before = room.current_tick();
    // The worker does not tick a held room; released, it skips what it missed.
    room.release(t0 + Duration::from_secs(5));
    assert!(!room.is_held());
    assert_eq!(room.current_tick(), before);
    assert!(room.next_tick_at() > t0 + Duration::from_secs(5));
    room.moved_away();
    let effects = seen(&mut room);
    let code = ErrorCode::RoomMoved;
    for conn in [1, 2] {
        assert!(effects.contains(&Seen::Msg(conn, ServerMsg::Kicked { code })));
        assert!(effects.contains(&Seen::Close(conn, code)));
    }
    assert_eq!(
        effects.last(),
        Some(&Seen::Room(RoomEnd {
            reason: EndReason::Moved,
            result: None
        }))
    );
}
