// End to end against the real server binary (target/debug/tickroom) and the Rust bot
// (target/debug/tickroom-bot): a TS client and a bot in one duel, two TS clients with a dropped
// socket that resumes its seat, the gateway's answers, and refusals with typed errors.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { ArenaPlayer } from '../src/arena.js';
import { TickroomClient } from '../src/client.js';
import { newDeviceId } from '../src/crypto.js';
import { SPECTATOR_SLOT } from '../src/codec.js';
import { ErrorCode, GatewayError, SessionError, VersionMismatchError } from '../src/errors.js';
import { GatewayClient } from '../src/gateway.js';
import { RunningServer, runBot, startServer } from './helpers/server.js';
import { TestPlayer, towardCentre } from './helpers/player.js';

let server: RunningServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

const moved = (a: ArenaPlayer | undefined, b: ArenaPlayer | undefined, cm: number): boolean =>
  a !== undefined && b !== undefined && Math.hypot(a.pos[0] - b.pos[0], a.pos[1] - b.pos[1]) >= cm;

test('a TS client and the Rust bot play one duel: each one\'s inputs move its player in the shared view', { timeout: 60000 }, async () => {
  const gateway = new GatewayClient(server.gateway);
  const me = new TestPlayer(gateway);
  const bot = runBot(server.gateway, ['--mode', 'duel', '--transport', 'ws', '--duration', '5s', '--watch'], 50000);
  try {
    await me.join('duel');
    // The room starts once both are in; snapshots then show two players.
    const first = await me.waitView('both players in a snapshot', (v) => v.players.length === 2, 15000);
    assert.equal(me.decodeErrors, 0);
    const start = me.me(first);
    const botStart = me.other(first);
    assert.ok(start !== undefined && botStart !== undefined);

    // My input takes effect: full stick toward the centre gives exactly the max speed (800 cm/s)
    // on that axis, and the position follows; then the reverse.
    const dir = towardCentre(start.pos[0]);
    me.hold(dir, 0);
    const there = await me.waitView('my player to move on my input', (v) => {
      const p = me.me(v);
      return p !== undefined && p.vel[0] === Math.sign(dir) * 800 && Math.sign(p.pos[0] - start.pos[0]) === Math.sign(dir) && Math.abs(p.pos[0] - start.pos[0]) >= 100;
    });
    const turn = me.me(there) as ArenaPlayer;
    me.hold(-dir, 0);
    await me.waitView('my player to turn back on my input', (v) => {
      const p = me.me(v);
      return p !== undefined && p.vel[0] === -Math.sign(dir) * 800 && Math.sign(p.pos[0] - turn.pos[0]) === -Math.sign(dir) && Math.abs(p.pos[0] - turn.pos[0]) >= 50;
    });

    // The bot's random-walk inputs move its player in the snapshots I decode.
    await me.waitView('the bot\'s player to move', (v) => {
      const p = me.other(v);
      return p !== undefined && moved(p, botStart, 30) && (p.vel[0] !== 0 || p.vel[1] !== 0);
    });
    assert.equal(me.decodeErrors, 0);
    assert.ok(me.events.some((e) => e.type === 'started'));

    // The bot played the same room to its end and left cleanly.
    const run = await bot;
    assert.equal(run.code, 0, `bot exit code\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`joined room ${me.match.room_id}\\b`), run.stdout);
    assert.match(run.stdout, /error\s+none/, run.stdout);
    const snapshots = /received\s+(\d+) snapshots/.exec(run.stdout);
    assert.ok(snapshots !== null && Number(snapshots[1]) > 30, `the bot received snapshots:\n${run.stdout}`);
    // And the bot saw my inputs take effect: it decoded my player (my slot) moving, at least
    // the metre my held stick carried it.
    const seen = new RegExp(`others moved\\s+slot ${me.slot} (\\d+\\.\\d+) m`).exec(run.stdout);
    assert.ok(seen !== null && Number(seen[1]) >= 1, `the bot saw my player move:\n${run.stdout}`);
    // Once the bot left, its player is gone from my view.
    await me.waitView('the bot\'s player to leave', (v) => v.players.length === 1, 15000);
  } finally {
    me.close();
    await bot.catch(() => undefined);
  }
});

test('two TS clients: each sees the other move; a dropped socket resumes its seat with the same session and continuing seqs', { timeout: 60000 }, async () => {
  const gateway = new GatewayClient(server.gateway);
  const a = new TestPlayer(gateway);
  const b = new TestPlayer(gateway);
  try {
    await Promise.all([a.join('duel'), b.join('duel')]);
    assert.equal(a.match.room_id, b.match.room_id);
    assert.notEqual(a.slot, b.slot);
    await Promise.all([a.waitView('two players', (v) => v.players.length === 2, 15000), b.waitView('two players', (v) => v.players.length === 2, 15000)]);

    // A's input, seen by B.
    const aStart = b.other() as ArenaPlayer;
    const dir = towardCentre(aStart.pos[0]);
    a.hold(dir, 0);
    await b.waitView('A to move in B\'s view', (v) => {
      const p = b.other(v);
      return p !== undefined && p.vel[0] === Math.sign(dir) * 800 && moved(p, aStart, 50);
    });
    // B's input, seen by A.
    const bStart = a.other() as ArenaPlayer;
    const bdir = towardCentre(bStart.pos[1]);
    b.hold(0, bdir);
    await a.waitView('B to move in A\'s view', (v) => {
      const p = a.other(v);
      return p !== undefined && p.vel[1] === Math.sign(bdir) * 800 && moved(p, bStart, 50);
    });

    // Drop A's socket (no Leave). It resumes by itself: same session, Welcome.resumed, the
    // counter moves to 1, and every seq after the resume is above every seq before it.
    const welcome = a.client.welcome;
    assert.ok(welcome !== undefined);
    const seqsBefore = a.seqs();
    const maxBefore = seqsBefore.reduce((m, s) => (s > m ? s : m), 0n);
    assert.ok(maxBefore >= 2n, `seqs before the drop: ${seqsBefore.join(", ")}`);
    const sentBefore = a.sent.length;
    const disconnected = a.client.next('disconnected', 5000);
    const reconnected = a.client.next('reconnected', 20000);
    a.client.dropConnection();
    await disconnected;
    const rw = (await reconnected).welcome;
    assert.equal(rw.session_id, welcome.session_id);
    assert.equal(rw.room_id, welcome.room_id);
    assert.equal(rw.slot, welcome.slot);
    assert.equal(rw.resumed, true);
    assert.equal(rw.resume_counter, 1);
    assert.ok(rw.next_seq <= maxBefore + 1n, `server next_seq ${rw.next_seq} vs ${maxBefore}`);
    const resumeMsg = a.sent[sentBefore];
    assert.ok(resumeMsg?.type === 'Resume' && resumeMsg.session_id === welcome.session_id, 'the new socket opened with Resume');
    // Inputs after the resume take effect (B sees A turn around), and their seqs continue.
    const turn = b.other() as ArenaPlayer;
    a.hold(-dir, 0);
    await b.waitView('A to turn around after its resume', (v) => {
      const p = b.other(v);
      return p !== undefined && p.vel[0] === -Math.sign(dir) * 800 && moved(p, turn, 50);
    });
    const seqsAfter = a.sent.slice(sentBefore).flatMap((m) => ('seq' in m ? [m.seq] : []));
    assert.ok(seqsAfter.length > 0);
    assert.ok((seqsAfter[0] as bigint) > maxBefore, `first seq after the resume ${seqsAfter[0]} > ${maxBefore}`);
    const all = a.seqs();
    for (let i = 1; i < all.length; i++) assert.ok((all[i] as bigint) > (all[i - 1] as bigint), `seqs strictly increase at ${i}`);
    assert.equal(a.client.session.reconnects, 1);
    assert.equal(a.decodeErrors, 0);
    assert.equal(b.decodeErrors, 0);
    assert.equal(b.client.state, 'in_room');

    // A second drop resumes with the next key (counter 1 → 2).
    const again = a.client.next('reconnected', 20000);
    a.client.dropConnection();
    assert.equal((await again).welcome.resume_counter, 2);
    assert.equal(a.client.session.reconnects, 2);

    // The gateway knows the room, refuses a new ticket while the match can still be joined,
    // and refreshes the login.
    const room = await gateway.roomStatus(a.login.session_token, a.match.room_id);
    assert.equal(room?.alive, true);
    assert.equal(room?.room_id, a.match.room_id);
    await assert.rejects(gateway.queue(a.login.session_token, 'duel'), (e: unknown) => e instanceof GatewayError && e.status === 409 && e.code === ErrorCode.Conflict);
    const fresh = await gateway.refresh(a.login.session_token);
    assert.equal(fresh.player_id, a.login.player_id);
    assert.equal(await gateway.roomStatus(fresh.session_token, 999999999), null);

    // Leaving closes with no code.
    const closed = a.client.next('closed', 5000);
    a.close();
    const c = await closed;
    assert.equal(c.code, null);
    assert.equal(c.error, null);
  } finally {
    a.close();
    b.close();
  }
});

test('the server refuses a wrong protocol hash as a version mismatch, and a bad ticket as ticket_invalid', { timeout: 30000 }, async () => {
  const join = { ws_addr: server.ready.ws, join_ticket: 'j2.not-a-ticket', join_secret: '00'.repeat(32) };
  const mismatched = new TickroomClient(join, { session: { protocolHash: 1n } });
  const closed = mismatched.next('closed', 10000);
  mismatched.join();
  const c = await closed;
  assert.equal(c.code, ErrorCode.VersionMismatch);
  assert.ok(c.error instanceof VersionMismatchError, String(c.error));
  assert.equal(mismatched.state, 'closed');

  const badTicket = new TickroomClient(join);
  const closed2 = badTicket.next('closed', 10000);
  badTicket.join();
  const c2 = await closed2;
  assert.equal(c2.code, ErrorCode.TicketInvalid);
  assert.ok(c2.error instanceof SessionError && !(c2.error instanceof VersionMismatchError));
  assert.equal(c2.error?.codeName, 'ticket_invalid');
});

test('gateway errors are typed: a short device id is bad_request, an unknown mode unknown_mode, no token unauthorized', { timeout: 30000 }, async () => {
  const gateway = new GatewayClient(server.gateway);
  await assert.rejects(gateway.loginDevice('phone-1'), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.code === ErrorCode.BadRequest);
  const login = await gateway.loginDevice(newDeviceId());
  await assert.rejects(gateway.queue(login.session_token, 'no-such-mode'), (e: unknown) => e instanceof GatewayError && e.code === ErrorCode.UnknownMode);
  await assert.rejects(gateway.queue('not-a-token', 'duel'), (e: unknown) => e instanceof GatewayError && e.status === 401 && e.code === ErrorCode.Unauthorized);
  // Queue then cancel.
  const ticket = await gateway.queue(login.session_token, 'duel');
  const polled = await gateway.poll(login.session_token, ticket, 0);
  assert.equal(polled.status, 'queued');
  await gateway.cancel(login.session_token, ticket);
  await assert.rejects(gateway.poll(login.session_token, ticket, 0), (e: unknown) => e instanceof GatewayError && e.status === 404);
});

test('a private room is joined by code, and a party of two fills a duel: both through the gateway', { timeout: 30000 }, async () => {
  const gateway = new GatewayClient(server.gateway);
  const host = await gateway.loginDevice(newDeviceId());
  const friend = await gateway.loginDevice(newDeviceId());
  const room = await gateway.createRoom(host.session_token, 'duel');
  assert.equal(room.code.length, 8);
  const a = await gateway.joinByCode(host.session_token, room.code);
  const b = await gateway.joinByCode(friend.session_token, room.code.toLowerCase());
  assert.equal(a.room_id, room.room_id);
  assert.equal(b.room_id, room.room_id);
  await assert.rejects(gateway.joinByCode(friend.session_token, 'ZZZZZZZZ'), (e: unknown) => e instanceof GatewayError && e.status === 404);

  // A spectator watches the private room with its code; what it tries to play is refused.
  const watcher = await gateway.loginDevice(newDeviceId());
  await assert.rejects(gateway.watch(watcher.session_token, { roomId: room.room_id }), (e: unknown) => e instanceof GatewayError && e.status === 404);
  const watching = await gateway.watch(watcher.session_token, { code: room.code });
  assert.equal(watching.room_id, room.room_id);
  const spectator = new TickroomClient(watching);
  const welcomed = spectator.next('joined', 10000);
  spectator.join();
  assert.equal((await welcomed).welcome.slot, SPECTATOR_SLOT);
  const refused = spectator.next('refused', 10000);
  spectator.sendMessage(new TextEncoder().encode('hi'));
  assert.equal((await refused).code, ErrorCode.SpectatorReadOnly);
  spectator.leave();

  const leader = await gateway.loginDevice(newDeviceId());
  const member = await gateway.loginDevice(newDeviceId());
  const party = await gateway.createParty(leader.session_token);
  const joined = await gateway.joinParty(member.session_token, party.code);
  assert.deepEqual(joined.members, [leader.player_id, member.player_id]);
  await gateway.queue(leader.session_token, 'duel', undefined, { partyId: party.party_id });
  const listed = await gateway.party(member.session_token, party.party_id);
  assert.equal(listed.tickets.length, 2);
  const tokens = new Map([[leader.player_id, leader.session_token], [member.player_id, member.session_token]]);
  const matches = await Promise.all(listed.tickets.map((t) => gateway.waitMatch(tokens.get(t.player_id) as string, t.ticket_id, { timeoutMs: 15000 })));
  assert.equal(new Set(matches.map((m) => m.room_id)).size, 1, 'the party shares one duel');
  await gateway.leaveParty(leader.session_token, party.party_id);
  await assert.rejects(gateway.party(member.session_token, party.party_id), (e: unknown) => e instanceof GatewayError && e.status === 404);
});
