// The page in a real browser: Debian's Chromium through playwright-core. Two pages join one
// duel; one holds a key and the other sees the opponent move; a page whose socket is dropped
// resumes its seat. Screenshots go to test-output/.
//
// Where the page comes from, in order of preference:
//   1. the server's own /play (once the Rust side serves web-dist there): same origin;
//   2. a tiny static server here, with the gateway passed as ?server= (cross-origin, needs the
//      server's --allow-origin);
//   3. a tiny static server here that also forwards /v1 to the gateway (same origin, no CORS
//      needed), used while the binary has neither (or with TICKROOM_PAGE_FROM=proxy).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, request, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium, BrowserContext, Page } from 'playwright-core';

import { PACKAGE_ROOT } from './helpers/vectors.js';
import { RunningServer, SERVER_BIN, startServer } from './helpers/server.js';

const WEB_DIST = path.join(PACKAGE_ROOT, 'web-dist');
const OUTPUT = path.join(PACKAGE_ROOT, 'test-output');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Serves web-dist; forwards /v1/* to `gateway()` when `proxy` is set. */
async function startStatic(proxy: boolean, gateway: () => string): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (proxy && url.pathname.startsWith('/v1/')) {
      const target = new URL(url.pathname + url.search, gateway());
      const fwd = request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      req.pipe(fwd);
      return;
    }
    const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(WEB_DIST, rel);
    if (!file.startsWith(WEB_DIST + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, server };
}

function serverSupports(flag: string): boolean {
  const help = spawnSync(SERVER_BIN, ['--help'], { encoding: 'utf8', timeout: 10000 });
  return `${help.stdout}${help.stderr}`.includes(flag);
}

let tickroom: RunningServer;
let statik: { origin: string; server: Server } | undefined;
let context: BrowserContext;
let userDataDir: string;
let pageUrl: string;
let how: string;

before(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  assert.ok(existsSync(path.join(WEB_DIST, 'index.html')), 'run npm run build first');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  // TICKROOM_PAGE_FROM=proxy forces the forwarding static server (to check that path too).
  const forced = process.env.TICKROOM_PAGE_FROM;
  const allowOrigin = forced !== 'proxy' && serverSupports('--allow-origin');
  let gatewayBase = '';
  if (allowOrigin) {
    statik = await startStatic(false, () => gatewayBase);
    tickroom = await startServer(['--allow-origin', statik.origin]);
  } else {
    tickroom = await startServer();
  }
  gatewayBase = tickroom.gateway;
  const own = await fetch(`${tickroom.gateway}/play/`).then((r) => (r.ok ? r.text() : ''), () => '');
  if (own.includes('play.js') && forced === undefined) {
    await new Promise<void>((r) => (statik ? statik.server.close(() => r()) : r()));
    statik = undefined;
    pageUrl = `${tickroom.gateway}/play/?mode=duel`;
    how = 'the server\'s own /play';
  } else if (allowOrigin && statik !== undefined) {
    pageUrl = `${statik.origin}/index.html?mode=duel&server=${encodeURIComponent(tickroom.gateway)}`;
    how = 'a static server, cross-origin with --allow-origin';
  } else {
    statik = await startStatic(true, () => gatewayBase);
    pageUrl = `${statik.origin}/index.html?mode=duel`;
    how = 'a static server forwarding /v1 (same origin)';
  }
  console.log(`# page from ${how}: ${pageUrl}`);
  userDataDir = mkdtempSync(path.join(tmpdir(), 'tickroom-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      // Two pages play at once: neither may be throttled as a background tab.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
    viewport: { width: 640, height: 760 },
    timeout: 30000,
  });
});

after(async () => {
  await context?.close().catch(() => undefined);
  if (userDataDir !== undefined) rmSync(userDataDir, { recursive: true, force: true });
  await new Promise<void>((r) => (statik ? statik.server.close(() => r()) : r()));
  await tickroom?.stop();
});

interface PlayerView {
  slot: number;
  x: number;
  y: number;
  vx: number;
  vy: number;
  score: number;
}

interface Debug {
  phase: string;
  connection: string;
  slot: number | null;
  sessionId: string | null;
  resumeCounter: number | null;
  reconnects: number;
  players: PlayerView[];
  me: PlayerView | null;
  opponent: PlayerView | null;
  rttMs: number | null;
  decodeErrors: number;
  lastError: string | null;
  nextSeq: string | null;
}

async function state(page: Page): Promise<Debug> {
  return page.evaluate(() => {
    const d = (window as unknown as { __tickroom: Debug }).__tickroom;
    return JSON.parse(JSON.stringify(d)) as Debug;
  });
}

/** Polls the page's debug state until `pred` holds (bounded). */
async function until(page: Page, what: string, pred: (d: Debug) => boolean, timeoutMs = 15000): Promise<Debug> {
  const end = Date.now() + timeoutMs;
  let last: Debug | undefined;
  for (;;) {
    last = await state(page);
    if (pred(last)) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(last)}`);
    await page.waitForTimeout(50);
  }
}

const dist = (a: PlayerView, b: PlayerView): number => Math.hypot(a.x - b.x, a.y - b.y);

test('two browser pages play one duel: keys on one move it on the other; a dropped socket resumes its seat', { timeout: 110000 }, async () => {
  const a = await context.newPage();
  const b = await context.newPage();
  const logs: string[] = [];
  for (const [name, p] of [['a', a], ['b', b]] as const) {
    p.on('console', (m) => logs.push(`${name} ${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => logs.push(`${name} pageerror: ${String(e)}`));
  }
  try {
    await Promise.all([a.goto(pageUrl), b.goto(pageUrl)]);
    const inRoom = (d: Debug): boolean => d.phase === 'in_room' && d.players.length === 2 && d.me !== null && d.opponent !== null;
    const [sa, sb] = await Promise.all([until(a, 'page A in a started duel', inRoom, 30000), until(b, 'page B in a started duel', inRoom, 30000)]);
    assert.notEqual(sa.slot, sb.slot);
    assert.equal(sa.opponent?.slot, sb.slot);

    // A holds a key toward the centre; B sees its opponent move at full speed.
    const aStart = sb.opponent as PlayerView;
    const key = aStart.x > 0 ? 'ArrowLeft' : 'ArrowRight';
    const sign = aStart.x > 0 ? -1 : 1;
    await a.bringToFront();
    await a.keyboard.down(key);
    const seen = await until(b, 'B to see A move', (d) => d.opponent !== null && d.opponent.vx === sign * 800 && dist(d.opponent, aStart) >= 100);
    await a.keyboard.up(key);
    assert.ok(Math.sign((seen.opponent as PlayerView).x - aStart.x) === sign);
    const aNow = await until(a, 'A to see itself moved', (d) => d.me !== null && dist(d.me, aStart) >= 100);
    assert.equal(aNow.decodeErrors, 0, String(aNow.lastError));

    // Drop B's socket through the page's debug hook: B resumes the same seat and session, and
    // its keys still move it in A's view.
    const before = await state(b);
    await b.evaluate(() => (window as unknown as { __tickroom: { dropConnection(): void } }).__tickroom.dropConnection());
    const resumed = await until(b, 'B to resume', (d) => d.reconnects === 1 && d.phase === 'in_room' && d.connection === 'in_room', 20000);
    assert.equal(resumed.sessionId, before.sessionId);
    assert.equal(resumed.slot, before.slot);
    assert.equal(resumed.resumeCounter, 1);
    assert.ok(BigInt(resumed.nextSeq ?? '0') >= BigInt(before.nextSeq ?? '0'));
    const bStart = (await state(a)).opponent as PlayerView;
    const vkey = bStart.y > 0 ? 'KeyS' : 'KeyW';
    const vsign = bStart.y > 0 ? -1 : 1;
    await b.bringToFront();
    await b.keyboard.down(vkey);
    await until(a, 'A to see B move after its resume', (d) => d.opponent !== null && d.opponent.vy === vsign * 800 && dist(d.opponent, bStart) >= 100);
    await b.keyboard.up(vkey);
    const finalA = await state(a);
    const finalB = await state(b);
    assert.equal(finalA.phase, 'in_room');
    assert.equal(finalA.decodeErrors + finalB.decodeErrors, 0);
    // Pings go out every second: the HUD's RTT fills in.
    await until(a, 'an RTT on page A', (d) => d.rttMs !== null && d.rttMs >= 0, 5000);
    await a.screenshot({ path: path.join(OUTPUT, 'page-a.png') });
    await b.screenshot({ path: path.join(OUTPUT, 'page-b.png') });
    assert.ok(!logs.some((l) => l.includes('pageerror')), logs.join('\n'));
  } catch (e) {
    await a.screenshot({ path: path.join(OUTPUT, 'page-a-failed.png') }).catch(() => undefined);
    await b.screenshot({ path: path.join(OUTPUT, 'page-b-failed.png') }).catch(() => undefined);
    throw new Error(`${String(e)}\npage logs:\n${logs.join('\n')}\nserver:\n${tickroom.output().slice(-3000)}`);
  } finally {
    await a.close().catch(() => undefined);
    await b.close().catch(() => undefined);
  }
});
