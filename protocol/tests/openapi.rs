//! The gateway's OpenAPI document, `protocol/openapi.json`, generated from the shared HTTP types
//! in `tickroom_protocol::api`: each schema is derived from a serialised example of its Rust
//! type, so a field added, removed or retyped there changes the document. This test fails when
//! the file differs; `TICKROOM_UPDATE_VECTORS=1 cargo test -p tickroom-protocol --test openapi`
//! writes it.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};
use tickroom_protocol::api::{
    CancelResponse, CreateRoomRequest, CreateRoomResponse, CustomLogin, DeviceLogin,
    EnqueueRequest, EnqueueResponse, ErrorBody, Grouping, JoinByCodeRequest, JoinPartyRequest,
    LoginResponse, MatchPlayer, MatchResultRecord, MatchedResponse, PartyResponse, PartyTicket,
    PollResponse, RoomResponse, WatchRequest,
};
use tickroom_protocol::{ErrorCode, PlayerMetadata};

fn schema<T: Serialize>(example: &T) -> Value {
    tickroom_testkit::json_schema_of(&serde_json::to_value(example).unwrap())
}

fn matched() -> MatchedResponse {
    MatchedResponse {
        room_id: 77,
        mode: "duel".into(),
        server_id: "room-1".into(),
        quic_addr: "127.0.0.1:7702".into(),
        ws_addr: "127.0.0.1:7701".into(),
        cert_fingerprint: "ab".repeat(32),
        ws_tls: false,
        join_ticket: "j2.1.claims.signature".into(),
        join_secret: "cd".repeat(32),
        expires_ms: 1_700_000_010_000,
        grouping: Some(Box::new(Grouping {
            window: Some(75),
            spread: Some(60),
            region: Some("eu".into()),
            teams: Some(vec![vec![42, 43], vec![44, 45]]),
        })),
    }
}

/// The schema of a matched answer: `grouping` and its fields are optional (modes with
/// matchmaking rules only).
fn matched_schema(example: &Value) -> Value {
    let mut s = example.clone();
    if let Some(required) = s["required"].as_array_mut() {
        required.retain(|r| r != "grouping");
    }
    s["properties"]["grouping"]["required"] = json!([]);
    s["properties"]["grouping"]["description"] =
        json!("Why matchmaking grouped these players (modes with [mode.matchmaking]).");
    s
}

fn schemas() -> Value {
    let mut metadata = PlayerMetadata::default();
    metadata
        .0
        .insert("name".into(), tickroom_game::MetaValue::Str("ada".into()));
    let mut properties = PlayerMetadata::default();
    properties
        .0
        .insert("rating".into(), tickroom_game::MetaValue::Int(1500));
    // Exactly one of the two.
    let mut watch = schema(&WatchRequest {
        room_id: Some(77),
        code: Some("7KQ2M9XD".into()),
    });
    watch["required"] = json!([]);
    watch["description"] =
        json!("Exactly one of `room_id` (a public room) and `code` (a private room).");
    let mut enqueue = schema(&EnqueueRequest {
        mode: "duel".into(),
        metadata,
        properties,
        party_id: None,
    });
    // `metadata` and `properties` are optional, and hold strings or integers.
    enqueue["required"] = json!(["mode"]);
    enqueue["properties"]["party_id"] = json!({
        "type": "string",
        "description": "Queue the caller's whole party (the caller must lead it): one ticket per member, matched as one unit, in one room and on one team."
    });
    enqueue["properties"]["properties"] = json!({
        "type": "object",
        "additionalProperties": { "oneOf": [{ "type": "string" }, { "type": "integer" }] },
        "description": "Optional properties the mode's matchmaking rules read (rating, region, version, `latency.<region>` ms): `{\"key\": \"text\" | integer}`, within PlayerMetadata's limits; a mode without rules takes none."
    });
    enqueue["properties"]["metadata"] = json!({
        "type": "object",
        "additionalProperties": { "oneOf": [{ "type": "string" }, { "type": "integer" }] },
        "description": "Optional player metadata put in the join ticket: `{\"key\": \"text\" | integer}`, within PlayerMetadata's limits."
    });
    let queued = schema(&PollResponse::Queued {
        ticket_id: "t".into(),
        queued_ms: 1200,
    });
    let matched_poll = matched_schema(&schema(&PollResponse::Matched(matched())));
    json!({
        "ErrorBody": schema(&ErrorBody {
            code: ErrorCode::RateLimited.as_u16(),
            error: ErrorCode::RateLimited.name().into(),
            message: "too many requests".into(),
        }),
        "DeviceLogin": schema(&DeviceLogin { device_id: "0123456789abcdef0123456789abcdef".into() }),
        "CustomLogin": schema(&CustomLogin { token: "payload.mac".into() }),
        "LoginResponse": schema(&LoginResponse {
            player_id: 42,
            session_token: "s2.1.claims.mac".into(),
            expires_ms: 1_700_003_600_000,
        }),
        "EnqueueRequest": enqueue,
        "EnqueueResponse": schema(&EnqueueResponse { ticket_id: "t".into(), mode: "duel".into() }),
        "PollResponse": {
            "oneOf": [queued, matched_poll],
            "discriminator": { "propertyName": "status" },
        },
        "MatchedResponse": matched_schema(&schema(&matched())),
        "CreateRoomRequest": schema(&CreateRoomRequest { mode: "duel".into() }),
        "CreateRoomResponse": schema(&CreateRoomResponse {
            room_id: 77,
            mode: "duel".into(),
            code: "7KQ2M9XD".into(),
            expires_ms: 1_700_000_600_000,
        }),
        "JoinByCodeRequest": schema(&JoinByCodeRequest { code: "7KQ2M9XD".into() }),
        "WatchRequest": watch,
        "JoinPartyRequest": schema(&JoinPartyRequest { code: "7KQ2M9XD".into() }),
        "PartyResponse": schema(&PartyResponse {
            party_id: "0123456789abcdef0123456789abcdef".into(),
            code: "7KQ2M9XD".into(),
            leader: 42,
            members: vec![42, 43],
            tickets: vec![PartyTicket { player_id: 42, ticket_id: "t".into() }],
        }),
        "CancelResponse": schema(&CancelResponse { ticket_id: "t".into(), status: "cancelled".into() }),
        "RoomResponse": schema(&RoomResponse {
            room_id: 77,
            server_id: "room-2".into(),
            alive: true,
            epoch: 2,
            quic_addr: "127.0.0.1:7722".into(),
            ws_addr: "127.0.0.1:7721".into(),
            cert_fingerprint: "ab".repeat(32),
            ws_tls: false,
        }),
        "MatchResultRecord": schema(&MatchResultRecord {
            room_id: 77,
            mode: "duel".into(),
            players: vec![MatchPlayer { player_id: 42, slot: 0 }],
            result: vec![1, 2, 3],
            ended_ms: 1_700_000_300_000,
        }),
    })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } } })
}

fn answer(description: &str, name: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } } })
}

fn error(description: &str) -> Value {
    answer(description, "ErrorBody")
}

fn document() -> Value {
    let bearer = json!([{ "session": [] }]);
    let ticket_param = json!({ "name": "ticket_id", "in": "path", "required": true, "schema": { "type": "string" } });
    let party_param = json!({ "name": "party_id", "in": "path", "required": true, "schema": { "type": "string" } });
    let room_param = json!({ "name": "room_id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0 } });
    let limited = error("rate limited: retry after `Retry-After` seconds (per-IP limit)");
    let unavailable = error(
        "the directory is unavailable (`internal`, or `server_busy` with `Retry-After`): retry",
    );
    let too_large = error("the body is larger than the gateway accepts (4 KiB by default)");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tickroom gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Login and matchmaking. Every error answer is an ErrorBody whose `code` and `error` are tickroom's stable ErrorCode number and name (see protocol/SPEC.md and protocol/vectors/errors.json). Generated from tickroom_protocol::api by protocol/tests/openapi.rs."
        },
        "paths": {
            "/v1/auth/device": { "post": {
                "summary": "Log in with a device id (at least 128 random bits: 32+ hex digits or 22+ base64url characters)",
                "requestBody": body("DeviceLogin"),
                "responses": { "200": answer("a session", "LoginResponse"), "400": error("bad device id or body"), "413": too_large, "429": limited },
            } },
            "/v1/auth/custom": { "post": {
                "summary": "Log in with a studio-signed account token",
                "requestBody": body("CustomLogin"),
                "responses": { "200": answer("a session", "LoginResponse"), "400": error("bad body"), "401": error("the token does not verify or expired"), "404": error("custom auth is not configured"), "413": too_large, "429": limited },
            } },
            "/v1/auth/refresh": { "post": {
                "summary": "A new token for the same login (never past the login's lifetime)",
                "security": bearer,
                "responses": { "200": answer("a session", "LoginResponse"), "401": error("no valid session, or the login's lifetime is over (`session_expired`)"), "429": limited },
            } },
            "/v1/matchmaking": { "post": {
                "summary": "Queue for a mode",
                "security": bearer,
                "requestBody": body("EnqueueRequest"),
                "responses": { "202": answer("queued", "EnqueueResponse"), "400": error("unknown mode or bad metadata"), "401": error("no valid session"), "409": error("already queued, or holding a match not yet joined"), "413": too_large, "429": limited, "503": unavailable },
            } },
            "/v1/matchmaking/{ticket_id}": {
                "get": {
                    "summary": "Long-poll a ticket until it is matched (or `wait_ms` passes)",
                    "security": bearer,
                    "parameters": [ticket_param, { "name": "wait_ms", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } }],
                    "responses": { "200": answer("queued or matched (tagged by `status`)", "PollResponse"), "401": error("no valid session"), "404": error("no such ticket"), "429": limited, "503": error("no room server can take the match now, or the directory is unavailable: retry after `Retry-After` seconds (`server_busy`)") },
                },
                "delete": {
                    "summary": "Cancel a ticket",
                    "security": bearer,
                    "parameters": [ticket_param],
                    "responses": { "200": answer("cancelled", "CancelResponse"), "401": error("no valid session"), "404": error("no such ticket"), "409": error("already matched"), "429": limited, "503": unavailable },
                },
            },
            "/v1/parties": { "post": {
                "summary": "Create a party led by the caller; others join it with its code, and the leader queues it (POST /v1/matchmaking with party_id)",
                "security": bearer,
                "responses": { "201": answer("the party", "PartyResponse"), "401": error("no valid session"), "409": error("the caller is in another party"), "429": limited, "503": unavailable },
            } },
            "/v1/parties/join": { "post": {
                "summary": "Join the party with this code",
                "security": bearer,
                "requestBody": body("JoinPartyRequest"),
                "responses": { "200": answer("the party", "PartyResponse"), "400": error("bad body"), "401": error("no valid session"), "404": error("no party has this code"), "409": error("in another party, or the party is queued or full"), "429": error("too many code lookups by this player (`rate_limited`), or the per-IP limit"), "503": unavailable },
            } },
            "/v1/parties/{party_id}": {
                "get": {
                    "summary": "The party, to its members (each member's ticket while it is queued or matched)",
                    "security": bearer,
                    "parameters": [party_param],
                    "responses": { "200": answer("the party", "PartyResponse"), "401": error("no valid session"), "404": error("no such party, or not a member"), "429": limited, "503": unavailable },
                },
                "delete": {
                    "summary": "Leave the party (the leader leaving ends it); a queued party's tickets are cancelled",
                    "security": bearer,
                    "parameters": [party_param],
                    "responses": { "200": { "description": "left" }, "401": error("no valid session"), "404": error("no such party, or not a member"), "429": limited, "503": unavailable },
                },
            },
            "/v1/rooms": { "post": {
                "summary": "Create a private room of a mode; friends (and its creator) join it with the code",
                "security": bearer,
                "requestBody": body("CreateRoomRequest"),
                "responses": { "201": answer("the room and its join code", "CreateRoomResponse"), "400": error("unknown mode or bad body"), "401": error("no valid session"), "413": too_large, "429": limited, "503": error("no room server can take a new room now (`server_busy`, with `Retry-After`), or the directory is unavailable") },
            } },
            "/v1/rooms/join": { "post": {
                "summary": "A seat in the private room with this code, as a join ticket (no matchmaking)",
                "security": bearer,
                "requestBody": body("JoinByCodeRequest"),
                "responses": { "200": answer("where to play, with a join ticket", "MatchedResponse"), "400": error("bad body"), "401": error("no valid session"), "404": error("no live room has this code (unknown, malformed, or unused past the mode's private_room_ttl_s)"), "409": error("every seat is taken (`room_full`)"), "413": too_large, "429": error("too many code lookups by this player (`rate_limited`, with `Retry-After`), or the per-IP limit"), "503": unavailable },
            } },
            "/v1/rooms/watch": { "post": {
                "summary": "A spectator ticket for a public room (by id) or a private one (by its code): watch read-only, outside the seats",
                "security": bearer,
                "requestBody": body("WatchRequest"),
                "responses": { "200": answer("where to watch, with a spectator ticket (the room's `Welcome` says slot 255)", "MatchedResponse"), "400": error("bad body: not exactly one of room_id and code"), "401": error("no valid session"), "404": error("no such public room, or no live private room has this code"), "409": error("the room's mode takes no spectators (`conflict`)"), "413": too_large, "429": error("too many code lookups by this player (`rate_limited`, with `Retry-After`), or the per-IP limit"), "503": unavailable },
            } },
            "/v1/rooms/{room_id}": { "get": {
                "summary": "Where a room is now and whether its server lives. A room whose server died and that has a failover image is moved to a live server here: resume the same session at its addresses. A player whose room's server is not alive queues again",
                "security": bearer,
                "parameters": [room_param],
                "responses": { "200": answer("the room's owner", "RoomResponse"), "401": error("no valid session"), "404": error("no such room"), "429": limited, "503": unavailable },
            } },
            "/v1/matches/{room_id}": { "get": {
                "summary": "A finished match's result, to its players only",
                "security": bearer,
                "parameters": [room_param],
                "responses": { "200": answer("the result", "MatchResultRecord"), "401": error("no valid session"), "404": error("no such match for this player"), "429": limited, "503": unavailable },
            } },
            "/healthz": { "get": {
                "summary": "Liveness",
                "responses": { "200": { "description": "alive", "content": { "text/plain": { "schema": { "type": "string" } } } } },
            } },
        },
        "components": {
            "securitySchemes": { "session": { "type": "http", "scheme": "bearer", "description": "The session token of a LoginResponse" } },
            "schemas": schemas(),
        },
    })
}

#[test]
fn openapi_document_matches_the_api_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    assert!(
        tickroom_testkit::generated_json_is_current(&path, &document()),
        "protocol/openapi.json differs from the API types: run TICKROOM_UPDATE_VECTORS=1 cargo test -p tickroom-protocol --test openapi"
    );
}

/// Every `$ref` in the document names a schema it defines.
#[test]
fn every_reference_resolves() {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 10);
    for r in found {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
    }
}
