// The sample `arena` game's client side (game/src/arena/, game/src/bytes.rs): its 3-byte stick
// input, its full and delta snapshot encodings, its match result, and a tracker that rebuilds
// views from `snapshot` events (protocol/src/view.rs).
//
// Full snapshot (little-endian): tick u64, player_count u8, players[slot u8, pos i16x2,
// vel i16x2, score u32], orb_count u8, orbs[i16x2]. Positions in centimetres, velocities in cm/s.
// Delta: kind u8 (0 = a full snapshot follows, 1 = a patch): tick_advance LEB128, a bitset of
// changed players, per changed player a field mask (1 pos, 2 vel, 4 score) and the fields
// (score as a LEB128 wrapping difference), then a bitset of changed orbs and their positions.
/** Half the side of the square arena, in centimetres (the arena is centred on the origin). */
export const ARENA_HALF_SIZE_CM = 5000;
/** Player and orb radius, in centimetres. */
export const PLAYER_RADIUS_CM = 50;
export const ORB_RADIUS_CM = 50;
/** Speed of a full stick, cm/s. */
export const MAX_SPEED_CM_PER_S = 800;
/** `buttons` bit that requests a dash. */
export const DASH_BUTTON = 1;
/** How many received views are kept as delta baselines. */
export const VIEW_HISTORY_TICKS = 64;
const KIND_FULL = 0;
const KIND_PATCH = 1;
const FIELD_POS = 1;
const FIELD_VEL = 2;
const FIELD_SCORE = 4;
const FIELD_ALL = FIELD_POS | FIELD_VEL | FIELD_SCORE;
/** Why game bytes did not decode. */
export class GameDecodeError extends Error {
    constructor(kind, message) {
        super(message);
        this.kind = kind;
        this.name = 'GameDecodeError';
    }
}
function clampAxis(v) {
    return Math.max(-127, Math.min(127, Math.round(v)));
}
/** The 3-byte arena input: move_x, move_y (-127..127, i8) and the button bits. */
export function encodeArenaInput(moveX, moveY, buttons = 0) {
    return new Uint8Array([clampAxis(moveX) & 0xff, clampAxis(moveY) & 0xff, buttons & 0xff]);
}
/** Decodes an arena input; empty means "no input". */
export function decodeArenaInput(bytes) {
    if (bytes.length === 0)
        return { moveX: 0, moveY: 0, buttons: 0 };
    if (bytes.length < 3)
        throw new GameDecodeError('truncated', 'input is truncated');
    if (bytes.length > 3)
        throw new GameDecodeError('trailing', 'trailing bytes after the input');
    const i8 = (b) => (b > 127 ? b - 256 : b);
    return { moveX: i8(bytes[0]), moveY: i8(bytes[1]), buttons: bytes[2] };
}
class GameReader {
    constructor(buf) {
        this.buf = buf;
        this.pos = 0;
        this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    need(n) {
        if (this.buf.length - this.pos < n)
            throw new GameDecodeError('truncated', 'snapshot is truncated');
    }
    u8() {
        this.need(1);
        return this.view.getUint8(this.pos++);
    }
    i16() {
        this.need(2);
        const v = this.view.getInt16(this.pos, true);
        this.pos += 2;
        return v;
    }
    i16x2() {
        return [this.i16(), this.i16()];
    }
    u32() {
        this.need(4);
        const v = this.view.getUint32(this.pos, true);
        this.pos += 4;
        return v;
    }
    u64() {
        this.need(8);
        const v = this.view.getBigUint64(this.pos, true);
        this.pos += 8;
        return v;
    }
    slice(n) {
        this.need(n);
        const out = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return out;
    }
    /** Unsigned LEB128 u64, refusing encodings that overflow 64 bits. */
    varint() {
        let value = 0n;
        for (let i = 0; i < 10; i++) {
            const byte = this.u8();
            const bits = BigInt(byte & 0x7f);
            if (i === 9 && bits > 1n)
                throw new GameDecodeError('invalid', 'varint overflows u64');
            value |= bits << BigInt(7 * i);
            if ((byte & 0x80) === 0)
                return value;
        }
        throw new GameDecodeError('invalid', 'varint longer than 10 bytes');
    }
    finish() {
        if (this.pos !== this.buf.length)
            throw new GameDecodeError('trailing', 'trailing bytes after the snapshot');
    }
}
function readFull(r) {
    const tick = r.u64();
    const playerCount = r.u8();
    const players = [];
    for (let i = 0; i < playerCount; i++) {
        players.push({ slot: r.u8(), pos: r.i16x2(), vel: r.i16x2(), score: r.u32() });
    }
    const orbCount = r.u8();
    const orbs = [];
    for (let i = 0; i < orbCount; i++)
        orbs.push(r.i16x2());
    return { tick, players, orbs };
}
function readBitset(r, n) {
    const bits = r.slice(Math.ceil(n / 8));
    if (bits.length > 0) {
        const used = n - (bits.length - 1) * 8;
        if (used < 8 && bits[bits.length - 1] >> used !== 0) {
            throw new GameDecodeError('invalid', 'bit set past end of bitset');
        }
    }
    return bits;
}
function bit(bits, i) {
    return ((bits[i >> 3] >> (i & 7)) & 1) === 1;
}
/** Decodes a full arena snapshot. */
export function decodeArenaFull(bytes) {
    const r = new GameReader(bytes);
    const s = readFull(r);
    r.finish();
    return s;
}
function cloneSnapshot(s) {
    return {
        tick: s.tick,
        players: s.players.map((p) => ({ slot: p.slot, pos: [p.pos[0], p.pos[1]], vel: [p.vel[0], p.vel[1]], score: p.score })),
        orbs: s.orbs.map((o) => [o[0], o[1]]),
    };
}
/** Rebuilds a snapshot from `baseline` and a delta. */
export function decodeArenaDelta(baseline, bytes) {
    const r = new GameReader(bytes);
    const kind = r.u8();
    let s;
    if (kind === KIND_FULL) {
        s = readFull(r);
    }
    else if (kind === KIND_PATCH) {
        s = cloneSnapshot(baseline);
        s.tick = BigInt.asUintN(64, baseline.tick + r.varint());
        const changed = readBitset(r, s.players.length);
        s.players.forEach((p, i) => {
            if (!bit(changed, i))
                return;
            const mask = r.u8();
            if (mask === 0 || (mask & ~FIELD_ALL) !== 0)
                throw new GameDecodeError('invalid', 'bad player field mask');
            if (mask & FIELD_POS)
                p.pos = r.i16x2();
            if (mask & FIELD_VEL)
                p.vel = r.i16x2();
            if (mask & FIELD_SCORE) {
                const diff = r.varint();
                if (diff > 0xffffffffn)
                    throw new GameDecodeError('invalid', 'score difference exceeds u32');
                p.score = (p.score + Number(diff)) >>> 0;
            }
        });
        const orbsChanged = readBitset(r, s.orbs.length);
        s.orbs.forEach((_, i) => {
            if (bit(orbsChanged, i))
                s.orbs[i] = r.i16x2();
        });
    }
    else {
        throw new GameDecodeError('invalid', 'unknown delta kind');
    }
    r.finish();
    return s;
}
/** Decodes the arena's match result (`matchEnded` event). */
export function decodeArenaResult(bytes) {
    const r = new GameReader(bytes);
    const n = r.u8();
    const scores = [];
    for (let i = 0; i < n; i++)
        scores.push({ slot: r.u8(), score: r.u32() });
    const w = r.u8();
    r.finish();
    return { scores, winner: w === 255 ? null : w };
}
/** Chat lines (the arena's custom messages) are UTF-8 text. */
export function encodeChat(line) {
    return new TextEncoder().encode(line);
}
export function decodeChat(payload) {
    return new TextDecoder('utf-8', { fatal: true }).decode(payload);
}
/** The views received so far, by tick: feed it every `snapshot` event. */
export class ArenaViewTracker {
    constructor() {
        this.history = [];
    }
    /**
     * Decodes one snapshot (`baseline === 0n`: full, else a delta against the view of tick
     * `baseline`) and returns the view of `tick`. A delta against a view no longer held is a
     * `GameDecodeError('invalid')`; the server sends a full one once the acknowledgement moves on.
     */
    apply(tick, baseline, payload) {
        let view;
        if (baseline === 0n) {
            view = decodeArenaFull(payload);
        }
        else {
            const base = this.history.find((h) => h.tick === baseline);
            if (base === undefined)
                throw new GameDecodeError('invalid', 'delta against a view no longer held');
            view = decodeArenaDelta(base.view, payload);
        }
        const last = this.history[this.history.length - 1];
        if (last !== undefined && last.tick >= tick) {
            this.history = this.history.filter((h) => h.tick !== tick);
            const at = this.history.findIndex((h) => h.tick > tick);
            this.history.splice(at < 0 ? this.history.length : at, 0, { tick, view });
        }
        else {
            this.history.push({ tick, view });
        }
        if (this.history.length > VIEW_HISTORY_TICKS)
            this.history.splice(0, this.history.length - VIEW_HISTORY_TICKS);
        return view;
    }
    /** The newest view. */
    latest() {
        return this.history[this.history.length - 1];
    }
}
