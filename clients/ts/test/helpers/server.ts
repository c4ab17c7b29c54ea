// Runs the real tickroom binaries for end-to-end tests: the all-in-one server on loopback with
// port 0 everywhere (its ready file says where), and the Rust bot.

import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { PACKAGE_ROOT } from './vectors.js';

export const REPO_ROOT = path.resolve(PACKAGE_ROOT, '../..');
export const SERVER_BIN = process.env.TICKROOM_BIN ?? path.join(REPO_ROOT, 'target/debug/tickroom');
export const BOT_BIN = process.env.TICKROOM_BOT_BIN ?? path.join(REPO_ROOT, 'target/debug/tickroom-bot');

export interface Ready {
  http: string;
  ws: string;
  quic: string;
  metrics: string;
  cert_fingerprint: string;
}

export interface RunningServer {
  ready: Ready;
  /** `http://<http>` */
  gateway: string;
  /** Server output so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** Polls `check` every `everyMs` until it returns a value, failing after `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>, everyMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits for a binary that may be briefly missing while the main engineer rebuilds. */
async function waitForBinary(bin: string): Promise<void> {
  await pollUntil(`${bin} to exist (build it with cargo build)`, 30000, () => (existsSync(bin) ? true : undefined), 200);
}

function exited(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => resolve(null), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Kills a child by its own handle: SIGTERM, then SIGKILL if it lingers. */
export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if ((await exited(child, 3000)) === null && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited(child, 3000);
  }
}

/** Starts the all-in-one server; resolves once its ready file exists. */
export async function startServer(extraArgs: string[] = []): Promise<RunningServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tickroom-ts-'));
  const readyFile = path.join(dir, 'ready.json');
  const args = [
    '--http', '127.0.0.1:0',
    '--ws', '127.0.0.1:0',
    '--quic', '127.0.0.1:0',
    '--metrics', '127.0.0.1:0',
    '--max-tick-p99-ms', '1000',
    '--ready-file', readyFile,
    ...extraArgs,
  ];
  let child: ChildProcess | undefined;
  let log = '';
  // The binary may be replaced while we start it (a rebuild): retry a few times.
  for (let attempt = 1; ; attempt++) {
    await waitForBinary(SERVER_BIN);
    try {
      child = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
      await new Promise<void>((resolve, reject) => {
        child?.once('spawn', resolve);
        child?.once('error', reject);
      });
      break;
    } catch (e) {
      if (attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const proc = child;
  const append = (b: Buffer): void => {
    log = (log + b.toString()).slice(-20000);
  };
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  const stop = async (): Promise<void> => {
    await killChild(proc);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ready = await pollUntil('the server ready file', 30000, () => {
      if (proc.exitCode !== null) throw new Error(`tickroom exited with ${proc.exitCode} before ready:\n${log}`);
      if (!existsSync(readyFile)) return undefined;
      try {
        return JSON.parse(readFileSync(readyFile, 'utf8')) as Ready;
      } catch {
        return undefined; // being written
      }
    });
    return { ready, gateway: `http://${ready.http}`, output: () => log, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface BotRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `tickroom-bot play` to completion (killed after `timeoutMs`). */
export async function runBot(gateway: string, args: string[], timeoutMs: number): Promise<BotRun> {
  await waitForBinary(BOT_BIN);
  const child = spawn(BOT_BIN, ['play', '--server', gateway, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20000)));
  const code = await exited(child, timeoutMs);
  if (child.exitCode === null && child.signalCode === null) {
    await killChild(child);
    throw new Error(`tickroom-bot did not finish in ${timeoutMs} ms:\n${stdout}\n${stderr}`);
  }
  return { code, stdout, stderr };
}
