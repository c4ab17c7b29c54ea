// The sans-IO session core with fake time: handshake, resume with the derived key and
// continuing seqs, backoff, the redundancy window, pings, lockstep, custom messages, errors,
// and refusal of malformed server bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ClientMsg, MAX_SERVER_MSG_BYTES, PROTOCOL_HASH, PROTOCOL_VERSION, ServerMsg, Welcome, decodeClient, encodeServer } from '../src/codec.js';
import { challengeMac, resumeKey } from '../src/crypto.js';
import { DecodeError, ErrorCode, SessionError, VersionMismatchError } from '../src/errors.js';
import { ClientSession, DEFAULT_SESSION_CONFIG, MAX_BUFFERED_INPUTS, SessionConfig, SessionEvent } from '../src/session.js';

const JOIN = new Uint8Array(32).fill(11);
const NONCE = new Uint8Array(32).fill(22);
const SID = 42n;

function welcome(over: Partial<Welcome> = {}): ServerMsg {
  return {
    type: 'Welcome',
    session_id: SID,
    resume_counter: 0,
    room_id: 7n,
    player_id: 9n,
    slot: 0,
    max_players: 2,
    sync: 'State',
    tick_rate_hz: 30,
    tick: 0n,
    next_seq: 1n,
    resumed: false,
    input_redundancy: 8,
    ...over,
  };
}

function session(config: Partial<SessionConfig> = {}, t0 = 0): ClientSession {
  return new ClientSession(config, 'j1.ticket', JOIN, t0);
}

function tx(s: ClientSession): ClientMsg[] {
  const out: ClientMsg[] = [];
  for (let b = s.pollTransmitBytes(); b !== undefined; b = s.pollTransmitBytes()) out.push(decodeClient(b));
  return out;
}

function ev(s: ClientSession): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (let e = s.pollEvent(); e !== undefined; e = s.pollEvent()) out.push(e);
  return out;
}

function seqs(msgs: ClientMsg[]): bigint[] {
  return msgs.flatMap((m) => ('seq' in m ? [m.seq] : []));
}

/** The fake server's side of one handshake: challenge, check the MAC under `secret`, welcome. */
async function handshake(s: ClientSession, now: number, secret: Uint8Array, w: ServerMsg): Promise<ClientMsg> {
  s.connected(now);
  const sent = tx(s);
  assert.equal(sent.length, 1, JSON.stringify(sent, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  assert.equal(s.state, 'connecting');
  s.handleBytes(now, encodeServer({ type: 'Challenge', nonce: NONCE }));
  assert.equal(s.state, 'challenged');
  await s.settled();
  const answer = tx(s);
  assert.equal(answer.length, 1);
  const first = answer[0];
  assert.ok(first !== undefined && first.type === 'ChallengeResponse');
  assert.deepEqual(first.mac, await challengeMac(secret, NONCE));
  s.handleBytes(now, encodeServer(w));
  assert.equal(s.state, 'in_room');
  return sent[0] as ClientMsg;
}

async function joined(config: Partial<SessionConfig> = {}, w: ServerMsg = welcome()): Promise<ClientSession> {
  const s = session(config);
  await handshake(s, 0, JOIN, w);
  ev(s);
  return s;
}

/** Loses the connection and runs timers until `reconnect`; returns that time. */
function loseAndWait(s: ClientSession, now: number): number {
  s.connectionLost(now, null);
  assert.equal(s.state, 'reconnecting');
  const at = s.pollTimeout();
  assert.ok(at !== undefined && at >= now && at <= now + s.config.reconnectBaseMs * 64);
  s.handleTimeout(at);
  const events = ev(s);
  assert.equal(events[events.length - 1]?.type, 'reconnect');
  return at;
}

test('handshake: Hello, the MAC under the join secret, then joined', async () => {
  const s = session({}, 0);
  assert.equal(s.pollTransmit(), undefined);
  assert.equal(s.pollTimeout(), undefined);
  const hello = await handshake(s, 10, JOIN, welcome());
  assert.deepEqual(hello, { type: 'Hello', protocol_version: PROTOCOL_VERSION, protocol_hash: PROTOCOL_HASH, ticket: 'j1.ticket' });
  const events = ev(s);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.type, 'joined');
  assert.equal(s.welcome?.session_id, SID);
  assert.equal(s.nextSeq, 1n);
  assert.equal(s.reconnects, 0);
});

test('a MAC that completes after the connection was lost is dropped', async () => {
  const s = session();
  s.connected(0);
  tx(s);
  s.handleBytes(1, encodeServer({ type: 'Challenge', nonce: NONCE }));
  s.connectionLost(2, null);
  await s.settled();
  assert.deepEqual(tx(s), []);
  // Never joined: the loss closes the session.
  assert.equal(s.state, 'closed');
});

test('Welcome.next_seq raises the counter; lockstep frame inputs and checksums carry seqs', async () => {
  const s = await joined({}, welcome({ next_seq: 50n, sync: 'Lockstep', input_redundancy: 0 }));
  s.sendFrameInput(1n, Uint8Array.of(1));
  s.sendChecksum(1n, 99n);
  assert.deepEqual(tx(s), [
    { type: 'FrameInput', seq: 50n, frame: 1n, input: Uint8Array.of(1) },
    { type: 'Checksum', seq: 51n, frame: 1n, hash: 99n },
  ]);
  s.handleMessage(0, { type: 'Frame', n: 7n, inputs: [Uint8Array.of(1), new Uint8Array(0)] });
  s.handleMessage(0, { type: 'Desync', frame: 5n });
  assert.deepEqual(ev(s), [
    { type: 'frame', n: 7n, inputs: [Uint8Array.of(1), new Uint8Array(0)] },
    { type: 'desync', frame: 5n },
  ]);
  assert.equal(s.lastFrame, 7n);
  assert.equal(s.nextSeq, 52n);
});

test('redundancy window: newest unacked inputs, pruned by ack_seq, capped by the room and the config', async () => {
  const s = await joined();
  for (let i = 1; i <= 10; i++) assert.equal(s.sendInput(0, Uint8Array.of(i)), BigInt(i));
  const sent = tx(s);
  assert.deepEqual(seqs(sent), [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]);
  const last = sent[9];
  assert.ok(last?.type === 'Input');
  assert.equal(last.tick, 10n);
  assert.equal(last.ack_tick, 0n);
  // Redundancy 8: inputs 3..=10, oldest first.
  assert.deepEqual(last.inputs.map((b) => b[0]), [3, 4, 5, 6, 7, 8, 9, 10]);

  s.handleMessage(0, { type: 'Snapshot', tick: 20n, ack_seq: 8n, baseline: 0n, payload: Uint8Array.of(5) });
  assert.deepEqual(ev(s), [{ type: 'snapshot', tick: 20n, ackSeq: 8n, baseline: 0n, payload: Uint8Array.of(5) }]);
  assert.equal(s.lastSnapshotTick, 20n);
  assert.equal(s.bufferedInputs, 2);
  assert.equal(s.sendInput(0, Uint8Array.of(11)), 11n);
  const next = tx(s)[0];
  assert.ok(next?.type === 'Input');
  assert.equal(next.ack_tick, 20n);
  assert.deepEqual(next.inputs.map((b) => b[0]), [9, 10, 11]);
  // An older snapshot never lowers the acknowledged tick.
  s.handleMessage(0, { type: 'Snapshot', tick: 5n, ack_seq: 1n, baseline: 0n, payload: new Uint8Array(0) });
  assert.equal(s.lastSnapshotTick, 20n);

  // The room's redundancy caps the config's, and the config's caps the room's.
  const small = await joined({}, welcome({ input_redundancy: 3 }));
  for (let i = 1; i <= 5; i++) small.sendInput(0, Uint8Array.of(i));
  const lastSmall = tx(small).pop();
  assert.ok(lastSmall?.type === 'Input');
  assert.deepEqual(lastSmall.inputs.map((b) => b[0]), [3, 4, 5]);
  const two = await joined({ inputRedundancy: 2 });
  for (let i = 1; i <= 5; i++) two.sendInput(0, Uint8Array.of(i));
  const lastTwo = tx(two).pop();
  assert.ok(lastTwo?.type === 'Input');
  assert.deepEqual(lastTwo.inputs.map((b) => b[0]), [4, 5]);
  // Redundancy 0 (lockstep's Welcome) still carries the input itself.
  const zero = await joined({}, welcome({ input_redundancy: 0 }));
  zero.sendInput(0, Uint8Array.of(1));
  zero.sendInput(0, Uint8Array.of(2));
  const lastZero = tx(zero).pop();
  assert.ok(lastZero?.type === 'Input');
  assert.deepEqual(lastZero.inputs.map((b) => b[0]), [2]);
});

test('the input buffer is bounded', async () => {
  const s = await joined({ inputRedundancy: 100000 });
  for (let i = 0; i < 1000; i++) s.sendInput(0, Uint8Array.of(i & 0xff, i >> 8));
  assert.equal(s.bufferedInputs, MAX_BUFFERED_INPUTS);
  const last = tx(s).pop();
  assert.ok(last?.type === 'Input');
  assert.equal(last.inputs.length, 8);
  assert.deepEqual(last.inputs[7], Uint8Array.of(999 & 0xff, 999 >> 8));
});

test('manual acks: ack_tick only moves to views the client acknowledged', async () => {
  const s = await joined({ manualAck: true });
  s.handleMessage(0, { type: 'Snapshot', tick: 30n, ack_seq: 0n, baseline: 0n, payload: new Uint8Array(0) });
  s.sendInput(0, Uint8Array.of(1));
  s.ackSnapshot(30n);
  s.ackSnapshot(99n); // never received: ignored
  s.sendInput(0, Uint8Array.of(2));
  const [a, b] = tx(s);
  assert.ok(a?.type === 'Input' && b?.type === 'Input');
  assert.equal(a.ack_tick, 0n);
  assert.equal(b.ack_tick, 30n);
});

test('pings at the interval; RTT from pongs (EWMA 1/8); foreign and duplicate pongs ignored', async () => {
  const s = await joined();
  assert.equal(s.pollTimeout(), 1000);
  s.handleTimeout(999);
  assert.deepEqual(tx(s), []);
  s.handleTimeout(1000);
  assert.deepEqual(tx(s), [{ type: 'Ping', seq: 1n, client_time_us: 1_000_000n }]);
  assert.equal(s.pollTimeout(), 2000);
  s.handleMessage(1080, { type: 'Pong', client_time_us: 1_000_000n, server_time_us: 5n });
  assert.deepEqual(ev(s), [{ type: 'pong', rttMs: 80 }]);
  assert.equal(s.rttMs, 80);
  s.handleMessage(1090, { type: 'Pong', client_time_us: 1_000_000n, server_time_us: 5n });
  s.handleMessage(1090, { type: 'Pong', client_time_us: 123n, server_time_us: 5n });
  assert.deepEqual(ev(s), []);
  s.handleTimeout(2000);
  tx(s);
  s.handleMessage(2160, { type: 'Pong', client_time_us: 2_000_000n, server_time_us: 6n });
  assert.equal(s.rttMs, 90);
});

test('server silence disconnects (IdleTimeout), asks the driver to close, and reconnects within the backoff', async () => {
  const s = await joined();
  let now = 0;
  for (let at = s.pollTimeout(); at !== undefined; at = s.pollTimeout()) {
    now = at;
    s.handleTimeout(now);
    if (s.state !== 'in_room') break;
  }
  assert.equal(now, DEFAULT_SESSION_CONFIG.serverSilenceTimeoutMs);
  assert.equal(s.state, 'reconnecting');
  assert.deepEqual(ev(s), [{ type: 'disconnected', code: ErrorCode.IdleTimeout }]);
  assert.equal(s.pollClose()?.closeCode, 4000 + ErrorCode.IdleTimeout);
  assert.deepEqual(tx(s), [], 'queued pings are not sent on the next connection');
  const at = s.pollTimeout();
  assert.ok(at !== undefined && at >= now && at <= now + DEFAULT_SESSION_CONFIG.reconnectBaseMs);
  s.handleTimeout(at);
  assert.deepEqual(ev(s), [{ type: 'reconnect', attempt: 1 }]);
  assert.equal(s.pollTimeout(), now + DEFAULT_SESSION_CONFIG.reconnectWindowMs);
});

test('resume after a drop: derived key per resume_counter, session id, and seqs that continue', async () => {
  const s = await joined();
  for (let i = 1; i <= 5; i++) s.sendInput(0, Uint8Array.of(i));
  const before = seqs(tx(s));
  assert.deepEqual(before, [1n, 2n, 3n, 4n, 5n]);
  s.handleMessage(0, { type: 'Snapshot', tick: 30n, ack_seq: 3n, baseline: 0n, payload: new Uint8Array(0) });
  // Queued but never sent: dropped with the connection, its seq burnt all the same.
  s.sendMessage(Uint8Array.of(1));
  const maxBefore = s.nextSeq - 1n;
  ev(s);

  let at = loseAndWait(s, 100);
  // Ignored while reconnecting.
  assert.equal(s.sendInput(at, Uint8Array.of(99)), 0n);
  // The resume answers with resume_key(join, sid, 0) (the join's Welcome counter); the server
  // reports a lower next_seq than ours: ours wins.
  const resume = await handshake(s, at, await resumeKey(JOIN, SID, 0), welcome({ resume_counter: 1, next_seq: 3n, resumed: true }));
  assert.deepEqual(resume, { type: 'Resume', protocol_version: PROTOCOL_VERSION, protocol_hash: PROTOCOL_HASH, session_id: SID, last_frame: 30n });
  const events = ev(s);
  assert.equal(events.length, 1);
  assert.ok(events[0]?.type === 'reconnected' && events[0].welcome.resumed);
  assert.equal(s.reconnects, 1);
  // Unacked inputs 4 and 5 ride with the next one; its seq is above every seq used before.
  assert.equal(s.sendInput(at, Uint8Array.of(6)), 6n);
  const after = tx(s)[0];
  assert.ok(after?.type === 'Input');
  assert.ok(after.seq > maxBefore, `${after.seq} > ${maxBefore}`);
  assert.deepEqual(after.inputs.map((b) => b[0]), [4, 5, 6]);

  // The key rotated: the next resume answers with the key of counter 1.
  at = loseAndWait(s, at + 100);
  await handshake(s, at, await resumeKey(JOIN, SID, 1), welcome({ resume_counter: 2, next_seq: 100n, resumed: true }));
  assert.equal(s.reconnects, 2);
  s.sendMessage(Uint8Array.of(2));
  // The server's next_seq wins when it is ahead.
  assert.deepEqual(seqs(tx(s)), [100n]);
});

test('a moved room: RoomMoved parks the session until reconnectNow; a resume back in time forgets the lost timeline', async () => {
  const s = await joined();
  s.handleMessage(0, { type: 'Snapshot', tick: 900n, ack_seq: 0n, baseline: 0n, payload: new Uint8Array(0) });
  ev(s);
  s.handleMessage(10, { type: 'Kicked', code: ErrorCode.RoomMoved });
  assert.deepEqual(ev(s), [{ type: 'disconnected', code: ErrorCode.RoomMoved }]);
  assert.equal(s.state, 'reconnecting');
  // The old server closing the socket changes nothing, and no reconnect is due: only the window.
  s.connectionLost(20, null);
  assert.deepEqual(ev(s), []);
  assert.equal(s.pollTimeout(), 10 + s.config.reconnectWindowMs);
  s.handleTimeout(5000);
  assert.deepEqual(ev(s), []);
  s.reconnectNow(5000);
  s.handleTimeout(5000);
  assert.deepEqual(ev(s), [{ type: 'reconnect', attempt: 1 }]);
  // The new server took the room over at tick 870: tick 900 is of a timeline that is gone.
  await handshake(s, 5000, await resumeKey(JOIN, SID, 0), welcome({ resume_counter: 1, next_seq: 1n << 32n, resumed: true, tick: 870n }));
  assert.equal(s.lastSnapshotTick, 0n);
  assert.equal(s.ackedTick, 0n);
  s.handleMessage(5010, { type: 'Snapshot', tick: 871n, ack_seq: 0n, baseline: 0n, payload: new Uint8Array(0) });
  assert.equal(s.lastSnapshotTick, 871n);
});

test('backoff: ceilings double up to the cap, every delay within its ceiling, SessionExpired after the window', async () => {
  const s = await joined();
  assert.deepEqual([0, 1, 5, 6, 9, 40].map((a) => s.backoffCeilingMs(a)), [100, 200, 3200, 5000, 5000, 5000]);
  const lostAt = 10;
  s.connectionLost(lostAt, null);
  ev(s);
  const delays: number[] = [];
  let loss = lostAt;
  let closedAt: number | undefined;
  for (let guard = 0; guard < 1000 && closedAt === undefined; guard++) {
    const at = s.pollTimeout();
    assert.ok(at !== undefined);
    s.handleTimeout(at);
    const e = ev(s).pop();
    if (e?.type === 'reconnect') {
      const d = at - loss;
      assert.ok(d >= 0 && d <= s.backoffCeilingMs(e.attempt - 1), `attempt ${e.attempt}: ${d} ms`);
      delays.push(d);
      // The connect attempt fails (no transport was up: no disconnected event).
      s.connectionLost(at, null);
      assert.deepEqual(ev(s), []);
      loss = at;
    } else if (e?.type === 'closed') {
      assert.equal(e.code, ErrorCode.SessionExpired);
      assert.ok(e.error instanceof SessionError);
      closedAt = at;
    } else {
      assert.fail(`unexpected ${JSON.stringify(e)}`);
    }
  }
  assert.equal(closedAt, lostAt + DEFAULT_SESSION_CONFIG.reconnectWindowMs);
  assert.equal(s.state, 'closed');
  assert.equal(s.pollTimeout(), undefined);
  assert.ok(delays.length >= 6, `${delays.length} attempts`);
  assert.ok(delays.slice(3).some((d) => d > 100), `later attempts may wait longer: ${delays.join(', ')}`);
  // Jitter is seeded: the same seed gives the same delays.
  const again = await joined();
  again.connectionLost(lostAt, null);
  assert.equal(again.pollTimeout(), lostAt + (delays[0] as number));
});

test('a resume handshake that times out retries with backoff; a fresh join that times out closes', async () => {
  const s = await joined();
  const at = loseAndWait(s, 0);
  s.connected(at);
  tx(s);
  const deadline = s.pollTimeout();
  assert.equal(deadline, at + DEFAULT_SESSION_CONFIG.handshakeTimeoutMs);
  s.handleTimeout(deadline as number);
  assert.equal(s.state, 'reconnecting');
  assert.deepEqual(ev(s), [{ type: 'disconnected', code: ErrorCode.HandshakeTimeout }]);
  assert.equal(s.pollClose()?.closeCode, 4012);

  const fresh = session();
  fresh.connected(0);
  fresh.handleTimeout(DEFAULT_SESSION_CONFIG.handshakeTimeoutMs);
  const events = ev(fresh);
  assert.deepEqual(events.map((e) => e.type), ['disconnected', 'closed']);
  assert.equal(fresh.state, 'closed');
});

test('malformed or oversized server bytes: a typed error, a close request, and a resume (never a throw)', async () => {
  const s = await joined();
  for (const bad of [Uint8Array.of(0x7f), new Uint8Array(0), Uint8Array.of(3, 1), new Uint8Array(MAX_SERVER_MSG_BYTES + 1)]) {
    assert.equal(s.handleBytes(0, bad), undefined);
    const events = ev(s);
    assert.equal(events[0]?.type, 'error');
    assert.ok(events[0]?.type === 'error' && events[0].error instanceof DecodeError);
    if (bad.length > MAX_SERVER_MSG_BYTES) assert.equal(events[0].error instanceof DecodeError && events[0].error.kind, 'too_large');
    assert.deepEqual(events[1], { type: 'disconnected', code: ErrorCode.BadMessage });
    assert.deepEqual(s.pollClose(), { closeCode: 4001, reason: events[0].error.message.slice(0, 100) });
    assert.equal(s.state, 'reconnecting', 'BadMessage is resumable');
    // Back in the room for the next case.
    const at = s.pollTimeout() as number;
    s.handleTimeout(at);
    ev(s);
    await handshake(s, at, await resumeKey(JOIN, SID, s.welcome?.resume_counter ?? 0), welcome({ resume_counter: (s.welcome?.resume_counter ?? 0) + 1, resumed: true }));
    ev(s);
  }
  // Before a Welcome there is nothing to resume: the session closes with BadMessage.
  const fresh = session();
  fresh.connected(0);
  fresh.handleBytes(0, Uint8Array.of(0xff, 0xff));
  const events = ev(fresh);
  assert.deepEqual(events.map((e) => e.type), ['error', 'disconnected', 'closed']);
  const closed = events[2];
  assert.ok(closed?.type === 'closed' && closed.code === ErrorCode.BadMessage);
  // Bytes after the close are ignored.
  assert.equal(fresh.handleBytes(0, Uint8Array.of(0xff)), undefined);
  assert.deepEqual(ev(fresh), []);
});

test('version mismatch, refusals and kicks close with typed errors; non-resumable close codes end the session', async () => {
  const v = session();
  v.connected(0);
  v.handleMessage(0, { type: 'Error', code: ErrorCode.VersionMismatch, detail: 'protocol 2 != 3' });
  const [closed] = ev(v);
  assert.ok(closed?.type === 'closed');
  assert.equal(closed.code, ErrorCode.VersionMismatch);
  assert.ok(closed.error instanceof VersionMismatchError);
  assert.equal(closed.error.codeName, 'version_mismatch');
  assert.equal(v.state, 'closed');

  const k = await joined();
  k.handleMessage(0, { type: 'Kicked', code: ErrorCode.RoomClosed });
  const kicked = ev(k).pop();
  assert.ok(kicked?.type === 'closed' && kicked.code === ErrorCode.RoomClosed && kicked.error?.codeName === 'room_closed');

  // A close code without a message: 4017 (SessionExpired) is not resumable.
  const c = await joined();
  c.connectionLost(0, ErrorCode.SessionExpired);
  assert.deepEqual(ev(c).map((e) => e.type), ['disconnected', 'closed']);
  // A session expired answer to a Resume closes too.
  const r = await joined();
  const at = loseAndWait(r, 0);
  r.connected(at);
  r.handleMessage(at, { type: 'Error', code: ErrorCode.SessionExpired, detail: 'gone' });
  const last = ev(r).pop();
  assert.ok(last?.type === 'closed' && last.code === ErrorCode.SessionExpired);
});

test('custom messages, refusals, Started and MatchEnded', async () => {
  const s = await joined();
  assert.equal(s.sendMessage(Uint8Array.of(104, 105)), true);
  assert.deepEqual(tx(s), [{ type: 'Message', seq: 1n, payload: Uint8Array.of(104, 105) }]);
  s.handleMessage(0, { type: 'Started', tick: 1n, players: 2 });
  s.handleMessage(0, { type: 'Message', payload: Uint8Array.of(3) });
  s.handleMessage(0, { type: 'Refused', seq: 1n, code: ErrorCode.RateLimited });
  s.handleMessage(0, { type: 'MatchEnded', result: Uint8Array.of(1) });
  assert.deepEqual(ev(s), [
    { type: 'started', tick: 1n, players: 2 },
    { type: 'message', payload: Uint8Array.of(3) },
    { type: 'refused', seq: 1n, code: ErrorCode.RateLimited },
    { type: 'matchEnded', result: Uint8Array.of(1) },
  ]);
  // Before the Welcome, game traffic is ignored and nothing can be sent.
  const early = session();
  early.connected(0);
  tx(early);
  early.handleMessage(0, { type: 'Message', payload: Uint8Array.of(3) });
  assert.deepEqual(ev(early), []);
  assert.equal(early.sendMessage(Uint8Array.of(1)), false);
  assert.equal(early.sendInput(0, Uint8Array.of(1)), 0n);
  assert.deepEqual(tx(early), []);
});

test('leave queues Leave with the next seq, closes, and asks for a normal close', async () => {
  const s = await joined();
  s.sendInput(0, Uint8Array.of(1));
  tx(s);
  s.leave();
  assert.deepEqual(tx(s), [{ type: 'Leave', seq: 2n }]);
  assert.deepEqual(ev(s), [{ type: 'closed', code: null, error: null }]);
  assert.equal(s.pollClose()?.closeCode, 1000);
  assert.equal(s.state, 'closed');
  s.leave();
  assert.deepEqual(ev(s), []);
});

test('lockstep resume reports the last frame', async () => {
  const s = await joined({}, welcome({ sync: 'Lockstep', input_redundancy: 0 }));
  s.handleMessage(0, { type: 'Frame', n: 12n, inputs: [] });
  const at = loseAndWait(s, 0);
  const resume = await handshake(s, at, await resumeKey(JOIN, SID, 0), welcome({ sync: 'Lockstep', resume_counter: 1, resumed: true }));
  assert.ok(resume.type === 'Resume' && resume.last_frame === 12n);
});
