//! The admin API's OpenAPI document, `gateway/openapi-admin.json`, generated from the types in
//! `tickroom_gateway::admin` like the public document (`protocol/openapi.json`): each schema
//! comes from serialised examples of its Rust type (every field filled, and every optional
//! field empty, which tells what is required and what may be null). This test fails when the
//! file differs; `TICKROOM_UPDATE_VECTORS=1 cargo test -p tickroom-gateway --test
//! openapi_admin` writes it.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};
use tickroom_gateway::admin::{
    CloseResponse, DrainResponse, ErrorsResponse, KickRequest, KickResponse, RoomDetail, RoomView,
    RoomsResponse, ServerView, ServersResponse,
};
use tickroom_gateway::directory::{ErrorRecord, SeatInfo};
use tickroom_testkit::json_schema_of;

/// The schema of a type from a `full` example (every optional field set) and a `bare` one
/// (every optional field empty): fields missing from `bare` are optional, fields null in it
/// are nullable. Nested objects are treated the same way, field by field.
fn schema<T: Serialize>(full: &T, bare: &T) -> Value {
    fn merge(schema: &mut Value, bare: &Value) {
        let Some(fields) = bare.as_object() else {
            if let (Some(items), Some(first)) = (schema.get_mut("items"), bare.get(0)) {
                merge(items, first);
            }
            return;
        };
        let required: Vec<Value> = fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| Value::String(k.clone()))
            .collect();
        schema["required"] = Value::Array(required);
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            return;
        };
        for (name, prop) in props.iter_mut() {
            match fields.get(name) {
                Some(Value::Null) => prop["nullable"] = json!(true),
                Some(v) => merge(prop, v),
                None => {}
            }
        }
    }
    let mut s = json_schema_of(&serde_json::to_value(full).unwrap());
    merge(&mut s, &serde_json::to_value(bare).unwrap());
    s
}

fn server(full: bool) -> ServerView {
    ServerView {
        server_id: "room-1".into(),
        quic_addr: "10.0.0.1:7702".into(),
        ws_addr: "10.0.0.1:7701".into(),
        ws_tls: true,
        cert_fingerprint: "ab".repeat(32),
        capacity: 20_000,
        load: 120,
        draining: false,
        drain_requested: full.then_some(false),
        version: full.then(|| "0.1.0".into()),
        started_ms: full.then_some(1_700_000_000_000),
        rooms: full.then_some(12),
    }
}

fn room() -> RoomView {
    RoomView {
        room_id: 77,
        mode: "duel".into(),
        server_id: "room-1".into(),
        owner_alive: true,
        epoch: 1,
        created_ms: 1_700_000_000_000,
        age_ms: 5_000,
        joined: true,
        players: vec![42, 43],
    }
}

fn detail(full: bool) -> RoomDetail {
    RoomDetail {
        room: room(),
        running: full.then_some(true),
        tick: full.then_some(600),
        started: full.then_some(true),
        seats: vec![SeatInfo {
            slot: 0,
            player_id: 42,
            connected: true,
        }],
        seats_error: full.then(|| "the room server did not answer".into()),
    }
}

fn error_record(full: bool) -> ErrorRecord {
    ErrorRecord {
        time_ms: 1_700_000_000_000,
        source: "room".into(),
        server_id: full.then(|| "room-1".into()),
        code: 5,
        error: "ticket_reused".into(),
        status: full.then_some(409),
        what: "handshake".into(),
        message: "this ticket was already used".into(),
    }
}

fn schemas() -> Value {
    let servers = |full| ServersResponse {
        servers: vec![server(full)],
    };
    let rooms = |full: bool| RoomsResponse {
        total: 1,
        offset: 0,
        limit: 50,
        next_offset: full.then_some(50),
        rooms: vec![room()],
    };
    let errors = |full: bool| ErrorsResponse {
        errors: vec![error_record(full)],
        incomplete: full.then(|| "room-2 did not report".into()),
    };
    let kick = |full: bool| KickRequest {
        player_id: 42,
        code: full.then(|| "kicked".into()),
    };
    let kicked = KickResponse {
        room_id: 77,
        player_id: 42,
        code: "kicked".into(),
        kicked: true,
    };
    let closed = CloseResponse {
        room_id: 77,
        closed: true,
        by: "room_server".into(),
    };
    let drained = DrainResponse {
        server_id: "room-1".into(),
        draining: true,
    };
    json!({
        "ServersResponse": schema(&servers(true), &servers(false)),
        "RoomsResponse": schema(&rooms(true), &rooms(false)),
        "RoomDetail": schema(&detail(true), &detail(false)),
        "KickRequest": schema(&kick(true), &kick(false)),
        "KickResponse": schema(&kicked, &kicked),
        "CloseResponse": schema(&closed, &closed),
        "DrainResponse": schema(&drained, &drained),
        "ErrorsResponse": schema(&errors(true), &errors(false)),
        "ErrorBody": { "$ref": "../protocol/openapi.json#/components/schemas/ErrorBody" },
    })
}

fn ok(description: &str, name: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } } })
}

fn document() -> Value {
    let err = |d: &str| ok(d, "ErrorBody");
    let auth = json!([{ "admin": [] }]);
    let room_id = json!({ "name": "room_id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0 } });
    let server_id = json!({ "name": "server_id", "in": "path", "required": true, "schema": { "type": "string" } });
    let common = |mut responses: Value| {
        responses["401"] = err("no token, or not one of --admin-token-file's");
        responses["429"] = err("rate limited per IP");
        responses
    };
    let action = |summary: &str, param: Value, answer: Value| {
        json!({ "post": {
            "summary": summary,
            "security": auth,
            "parameters": [param],
            "responses": common(json!({
                "200": answer,
                "404": err("no such room or server"),
                "409": err("the room's server is gone (`server_gone`)"),
                "503": err("the directory is unavailable or the server's command queue is full"),
                "504": err("the room server did not answer in time"),
            })),
        } })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tickroom admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Operators' API on the gateway's HTTP listener, present only with --admin-token-file (one `id:token` per line; send `Authorization: Bearer <token>`). Every action is logged with the token's id. Errors are the gateway's ErrorBody. Generated from tickroom_gateway::admin by gateway/tests/openapi_admin.rs.",
        },
        "paths": {
            "/v1/admin/servers": { "get": {
                "summary": "Room servers: addresses, load, capacity, draining, version",
                "security": auth,
                "responses": common(json!({ "200": ok("the fleet", "ServersResponse"), "503": err("the directory is unavailable") })),
            } },
            "/v1/admin/servers/{server_id}/drain": action("No new rooms on this server; running ones go on", server_id.clone(), ok("drained", "DrainResponse")),
            "/v1/admin/servers/{server_id}/undrain": action("Take new rooms again", server_id, ok("undrained", "DrainResponse")),
            "/v1/admin/rooms": { "get": {
                "summary": "Rooms, newest first, in pages",
                "security": auth,
                "parameters": [
                    { "name": "offset", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500 } },
                ],
                "responses": common(json!({ "200": ok("one page", "RoomsResponse"), "400": err("bad paging"), "503": err("the directory is unavailable") })),
            } },
            "/v1/admin/rooms/{room_id}": { "get": {
                "summary": "One room and its seats",
                "security": auth,
                "parameters": [room_id.clone()],
                "responses": common(json!({ "200": ok("the room", "RoomDetail"), "404": err("no such room") })),
            } },
            "/v1/admin/rooms/{room_id}/kick": { "post": {
                "summary": "Kick a player with a reason code (an ErrorCode name; default `kicked`)",
                "security": auth,
                "parameters": [room_id.clone()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/KickRequest" } } } },
                "responses": common(json!({
                    "200": ok("kicked", "KickResponse"),
                    "400": err("bad body or unknown code"),
                    "404": err("no such room or player"),
                    "409": err("the room's server is gone"),
                    "503": err("the directory is unavailable or the command queue is full"),
                    "504": err("the room server did not answer in time"),
                })),
            } },
            "/v1/admin/rooms/{room_id}/close": action("Close a room: its players get Kicked{RoomClosed}", room_id, ok("closed", "CloseResponse")),
            "/v1/admin/errors": { "get": {
                "summary": "The recent errors and refusals (newest first, at most 256)",
                "security": auth,
                "responses": common(json!({ "200": ok("the list", "ErrorsResponse") })),
            } },
            "/status": { "get": {
                "summary": "The status page (asks for the token, keeps it only in the page's memory)",
                "responses": { "200": { "description": "HTML", "content": { "text/html": { "schema": { "type": "string" } } } } },
            } },
        },
        "components": {
            "securitySchemes": { "admin": { "type": "http", "scheme": "bearer", "description": "A token of --admin-token-file" } },
            "schemas": schemas(),
        },
    })
}

#[test]
fn admin_openapi_document_matches_the_admin_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi-admin.json");
    assert!(
        tickroom_testkit::generated_json_is_current(&path, &document()),
        "gateway/openapi-admin.json differs from the admin types: run TICKROOM_UPDATE_VECTORS=1 cargo test -p tickroom-gateway --test openapi_admin"
    );
}

/// Every route the admin router serves is in the document.
#[test]
fn every_admin_route_is_documented() {
    let doc = document();
    let source = include_str!("../src/admin.rs");
    let mut routes = 0;
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else {
            continue;
        };
        let Some(path) = rest.split('"').next() else {
            continue;
        };
        routes += 1;
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    assert!(routes >= 8, "found {routes} routes");
}
