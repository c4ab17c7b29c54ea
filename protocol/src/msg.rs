//! The wire messages: `ClientMsg` (client → server) and `ServerMsg` (server → client).
//! Game payloads are opaque bytes, so any game can ride on the same protocol.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::ErrorCode;

/// Most inputs one `Input` may carry (a room accepts at most its mode's redundancy, which is
/// a `u8`); more is refused at decode, before anything is allocated for them.
pub const MAX_INPUTS_PER_MESSAGE: usize = 256;
/// Most slots a `Frame` carries (room sizes are a `u8`); more is refused at decode.
pub const MAX_FRAME_SLOTS: usize = 256;

/// Length of challenge nonces, MACs and secrets, in bytes.
pub const SECRET_LEN: usize = 32;

/// A 32-byte nonce, MAC or secret.
pub type Secret = [u8; SECRET_LEN];

/// How a room keeps its players in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncKind {
    /// The server simulates; clients send inputs and receive snapshots.
    State,
    /// The server relays every player's input per frame; clients simulate deterministically.
    Lockstep,
}

/// Every message a client sends. After the handshake each one carries `seq`, a strictly
/// increasing per-session sequence number checked against replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Opens a join: the signed join ticket from the gateway.
    Hello {
        /// `PROTOCOL_VERSION` of the client.
        protocol_version: u16,
        /// `protocol_hash()` of the client's message schema.
        protocol_hash: u64,
        /// The signed join ticket, as the gateway returned it.
        ticket: String,
    },
    /// Proves possession of the join secret (or the resume key derived from it) for the server's nonce.
    ChallengeResponse {
        /// `token::challenge_mac(secret, nonce)`.
        mac: Secret,
    },
    /// Reopens an existing session on a new connection.
    Resume {
        /// `PROTOCOL_VERSION` of the client.
        protocol_version: u16,
        /// `protocol_hash()` of the client's message schema.
        protocol_hash: u64,
        /// The session to resume (from `Welcome`).
        session_id: u64,
        /// Lockstep: the last frame the client has; state sync: the last snapshot tick it has.
        last_frame: u64,
    },
    /// State sync input: `inputs` holds the newest inputs (oldest first); the last one is for
    /// input number `tick`, the one before for `tick - 1`, and so on (redundancy for loss).
    Input {
        /// Anti-replay sequence number.
        seq: u64,
        /// Input number of the newest entry in `inputs` (numbers start at 1).
        tick: u64,
        /// Newest snapshot tick the client has (the baseline the server may delta against).
        ack_tick: u64,
        /// Game input bytes, oldest first; at most `MAX_INPUTS_PER_MESSAGE`.
        #[serde(deserialize_with = "bounded::inputs")]
        inputs: Vec<ByteBuf>,
    },
    /// Lockstep input for `frame`.
    FrameInput {
        /// Anti-replay sequence number.
        seq: u64,
        /// The frame this input is for.
        frame: u64,
        /// Game input bytes.
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
    },
    /// Lockstep state hash after `frame`, sent every K frames.
    Checksum {
        /// Anti-replay sequence number.
        seq: u64,
        /// The frame the hash was taken after.
        frame: u64,
        /// The game's checksum.
        hash: u64,
    },
    /// RTT probe; the server echoes `client_time_us`.
    Ping {
        /// Anti-replay sequence number.
        seq: u64,
        /// Client clock in microseconds, echoed back in `Pong`.
        client_time_us: u64,
    },
    /// The player leaves the room for good.
    Leave {
        /// Anti-replay sequence number.
        seq: u64,
    },
    /// A custom reliable message for the game (a chat line, "buy item"); the game's own
    /// encoding. Size and rate are limited per mode.
    Message {
        /// Anti-replay sequence number.
        seq: u64,
        /// The game's encoding of its client message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
}

/// The welcome a player gets once the join or resume is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Identifies the session for `Resume`.
    pub session_id: u64,
    /// Successful resumes of this session so far: the next resume answers its challenge with
    /// `token::resume_key(join secret, session_id, resume_counter)`. Not a secret: the key is
    /// derived on both ends and never travels.
    pub resume_counter: u32,
    /// The room joined.
    pub room_id: u64,
    /// The player's id (from the ticket).
    pub player_id: u64,
    /// The player's seat in the room, 0-based; lockstep frames list inputs by slot.
    /// [`SPECTATOR_SLOT`] (255) for a spectator, who holds no seat.
    pub slot: u8,
    /// Seats in the room.
    pub max_players: u8,
    /// State sync or lockstep.
    pub sync: SyncKind,
    /// Ticks (or frames) per second.
    pub tick_rate_hz: u16,
    /// The room's current tick (state sync) or next frame (lockstep).
    pub tick: u64,
    /// The smallest `seq` the server will accept next; a resumed client continues from here.
    pub next_seq: u64,
    /// True when this welcome answers a `Resume`.
    pub resumed: bool,
    /// State sync: the most inputs one `Input` may carry (the mode's redundancy); more is
    /// refused as `BadMessage`. 0 in lockstep.
    pub input_redundancy: u8,
}

/// `Welcome::slot` of a spectator: no seat (modes have at most 64 seats). A spectator
/// may send only `Ping` and `Leave`; anything else is `Refused` with `SpectatorReadOnly`.
pub const SPECTATOR_SLOT: u8 = u8::MAX;

/// Every message the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// A fresh nonce the client must MAC to prove it holds the join secret or resume key.
    Challenge {
        /// Random, never reused.
        nonce: Secret,
    },
    /// The join or resume was accepted.
    Welcome(Welcome),
    /// The request was refused; the connection closes after this.
    Error {
        /// Why.
        code: ErrorCode,
        /// A line for logs and people.
        detail: String,
    },
    /// State sync: `payload` is a full snapshot when `baseline == 0`, else a delta against the
    /// snapshot of tick `baseline`. `ack_seq` is the newest input tick applied for this player.
    Snapshot {
        /// The server tick this snapshot shows.
        tick: u64,
        /// Newest input number applied for this player.
        ack_seq: u64,
        /// Tick of the snapshot this is a delta against; 0 = full snapshot.
        baseline: u64,
        /// Game snapshot bytes (full or delta).
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Lockstep: frame `n` closed with one input per slot (empty = no input).
    Frame {
        /// Frame number, from 1.
        n: u64,
        /// One input per slot; at most `MAX_FRAME_SLOTS`.
        #[serde(deserialize_with = "bounded::slots")]
        inputs: Vec<ByteBuf>,
    },
    /// Lockstep: checksums for `frame` disagreed.
    Desync {
        /// The first frame whose checksums disagreed.
        frame: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The client's time from the `Ping`.
        client_time_us: u64,
        /// Microseconds since the server started.
        server_time_us: u64,
    },
    /// The server removed the player; the connection closes after this.
    Kicked {
        /// Why.
        code: ErrorCode,
    },
    /// The room started (it was full or its start timeout passed).
    Started {
        /// The room's tick (or next frame) at the start.
        tick: u64,
        /// Players in the room.
        players: u8,
    },
    /// A custom reliable message from the game ("round over", a chat line); the game's own
    /// encoding.
    Message {
        /// The game's encoding of its server message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// The match ended with a result the game defines (scores, winner); the room closes
    /// right after (`Kicked{RoomClosed}`). The gateway keeps the result for
    /// `GET /v1/matches/{room_id}`.
    MatchEnded {
        /// The game's encoding of the result.
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
    },
    /// The client's message `seq` was refused (a custom message too big or too fast for the
    /// mode); the session goes on.
    Refused {
        /// The refused message's sequence number.
        seq: u64,
        /// Why (`MessageTooLarge`, `RateLimited`, `BadMessage`).
        code: ErrorCode,
    },
}

impl ClientMsg {
    /// The anti-replay sequence number, for messages after the handshake.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ClientMsg::Input { seq, .. }
            | ClientMsg::FrameInput { seq, .. }
            | ClientMsg::Checksum { seq, .. }
            | ClientMsg::Ping { seq, .. }
            | ClientMsg::Leave { seq }
            | ClientMsg::Message { seq, .. } => Some(*seq),
            ClientMsg::Hello { .. }
            | ClientMsg::ChallengeResponse { .. }
            | ClientMsg::Resume { .. } => None,
        }
    }

    /// Whether this message plays the game (input, a checksum, a custom message): what a
    /// spectator may not send.
    pub fn is_play(&self) -> bool {
        matches!(
            self,
            ClientMsg::Input { .. }
                | ClientMsg::FrameInput { .. }
                | ClientMsg::Checksum { .. }
                | ClientMsg::Message { .. }
        )
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Hello { .. } => "hello",
            ClientMsg::ChallengeResponse { .. } => "challenge_response",
            ClientMsg::Resume { .. } => "resume",
            ClientMsg::Input { .. } => "input",
            ClientMsg::FrameInput { .. } => "frame_input",
            ClientMsg::Checksum { .. } => "checksum",
            ClientMsg::Ping { .. } => "ping",
            ClientMsg::Leave { .. } => "leave",
            ClientMsg::Message { .. } => "message",
        }
    }
}

/// One representative of every message, with fixed values: the golden vectors pin their
/// bytes, the fuzzers start from them, and `protocol_hash` is computed over them.
pub fn samples() -> (Vec<ClientMsg>, Vec<ServerMsg>) {
    let bytes = |v: &[u8]| ByteBuf::from(v.to_vec());
    let client = vec![
        ClientMsg::Hello {
            protocol_version: 1,
            protocol_hash: 0x0102_0304_0506_0708,
            ticket: "t1.abc".into(),
        },
        ClientMsg::ChallengeResponse {
            mac: [7; SECRET_LEN],
        },
        ClientMsg::Resume {
            protocol_version: 1,
            protocol_hash: 9,
            session_id: 300,
            last_frame: 41,
        },
        ClientMsg::Input {
            seq: 5,
            tick: 4,
            ack_tick: 3,
            inputs: vec![bytes(&[1, 2, 3]), bytes(&[4, 5, 6])],
        },
        ClientMsg::FrameInput {
            seq: 6,
            frame: 10,
            input: vec![127, 129, 1],
        },
        ClientMsg::Checksum {
            seq: 7,
            frame: 10,
            hash: u64::MAX,
        },
        ClientMsg::Ping {
            seq: 8,
            client_time_us: 1_000_000,
        },
        ClientMsg::Leave { seq: 9 },
        ClientMsg::Message {
            seq: 10,
            payload: b"hi".to_vec(),
        },
    ];
    let server = vec![
        ServerMsg::Challenge {
            nonce: [1; SECRET_LEN],
        },
        ServerMsg::Welcome(Welcome {
            session_id: 300,
            resume_counter: 2,
            room_id: 77,
            player_id: 1234,
            slot: 3,
            max_players: 10,
            sync: SyncKind::Lockstep,
            tick_rate_hz: 30,
            tick: 0,
            next_seq: 1,
            resumed: false,
            input_redundancy: 8,
        }),
        ServerMsg::Error {
            code: ErrorCode::RoomFull,
            detail: "full".into(),
        },
        ServerMsg::Snapshot {
            tick: 1000,
            ack_seq: 999,
            baseline: 998,
            payload: vec![0, 1, 2, 250],
        },
        ServerMsg::Frame {
            n: 12,
            inputs: vec![bytes(&[1, 0, 0]), bytes(&[])],
        },
        ServerMsg::Desync { frame: 12 },
        ServerMsg::Pong {
            client_time_us: 5,
            server_time_us: 6,
        },
        ServerMsg::Kicked {
            code: ErrorCode::ServerShutdown,
        },
        ServerMsg::Started {
            tick: 1,
            players: 2,
        },
        ServerMsg::Message {
            payload: vec![3, 1, 4],
        },
        ServerMsg::MatchEnded {
            result: vec![1, 0, 9],
        },
        ServerMsg::Refused {
            seq: 10,
            code: ErrorCode::RateLimited,
        },
    ];
    (client, server)
}

/// Sequences with a protocol bound, checked against the declared length before anything is
/// allocated: serde would otherwise preallocate up to 1 MiB for a few bytes declaring a long
/// sequence, and grow a `Vec` of empty entries far past the message's own size.
mod bounded {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::Deserializer;
    use serde_bytes::ByteBuf;

    use super::{MAX_FRAME_SLOTS, MAX_INPUTS_PER_MESSAGE};

    pub(super) fn inputs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ByteBuf>, D::Error> {
        d.deserialize_seq(Bounded::<MAX_INPUTS_PER_MESSAGE>)
    }

    pub(super) fn slots<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ByteBuf>, D::Error> {
        d.deserialize_seq(Bounded::<MAX_FRAME_SLOTS>)
    }

    struct Bounded<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for Bounded<N> {
        type Value = Vec<ByteBuf>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {N} byte strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let declared = seq.size_hint().unwrap_or(0);
            if declared > N {
                return Err(A::Error::invalid_length(declared, &self));
            }
            let mut out = Vec::with_capacity(declared);
            while let Some(item) = seq.next_element()? {
                if out.len() == N {
                    return Err(A::Error::invalid_length(N + 1, &self));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
}
