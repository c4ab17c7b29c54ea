//! Identity without a database: session tokens signed by the key ring, player ids derived from
//! device ids or from a studio's own signed account tokens ("custom" auth).
//!
//! Custom token form: `base64url_nopad(json {"sub": "...", "exp": unix_seconds})` + "." +
//! `base64url_nopad(HMAC-SHA256(custom_key, first part))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tickroom_protocol::token::MAX_TOKEN_BYTES;
use tickroom_protocol::{KeyRing, SessionClaims, TokenError};

pub use tickroom_protocol::api::{check_device_id, DeviceIdError, MAX_DEVICE_ID_CHARS};

/// Longest accepted custom-token subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 128;
/// Label mixed into device-derived player ids.
pub const DEVICE_ID_LABEL: &[u8] = b"device";
/// Label mixed into custom-auth-derived player ids.
pub const CUSTOM_ID_LABEL: &[u8] = b"custom";

type HmacSha256 = Hmac<Sha256>;

/// Why a custom account token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomTokenError {
    /// Not `payload.mac`, not base64url, too long, or the payload is not the expected JSON.
    #[error("custom token is malformed")]
    Malformed,
    /// The MAC does not verify under the configured key.
    #[error("custom token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the tolerated skew).
    #[error("custom token has expired")]
    Expired,
    /// `sub` is empty or longer than `MAX_SUBJECT_CHARS`.
    #[error("custom token subject must be 1..=128 characters")]
    BadSubject,
}

#[derive(Serialize, Deserialize)]
struct CustomClaims {
    sub: String,
    exp: u64,
}

/// Checks a studio's custom token under `key` at `now_ms` and returns its subject.
pub fn verify_custom_token(
    key: &[u8],
    token: &str,
    now_ms: u64,
    skew_ms: u64,
) -> Result<String, CustomTokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(CustomTokenError::Malformed);
    }
    let (payload, mac_b64) = token.split_once('.').ok_or(CustomTokenError::Malformed)?;
    let mac = B64
        .decode(mac_b64)
        .map_err(|_| CustomTokenError::Malformed)?;
    let mut check = HmacSha256::new_from_slice(key).map_err(|_| CustomTokenError::BadSignature)?;
    check.update(payload.as_bytes());
    // verify_slice compares in constant time.
    check
        .verify_slice(&mac)
        .map_err(|_| CustomTokenError::BadSignature)?;
    let json = B64
        .decode(payload)
        .map_err(|_| CustomTokenError::Malformed)?;
    let claims: CustomClaims =
        serde_json::from_slice(&json).map_err(|_| CustomTokenError::Malformed)?;
    if claims.exp.saturating_mul(1000).saturating_add(skew_ms) < now_ms {
        return Err(CustomTokenError::Expired);
    }
    let chars = claims.sub.chars().count();
    if chars == 0 || chars > MAX_SUBJECT_CHARS {
        return Err(CustomTokenError::BadSubject);
    }
    Ok(claims.sub)
}

/// Signs a custom token the way a studio's account service must (reference encoder; tests and
/// tools use it).
pub fn sign_custom_token(key: &[u8], sub: &str, exp_unix_s: u64) -> String {
    let claims = CustomClaims {
        sub: sub.to_owned(),
        exp: exp_unix_s,
    };
    let json = serde_json::to_vec(&claims).unwrap_or_default();
    let payload = B64.encode(json);
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// A freshly issued session, as returned by every login route (the shared API type).
pub use tickroom_protocol::api::LoginResponse as Session;

/// How long sessions last: each token `ttl_ms`, and all the tokens of one login together (a
/// login and its refreshes) at most `max_lifetime_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Lifetime of one token.
    pub ttl_ms: u64,
    /// Lifetime of a login across refreshes.
    pub max_lifetime_ms: u64,
}

/// A refresh came after the login's lifetime ended: the player must log in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session reached its maximum lifetime; log in again")]
pub struct LifetimeOver;

/// Signs a session for `player_id` at `now_ms`, for the login made at `login_ms` (`now_ms`
/// for a login, the token's `login_ms` for a refresh). It expires after `policy.ttl_ms`, or
/// at the end of the login's lifetime if that comes first.
pub fn issue_session(
    keys: &KeyRing,
    player_id: u64,
    now_ms: u64,
    login_ms: u64,
    policy: SessionPolicy,
) -> Result<Session, LifetimeOver> {
    let end_of_life = login_ms.saturating_add(policy.max_lifetime_ms);
    if now_ms >= end_of_life {
        return Err(LifetimeOver);
    }
    let claims = SessionClaims {
        player_id,
        issued_ms: now_ms,
        expires_ms: now_ms.saturating_add(policy.ttl_ms).min(end_of_life),
        login_ms,
    };
    Ok(Session {
        player_id,
        session_token: keys.sign_session(&claims),
        expires_ms: claims.expires_ms,
    })
}

/// Why a request carries no valid session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer ...` header.
    #[error("missing `Authorization: Bearer <session token>` header")]
    Missing,
    /// The token did not verify.
    #[error("session token refused: {0}")]
    Token(#[from] TokenError),
}

/// The verified session of a request's `Authorization: Bearer <token>` header value.
pub fn bearer_session(
    keys: &KeyRing,
    header: Option<&str>,
    now_ms: u64,
    skew_ms: u64,
) -> Result<SessionClaims, BearerError> {
    let value = header.ok_or(BearerError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let session = keys.verify_session(token.trim(), now_ms, skew_ms)?;
    Ok(session.claims().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"studio secret";
    const NOW_MS: u64 = 1_700_000_000_000;

    #[test]
    fn custom_tokens_verify_and_fail_as_data() {
        let good = sign_custom_token(KEY, "alice", NOW_MS / 1000 + 60);
        let cases: &[(&str, Result<&str, CustomTokenError>)] = &[
            (&good, Ok("alice")),
            ("", Err(CustomTokenError::Malformed)),
            ("abc", Err(CustomTokenError::Malformed)),
            ("abc.!!", Err(CustomTokenError::Malformed)),
            ("abc.AAAA", Err(CustomTokenError::BadSignature)),
        ];
        for (token, want) in cases {
            let got = verify_custom_token(KEY, token, NOW_MS, 0);
            assert_eq!(got.as_deref().map_err(Clone::clone), *want, "{token}");
        }
        assert_eq!(
            verify_custom_token(b"other", &good, NOW_MS, 0),
            Err(CustomTokenError::BadSignature)
        );
        let old = sign_custom_token(KEY, "alice", NOW_MS / 1000 - 10);
        assert_eq!(
            verify_custom_token(KEY, &old, NOW_MS, 0),
            Err(CustomTokenError::Expired)
        );
        assert!(verify_custom_token(KEY, &old, NOW_MS, 10_000).is_ok());
        let empty = sign_custom_token(KEY, "", NOW_MS / 1000 + 60);
        assert_eq!(
            verify_custom_token(KEY, &empty, NOW_MS, 0),
            Err(CustomTokenError::BadSubject)
        );
    }

    const POLICY: SessionPolicy = SessionPolicy {
        ttl_ms: 1000,
        max_lifetime_ms: 2500,
    };

    fn bearer_player(
        keys: &KeyRing,
        header: Option<&str>,
        now_ms: u64,
        skew_ms: u64,
    ) -> Result<u64, BearerError> {
        bearer_session(keys, header, now_ms, skew_ms).map(|c| c.player_id)
    }

    #[test]
    fn bearer_header_forms() {
        let keys = KeyRing::single(1, [7; 32]);
        let s = issue_session(&keys, 42, NOW_MS, NOW_MS, POLICY).unwrap();
        let header = format!("Bearer {}", s.session_token);
        assert_eq!(bearer_player(&keys, Some(&header), NOW_MS, 0), Ok(42));
        let lower = format!("bearer {}", s.session_token);
        assert_eq!(bearer_player(&keys, Some(&lower), NOW_MS, 0), Ok(42));
        assert_eq!(
            bearer_player(&keys, None, NOW_MS, 0),
            Err(BearerError::Missing)
        );
        assert_eq!(
            bearer_player(&keys, Some("Basic x"), NOW_MS, 0),
            Err(BearerError::Missing)
        );
        assert_eq!(
            bearer_player(&keys, Some(&header), NOW_MS + 2000, 0),
            Err(BearerError::Token(TokenError::Expired))
        );
    }

    /// Refreshes keep the login time: each token ends at the login's lifetime at the latest,
    /// and a refresh after it is refused.
    #[test]
    fn refreshes_never_outlive_the_login() {
        let keys = KeyRing::single(1, [7; 32]);
        let login = issue_session(&keys, 42, NOW_MS, NOW_MS, POLICY).unwrap();
        assert_eq!(login.expires_ms, NOW_MS + 1000);
        let mut token = login.session_token;
        let mut at = NOW_MS;
        let mut expiries = Vec::new();
        // Refresh every 900 ms for as long as the token in hand still verifies.
        while let Ok(session) = keys.verify_session(&token, at + 900, 0) {
            at += 900;
            let claims = session.claims();
            assert_eq!(claims.login_ms, NOW_MS);
            let s = issue_session(&keys, claims.player_id, at, claims.login_ms, POLICY).unwrap();
            expiries.push(s.expires_ms - NOW_MS);
            token = s.session_token;
        }
        // Refreshed at +900 and +1800; the second token ends at the cap (+2500), not +2800,
        // and nothing extends a login past it.
        assert_eq!(expiries, [1900, 2500]);
        assert_eq!(
            issue_session(&keys, 42, NOW_MS + 2500, NOW_MS, POLICY),
            Err(LifetimeOver)
        );
    }
}
