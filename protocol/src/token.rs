//! Signed tokens: `SessionToken` (who a player is, from login) and `JoinTicket` (a single-use
//! seat in one room on one server, from matchmaking), both HMAC-SHA256 under a rotating
//! `KeyRing`. Parse, don't validate: the verified types can only come out of `KeyRing::verify_*`.
//!
//! Wire form: `{kind}.{key_id}.{base64url(claims)}.{base64url(mac)}`, the MAC covering
//! everything before the last dot. Times are unix milliseconds passed in by the caller.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use tickroom_game::PlayerMetadata;

use crate::codec;
use crate::msg::{Secret, SECRET_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Kind tag of session tokens on the wire.
const SESSION_KIND: &str = "s1";
/// Kind tag of join tickets on the wire.
const TICKET_KIND: &str = "j1";
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

/// HMAC keys with ids: signs with the newest (highest id), verifies with any key still in the
/// ring, so a key can rotate without logging anyone out. `Debug` never shows the secrets.
#[derive(Clone)]
pub struct KeyRing {
    /// Sorted by id, ascending; never empty.
    keys: Vec<(u16, Vec<u8>)>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u16> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("KeyRing")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring of one key.
    pub fn single(id: u16, secret: Secret) -> Self {
        KeyRing {
            keys: vec![(id, secret.to_vec())],
        }
    }

    /// A ring from `(id, secret)` pairs; secrets must be at least 32 bytes.
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
        Ok(KeyRing { keys })
    }

    /// Parses `id:hexsecret[,id:hexsecret...]`, the form of `TICKROOM_KEYS` and key files
    /// (whitespace and newlines are accepted as separators too).
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys = Vec::new();
        for (i, entry) in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, hex) = entry.split_once(':').ok_or(KeyRingError::BadEntry(i))?;
            let id: u16 = id.parse().map_err(|_| KeyRingError::BadEntry(i))?;
            let secret = decode_hex(hex).ok_or(KeyRingError::BadEntry(i))?;
            keys.push((id, secret));
        }
        KeyRing::new(keys)
    }

    /// The id new tokens are signed with.
    pub fn newest_id(&self) -> u16 {
        self.keys[self.keys.len() - 1].0
    }

    /// Every key id in the ring.
    pub fn key_ids(&self) -> Vec<u16> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// Signs a session token with the newest key.
    pub fn sign_session(&self, claims: &SessionClaims) -> String {
        self.sign(SESSION_KIND, claims)
    }

    /// Signs a join ticket with the newest key.
    pub fn sign_ticket(&self, claims: &TicketClaims) -> String {
        self.sign(TICKET_KIND, claims)
    }

    /// Issues a join ticket: the signed token and the join secret its holder answers the
    /// challenge with, in one call (the secret is derived under the key that signed it, as the
    /// room server will derive it again from the verified ticket).
    pub fn issue_ticket(&self, claims: TicketClaims) -> (String, Secret) {
        let token = self.sign_ticket(&claims);
        let key_id = self.keys[self.keys.len() - 1].0;
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
        let (claims, key_id): (SessionClaims, u16) = self.verify(SESSION_KIND, token)?;
        check_times(claims.issued_ms, claims.expires_ms, now_ms, skew_ms)?;
        Ok(SessionToken { claims, key_id })
    }

    /// Checks a join ticket's signature and validity at `now_ms`, tolerating `skew_ms`.
    pub fn verify_ticket(
        &self,
        token: &str,
        now_ms: u64,
        skew_ms: u64,
    ) -> Result<JoinTicket, TokenError> {
        let (claims, key_id): (TicketClaims, u16) = self.verify(TICKET_KIND, token)?;
        check_times(claims.issued_ms, claims.expires_ms, now_ms, skew_ms)?;
        Ok(JoinTicket { claims, key_id })
    }

    /// The secret a ticket holder uses to answer the join challenge. The gateway hands it to
    /// the player over HTTP with the ticket; the room server derives it again from the ticket,
    /// so a captured `Hello` alone cannot join.
    pub fn join_secret(&self, ticket: &JoinTicket) -> Secret {
        let key = self.key(ticket.key_id).unwrap_or(&self.keys[0].1);
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(b"tickroom join secret v1");
        mac.update(&ticket.claims.nonce);
        mac.update(&ticket.claims.player_id.to_le_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A keyed hash under the oldest key in the ring (so ids stay stable while newer keys are
    /// added), for deriving ids (e.g. player id from a device id) without storing anything.
    pub fn derive_id(&self, label: &[u8], data: &[u8]) -> u64 {
        let mut mac = HmacSha256::new_from_slice(&self.keys[0].1).expect("any key length");
        mac.update(label);
        mac.update(data);
        let out = mac.finalize().into_bytes();
        let mut id = [0u8; 8];
        id.copy_from_slice(&out[..8]);
        // Keep ids positive in every JSON number implementation (53-bit safe) and non-zero.
        (u64::from_le_bytes(id) & ((1 << 53) - 1)).max(1)
    }

    fn key(&self, id: u16) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, s)| s.as_slice())
    }

    fn sign<T: Serialize>(&self, kind: &str, claims: &T) -> String {
        let (id, key) = &self.keys[self.keys.len() - 1];
        let body = codec::encode_value(claims);
        let mut token = format!("{kind}.{id}.{}", B64.encode(body));
        let mac = mac_of(key, token.as_bytes());
        token.push('.');
        token.push_str(&B64.encode(mac));
        token
    }

    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        token: &str,
    ) -> Result<(T, u16), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (signed, mac_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mut parts = signed.splitn(3, '.');
        let (Some(tkind), Some(kid), Some(body_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if tkind != kind {
            return Err(TokenError::WrongKind);
        }
        let kid: u16 = kid.parse().map_err(|_| TokenError::Malformed)?;
        let key = self.key(kid).ok_or(TokenError::UnknownKey(kid))?;
        let mac = B64.decode(mac_b64).map_err(|_| TokenError::Malformed)?;
        let mut check = HmacSha256::new_from_slice(key).expect("any key length");
        check.update(signed.as_bytes());
        // verify_slice compares in constant time.
        check
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadSignature)?;
        let body = B64.decode(body_b64).map_err(|_| TokenError::Malformed)?;
        let claims = codec::decode_value(&body).map_err(|_| TokenError::Malformed)?;
        Ok((claims, kid))
    }
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

/// The challenge response: MAC of the server's nonce under the join or resume secret.
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
        assert!(t_new.starts_with("j1.2."));
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
