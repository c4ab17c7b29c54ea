//! Property tests of every decoder and check in the protocol crate: round trips, arbitrary
//! bytes never panic, oversize lengths are refused before allocating, tokens reject every
//! tampering, and the replay window accepts each sequence number at most once.

use std::collections::HashSet;

use proptest::prelude::*;
use serde_bytes::ByteBuf;
use tickroom_protocol::codec::{
    decode_client, decode_server, encode_client, encode_server, frame_client, FrameDecoder,
    MAX_CLIENT_MSG_BYTES,
};
use tickroom_protocol::msg::samples;
use tickroom_protocol::{
    ClientMsg, ErrorCode, KeyRing, ReplayWindow, ServerMsg, TicketClaims, TokenError,
};

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (any::<u16>(), any::<u64>(), ".{0,40}").prop_map(|(v, h, t)| ClientMsg::Hello {
            protocol_version: v,
            protocol_hash: h,
            ticket: t
        }),
        any::<[u8; 32]>().prop_map(|mac| ClientMsg::ChallengeResponse { mac }),
        (any::<u16>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(v, h, s, f)| {
            ClientMsg::Resume {
                protocol_version: v,
                protocol_hash: h,
                session_id: s,
                last_frame: f,
            }
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(bytes(), 0..8)
        )
            .prop_map(|(seq, tick, ack_tick, i)| {
                ClientMsg::Input {
                    seq,
                    tick,
                    ack_tick,
                    inputs: i.into_iter().map(ByteBuf::from).collect(),
                }
            }),
        (any::<u64>(), any::<u64>(), bytes())
            .prop_map(|(seq, frame, input)| ClientMsg::FrameInput { seq, frame, input }),
        (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(seq, frame, hash)| ClientMsg::Checksum { seq, frame, hash }),
        (any::<u64>(), any::<u64>()).prop_map(|(seq, t)| ClientMsg::Ping {
            seq,
            client_time_us: t
        }),
        any::<u64>().prop_map(|seq| ClientMsg::Leave { seq }),
        (any::<u64>(), bytes()).prop_map(|(seq, payload)| ClientMsg::Message { seq, payload }),
    ]
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|nonce| ServerMsg::Challenge { nonce }),
        (any::<u16>(), ".{0,40}").prop_map(|(c, d)| ServerMsg::Error {
            code: ErrorCode::from(c),
            detail: d
        }),
        (any::<u64>(), any::<u64>(), any::<u64>(), bytes()).prop_map(
            |(tick, ack_seq, baseline, payload)| {
                ServerMsg::Snapshot {
                    tick,
                    ack_seq,
                    baseline,
                    payload,
                }
            }
        ),
        (any::<u64>(), proptest::collection::vec(bytes(), 0..10)).prop_map(|(n, i)| {
            ServerMsg::Frame {
                n,
                inputs: i.into_iter().map(ByteBuf::from).collect(),
            }
        }),
        any::<u64>().prop_map(|frame| ServerMsg::Desync { frame }),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| ServerMsg::Pong {
            client_time_us: a,
            server_time_us: b
        }),
        (any::<u64>(), any::<u8>())
            .prop_map(|(tick, players)| ServerMsg::Started { tick, players }),
        bytes().prop_map(|payload| ServerMsg::Message { payload }),
        bytes().prop_map(|result| ServerMsg::MatchEnded { result }),
        (any::<u64>(), any::<u16>()).prop_map(|(seq, c)| ServerMsg::Refused {
            seq,
            code: ErrorCode::from(c)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(msg in client_msg()) {
        let mut buf = Vec::new();
        encode_client(&msg, &mut buf).unwrap();
        prop_assert_eq!(decode_client(&buf).unwrap(), msg);
    }

    #[test]
    fn server_messages_round_trip(msg in server_msg()) {
        let mut buf = Vec::new();
        encode_server(&msg, &mut buf).unwrap();
        let back = decode_server(&buf).unwrap();
        // Unknown error numbers decode as ErrorCode::Unknown; compare re-encodings instead.
        let mut again = Vec::new();
        encode_server(&back, &mut again).unwrap();
        let mut canonical = Vec::new();
        encode_server(&decode_server(&again).unwrap(), &mut canonical).unwrap();
        prop_assert_eq!(again, canonical);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_client(&data);
        let _ = decode_server(&data);
    }

    #[test]
    fn mutated_samples_never_panic(index in 0usize..8, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let (client, _) = samples();
        let mut buf = Vec::new();
        encode_client(&client[index], &mut buf).unwrap();
        for (at, value) in flips {
            let i = at % buf.len();
            buf[i] = value;
        }
        let _ = decode_client(&buf);
        let _ = decode_client(&buf[..buf.len() / 2]);
    }

    #[test]
    fn framer_never_panics_and_splits_any_chunking(data in proptest::collection::vec(any::<u8>(), 0..512), cut in 1usize..17) {
        let mut dec = FrameDecoder::new(MAX_CLIENT_MSG_BYTES);
        for chunk in data.chunks(cut) {
            dec.push(chunk);
            while let Ok(Some(frame)) = dec.next_frame() {
                let _ = decode_client(frame);
            }
        }
    }

    #[test]
    fn framed_streams_decode_whatever_the_chunk_size(msgs in proptest::collection::vec(client_msg(), 1..8), cut in 1usize..40) {
        let mut stream = Vec::new();
        for m in &msgs {
            frame_client(m, &mut stream).unwrap();
        }
        let mut dec = FrameDecoder::new(MAX_CLIENT_MSG_BYTES);
        let mut out = Vec::new();
        for chunk in stream.chunks(cut) {
            dec.push(chunk);
            while let Some(frame) = dec.next_frame().unwrap() {
                out.push(decode_client(frame).unwrap());
            }
        }
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn any_oversize_length_header_is_refused(len in (MAX_CLIENT_MSG_BYTES as u32 + 1)..=u32::MAX) {
        let mut dec = FrameDecoder::new(MAX_CLIENT_MSG_BYTES);
        dec.push(&len.to_le_bytes());
        prop_assert!(dec.next_frame().is_err());
        prop_assert!(dec.buffered() <= 4);
    }

    #[test]
    fn tickets_with_a_flipped_bit_are_rejected(bit in 0usize..4096) {
        let ring = KeyRing::single(3, [9; 32]);
        let token = ring.sign_ticket(&claims());
        let mut bytes = token.clone().into_bytes();
        let i = (bit / 8) % bytes.len();
        bytes[i] ^= 1 << (bit % 8);
        if let Ok(tampered) = String::from_utf8(bytes) {
            if tampered != token {
                prop_assert!(ring.verify_ticket(&tampered, NOW, 0).is_err());
            }
        }
    }

    #[test]
    fn ticket_times_are_enforced(offset in -100_000i64..100_000, skew in 0u64..5_000) {
        let ring = KeyRing::single(3, [9; 32]);
        let c = claims();
        let token = ring.sign_ticket(&c);
        let now = (NOW as i64 + offset) as u64;
        let result = ring.verify_ticket(&token, now, skew);
        if now + skew < c.issued_ms {
            prop_assert_eq!(result, Err(TokenError::NotYetValid));
        } else if c.expires_ms + skew < now {
            prop_assert_eq!(result, Err(TokenError::Expired));
        } else {
            prop_assert!(result.is_ok());
        }
    }

    #[test]
    fn replay_window_accepts_each_seq_at_most_once(base in prop_oneof![Just(1u64), Just(u64::MAX - 300), any::<u64>()], offsets in proptest::collection::vec(0u64..200, 1..400)) {
        let mut w = ReplayWindow::default();
        let mut accepted = HashSet::new();
        for off in offsets {
            let seq = base.saturating_add(off).max(1);
            if w.check(seq).is_ok() {
                w.commit(seq);
                prop_assert!(accepted.insert(seq), "seq {} accepted twice", seq);
            }
        }
    }

    #[test]
    fn replay_window_accepts_every_fresh_in_window_seq(order in Just((1u64..=64).collect::<Vec<_>>()).prop_shuffle()) {
        // Any permutation inside the window is accepted completely.
        let mut w = ReplayWindow::default();
        for seq in &order {
            prop_assert!(w.accept(*seq).is_ok());
        }
        for seq in &order {
            prop_assert!(w.check(*seq).is_err());
        }
    }
}

const NOW: u64 = 1_700_000_000_000;

fn claims() -> TicketClaims {
    TicketClaims {
        player_id: 1,
        room_id: 2,
        mode: "arena".into(),
        server_id: "room-1".into(),
        issued_ms: NOW,
        expires_ms: NOW + 10_000,
        nonce: [1; 16],
        metadata: Default::default(),
        spectator: false,
    }
}

#[test]
fn wrong_key_id_is_rejected() {
    let token = KeyRing::single(3, [9; 32]).sign_ticket(&claims());
    let other = KeyRing::single(4, [9; 32]);
    assert_eq!(
        other.verify_ticket(&token, NOW, 0),
        Err(TokenError::UnknownKey(3))
    );
}
