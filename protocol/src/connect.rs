//! placeholder: QUIC and WebSocket connectors (tokio feature).
