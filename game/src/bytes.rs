//! Little-endian reader/writer helpers shared by both sample games' wire formats.
//!
//! Hand-written rather than a serialisation crate so the formats are compact, stable
//! and cheap; the reader never panics and reports `Truncated` / `Trailing` precisely.

use crate::GameError;

/// Length in bytes of the movement input both sample games share (`move_x`, `move_y`, `buttons`).
pub const MOVE_INPUT_LEN_BYTES: usize = 3;

/// Longest LEB128 encoding of a `u64` (ceil(64 / 7)).
const MAX_VARINT_LEN_BYTES: usize = 10;

/// Append a byte.
pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

/// Append an `i16`, little-endian.
pub fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append a pair of `i16`s, little-endian.
pub fn put_i16x2(out: &mut Vec<u8>, v: [i16; 2]) {
    put_i16(out, v[0]);
    put_i16(out, v[1]);
}

/// Append a `u32`, little-endian.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append a `u64`, little-endian.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append a `u64` as unsigned LEB128 (1 byte for values below 128).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The shared 3-byte movement input, as raw fields.
pub fn put_move_input(out: &mut Vec<u8>, move_x: i8, move_y: i8, buttons: u8) {
    out.extend_from_slice(&[move_x as u8, move_y as u8, buttons]);
}

/// Decode the shared 3-byte movement input; empty means "no input" and gives all zeroes.
pub fn move_input(bytes: &[u8]) -> Result<(i8, i8, u8), GameError> {
    match bytes {
        [] => Ok((0, 0, 0)),
        [x, y, b] => Ok((*x as i8, *y as i8, *b)),
        short if short.len() < MOVE_INPUT_LEN_BYTES => Err(GameError::Truncated),
        _ => Err(GameError::Trailing),
    }
}

/// A bounds-checked cursor over encoded bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Take the next `N` bytes.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GameError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(GameError::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }

    /// Take `n` bytes as a slice.
    pub fn slice(&mut self, n: usize) -> Result<&'a [u8], GameError> {
        if self.buf.len() < n {
            return Err(GameError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Read a byte.
    pub fn u8(&mut self) -> Result<u8, GameError> {
        Ok(self.array::<1>()?[0])
    }

    /// Read a little-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, GameError> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    /// Read a pair of little-endian `i16`s.
    pub fn i16x2(&mut self) -> Result<[i16; 2], GameError> {
        Ok([self.i16()?, self.i16()?])
    }

    /// Read a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, GameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Read a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, GameError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Read an unsigned LEB128 `u64`, rejecting encodings that overflow 64 bits.
    pub fn varint(&mut self) -> Result<u64, GameError> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN_BYTES {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7F);
            let shift = 7 * i as u32;
            // The tenth byte may only carry the single remaining bit of a u64.
            if i == MAX_VARINT_LEN_BYTES - 1 && bits > 1 {
                return Err(GameError::Invalid("varint overflows u64"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(GameError::Invalid("varint longer than 10 bytes"))
    }

    /// Succeed only if every byte has been consumed.
    pub fn finish(self) -> Result<(), GameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(GameError::Trailing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn varint_bytes(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn fixed_width_round_trip() {
        let mut out = Vec::new();
        put_u8(&mut out, 0xAB);
        put_i16x2(&mut out, [-2, 300]);
        put_u32(&mut out, 0xDEAD_BEEF);
        put_u64(&mut out, u64::MAX - 1);
        let mut r = Reader::new(&out);
        assert_eq!(r.u8(), Ok(0xAB));
        assert_eq!(r.i16x2(), Ok([-2, 300]));
        assert_eq!(r.u32(), Ok(0xDEAD_BEEF));
        assert_eq!(r.u64(), Ok(u64::MAX - 1));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn reader_reports_truncated_and_trailing() {
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(GameError::Truncated));
        assert_eq!(Reader::new(&[1]).slice(2), Err(GameError::Truncated));
        assert_eq!(Reader::new(&[1]).finish(), Err(GameError::Trailing));
    }

    #[test]
    fn varint_edges() {
        assert_eq!(varint_bytes(0), [0]);
        assert_eq!(varint_bytes(127), [127]);
        assert_eq!(varint_bytes(128), [0x80, 1]);
        assert_eq!(varint_bytes(u64::MAX).len(), MAX_VARINT_LEN_BYTES);
        let mut overflow = vec![0xFF; 9];
        overflow.push(0x02);
        assert!(matches!(
            Reader::new(&overflow).varint(),
            Err(GameError::Invalid(_))
        ));
        assert!(matches!(
            Reader::new(&[0x80; 11]).varint(),
            Err(GameError::Invalid(_))
        ));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(GameError::Truncated));
    }

    #[test]
    fn move_input_lengths() {
        assert_eq!(move_input(&[]), Ok((0, 0, 0)));
        assert_eq!(move_input(&[0xFF, 1, 2]), Ok((-1, 1, 2)));
        assert_eq!(move_input(&[1]), Err(GameError::Truncated));
        assert_eq!(move_input(&[1, 2]), Err(GameError::Truncated));
        assert_eq!(move_input(&[1, 2, 3, 4]), Err(GameError::Trailing));
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<u64>()) {
            let bytes = varint_bytes(v);
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.varint(), Ok(v));
            prop_assert_eq!(r.finish(), Ok(()));
        }

        #[test]
        fn varint_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = Reader::new(&bytes).varint();
        }
    }
}
