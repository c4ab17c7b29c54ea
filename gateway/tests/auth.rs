//! Login over HTTP: device, custom and refresh, and the error answers every route shares
//! (401, 400, 413, 429).

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tickroom_gateway::auth::sign_custom_token;
use tickroom_gateway::{now_ms, InMemoryDirectory};
use tickroom_protocol::{ErrorCode, SessionClaims};

use common::{config, device_id, expect_error, keys, start};

const STUDIO_KEY: &[u8] = b"the studio's account key";

#[tokio::test]
async fn device_login_issues_a_verifiable_session_with_a_derived_id() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let phone = device_id("phone-1");
    let r = t
        .post_json("/v1/auth/device", json!({"device_id": phone}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let player_id = v["player_id"].as_u64().unwrap();
    assert_eq!(player_id, keys().derive_id(b"device", phone.as_bytes()));
    let session = keys()
        .verify_session(v["session_token"].as_str().unwrap(), now_ms(), 0)
        .unwrap();
    assert_eq!(session.claims().player_id, player_id);
    let expires = v["expires_ms"].as_u64().unwrap();
    assert_eq!(session.claims().expires_ms, expires);
    let hour_ms = 3_600_000;
    assert!(expires > now_ms() + hour_ms - 60_000 && expires <= now_ms() + hour_ms);
    // Same device, same player; another device, another player.
    assert_eq!(t.login("phone-1").await.0, player_id);
    assert_ne!(t.login("phone-2").await.0, player_id);
    let mut metrics = String::new();
    t.gw.render_metrics(&mut metrics);
    assert!(
        metrics.contains("tickroom_gateway_logins_total{method=\"device\"} 3\n"),
        "{metrics}"
    );
}

/// Device ids must carry at least 128 random bits: 32 hex digits, or 22 base64url characters
/// (an id of hex digits only needs 32); at most 128 characters. Guessable ids such as
/// `phone-1` are refused, so nobody logs in as someone else's device.
#[tokio::test]
async fn device_ids_need_128_random_bits() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let hex32 = "0123456789abcdef0123456789ABCDEF";
    let b64_22 = "AbCdEfGhIjKlMnOpQrSt-_";
    let check = |id: String, expect: StatusCode| {
        let t = &t;
        async move {
            let r = t
                .post_json("/v1/auth/device", json!({"device_id": id}), None)
                .await;
            assert_eq!(r.status(), expect, "{id:?}");
            if expect == StatusCode::BAD_REQUEST {
                let body = expect_error(r, expect, ErrorCode::BadRequest).await;
                assert!(body.message.contains("a device id"), "{}", body.message);
            }
        }
    };
    check(hex32.into(), StatusCode::OK).await;
    check(b64_22.into(), StatusCode::OK).await;
    check("z".repeat(128), StatusCode::OK).await;
    check(String::new(), StatusCode::BAD_REQUEST).await;
    check("phone-1".into(), StatusCode::BAD_REQUEST).await;
    check(hex32[..31].into(), StatusCode::BAD_REQUEST).await;
    check(hex32[..25].into(), StatusCode::BAD_REQUEST).await;
    check(b64_22[..21].into(), StatusCode::BAD_REQUEST).await;
    check(format!("{}=", &b64_22[..21]), StatusCode::BAD_REQUEST).await;
    check(format!("{hex32} "), StatusCode::BAD_REQUEST).await;
    check(format!("{b64_22}+/"), StatusCode::BAD_REQUEST).await;
    check("é".repeat(32), StatusCode::BAD_REQUEST).await;
    check("z".repeat(129), StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn custom_login_accepts_good_tokens_and_refuses_bad_mac_and_expired() {
    let mut c = config();
    c.custom_auth_key = Some(STUDIO_KEY.to_vec());
    let t = start(c, InMemoryDirectory::new(), false).await;
    let future_s = now_ms() / 1000 + 300;

    let good = sign_custom_token(STUDIO_KEY, "alice", future_s);
    let r = t
        .post_json("/v1/auth/custom", json!({"token": good}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["player_id"].as_u64().unwrap(),
        keys().derive_id(b"custom", b"alice")
    );
    assert_ne!(
        v["player_id"].as_u64().unwrap(),
        keys().derive_id(b"device", b"alice")
    );

    let forged = sign_custom_token(b"not the studio key", "alice", future_s);
    let r = t
        .post_json("/v1/auth/custom", json!({"token": forged}), None)
        .await;
    let body = expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert!(body.message.contains("signature"), "{body:?}");

    let expired = sign_custom_token(STUDIO_KEY, "alice", now_ms() / 1000 - 60);
    let r = t
        .post_json("/v1/auth/custom", json!({"token": expired}), None)
        .await;
    let body = expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert!(body.message.contains("expired"), "{body:?}");
}

#[tokio::test]
async fn custom_login_without_a_configured_key_is_not_found() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let token = sign_custom_token(STUDIO_KEY, "alice", now_ms() / 1000 + 60);
    let r = t
        .post_json("/v1/auth/custom", json!({"token": token}), None)
        .await;
    let body = expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    assert!(body.message.contains("not configured"));
}

#[tokio::test]
async fn refresh_issues_a_new_token_for_the_same_player() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let (player_id, token) = t.login("phone").await;
    let r = t
        .post_json("/v1/auth/refresh", json!({}), Some(&token))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["player_id"].as_u64(), Some(player_id));
    let fresh = v["session_token"].as_str().unwrap();
    assert_eq!(
        keys()
            .verify_session(fresh, now_ms(), 0)
            .unwrap()
            .claims()
            .player_id,
        player_id
    );
    let r = t.post_json("/v1/auth/refresh", json!({}), None).await;
    expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn expired_tampered_and_foreign_session_tokens_get_401() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let (_, token) = t.login("phone").await;
    let long_ago = now_ms() - 3 * 3_600_000;
    let expired = keys().sign_session(&SessionClaims {
        player_id: 5,
        issued_ms: long_ago,
        expires_ms: long_ago + 1000,
        login_ms: long_ago,
    });
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = tickroom_protocol::KeyRing::single(3, [1; 32]).sign_session(&SessionClaims {
        player_id: 5,
        issued_ms: now_ms(),
        expires_ms: now_ms() + 60_000,
        login_ms: now_ms(),
    });
    for bad in [
        expired.as_str(),
        tampered.as_str(),
        foreign.as_str(),
        "junk",
    ] {
        for path in ["/v1/auth/refresh", "/v1/matchmaking"] {
            let r = t.post_json(path, json!({"mode": "trio"}), Some(bad)).await;
            expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
        }
    }
    // The genuine token still works.
    let r = t
        .post_json("/v1/auth/refresh", json!({}), Some(&token))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// A login lives 24 h at most, however often it is refreshed: a valid token of a login made
/// 25 h ago is refused by refresh (401 `SessionExpired`), and a refresh near the end of the
/// lifetime gets a token that ends with it, not an hour later.
#[tokio::test]
async fn refresh_cannot_extend_a_login_past_its_lifetime() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let hour = 3_600_000;
    let now = now_ms();
    let sign = |login_ms: u64| {
        keys().sign_session(&SessionClaims {
            player_id: 5,
            issued_ms: now,
            expires_ms: now + 60_000,
            login_ms,
        })
    };
    let over = sign(now - 25 * hour);
    let r = t
        .post_json("/v1/auth/refresh", json!({}), Some(&over))
        .await;
    expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::SessionExpired).await;

    let near_end = now - 24 * hour + 10 * 60_000;
    let r = t
        .post_json("/v1/auth/refresh", json!({}), Some(&sign(near_end)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let expires = body["expires_ms"].as_u64().unwrap();
    assert_eq!(
        expires,
        near_end + 24 * hour,
        "the token ends with the login"
    );
    let refreshed = body["session_token"].as_str().unwrap();
    let claims = keys()
        .verify_session(refreshed, now_ms(), 0)
        .unwrap()
        .claims()
        .clone();
    assert_eq!(claims.login_ms, near_end, "a refresh keeps the login time");
}

#[tokio::test]
async fn bad_json_is_400_and_an_oversize_body_is_413() {
    let t = start(config(), InMemoryDirectory::new(), false).await;
    let send = |body: String| {
        t.http
            .post(t.url("/v1/auth/device"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in ["{", "[]", "{\"device_id\": 5}", "{}"] {
        let r = send(body.to_owned()).await.unwrap();
        expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    }
    let big = format!("{{\"device_id\": \"{}\"}}", "x".repeat(5 * 1024));
    let r = send(big).await.unwrap();
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::MessageTooLarge).await;
    let r = t.http.get(t.url("/v1/nothing/here")).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let mut c = config();
    c.rate_per_ip_per_s = 1;
    c.rate_burst = 2;
    let t = start(c, InMemoryDirectory::new(), false).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..4 {
        let r = t
            .post_json(
                "/v1/auth/device",
                json!({"device_id": device_id(&format!("d{i}"))}),
                None,
            )
            .await;
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            limited = Some(r);
        }
    }
    assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
    let r = limited.expect("a request beyond the burst is limited");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited).await;
    let mut metrics = String::new();
    t.gw.render_metrics(&mut metrics);
    assert!(!metrics.contains("tickroom_gateway_rate_limited_total 0\n"));
}
