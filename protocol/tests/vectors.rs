//! The golden vectors other clients test against, in `protocol/vectors/*.json`: every message
//! with its bytes, variable-length integers at every width, framing, the MACs and key
//! derivations with their inputs and outputs, whole handshakes, the error codes, and bytes a
//! decoder must refuse. This test regenerates them from the crate and fails when the files
//! differ; `TICKROOM_UPDATE_VECTORS=1 cargo test -p tickroom-protocol --test vectors` writes
//! them (after a deliberate wire change, with PROTOCOL_VERSION bumped).

use std::path::PathBuf;

use serde_json::{json, Value};
use tickroom_protocol::codec::{
    decode_client, decode_server, encode_client, encode_server, frame_client, frame_server,
    MAX_CLIENT_MSG_BYTES, MAX_SERVER_MSG_BYTES,
};
use tickroom_protocol::msg::{samples, Welcome, MAX_INPUTS_PER_MESSAGE};
use tickroom_protocol::token::{challenge_mac, encode_hex, resume_key};
use tickroom_protocol::{
    protocol_hash, ClientMsg, ErrorCode, ServerMsg, SyncKind, PROTOCOL_VERSION,
};

fn hex(bytes: &[u8]) -> String {
    encode_hex(bytes)
}

fn client_bytes(msg: &ClientMsg) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_client(msg, &mut buf).unwrap();
    buf
}

fn server_bytes(msg: &ServerMsg) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_server(msg, &mut buf).unwrap();
    buf
}

/// Largest integer a JSON reader that uses doubles (JavaScript) reads exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The serde JSON form of `value`, with integers above 2^53 − 1 written as decimal strings so
/// that every JSON reader gets them exactly.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    fn safe(v: Value) -> Value {
        match v {
            Value::Number(n) if n.as_u64().is_some_and(|u| u > MAX_SAFE_INTEGER) => {
                Value::String(n.to_string())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(safe).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, safe(v))).collect()),
            other => other,
        }
    }
    safe(serde_json::to_value(value).unwrap())
}

fn client_case(msg: &ClientMsg) -> Value {
    json!({
        "kind": msg.kind(),
        "message": to_json(msg),
        "hex": hex(&client_bytes(msg)),
    })
}

fn server_case(msg: &ServerMsg) -> Value {
    json!({
        "message": to_json(msg),
        "hex": hex(&server_bytes(msg)),
    })
}

/// Unsigned integers at every varint width boundary, each as a `Ping.client_time_us`.
const VARINT_VALUES: [u64; 12] = [
    0,
    1,
    250,
    251,
    65_535,
    65_536,
    4_294_967_295,
    4_294_967_296,
    (1 << 53) - 1,
    1 << 53,
    u64::MAX - 1,
    u64::MAX,
];

fn messages() -> Value {
    let (client, server) = samples();
    let mut client: Vec<Value> = client.iter().map(client_case).collect();
    let mut server: Vec<Value> = server.iter().map(server_case).collect();
    // Edge cases: empty byte strings and lists, the largest counts, every error code.
    client.push(client_case(&ClientMsg::Input {
        seq: u64::MAX,
        tick: 0,
        ack_tick: u64::MAX,
        inputs: vec![],
    }));
    client.push(client_case(&ClientMsg::Message {
        seq: 1,
        payload: vec![],
    }));
    client.push(client_case(&ClientMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        protocol_hash: protocol_hash(),
        ticket: "j2.1.é✓".into(),
    }));
    for code in ErrorCode::all() {
        server.push(server_case(&ServerMsg::Kicked { code }));
    }
    json!({
        "about": "Every message: its JSON form (serde's: enums externally tagged, byte strings as arrays of numbers, integers above 2^53 - 1 as decimal strings) and the hex of its bincode-2 encoding (standard config: little endian, variable-length integers). `client` is client to server, `server` server to client.",
        "protocol_version": PROTOCOL_VERSION,
        "protocol_hash": format!("{:016x}", protocol_hash()),
        "client": client,
        "server": server,
    })
}

fn varints() -> Value {
    let cases: Vec<Value> = VARINT_VALUES
        .iter()
        .map(|&v| {
            let msg = ClientMsg::Ping {
                seq: 1,
                client_time_us: v,
            };
            let bytes = client_bytes(&msg);
            // Tag (1 byte) and seq (1 byte) first, then the integer.
            json!({
                "value": v.to_string(),
                "hex": hex(&bytes[2..]),
                "ping_hex": hex(&bytes),
            })
        })
        .collect();
    json!({
        "about": "Unsigned integers in bincode 2's variable-length form: < 251 is one byte; 251 + u16 LE; 252 + u32 LE; 253 + u64 LE. `value` is a decimal string (u64 does not fit a JSON double); `ping_hex` is the whole Ping {seq: 1, client_time_us: value} it was taken from.",
        "cases": cases,
    })
}

fn framing() -> Value {
    let (client, server) = samples();
    let framed = |bytes: Vec<u8>| {
        json!({
            "body_hex": hex(&bytes[4..]),
            "framed_hex": hex(&bytes),
        })
    };
    let mut c = Vec::new();
    frame_client(&client[0], &mut c).unwrap();
    let mut s = Vec::new();
    frame_server(&server[1], &mut s).unwrap();
    json!({
        "about": "QUIC's reliable stream carries each message as a u32 little-endian length, then the body. WebSocket carries each message as one binary message, no prefix. QUIC datagrams carry one body each, no prefix.",
        "length_prefix_bytes": 4,
        "max_client_message_bytes": MAX_CLIENT_MSG_BYTES,
        "max_server_message_bytes": MAX_SERVER_MSG_BYTES,
        "max_inputs_per_message": MAX_INPUTS_PER_MESSAGE,
        "client": framed(c),
        "server": framed(s),
    })
}

fn crypto() -> Value {
    let secret = [0x11u8; 32];
    let nonce: [u8; 32] = std::array::from_fn(|i| i as u8);
    let macs: Vec<Value> = [(secret, nonce), ([0u8; 32], [0xffu8; 32])]
        .iter()
        .map(|(s, n)| {
            json!({
                "secret_hex": hex(s),
                "nonce_hex": hex(n),
                "mac_hex": hex(&challenge_mac(s, n)),
            })
        })
        .collect();
    let keys: Vec<Value> = [
        (secret, 42u64, 0u32),
        (secret, 42, 1),
        (secret, u64::MAX, 7),
    ]
    .iter()
    .map(|(s, id, n)| {
        json!({
            "join_secret_hex": hex(s),
            "session_id": id.to_string(),
            "resume_counter": n,
            "resume_key_hex": hex(&resume_key(s, *id, *n)),
        })
    })
    .collect();
    json!({
        "about": "challenge_mac = HMAC-SHA256(key = secret, data = \"tickroom challenge v1\" || nonce). resume_key = HKDF-SHA256(ikm = join secret, salt = \"tickroom resume key v1\", info = session_id as u64 LE || resume_counter as u32 LE), 32 bytes.",
        "challenge_mac": macs,
        "resume_key": keys,
    })
}

fn welcome(session_id: u64, resume_counter: u32, next_seq: u64, resumed: bool) -> Welcome {
    Welcome {
        session_id,
        resume_counter,
        room_id: 1234,
        player_id: 99,
        slot: 1,
        max_players: 2,
        sync: SyncKind::State,
        tick_rate_hz: 30,
        tick: 600,
        next_seq,
        resumed,
        input_redundancy: 8,
    }
}

fn handshakes() -> Value {
    let join_secret = [0x5au8; 32];
    let session_id = 0x0123_4567_89ab_cdef;
    let nonce_1 = [0x01u8; 32];
    let nonce_2 = [0x02u8; 32];
    let step = |from: &str, bytes: Vec<u8>, message: Value| json!({ "from": from, "message": message, "hex": hex(&bytes) });
    let c = |m: ClientMsg| step("client", client_bytes(&m), to_json(&m));
    let s = |m: ServerMsg| step("server", server_bytes(&m), to_json(&m));
    let join = vec![
        c(ClientMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            protocol_hash: protocol_hash(),
            ticket: "j2.1.opaque-ticket-from-the-gateway".into(),
        }),
        s(ServerMsg::Challenge { nonce: nonce_1 }),
        c(ClientMsg::ChallengeResponse {
            mac: challenge_mac(&join_secret, &nonce_1),
        }),
        s(ServerMsg::Welcome(welcome(session_id, 0, 1, false))),
        c(ClientMsg::Input {
            seq: 1,
            tick: 1,
            ack_tick: 600,
            inputs: vec![serde_bytes::ByteBuf::from(vec![1, 0, 0])],
        }),
    ];
    let key = resume_key(&join_secret, session_id, 0);
    let resume = vec![
        c(ClientMsg::Resume {
            protocol_version: PROTOCOL_VERSION,
            protocol_hash: protocol_hash(),
            session_id,
            last_frame: 600,
        }),
        s(ServerMsg::Challenge { nonce: nonce_2 }),
        c(ClientMsg::ChallengeResponse {
            mac: challenge_mac(&key, &nonce_2),
        }),
        s(ServerMsg::Welcome(welcome(session_id, 1, 2, true))),
        c(ClientMsg::Input {
            seq: 2,
            tick: 2,
            ack_tick: 610,
            inputs: vec![
                serde_bytes::ByteBuf::from(vec![1, 0, 0]),
                serde_bytes::ByteBuf::from(vec![0, 1, 0]),
            ],
        }),
    ];
    json!({
        "about": "A join, then a resume of the same session on a new connection. The join answers the challenge with the join secret the gateway returned; the resume with resume_key(join secret, session id, the last Welcome's resume_counter). Sequence numbers continue across the resume from the Welcome's next_seq.",
        "join_secret_hex": hex(&join_secret),
        "session_id": session_id.to_string(),
        "join": join,
        "resume": resume,
    })
}

fn errors() -> Value {
    let codes: Vec<Value> = ErrorCode::all()
        .map(|c| {
            json!({
                "code": c.as_u16(),
                "name": c.name(),
                "ws_close_code": c.ws_close_code(),
            })
        })
        .collect();
    json!({
        "about": "Every error code: its number on the wire (Error, Kicked, Refused; QUIC's application close code), its name (also the gateway's JSON `error`), and the WebSocket close code that carries it (4000 + code).",
        "codes": codes,
    })
}

fn invalid() -> Value {
    let (client, server) = samples();
    let mut cases = Vec::new();
    let mut refuse = |direction: &str, why: &str, bytes: Vec<u8>| {
        let refused = match direction {
            "client" => decode_client(&bytes).is_err(),
            _ => decode_server(&bytes).is_err(),
        };
        assert!(refused, "{direction} {why} must be refused");
        cases.push(json!({ "direction": direction, "why": why, "hex": hex(&bytes) }));
    };
    let mut trailing = client_bytes(&client[7]);
    trailing.push(0);
    refuse("client", "a byte after the message", trailing);
    refuse("client", "an unknown message tag", vec![0x7f, 0x01]);
    refuse("client", "empty", vec![]);
    let hello = client_bytes(&client[0]);
    refuse("client", "cut short", hello[..hello.len() - 1].to_vec());
    // An Input declaring more entries than the limit (before any entry is read).
    let mut many = vec![3u8, 1, 1, 1, 251];
    many.extend_from_slice(&((MAX_INPUTS_PER_MESSAGE as u16) + 1).to_le_bytes());
    refuse("client", "more inputs than max_inputs_per_message", many);
    // A varint with the u128 marker (254) where a u64 is expected.
    refuse("client", "an integer wider than u64", vec![6, 1, 254]);
    let mut trailing = server_bytes(&server[0]);
    trailing.push(0);
    refuse("server", "a byte after the message", trailing);
    refuse("server", "an unknown message tag", vec![0x7f]);
    json!({
        "about": "Bytes a decoder must refuse with an error (and the connection be closed), never a crash.",
        "cases": cases,
    })
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

#[test]
fn vector_files_match_the_crate() {
    let files = [
        ("messages.json", messages()),
        ("varints.json", varints()),
        ("framing.json", framing()),
        ("crypto.json", crypto()),
        ("handshakes.json", handshakes()),
        ("errors.json", errors()),
        ("invalid.json", invalid()),
    ];
    let dir = vectors_dir();
    let stale: Vec<&str> = files
        .iter()
        .filter(|(name, value)| {
            !tickroom_testkit::generated_json_is_current(&dir.join(name), value)
        })
        .map(|(name, _)| *name)
        .collect();
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the crate encodes: if the wire changed on purpose, bump \
         PROTOCOL_VERSION and run TICKROOM_UPDATE_VECTORS=1 cargo test -p tickroom-protocol --test vectors"
    );
}

/// Every vector decodes back to its message (the files are read, not regenerated).
#[test]
fn vectors_decode_to_their_messages() {
    let text = std::fs::read_to_string(vectors_dir().join("messages.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    for case in v["client"].as_array().unwrap() {
        let bytes = tickroom_protocol::token::decode_hex(case["hex"].as_str().unwrap()).unwrap();
        let msg = decode_client(&bytes).unwrap();
        assert_eq!(to_json(&msg), case["message"]);
    }
    for case in v["server"].as_array().unwrap() {
        let bytes = tickroom_protocol::token::decode_hex(case["hex"].as_str().unwrap()).unwrap();
        let msg = decode_server(&bytes).unwrap();
        assert_eq!(to_json(&msg), case["message"]);
    }
}
