//! The wire messages: `ClientMsg` (client → server) and `ServerMsg` (server → client).
//! Game payloads are opaque bytes, so any game can ride on the same protocol.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::ErrorCode;

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
        protocol_version: u16,
        protocol_hash: u64,
        ticket: String,
    },
    /// Proves possession of the join secret (or the resume secret) for the server's nonce.
    ChallengeResponse { mac: Secret },
    /// Reopens an existing session on a new connection.
    Resume {
        protocol_version: u16,
        protocol_hash: u64,
        session_id: u64,
        /// Lockstep: the last frame the client has; state sync: the last snapshot tick it has.
        last_frame: u64,
    },
    /// State sync input: `inputs` holds the newest inputs (oldest first); the last one is for
    /// input number `tick`, the one before for `tick - 1`, and so on (redundancy for loss).
    Input {
        seq: u64,
        tick: u64,
        /// Newest snapshot tick the client has (the baseline the server may delta against).
        ack_tick: u64,
        inputs: Vec<ByteBuf>,
    },
    /// Lockstep input for `frame`.
    FrameInput {
        seq: u64,
        frame: u64,
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
    },
    /// Lockstep state hash after `frame`, sent every K frames.
    Checksum { seq: u64, frame: u64, hash: u64 },
    /// RTT probe; the server echoes `client_time_us`.
    Ping { seq: u64, client_time_us: u64 },
    /// The player leaves the room for good.
    Leave { seq: u64 },
}

/// The welcome a player gets once the join or resume is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Identifies the session for `Resume`.
    pub session_id: u64,
    /// Key for the MAC in the next resume's challenge response; rotated on every resume.
    pub resume_secret: Secret,
    pub room_id: u64,
    pub player_id: u64,
    pub slot: u8,
    pub max_players: u8,
    pub sync: SyncKind,
    pub tick_rate_hz: u16,
    /// The room's current tick (state sync) or next frame (lockstep).
    pub tick: u64,
    /// The smallest `seq` the server will accept next; a resumed client continues from here.
    pub next_seq: u64,
    /// True when this welcome answers a `Resume`.
    pub resumed: bool,
}

/// Every message the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// A fresh nonce the client must MAC to prove it holds the join or resume secret.
    Challenge { nonce: Secret },
    /// The join or resume was accepted.
    Welcome(Welcome),
    /// The request was refused; the connection closes after this.
    Error { code: ErrorCode, detail: String },
    /// State sync: `payload` is a full snapshot when `baseline == 0`, else a delta against the
    /// snapshot of tick `baseline`. `ack_seq` is the newest input tick applied for this player.
    Snapshot {
        tick: u64,
        ack_seq: u64,
        baseline: u64,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Lockstep: frame `n` closed with one input per slot (empty = no input).
    Frame { n: u64, inputs: Vec<ByteBuf> },
    /// Lockstep: checksums for `frame` disagreed.
    Desync { frame: u64 },
    /// Answer to `Ping`.
    Pong {
        client_time_us: u64,
        server_time_us: u64,
    },
    /// The server removed the player; the connection closes after this.
    Kicked { code: ErrorCode },
    /// The room started (it was full or its start timeout passed).
    Started { tick: u64, players: u8 },
}

impl ClientMsg {
    /// The anti-replay sequence number, for messages after the handshake.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ClientMsg::Input { seq, .. }
            | ClientMsg::FrameInput { seq, .. }
            | ClientMsg::Checksum { seq, .. }
            | ClientMsg::Ping { seq, .. }
            | ClientMsg::Leave { seq } => Some(*seq),
            ClientMsg::Hello { .. }
            | ClientMsg::ChallengeResponse { .. }
            | ClientMsg::Resume { .. } => None,
        }
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
        }
    }
}

impl ServerMsg {
    /// True for messages that may be dropped or replaced by a newer one when a peer is slow.
    pub fn is_conflatable(&self) -> bool {
        matches!(self, ServerMsg::Snapshot { .. } | ServerMsg::Pong { .. })
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
    ];
    let server = vec![
        ServerMsg::Challenge {
            nonce: [1; SECRET_LEN],
        },
        ServerMsg::Welcome(Welcome {
            session_id: 300,
            resume_secret: [2; SECRET_LEN],
            room_id: 77,
            player_id: 1234,
            slot: 3,
            max_players: 10,
            sync: SyncKind::Lockstep,
            tick_rate_hz: 30,
            tick: 0,
            next_seq: 1,
            resumed: false,
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
    ];
    (client, server)
}
