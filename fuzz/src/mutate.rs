//! Byte mutators: hostile inputs grown from valid encodings (bit flips, overwrites,
//! truncation, deletion, duplication, splices from other seeds, inflated length fields and
//! extreme numbers, and long runs that push a message to its size limit), mixed with fully random bytes.
//! Everything is a proptest strategy, so a failing input shrinks to a short reproducer.

use proptest::prelude::*;
use proptest::sample::Index;

/// Longest run of bytes one mutation inserts or duplicates in place.
const MAX_SPAN_BYTES: usize = 32;
/// Most mutations applied to one seed.
const MAX_MUTATIONS: usize = 8;

/// Length fields and numbers at their extremes, as the decoders read them: bincode's varint
/// markers (251 = u16, 252 = u32, 253 = u64, 254 = u128 follows), a u32 little-endian frame
/// prefix, LEB128 (the games' varint), u64::MAX, i32::MAX and i32::MIN, f32 NaN and
/// infinities (little-endian), and single bytes.
const EXTREMES: &[&[u8]] = &[
    &[0xFA],
    &[0xFB, 0xFF, 0xFF],
    &[0xFC, 0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFC, 0x00, 0x00, 0x01, 0x00],
    &[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFD, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
    &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0x00, 0x00, 0x10, 0x00],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    &[
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
    ],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFF, 0xFF, 0xFF, 0x7F],
    &[0x00, 0x00, 0x00, 0x80],
    &[0x00, 0x00, 0xC0, 0x7F],
    &[0x00, 0x00, 0x80, 0x7F],
    &[0x00, 0x00, 0x80, 0xFF],
    &[0xFF],
    &[0x7F],
    &[0x80],
];

/// One change to a byte string. Positions are proptest `Index`es, so they fit any length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit.
    FlipBit {
        /// Where.
        at: Index,
        /// Which bit, 0..8.
        bit: u8,
    },
    /// Overwrite one byte.
    SetByte {
        /// Where.
        at: Index,
        /// The new value.
        value: u8,
    },
    /// Cut the input short.
    Truncate {
        /// The new length.
        at: Index,
    },
    /// Delete up to `len` bytes.
    Remove {
        /// Where.
        at: Index,
        /// How many.
        len: usize,
    },
    /// Insert bytes.
    Insert {
        /// Where.
        at: Index,
        /// What.
        bytes: Vec<u8>,
    },
    /// Repeat up to `len` bytes in place.
    Duplicate {
        /// Start of the repeated span.
        at: Index,
        /// Its length.
        len: usize,
    },
    /// Insert a span of another seed (or of this one).
    Splice {
        /// Where.
        at: Index,
        /// Which seed the span comes from.
        donor: Index,
        /// Where in the donor it starts.
        from: Index,
        /// Its length.
        len: usize,
    },
    /// Write a large length field or an extreme number over the bytes at `at`, or insert it.
    Extreme {
        /// Where.
        at: Index,
        /// Which of the extreme patterns.
        pattern: Index,
        /// Insert instead of overwriting.
        insert: bool,
    },
    /// Insert `len` copies of `value`: filler that takes a message to its size limit.
    Run {
        /// Where.
        at: Index,
        /// The repeated byte.
        value: u8,
        /// How many, up to the strategy's `max_len`.
        len: usize,
    },
}

impl Mutation {
    /// Applies the mutation to `bytes`; `seeds` are the donors of `Splice`.
    pub fn apply(&self, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let n = bytes.len();
        match self {
            Mutation::FlipBit { at, bit } if n > 0 => bytes[at.index(n)] ^= 1 << (bit % 8),
            Mutation::SetByte { at, value } if n > 0 => bytes[at.index(n)] = *value,
            Mutation::Truncate { at } => bytes.truncate(at.index(n + 1)),
            Mutation::Remove { at, len } if n > 0 => {
                let start = at.index(n);
                let end = (start + len).min(n);
                bytes.drain(start..end);
            }
            Mutation::Insert { at, bytes: new } => {
                let at = at.index(n + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Duplicate { at, len } if n > 0 => {
                let start = at.index(n);
                let span = bytes[start..(start + len).min(n)].to_vec();
                bytes.splice(start..start, span);
            }
            Mutation::Splice {
                at,
                donor,
                from,
                len,
            } if !seeds.is_empty() => {
                let donor = &seeds[donor.index(seeds.len())];
                let start = from.index(donor.len() + 1);
                let span = &donor[start..(start + len).min(donor.len())];
                let at = at.index(n + 1);
                bytes.splice(at..at, span.iter().copied());
            }
            Mutation::Extreme {
                at,
                pattern,
                insert,
            } => {
                let pattern = EXTREMES[pattern.index(EXTREMES.len())];
                let at = at.index(n + 1);
                let end = if *insert {
                    at
                } else {
                    (at + pattern.len()).min(n)
                };
                bytes.splice(at..end, pattern.iter().copied());
            }
            Mutation::Run { at, value, len } => {
                let at = at.index(n + 1);
                bytes.splice(at..at, std::iter::repeat_n(*value, *len));
            }
            // A mutation that needs bytes does nothing to an empty input.
            _ => {}
        }
    }
}

/// One mutation; `Run` inserts up to `max_len` bytes.
pub fn mutation(max_len: usize) -> impl Strategy<Value = Mutation> {
    let span = 1..=MAX_SPAN_BYTES;
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        4 => (any::<Index>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        2 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), span.clone()).prop_map(|(at, len)| Mutation::Remove { at, len }),
        2 => (any::<Index>(), proptest::collection::vec(any::<u8>(), span.clone()))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<Index>(), span.clone()).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), span)
            .prop_map(|(at, donor, from, len)| Mutation::Splice { at, donor, from, len }),
        3 => (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(at, pattern, insert)| Mutation::Extreme { at, pattern, insert }),
        1 => (any::<Index>(), any::<u8>(), 1..=max_len.max(1))
            .prop_map(|(at, value, len)| Mutation::Run { at, value, len }),
    ]
}

/// A seed with 1 to [`MAX_MUTATIONS`] mutations applied; `Run`s insert up to `max_len` bytes.
pub fn mutated(seeds: Vec<Vec<u8>>, max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "a mutator needs at least one seed");
    (
        any::<Index>(),
        proptest::collection::vec(mutation(max_len), 1..=MAX_MUTATIONS),
    )
        .prop_map(move |(pick, mutations)| {
            let mut bytes = seeds[pick.index(seeds.len())].clone();
            for m in &mutations {
                m.apply(&mut bytes, &seeds);
            }
            bytes
        })
}

/// Hostile input for a decoder: mostly mutated seeds, some seeds as they are, some random
/// bytes (up to `max_random_len`); `Run` mutations reach `max_len`, a decoder's limit.
pub fn hostile(
    seeds: Vec<Vec<u8>>,
    max_random_len: usize,
    max_len: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let pick = seeds.clone();
    prop_oneof![
        6 => mutated(seeds, max_len),
        1 => any::<Index>().prop_map(move |i| pick[i.index(pick.len())].clone()),
        2 => proptest::collection::vec(any::<u8>(), 0..=max_random_len),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #[test]
        fn mutations_apply_to_any_input_even_empty(
            m in mutation(64),
            start in proptest::collection::vec(any::<u8>(), 0..6),
            donor in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            let mut bytes = start;
            m.apply(&mut bytes, &[donor, Vec::new()]);
        }
    }
}
