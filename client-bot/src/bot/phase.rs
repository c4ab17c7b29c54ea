//! The bot's phases, from the first join to the end, as a sans-IO state machine: a [`Cue`]
//! (what the session, the clock or the gateway said) moves a [`Phase`] on and may leave a
//! [`Note`] for the caller (a measurement, a `Leave` to send, a rejoin to start). Time comes in
//! as `now`, so the tests are a table of (phase, cue) → (phase, note).
//!
//! ```text
//! Joining ─Joined→ Waiting ─Started→ Playing ─MatchEnded→ MatchOver ─Closed→ Done
//! Waiting / Playing ─Disconnected→ Reconnecting ─Reconnected→ Waiting / Playing
//! Playing ─Silent→ CheckingServer;  Reconnecting ─ResumeOverdue→ CheckingServer
//! Waiting / Playing / Reconnecting ─Closed(server going)→ CheckingServer
//! CheckingServer ─ServerGone→ Rejoining ─Joined→ Waiting;  CheckingServer ─RoomOver→ Leaving / Done
//! CheckingServer ─ServerMoved→ Reconnecting (the same session, resumed on the room's new server)
//! any phase ─PlayOver→ Leaving ─Closed→ Done;  any phase ─GiveUp→ Done(timeout | rejoin_failed)
//! ```

use std::time::{Duration, Instant};

use tickroom_protocol::ErrorCode;

use super::{REJOIN_AFTER, ROOM_STATUS_PERIOD};
use crate::error::BotError;

/// Where a bot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The transport to the first room is open; waiting for `Joined`.
    Joining,
    /// The old room's server is gone since `lost_at`: queueing again, then joining a new room.
    Rejoining { lost_at: Instant },
    /// In the room and connected; the room has not started.
    Waiting,
    /// In the started room and connected: inputs flow.
    Playing,
    /// The connection was lost at `lost_at`; the session resumes it by itself.
    Reconnecting { lost_at: Instant },
    /// Asking the gateway whether the room's server still lives: at `check_at`, then every
    /// [`ROOM_STATUS_PERIOD`] while it does. `lost_at` is when the room was last known good.
    CheckingServer {
        why: Suspicion,
        lost_at: Instant,
        check_at: Instant,
    },
    /// The game ended the match; the room closes next.
    MatchOver,
    /// `Leave` was sent (play time over, or told to stop); waiting for `Closed`. `joined` is
    /// false when the bot left before it was ever in a room.
    Leaving { joined: bool },
    /// Over: played to the end (`None`) or failed.
    Done(Option<BotError>),
}

/// Why a bot asks the gateway whether its room's server lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspicion {
    /// A started room sent nothing for [`REJOIN_AFTER`] (a dead QUIC server sends nothing at
    /// all, not even a close). The connection is still up: the next message clears it.
    Silence,
    /// The connection was lost and did not resume within [`REJOIN_AFTER`]; it still tries.
    ConnectionLost,
    /// The server closed the session with a code that says it is going or gone.
    SessionClosed(ErrorCode),
}

/// Something that moves a bot from one phase to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cue {
    /// `Joined`: the bot is in a room.
    Joined,
    /// The room started.
    Started,
    /// The session resumed on a new connection; `started` when the room has started.
    Reconnected { started: bool },
    /// The connection was lost (or dropped on purpose).
    Disconnected,
    /// The server said the room moved to another server (`RoomMoved`): ask the gateway now.
    RoomMoved,
    /// A message came from the server.
    Heard,
    /// The started room has sent nothing since `last_heard`, for [`REJOIN_AFTER`].
    Silent { last_heard: Instant },
    /// A lost connection has not resumed within [`REJOIN_AFTER`].
    ResumeOverdue,
    /// The gateway says the room's server lives (or could not be asked: ask again later).
    ServerAlive,
    /// The gateway says the room's server is gone.
    ServerGone,
    /// The gateway moved the room to another server (its owner died): resume there.
    ServerMoved,
    /// The gateway no longer knows the room: it ended (an ended room's record is closed),
    /// and the bot missed the close (a lost connection, a silent one).
    RoomOver,
    /// The game ended the match.
    MatchEnded,
    /// The play time is over, or the bot was told to stop.
    PlayOver,
    /// The session is over, with the server's code (`None` after our own `Leave`).
    Closed(Option<ErrorCode>),
    /// The bot's deadline passed.
    GiveUp,
}

/// What the caller must do or record after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// A lost connection resumed after this long.
    Resumed { after: Duration },
    /// The bot got into a new room this long after the old one was lost.
    Rejoined { after: Duration },
    /// Send `Leave`.
    Leave,
    /// Leave this room's session behind and queue again through the gateway.
    Rejoin,
    /// Point the session at the room's new server; it resumes there.
    Move,
}

impl Phase {
    /// The phase after `cue` at `now`, and what the caller must do about it.
    pub(crate) fn on(self, cue: Cue, now: Instant) -> (Phase, Option<Note>) {
        match (self, cue) {
            (Phase::Done(_), _) => (self, None),
            (
                Phase::Rejoining { .. } | Phase::Reconnecting { .. } | Phase::CheckingServer { .. },
                Cue::GiveUp,
            ) => (Phase::Done(Some(BotError::RejoinFailed)), None),
            (_, Cue::GiveUp) => (Phase::Done(Some(BotError::Timeout)), None),
            _ => self.on_live(cue, now),
        }
    }

    fn on_live(self, cue: Cue, now: Instant) -> (Phase, Option<Note>) {
        use Phase::*;
        use Suspicion::*;
        let lost_since = |lost_at: Instant| now.saturating_duration_since(lost_at);
        match (self, cue) {
            (Joining, Cue::Joined) => (Waiting, None),
            (Rejoining { lost_at }, Cue::Joined) => (
                Waiting,
                Some(Note::Rejoined {
                    after: lost_since(lost_at),
                }),
            ),
            (Leaving { joined: false }, Cue::Joined) => (Leaving { joined: true }, None),
            (Waiting, Cue::Started) => (Playing, None),
            (
                Reconnecting { lost_at }
                | CheckingServer {
                    why: ConnectionLost,
                    lost_at,
                    ..
                },
                Cue::Reconnected { started },
            ) => (
                if started { Playing } else { Waiting },
                Some(Note::Resumed {
                    after: lost_since(lost_at),
                }),
            ),
            (Waiting | Playing | CheckingServer { why: Silence, .. }, Cue::Disconnected) => {
                (Reconnecting { lost_at: now }, None)
            }
            (Waiting | Playing | CheckingServer { why: Silence, .. }, Cue::RoomMoved) => (
                CheckingServer {
                    why: ConnectionLost,
                    lost_at: now,
                    check_at: now,
                },
                None,
            ),
            (CheckingServer { why: Silence, .. }, Cue::Heard) => (Playing, None),
            (Playing, Cue::Silent { last_heard }) => (
                CheckingServer {
                    why: Silence,
                    lost_at: last_heard,
                    check_at: now,
                },
                None,
            ),
            (Reconnecting { lost_at }, Cue::ResumeOverdue) => (
                CheckingServer {
                    why: ConnectionLost,
                    lost_at,
                    check_at: now,
                },
                None,
            ),
            (CheckingServer { why, lost_at, .. }, Cue::ServerAlive) => (
                CheckingServer {
                    why,
                    lost_at,
                    check_at: now + ROOM_STATUS_PERIOD,
                },
                None,
            ),
            (CheckingServer { lost_at, .. }, Cue::ServerGone) => {
                (Rejoining { lost_at }, Some(Note::Rejoin))
            }
            // A closed session cannot resume anywhere: queue again, as for a gone server.
            (
                CheckingServer {
                    why: SessionClosed(_),
                    lost_at,
                    ..
                },
                Cue::ServerMoved,
            ) => (Rejoining { lost_at }, Some(Note::Rejoin)),
            (CheckingServer { lost_at, .. }, Cue::ServerMoved) => {
                (Reconnecting { lost_at }, Some(Note::Move))
            }
            (
                CheckingServer {
                    why: SessionClosed(_),
                    ..
                },
                Cue::RoomOver,
            ) => (Done(None), None),
            (CheckingServer { .. }, Cue::RoomOver) => (Leaving { joined: true }, Some(Note::Leave)),
            (s, Cue::MatchEnded) if s.in_match() => (MatchOver, None),
            (Joining, Cue::PlayOver) => (Leaving { joined: false }, Some(Note::Leave)),
            // Between rooms when the play time ends: nothing to rejoin for, and the bot was
            // in a room before, so closing now is a normal end.
            (Rejoining { .. }, Cue::PlayOver) => (Leaving { joined: true }, Some(Note::Leave)),
            (
                CheckingServer {
                    why: SessionClosed(_),
                    ..
                },
                Cue::PlayOver,
            ) => (Done(None), None),
            (s, Cue::PlayOver) if s.in_match() || s == MatchOver => {
                (Leaving { joined: true }, Some(Note::Leave))
            }
            (s, Cue::Closed(code)) => (s.closed(code, now), None),
            (s, _) => (s, None),
        }
    }

    /// The phase once the session closed with `code`.
    fn closed(self, code: Option<ErrorCode>, now: Instant) -> Phase {
        use Phase::*;
        let server_going = matches!(
            code,
            Some(ErrorCode::SessionExpired | ErrorCode::ServerGone | ErrorCode::ServerShutdown)
        );
        match (self, code) {
            (s, Some(code)) if server_going && s.in_match() => CheckingServer {
                why: Suspicion::SessionClosed(code),
                lost_at: s.lost_at().unwrap_or(now),
                check_at: now,
            },
            // The match is over or the bot is leaving anyway: nothing to rejoin for.
            (MatchOver | Leaving { joined: true }, _) if server_going => Done(None),
            (s, None | Some(ErrorCode::RoomClosed)) if s.joined() => Done(None),
            (_, None | Some(ErrorCode::RoomClosed)) => Done(Some(BotError::ClosedBeforeJoin)),
            (_, Some(code)) => Done(Some(BotError::Closed(code))),
        }
    }

    /// In a room whose match goes on (connected or not): a server going away means a rejoin.
    fn in_match(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Playing
                | Phase::Reconnecting { .. }
                | Phase::CheckingServer {
                    why: Suspicion::Silence | Suspicion::ConnectionLost,
                    ..
                }
        )
    }

    /// Got a `Joined` in the current room.
    fn joined(self) -> bool {
        !matches!(
            self,
            Phase::Joining | Phase::Rejoining { .. } | Phase::Leaving { joined: false }
        )
    }

    fn lost_at(self) -> Option<Instant> {
        match self {
            Phase::Reconnecting { lost_at } | Phase::CheckingServer { lost_at, .. } => {
                Some(lost_at)
            }
            _ => None,
        }
    }

    /// In the room with a live connection (the swarm's "live" gauge).
    pub(crate) fn connected(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Playing
                | Phase::MatchOver
                | Phase::CheckingServer {
                    why: Suspicion::Silence,
                    ..
                }
        )
    }

    /// Game traffic flows: frame inputs, checksums, answers to messages, chaos drops.
    pub(crate) fn plays(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Playing
                | Phase::CheckingServer {
                    why: Suspicion::Silence,
                    ..
                }
        )
    }

    /// State-sync inputs flow (the room started and the connection is up).
    pub(crate) fn sends_inputs(self) -> bool {
        matches!(
            self,
            Phase::Playing
                | Phase::CheckingServer {
                    why: Suspicion::Silence,
                    ..
                }
        )
    }

    /// The session is over: nothing more comes from this room's driver.
    pub(crate) fn session_over(self) -> bool {
        matches!(
            self,
            Phase::Done(_)
                | Phase::CheckingServer {
                    why: Suspicion::SessionClosed(_),
                    ..
                }
        )
    }

    /// When the phase moves on by itself: the resume is overdue, or the gateway is due a
    /// question.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Reconnecting { lost_at } => Some(lost_at + REJOIN_AFTER),
            Phase::CheckingServer { check_at, .. } => Some(check_at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Cue::*;
    use Phase::*;
    use Suspicion::*;

    /// Every instant in the table is `t(ms)` after one fixed start.
    fn t(ms: u64) -> Instant {
        thread_local!(static T0: Instant = Instant::now());
        T0.with(|t0| *t0 + Duration::from_millis(ms))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `from` gets `cue` at t(1000): expect `to` and `note`.
    fn check(from: Phase, cue: Cue, to: Phase, note: Option<Note>) {
        assert_eq!(from.on(cue, t(1000)), (to, note), "{from:?} on {cue:?}");
    }

    fn checking(why: Suspicion, lost: u64, check: u64) -> Phase {
        CheckingServer {
            why,
            lost_at: t(lost),
            check_at: t(check),
        }
    }

    #[test]
    fn joining_and_starting() {
        check(Joining, Joined, Waiting, None);
        check(Waiting, Started, Playing, None);
        check(Playing, Started, Playing, None);
        check(Playing, Joined, Playing, None);
        let rejoined = Some(Note::Rejoined { after: ms(600) });
        check(Rejoining { lost_at: t(400) }, Joined, Waiting, rejoined);
        check(Joining, Disconnected, Joining, None);
    }

    #[test]
    fn losing_and_resuming_the_connection() {
        let lost = Reconnecting { lost_at: t(1000) };
        check(Playing, Disconnected, lost, None);
        check(Waiting, Disconnected, lost, None);
        check(checking(Silence, 100, 900), Disconnected, lost, None);
        // A second loss while reconnecting keeps the first loss time.
        let earlier = Reconnecting { lost_at: t(200) };
        check(earlier, Disconnected, earlier, None);
        let resumed = Some(Note::Resumed { after: ms(800) });
        check(earlier, Reconnected { started: true }, Playing, resumed);
        check(earlier, Reconnected { started: false }, Waiting, resumed);
        let asking = checking(ConnectionLost, 200, 1000);
        check(earlier, ResumeOverdue, asking, None);
        check(asking, Disconnected, asking, None);
        check(asking, Reconnected { started: true }, Playing, resumed);
        check(
            Leaving { joined: true },
            Reconnected { started: true },
            Leaving { joined: true },
            None,
        );
    }

    #[test]
    fn asking_the_gateway() {
        check(
            Playing,
            Silent { last_heard: t(0) },
            checking(Silence, 0, 1000),
            None,
        );
        check(Waiting, Silent { last_heard: t(0) }, Waiting, None);
        check(checking(Silence, 0, 1000), Heard, Playing, None);
        check(
            checking(ConnectionLost, 0, 1000),
            Heard,
            checking(ConnectionLost, 0, 1000),
            None,
        );
        let alive = ROOM_STATUS_PERIOD.as_millis() as u64;
        for why in [
            Silence,
            ConnectionLost,
            SessionClosed(ErrorCode::ServerGone),
        ] {
            check(
                checking(why, 5, 1000),
                ServerAlive,
                checking(why, 5, 1000 + alive),
                None,
            );
            let gone = Rejoining { lost_at: t(5) };
            check(checking(why, 5, 1000), ServerGone, gone, Some(Note::Rejoin));
        }
        // The server says the room moved: the gateway is asked at once.
        for from in [Waiting, Playing, checking(Silence, 0, 1000)] {
            check(from, RoomMoved, checking(ConnectionLost, 1000, 1000), None);
        }
        // A moved room: a live session resumes on the new server; a closed one queues again.
        for why in [Silence, ConnectionLost] {
            let moving = Reconnecting { lost_at: t(5) };
            check(
                checking(why, 5, 1000),
                ServerMoved,
                moving,
                Some(Note::Move),
            );
        }
        check(
            checking(SessionClosed(ErrorCode::ServerShutdown), 5, 1000),
            ServerMoved,
            Rejoining { lost_at: t(5) },
            Some(Note::Rejoin),
        );
        // A room the gateway no longer knows is over: no rejoin, no error.
        let leave = Some(Note::Leave);
        check(
            checking(Silence, 5, 1000),
            RoomOver,
            Leaving { joined: true },
            leave,
        );
        check(
            checking(ConnectionLost, 5, 1000),
            RoomOver,
            Leaving { joined: true },
            leave,
        );
        let closed = checking(SessionClosed(ErrorCode::SessionExpired), 5, 1000);
        check(closed, RoomOver, Done(None), None);
        check(Playing, RoomOver, Playing, None);
    }

    #[test]
    fn the_server_closing_the_session() {
        let expired = Closed(Some(ErrorCode::SessionExpired));
        let gone = Closed(Some(ErrorCode::ServerGone));
        let shutdown = Closed(Some(ErrorCode::ServerShutdown));
        check(
            Playing,
            expired,
            checking(SessionClosed(ErrorCode::SessionExpired), 1000, 1000),
            None,
        );
        check(
            Waiting,
            shutdown,
            checking(SessionClosed(ErrorCode::ServerShutdown), 1000, 1000),
            None,
        );
        check(
            Reconnecting { lost_at: t(300) },
            gone,
            checking(SessionClosed(ErrorCode::ServerGone), 300, 1000),
            None,
        );
        check(MatchOver, gone, Done(None), None);
        check(Leaving { joined: true }, expired, Done(None), None);
        let refused = Some(BotError::Closed(ErrorCode::SessionExpired));
        check(Joining, expired, Done(refused), None);
        check(
            Playing,
            Closed(Some(ErrorCode::RoomClosed)),
            Done(None),
            None,
        );
        check(Playing, Closed(None), Done(None), None);
        let kicked = Some(BotError::Closed(ErrorCode::Kicked));
        check(Playing, Closed(Some(ErrorCode::Kicked)), Done(kicked), None);
        check(
            MatchOver,
            Closed(Some(ErrorCode::Kicked)),
            Done(kicked),
            None,
        );
        let before_join = Some(BotError::ClosedBeforeJoin);
        check(Joining, Closed(None), Done(before_join), None);
        check(
            Rejoining { lost_at: t(0) },
            Closed(Some(ErrorCode::RoomClosed)),
            Done(before_join),
            None,
        );
        check(
            Joining,
            Closed(Some(ErrorCode::RoomFull)),
            Done(Some(BotError::Closed(ErrorCode::RoomFull))),
            None,
        );
    }

    #[test]
    fn the_match_ending() {
        check(Playing, MatchEnded, MatchOver, None);
        check(checking(Silence, 0, 900), MatchEnded, MatchOver, None);
        check(Reconnecting { lost_at: t(0) }, MatchEnded, MatchOver, None);
        // The room closing after the result is the normal end of play.
        check(
            MatchOver,
            Closed(Some(ErrorCode::RoomClosed)),
            Done(None),
            None,
        );
        check(MatchOver, Disconnected, MatchOver, None);
        check(
            Leaving { joined: true },
            MatchEnded,
            Leaving { joined: true },
            None,
        );
    }

    #[test]
    fn leaving_and_giving_up() {
        let leave = Some(Note::Leave);
        check(Playing, PlayOver, Leaving { joined: true }, leave);
        check(
            Reconnecting { lost_at: t(0) },
            PlayOver,
            Leaving { joined: true },
            leave,
        );
        check(MatchOver, PlayOver, Leaving { joined: true }, leave);
        check(Joining, PlayOver, Leaving { joined: false }, leave);
        check(
            Leaving { joined: false },
            Joined,
            Leaving { joined: true },
            None,
        );
        check(
            Leaving { joined: false },
            Closed(None),
            Done(Some(BotError::ClosedBeforeJoin)),
            None,
        );
        check(Leaving { joined: true }, Closed(None), Done(None), None);
        check(
            Leaving { joined: true },
            PlayOver,
            Leaving { joined: true },
            None,
        );
        check(
            Rejoining { lost_at: t(0) },
            PlayOver,
            Leaving { joined: true },
            leave,
        );
        let closed = checking(SessionClosed(ErrorCode::ServerGone), 0, 900);
        check(closed, PlayOver, Done(None), None);

        let timeout = Done(Some(BotError::Timeout));
        let rejoin_failed = Done(Some(BotError::RejoinFailed));
        check(Joining, GiveUp, timeout, None);
        check(Playing, GiveUp, timeout, None);
        check(Leaving { joined: true }, GiveUp, timeout, None);
        check(Rejoining { lost_at: t(0) }, GiveUp, rejoin_failed, None);
        check(Reconnecting { lost_at: t(0) }, GiveUp, rejoin_failed, None);
        check(closed, GiveUp, rejoin_failed, None);
        // Done is final.
        check(Done(None), GiveUp, Done(None), None);
        check(timeout, Joined, timeout, None);
    }

    #[test]
    fn what_each_phase_allows() {
        let silent = checking(Silence, 0, 0);
        let lost = checking(ConnectionLost, 0, 0);
        let closed = checking(SessionClosed(ErrorCode::ServerGone), 0, 0);
        // (phase, connected, plays, sends inputs, session over)
        let table = [
            (Joining, false, false, false, false),
            (Waiting, true, true, false, false),
            (Playing, true, true, true, false),
            (silent, true, true, true, false),
            (Reconnecting { lost_at: t(0) }, false, false, false, false),
            (lost, false, false, false, false),
            (closed, false, false, false, true),
            (MatchOver, true, false, false, false),
            (Leaving { joined: true }, false, false, false, false),
            (Done(None), false, false, false, true),
        ];
        for (phase, connected, plays, inputs, over) in table {
            let got = (
                phase.connected(),
                phase.plays(),
                phase.sends_inputs(),
                phase.session_over(),
            );
            assert_eq!(got, (connected, plays, inputs, over), "{phase:?}");
        }
        assert_eq!(
            Reconnecting { lost_at: t(0) }.deadline(),
            Some(t(0) + REJOIN_AFTER)
        );
        assert_eq!(lost.deadline(), Some(t(0)));
        assert_eq!(Playing.deadline(), None);
    }
}
