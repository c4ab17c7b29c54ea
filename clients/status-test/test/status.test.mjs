// The gateway's status page (/status) in a real browser: Debian's Chromium driven by
// playwright-core, against the all-in-one binary (port 0, --ready-file, --admin-token-file)
// with a short bot swarm playing duels. The page is given the admin token; the room count it
// shows must equal GET /v1/admin/rooms's total; its drain button must drain the server (as
// GET /v1/admin/servers then says). A screenshot goes to test-output/status.png.
//
// Bounded: every wait polls with a deadline (no fixed sleeps), the whole test has a minute;
// loopback only; every process is one this test started, ended through its own handle.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO = path.resolve(PACKAGE_ROOT, '..', '..');
const SERVER_BIN = process.env.TICKROOM_BIN ?? path.join(REPO, 'target', 'debug', 'tickroom');
const BOT_BIN = process.env.TICKROOM_BOT_BIN ?? path.join(REPO, 'target', 'debug', 'tickroom-bot');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const OUTPUT = path.join(PACKAGE_ROOT, 'test-output');
/** Longest any single wait may take. */
const WAIT_MS = 20000;
/** How often a wait looks again. */
const POLL_MS = 100;

const token = randomBytes(24).toString('hex');
let work;
let server;
let swarm;
let context;
let userDataDir;
let base;

/** Polls `check` (which returns a value, or undefined to go on) until `WAIT_MS`. */
async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Starts a child whose output goes to `log`; it is ended through this handle only. */
function start(bin, args, log) {
  assert.ok(existsSync(bin), `${bin} is missing: cargo build --workspace --bins`);
  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'warn' },
  });
  const out = createWriteStream(log);
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  child.exited = new Promise((resolve) => child.once('exit', resolve));
  return child;
}

/** Ends a child this test started: SIGTERM, then SIGKILL if it lingers. */
async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const ended = await Promise.race([
    child.exited.then(() => true),
    new Promise((resolve) => setTimeout(() => resolve(false), 5000)),
  ]);
  if (!ended) {
    child.kill('SIGKILL');
    await child.exited;
  }
}

async function api(method, route) {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = await response.json();
  assert.equal(response.status, 200, `${method} ${route}: ${JSON.stringify(body)}`);
  return body;
}

before(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  work = mkdtempSync(path.join(tmpdir(), 'tickroom-status-'));
  const tokens = path.join(work, 'tokens');
  writeFileSync(tokens, `ops:${token}\n`, { mode: 0o600 });
  const ready = path.join(work, 'ready.json');
  server = start(
    SERVER_BIN,
    [
      '--http', '127.0.0.1:0',
      '--ws', '127.0.0.1:0',
      '--quic', '127.0.0.1:0',
      '--metrics', '127.0.0.1:0',
      // Debug builds on a loaded machine tick slowly: admission control must not refuse rooms.
      '--max-tick-p99-ms', '1000',
      '--ready-file', ready,
      '--admin-token-file', tokens,
    ],
    path.join(work, 'server.log'),
  );
  const addresses = await until('the ready file', () =>
    existsSync(ready) ? JSON.parse(readFileSync(ready, 'utf8')) : undefined,
  );
  base = `http://${addresses.http}`;
  swarm = start(
    BOT_BIN,
    ['swarm', '--server', base, '--bots', '6', '--ramp', '1s', '--duration', '20s', '--mode', 'duel', '--no-progress'],
    path.join(work, 'swarm.log'),
  );
  userDataDir = mkdtempSync(path.join(tmpdir(), 'tickroom-status-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
    viewport: { width: 1100, height: 800 },
    timeout: WAIT_MS,
  });
});

after(async () => {
  await context?.close().catch(() => undefined);
  await stop(swarm);
  await stop(server);
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the status page shows the rooms and drains a server', async () => {
  // The swarm's duels are placed: the admin API lists rooms.
  await until('the swarm to be placed in rooms', async () => {
    const rooms = await api('GET', '/v1/admin/rooms');
    return rooms.total > 0 ? rooms : undefined;
  });

  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  await page.goto(`${base}/status`);
  assert.equal(await page.locator('#room-count').textContent(), '–', 'nothing shown before the token');
  await page.fill('#token', token);
  await page.click('#connect');
  await page.waitForSelector('#state.ok', { timeout: WAIT_MS });
  assert.ok(await page.locator('#login').isHidden(), 'the token form is hidden once connected');

  // The count shown is the API's total (both read until they agree: bots come and go).
  const shown = await until('the page to show the API total', async () => {
    const text = (await page.locator('#room-count').textContent())?.trim();
    const { total } = await api('GET', '/v1/admin/rooms');
    const n = Number(text);
    return text !== '–' && Number.isInteger(n) && n === total && n > 0 ? n : undefined;
  });
  assert.ok(shown > 0);
  const rows = await page.locator('#rooms tr').count();
  assert.equal(rows, Math.min(shown, 100), 'one row per room shown');

  // The token is nowhere but the page's memory.
  const stored = await page.evaluate(() => ({
    local: window.localStorage.length,
    session: window.sessionStorage.length,
    cookie: document.cookie,
  }));
  assert.deepEqual(stored, { local: 0, session: 0, cookie: '' });
  assert.equal(await page.inputValue('#token'), '', 'the input is cleared');

  // Drain the server with its button: the admin API then says it drains.
  const { servers } = await api('GET', '/v1/admin/servers');
  assert.equal(servers.length, 1);
  const id = servers[0].server_id;
  assert.equal(servers[0].draining, false);
  await page.click(`button.drain[data-server="${id}"]`);
  await until('GET /v1/admin/servers to say draining', async () => {
    const now = await api('GET', '/v1/admin/servers');
    return now.servers[0].draining && now.servers[0].drain_requested ? true : undefined;
  });
  // The page shows it too (its button turns into Undrain).
  await page.waitForSelector(`button.undrain[data-server="${id}"]`, { timeout: WAIT_MS });

  await page.screenshot({ path: path.join(OUTPUT, 'status.png'), fullPage: true });
  assert.deepEqual(problems, [], 'no script errors or policy violations');
});
