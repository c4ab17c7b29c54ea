//! A room's failover image: what another room server needs to go on with a state-sync room
//! after its owner died. It holds the game's saved state, the seats, and each seat's session:
//! its id, its resume count and the highest sequence number the owner accepted. It holds no
//! secret: a session's join secret is derived again from its ticket's key id and nonce by any
//! room server that has the room keys.
//!
//! The encoding is little-endian and versioned (`IMAGE_MAGIC`, then `IMAGE_FORMAT`): a server
//! reads every format up to its own and refuses a newer one, and a corrupted or foreign image,
//! with a typed [`ImageError`], never a panic.

use tickroom_game::bytes::{put_u32, put_u64, put_u8, put_varint, Reader};
use tickroom_game::{GameError, MetaValue, PlayerMetadata};

/// The first bytes of every image.
pub const IMAGE_MAGIC: [u8; 4] = *b"TRIM";
/// The format this build writes (and the newest it reads).
pub const IMAGE_FORMAT: u16 = 1;
/// The largest image a server writes or reads.
pub const MAX_IMAGE_BYTES: usize = 4 << 20;
/// Most seats an image may hold (modes have at most 64).
const MAX_SEATS: u64 = 64;
/// Most metadata entries per seat, and bytes per string (as `PlayerMetadata::check` allows,
/// with room to spare).
const MAX_META_ENTRIES: u64 = 64;
const MAX_STRING_BYTES: u64 = 1024;

/// A state-sync room as another server restores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomImage {
    pub room_id: u64,
    pub mode: String,
    /// The game's tick when the image was taken.
    pub tick: u64,
    /// How long the match had run, in ms (`None`: it had not started).
    pub played_ms: Option<u64>,
    /// The game's `SAVE_VERSION` and its `save` bytes.
    pub save_version: u16,
    pub game: Vec<u8>,
    /// Everyone who took a seat so far, (player id, slot): for the stored result.
    pub participants: Vec<(u64, u8)>,
    pub seats: Vec<SeatImage>,
}

/// One occupied seat and its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatImage {
    pub slot: u8,
    pub player_id: u64,
    pub session_id: u64,
    pub metadata: PlayerMetadata,
    /// What the join secret is derived from: the ticket's key id and nonce.
    pub key_id: u16,
    pub nonce: [u8; 16],
    /// Successful resumes so far (the next resume key's count).
    pub resume_counter: u32,
    /// The highest sequence number the owner accepted from the session.
    pub highest_seq: u64,
}

/// Why an image could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The bytes do not start like an image.
    #[error("not a room image")]
    NotAnImage,
    /// Written by a newer server.
    #[error("room image format {0} is newer than this server reads ({IMAGE_FORMAT})")]
    Format(u16),
    /// Larger than `MAX_IMAGE_BYTES`.
    #[error("room image of {0} bytes is larger than allowed")]
    TooLarge(usize),
    /// Structurally wrong (truncated, trailing bytes, an impossible count).
    #[error("room image is corrupted: {0}")]
    Corrupted(GameError),
    /// The image is of another room.
    #[error("room image is of room {found}, not {expected}")]
    ForeignRoom { expected: u64, found: u64 },
    /// The image's mode is not served here, or is not a state-sync mode.
    #[error("room image is of mode {0}, which this server cannot restore")]
    UnknownMode(String),
    /// The game refused its saved state.
    #[error("the game refused the saved state: {0}")]
    Game(GameError),
}

impl From<GameError> for ImageError {
    fn from(e: GameError) -> ImageError {
        ImageError::Corrupted(e)
    }
}

impl RoomImage {
    /// The image's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.game.len());
        out.extend_from_slice(&IMAGE_MAGIC);
        out.extend_from_slice(&IMAGE_FORMAT.to_le_bytes());
        put_u64(&mut out, self.room_id);
        put_str(&mut out, &self.mode);
        put_u64(&mut out, self.tick);
        match self.played_ms {
            Some(ms) => {
                put_u8(&mut out, 1);
                put_u64(&mut out, ms);
            }
            None => put_u8(&mut out, 0),
        }
        out.extend_from_slice(&self.save_version.to_le_bytes());
        put_bytes(&mut out, &self.game);
        put_varint(&mut out, self.participants.len() as u64);
        for (player_id, slot) in &self.participants {
            put_u64(&mut out, *player_id);
            put_u8(&mut out, *slot);
        }
        put_varint(&mut out, self.seats.len() as u64);
        for seat in &self.seats {
            put_u8(&mut out, seat.slot);
            put_u64(&mut out, seat.player_id);
            put_u64(&mut out, seat.session_id);
            put_metadata(&mut out, &seat.metadata);
            out.extend_from_slice(&seat.key_id.to_le_bytes());
            out.extend_from_slice(&seat.nonce);
            put_u32(&mut out, seat.resume_counter);
            put_u64(&mut out, seat.highest_seq);
        }
        out
    }

    /// Reads an image of room `room_id`.
    pub fn decode(bytes: &[u8], room_id: u64) -> Result<RoomImage, ImageError> {
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(ImageError::TooLarge(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        if r.slice(4).ok() != Some(&IMAGE_MAGIC[..]) {
            return Err(ImageError::NotAnImage);
        }
        let format = u16_of(&mut r)?;
        if format > IMAGE_FORMAT || format == 0 {
            return Err(ImageError::Format(format));
        }
        let found = r.u64()?;
        if found != room_id {
            return Err(ImageError::ForeignRoom {
                expected: room_id,
                found,
            });
        }
        let mode = string(&mut r)?;
        let tick = r.u64()?;
        let played_ms = match r.u8()? {
            0 => None,
            1 => Some(r.u64()?),
            _ => return Err(GameError::Invalid("played flag").into()),
        };
        let save_version = u16_of(&mut r)?;
        let game = bytes_of(&mut r, MAX_IMAGE_BYTES as u64)?.to_vec();
        let participants = (0..count(&mut r, MAX_SEATS * 4)?)
            .map(|_| Ok((r.u64()?, r.u8()?)))
            .collect::<Result<_, GameError>>()?;
        let seats = (0..count(&mut r, MAX_SEATS)?)
            .map(|_| {
                Ok(SeatImage {
                    slot: r.u8()?,
                    player_id: r.u64()?,
                    session_id: r.u64()?,
                    metadata: metadata(&mut r)?,
                    key_id: u16_of(&mut r)?,
                    nonce: r.slice(16)?.try_into().map_err(|_| GameError::Truncated)?,
                    resume_counter: r.u32()?,
                    highest_seq: r.u64()?,
                })
            })
            .collect::<Result<_, GameError>>()?;
        r.finish()?;
        Ok(RoomImage {
            room_id,
            mode,
            tick,
            played_ms,
            save_version,
            game,
            participants,
            seats,
        })
    }
}

fn u16_of(r: &mut Reader<'_>) -> Result<u16, GameError> {
    let b = r.slice(2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn count(r: &mut Reader<'_>, max: u64) -> Result<u64, GameError> {
    let n = r.varint()?;
    if n > max {
        return Err(GameError::Invalid("count over its limit"));
    }
    Ok(n)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn bytes_of<'a>(r: &mut Reader<'a>, max: u64) -> Result<&'a [u8], GameError> {
    let n = count(r, max)?;
    r.slice(n as usize)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn string(r: &mut Reader<'_>) -> Result<String, GameError> {
    let bytes = bytes_of(r, MAX_STRING_BYTES)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| GameError::Invalid("not UTF-8"))
}

fn put_metadata(out: &mut Vec<u8>, metadata: &PlayerMetadata) {
    put_varint(out, metadata.0.len() as u64);
    for (key, value) in &metadata.0 {
        put_str(out, key);
        match value {
            MetaValue::Str(s) => {
                put_u8(out, 0);
                put_str(out, s);
            }
            MetaValue::Int(n) => {
                put_u8(out, 1);
                put_u64(out, *n as u64);
            }
        }
    }
}

fn metadata(r: &mut Reader<'_>) -> Result<PlayerMetadata, GameError> {
    let mut out = PlayerMetadata::default();
    for _ in 0..count(r, MAX_META_ENTRIES)? {
        let key = string(r)?;
        let value = match r.u8()? {
            0 => MetaValue::Str(string(r)?),
            1 => MetaValue::Int(r.u64()? as i64),
            _ => return Err(GameError::Invalid("metadata value kind")),
        };
        out.0.insert(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn image() -> RoomImage {
        let mut metadata = PlayerMetadata::default();
        metadata
            .0
            .insert("name".into(), MetaValue::Str("ann".into()));
        metadata.0.insert("rating".into(), MetaValue::Int(-1500));
        RoomImage {
            room_id: 77,
            mode: "arena".into(),
            tick: 901,
            played_ms: Some(30_000),
            save_version: 3,
            game: vec![1, 2, 3, 255],
            participants: vec![(5, 0), (6, 1)],
            seats: vec![SeatImage {
                slot: 1,
                player_id: 6,
                session_id: u64::MAX,
                metadata,
                key_id: 2,
                nonce: [9; 16],
                resume_counter: 4,
                highest_seq: 1 << 40,
            }],
        }
    }

    #[test]
    fn an_image_round_trips_and_foreign_newer_or_broken_ones_are_refused() {
        let bytes = image().encode();
        assert_eq!(RoomImage::decode(&bytes, 77), Ok(image()));
        assert_eq!(
            RoomImage::decode(&bytes, 78),
            Err(ImageError::ForeignRoom {
                expected: 78,
                found: 77
            })
        );
        let mut newer = bytes.clone();
        newer[4..6].copy_from_slice(&(IMAGE_FORMAT + 1).to_le_bytes());
        assert_eq!(
            RoomImage::decode(&newer, 77),
            Err(ImageError::Format(IMAGE_FORMAT + 1))
        );
        assert_eq!(
            RoomImage::decode(b"{\"json\":1}", 77),
            Err(ImageError::NotAnImage)
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            RoomImage::decode(&trailing, 77),
            Err(ImageError::Corrupted(GameError::Trailing))
        ));
        for cut in 0..bytes.len() {
            assert!(
                RoomImage::decode(&bytes[..cut], 77).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        /// Any bytes: a typed error or an image, never a panic; an image decoded from
        /// mutated bytes survives its own round trip.
        #[test]
        fn decoding_any_bytes_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = image().encode();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(decoded) = RoomImage::decode(&bytes, 77) {
                prop_assert_eq!(RoomImage::decode(&decoded.encode(), 77), Ok(decoded));
            }
            let _ = RoomImage::decode(&junk, 77);
        }
    }
}
