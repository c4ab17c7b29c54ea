//! Golden byte vectors: the exact encoding of one sample of every message. A failing case here
//! is a wire-format change — bump PROTOCOL_VERSION and update the vectors on purpose.

use tickroom_protocol::codec::{encode_client, encode_server};
use tickroom_protocol::msg::samples;
use tickroom_protocol::token::encode_hex;

/// `(message kind, hex of its encoding)`, in the order of `samples()`.
const CLIENT: &[(&str, &str)] = &[
    ("hello", "0001fd08070605040302010674312e616263"),
    (
        "challenge_response",
        "010707070707070707070707070707070707070707070707070707070707070707",
    ),
    ("resume", "020109fb2c0129"),
    ("input", "03050403020301020303040506"),
    ("frame_input", "04060a037f8101"),
    ("checksum", "05070afdffffffffffffffff"),
    ("ping", "0608fc40420f00"),
    ("leave", "0709"),
    ("message", "080a026869"),
];

const SERVER: &[&str] = &[
    "000101010101010101010101010101010101010101010101010101010101010101",
    "01fb2c01024dfbd204030a011e00010008",
    "02070466756c6c",
    "03fbe803fbe703fbe60304000102fa",
    "040c020301000000",
    "050c",
    "060506",
    "0712",
    "080102",
    "0903030104",
    "0a03010009",
    "0b0a09",
];

#[test]
fn client_messages_match_golden_bytes() {
    let (client, _) = samples();
    assert_eq!(
        client.len(),
        CLIENT.len(),
        "a message was added or removed: add its vector"
    );
    let mut buf = Vec::new();
    for (msg, (kind, hex)) in client.iter().zip(CLIENT) {
        encode_client(msg, &mut buf).unwrap();
        assert_eq!(msg.kind(), *kind);
        assert_eq!(encode_hex(&buf), *hex, "wire format of {kind} changed");
    }
}

#[test]
fn server_messages_match_golden_bytes() {
    let (_, server) = samples();
    assert_eq!(
        server.len(),
        SERVER.len(),
        "a message was added or removed: add its vector"
    );
    let mut buf = Vec::new();
    for (i, (msg, hex)) in server.iter().zip(SERVER).enumerate() {
        encode_server(msg, &mut buf).unwrap();
        assert_eq!(
            encode_hex(&buf),
            *hex,
            "wire format of server message {i} ({msg:?}) changed"
        );
    }
}

#[test]
fn protocol_hash_is_pinned() {
    assert_eq!(
        tickroom_protocol::protocol_hash(),
        PROTOCOL_HASH,
        "schema changed: bump PROTOCOL_VERSION"
    );
    assert_eq!(tickroom_protocol::PROTOCOL_VERSION, 3);
}

const PROTOCOL_HASH: u64 = 0x8f4d0a007b762f69;
