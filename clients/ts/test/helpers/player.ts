// A TS arena player for end-to-end tests: logs in, queues, joins over WebSocket, decodes
// snapshots into views, and records every message it sends (to check seqs on the wire).

import { ArenaPlayer, ArenaSnapshot, ArenaViewTracker, encodeArenaInput } from '../../src/arena.js';
import { ClientMsg, decodeClient } from '../../src/codec.js';
import { newDeviceId } from '../../src/crypto.js';
import { ClientEvent, TickroomClient, WebSocketConstructor, WebSocketLike } from '../../src/client.js';
import { GatewayClient, Login, MatchResult } from '../../src/gateway.js';
import { SessionConfig } from '../../src/session.js';

/** A WebSocket constructor that records each message sent through it. */
export function recordingWebSocket(sent: ClientMsg[]): WebSocketConstructor {
  const Base = (globalThis as unknown as { WebSocket: new (url: string) => WebSocketLike }).WebSocket;
  return class extends (Base as unknown as new (url: string) => WebSocketLike & object) {
    override send(data: Uint8Array): void {
      sent.push(decodeClient(data));
      super.send(data);
    }
  } as unknown as WebSocketConstructor;
}

export class TestPlayer {
  readonly sent: ClientMsg[] = [];
  readonly events: ClientEvent[] = [];
  readonly tracker = new ArenaViewTracker();
  latest: ArenaSnapshot | undefined;
  decodeErrors = 0;
  client!: TickroomClient;
  login!: Login;
  match!: MatchResult;
  private stick: ReturnType<typeof setInterval> | undefined;
  private waiters = new Set<() => void>();

  constructor(readonly gateway: GatewayClient, readonly deviceId = newDeviceId()) {}

  /** Logs in, queues for `mode`, waits for the match and joins; resolves on `joined`. */
  async join(mode: string, session: Partial<SessionConfig> = {}): Promise<void> {
    const { login, match } = await this.gateway.findMatch(this.deviceId, mode, { timeoutMs: 30000 });
    this.login = login;
    this.match = match;
    this.client = new TickroomClient(match, { WebSocket: recordingWebSocket(this.sent), session: { manualAck: true, ...session } });
    this.client.onAny((ev) => {
      this.events.push(ev);
      if (ev.type === 'snapshot') {
        try {
          this.latest = this.tracker.apply(ev.tick, ev.baseline, ev.payload);
          this.client.session.ackSnapshot(ev.tick);
        } catch {
          this.decodeErrors++;
        }
      }
      for (const w of [...this.waiters]) w();
    });
    const joined = this.client.next('joined', 15000);
    this.client.join();
    await joined;
  }

  get slot(): number {
    const w = this.client.welcome;
    if (w === undefined) throw new Error('not joined');
    return w.slot;
  }

  /** This player in the latest view. */
  me(view = this.latest): ArenaPlayer | undefined {
    return view?.players.find((p) => p.slot === this.slot);
  }

  /** The other player in the latest view. */
  other(view = this.latest): ArenaPlayer | undefined {
    return view?.players.find((p) => p.slot !== this.slot);
  }

  /** Resolves with the first view (from now on, or the latest) that satisfies `pred`. */
  waitView(what: string, pred: (v: ArenaSnapshot) => boolean, timeoutMs = 10000): Promise<ArenaSnapshot> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const v = this.latest;
        if (v !== undefined && pred(v)) {
          cleanup();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        const me = this.me();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; state ${this.client.state}, latest tick ${this.latest?.tick}, me ${JSON.stringify(me)}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Holds the stick: sends the input at 30 Hz until changed or stopped. */
  hold(moveX: number, moveY: number): void {
    this.release();
    const send = (): void => {
      this.client.sendInput(encodeArenaInput(moveX, moveY));
    };
    send();
    this.stick = setInterval(send, 33);
  }

  release(): void {
    if (this.stick !== undefined) clearInterval(this.stick);
    this.stick = undefined;
  }

  /** Seqs of every message sent after the handshake, in order. */
  seqs(): bigint[] {
    return this.sent.flatMap((m) => ('seq' in m ? [m.seq] : []));
  }

  close(): void {
    this.release();
    if (this.client !== undefined && this.client.state !== 'closed') this.client.leave();
  }
}

/** A stick direction from `x` toward the arena's centre (so the player is not stuck at a wall). */
export function towardCentre(x: number): number {
  return x > 0 ? -127 : 127;
}
