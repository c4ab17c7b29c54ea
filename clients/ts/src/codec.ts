// The wire codec: bincode 2's standard configuration (little endian, variable-length integers)
// for every tickroom message, the per-direction size limits, and the u32-length framing of
// stream transports. Mirrors protocol/src/msg.rs and protocol/src/codec.rs; the golden vectors
// in protocol/vectors pin the bytes.
//
// Representation: messages are plain objects tagged by `type` (the Rust variant name) with the
// Rust field names. u64 fields are `bigint`; u8/u16/u32 fields are `number`; byte strings and
// fixed 32-byte secrets are `Uint8Array`; error codes are the u16 number.

import { DecodeError, EncodeError } from './errors.js';

/** Largest client → server message, in bytes. */
export const MAX_CLIENT_MSG_BYTES = 64 * 1024;
/** Largest server → client message, in bytes. */
export const MAX_SERVER_MSG_BYTES = 1024 * 1024;
/** Size of the stream length prefix (QUIC's reliable stream), in bytes. */
export const LENGTH_PREFIX_BYTES = 4;
/** Most inputs one `Input` may carry. */
export const MAX_INPUTS_PER_MESSAGE = 256;
/** Most slots a `Frame` carries. */
export const MAX_FRAME_SLOTS = 256;
/** Length of challenge nonces, MACs and secrets, in bytes. */
export const SECRET_LEN = 32;

/** `PROTOCOL_VERSION` carried in `Hello` and `Resume` (protocol/src/lib.rs). */
export const PROTOCOL_VERSION = 3;
/** `Welcome.slot` of a spectator: no seat. A spectator may send only pings and `leave`. */
export const SPECTATOR_SLOT = 255;
/**
 * `protocol_hash()` of the Rust build this client matches: FNV-1a 64 over the encodings of one
 * sample of every message (`msg::samples()`). The vector tests recompute it from this codec.
 */
export const PROTOCOL_HASH = 0x8f4d0a007b762f69n;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** How a room keeps its players in step. */
export type SyncKind = 'State' | 'Lockstep';
const SYNC_KINDS: readonly SyncKind[] = ['State', 'Lockstep'];

/** The welcome a player gets once the join or resume is accepted. */
export interface Welcome {
  session_id: bigint;
  resume_counter: number;
  room_id: bigint;
  player_id: bigint;
  slot: number;
  max_players: number;
  sync: SyncKind;
  tick_rate_hz: number;
  tick: bigint;
  next_seq: bigint;
  resumed: boolean;
  input_redundancy: number;
}

/** Every message a client sends. */
export type ClientMsg =
  | { type: 'Hello'; protocol_version: number; protocol_hash: bigint; ticket: string }
  | { type: 'ChallengeResponse'; mac: Uint8Array }
  | { type: 'Resume'; protocol_version: number; protocol_hash: bigint; session_id: bigint; last_frame: bigint }
  | { type: 'Input'; seq: bigint; tick: bigint; ack_tick: bigint; inputs: Uint8Array[] }
  | { type: 'FrameInput'; seq: bigint; frame: bigint; input: Uint8Array }
  | { type: 'Checksum'; seq: bigint; frame: bigint; hash: bigint }
  | { type: 'Ping'; seq: bigint; client_time_us: bigint }
  | { type: 'Leave'; seq: bigint }
  | { type: 'Message'; seq: bigint; payload: Uint8Array };

/** Every message the server sends. */
export type ServerMsg =
  | { type: 'Challenge'; nonce: Uint8Array }
  | ({ type: 'Welcome' } & Welcome)
  | { type: 'Error'; code: number; detail: string }
  | { type: 'Snapshot'; tick: bigint; ack_seq: bigint; baseline: bigint; payload: Uint8Array }
  | { type: 'Frame'; n: bigint; inputs: Uint8Array[] }
  | { type: 'Desync'; frame: bigint }
  | { type: 'Pong'; client_time_us: bigint; server_time_us: bigint }
  | { type: 'Kicked'; code: number }
  | { type: 'Started'; tick: bigint; players: number }
  | { type: 'Message'; payload: Uint8Array }
  | { type: 'MatchEnded'; result: Uint8Array }
  | { type: 'Refused'; seq: bigint; code: number };

/**
 * The wire type of one field: `u8` is a raw byte, `u16`/`u32`/`u64` are varints, `bool` is one
 * byte (0 or 1), `str` and `bytes` are a varint length and the bytes, `secret` is 32 raw
 * bytes, `inputs`/`slots` are a bounded sequence of byte strings, `sync` is the `SyncKind`
 * variant index, `code` is an `ErrorCode` (a u16 varint).
 */
export type FieldKind =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 'bool'
  | 'str'
  | 'bytes'
  | 'secret'
  | 'inputs'
  | 'slots'
  | 'sync'
  | 'code';

/** One variant: its name and its fields in wire order. */
export interface VariantSchema {
  readonly name: string;
  readonly fields: readonly (readonly [string, FieldKind])[];
}

const WELCOME_FIELDS: readonly (readonly [string, FieldKind])[] = [
  ['session_id', 'u64'],
  ['resume_counter', 'u32'],
  ['room_id', 'u64'],
  ['player_id', 'u64'],
  ['slot', 'u8'],
  ['max_players', 'u8'],
  ['sync', 'sync'],
  ['tick_rate_hz', 'u16'],
  ['tick', 'u64'],
  ['next_seq', 'u64'],
  ['resumed', 'bool'],
  ['input_redundancy', 'u8'],
];

/** `ClientMsg` variants in declaration order (the index is the wire tag). */
export const CLIENT_SCHEMA: readonly VariantSchema[] = [
  { name: 'Hello', fields: [['protocol_version', 'u16'], ['protocol_hash', 'u64'], ['ticket', 'str']] },
  { name: 'ChallengeResponse', fields: [['mac', 'secret']] },
  {
    name: 'Resume',
    fields: [['protocol_version', 'u16'], ['protocol_hash', 'u64'], ['session_id', 'u64'], ['last_frame', 'u64']],
  },
  { name: 'Input', fields: [['seq', 'u64'], ['tick', 'u64'], ['ack_tick', 'u64'], ['inputs', 'inputs']] },
  { name: 'FrameInput', fields: [['seq', 'u64'], ['frame', 'u64'], ['input', 'bytes']] },
  { name: 'Checksum', fields: [['seq', 'u64'], ['frame', 'u64'], ['hash', 'u64']] },
  { name: 'Ping', fields: [['seq', 'u64'], ['client_time_us', 'u64']] },
  { name: 'Leave', fields: [['seq', 'u64']] },
  { name: 'Message', fields: [['seq', 'u64'], ['payload', 'bytes']] },
];

/** `ServerMsg` variants in declaration order (the index is the wire tag). */
export const SERVER_SCHEMA: readonly VariantSchema[] = [
  { name: 'Challenge', fields: [['nonce', 'secret']] },
  { name: 'Welcome', fields: WELCOME_FIELDS },
  { name: 'Error', fields: [['code', 'code'], ['detail', 'str']] },
  { name: 'Snapshot', fields: [['tick', 'u64'], ['ack_seq', 'u64'], ['baseline', 'u64'], ['payload', 'bytes']] },
  { name: 'Frame', fields: [['n', 'u64'], ['inputs', 'slots']] },
  { name: 'Desync', fields: [['frame', 'u64']] },
  { name: 'Pong', fields: [['client_time_us', 'u64'], ['server_time_us', 'u64']] },
  { name: 'Kicked', fields: [['code', 'code']] },
  { name: 'Started', fields: [['tick', 'u64'], ['players', 'u8']] },
  { name: 'Message', fields: [['payload', 'bytes']] },
  { name: 'MatchEnded', fields: [['result', 'bytes']] },
  { name: 'Refused', fields: [['seq', 'u64'], ['code', 'code']] },
];

const textEncoder = new TextEncoder();
// fatal: invalid UTF-8 is an error (as in Rust); ignoreBOM: a leading U+FEFF is kept as text.
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Appends bincode-2 standard-config values to a growable buffer. */
export class Writer {
  private buf: Uint8Array<ArrayBuffer>;
  private len = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(Math.max(16, capacity));
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.len;
  }

  /** One raw byte. */
  u8(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new EncodeError('invalid', `u8 out of range: ${v}`);
    this.reserve(1);
    this.buf[this.len++] = v;
  }

  /** Raw bytes. */
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  private le(v: bigint, n: number): void {
    this.reserve(n);
    for (let i = 0; i < n; i++) {
      this.buf[this.len++] = Number(v & 0xffn);
      v >>= 8n;
    }
  }

  /** An unsigned varint of at most `maxBits` bits (16, 32 or 64). */
  varint(value: bigint | number, maxBits: 16 | 32 | 64 = 64): void {
    let v: bigint;
    if (typeof value === 'bigint') {
      v = value;
    } else {
      if (!Number.isSafeInteger(value)) throw new EncodeError('invalid', `not an integer: ${value}`);
      v = BigInt(value);
    }
    const max = maxBits === 64 ? U64_MAX : (1n << BigInt(maxBits)) - 1n;
    if (v < 0n || v > max) throw new EncodeError('invalid', `u${maxBits} out of range: ${v}`);
    if (v < 251n) {
      this.reserve(1);
      this.buf[this.len++] = Number(v);
    } else if (v <= 0xffffn) {
      this.u8(251);
      this.le(v, 2);
    } else if (v <= 0xffff_ffffn) {
      this.u8(252);
      this.le(v, 4);
    } else {
      this.u8(253);
      this.le(v, 8);
    }
  }

  /** A bool: one byte, 0 or 1. */
  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  /** A byte string: varint length, then the bytes. */
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.raw(b);
  }

  /** A string: varint length of its UTF-8, then the UTF-8. */
  str(s: string): void {
    this.bytes(textEncoder.encode(s));
  }

  /** A fixed-size array of bytes (`[u8; n]`): the bytes, no length. */
  fixed(b: Uint8Array, n: number): void {
    if (!(b instanceof Uint8Array) || b.length !== n) {
      throw new EncodeError('invalid', `expected ${n} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
    }
    this.raw(b);
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.len);
  }
}

/** Reads bincode-2 standard-config values; every failure is a typed `DecodeError`. */
export class Reader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  /** Bytes not read yet. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number): Uint8Array {
    if (n > this.remaining) throw new DecodeError('truncated', 'message is truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** One raw byte. */
  u8(): number {
    if (this.remaining < 1) throw new DecodeError('truncated', 'message is truncated');
    return this.buf[this.pos++] as number;
  }

  private le(n: number): bigint {
    const b = this.take(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
    return v;
  }

  /**
   * An unsigned varint of at most `maxBits` bits. Like bincode, a wider form than the type
   * (or the u128 and reserved markers 254, 255) is refused; a non-minimal form is accepted.
   */
  varint(maxBits: 16 | 32 | 64): bigint {
    const first = this.u8();
    if (first < 251) return BigInt(first);
    const width = first === 251 ? 16 : first === 252 ? 32 : first === 253 ? 64 : 128;
    if (width > maxBits) {
      throw new DecodeError('malformed', `invalid integer: a ${width === 128 && first === 255 ? 'reserved' : `u${width}`} marker where a u${maxBits} was expected`);
    }
    return this.le(width / 8);
  }

  /** A varint that fits a JS number (u16 or u32). */
  small(maxBits: 16 | 32): number {
    return Number(this.varint(maxBits));
  }

  /** A bool: 0 or 1, anything else is malformed. */
  bool(): boolean {
    const b = this.u8();
    if (b > 1) throw new DecodeError('malformed', `invalid bool: ${b}`);
    return b === 1;
  }

  /** A length (u64 varint) that must fit in the bytes left (each element is at least one byte when `min` is 1). */
  private length(): number {
    const n = this.varint(64);
    if (n > BigInt(this.remaining)) throw new DecodeError('truncated', 'message is truncated');
    return Number(n);
  }

  /** A byte string (a copy). */
  bytes(): Uint8Array {
    return this.take(this.length()).slice();
  }

  /** A UTF-8 string. */
  str(): string {
    const raw = this.take(this.length());
    try {
      return textDecoder.decode(raw);
    } catch {
      throw new DecodeError('malformed', 'string is not valid UTF-8');
    }
  }

  /** `n` raw bytes (a copy). */
  fixed(n: number): Uint8Array {
    return this.take(n).slice();
  }

  /** A sequence of byte strings of at most `max` entries, checked before anything is allocated. */
  byteStrings(max: number): Uint8Array[] {
    const declared = this.varint(64);
    if (declared > BigInt(max)) {
      throw new DecodeError('malformed', `invalid length ${declared}, expected at most ${max} byte strings`);
    }
    const out: Uint8Array[] = [];
    for (let i = 0n; i < declared; i++) out.push(this.bytes());
    return out;
  }

  /** Fails with `Trailing` unless every byte was read. */
  finish(): void {
    if (this.remaining > 0) {
      throw new DecodeError('trailing', `${this.remaining} trailing bytes after the message`);
    }
  }
}

type Fields = Record<string, unknown>;

function writeField(w: Writer, kind: FieldKind, value: unknown, name: string): void {
  const bad = (what: string): never => {
    throw new EncodeError('invalid', `field ${name}: expected ${what}`);
  };
  switch (kind) {
    case 'u8':
      return typeof value === 'number' ? w.u8(value) : bad('a number');
    case 'u16':
      return typeof value === 'number' ? w.varint(value, 16) : bad('a number');
    case 'code':
      return typeof value === 'number' ? w.varint(value, 16) : bad('an error code number');
    case 'u32':
      return typeof value === 'number' ? w.varint(value, 32) : bad('a number');
    case 'u64':
      return typeof value === 'bigint' ? w.varint(value, 64) : bad('a bigint');
    case 'bool':
      return typeof value === 'boolean' ? w.bool(value) : bad('a boolean');
    case 'str':
      return typeof value === 'string' ? w.str(value) : bad('a string');
    case 'bytes':
      return value instanceof Uint8Array ? w.bytes(value) : bad('a Uint8Array');
    case 'secret':
      return value instanceof Uint8Array ? w.fixed(value, SECRET_LEN) : bad('32 bytes');
    case 'inputs':
    case 'slots': {
      if (!Array.isArray(value)) return bad('an array of Uint8Array');
      const max = kind === 'inputs' ? MAX_INPUTS_PER_MESSAGE : MAX_FRAME_SLOTS;
      if (value.length > max) throw new EncodeError('invalid', `field ${name}: more than ${max} entries`);
      w.varint(value.length);
      for (const item of value) {
        if (!(item instanceof Uint8Array)) bad('an array of Uint8Array');
        w.bytes(item as Uint8Array);
      }
      return;
    }
    case 'sync': {
      const i = SYNC_KINDS.indexOf(value as SyncKind);
      return i < 0 ? bad('"State" or "Lockstep"') : w.varint(i, 32);
    }
  }
}

function readField(r: Reader, kind: FieldKind): unknown {
  switch (kind) {
    case 'u8':
      return r.u8();
    case 'u16':
    case 'code':
      return r.small(16);
    case 'u32':
      return r.small(32);
    case 'u64':
      return r.varint(64);
    case 'bool':
      return r.bool();
    case 'str':
      return r.str();
    case 'bytes':
      return r.bytes();
    case 'secret':
      return r.fixed(SECRET_LEN);
    case 'inputs':
      return r.byteStrings(MAX_INPUTS_PER_MESSAGE);
    case 'slots':
      return r.byteStrings(MAX_FRAME_SLOTS);
    case 'sync': {
      const i = r.varint(32);
      const kind = SYNC_KINDS[Number(i)];
      if (i >= BigInt(SYNC_KINDS.length) || kind === undefined) {
        throw new DecodeError('unknown_variant', 'unknown SyncKind variant');
      }
      return kind;
    }
  }
}

function encodeWith(schema: readonly VariantSchema[], msg: { type: string }, max: number): Uint8Array<ArrayBuffer> {
  const tag = schema.findIndex((v) => v.name === msg.type);
  const variant = schema[tag];
  if (variant === undefined) throw new EncodeError('invalid', `unknown message type ${String(msg.type)}`);
  const w = new Writer();
  w.varint(tag, 32);
  const fields = msg as unknown as Fields;
  for (const [name, kind] of variant.fields) writeField(w, kind, fields[name], name);
  if (w.length > max) {
    throw new EncodeError('too_large', `encoded message of ${w.length} bytes exceeds the limit of ${max} bytes`);
  }
  return w.finish();
}

function decodeWith<T>(schema: readonly VariantSchema[], bytes: Uint8Array, max: number): T {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('malformed', 'expected bytes');
  if (bytes.length > max) {
    throw new DecodeError('too_large', `message of ${bytes.length} bytes exceeds the limit of ${max} bytes`);
  }
  const r = new Reader(bytes);
  const tag = r.varint(32);
  const variant = tag < BigInt(schema.length) ? schema[Number(tag)] : undefined;
  if (variant === undefined) throw new DecodeError('unknown_variant', 'unknown message variant');
  const out: Fields = { type: variant.name };
  for (const [name, kind] of variant.fields) out[name] = readField(r, kind);
  r.finish();
  return out as T;
}

/** Encodes a client message; `EncodeError` when it exceeds 64 KiB or a field is out of range. */
export function encodeClient(msg: ClientMsg): Uint8Array<ArrayBuffer> {
  return encodeWith(CLIENT_SCHEMA, msg, MAX_CLIENT_MSG_BYTES);
}

/** Encodes a server message (tests and fake servers); the limit is 1 MiB. */
export function encodeServer(msg: ServerMsg): Uint8Array<ArrayBuffer> {
  return encodeWith(SERVER_SCHEMA, msg, MAX_SERVER_MSG_BYTES);
}

/** Decodes exactly one client message; `DecodeError` for anything else. */
export function decodeClient(bytes: Uint8Array): ClientMsg {
  return decodeWith<ClientMsg>(CLIENT_SCHEMA, bytes, MAX_CLIENT_MSG_BYTES);
}

/** Decodes exactly one server message; `DecodeError` for anything else (never another exception). */
export function decodeServer(bytes: Uint8Array): ServerMsg {
  try {
    return decodeWith<ServerMsg>(SERVER_SCHEMA, bytes, MAX_SERVER_MSG_BYTES);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError('malformed', `malformed message: ${String(e)}`);
  }
}

/** The u32 little-endian length prefix of a stream frame. */
export function lengthPrefix(bodyLen: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(LENGTH_PREFIX_BYTES);
  new DataView(out.buffer).setUint32(0, bodyLen, true);
  return out;
}

/** A length-prefixed client message, for stream transports. */
export function frameClient(msg: ClientMsg): Uint8Array<ArrayBuffer> {
  const body = encodeClient(msg);
  const out = new Uint8Array(LENGTH_PREFIX_BYTES + body.length);
  out.set(lengthPrefix(body.length));
  out.set(body, LENGTH_PREFIX_BYTES);
  return out;
}

/** Splits a byte stream into length-prefixed frames; a length above the limit is refused before buffering it. */
export class FrameDecoder {
  private buf = new Uint8Array(0);

  constructor(private readonly maxFrameBytes: number) {}

  /** Appends received bytes. */
  push(bytes: Uint8Array): void {
    const next = new Uint8Array(this.buf.length + bytes.length);
    next.set(this.buf);
    next.set(bytes, this.buf.length);
    this.buf = next;
  }

  /** Bytes buffered but not yet returned as frames. */
  get buffered(): number {
    return this.buf.length;
  }

  /** The next complete frame body, or `undefined`; `DecodeError('too_large')` for an oversized prefix. */
  nextFrame(): Uint8Array | undefined {
    if (this.buf.length < LENGTH_PREFIX_BYTES) return undefined;
    const len = new DataView(this.buf.buffer, this.buf.byteOffset, LENGTH_PREFIX_BYTES).getUint32(0, true);
    if (len > this.maxFrameBytes) {
      throw new DecodeError('too_large', `frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes} bytes`);
    }
    if (this.buf.length < LENGTH_PREFIX_BYTES + len) return undefined;
    const body = this.buf.slice(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + len);
    this.buf = this.buf.slice(LENGTH_PREFIX_BYTES + len);
    return body;
  }
}

/** FNV-1a 64 (schema hash and game checksums; not for security). */
export class Fnv64 {
  private h = 0xcbf29ce484222325n;

  write(bytes: Uint8Array): void {
    for (const b of bytes) {
      this.h ^= BigInt(b);
      this.h = (this.h * 0x100000001b3n) & U64_MAX;
    }
  }

  finish(): bigint {
    return this.h;
  }
}

/** True for the messages that carry an anti-replay `seq`. */
export function clientSeq(msg: ClientMsg): bigint | undefined {
  return 'seq' in msg ? msg.seq : undefined;
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Bytes of a hex string; `undefined` when it is not even-length hex. */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
