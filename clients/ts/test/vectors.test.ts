// Every golden vector in protocol/vectors: encode equals hex, decode equals message, MACs and
// keys match, invalid bytes are refused, error codes and framing agree.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';

import {
  ClientMsg,
  ServerMsg,
  FrameDecoder,
  Fnv64,
  LENGTH_PREFIX_BYTES,
  MAX_CLIENT_MSG_BYTES,
  MAX_INPUTS_PER_MESSAGE,
  MAX_SERVER_MSG_BYTES,
  PROTOCOL_HASH,
  PROTOCOL_VERSION,
  Reader,
  Writer,
  decodeClient,
  decodeServer,
  encodeClient,
  encodeServer,
  frameClient,
  lengthPrefix,
  toHex,
} from '../src/codec.js';
import { challengeMac, resumeKey } from '../src/crypto.js';
import { DecodeError, ERROR_NAMES, ErrorCode, errorName, fromWsCloseCode, wsCloseCode } from '../src/errors.js';
import { ClientSession } from '../src/session.js';
import { VECTORS_DIR, hex, loadVectors, messageFromJson, messageToJson } from './helpers/vectors.js';

type MsgJson = Record<string, Record<string, unknown>>;
interface MessageCase {
  hex: string;
  kind?: string;
  message: MsgJson;
}

const KNOWN_FILES = ['crypto.json', 'errors.json', 'framing.json', 'handshakes.json', 'invalid.json', 'messages.json', 'varints.json'];

test('every vector file is known to these tests', () => {
  const files = readdirSync(VECTORS_DIR).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(files, KNOWN_FILES, `a new vector file appeared in ${VECTORS_DIR}: add its test`);
});

function checkMessage(direction: 'client' | 'server', c: MessageCase): void {
  const msg = messageFromJson(direction, c.message);
  const encoded = direction === 'client' ? encodeClient(msg as ClientMsg) : encodeServer(msg as ServerMsg);
  assert.equal(toHex(encoded), c.hex, `encode ${JSON.stringify(c.message)}`);
  const decoded = direction === 'client' ? decodeClient(hex(c.hex)) : decodeServer(hex(c.hex));
  assert.deepEqual(messageToJson(direction, decoded), c.message, `decode ${c.hex}`);
  assert.deepEqual(decoded, msg);
}

test('messages.json: every message encodes to its hex and decodes back', () => {
  const v = loadVectors<{ client: MessageCase[]; server: MessageCase[]; protocol_hash: string; protocol_version: number }>('messages.json');
  assert.ok(v.client.length >= 9 && v.server.length >= 12);
  for (const c of v.client) checkMessage('client', c);
  for (const c of v.server) checkMessage('server', c);
  // The kind names match the variants.
  const kinds: Record<string, string> = {
    Hello: 'hello',
    ChallengeResponse: 'challenge_response',
    Resume: 'resume',
    Input: 'input',
    FrameInput: 'frame_input',
    Checksum: 'checksum',
    Ping: 'ping',
    Leave: 'leave',
    Message: 'message',
  };
  for (const c of v.client) {
    if (c.kind !== undefined) assert.equal(kinds[Object.keys(c.message)[0] as string], c.kind);
  }
  assert.equal(v.protocol_version, PROTOCOL_VERSION);
  assert.equal(BigInt(`0x${v.protocol_hash}`), PROTOCOL_HASH);
});

test('PROTOCOL_HASH is the FNV-1a 64 of this codec encoding msg.rs samples()', () => {
  const b = (...v: number[]): Uint8Array => Uint8Array.from(v);
  const client: ClientMsg[] = [
    { type: 'Hello', protocol_version: 1, protocol_hash: 0x0102030405060708n, ticket: 't1.abc' },
    { type: 'ChallengeResponse', mac: new Uint8Array(32).fill(7) },
    { type: 'Resume', protocol_version: 1, protocol_hash: 9n, session_id: 300n, last_frame: 41n },
    { type: 'Input', seq: 5n, tick: 4n, ack_tick: 3n, inputs: [b(1, 2, 3), b(4, 5, 6)] },
    { type: 'FrameInput', seq: 6n, frame: 10n, input: b(127, 129, 1) },
    { type: 'Checksum', seq: 7n, frame: 10n, hash: 0xffff_ffff_ffff_ffffn },
    { type: 'Ping', seq: 8n, client_time_us: 1_000_000n },
    { type: 'Leave', seq: 9n },
    { type: 'Message', seq: 10n, payload: b(104, 105) },
  ];
  const server: ServerMsg[] = [
    { type: 'Challenge', nonce: new Uint8Array(32).fill(1) },
    {
      type: 'Welcome',
      session_id: 300n,
      resume_counter: 2,
      room_id: 77n,
      player_id: 1234n,
      slot: 3,
      max_players: 10,
      sync: 'Lockstep',
      tick_rate_hz: 30,
      tick: 0n,
      next_seq: 1n,
      resumed: false,
      input_redundancy: 8,
    },
    { type: 'Error', code: ErrorCode.RoomFull, detail: 'full' },
    { type: 'Snapshot', tick: 1000n, ack_seq: 999n, baseline: 998n, payload: b(0, 1, 2, 250) },
    { type: 'Frame', n: 12n, inputs: [b(1, 0, 0), b()] },
    { type: 'Desync', frame: 12n },
    { type: 'Pong', client_time_us: 5n, server_time_us: 6n },
    { type: 'Kicked', code: ErrorCode.ServerShutdown },
    { type: 'Started', tick: 1n, players: 2 },
    { type: 'Message', payload: b(3, 1, 4) },
    { type: 'MatchEnded', result: b(1, 0, 9) },
    { type: 'Refused', seq: 10n, code: ErrorCode.RateLimited },
  ];
  const h = new Fnv64();
  for (const m of client) h.write(encodeClient(m));
  for (const m of server) h.write(encodeServer(m));
  assert.equal(h.finish(), PROTOCOL_HASH);
});

test('varints.json: every value encodes to its hex, alone and inside a Ping', () => {
  const v = loadVectors<{ cases: { hex: string; ping_hex: string; value: string }[] }>('varints.json');
  assert.ok(v.cases.length > 0);
  for (const c of v.cases) {
    const value = BigInt(c.value);
    const w = new Writer();
    w.varint(value);
    assert.equal(toHex(w.finish()), c.hex, `varint ${c.value}`);
    const r = new Reader(hex(c.hex));
    assert.equal(r.varint(64), value);
    r.finish();
    const ping: ClientMsg = { type: 'Ping', seq: 1n, client_time_us: value };
    assert.equal(toHex(encodeClient(ping)), c.ping_hex);
    assert.deepEqual(decodeClient(hex(c.ping_hex)), ping);
  }
});

test('framing.json: bodies, u32 LE prefixes, limits, and a byte-by-byte split', () => {
  const v = loadVectors<{
    client: { body_hex: string; framed_hex: string };
    server: { body_hex: string; framed_hex: string };
    length_prefix_bytes: number;
    max_client_message_bytes: number;
    max_inputs_per_message: number;
    max_server_message_bytes: number;
  }>('framing.json');
  assert.equal(v.length_prefix_bytes, LENGTH_PREFIX_BYTES);
  assert.equal(v.max_client_message_bytes, MAX_CLIENT_MSG_BYTES);
  assert.equal(v.max_server_message_bytes, MAX_SERVER_MSG_BYTES);
  assert.equal(v.max_inputs_per_message, MAX_INPUTS_PER_MESSAGE);
  const clientMsg = decodeClient(hex(v.client.body_hex));
  assert.equal(toHex(frameClient(clientMsg)), v.client.framed_hex);
  const serverBody = hex(v.server.body_hex);
  decodeServer(serverBody);
  assert.equal(toHex(lengthPrefix(serverBody.length)) + v.server.body_hex, v.server.framed_hex);
  for (const [framed, body] of [
    [v.client.framed_hex, v.client.body_hex],
    [v.server.framed_hex, v.server.body_hex],
  ] as const) {
    const dec = new FrameDecoder(MAX_SERVER_MSG_BYTES);
    const out: string[] = [];
    for (const byte of hex(framed)) {
      dec.push(Uint8Array.of(byte));
      for (let f = dec.nextFrame(); f !== undefined; f = dec.nextFrame()) out.push(toHex(f));
    }
    assert.deepEqual(out, [body]);
    assert.equal(dec.buffered, 0);
  }
  const huge = new FrameDecoder(MAX_CLIENT_MSG_BYTES);
  huge.push(lengthPrefix(1 << 30));
  assert.throws(() => huge.nextFrame(), (e: unknown) => e instanceof DecodeError && e.kind === 'too_large');
});

test('crypto.json: challenge MACs and resume keys', async () => {
  const v = loadVectors<{
    challenge_mac: { mac_hex: string; nonce_hex: string; secret_hex: string }[];
    resume_key: { join_secret_hex: string; resume_counter: number; resume_key_hex: string; session_id: string }[];
  }>('crypto.json');
  assert.ok(v.challenge_mac.length > 0 && v.resume_key.length > 0);
  for (const c of v.challenge_mac) {
    assert.equal(toHex(await challengeMac(hex(c.secret_hex), hex(c.nonce_hex))), c.mac_hex);
  }
  for (const c of v.resume_key) {
    assert.equal(toHex(await resumeKey(hex(c.join_secret_hex), BigInt(c.session_id), c.resume_counter)), c.resume_key_hex);
  }
});

test('errors.json: codes, names and WebSocket close codes', () => {
  const v = loadVectors<{ codes: { code: number; name: string; ws_close_code: number }[] }>('errors.json');
  assert.equal(v.codes.length, ERROR_NAMES.length);
  assert.equal(Object.keys(ErrorCode).length, ERROR_NAMES.length);
  for (const c of v.codes) {
    assert.equal(errorName(c.code), c.name);
    assert.equal(wsCloseCode(c.code), c.ws_close_code);
    assert.equal(fromWsCloseCode(c.ws_close_code), c.code);
    // The name is the snake_case form of the ErrorCode key with that number.
    const key = Object.entries(ErrorCode).find(([, n]) => n === c.code)?.[0];
    assert.equal(key?.replace(/[A-Z]/g, (m, i: number) => (i === 0 ? m : `_${m}`)).toLowerCase(), c.name);
  }
  assert.equal(fromWsCloseCode(1000), undefined);
  assert.equal(errorName(60000), 'unknown');
});

test('invalid.json: every case is refused with a DecodeError, never another exception', () => {
  const v = loadVectors<{ cases: { direction: 'client' | 'server'; hex: string; why: string }[] }>('invalid.json');
  assert.ok(v.cases.length > 0);
  for (const c of v.cases) {
    const decode = c.direction === 'client' ? decodeClient : decodeServer;
    assert.throws(() => decode(hex(c.hex)), (e: unknown) => e instanceof DecodeError, `${c.direction} ${c.hex}: ${c.why}`);
  }
  // Server-direction cases also fail a session without throwing: a typed error event and a close.
  for (const c of v.cases.filter((x) => x.direction === 'server')) {
    const s = new ClientSession({}, 't', new Uint8Array(32), 0);
    s.connected(0);
    assert.equal(s.handleBytes(1, hex(c.hex)), undefined);
    const events = [];
    for (let e = s.pollEvent(); e !== undefined; e = s.pollEvent()) events.push(e);
    assert.equal(events[0]?.type, 'error', c.why);
    assert.ok(events[0]?.type === 'error' && events[0].error instanceof DecodeError);
    assert.equal(s.pollClose()?.closeCode, 4001);
  }
});

interface HandshakeStep {
  from: 'client' | 'server';
  hex: string;
  message: MsgJson;
}

test('handshakes.json: every step encodes and decodes', () => {
  const v = loadVectors<{ join: HandshakeStep[]; resume: HandshakeStep[] }>('handshakes.json');
  for (const step of [...v.join, ...v.resume]) checkMessage(step.from, { hex: step.hex, message: step.message });
});

test('handshakes.json: a ClientSession replays the join and the resume byte for byte', async () => {
  const v = loadVectors<{ join: HandshakeStep[]; resume: HandshakeStep[]; join_secret_hex: string; session_id: string }>('handshakes.json');
  const hello = messageFromJson('client', (v.join[0] as HandshakeStep).message) as Extract<ClientMsg, { type: 'Hello' }>;
  const s = new ClientSession({}, hello.ticket, hex(v.join_secret_hex), 0);
  let now = 0;
  const sent: string[] = [];
  const drain = (): void => {
    for (let b = s.pollTransmitBytes(); b !== undefined; b = s.pollTransmitBytes()) sent.push(toHex(b));
  };
  const replay = async (steps: HandshakeStep[], act: (i: number) => void): Promise<void> => {
    for (const [i, step] of steps.entries()) {
      now += 10;
      if (step.from === 'server') {
        s.handleBytes(now, hex(step.hex));
        await s.settled();
      } else {
        act(i);
      }
      drain();
      if (step.from === 'client') assert.equal(sent.shift(), step.hex, `step ${i}: ${JSON.stringify(step.message)}`);
    }
    assert.deepEqual(sent, []);
  };
  // Join: Hello on connect, the MAC under the join secret, then one input. The vector's input
  // acknowledges snapshot tick 600 (the Welcome's tick), so the replay receives that snapshot
  // before sending it.
  await replay(v.join, (i) => {
    if (i === 0) s.connected(now);
    else if (v.join[i]?.message.Input !== undefined) {
      s.handleMessage(now, { type: 'Snapshot', tick: 600n, ack_seq: 0n, baseline: 0n, payload: new Uint8Array(0) });
      assert.equal(s.sendInput(now, Uint8Array.of(1, 0, 0)), 1n);
    }
  });
  assert.equal(s.welcome?.session_id, BigInt(v.session_id));
  assert.equal(s.state, 'in_room');

  // Resume: the session, having seen tick 600, resumes with last_frame 600, byte for byte.
  s.connectionLost(now, null);
  now = s.pollTimeout() ?? now;
  s.handleTimeout(now);
  const kinds = [];
  for (let e = s.pollEvent(); e !== undefined; e = s.pollEvent()) kinds.push(e.type);
  assert.deepEqual(kinds.slice(-1), ['reconnect']);
  for (const [i, step] of v.resume.entries()) {
    now += 10;
    if (step.from === 'server') {
      s.handleBytes(now, hex(step.hex));
      await s.settled();
      drain();
      continue;
    }
    if (i === 0) {
      s.connected(now);
      drain();
      assert.equal(sent.shift(), step.hex);
      continue;
    }
    if (step.message.Input !== undefined) {
      s.handleMessage(now, { type: 'Snapshot', tick: 610n, ack_seq: 0n, baseline: 0n, payload: new Uint8Array(0) });
      assert.equal(s.sendInput(now, Uint8Array.of(0, 1, 0)), 2n);
    }
    drain();
    assert.equal(sent.shift(), step.hex, `resume step ${i}: ${JSON.stringify(step.message)}`);
  }
  assert.equal(s.reconnects, 1);
  assert.equal(s.welcome?.resume_counter, 1);
  assert.equal(s.welcome?.resumed, true);
});
