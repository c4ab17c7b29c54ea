// The gateway's HTTP JSON API under /v1 (protocol/src/api.rs, gateway/src/http.rs): device
// login, refresh, queueing (with matchmaking properties, or a whole party), the long poll for a
// match, cancel, parties, private rooms by code, room status and match results.
// Uses the platform's `fetch`. Every error is a `GatewayError` carrying the HTTP status and the
// JSON body's tickroom code (`{"code", "error", "message"}`), plus `Retry-After` when sent.
import { fromHex } from './codec.js';
import { ErrorCode, GatewayError, TransportError } from './errors.js';
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
function defaultSleep(ms, signal) {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) {
            reject(signal.reason ?? new Error('aborted'));
            return;
        }
        const timer = setTimeout(() => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
        }, Math.max(0, ms));
        const onAbort = () => {
            clearTimeout(timer);
            reject(signal?.reason ?? new Error('aborted'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
    });
}
/** `Retry-After` in ms: delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(value, nowMs = Date.now()) {
    if (value === null)
        return undefined;
    const text = value.trim();
    if (/^\d+$/.test(text))
        return Number(text) * 1000;
    const at = Date.parse(text);
    return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
function base64ToBytes(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++)
        out[i] = bin.charCodeAt(i);
    return out;
}
/** A small client for the gateway's `/v1` API. */
export class GatewayClient {
    constructor(base, options = {}) {
        /** `503` answers this client waited out and retried. */
        this.retries = 0;
        this.base = base.replace(/\/+$/, '');
        const f = options.fetch ?? globalThis.fetch;
        if (f === undefined)
            throw new TransportError('no fetch available');
        this.fetchFn = f.bind(globalThis);
        this.sleep = options.sleep ?? defaultSleep;
        this.retryDeadlineMs = options.retryDeadlineMs ?? DEFAULT_RETRY_DEADLINE_MS;
        this.random = options.random ?? Math.random;
    }
    /** One call, sent again after each `503` until the retry deadline; the last `503` is thrown. */
    async request(method, path, token, body, signal) {
        const end = Date.now() + this.retryDeadlineMs;
        for (let attempt = 0;; attempt++) {
            try {
                return await this.requestOnce(method, path, token, body, signal);
            }
            catch (e) {
                if (!(e instanceof GatewayError) || e.status !== 503)
                    throw e;
                const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
                const pause = Math.min(e.retryAfterMs ?? 0, RETRY_AFTER_MAX_MS) + this.random() * ceiling;
                if (Date.now() + pause > end)
                    throw e;
                this.retries += 1;
                await this.sleep(pause, signal);
            }
        }
    }
    async requestOnce(method, path, token, body, signal) {
        const headers = { accept: 'application/json' };
        if (token !== undefined)
            headers.authorization = `Bearer ${token}`;
        if (body !== undefined)
            headers['content-type'] = 'application/json';
        let resp;
        try {
            resp = await this.fetchFn(`${this.base}${path}`, {
                method,
                headers,
                body: body === undefined ? null : JSON.stringify(body),
                signal: signal ?? null,
            });
        }
        catch (e) {
            if (signal?.aborted)
                throw e;
            throw new TransportError(`http: ${method} ${path}: ${String(e)}`);
        }
        const text = await resp.text().catch((e) => {
            throw new TransportError(`http: reading ${path}: ${String(e)}`);
        });
        if (resp.status >= 200 && resp.status < 300) {
            try {
                return JSON.parse(text);
            }
            catch {
                throw new TransportError(`http: ${path} answered ${resp.status} with invalid JSON`);
            }
        }
        let code = ErrorCode.Unknown;
        let message = text;
        try {
            const err = JSON.parse(text);
            if (typeof err.code === 'number')
                code = err.code;
            if (typeof err.message === 'string')
                message = err.message;
        }
        catch {
            // Not JSON (a proxy's page): keep the text.
        }
        throw new GatewayError(resp.status, code, message || `HTTP ${resp.status}`, parseRetryAfter(resp.headers.get('retry-after')));
    }
    /**
     * `POST /v1/auth/device`. The id must carry at least 128 random bits (32 hex digits or 22
     * base64url characters): use `newDeviceId()` once per device and keep it.
     */
    loginDevice(deviceId) {
        return this.request('POST', '/v1/auth/device', undefined, { device_id: deviceId });
    }
    /** `POST /v1/auth/refresh`: a fresh token for the same login (before `expires_ms`). */
    refresh(token) {
        return this.request('POST', '/v1/auth/refresh', token);
    }
    /**
     * `POST /v1/matchmaking`: returns the matchmaking ticket id. A player placed in a room they
     * may still join gets a 409 `GatewayError` (`Conflict`, with `retryAfterMs`).
     */
    async queue(token, mode, metadata, options = {}) {
        const body = { mode };
        if (metadata !== undefined && Object.keys(metadata).length > 0)
            body.metadata = metadata;
        if (options.properties !== undefined && Object.keys(options.properties).length > 0)
            body.properties = options.properties;
        if (options.partyId !== undefined)
            body.party_id = options.partyId;
        const answer = await this.request('POST', '/v1/matchmaking', token, body);
        return answer.ticket_id;
    }
    /** One `GET /v1/matchmaking/{ticket_id}?wait_ms=`: queued or matched. */
    poll(token, ticketId, waitMs, signal) {
        const wait = Math.max(0, Math.min(MAX_POLL_WAIT_MS, Math.floor(waitMs)));
        return this.request('GET', `/v1/matchmaking/${encodeURIComponent(ticketId)}?wait_ms=${wait}`, token, undefined, signal);
    }
    /**
     * Long-polls until matched, one poll at a time. A `503` (no room server can take a room yet;
     * the ticket stays queued) is waited out like on every call, and so is a `429` (too many
     * polls), for its `Retry-After`. Fails with `GatewayError` for anything else, or a timeout
     * `TransportError`.
     */
    async waitMatch(token, ticketId, options = {}) {
        const end = Date.now() + (options.timeoutMs ?? 60000);
        for (;;) {
            const left = end - Date.now();
            if (left <= 0)
                throw new TransportError('timed out waiting for a match', ErrorCode.Unknown);
            let answer;
            try {
                answer = await this.poll(token, ticketId, left, options.signal);
            }
            catch (e) {
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
    createParty(token) {
        return this.request('POST', '/v1/parties', token);
    }
    /** `POST /v1/parties/join`: joins the party with `code`. */
    joinParty(token, code) {
        return this.request('POST', '/v1/parties/join', token, { code });
    }
    /** `GET /v1/parties/{party_id}`: the party, with its members' tickets once it is queued. */
    party(token, partyId) {
        return this.request('GET', `/v1/parties/${encodeURIComponent(partyId)}`, token);
    }
    /** `DELETE /v1/parties/{party_id}`: leaves (the leader leaving ends the party). */
    async leaveParty(token, partyId) {
        await this.request('DELETE', `/v1/parties/${encodeURIComponent(partyId)}`, token);
    }
    /** `POST /v1/rooms`: a private room of `mode`, and the code everyone joins it with. */
    createRoom(token, mode) {
        return this.request('POST', '/v1/rooms', token, { mode });
    }
    /** `POST /v1/rooms/join`: a seat in the private room with `code` (a 404 `GatewayError` for an unknown code, 409 when full). */
    joinByCode(token, code) {
        return this.request('POST', '/v1/rooms/join', token, { code });
    }
    /**
     * `POST /v1/rooms/watch`: a spectator's place in a room, a public one by `roomId` or a
     * private one by `code` (exactly one). Its `Welcome` says slot `SPECTATOR_SLOT` (255); the
     * session only watches, and its input and custom messages are refused (`SpectatorReadOnly`).
     */
    watch(token, room) {
        const body = 'code' in room ? { code: room.code } : { room_id: room.roomId };
        return this.request('POST', '/v1/rooms/watch', token, body);
    }
    /** `DELETE /v1/matchmaking/{ticket_id}`. */
    async cancel(token, ticketId) {
        await this.request('DELETE', `/v1/matchmaking/${encodeURIComponent(ticketId)}`, token);
    }
    /** `GET /v1/rooms/{room_id}`; `null` when the gateway does not know the room or the player is not in it (404). */
    async roomStatus(token, roomId) {
        try {
            return await this.request('GET', `/v1/rooms/${roomId}`, token);
        }
        catch (e) {
            if (e instanceof GatewayError && e.status === 404)
                return null;
            throw e;
        }
    }
    /** `GET /v1/matches/{room_id}`: a finished match's result; `null` on 404. */
    async matchResult(token, roomId) {
        try {
            const r = await this.request('GET', `/v1/matches/${roomId}`, token);
            return { ...r, result: base64ToBytes(r.result) };
        }
        catch (e) {
            if (e instanceof GatewayError && e.status === 404)
                return null;
            throw e;
        }
    }
    /**
     * Queues, retrying a `409` that carries `Retry-After` (the player's previous match may still
     * be joined; no new ticket before its join window ends) until the deadline.
     */
    async queueWhenFree(token, mode, options = {}) {
        const end = Date.now() + (options.timeoutMs ?? 60000);
        for (;;) {
            try {
                return await this.queue(token, mode, options.metadata);
            }
            catch (e) {
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
    async findMatch(deviceId, mode, options = {}) {
        const started = Date.now();
        const timeoutMs = options.timeoutMs ?? 60000;
        const login = await this.loginDevice(deviceId);
        const ticket = await this.queueWhenFree(login.session_token, mode, options);
        const match = await this.waitMatch(login.session_token, ticket, { ...options, timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)) });
        return { login, match };
    }
}
/** The join secret of a match result as 32 bytes; throws a `TransportError` when malformed. */
export function joinSecretBytes(m) {
    const bytes = fromHex(m.join_secret);
    if (bytes === undefined || bytes.length !== 32)
        throw new TransportError('bad join secret in match result');
    return bytes;
}
