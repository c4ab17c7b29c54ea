//! Fuzz targets for the protocol crate's decoders: `decode_client`, `decode_server`, the
//! `FrameDecoder`, join tickets and session tokens (the text form and the claims behind a
//! valid MAC), key-ring text, hex, and the gateway API's JSON types. Each target feeds
//! mutated valid encodings and random bytes, and checks that the decoder returns (never
//! panics), that whatever it accepts survives a round trip, and that its largest single
//! allocation stays within its limit (measured by the counting allocator).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_bytes::ByteBuf;
use sha2::Sha256;
use tickroom_fuzz::alloc::{assert_installed, measure, CountingAlloc};
use tickroom_fuzz::mutate::hostile;
use tickroom_fuzz::{check_alloc, run};
use tickroom_game::{MetaValue, PlayerMetadata};
use tickroom_protocol::api::{EnqueueRequest, MatchPlayer, MatchResultRecord, WatchRequest};
use tickroom_protocol::codec::{
    decode_client, decode_server, encode_client, encode_server, frame_client, frame_server,
    FrameDecoder, LENGTH_PREFIX_BYTES, MAX_CLIENT_MSG_BYTES, MAX_SERVER_MSG_BYTES,
};
use tickroom_protocol::msg::{samples, MAX_INPUTS_PER_MESSAGE};
use tickroom_protocol::token::{decode_hex, encode_hex, MAX_TOKEN_BYTES};
use tickroom_protocol::{ClientMsg, KeyRing, RoomKeys, ServerMsg, SessionClaims, TicketClaims};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Random inputs are at most this long; mutated seeds grow up to each decoder's limit.
const MAX_RANDOM_BYTES: usize = 512;
/// How far past a limit the filler mutations reach, so "just over the limit" is tried too.
const PAST_LIMIT_BYTES: usize = 16;
/// The key id of the ring the token targets sign and verify with.
const KEY_ID: u16 = 3;
/// That key's secret.
const KEY_SECRET: [u8; 32] = [9; 32];
/// The time tokens are verified at, unix ms; seeds are valid then.
const NOW_MS: u64 = 1_700_000_000_000;
/// Tolerated clock skew when verifying, ms.
const SKEW_MS: u64 = 5_000;
/// Largest frame the frame-decoder target allows when it picks a small limit.
const MAX_SMALL_FRAME_BYTES: usize = 1_024;
/// Largest single read the frame-decoder target pushes at once.
const MAX_READ_BYTES: usize = 4_096;
/// A JSON body larger than this never reaches serde (the gateway's default body limit).
const MAX_JSON_BYTES: usize = tickroom_gateway::DEFAULT_MAX_BODY_BYTES;
/// The largest single allocation a client message's decode may make: the message's own limit
/// (sequences are bounded against their declared length before anything is allocated; a
/// 7-byte `Input` declaring 65,535 inputs used to preallocate 1 MiB).
const CLIENT_DECODE_ALLOC_BYTES: usize = MAX_CLIENT_MSG_BYTES;
/// The same for a server message (a 128 KiB `Frame` of empty inputs used to grow a 4 MiB `Vec`).
const SERVER_DECODE_ALLOC_BYTES: usize = MAX_SERVER_MSG_BYTES;
/// Allocations this small are never a concern (a `Vec<u8>`'s first capacity is 8 bytes).
const SMALL_ALLOC_BYTES: usize = 64;
/// The capacity a `Vec` of small elements takes on its first push.
const FIRST_VEC_CAPACITY: usize = 4;
/// What a JSON decode may allocate: text is copied at most once, plus a B-tree node or a
/// `Vec`'s doubling; generous, and still far below anything an attacker could use.
const JSON_ALLOC_FACTOR: usize = 4;

fn ring() -> KeyRing {
    KeyRing::single(KEY_ID, KEY_SECRET)
}

fn client_seeds() -> Vec<Vec<u8>> {
    let (mut client, _) = samples();
    client.push(ClientMsg::Hello {
        protocol_version: tickroom_protocol::PROTOCOL_VERSION,
        protocol_hash: tickroom_protocol::protocol_hash(),
        ticket: ring().sign_ticket(&ticket_claims()),
    });
    client.push(ClientMsg::Input {
        seq: 77,
        tick: 70,
        ack_tick: 65,
        inputs: (0..8u8)
            .map(|i| ByteBuf::from(vec![i, 255 - i, 1]))
            .collect(),
    });
    let mut buf = Vec::new();
    client
        .iter()
        .map(|m| {
            encode_client(m, &mut buf).expect("seed encodes");
            buf.clone()
        })
        .collect()
}

fn server_seeds() -> Vec<Vec<u8>> {
    let (_, mut server) = samples();
    server.push(ServerMsg::Frame {
        n: 400,
        inputs: (0..10u8).map(|i| ByteBuf::from(vec![i; 3])).collect(),
    });
    let mut buf = Vec::new();
    server
        .iter()
        .map(|m| {
            encode_server(m, &mut buf).expect("seed encodes");
            buf.clone()
        })
        .collect()
}

fn ticket_claims() -> TicketClaims {
    let mut metadata = PlayerMetadata::default();
    metadata
        .0
        .insert("name".into(), MetaValue::Str("ann".into()));
    metadata.0.insert("rating".into(), MetaValue::Int(1500));
    TicketClaims {
        player_id: 42,
        room_id: 7,
        mode: "arena".into(),
        server_id: "room-1".into(),
        issued_ms: NOW_MS,
        expires_ms: NOW_MS + 10_000,
        nonce: [5; 16],
        metadata,
        spectator: false,
    }
}

fn session_claims() -> SessionClaims {
    SessionClaims {
        player_id: 42,
        issued_ms: NOW_MS,
        expires_ms: NOW_MS + 3_600_000,
        login_ms: NOW_MS - 60_000,
    }
}

/// Valid tokens of both kinds, as bytes.
fn token_seeds() -> Vec<Vec<u8>> {
    let r = ring();
    vec![
        r.sign_ticket(&ticket_claims()).into_bytes(),
        r.sign_session(&session_claims()).into_bytes(),
    ]
}

/// The claims bodies (the third dot-separated part, decoded) of the seed tokens.
fn claims_seeds() -> Vec<Vec<u8>> {
    token_seeds()
        .iter()
        .map(|t| {
            let text = std::str::from_utf8(t).expect("tokens are text");
            let body = text.split('.').nth(2).expect("kind.kid.claims.mac");
            B64.decode(body).expect("claims are base64url")
        })
        .collect()
}

/// A token of `kind` over any claims bytes, with a valid MAC: what reaches the claims
/// decoder once the signature has been checked.
fn signed(kind: &str, claims: &[u8]) -> String {
    let mut token = format!("{kind}.{KEY_ID}.{}", B64.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(&KEY_SECRET).expect("any key length");
    mac.update(token.as_bytes());
    token.push('.');
    token.push_str(&B64.encode(mac.finalize().into_bytes()));
    token
}

fn api_seeds() -> Vec<Vec<u8>> {
    let enqueue = EnqueueRequest {
        mode: "duel".into(),
        metadata: ticket_claims().metadata.clone(),
        properties: ticket_claims().metadata,
        party_id: None,
    };
    let record = MatchResultRecord {
        room_id: 9,
        mode: "duel".into(),
        players: vec![
            MatchPlayer {
                player_id: 5,
                slot: 0,
            },
            MatchPlayer {
                player_id: 6,
                slot: 1,
            },
        ],
        result: vec![0xfb, 0xff, 0, 1],
        ended_ms: NOW_MS,
    };
    vec![
        serde_json::to_vec(&enqueue).expect("serialises"),
        serde_json::to_vec(&record).expect("serialises"),
        br#"{"mode":"arena"}"#.to_vec(),
        br#"{"mode":"ranked","properties":{"rating":1500,"region":"eu","latency.us":90}}"#.to_vec(),
        br#"{"mode":"duel","metadata":{"a":-9223372036854775808,"b":"\u00e9\ud83d\ude00"}}"#
            .to_vec(),
        br#"{"room_id":18446744073709551615}"#.to_vec(),
        br#"{"code":"7kq2-m9xd"}"#.to_vec(),
    ]
}

fn key_ring_seeds() -> Vec<Vec<u8>> {
    let hex32 = "ab".repeat(32);
    vec![
        format!("1:{hex32}").into_bytes(),
        format!("1:{hex32}, 7:{}\n2:{hex32}", "0F".repeat(40)).into_bytes(),
        format!("ids:{hex32},3:{hex32}").into_bytes(),
        ring().room_keys().to_string().into_bytes(),
        encode_hex(&[0, 1, 2, 254, 255]).into_bytes(),
    ]
}

#[test]
fn client_decoder() {
    let max_len = MAX_CLIENT_MSG_BYTES + PAST_LIMIT_BYTES;
    let input = hostile(client_seeds(), MAX_RANDOM_BYTES, max_len);
    run("client_decoder", input, |bytes| {
        let (decoded, stats) = measure(|| decode_client(&bytes));
        check_alloc("decode_client", &bytes, stats, CLIENT_DECODE_ALLOC_BYTES)?;
        if let Ok(msg) = decoded {
            let mut again = Vec::new();
            encode_client(&msg, &mut again).expect("a decoded message encodes");
            prop_assert_eq!(decode_client(&again), Ok(msg));
        }
        Ok(())
    });
}

#[test]
fn server_decoder() {
    let max_len = MAX_SERVER_MSG_BYTES + PAST_LIMIT_BYTES;
    let input = hostile(server_seeds(), MAX_RANDOM_BYTES, max_len);
    run("server_decoder", input, |bytes| {
        let (decoded, stats) = measure(|| decode_server(&bytes));
        check_alloc("decode_server", &bytes, stats, SERVER_DECODE_ALLOC_BYTES)?;
        if let Ok(msg) = decoded {
            // Unknown error numbers decode as `Unknown`: compare re-encodings, not values.
            let mut once = Vec::new();
            encode_server(&msg, &mut once).expect("a decoded message encodes");
            let back = decode_server(&once).expect("a re-encoded message decodes");
            let mut twice = Vec::new();
            encode_server(&back, &mut twice).expect("encodes");
            prop_assert_eq!(once, twice);
        }
        Ok(())
    });
}

/// A stream read the way a connection reads it: chunks of at most `MAX_READ_BYTES`, frames
/// drained after each, stop at the first error. The decoder's buffer may hold one frame and
/// two reads (twice that, for `Vec` doubling), whatever the length prefixes announce.
#[test]
fn frame_decoder() {
    let input = (
        hostile(framed_seeds(), MAX_RANDOM_BYTES, 2 * MAX_READ_BYTES),
        prop_oneof![0..=MAX_SMALL_FRAME_BYTES, Just(MAX_CLIENT_MSG_BYTES)],
        proptest::collection::vec(1..=MAX_READ_BYTES, 1..16),
    );
    run("frame_decoder", input, |(stream, max, reads)| {
        let limit = 2 * (LENGTH_PREFIX_BYTES + max + 2 * MAX_READ_BYTES);
        let mut dec = FrameDecoder::new(max);
        let mut rest = &stream[..];
        let mut read = reads.iter().cycle();
        let ((), stats) = measure(|| {
            while !rest.is_empty() {
                let n = (*read.next().expect("cycle")).min(rest.len());
                dec.push(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match dec.next_frame() {
                        Ok(Some(frame)) => assert!(frame.len() <= max, "frame over the limit"),
                        Ok(None) => break,
                        Err(_) => {
                            assert!(dec.next_len().is_err(), "an error is sticky");
                            return;
                        }
                    }
                }
            }
        });
        check_alloc("FrameDecoder", &stream, stats, limit)
    });
}

#[test]
fn tokens_as_text() {
    let max_len = MAX_TOKEN_BYTES + PAST_LIMIT_BYTES;
    let input = hostile(token_seeds(), MAX_RANDOM_BYTES, max_len);
    let r = ring();
    run("tokens_as_text", input, |bytes| {
        let token = String::from_utf8_lossy(&bytes);
        let (ticket, stats) = measure(|| r.verify_ticket(&token, NOW_MS, SKEW_MS));
        check_alloc("verify_ticket", &bytes, stats, MAX_TOKEN_BYTES)?;
        let (session, stats) = measure(|| r.verify_session(&token, NOW_MS, SKEW_MS));
        check_alloc("verify_session", &bytes, stats, MAX_TOKEN_BYTES)?;
        // Without the key nothing new can verify: whatever passes is a seed's claims.
        if let Ok(t) = ticket {
            prop_assert_eq!(t.claims(), &ticket_claims());
        }
        if let Ok(s) = session {
            prop_assert_eq!(s.claims(), &session_claims());
        }
        Ok(())
    });
}

/// The claims decoder is reached only behind a valid MAC, so hostile claims are signed here.
#[test]
fn token_claims() {
    let input = hostile(claims_seeds(), MAX_RANDOM_BYTES, MAX_TOKEN_BYTES);
    let r = ring();
    run("token_claims", input, |claims| {
        for kind in ["j1", "s1"] {
            let token = signed(kind, &claims);
            let (ticket, stats) = measure(|| r.verify_ticket(&token, NOW_MS, SKEW_MS));
            check_alloc("verify_ticket claims", &claims, stats, MAX_TOKEN_BYTES)?;
            let (session, stats) = measure(|| r.verify_session(&token, NOW_MS, SKEW_MS));
            check_alloc("verify_session claims", &claims, stats, MAX_TOKEN_BYTES)?;
            if let Ok(t) = ticket {
                let again = r.sign_ticket(t.claims());
                prop_assert_eq!(r.verify_ticket(&again, NOW_MS, SKEW_MS), Ok(t));
            }
            if let Ok(s) = session {
                let again = r.sign_session(s.claims());
                prop_assert_eq!(r.verify_session(&again, NOW_MS, SKEW_MS), Ok(s));
            }
        }
        Ok(())
    });
}

/// Key-ring text and hex come from operators, not peers; they must still never panic, and
/// allocate in proportion to the text.
#[test]
fn key_ring_text_and_hex() {
    let input = hostile(key_ring_seeds(), MAX_RANDOM_BYTES, MAX_RANDOM_BYTES);
    run("key_ring_text_and_hex", input, |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let per_entry = std::mem::size_of::<(u16, Vec<u8>)>();
        let limit = (text.len() * per_entry).max(FIRST_VEC_CAPACITY * per_entry);
        let (ring, stats) = measure(|| KeyRing::parse(&text));
        check_alloc("KeyRing::parse", &bytes, stats, limit)?;
        if let Ok(ring) = ring {
            prop_assert!(!ring.key_ids().is_empty());
        }
        let (room, stats) = measure(|| RoomKeys::parse(&text));
        check_alloc("RoomKeys::parse", &bytes, stats, limit)?;
        if let Ok(room) = room {
            prop_assert_eq!(
                RoomKeys::parse(&room.to_string()).map(|r| r.key_ids()),
                Ok(room.key_ids())
            );
        }
        let (decoded, stats) = measure(|| decode_hex(&text));
        check_alloc(
            "decode_hex",
            &bytes,
            stats,
            text.len().max(SMALL_ALLOC_BYTES),
        )?;
        if let Some(decoded) = decoded {
            prop_assert_eq!(encode_hex(&decoded), text.to_ascii_lowercase());
        }
        Ok(())
    });
}

#[test]
fn api_json() {
    let input = hostile(api_seeds(), MAX_RANDOM_BYTES, MAX_JSON_BYTES);
    run("api_json", input, |bytes| {
        let limit = JSON_ALLOC_FACTOR * bytes.len().max(MAX_RANDOM_BYTES);
        let (enqueue, stats) = measure(|| serde_json::from_slice::<EnqueueRequest>(&bytes));
        check_alloc("EnqueueRequest", &bytes, stats, limit)?;
        if let Ok(req) = enqueue {
            prop_assert!(
                req.metadata.check().is_ok(),
                "accepted metadata breaks its limits"
            );
            let text = serde_json::to_vec(&req).expect("serialises");
            prop_assert_eq!(
                serde_json::from_slice::<EnqueueRequest>(&text).ok(),
                Some(req)
            );
        }
        let (watch, stats) = measure(|| serde_json::from_slice::<WatchRequest>(&bytes));
        check_alloc("WatchRequest", &bytes, stats, limit)?;
        if let Ok(req) = watch {
            let text = serde_json::to_vec(&req).expect("serialises");
            prop_assert_eq!(
                serde_json::from_slice::<WatchRequest>(&text).ok(),
                Some(req)
            );
        }
        let (record, stats) = measure(|| serde_json::from_slice::<MatchResultRecord>(&bytes));
        check_alloc("MatchResultRecord", &bytes, stats, limit)?;
        if let Ok(record) = record {
            let text = serde_json::to_vec(&record).expect("serialises");
            let back = serde_json::from_slice::<MatchResultRecord>(&text).ok();
            prop_assert_eq!(back, Some(record));
        }
        Ok(())
    });
}

/// Streams of framed client and server messages.
fn framed_seeds() -> Vec<Vec<u8>> {
    let (client, server) = samples();
    let mut all = Vec::new();
    let mut one = Vec::new();
    for m in &client {
        frame_client(m, &mut all).expect("frames");
        one.clear();
        frame_client(m, &mut one).expect("frames");
    }
    let mut servers = Vec::new();
    for m in &server {
        frame_server(m, &mut servers).expect("frames");
    }
    vec![all, servers, one]
}

/// `Input { seq: 0, tick: 0, ack_tick: 0, inputs: <65,535 declared, none present> }`.
const DECLARED_INPUTS_7_BYTES: [u8; 7] = [3, 0, 0, 0, 0xFB, 0xFF, 0xFF];
/// Empty inputs in the largest `Input` that decodes (bincode charges 8 bytes per input).
const EMPTY_CLIENT_INPUTS: u32 = 8_000;
/// Empty inputs in a `Frame` that decodes and grows its `Vec` to 4 MiB.
const EMPTY_FRAME_INPUTS: u32 = 131_000;

/// A message `tag, zero, ..., inputs: count × empty` (bincode's u32 length form).
fn empty_inputs(prefix: &[u8], count: u32) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    bytes.push(0xFC);
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.resize(bytes.len() + count as usize, 0);
    bytes
}

/// Found by this harness: a few bytes declaring a long sequence preallocated 1 MiB.
#[test]
fn a_declared_input_count_is_refused_before_allocating() {
    let (decoded, stats) = measure(|| decode_client(&DECLARED_INPUTS_7_BYTES));
    assert!(decoded.is_err());
    assert!(
        stats.largest_bytes <= CLIENT_DECODE_ALLOC_BYTES,
        "{stats:?}"
    );
}

/// Found by this harness: 8,000 empty inputs decoded into a 192 KB `Vec`; more than the
/// protocol's 256 inputs per message are now refused.
#[test]
fn many_empty_inputs_are_refused_within_the_client_limit() {
    let bytes = empty_inputs(&[3, 0, 0, 0], EMPTY_CLIENT_INPUTS);
    let (decoded, stats) = measure(|| decode_client(&bytes));
    assert!(decoded.is_err(), "{decoded:?}");
    assert!(
        stats.largest_bytes <= CLIENT_DECODE_ALLOC_BYTES,
        "{stats:?}"
    );
    let bytes = empty_inputs(&[3, 0, 0, 0], MAX_INPUTS_PER_MESSAGE as u32);
    assert!(
        decode_client(&bytes).is_ok(),
        "the protocol's maximum decodes"
    );
}

/// Found by this harness: a 128 KiB `Frame` of empty inputs grew a 4 MiB `Vec`.
#[test]
fn many_empty_frame_inputs_are_refused_within_the_server_limit() {
    let bytes = empty_inputs(&[4, 0], EMPTY_FRAME_INPUTS);
    let (decoded, stats) = measure(|| decode_server(&bytes));
    assert!(decoded.is_err(), "{decoded:?}");
    assert!(
        stats.largest_bytes <= SERVER_DECODE_ALLOC_BYTES,
        "{stats:?}"
    );
}

#[test]
fn the_counting_allocator_is_installed() {
    assert_installed();
}
