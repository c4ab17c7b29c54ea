// The gateway's HTTP JSON API under /v1 (protocol/src/api.rs, gateway/src/http.rs): device
// login, refresh, queueing (with matchmaking properties, or a whole party), the long poll for a
// match, cancel, parties, private rooms by code, room status and match results.
// Uses the platform's `fetch`. Every error is a `GatewayError` carrying the HTTP status and the
// JSON body's tickroom code (`{"code", "error", "message"}`), plus `Retry-After` when sent.

import { fromHex } from './codec.js';
import { ErrorCode, GatewayError, TransportError } from './errors.js';

/** A login answer (every login route and refresh). */
export interface Login {
  player_id: number;
  session_token: string;
  /** When the token expires, unix ms (refresh before). */
  expires_ms: number;
}

/** Where a room lives and how to get in: the gateway's match result. */
export interface MatchResult {
  room_id: number;
  mode: string;
  server_id: string;
  quic_addr: string;
  /** The room server's WebSocket address, `host:port` (endpoint path `/`). */
  ws_addr: string;
  cert_fingerprint: string;
  /** The WebSocket speaks TLS (`wss://`). */
  ws_tls?: boolean;
  /** The signed, single-use join ticket (valid about 10 s). */
  join_ticket: string;
  /** Hex of the secret that answers the join challenge. */
  join_secret: string;
  expires_ms: number;
  /** Modes with matchmaking rules or teams: why these players were grouped. */
  grouping?: Grouping;
}

/** Why matchmaking grouped players (`MatchResult.grouping`). */
export interface Grouping {
  /** The rating window (±) of the match's anchor when it formed. */
  window?: number;
  /** Highest minus lowest rating in the match. */
  spread?: number;
  /** The region the match plays in. */
  region?: string;
  /** Modes with teams: player ids per team; a party is on one team. */
  teams?: number[][];
}

/** A party (`createParty`, `joinParty`, `party`). */
export interface Party {
  party_id: string;
  /** The code others join it with (8 characters, any case). */
  code: string;
  /** Who queues it; the party ends when the leader leaves. */
  leader: number;
  members: number[];
  /** While queued or matched: each member's ticket, to poll. */
  tickets: { player_id: number; ticket_id: string }[];
}

/** `POST /v1/rooms` answer: a private room and the code everyone joins it with. */
export interface PrivateRoom {
  room_id: number;
  mode: string;
  code: string;
  /** The code dies then (unix ms) if nobody has joined. */
  expires_ms: number;
}

/** What a ticket carries beside its mode (`queue`'s last argument). */
export interface QueueOptions {
  /** What the mode's matchmaking rules read: a rating, a region, a version, `latency.<region>`. */
  properties?: PlayerMetadata;
  /** Queue the caller's whole party (the caller must lead it). */
  partyId?: string;
}

/** `GET /v1/matchmaking/{ticket_id}` answer. */
export type PollResponse =
  | { status: 'queued'; ticket_id: string; queued_ms: number }
  | ({ status: 'matched' } & MatchResult);

/**
 * `GET /v1/rooms/{room_id}` answer. When the room's server died and the room had a failover
 * image, the gateway moved it to a live server: `server_id` and the addresses are that one's,
 * where the same session resumes.
 */
export interface RoomStatus {
  room_id: number;
  server_id: string;
  /** False once the room server's registration expired (and nobody took the room over): queue again. */
  alive: boolean;
  epoch: number;
  quic_addr: string;
  ws_addr: string;
  cert_fingerprint: string;
  ws_tls: boolean;
}

/** `GET /v1/matches/{room_id}` answer (`result` decoded from base64). */
export interface MatchResultRecord {
  room_id: number;
  mode: string;
  players: { player_id: number; slot: number }[];
  result: Uint8Array;
  ended_ms: number;
}

/** Metadata for the join ticket: strings and whole numbers only. */
export type PlayerMetadata = Record<string, string | number>;

export interface GatewayOptions {
  /** The `fetch` to use (default: `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Waits `ms` (default: setTimeout); tests may shorten it. Rejects when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * How long one call keeps retrying a `503` (the directory or every room server briefly
   * unavailable), in ms (default 30000; 0: never). Each retry waits the gateway's
   * `Retry-After` plus a full-jitter backoff doubling from 250 ms to 4 s.
   */
  retryDeadlineMs?: number;
  /** Uniform in [0, 1) for the retry jitter (default `Math.random`); tests may fix it. */
  random?: () => number;
}

export interface WaitOptions {
  /** Give up after this long, in ms (default 60000). */
  timeoutMs?: number;
  /** Abort the wait. */
  signal?: AbortSignal;
}

/** Longest single long poll asked for, in ms (the gateway caps it too). */
export const MAX_POLL_WAIT_MS = 20000;
/** Pause after a 429 without a usable Retry-After, in ms. */
export const DEFAULT_RETRY_AFTER_MS = 1000;
/** How long one call keeps retrying a 503 by default, in ms. */
export const DEFAULT_RETRY_DEADLINE_MS = 30000;
/** Backoff ceilings between retries of a 503, in ms: doubling from the first to the largest. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 4000;
/** A longer Retry-After is cut to this, in ms. */
const RETRY_AFTER_MAX_MS = 30000;

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new Error('aborted'));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `Retry-After` in ms: delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

function base64ToBytes(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A small client for the gateway's `/v1` API. */
export class GatewayClient {
  /** The base URL, without a trailing slash (e.g. `http://127.0.0.1:7700`). */
  readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly retryDeadlineMs: number;
  private readonly random: () => number;
  /** `503` answers this client waited out and retried. */
  retries = 0;

  constructor(base: string, options: GatewayOptions = {}) {
    this.base = base.replace(/\/+$/, '');
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (f === undefined) throw new TransportError('no fetch available');
    this.fetchFn = f.bind(globalThis);
    this.sleep = options.sleep ?? defaultSleep;
    this.retryDeadlineMs = options.retryDeadlineMs ?? DEFAULT_RETRY_DEADLINE_MS;
    this.random = options.random ?? Math.random;
  }

  /** One call, sent again after each `503` until the retry deadline; the last `503` is thrown. */
  private async request<T>(method: string, path: string, token?: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const end = Date.now() + this.retryDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce<T>(method, path, token, body, signal);
      } catch (e) {
        if (!(e instanceof GatewayError) || e.status !== 503) throw e;
        const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
        const pause = Math.min(e.retryAfterMs ?? 0, RETRY_AFTER_MAX_MS) + this.random() * ceiling;
        if (Date.now() + pause > end) throw e;
        this.retries += 1;
        await this.sleep(pause, signal);
      }
    }
  }

  private async requestOnce<T>(method: string, path: string, token?: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let resp: Response;
    try {
      resp = await this.fetchFn(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: signal ?? null,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new TransportError(`http: ${method} ${path}: ${String(e)}`);
    }
    const text = await resp.text().catch((e: unknown) => {
      throw new TransportError(`http: reading ${path}: ${String(e)}`);
    });
    if (resp.status >= 200 && resp.status < 300) {
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new TransportError(`http: ${path} answered ${resp.status} with invalid JSON`);
      }
    }
    let code: number = ErrorCode.Unknown;
    let message = text;
    try {
      const err = JSON.parse(text) as { code?: unknown; message?: unknown };
      if (typeof err.code === 'number') code = err.code;
      if (typeof err.message === 'string') message = err.message;
    } catch {
      // Not JSON (a proxy's page): keep the text.
    }
    throw new GatewayError(resp.status, code, message || `HTTP ${resp.status}`, parseRetryAfter(resp.headers.get('retry-after')));
  }

  /**
   * `POST /v1/auth/device`. The id must carry at least 128 random bits (32 hex digits or 22
   * base64url characters): use `newDeviceId()` once per device and keep it.
   */
  loginDevice(deviceId: string): Promise<Login> {
    return this.request<Login>('POST', '/v1/auth/device', undefined, { device_id: deviceId });
  }

  /** `POST /v1/auth/refresh`: a fresh token for the same login (before `expires_ms`). */
  refresh(token: string): Promise<Login> {
    return this.request<Login>('POST', '/v1/auth/refresh', token);
  }

  /**
   * `POST /v1/matchmaking`: returns the matchmaking ticket id. A player placed in a room they
   * may still join gets a 409 `GatewayError` (`Conflict`, with `retryAfterMs`).
   */
  async queue(token: string, mode: string, metadata?: PlayerMetadata, options: QueueOptions = {}): Promise<string> {
    const body: { mode: string; metadata?: PlayerMetadata; properties?: PlayerMetadata; party_id?: string } = { mode };
    if (metadata !== undefined && Object.keys(metadata).length > 0) body.metadata = metadata;
    if (options.properties !== undefined && Object.keys(options.properties).length > 0) body.properties = options.properties;
    if (options.partyId !== undefined) body.party_id = options.partyId;
    const answer = await this.request<{ ticket_id: string }>('POST', '/v1/matchmaking', token, body);
    return answer.ticket_id;
  }

  /** One `GET /v1/matchmaking/{ticket_id}?wait_ms=`: queued or matched. */
  poll(token: string, ticketId: string, waitMs: number, signal?: AbortSignal): Promise<PollResponse> {
    const wait = Math.max(0, Math.min(MAX_POLL_WAIT_MS, Math.floor(waitMs)));
    return this.request<PollResponse>('GET', `/v1/matchmaking/${encodeURIComponent(ticketId)}?wait_ms=${wait}`, token, undefined, signal);
  }

  /**
   * Long-polls until matched, one poll at a time. A `503` (no room server can take a room yet;
   * the ticket stays queued) is waited out like on every call, and so is a `429` (too many
   * polls), for its `Retry-After`. Fails with `GatewayError` for anything else, or a timeout
   * `TransportError`.
   */
  async waitMatch(token: string, ticketId: string, options: WaitOptions = {}): Promise<MatchResult> {
    const end = Date.now() + (options.timeoutMs ?? 60000);
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) throw new TransportError('timed out waiting for a match', ErrorCode.Unknown);
      let answer: PollResponse;
      try {
        answer = await this.poll(token, ticketId, left, options.signal);
      } catch (e) {
        if (e instanceof GatewayError && (e.status === 503 || e.status === 429)) {
          const pause = Math.min(e.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS, Math.max(0, end - Date.now()));
          await this.sleep(pause, options.signal);
          continue;
        }
        throw e;
      }
      if (answer.status === 'matched') {
        const { status: _status, ...m } = answer;
        return m;
      }
    }
  }

  /** `POST /v1/parties`: a party led by the caller. */
  createParty(token: string): Promise<Party> {
    return this.request<Party>('POST', '/v1/parties', token);
  }

  /** `POST /v1/parties/join`: joins the party with `code`. */
  joinParty(token: string, code: string): Promise<Party> {
    return this.request<Party>('POST', '/v1/parties/join', token, { code });
  }

  /** `GET /v1/parties/{party_id}`: the party, with its members' tickets once it is queued. */
  party(token: string, partyId: string): Promise<Party> {
    return this.request<Party>('GET', `/v1/parties/${encodeURIComponent(partyId)}`, token);
  }

  /** `DELETE /v1/parties/{party_id}`: leaves (the leader leaving ends the party). */
  async leaveParty(token: string, partyId: string): Promise<void> {
    await this.request<unknown>('DELETE', `/v1/parties/${encodeURIComponent(partyId)}`, token);
  }

  /** `POST /v1/rooms`: a private room of `mode`, and the code everyone joins it with. */
  createRoom(token: string, mode: string): Promise<PrivateRoom> {
    return this.request<PrivateRoom>('POST', '/v1/rooms', token, { mode });
  }

  /** `POST /v1/rooms/join`: a seat in the private room with `code` (a 404 `GatewayError` for an unknown code, 409 when full). */
  joinByCode(token: string, code: string): Promise<MatchResult> {
    return this.request<MatchResult>('POST', '/v1/rooms/join', token, { code });
  }

  /**
   * `POST /v1/rooms/watch`: a spectator's place in a room, a public one by `roomId` or a
   * private one by `code` (exactly one). Its `Welcome` says slot `SPECTATOR_SLOT` (255); the
   * session only watches, and its input and custom messages are refused (`SpectatorReadOnly`).
   */
  watch(token: string, room: { roomId: number } | { code: string }): Promise<MatchResult> {
    const body = 'code' in room ? { code: room.code } : { room_id: room.roomId };
    return this.request<MatchResult>('POST', '/v1/rooms/watch', token, body);
  }

  /** `DELETE /v1/matchmaking/{ticket_id}`. */
  async cancel(token: string, ticketId: string): Promise<void> {
    await this.request<unknown>('DELETE', `/v1/matchmaking/${encodeURIComponent(ticketId)}`, token);
  }

  /** `GET /v1/rooms/{room_id}`; `null` when the gateway does not know the room or the player is not in it (404). */
  async roomStatus(token: string, roomId: number | bigint): Promise<RoomStatus | null> {
    try {
      return await this.request<RoomStatus>('GET', `/v1/rooms/${roomId}`, token);
    } catch (e) {
      if (e instanceof GatewayError && e.status === 404) return null;
      throw e;
    }
  }

  /** `GET /v1/matches/{room_id}`: a finished match's result; `null` on 404. */
  async matchResult(token: string, roomId: number | bigint): Promise<MatchResultRecord | null> {
    try {
      const r = await this.request<Omit<MatchResultRecord, 'result'> & { result: string }>('GET', `/v1/matches/${roomId}`, token);
      return { ...r, result: base64ToBytes(r.result) };
    } catch (e) {
      if (e instanceof GatewayError && e.status === 404) return null;
      throw e;
    }
  }

  /**
   * Queues, retrying a `409` that carries `Retry-After` (the player's previous match may still
   * be joined; no new ticket before its join window ends) until the deadline.
   */
  async queueWhenFree(token: string, mode: string, options: WaitOptions & { metadata?: PlayerMetadata } = {}): Promise<string> {
    const end = Date.now() + (options.timeoutMs ?? 60000);
    for (;;) {
      try {
        return await this.queue(token, mode, options.metadata);
      } catch (e) {
        const left = end - Date.now();
        if (e instanceof GatewayError && (e.status === 409 || e.status === 429 || e.status === 503) && e.retryAfterMs !== undefined && e.retryAfterMs < left) {
          await this.sleep(e.retryAfterMs, options.signal);
          continue;
        }
        throw e;
      }
    }
  }

  /** Login with a device id, queue for `mode` and wait for the match. */
  async findMatch(deviceId: string, mode: string, options: WaitOptions & { metadata?: PlayerMetadata } = {}): Promise<{ login: Login; match: MatchResult }> {
    const started = Date.now();
    const timeoutMs = options.timeoutMs ?? 60000;
    const login = await this.loginDevice(deviceId);
    const ticket = await this.queueWhenFree(login.session_token, mode, options);
    const match = await this.waitMatch(login.session_token, ticket, { ...options, timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)) });
    return { login, match };
  }
}

/** The join secret of a match result as 32 bytes; throws a `TransportError` when malformed. */
export function joinSecretBytes(m: Pick<MatchResult, 'join_secret'>): Uint8Array {
  const bytes = fromHex(m.join_secret);
  if (bytes === undefined || bytes.length !== 32) throw new TransportError('bad join secret in match result');
  return bytes;
}
