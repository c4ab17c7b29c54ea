//! The gateway's HTTP JSON contract, defined once for both ends: the gateway serialises these
//! types and `GatewayClient` deserialises them. Pure serde (no IO); ids are JSON numbers, as in
//! every other gateway answer (room and player ids stay below 2^53).

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use tickroom_game::{MetaValue, PlayerMetadata};

/// `POST /v1/matchmaking` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnqueueRequest {
    /// The mode to queue for.
    pub mode: String,
    /// Optional `{"key": "text" | integer}` object put in the join ticket. It is supplied by
    /// the client, so it is only fit for what a player may choose (display name, loadout);
    /// trusted values such as ratings will be added by the gateway's matchmaking, not taken
    /// from here. Anything else (floats, bools, null, arrays, objects, or entries breaking
    /// `PlayerMetadata::check`) is refused.
    #[serde(default, skip_serializing_if = "is_empty", with = "plain_metadata")]
    pub metadata: PlayerMetadata,
    /// Optional `{"key": "text" | integer}` object the mode's matchmaking rules read: a
    /// rating, a region, a game version, `latency.<region>` in ms (see the mode's
    /// `[mode.matchmaking]`). A mode without rules takes none; a property the rules do not
    /// name, or a missing or mistyped one, is `400 bad_request`. Same size limits as
    /// `metadata`.
    #[serde(default, skip_serializing_if = "is_empty", with = "plain_metadata")]
    pub properties: PlayerMetadata,
    /// Queue the caller's whole party (the caller must be its leader): every member gets a
    /// ticket (`GET /v1/parties/{id}` lists them), with the leader's properties; the party
    /// is matched as one unit, in one room and on one team. `400 bad_request` when the party
    /// is larger than the mode's room (or team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_id: Option<String>,
}

/// A party (`POST /v1/parties`, `POST /v1/parties/join`, `GET /v1/parties/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyResponse {
    /// The party's id (32 hex digits).
    pub party_id: String,
    /// The code others join it with (8 characters of Crockford base32, any case).
    pub code: String,
    /// Who created it: the one who queues it; the party ends when the leader leaves.
    pub leader: u64,
    /// Everyone in it, the leader first.
    pub members: Vec<u64>,
    /// While the party is queued or matched: each member's ticket, to poll.
    #[serde(default)]
    pub tickets: Vec<PartyTicket>,
}

/// One member's ticket of a queued party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyTicket {
    /// The member.
    pub player_id: u64,
    /// Its ticket (poll `GET /v1/matchmaking/{ticket_id}`).
    pub ticket_id: String,
}

/// `POST /v1/parties/join` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinPartyRequest {
    /// The party's code.
    pub code: String,
}

/// `POST /v1/rooms` body: a private room of this mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRoomRequest {
    /// The room's mode.
    pub mode: String,
}

/// `POST /v1/rooms` answer (status 201): the room and the code friends join it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRoomResponse {
    /// The room.
    pub room_id: u64,
    /// Its mode.
    pub mode: String,
    /// The join code (8 characters of Crockford base32; case does not matter): `POST
    /// /v1/rooms/join` with it, creator included.
    pub code: String,
    /// The code dies at this time, unix ms, if nobody has joined the room by then.
    pub expires_ms: u64,
}

/// `POST /v1/rooms/join` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinByCodeRequest {
    /// A private room's join code.
    pub code: String,
}

/// `POST /v1/rooms/watch` body: the room to watch as a spectator, exactly one of a public
/// room's id or a private room's join code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// A public room's id (from a player of it, or an operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<u64>,
    /// A private room's join code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Why matchmaking grouped these players (modes with matchmaking rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grouping {
    /// The rating window (±) of the match's anchor (the oldest ticket that could start it)
    /// when it formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// Highest minus lowest rating in the match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<u32>,
    /// The region the match plays in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Modes with `teams`: who is on which team (player ids); a party is on one team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<Vec<u64>>>,
}

/// The answer of every login route and of refresh: a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The stable player id.
    pub player_id: u64,
    /// The bearer token for the other routes (`Authorization: Bearer <token>`).
    pub session_token: String,
    /// When the token expires, unix ms (refresh before; a login lives 24 h at most).
    pub expires_ms: u64,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable `ErrorCode` number.
    pub code: u16,
    /// The `ErrorCode` name, e.g. `"rate_limited"`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

/// `POST /v1/auth/device` body. Anyone who knows a device id logs in as its player, so the
/// id must be unguessable: at least 128 random bits, written as at least 32 hex digits or 22
/// base64url characters (`A-Z a-z 0-9 - _`, no padding), at most 128 characters
/// (`tickroom_protocol::api::check_device_id`); anything else is `400 bad_request`. A client
/// draws 16 random bytes once and keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogin {
    /// A stable, random id of the device (see above).
    pub device_id: String,
}

/// `POST /v1/auth/custom` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomLogin {
    /// The studio-signed account token (see `auth`).
    pub token: String,
}

/// `POST /v1/matchmaking` answer (status 202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnqueueResponse {
    /// The ticket to poll or cancel.
    pub ticket_id: String,
    /// The mode queued for.
    pub mode: String,
}

/// `GET /v1/matchmaking/{ticket_id}` query.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PollQuery {
    /// Hold the poll at most this long, in ms (capped by `long_poll_max`).
    pub wait_ms: Option<u64>,
}

/// `GET /v1/matchmaking/{ticket_id}` answer, tagged by `"status"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PollResponse {
    /// Still waiting: poll again.
    Queued {
        /// The ticket polled.
        ticket_id: String,
        /// How long it has waited so far, in ms.
        queued_ms: u64,
    },
    /// Placed: join the room with the ticket.
    Matched(MatchedResponse),
}

/// Where to play, with a join ticket signed at response time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedResponse {
    /// The room to join.
    pub room_id: u64,
    /// Its mode.
    pub mode: String,
    /// The room server hosting it (the ticket names it).
    pub server_id: String,
    /// QUIC address of the room server.
    pub quic_addr: String,
    /// WebSocket address of the room server.
    pub ws_addr: String,
    /// Hex SHA-256 of the room server's certificate.
    pub cert_fingerprint: String,
    /// The room server's WebSocket speaks TLS (`wss://`, the same certificate).
    #[serde(default)]
    pub ws_tls: bool,
    /// The signed join ticket to send in `Hello`.
    pub join_ticket: String,
    /// Hex of the secret that answers the join challenge.
    pub join_secret: String,
    /// When the join ticket expires, unix ms.
    pub expires_ms: u64,
    /// Why these players were grouped (modes with matchmaking rules or teams; absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping: Option<Box<Grouping>>,
}

impl MatchedResponse {
    /// The join secret as bytes; `None` when `join_secret` is not 64 hex digits.
    pub fn join_secret_bytes(&self) -> Option<crate::Secret> {
        crate::token::decode_hex(&self.join_secret).and_then(|b| b.try_into().ok())
    }
}

/// `DELETE /v1/matchmaking/{ticket_id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResponse {
    /// The ticket cancelled.
    pub ticket_id: String,
    /// Always `"cancelled"`.
    pub status: String,
}

/// `GET /v1/rooms/{room_id}` answer: where a player's room is and whether its server lives.
/// When its server died, the gateway moves a room that has a failover image to a live server
/// and answers with that one: the player resumes its session there (same session id, at the
/// addresses below). A player whose room's server is not `alive` queues again
/// (`POST /v1/matchmaking`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomResponse {
    /// The room asked about.
    pub room_id: u64,
    /// The room server that owns it now.
    pub server_id: String,
    /// `true` while that server's registration has not expired.
    pub alive: bool,
    /// The room's ownership epoch (1 at placement, +1 per reassignment).
    pub epoch: u64,
    /// That server's QUIC address.
    #[serde(default)]
    pub quic_addr: String,
    /// That server's WebSocket address.
    #[serde(default)]
    pub ws_addr: String,
    /// Hex SHA-256 of that server's certificate, to pin.
    #[serde(default)]
    pub cert_fingerprint: String,
    /// Whether its WebSocket listener speaks TLS (`wss://`).
    #[serde(default)]
    pub ws_tls: bool,
}

/// `GET /v1/matches/{room_id}` answer: a finished match and the result its game reported.
/// Shown only to the match's players.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchResultRecord {
    /// The room the match was played in.
    pub room_id: u64,
    /// Its game mode.
    pub mode: String,
    /// Who played, with their seats.
    pub players: Vec<MatchPlayer>,
    /// The game's own encoding of the result (base64, standard alphabet with padding, in JSON).
    #[serde(with = "base64_bytes")]
    pub result: Vec<u8>,
    /// When the match ended, unix ms.
    pub ended_ms: u64,
}

/// One player of a finished match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatchPlayer {
    /// The player.
    pub player_id: u64,
    /// The seat they held in the room.
    pub slot: u8,
}

/// Longest accepted device id, in characters.
pub const MAX_DEVICE_ID_CHARS: usize = 128;
/// Fewest characters of a device id written in hex digits only (16 bytes: 128 bits).
pub const MIN_DEVICE_ID_HEX_CHARS: usize = 32;
/// Fewest characters of any other device id, in the base64url alphabet (`A-Z a-z 0-9 - _`,
/// no padding): 22 characters carry 132 bits.
pub const MIN_DEVICE_ID_BASE64URL_CHARS: usize = 22;

/// Why a device id is refused by `POST /v1/auth/device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// Longer than `MAX_DEVICE_ID_CHARS`.
    #[error("a device id is at most 128 characters")]
    TooLong,
    /// Too short, or outside the base64url alphabet, to carry 128 random bits.
    #[error(
        "a device id must carry at least 128 random bits: 32 hex digits, or 22 base64url \
         characters (A-Z a-z 0-9 - _)"
    )]
    TooFewBits,
}

/// Checks that `id` can carry at least 128 random bits, so that device ids cannot be guessed:
/// at least `MIN_DEVICE_ID_HEX_CHARS` characters if it is hex digits only, else at least
/// `MIN_DEVICE_ID_BASE64URL_CHARS` base64url characters; at most `MAX_DEVICE_ID_CHARS`. A
/// client makes one once (16 random bytes, hex or base64url) and keeps it.
pub fn check_device_id(id: &str) -> Result<(), DeviceIdError> {
    if id.len() > MAX_DEVICE_ID_CHARS {
        return Err(DeviceIdError::TooLong);
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if !id.bytes().all(base64url) {
        return Err(DeviceIdError::TooFewBits);
    }
    let min = if id.bytes().all(|b| b.is_ascii_hexdigit()) {
        MIN_DEVICE_ID_HEX_CHARS
    } else {
        MIN_DEVICE_ID_BASE64URL_CHARS
    };
    if id.len() < min {
        return Err(DeviceIdError::TooFewBits);
    }
    Ok(())
}

fn is_empty(metadata: &PlayerMetadata) -> bool {
    metadata.0.is_empty()
}

/// Serde for `PlayerMetadata` as a plain JSON object of strings and whole numbers
/// (`{"name": "ann", "level": 3}`); deserialising also applies `PlayerMetadata::check`.
pub mod plain_metadata {
    use super::*;

    /// Writes the entries as a map of strings and integers.
    pub fn serialize<S: Serializer>(metadata: &PlayerMetadata, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(metadata.0.len()))?;
        for (key, value) in &metadata.0 {
            match value {
                MetaValue::Int(n) => map.serialize_entry(key, n)?,
                MetaValue::Str(text) => map.serialize_entry(key, text)?,
            }
        }
        map.end()
    }

    /// Reads a map of strings and integers; any other value, a repeated key or metadata that
    /// fails `PlayerMetadata::check` is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PlayerMetadata, D::Error> {
        let metadata = d.deserialize_map(MetadataVisitor)?;
        metadata.check().map_err(de::Error::custom)?;
        Ok(metadata)
    }

    struct MetadataVisitor;

    impl<'de> Visitor<'de> for MetadataVisitor {
        type Value = PlayerMetadata;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object whose values are strings or whole numbers")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlayerMetadata, A::Error> {
            let mut metadata = PlayerMetadata::default();
            while let Some(key) = map.next_key::<String>()? {
                let PlainValue(value) = map.next_value()?;
                if metadata.0.contains_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "metadata key `{key}` appears twice"
                    )));
                }
                metadata.0.insert(key, value);
            }
            Ok(metadata)
        }
    }

    /// One value: a string or an integer that fits `i64`, nothing else.
    struct PlainValue(MetaValue);

    impl<'de> Deserialize<'de> for PlainValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PlainValue, D::Error> {
            d.deserialize_any(ValueVisitor).map(PlainValue)
        }
    }

    struct ValueVisitor;

    impl Visitor<'_> for ValueVisitor {
        type Value = MetaValue;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a metadata value: a string or a whole number")
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<MetaValue, E> {
            Ok(MetaValue::Int(n))
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<MetaValue, E> {
            i64::try_from(n)
                .map(MetaValue::Int)
                .map_err(|_| E::custom("a metadata number must fit a signed 64-bit integer"))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<MetaValue, E> {
            Ok(MetaValue::Str(text.to_owned()))
        }

        fn visit_string<E: de::Error>(self, text: String) -> Result<MetaValue, E> {
            Ok(MetaValue::Str(text))
        }
    }
}

/// Serde for bytes as a base64 string (standard alphabet, with padding).
pub mod base64_bytes {
    use super::*;

    /// Writes the bytes as base64 text.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    /// Reads base64 text back into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        B64.decode(text.as_bytes()).map_err(de::Error::custom)
    }
}

// serde_json comes with the `tokio` feature.
#[cfg(all(test, feature = "tokio"))]
mod tests {
    use serde_json::json;
    use tickroom_game::sdk::{MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_BYTES};

    use super::*;

    /// Parses `metadata` as the `metadata` field of an enqueue request.
    fn check(metadata: serde_json::Value, expect: Result<PlayerMetadata, &str>) {
        let body = json!({"mode": "duel", "metadata": metadata}).to_string();
        let got = serde_json::from_str::<EnqueueRequest>(&body).map(|r| r.metadata);
        match (got, expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{body}"),
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{body}: {e}"),
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }

    fn meta(entries: &[(&str, MetaValue)]) -> PlayerMetadata {
        PlayerMetadata(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn metadata_takes_strings_and_whole_numbers_only() {
        let ann = meta(&[
            ("name", MetaValue::Str("ann".into())),
            ("rating", MetaValue::Int(1500)),
            ("debt", MetaValue::Int(i64::MIN)),
        ]);
        check(
            json!({"name": "ann", "rating": 1500, "debt": i64::MIN}),
            Ok(ann),
        );
        check(json!({}), Ok(PlayerMetadata::default()));
        let expected = "a metadata value: a string or a whole number";
        check(json!({"x": 1.5}), Err(expected));
        check(json!({"x": 2.0}), Err(expected));
        check(json!({"x": true}), Err(expected));
        check(json!({"x": null}), Err(expected));
        check(json!({"x": [1]}), Err(expected));
        check(json!({"x": {"y": 1}}), Err(expected));
        check(json!({"x": u64::MAX}), Err("signed 64-bit"));
        check(json!([1, 2]), Err("an object whose values"));
        check(json!("name"), Err("an object whose values"));
        check(json!(null), Err("an object whose values"));
    }

    #[test]
    fn metadata_limits_and_repeated_keys_are_refused() {
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_METADATA_ENTRIES)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        check(many.into(), Err("too many metadata entries"));
        check(json!({"": 1}), Err("key is empty or too long"));
        check(json!({"k".repeat(33): 1}), Err("key is empty or too long"));
        let long = "v".repeat(MAX_METADATA_VALUE_BYTES + 1);
        check(json!({ "name": long }), Err("value is too long"));
        let twice = r#"{"mode":"duel","metadata":{"a":1,"a":2}}"#;
        let e = serde_json::from_str::<EnqueueRequest>(twice).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }

    #[test]
    fn empty_metadata_is_not_sent_and_may_be_left_out() {
        let plain = EnqueueRequest {
            mode: "duel".into(),
            metadata: PlayerMetadata::default(),
            properties: PlayerMetadata::default(),
            party_id: None,
        };
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"mode": "duel"})
        );
        let back: EnqueueRequest = serde_json::from_str(r#"{"mode":"duel"}"#).unwrap();
        assert_eq!(back, plain);
        let named = EnqueueRequest {
            metadata: meta(&[("name", MetaValue::Str("ann".into()))]),
            ..plain
        };
        let text = serde_json::to_value(&named).unwrap();
        assert_eq!(text, json!({"mode": "duel", "metadata": {"name": "ann"}}));
        assert_eq!(
            serde_json::from_value::<EnqueueRequest>(text).unwrap(),
            named
        );
        let rated = EnqueueRequest {
            properties: meta(&[
                ("rating", MetaValue::Int(1500)),
                ("region", MetaValue::Str("eu".into())),
            ]),
            ..named
        };
        let text = serde_json::to_value(&rated).unwrap();
        assert_eq!(text["properties"], json!({"rating": 1500, "region": "eu"}));
        assert_eq!(
            serde_json::from_value::<EnqueueRequest>(text).unwrap(),
            rated
        );
        // Properties keep metadata's limits: a float is refused.
        let float = r#"{"mode":"duel","properties":{"rating":1.5}}"#;
        assert!(serde_json::from_str::<EnqueueRequest>(float).is_err());
    }

    #[test]
    fn match_results_carry_their_bytes_as_padded_base64() {
        let record = MatchResultRecord {
            room_id: 9,
            mode: "duel".into(),
            players: vec![MatchPlayer {
                player_id: 5,
                slot: 1,
            }],
            result: vec![0xfb, 0xff],
            ended_ms: 1_700_000_000_000,
        };
        let value = serde_json::to_value(&record).unwrap();
        let expected = json!({
            "room_id": 9,
            "mode": "duel",
            "players": [{"player_id": 5, "slot": 1}],
            "result": "+/8=",
            "ended_ms": 1_700_000_000_000u64,
        });
        assert_eq!(value, expected);
        assert_eq!(
            serde_json::from_value::<MatchResultRecord>(value).unwrap(),
            record
        );
        let mut bad = expected;
        bad["result"] = json!("not base64!");
        assert!(serde_json::from_value::<MatchResultRecord>(bad).is_err());
    }
}

#[cfg(test)]
mod device_id_tests {
    use super::*;

    fn check(id: &str, expect: Result<(), DeviceIdError>) {
        assert_eq!(check_device_id(id), expect, "{id:?}");
    }

    #[test]
    fn device_ids_need_128_random_bits() {
        let hex = "0123456789abcdefABCDEF0123456789";
        let b64 = "AbCdEfGhIjKlMnOpQrSt-_";
        check(hex, Ok(()));
        check(b64, Ok(()));
        check(&"z".repeat(MAX_DEVICE_ID_CHARS), Ok(()));
        check(
            &"a".repeat(MAX_DEVICE_ID_CHARS + 1),
            Err(DeviceIdError::TooLong),
        );
        for short in ["", "phone-1", &hex[..31], &hex[..22], &b64[..21]] {
            check(short, Err(DeviceIdError::TooFewBits));
        }
        for alphabet in [
            "AbCdEfGhIjKlMnOpQrSt+/",
            "AbCdEfGhIjKlMnOpQrStU=",
            "ééééééééééééééééééééééé",
        ] {
            check(alphabet, Err(DeviceIdError::TooFewBits));
        }
    }
}
