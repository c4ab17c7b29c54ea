// The WebSocket driver against a scripted fake server (malformed, oversized and text frames,
// close codes), the gateway client against a fake fetch (503/429/409 with Retry-After), and the
// arena's snapshot codec.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ArenaSnapshot, ArenaViewTracker, GameDecodeError, decodeArenaDelta, decodeArenaFull, decodeArenaInput, decodeArenaResult, encodeArenaInput } from '../src/arena.js';
import { ClientEvent, TickroomClient } from '../src/client.js';
import { MAX_SERVER_MSG_BYTES, ServerMsg, decodeClient, encodeServer, toHex } from '../src/codec.js';
import { challengeMac, resumeKey } from '../src/crypto.js';
import { DecodeError, ErrorCode, GatewayError, SessionError } from '../src/errors.js';
import { GatewayClient, parseRetryAfter } from '../src/gateway.js';
import { FakeConn, FakeWsServer } from './helpers/fakews.js';

const SECRET = new Uint8Array(32).fill(5);
const SID = 0x1234_5678_9abc_def0n;

function welcome(counter: number, resumed: boolean): ServerMsg {
  return {
    type: 'Welcome',
    session_id: SID,
    resume_counter: counter,
    room_id: 3n,
    player_id: 4n,
    slot: 1,
    max_players: 2,
    sync: 'State',
    tick_rate_hz: 30,
    tick: 0n,
    next_seq: 1n,
    resumed,
    input_redundancy: 8,
  };
}

/** Serves the handshake on every connection (checking MACs), then runs `after[i]` on connection i. */
function scriptedServer(server: FakeWsServer, after: ((c: FakeConn) => void)[], macs: boolean[]): void {
  let counter = 0;
  server.onConnection = (conn) => {
    const index = server.conns.length - 1;
    const nonce = new Uint8Array(32).fill(index + 1);
    let first: ReturnType<typeof decodeClient> | undefined;
    conn.onMessage = (data) => {
      const msg = decodeClient(data);
      if (first === undefined) {
        first = msg;
        conn.send(encodeServer({ type: 'Challenge', nonce }));
        return;
      }
      if (msg.type !== 'ChallengeResponse') return;
      const resuming = first.type === 'Resume';
      void (async () => {
        const key = resuming ? await resumeKey(SECRET, SID, counter) : SECRET;
        macs.push(toHex(msg.mac) === toHex(await challengeMac(key, nonce)));
        if (resuming) counter++;
        conn.send(encodeServer(welcome(counter, resuming)));
        after[index]?.(conn);
      })();
    };
  };
}

function joinInfo(addr: string): { ws_addr: string; join_ticket: string; join_secret: string } {
  return { ws_addr: addr, join_ticket: 'j2.fake', join_secret: toHex(SECRET) };
}

test('driver: malformed, oversized and text frames give typed errors, close the socket with 4001, and the session resumes', { timeout: 20000 }, async () => {
  const server = await FakeWsServer.start();
  const macs: boolean[] = [];
  scriptedServer(
    server,
    [
      (c) => c.send(Uint8Array.of(0x7f)), // an unknown message tag
      (c) => c.send(new Uint8Array(MAX_SERVER_MSG_BYTES + 1)), // over 1 MiB
      (c) => c.sendText('{"hello": "json"}'), // a text frame
      (c) => {
        c.send(encodeServer({ type: 'Started', tick: 1n, players: 2 }));
        c.send(encodeServer({ type: 'Kicked', code: ErrorCode.RoomClosed }));
        c.close(4000 + ErrorCode.RoomClosed);
      },
    ],
    macs,
  );
  const client = new TickroomClient(joinInfo(server.addr));
  const events: ClientEvent[] = [];
  client.onAny((e) => events.push(e));
  const closed = client.next('closed', 15000);
  client.join();
  try {
    const c = await closed;
    assert.equal(c.code, ErrorCode.RoomClosed);
    assert.ok(c.error instanceof SessionError);
    const errors = events.flatMap((e) => (e.type === 'error' ? [e.error] : []));
    assert.equal(errors.length, 3, errors.map(String).join('\n'));
    assert.ok(errors.every((e) => e instanceof DecodeError));
    assert.deepEqual(errors.map((e) => (e as DecodeError).kind), ['unknown_variant', 'too_large', 'malformed']);
    assert.deepEqual(
      events.filter((e) => e.type === 'disconnected').map((e) => (e as { code: number | null }).code),
      [ErrorCode.BadMessage, ErrorCode.BadMessage, ErrorCode.BadMessage],
    );
    const reconnected = events.flatMap((e) => (e.type === 'reconnected' ? [e.welcome] : []));
    assert.deepEqual(reconnected.map((w) => w.resume_counter), [1, 2, 3]);
    assert.ok(reconnected.every((w) => w.session_id === SID && w.resumed));
    assert.ok(events.some((e) => e.type === 'started'));
    // The server side: every MAC verified (the join secret, then the resume keys of counters
    // 0, 1, 2); the client closed the three bad connections with 4001; each later connection
    // opened with a Resume of the session.
    assert.deepEqual(macs, [true, true, true, true]);
    assert.equal(server.conns.length, 4);
    await Promise.all(server.conns.slice(0, 3).map((conn) => waitFor(() => conn.closed)));
    assert.deepEqual(server.conns.slice(0, 3).map((conn) => conn.closeCode), [4001, 4001, 4001]);
    const firsts = server.conns.map((conn) => decodeClient(conn.received[0] as Uint8Array));
    assert.deepEqual(firsts.map((m) => m.type), ['Hello', 'Resume', 'Resume', 'Resume']);
    assert.ok(firsts.slice(1).every((m) => m.type === 'Resume' && m.session_id === SID));
    assert.equal(client.state, 'closed');
    assert.equal(client.session.reconnects, 3);
  } finally {
    await server.stop();
  }
});

test('driver: a non-resumable close code with no message ends the session with a typed error', { timeout: 10000 }, async () => {
  const server = await FakeWsServer.start();
  const macs: boolean[] = [];
  scriptedServer(server, [(c) => c.close(4000 + ErrorCode.SessionExpired)], macs);
  const client = new TickroomClient(joinInfo(server.addr));
  const events: ClientEvent[] = [];
  client.onAny((e) => events.push(e));
  const closed = client.next('closed', 8000);
  client.join();
  try {
    const c = await closed;
    assert.equal(c.code, ErrorCode.SessionExpired);
    assert.equal(c.error?.codeName, 'session_expired');
    assert.deepEqual(events.filter((e) => e.type !== 'state').map((e) => e.type), ['joined', 'disconnected', 'closed']);
  } finally {
    await server.stop();
  }
});

test('driver: a server that never opens fails the join within the connect timeout', { timeout: 10000 }, async () => {
  // A port that refuses connections: bind, note the port, close.
  const server = await FakeWsServer.start();
  const addr = server.addr;
  await server.stop();
  const client = new TickroomClient(joinInfo(addr), { connectTimeoutMs: 2000 });
  const closed = client.next('closed', 8000);
  client.join();
  const c = await closed;
  assert.ok(c.error instanceof SessionError);
  assert.equal(client.state, 'closed');
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A fake fetch answering from a script of (status, body, headers). */
function fakeFetch(script: { status: number; body: unknown; headers?: Record<string, string> }[], seen: string[]): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    seen.push(`${init?.method ?? 'GET'} ${String(input)}`);
    const next = script.shift();
    if (next === undefined) throw new Error('unexpected request');
    return new Response(JSON.stringify(next.body), { status: next.status, headers: next.headers ?? {} });
  }) as typeof fetch;
}

const MATCHED = {
  status: 'matched',
  room_id: 9,
  mode: 'duel',
  server_id: 'room-1',
  quic_addr: '127.0.0.1:2',
  ws_addr: '127.0.0.1:3',
  cert_fingerprint: 'ab',
  ws_tls: false,
  join_ticket: 'j2.x',
  join_secret: '00'.repeat(32),
  expires_ms: 1,
};

test('gateway: the long poll waits out 503 and 429 per Retry-After, and returns the match', async () => {
  const seen: string[] = [];
  const sleeps: number[] = [];
  const busy = { code: 8, error: 'server_busy', message: 'no room server' };
  const g = new GatewayClient('http://gw.test/', {
    fetch: fakeFetch(
      [
        { status: 200, body: { status: 'queued', ticket_id: 't', queued_ms: 5 } },
        { status: 503, body: busy, headers: { 'retry-after': '2' } },
        { status: 429, body: { code: 9, error: 'rate_limited', message: 'one poll at a time' }, headers: { 'retry-after': '1' } },
        { status: 503, body: busy },
        { status: 200, body: MATCHED },
      ],
      seen,
    ),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0,
  });
  const m = await g.waitMatch('tok', 't', { timeoutMs: 60000 });
  assert.equal(m.room_id, 9);
  assert.equal(m.join_ticket, 'j2.x');
  assert.equal((m as unknown as { status?: string }).status, undefined);
  // 503: its Retry-After (plus no jitter here); 429: its Retry-After; a 503 without one: none.
  assert.deepEqual(sleeps, [2000, 1000, 0]);
  assert.equal(g.retries, 2);
  assert.equal(seen.length, 5);
  assert.ok(seen.every((s) => s.startsWith('GET http://gw.test/v1/matchmaking/t?wait_ms=')));
});

test('gateway: every call waits out a 503 for its Retry-After plus jitter, until its deadline', async () => {
  const busy = { code: 8, error: 'server_busy', message: 'directory unavailable' };
  const seen: string[] = [];
  const sleeps: number[] = [];
  const g = new GatewayClient('http://gw.test', {
    fetch: fakeFetch(
      [
        { status: 503, body: busy, headers: { 'retry-after': '1' } },
        { status: 503, body: busy },
        { status: 200, body: { player_id: 5, session_token: 's', expires_ms: 1 } },
      ],
      seen,
    ),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
  });
  const login = await g.loginDevice('00'.repeat(16));
  assert.equal(login.player_id, 5);
  // Half of the jitter ceilings 250 and 500 ms, on top of Retry-After.
  assert.deepEqual(sleeps, [1125, 250]);
  assert.equal(seen.length, 3);
  assert.equal(g.retries, 2);

  const impatient = new GatewayClient('http://gw.test', {
    fetch: fakeFetch([{ status: 503, body: busy, headers: { 'retry-after': '1' } }], []),
    retryDeadlineMs: 0,
  });
  await assert.rejects(impatient.createRoom('tok', 'duel'), (e: unknown) => e instanceof GatewayError && e.status === 503 && e.retryAfterMs === 1000);
  assert.equal(impatient.retries, 0);
});

test('gateway: 409 with Retry-After is retried when queueing; other errors are typed', async () => {
  const seen: string[] = [];
  const sleeps: number[] = [];
  const g = new GatewayClient('http://gw.test', {
    fetch: fakeFetch(
      [
        { status: 409, body: { code: 25, error: 'conflict', message: 'matched into room 7' }, headers: { 'retry-after': '3' } },
        { status: 202, body: { ticket_id: 'tk', mode: 'duel' } },
        { status: 409, body: { code: 25, error: 'conflict', message: 'already queued' } },
        { status: 404, body: { code: 24, error: 'not_found', message: 'room' } },
      ],
      seen,
    ),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  assert.equal(await g.queueWhenFree('tok', 'duel', { timeoutMs: 60000 }), 'tk');
  assert.deepEqual(sleeps, [3000]);
  await assert.rejects(g.queueWhenFree('tok', 'duel'), (e: unknown) => e instanceof GatewayError && e.status === 409 && e.code === ErrorCode.Conflict && e.retryAfterMs === undefined && e.message === 'already queued');
  assert.equal(await g.roomStatus('tok', 1), null);
  assert.equal(parseRetryAfter('5'), 5000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter(new Date(Date.now() + 10000).toUTCString(), Date.now()) !== undefined, true);
});

// --- arena codec ---

function putFull(s: ArenaSnapshot): Uint8Array {
  const out: number[] = [];
  const u16 = (v: number): void => {
    out.push(v & 0xff, (v >> 8) & 0xff);
  };
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, s.tick, true);
  out.push(...new Uint8Array(view.buffer));
  out.push(s.players.length);
  for (const p of s.players) {
    out.push(p.slot);
    u16(p.pos[0]);
    u16(p.pos[1]);
    u16(p.vel[0]);
    u16(p.vel[1]);
    out.push(p.score & 0xff, (p.score >> 8) & 0xff, (p.score >> 16) & 0xff, (p.score >>> 24) & 0xff);
  }
  out.push(s.orbs.length);
  for (const o of s.orbs) {
    u16(o[0]);
    u16(o[1]);
  }
  return Uint8Array.from(out);
}

const SNAP: ArenaSnapshot = {
  tick: 9n,
  players: [
    { slot: 1, pos: [1, -1], vel: [0, 7], score: 1 },
    { slot: 2, pos: [-32767, 2], vel: [1, 7], score: 0xffffffff },
  ],
  orbs: [
    [100, -100],
    [2000, 3000],
    [-4900, 4900],
  ],
};

test('arena: full snapshots, patches, the view tracker, inputs and results', () => {
  const full = putFull(SNAP);
  assert.equal(full.length, 8 + 1 + 2 * 13 + 1 + 3 * 4);
  assert.deepEqual(decodeArenaFull(full), SNAP);
  // Unchanged: [KIND_PATCH, tick advance 0, player bitset 0, orb bitset 0].
  assert.deepEqual(decodeArenaDelta(SNAP, Uint8Array.of(1, 0, 0, 0)), SNAP);
  // Player 0 moved (mask pos) to (300, -2); tick +3; orb 2 moved; player 1 score +2 (wraps).
  const patch = Uint8Array.of(1, 3, 0b11, 1, 0x2c, 0x01, 0xfe, 0xff, 4, 2, 0b100, 0x10, 0x27, 0x20, 0x4e);
  const next = decodeArenaDelta(SNAP, patch);
  assert.equal(next.tick, 12n);
  assert.deepEqual(next.players[0]?.pos, [300, -2]);
  assert.equal(next.players[1]?.score, 1);
  assert.deepEqual(next.orbs[2], [10000, 20000]);
  assert.deepEqual(SNAP.players[0]?.pos, [1, -1], 'the baseline is not modified');
  // A full encoding inside a delta.
  assert.deepEqual(decodeArenaDelta(next, Uint8Array.from([0, ...full])), SNAP);
  for (const [bad, kind] of [
    [Uint8Array.of(7), 'invalid'],
    [Uint8Array.of(1, 0, 0b100, 0), 'invalid'],
    [Uint8Array.of(1, 0, 1, 0b1000), 'invalid'],
    [Uint8Array.of(1, 0, 1, 0), 'invalid'],
    [Uint8Array.of(1, 0, 0, 0, 0), 'trailing'],
    [Uint8Array.of(1, 0, 1, 1, 0), 'truncated'],
  ] as const) {
    assert.throws(() => decodeArenaDelta(SNAP, bad), (e: unknown) => e instanceof GameDecodeError && e.kind === kind, toHex(bad));
  }
  for (let n = 0; n < full.length; n++) {
    assert.throws(() => decodeArenaFull(full.subarray(0, n)), (e: unknown) => e instanceof GameDecodeError && e.kind === 'truncated');
  }
  const tracker = new ArenaViewTracker();
  tracker.apply(9n, 0n, full);
  assert.deepEqual(tracker.apply(12n, 9n, patch), next);
  assert.throws(() => tracker.apply(20n, 15n, patch), GameDecodeError);
  assert.equal(tracker.latest()?.tick, 12n);
  assert.deepEqual(encodeArenaInput(127, -200, 1), Uint8Array.of(127, 0x81, 1));
  assert.deepEqual(decodeArenaInput(Uint8Array.of(0xff, 1, 2)), { moveX: -1, moveY: 1, buttons: 2 });
  assert.deepEqual(decodeArenaResult(Uint8Array.of(2, 0, 5, 0, 0, 0, 1, 7, 0, 0, 0, 1)), {
    scores: [
      { slot: 0, score: 5 },
      { slot: 1, score: 7 },
    ],
    winner: 1,
  });
});
