//! Arena snapshots and their wire formats: a compact full encoding and a delta
//! against a baseline the client already acknowledged.
//!
//! Full layout (little-endian): `tick u64, player_count u8, players[slot u8, pos i16x2,
//! vel i16x2, score u32], orb_count u8, orbs[i16x2]`.
//!
//! Delta layout: a kind byte. [`KIND_FULL`] is followed by a full encoding and is used
//! whenever the player slots or the orb count differ from the baseline, because the
//! patch form has no way to say "this player is new". [`KIND_PATCH`] is followed by
//! `tick_advance varint` (wrapping), a bitset of changed players (one bit per baseline
//! player), per changed player a field mask and the changed fields (score as a wrapping
//! varint difference, usually one byte), then a bitset of changed orbs and their
//! positions.

use crate::bytes::{self, Reader};
use crate::GameError;

/// Delta kind: a full encoding follows.
pub const KIND_FULL: u8 = 0;
/// Delta kind: a patch against the baseline follows.
pub const KIND_PATCH: u8 = 1;

/// Field-mask bit: position changed.
const FIELD_POS: u8 = 1 << 0;
/// Field-mask bit: velocity changed.
const FIELD_VEL: u8 = 1 << 1;
/// Field-mask bit: score changed.
const FIELD_SCORE: u8 = 1 << 2;
/// Every field-mask bit the format defines.
const FIELD_ALL: u8 = FIELD_POS | FIELD_VEL | FIELD_SCORE;

/// What clients see of the arena at one tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArenaSnapshot {
    /// Number of `step` calls the server had made.
    pub tick: u64,
    /// Present players in slot order (at most 255 are encoded).
    pub players: Vec<PlayerState>,
    /// Orb centres in centimetres (at most 255 are encoded).
    pub orbs: Vec<[i16; 2]>,
}

/// One player as seen in a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerState {
    /// The room slot this player occupies.
    pub slot: u8,
    /// Centre in centimetres.
    pub pos: [i16; 2],
    /// Velocity in centimetres per second.
    pub vel: [i16; 2],
    /// Orbs collected so far.
    pub score: u32,
}

/// Element count as a wire `u8`; the game never exceeds 255 players or orbs.
fn count_u8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// Bytes in a bitset of `n` bits.
fn bitset_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Append a bitset with bit `i` set when `changed(i)`.
fn put_bitset(out: &mut Vec<u8>, n: usize, changed: impl Fn(usize) -> bool) {
    for chunk in 0..bitset_len(n) {
        let byte = (0..8)
            .filter(|bit| chunk * 8 + bit < n && changed(chunk * 8 + bit))
            .fold(0u8, |acc, bit| acc | (1 << bit));
        out.push(byte);
    }
}

/// Read a bitset of `n` bits; bits past `n` must be clear so each delta has one encoding.
fn read_bitset<'a>(r: &mut Reader<'a>, n: usize) -> Result<&'a [u8], GameError> {
    let bits = r.slice(bitset_len(n))?;
    if let Some(last) = bits.last() {
        let used = n - (bits.len() - 1) * 8;
        if used < 8 && last >> used != 0 {
            return Err(GameError::Invalid("bit set past end of bitset"));
        }
    }
    Ok(bits)
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits[i / 8] & (1 << (i % 8)) != 0
}

/// Full encoding of a snapshot (appends to out).
pub fn encode_full(s: &ArenaSnapshot, out: &mut Vec<u8>) {
    let players = &s.players[..s.players.len().min(usize::from(u8::MAX))];
    let orbs = &s.orbs[..s.orbs.len().min(usize::from(u8::MAX))];
    out.reserve(10 + players.len() * 13 + orbs.len() * 4);
    bytes::put_u64(out, s.tick);
    bytes::put_u8(out, count_u8(players.len()));
    for p in players {
        bytes::put_u8(out, p.slot);
        bytes::put_i16x2(out, p.pos);
        bytes::put_i16x2(out, p.vel);
        bytes::put_u32(out, p.score);
    }
    bytes::put_u8(out, count_u8(orbs.len()));
    for o in orbs {
        bytes::put_i16x2(out, *o);
    }
}

/// Decode a snapshot written by [`encode_full`].
pub fn decode_full(bytes: &[u8]) -> Result<ArenaSnapshot, GameError> {
    let mut r = Reader::new(bytes);
    let s = read_full(&mut r)?;
    r.finish()?;
    Ok(s)
}

fn read_full(r: &mut Reader<'_>) -> Result<ArenaSnapshot, GameError> {
    let tick = r.u64()?;
    let player_count = r.u8()?;
    let mut players = Vec::with_capacity(usize::from(player_count));
    for _ in 0..player_count {
        players.push(PlayerState {
            slot: r.u8()?,
            pos: r.i16x2()?,
            vel: r.i16x2()?,
            score: r.u32()?,
        });
    }
    let orb_count = r.u8()?;
    let mut orbs = Vec::with_capacity(usize::from(orb_count));
    for _ in 0..orb_count {
        orbs.push(r.i16x2()?);
    }
    Ok(ArenaSnapshot {
        tick,
        players,
        orbs,
    })
}

/// True when `current` can be expressed as a patch of `baseline`.
fn patchable(baseline: &ArenaSnapshot, current: &ArenaSnapshot) -> bool {
    baseline.players.len() == current.players.len()
        && baseline.players.len() <= usize::from(u8::MAX)
        && baseline.orbs.len() == current.orbs.len()
        && baseline.orbs.len() <= usize::from(u8::MAX)
        && baseline
            .players
            .iter()
            .zip(&current.players)
            .all(|(b, c)| b.slot == c.slot)
}

fn field_mask(b: &PlayerState, c: &PlayerState) -> u8 {
    let mut mask = 0;
    if b.pos != c.pos {
        mask |= FIELD_POS;
    }
    if b.vel != c.vel {
        mask |= FIELD_VEL;
    }
    if b.score != c.score {
        mask |= FIELD_SCORE;
    }
    mask
}

/// Delta of `current` against `baseline` (appends to out).
pub fn encode_delta(baseline: &ArenaSnapshot, current: &ArenaSnapshot, out: &mut Vec<u8>) {
    if !patchable(baseline, current) {
        bytes::put_u8(out, KIND_FULL);
        encode_full(current, out);
        return;
    }
    bytes::put_u8(out, KIND_PATCH);
    bytes::put_varint(out, current.tick.wrapping_sub(baseline.tick));
    let pairs = || baseline.players.iter().zip(&current.players);
    put_bitset(out, baseline.players.len(), |i| {
        baseline.players[i] != current.players[i]
    });
    for (b, c) in pairs() {
        let mask = field_mask(b, c);
        if mask == 0 {
            continue;
        }
        bytes::put_u8(out, mask);
        if mask & FIELD_POS != 0 {
            bytes::put_i16x2(out, c.pos);
        }
        if mask & FIELD_VEL != 0 {
            bytes::put_i16x2(out, c.vel);
        }
        if mask & FIELD_SCORE != 0 {
            bytes::put_varint(out, u64::from(c.score.wrapping_sub(b.score)));
        }
    }
    put_bitset(out, baseline.orbs.len(), |i| {
        baseline.orbs[i] != current.orbs[i]
    });
    for (b, c) in baseline.orbs.iter().zip(&current.orbs) {
        if b != c {
            bytes::put_i16x2(out, *c);
        }
    }
}

/// Rebuild the current snapshot from `baseline` and a delta written by [`encode_delta`].
pub fn decode_delta(baseline: &ArenaSnapshot, bytes: &[u8]) -> Result<ArenaSnapshot, GameError> {
    let mut r = Reader::new(bytes);
    let s = match r.u8()? {
        KIND_FULL => read_full(&mut r)?,
        KIND_PATCH => read_patch(baseline, &mut r)?,
        _ => return Err(GameError::Invalid("unknown delta kind")),
    };
    r.finish()?;
    Ok(s)
}

fn read_patch(baseline: &ArenaSnapshot, r: &mut Reader<'_>) -> Result<ArenaSnapshot, GameError> {
    let mut s = baseline.clone();
    s.tick = baseline.tick.wrapping_add(r.varint()?);
    let changed = read_bitset(r, s.players.len())?;
    for (i, p) in s.players.iter_mut().enumerate() {
        if !bit(changed, i) {
            continue;
        }
        let mask = r.u8()?;
        if mask == 0 || mask & !FIELD_ALL != 0 {
            return Err(GameError::Invalid("bad player field mask"));
        }
        if mask & FIELD_POS != 0 {
            p.pos = r.i16x2()?;
        }
        if mask & FIELD_VEL != 0 {
            p.vel = r.i16x2()?;
        }
        if mask & FIELD_SCORE != 0 {
            let diff = u32::try_from(r.varint()?)
                .map_err(|_| GameError::Invalid("score difference exceeds u32"))?;
            p.score = p.score.wrapping_add(diff);
        }
    }
    let changed = read_bitset(r, s.orbs.len())?;
    for (i, o) in s.orbs.iter_mut().enumerate() {
        if bit(changed, i) {
            *o = r.i16x2()?;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::{Arena, ArenaInput};
    use crate::StateGame;
    use proptest::prelude::*;

    const DT_S: f32 = 1.0 / 30.0;

    fn full(s: &ArenaSnapshot) -> Vec<u8> {
        let mut out = Vec::new();
        encode_full(s, &mut out);
        out
    }

    fn delta(b: &ArenaSnapshot, c: &ArenaSnapshot) -> Vec<u8> {
        let mut out = Vec::new();
        encode_delta(b, c, &mut out);
        out
    }

    fn player(slot: u8, x: i16, score: u32) -> PlayerState {
        PlayerState {
            slot,
            pos: [x, -x],
            vel: [x / 2, 7],
            score,
        }
    }

    fn snap(tick: u64, players: &[PlayerState]) -> ArenaSnapshot {
        ArenaSnapshot {
            tick,
            players: players.to_vec(),
            orbs: vec![[100, -100], [2000, 3000], [-4900, 4900]],
        }
    }

    /// A 10-player match snapshot, the size the lead benches.
    fn ten_player_arena() -> Arena {
        let mut a = Arena::new(16, 99);
        (0..10).for_each(|s| a.add_player(s));
        a
    }

    #[test]
    fn full_round_trip() {
        let s = snap(u64::MAX, &[player(0, 5, 1), player(7, -32767, u32::MAX)]);
        let bytes = full(&s);
        assert_eq!(bytes.len(), 8 + 1 + 2 * 13 + 1 + 3 * 4);
        assert_eq!(decode_full(&bytes), Ok(s));
        let empty = ArenaSnapshot::default();
        assert_eq!(decode_full(&full(&empty)), Ok(empty));
    }

    #[test]
    fn full_round_trip_of_a_real_match() {
        let mut a = ten_player_arena();
        a.apply_input(
            3,
            &ArenaInput {
                move_x: 90,
                move_y: -40,
                buttons: 0,
            },
        );
        (0..50).for_each(|_| a.step(DT_S));
        let s = a.snapshot();
        assert_eq!(decode_full(&full(&s)), Ok(s));
    }

    #[test]
    fn delta_smaller_than_full_when_one_player_moved() {
        let mut a = ten_player_arena();
        a.step(DT_S);
        let base = a.snapshot();
        a.apply_input(
            4,
            &ArenaInput {
                move_x: 127,
                move_y: 0,
                buttons: 0,
            },
        );
        a.step(DT_S);
        let cur = a.snapshot();
        let d = delta(&base, &cur);
        assert_eq!(d[0], KIND_PATCH);
        // kind + tick + 2 bitset bytes + (mask + pos + vel) + 1 orb bitset byte.
        assert!(d.len() <= 1 + 1 + 2 + 9 + 1 + 4, "delta {} bytes", d.len());
        assert!(d.len() * 5 < full(&cur).len());
        assert_eq!(decode_delta(&base, &d), Ok(cur));
    }

    #[test]
    fn unchanged_snapshot_delta_is_tiny() {
        let s = snap(9, &[player(1, 1, 1), player(2, 2, 2)]);
        let d = delta(&s, &s);
        assert_eq!(d, [KIND_PATCH, 0, 0, 0]);
        assert_eq!(decode_delta(&s, &d), Ok(s));
    }

    #[test]
    fn player_set_change_falls_back_to_full() {
        let base = snap(1, &[player(1, 1, 0), player(2, 2, 0)]);
        for cur in [
            snap(2, &[player(1, 1, 0)]),
            snap(2, &[player(1, 1, 0), player(3, 2, 0)]),
            snap(2, &[player(1, 1, 0), player(2, 2, 0), player(9, 9, 0)]),
        ] {
            let d = delta(&base, &cur);
            assert_eq!(d[0], KIND_FULL);
            assert_eq!(decode_delta(&base, &d), Ok(cur));
        }
    }

    #[test]
    fn malformed_deltas_are_invalid() {
        let s = snap(1, &[player(1, 1, 0)]);
        let invalid = |bytes: &[u8]| matches!(decode_delta(&s, bytes), Err(GameError::Invalid(_)));
        assert!(invalid(&[7]));
        assert!(
            invalid(&[KIND_PATCH, 0, 0b10, 0]),
            "bit past the one player"
        );
        assert!(invalid(&[KIND_PATCH, 0, 1, 0b1000]), "reserved field bit");
        assert!(invalid(&[KIND_PATCH, 0, 1, 0]), "empty field mask");
        assert!(invalid(&[
            KIND_PATCH,
            0,
            1,
            FIELD_SCORE,
            0x80,
            0x80,
            0x80,
            0x80,
            0x10,
            0
        ]));
    }

    #[test]
    fn truncated_data_is_truncated() {
        let s = snap(5, &[player(1, 1, 0), player(2, 2, 0)]);
        let f = full(&s);
        for n in 0..f.len() {
            assert_eq!(
                decode_full(&f[..n]),
                Err(GameError::Truncated),
                "cut at {n}"
            );
        }
        let cur = snap(6, &[player(1, 9, 3), player(2, 2, 0)]);
        let d = delta(&s, &cur);
        for n in 0..d.len() {
            assert_eq!(
                decode_delta(&s, &d[..n]),
                Err(GameError::Truncated),
                "cut at {n}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_trailing() {
        let s = snap(5, &[player(1, 1, 0)]);
        let mut f = full(&s);
        f.push(0);
        assert_eq!(decode_full(&f), Err(GameError::Trailing));
        let mut d = delta(&s, &s);
        d.push(0);
        assert_eq!(decode_delta(&s, &d), Err(GameError::Trailing));
    }

    fn any_player() -> impl Strategy<Value = PlayerState> {
        (
            any::<u8>(),
            any::<[i16; 2]>(),
            any::<[i16; 2]>(),
            any::<u32>(),
        )
            .prop_map(|(slot, pos, vel, score)| PlayerState {
                slot,
                pos,
                vel,
                score,
            })
    }

    fn any_snapshot() -> impl Strategy<Value = ArenaSnapshot> {
        (
            any::<u64>(),
            proptest::collection::vec(any_player(), 0..20),
            proptest::collection::vec(any::<[i16; 2]>(), 0..12),
        )
            .prop_map(|(tick, players, orbs)| ArenaSnapshot {
                tick,
                players,
                orbs,
            })
    }

    /// A snapshot derived from `base` with a random subset of fields replaced from `other`.
    fn mutated() -> impl Strategy<Value = (ArenaSnapshot, ArenaSnapshot)> {
        (any_snapshot(), any_snapshot(), any::<u64>()).prop_map(|(base, other, pick)| {
            let mut cur = base.clone();
            cur.tick = other.tick;
            for (i, (p, o)) in cur.players.iter_mut().zip(&other.players).enumerate() {
                let bits = pick >> ((i * 3) % 60);
                if bits & 1 != 0 {
                    p.pos = o.pos;
                }
                if bits & 2 != 0 {
                    p.vel = o.vel;
                }
                if bits & 4 != 0 {
                    p.score = o.score;
                }
            }
            for (i, (c, o)) in cur.orbs.iter_mut().zip(&other.orbs).enumerate() {
                if pick & (1 << (i % 64)) != 0 {
                    *c = *o;
                }
            }
            (base, cur)
        })
    }

    proptest! {
        #[test]
        fn delta_round_trips_over_random_play(
            script in proptest::collection::vec(
                (0u8..8, any::<i8>(), any::<i8>(), any::<u8>(), 0u8..4), 1..120)
        ) {
            // Joins and leaves mixed with movement so both the patch and the full path run.
            let mut a = Arena::new(8, 7);
            (0..4).for_each(|s| a.add_player(s));
            let mut base = a.snapshot();
            for (slot, move_x, move_y, buttons, action) in script {
                match action {
                    0 => a.add_player(slot),
                    1 if buttons % 8 == 0 => a.remove_player(slot),
                    _ => a.apply_input(slot, &ArenaInput { move_x, move_y, buttons }),
                }
                a.step(DT_S);
                let cur = a.snapshot();
                prop_assert_eq!(decode_delta(&base, &delta(&base, &cur)), Ok(cur.clone()));
                // Advance the baseline only sometimes, like a client whose acks lag.
                if buttons % 3 == 0 {
                    base = cur;
                }
            }
        }

        #[test]
        fn full_round_trips(s in any_snapshot()) {
            prop_assert_eq!(decode_full(&full(&s)), Ok(s));
        }

        #[test]
        fn delta_round_trips_for_arbitrary_pairs(b in any_snapshot(), c in any_snapshot()) {
            prop_assert_eq!(decode_delta(&b, &delta(&b, &c)), Ok(c));
        }

        #[test]
        fn delta_round_trips_for_partial_changes((b, c) in mutated()) {
            let d = delta(&b, &c);
            prop_assert_eq!(d[0], KIND_PATCH);
            prop_assert_eq!(decode_delta(&b, &d), Ok(c));
        }

        #[test]
        fn decoders_never_panic(
            base in any_snapshot(),
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let _ = decode_full(&bytes);
            let _ = decode_delta(&base, &bytes);
            let mut patch = vec![KIND_PATCH];
            patch.extend_from_slice(&bytes);
            let _ = decode_delta(&base, &patch);
        }
    }
}
