//! Signed tokens: `SessionToken` (who a player is, from login; HMAC-SHA256) and `JoinTicket`
//! (a single-use seat in one room on one server, from matchmaking; Ed25519), under keys derived
//! per purpose from a rotating `KeyRing`. Room servers hold only `RoomKeys`: they verify
//! tickets and cannot sign anything. Parse, don't validate: the verified types can only come
//! out of `verify_*`.
//!
//! Wire form: `{kind}.{key_id}.{base64url(claims)}.{base64url(tag)}`, the tag (MAC or
//! signature) covering everything before the last dot. Times are unix milliseconds passed in
//! by the caller.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use tickroom_game::PlayerMetadata;

use crate::codec;
use crate::msg::{Secret, SECRET_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Kind tag of session tokens on the wire.
const SESSION_KIND: &str = "s2";
/// Kind tag of join tickets on the wire.
const TICKET_KIND: &str = "j3";
/// Longest token accepted for parsing, in bytes.
pub const MAX_TOKEN_BYTES: usize = 2048;
/// Default tolerated clock difference between the signer and the verifier, in milliseconds.
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 5_000;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not in the `kind.kid.claims.mac` form, too long, or the claims do not decode.
    #[error("token is malformed")]
    Malformed,
    /// A session token was given where a ticket was expected, or the reverse.
    #[error("token is of the wrong kind")]
    WrongKind,
    /// The key id is not (or no longer) in the key ring.
    #[error("token was signed with unknown key {0}")]
    UnknownKey(u16),
    /// The MAC does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// Past its expiry (beyond the tolerated skew).
    #[error("token has expired")]
    Expired,
    /// Issued in the future (beyond the tolerated skew).
    #[error("token is not valid yet")]
    NotYetValid,
}

/// Why a key ring description did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// The ring has no key.
    #[error("the key ring is empty")]
    Empty,
    /// An entry is not `id:hex` with a numeric id and at least 32 hex-encoded bytes.
    #[error("key entry {0} is not `id:hexsecret` with a secret of 32 or more bytes")]
    BadEntry(usize),
    /// Two keys share an id.
    #[error("key id {0} appears twice")]
    DuplicateId(u16),
    /// The player-id key (`ids:hex`) is shorter than 32 bytes or given twice.
    #[error("the player-id key `ids:hexsecret` must be given once, with 32 or more bytes")]
    BadPlayerIdKey,
}

/// What a session token says: who the player is and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The player.
    pub player_id: u64,
    /// When it was signed, unix ms.
    pub issued_ms: u64,
    /// When it stops being valid, unix ms.
    pub expires_ms: u64,
    /// When the player logged in, unix ms: refreshes keep it, so a session's whole lifetime
    /// across refreshes is capped.
    pub login_ms: u64,
}

/// What a join ticket says: one seat for one player in one room on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    /// The player the seat is for.
    pub player_id: u64,
    /// The room.
    pub room_id: u64,
    /// The game mode of the room.
    pub mode: String,
    /// The room server that hosts the room; others refuse the ticket (`WrongServer`).
    pub server_id: String,
    /// When it was signed, unix ms.
    pub issued_ms: u64,
    /// When it stops being valid, unix ms (about 10 s after issue).
    pub expires_ms: u64,
    /// Makes each ticket unique; the room server remembers used nonces until expiry.
    pub nonce: [u8; 16],
    /// What the gateway knows of the player (display name, rating); the game sees it at
    /// admission and join.
    pub metadata: PlayerMetadata,
    /// A spectator ticket: the holder watches the room read-only, outside the player seats.
    pub spectator: bool,
}

/// A session token whose signature and validity were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    claims: SessionClaims,
    key_id: u16,
}

/// A join ticket whose signature and validity were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTicket {
    claims: TicketClaims,
    key_id: u16,
}

impl SessionToken {
    /// The verified claims.
    pub fn claims(&self) -> &SessionClaims {
        &self.claims
    }
    /// The id of the key that signed it.
    pub fn key_id(&self) -> u16 {
        self.key_id
    }
}

impl JoinTicket {
    /// The verified claims.
    pub fn claims(&self) -> &TicketClaims {
        &self.claims
    }
    /// The id of the key that signed it.
    pub fn key_id(&self) -> u16 {
        self.key_id
    }
}

/// The key ring of the gateways: master keys with ids. Each master key is only the input of
/// HKDF-SHA256, which derives one key per purpose, so no two purposes ever share a key:
///
/// - a session-token MAC key (HMAC-SHA256): only gateways hold it;
/// - an Ed25519 ticket signing key: only gateways hold it; room servers hold its public half;
/// - a join-secret key: gateways and room servers (a room server derives the join secret of a
///   ticket it verified);
///
/// and player ids come from a key of their own (`ids:hex` in the ring text, else the oldest
/// master key as it is), which never rotates: retiring a signing key changes nobody's id.
/// Signs with the newest key, verifies with any key still in the ring, so a key rotates
/// without logging anyone out. `Debug` never shows a secret.
#[derive(Clone)]
pub struct KeyRing {
    /// Sorted by id, ascending; never empty.
    keys: Vec<RingKey>,
    /// What room servers get: ticket verification and join secrets.
    room: RoomKeys,
    /// Player ids are keyed hashes under this.
    player_ids: Vec<u8>,
}

#[derive(Clone)]
struct RingKey {
    id: u16,
    session: Secret,
    ticket: SigningKey,
}

/// What a room server holds: per key id, the public key that verifies join tickets and the key
/// that derives join secrets. It cannot sign a session token or a ticket. Text form (for
/// `TICKROOM_ROOM_KEYS`, printed by `tickroom room-keys`): `id:verifyhex:joinhex[,...]`.
#[derive(Clone)]
pub struct RoomKeys {
    /// Sorted by id, ascending; never empty.
    keys: Vec<RoomKey>,
}

#[derive(Clone)]
struct RoomKey {
    id: u16,
    verify: VerifyingKey,
    join: Secret,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u16> = self.keys.iter().map(|k| k.id).collect();
        f.debug_struct("RoomKeys")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

/// Salt of every per-purpose derivation from a master key.
const RING_SALT: &[u8] = b"tickroom key ring v1";

impl RingKey {
    fn derive(id: u16, master: &[u8]) -> (RingKey, RoomKey) {
        let ticket = SigningKey::from_bytes(&derive_key(master, RING_SALT, b"ticket ed25519"));
        let room = RoomKey {
            id,
            verify: ticket.verifying_key(),
            join: derive_key(master, RING_SALT, b"join secret"),
        };
        let key = RingKey {
            id,
            session: derive_key(master, RING_SALT, b"session token"),
            ticket,
        };
        (key, room)
    }
}

impl KeyRing {
    /// A ring of one key.
    pub fn single(id: u16, secret: Secret) -> Self {
        KeyRing::new(vec![(id, secret.to_vec())]).expect("one key of 32 bytes is a valid ring")
    }

    /// A ring from `(id, secret)` pairs; secrets must be at least 32 bytes. Player ids are
    /// derived under the oldest key (see [`KeyRing::with_player_id_key`]).
    pub fn new(mut keys: Vec<(u16, Vec<u8>)>) -> Result<Self, KeyRingError> {
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        if let Some(i) = keys.iter().position(|(_, s)| s.len() < SECRET_LEN) {
            return Err(KeyRingError::BadEntry(i));
        }
        keys.sort_by_key(|(id, _)| *id);
        if let Some(w) = keys.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(KeyRingError::DuplicateId(w[0].0));
        }
        let player_ids = keys[0].1.clone();
        let (keys, room): (Vec<RingKey>, Vec<RoomKey>) = keys
            .iter()
            .map(|(id, master)| RingKey::derive(*id, master))
            .unzip();
        Ok(KeyRing {
            keys,
            room: RoomKeys { keys: room },
            player_ids,
        })
    }

    /// The same ring deriving player ids under `key` (at least 32 bytes): pin it before the
    /// oldest key is retired, and ids stay as they were.
    pub fn with_player_id_key(mut self, key: Vec<u8>) -> Result<Self, KeyRingError> {
        if key.len() < SECRET_LEN {
            return Err(KeyRingError::BadPlayerIdKey);
        }
        self.player_ids = key;
        Ok(self)
    }

    /// Parses `id:hexsecret[,id:hexsecret...]` with an optional `ids:hexsecret` (the
    /// player-id key), the form of `TICKROOM_KEYS` and key files (whitespace and newlines are
    /// accepted as separators too).
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys = Vec::new();
        let mut player_ids = None;
        for (i, entry) in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, hex) = entry.split_once(':').ok_or(KeyRingError::BadEntry(i))?;
            let secret = decode_hex(hex).ok_or(KeyRingError::BadEntry(i))?;
            if id == "ids" {
                if player_ids.replace(secret).is_some() {
                    return Err(KeyRingError::BadPlayerIdKey);
                }
                continue;
            }
            let id: u16 = id.parse().map_err(|_| KeyRingError::BadEntry(i))?;
            keys.push((id, secret));
        }
        let ring = KeyRing::new(keys)?;
        match player_ids {
            Some(key) => ring.with_player_id_key(key),
            None => Ok(ring),
        }
    }

    /// The id new tokens are signed with.
    pub fn newest_id(&self) -> u16 {
        self.newest().id
    }

    /// Every key id in the ring.
    pub fn key_ids(&self) -> Vec<u16> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// What room servers need of this ring: ticket verification and join secrets.
    pub fn room_keys(&self) -> &RoomKeys {
        &self.room
    }

    fn newest(&self) -> &RingKey {
        &self.keys[self.keys.len() - 1]
    }

    /// Signs a session token (HMAC-SHA256) with the newest key.
    pub fn sign_session(&self, claims: &SessionClaims) -> String {
        let key = self.newest();
        let signed = signed_part(SESSION_KIND, key.id, &codec::encode_value(claims));
        let mac = mac_of(&key.session, signed.as_bytes());
        format!("{signed}.{}", B64.encode(mac))
    }

    /// Signs a join ticket (Ed25519) with the newest key.
    pub fn sign_ticket(&self, claims: &TicketClaims) -> String {
        let key = self.newest();
        let signed = signed_part(TICKET_KIND, key.id, &codec::encode_value(claims));
        let signature = key.ticket.sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(signature.to_bytes()))
    }

    /// Issues a join ticket: the signed token and the join secret its holder answers the
    /// challenge with, in one call (the room server derives the secret again from the
    /// verified ticket).
    pub fn issue_ticket(&self, claims: TicketClaims) -> (String, Secret) {
        let token = self.sign_ticket(&claims);
        let key_id = self.newest_id();
        let secret = self.join_secret(&JoinTicket { claims, key_id });
        (token, secret)
    }

    /// Checks a session token's signature and validity at `now_ms`, tolerating `skew_ms`.
    pub fn verify_session(
        &self,
        token: &str,
        now_ms: u64,
        skew_ms: u64,
    ) -> Result<SessionToken, TokenError> {
        let parts = split(SESSION_KIND, token)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == parts.key_id)
            .ok_or(TokenError::UnknownKey(parts.key_id))?;
        let mut check = HmacSha256::new_from_slice(&key.session).expect("any key length");
        check.update(parts.signed.as_bytes());
        // verify_slice compares in constant time.
        check
            .verify_slice(&parts.tag)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: SessionClaims =
            codec::decode_value(&parts.body).map_err(|_| TokenError::Malformed)?;
        check_times(claims.issued_ms, claims.expires_ms, now_ms, skew_ms)?;
        Ok(SessionToken {
            claims,
            key_id: parts.key_id,
        })
    }

    /// Checks a join ticket's signature and validity at `now_ms`, tolerating `skew_ms`.
    pub fn verify_ticket(
        &self,
        token: &str,
        now_ms: u64,
        skew_ms: u64,
    ) -> Result<JoinTicket, TokenError> {
        self.room.verify_ticket(token, now_ms, skew_ms)
    }

    /// The secret a ticket holder uses to answer the join challenge (see
    /// [`RoomKeys::join_secret`]).
    pub fn join_secret(&self, ticket: &JoinTicket) -> Secret {
        self.room.join_secret(ticket)
    }

    /// A keyed hash under the player-id key, for deriving ids (e.g. player id from a device
    /// id) without storing anything. The key never rotates with the signing keys.
    pub fn derive_id(&self, label: &[u8], data: &[u8]) -> u64 {
        let mut mac = HmacSha256::new_from_slice(&self.player_ids).expect("any key length");
        mac.update(label);
        mac.update(data);
        let out = mac.finalize().into_bytes();
        let mut id = [0u8; 8];
        id.copy_from_slice(&out[..8]);
        // Keep ids positive in every JSON number implementation (53-bit safe) and non-zero.
        (u64::from_le_bytes(id) & ((1 << 53) - 1)).max(1)
    }
}

impl RoomKeys {
    /// Parses `id:verifyhex:joinhex[,...]` (32-byte Ed25519 public keys and join keys).
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys = Vec::new();
        for (i, entry) in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let bad = KeyRingError::BadEntry(i);
            let mut fields = entry.split(':');
            let (Some(id), Some(verify), Some(join), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad);
            };
            let id: u16 = id.parse().map_err(|_| bad.clone())?;
            let verify: [u8; 32] = decode_hex(verify)
                .and_then(|v| v.try_into().ok())
                .ok_or(bad.clone())?;
            let verify = VerifyingKey::from_bytes(&verify).map_err(|_| bad.clone())?;
            let join: Secret = decode_hex(join)
                .and_then(|v| v.try_into().ok())
                .ok_or(bad)?;
            keys.push(RoomKey { id, verify, join });
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        keys.sort_by_key(|k| k.id);
        if let Some(w) = keys.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(KeyRingError::DuplicateId(w[0].id));
        }
        Ok(RoomKeys { keys })
    }

    /// Every key id.
    pub fn key_ids(&self) -> Vec<u16> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// Checks a join ticket's signature and validity at `now_ms`, tolerating `skew_ms`.
    pub fn verify_ticket(
        &self,
        token: &str,
        now_ms: u64,
        skew_ms: u64,
    ) -> Result<JoinTicket, TokenError> {
        let parts = split(TICKET_KIND, token)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == parts.key_id)
            .ok_or(TokenError::UnknownKey(parts.key_id))?;
        let signature = Signature::from_slice(&parts.tag).map_err(|_| TokenError::BadSignature)?;
        key.verify
            .verify_strict(parts.signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: TicketClaims =
            codec::decode_value(&parts.body).map_err(|_| TokenError::Malformed)?;
        check_times(claims.issued_ms, claims.expires_ms, now_ms, skew_ms)?;
        Ok(JoinTicket {
            claims,
            key_id: parts.key_id,
        })
    }

    /// The secret a ticket holder uses to answer the join challenge. The gateway hands it to
    /// the player over HTTP with the ticket; the room server derives it again from the ticket,
    /// so a captured `Hello` alone cannot join.
    pub fn join_secret(&self, ticket: &JoinTicket) -> Secret {
        let key_id = match self.keys.iter().any(|k| k.id == ticket.key_id) {
            true => ticket.key_id,
            false => self.keys[0].id,
        };
        self.join_secret_of(key_id, &ticket.claims.nonce, ticket.claims.player_id)
            .expect("a key of the ring")
    }

    /// The join secret of the ticket that key `key_id` signed with `nonce` for `player_id`:
    /// what a server taking over a room derives again for each seat (the secret itself is
    /// never stored). `None` when the key is not in the ring (any more).
    pub fn join_secret_of(&self, key_id: u16, nonce: &[u8; 16], player_id: u64) -> Option<Secret> {
        let key = self.keys.iter().find(|k| k.id == key_id)?;
        let mut mac = HmacSha256::new_from_slice(&key.join).expect("any key length");
        mac.update(b"tickroom join secret v1");
        mac.update(nonce);
        mac.update(&player_id.to_le_bytes());
        Some(mac.finalize().into_bytes().into())
    }
}

impl fmt::Display for RoomKeys {
    /// The text form [`RoomKeys::parse`] reads (it contains the join keys: keep it secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.keys.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(
                f,
                "{sep}{}:{}:{}",
                k.id,
                encode_hex(k.verify.as_bytes()),
                encode_hex(&k.join)
            )?;
        }
        Ok(())
    }
}

/// `{kind}.{key_id}.{base64url(body)}`: what a token's tag covers.
fn signed_part(kind: &str, key_id: u16, body: &[u8]) -> String {
    format!("{kind}.{key_id}.{}", B64.encode(body))
}

/// A token taken apart, nothing verified yet.
struct Parts<'a> {
    signed: &'a str,
    key_id: u16,
    body: Vec<u8>,
    tag: Vec<u8>,
}

fn split<'a>(kind: &str, token: &'a str) -> Result<Parts<'a>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let (signed, tag_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.splitn(3, '.');
    let (Some(tkind), Some(kid), Some(body_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if tkind != kind {
        return Err(TokenError::WrongKind);
    }
    let key_id: u16 = kid.parse().map_err(|_| TokenError::Malformed)?;
    let tag = B64.decode(tag_b64).map_err(|_| TokenError::Malformed)?;
    let body = B64.decode(body_b64).map_err(|_| TokenError::Malformed)?;
    Ok(Parts {
        signed,
        key_id,
        body,
        tag,
    })
}

fn check_times(
    issued_ms: u64,
    expires_ms: u64,
    now_ms: u64,
    skew_ms: u64,
) -> Result<(), TokenError> {
    if issued_ms > now_ms.saturating_add(skew_ms) {
        return Err(TokenError::NotYetValid);
    }
    if expires_ms.saturating_add(skew_ms) < now_ms {
        return Err(TokenError::Expired);
    }
    Ok(())
}

fn mac_of(key: &[u8], data: &[u8]) -> Secret {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The key a session's `counter`-th resume answers its challenge with: HKDF-SHA256 of the join
/// secret (which only the player and the room server know: it never travels on the room
/// connection), bound to the session and the resume count. Both ends derive it, so `Welcome`
/// carries no secret, and it changes with every successful resume.
pub fn resume_key(join_secret: &Secret, session_id: u64, counter: u32) -> Secret {
    let mut info = [0u8; 12];
    info[..8].copy_from_slice(&session_id.to_le_bytes());
    info[8..].copy_from_slice(&counter.to_le_bytes());
    derive_key(join_secret, b"tickroom resume key v1", &info)
}

/// HKDF-SHA256 (RFC 5869) of `ikm` with `salt` and `info`: 32 bytes.
pub fn derive_key(ikm: &[u8], salt: &[u8], info: &[u8]) -> Secret {
    let mut out = [0u8; SECRET_LEN];
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// The challenge response: MAC of the server's nonce under the join secret or resume key.
pub fn challenge_mac(secret: &Secret, nonce: &Secret) -> Secret {
    let mut mac = HmacSha256::new_from_slice(secret).expect("any key length");
    mac.update(b"tickroom challenge v1");
    mac.update(nonce);
    mac.finalize().into_bytes().into()
}

/// Checks a challenge response in constant time.
pub fn verify_challenge_mac(secret: &Secret, nonce: &Secret, mac: &Secret) -> bool {
    let mut check = HmacSha256::new_from_slice(secret).expect("any key length");
    check.update(b"tickroom challenge v1");
    check.update(nonce);
    check.verify_slice(mac).is_ok()
}

/// Lower-case hex of bytes (fingerprints, key files).
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Bytes from hex (either case); `None` for odd length or a non-hex digit.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn ring() -> KeyRing {
        KeyRing::single(1, [42; 32])
    }

    #[test]
    fn an_issued_secret_is_the_one_the_room_derives_from_the_verified_ticket() {
        let old = KeyRing::parse(&format!("1:{}", "11".repeat(32))).unwrap();
        let both = KeyRing::parse(&format!("1:{},2:{}", "11".repeat(32), "22".repeat(32))).unwrap();
        for ring in [old, both] {
            let (token, secret) = ring.issue_ticket(ticket());
            let verified = ring.verify_ticket(&token, NOW, 0).unwrap();
            assert_eq!(ring.join_secret(&verified), secret);
        }
    }

    fn ticket() -> TicketClaims {
        TicketClaims {
            player_id: 9,
            room_id: 3,
            mode: "arena".into(),
            server_id: "room-1".into(),
            issued_ms: NOW,
            expires_ms: NOW + 10_000,
            nonce: [5; 16],
            metadata: Default::default(),
            spectator: false,
        }
    }

    #[test]
    fn ticket_round_trip() {
        let t = ring().sign_ticket(&ticket());
        let v = ring().verify_ticket(&t, NOW + 1, 0).unwrap();
        assert_eq!(v.claims(), &ticket());
        assert_eq!(v.key_id(), 1);
    }

    #[test]
    fn session_round_trip_and_kind_check() {
        let claims = SessionClaims {
            player_id: 1,
            issued_ms: NOW,
            expires_ms: NOW + 1000,
            login_ms: NOW - 5,
        };
        let t = ring().sign_session(&claims);
        assert_eq!(ring().verify_session(&t, NOW, 0).unwrap().claims(), &claims);
        assert_eq!(ring().verify_ticket(&t, NOW, 0), Err(TokenError::WrongKind));
    }

    #[test]
    fn expiry_and_not_yet_valid_respect_skew() {
        let t = ring().sign_ticket(&ticket());
        assert_eq!(
            ring().verify_ticket(&t, NOW + 10_001, 0),
            Err(TokenError::Expired)
        );
        assert!(ring().verify_ticket(&t, NOW + 10_001, 5).is_ok());
        assert_eq!(
            ring().verify_ticket(&t, NOW - 1, 0),
            Err(TokenError::NotYetValid)
        );
        assert!(ring().verify_ticket(&t, NOW - 1, 1).is_ok());
    }

    #[test]
    fn rotation_signs_newest_and_verifies_any_live_key() {
        let old = KeyRing::single(1, [1; 32]);
        let both = KeyRing::new(vec![(2, vec![2; 32]), (1, vec![1; 32])]).unwrap();
        let t_old = old.sign_ticket(&ticket());
        assert!(both.verify_ticket(&t_old, NOW, 0).is_ok());
        let t_new = both.sign_ticket(&ticket());
        assert!(t_new.starts_with("j3.2."));
        assert_eq!(
            old.verify_ticket(&t_new, NOW, 0),
            Err(TokenError::UnknownKey(2))
        );
    }

    #[test]
    fn same_id_other_secret_fails_signature() {
        let t = ring().sign_ticket(&ticket());
        let other = KeyRing::single(1, [43; 32]);
        assert_eq!(
            other.verify_ticket(&t, NOW, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn parse_key_ring() {
        let hex32 = "ab".repeat(32);
        let r = KeyRing::parse(&format!("1:{hex32}, 7:{hex32}\n")).unwrap();
        assert_eq!(r.key_ids(), vec![1, 7]);
        assert_eq!(r.newest_id(), 7);
        assert_eq!(KeyRing::parse("").unwrap_err(), KeyRingError::Empty);
        assert_eq!(
            KeyRing::parse("1:abcd").unwrap_err(),
            KeyRingError::BadEntry(0)
        );
        assert_eq!(
            KeyRing::parse(&format!("1:{hex32},1:{hex32}")).unwrap_err(),
            KeyRingError::DuplicateId(1)
        );
        assert!(!format!("{r:?}").contains("abab"));
    }

    #[test]
    fn retiring_a_key_changes_no_player_id_once_the_id_key_is_pinned() {
        let (k1, k2) = ("11".repeat(32), "22".repeat(32));
        let before = KeyRing::parse(&format!("1:{k1},2:{k2}")).unwrap();
        // The retirement procedure: key 1's secret becomes the player-id key, key 1 goes.
        let after = KeyRing::parse(&format!("ids:{k1},2:{k2}")).unwrap();
        for device in ["a", "b", "some device"] {
            assert_eq!(
                before.derive_id(b"device", device.as_bytes()),
                after.derive_id(b"device", device.as_bytes())
            );
        }
        assert_eq!(after.key_ids(), [2]);
        let t_old = before.sign_ticket(&ticket());
        let retired = KeyRing::single(1, [0x11; 32]).sign_ticket(&ticket());
        assert!(t_old.starts_with("j3.2."));
        assert_eq!(
            after.verify_ticket(&retired, NOW, 0),
            Err(TokenError::UnknownKey(1)),
            "a retired key verifies nothing"
        );
        // Without the pin, the oldest key keys the ids: retiring it would change them.
        let unpinned = KeyRing::parse(&format!("2:{k2}")).unwrap();
        assert_ne!(
            before.derive_id(b"device", b"a"),
            unpinned.derive_id(b"device", b"a")
        );
        assert_eq!(
            KeyRing::parse(&format!("ids:abcd,2:{k2}")).unwrap_err(),
            KeyRingError::BadPlayerIdKey
        );
    }

    /// Room servers hold `RoomKeys`: they verify what the gateways sign, and no key they hold
    /// can sign a session token or a ticket the ring accepts.
    #[test]
    fn room_keys_verify_tickets_and_cannot_mint() {
        let ring = KeyRing::parse(&format!("1:{},2:{}", "11".repeat(32), "22".repeat(32))).unwrap();
        let text = ring.room_keys().to_string();
        let room = RoomKeys::parse(&text).unwrap();
        assert_eq!(room.key_ids(), [1, 2]);
        assert_eq!(room.to_string(), text);
        let (token, secret) = ring.issue_ticket(ticket());
        let verified = room.verify_ticket(&token, NOW, 0).unwrap();
        assert_eq!(room.join_secret(&verified), secret);

        // Everything a room server holds, tried as a session MAC key and as a ticket MAC key.
        let mut held: Vec<Vec<u8>> = Vec::new();
        for entry in text.split(',') {
            for field in entry.split(':').skip(1) {
                held.push(decode_hex(field).unwrap());
            }
        }
        assert_eq!(held.len(), 4);
        let claims = SessionClaims {
            player_id: 1,
            issued_ms: NOW,
            expires_ms: NOW + 1000,
            login_ms: NOW,
        };
        for key in &held {
            for kid in [1, 2] {
                let session = signed_part(SESSION_KIND, kid, &codec::encode_value(&claims));
                let forged = format!("{session}.{}", B64.encode(mac_of(key, session.as_bytes())));
                assert_eq!(
                    ring.verify_session(&forged, NOW, 0),
                    Err(TokenError::BadSignature)
                );
                let t = signed_part(TICKET_KIND, kid, &codec::encode_value(&ticket()));
                let forged = format!("{t}.{}", B64.encode(mac_of(key, t.as_bytes())));
                assert_eq!(
                    room.verify_ticket(&forged, NOW, 0),
                    Err(TokenError::BadSignature)
                );
            }
        }
        assert!(RoomKeys::parse("").is_err());
        assert!(RoomKeys::parse("1:abcd:ef").is_err());
        assert!(!format!("{room:?}").contains(&"11".repeat(8)));
    }

    #[test]
    fn resume_keys_differ_per_session_and_count() {
        let a = resume_key(&[1; 32], 7, 0);
        assert_ne!(a, resume_key(&[1; 32], 7, 1));
        assert_ne!(a, resume_key(&[1; 32], 8, 0));
        assert_ne!(a, resume_key(&[2; 32], 7, 0));
        assert_eq!(a, resume_key(&[1; 32], 7, 0));
    }

    #[test]
    fn challenge_mac_verifies_only_for_the_right_secret() {
        let mac = challenge_mac(&[1; 32], &[2; 32]);
        assert!(verify_challenge_mac(&[1; 32], &[2; 32], &mac));
        assert!(!verify_challenge_mac(&[1; 32], &[3; 32], &mac));
        assert!(!verify_challenge_mac(&[9; 32], &[2; 32], &mac));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(
            decode_hex(&encode_hex(&[0, 15, 255])).unwrap(),
            vec![0, 15, 255]
        );
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("abc"), None);
    }
}
