//! The codec: the only module that knows bincode. Encodes messages into reusable buffers,
//! decodes with a hard size limit per direction, and frames messages on byte streams with a
//! u32 little-endian length prefix that is checked before anything is allocated.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{de::DeserializeOwned, Serialize};

use crate::msg::{ClientMsg, ServerMsg};

/// Largest client → server message, in bytes (inputs, handshake, control).
pub const MAX_CLIENT_MSG_BYTES: usize = 64 * 1024;
/// Largest server → client message, in bytes (full snapshots, lockstep catch-up frames).
pub const MAX_SERVER_MSG_BYTES: usize = 1024 * 1024;
/// Size of the stream length prefix, in bytes.
pub const LENGTH_PREFIX_BYTES: usize = 4;

type ClientConfig = Configuration<LittleEndian, Varint, Limit<MAX_CLIENT_MSG_BYTES>>;
type ServerConfig = Configuration<LittleEndian, Varint, Limit<MAX_SERVER_MSG_BYTES>>;

const CLIENT_CONFIG: ClientConfig =
    bincode::config::standard().with_limit::<MAX_CLIENT_MSG_BYTES>();
const SERVER_CONFIG: ServerConfig =
    bincode::config::standard().with_limit::<MAX_SERVER_MSG_BYTES>();

/// Why bytes did not decode into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the direction's limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ends in the middle of a message.
    #[error("message is truncated")]
    Truncated,
    /// A variant tag this build does not know.
    #[error("unknown message variant")]
    UnknownVariant,
    /// Bytes remain after a complete message.
    #[error("{extra} trailing bytes after the message")]
    Trailing {
        /// Bytes left over.
        extra: usize,
    },
    /// The bytes are malformed in another way (bad UTF-8, bad integer, ...).
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Why encoding failed (only when a message exceeds the direction's limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message would exceed the limit.
    #[error("encoded message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The serializer refused the value.
    #[error("cannot encode message: {0}")]
    Other(String),
}

/// Encodes a client message into `buf` (cleared first), reusing its allocation.
pub fn encode_client(msg: &ClientMsg, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    buf.clear();
    encode_append(msg, buf, CLIENT_CONFIG, MAX_CLIENT_MSG_BYTES)
}

/// Encodes a server message into `buf` (cleared first), reusing its allocation.
pub fn encode_server(msg: &ServerMsg, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    buf.clear();
    encode_append(msg, buf, SERVER_CONFIG, MAX_SERVER_MSG_BYTES)
}

/// Decodes one whole client message; the slice must hold exactly one message.
pub fn decode_client(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    decode_exact(bytes, CLIENT_CONFIG, MAX_CLIENT_MSG_BYTES)
}

/// Decodes one whole server message; the slice must hold exactly one message.
pub fn decode_server(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    decode_exact(bytes, SERVER_CONFIG, MAX_SERVER_MSG_BYTES)
}

/// The length prefix of a stream frame: the body's length as a u32, little-endian. Bodies are
/// bounded far below 4 GiB by the codec's limits, so the cast cannot truncate.
pub fn length_prefix(body_len: usize) -> [u8; 4] {
    (body_len as u32).to_le_bytes()
}

/// Appends a length-prefixed client message to `buf` (not cleared), for stream transports.
pub fn frame_client(msg: &ClientMsg, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    frame_with(buf, |b| {
        encode_append(msg, b, CLIENT_CONFIG, MAX_CLIENT_MSG_BYTES)
    })
}

/// Appends a length-prefixed server message to `buf` (not cleared), for stream transports.
pub fn frame_server(msg: &ServerMsg, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    frame_with(buf, |b| {
        encode_append(msg, b, SERVER_CONFIG, MAX_SERVER_MSG_BYTES)
    })
}

fn frame_with(
    buf: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; LENGTH_PREFIX_BYTES]);
    if let Err(e) = encode(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - start - LENGTH_PREFIX_BYTES;
    buf[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&length_prefix(len));
    Ok(())
}

fn encode_append<T: Serialize, C: bincode::config::Config>(
    msg: &T,
    buf: &mut Vec<u8>,
    config: C,
    max: usize,
) -> Result<(), EncodeError> {
    let start = buf.len();
    bincode::serde::encode_into_std_write(msg, buf, config)
        .map_err(|e| EncodeError::Other(e.to_string()))?;
    let len = buf.len() - start;
    if len > max {
        buf.truncate(start);
        return Err(EncodeError::TooLarge { len, max });
    }
    Ok(())
}

fn decode_exact<T: DeserializeOwned, C: bincode::config::Config>(
    bytes: &[u8],
    config: C,
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (msg, read) = bincode::serde::decode_from_slice(bytes, config).map_err(map_decode_error)?;
    if read != bytes.len() {
        return Err(DecodeError::Trailing {
            extra: bytes.len() - read,
        });
    }
    Ok(msg)
}

fn map_decode_error(e: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        // A declared length beyond what the message can hold: a lie, not a short read.
        B::LimitExceeded => DecodeError::Malformed("a length beyond the message's limit".into()),
        B::UnexpectedVariant { .. } => DecodeError::UnknownVariant,
        other => {
            let text = other.to_string();
            // serde reports unknown enum tags through a custom message.
            if text.contains("variant") {
                DecodeError::UnknownVariant
            } else {
                DecodeError::Malformed(text)
            }
        }
    }
}

/// Largest token claims body, in bytes.
const MAX_VALUE_BYTES: usize = 1024;
type ValueConfig = Configuration<LittleEndian, Varint, Limit<MAX_VALUE_BYTES>>;
const VALUE_CONFIG: ValueConfig = bincode::config::standard().with_limit::<MAX_VALUE_BYTES>();

/// Encodes a small value (token claims) with the wire codec.
pub(crate) fn encode_value<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    // Claims are small fixed structs; an error here would be a programming error, and an
    // empty body then simply fails verification.
    let _ = encode_append(value, &mut buf, VALUE_CONFIG, MAX_VALUE_BYTES);
    buf
}

/// Decodes a small value (token claims) encoded by `encode_value`.
pub(crate) fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_exact(bytes, VALUE_CONFIG, MAX_VALUE_BYTES)
}

/// Why a byte stream could not be split into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Splits a byte stream into length-prefixed frames (sans-IO: push bytes, pull frames).
/// A length above `max_frame_bytes` is an error before any buffer grows for it.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            max_frame_bytes,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The length of the next frame's body once its prefix has arrived, checked against the
    /// limit; lets a reader know how many bytes to wait for.
    pub fn next_len(&self) -> Result<Option<usize>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < LENGTH_PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        prefix.copy_from_slice(&avail[..LENGTH_PREFIX_BYTES]);
        let len = u32::from_le_bytes(prefix) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        Ok(Some(len))
    }

    /// The next complete frame body, if one is buffered. The slice is valid until the next call.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let Some(len) = self.next_len()? else {
            return Ok(None);
        };
        let avail = self.buf.len() - self.start;
        if avail < LENGTH_PREFIX_BYTES + len {
            self.compact();
            return Ok(None);
        }
        let body_start = self.start + LENGTH_PREFIX_BYTES;
        self.start = body_start + len;
        Ok(Some(&self.buf[body_start..body_start + len]))
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::samples;

    #[test]
    fn every_sample_round_trips() {
        let (client, server) = samples();
        let mut buf = Vec::new();
        for m in client {
            encode_client(&m, &mut buf).unwrap();
            assert_eq!(decode_client(&buf).unwrap(), m);
        }
        for m in server {
            encode_server(&m, &mut buf).unwrap();
            assert_eq!(decode_server(&buf).unwrap(), m);
        }
    }

    #[test]
    fn truncated_trailing_and_unknown_are_typed_errors() {
        let (client, _) = samples();
        let mut buf = Vec::new();
        encode_client(&client[0], &mut buf).unwrap();
        assert_eq!(
            decode_client(&buf[..buf.len() - 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode_client(&[]), Err(DecodeError::Truncated));
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(
            decode_client(&long),
            Err(DecodeError::Trailing { extra: 1 })
        );
        assert_eq!(decode_client(&[200]), Err(DecodeError::UnknownVariant));
    }

    #[test]
    fn oversize_input_is_refused_before_decoding() {
        let big = vec![0u8; MAX_CLIENT_MSG_BYTES + 1];
        assert!(matches!(
            decode_client(&big),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_huge_declared_length_inside_a_message_does_not_allocate() {
        // Hello with a ticket string claiming u64::MAX bytes.
        let bytes = [0u8, 1, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(decode_client(&bytes).is_err());
    }

    #[test]
    fn oversize_message_is_not_encoded() {
        let msg = ClientMsg::FrameInput {
            seq: 1,
            frame: 1,
            input: vec![0; MAX_CLIENT_MSG_BYTES],
        };
        let mut buf = vec![9];
        assert!(matches!(
            encode_client(&msg, &mut buf),
            Err(EncodeError::TooLarge { .. })
        ));
        assert!(buf.is_empty());
        let mut framed = vec![1, 2];
        assert!(frame_client(&msg, &mut framed).is_err());
        assert_eq!(framed, vec![1, 2]);
    }

    #[test]
    fn framer_splits_byte_by_byte_input() {
        let (client, _) = samples();
        let mut stream = Vec::new();
        for m in &client {
            frame_client(m, &mut stream).unwrap();
        }
        let mut dec = FrameDecoder::new(MAX_CLIENT_MSG_BYTES);
        let mut out = Vec::new();
        for b in stream {
            dec.push(&[b]);
            while let Some(frame) = dec.next_frame().unwrap() {
                out.push(decode_client(frame).unwrap());
            }
        }
        assert_eq!(out, client);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn framer_rejects_a_gigabyte_header_without_allocating() {
        let mut dec = FrameDecoder::new(MAX_CLIENT_MSG_BYTES);
        dec.push(&(1u32 << 30).to_le_bytes());
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len: 1 << 30,
                max: MAX_CLIENT_MSG_BYTES
            })
        );
        assert!(dec.buf.capacity() < 1024);
    }
}
