// `ClientSession`: the sans-IO client side of a tickroom connection, a port of
// protocol/src/session.rs — handshake (Hello or Resume, challenge, Welcome), sequence numbers
// that continue across reconnects, redundant inputs and snapshot acks, pings and RTT, silence
// and handshake timeouts, and resumption with full-jitter exponential backoff inside the
// server's grace period.
//
// It does no IO and reads no clock: time comes in as `now` (milliseconds on any monotonic
// clock), backoff jitter comes from a PRNG seeded by `jitterSeed`. A driver opens the
// transport, calls `connected(now)`, feeds every received frame to `handleBytes(now, bytes)`
// (or decoded messages to `handleMessage`), sends what `pollTransmit()` yields, reacts to
// `pollEvent()` and `pollClose()`, and calls `handleTimeout(now)` at `pollTimeout()`.
//
// The one asynchronous step is the challenge MAC (WebCrypto is promise based): the response is
// queued when the MAC is ready and `onWake` is called so the driver flushes; `settled()`
// resolves once no MAC is being computed (tests await it).
import { PROTOCOL_HASH, PROTOCOL_VERSION, decodeServer, encodeClient, } from './codec.js';
import { challengeMac as defaultChallengeMac, resumeKey as defaultResumeKey } from './crypto.js';
import { DecodeError, EncodeError, ErrorCode, SessionError, TickroomError, errorName, sessionError } from './errors.js';
/** How many unacked inputs are kept for redundant resending. */
export const MAX_BUFFERED_INPUTS = 256;
/** How many unanswered pings are remembered. */
export const MAX_OUTSTANDING_PINGS = 32;
const MIN_PING_INTERVAL_MS = 1;
export const DEFAULT_SESSION_CONFIG = {
    inputRedundancy: 8,
    pingIntervalMs: 1000,
    handshakeTimeoutMs: 5000,
    serverSilenceTimeoutMs: 10000,
    reconnectBaseMs: 100,
    reconnectMaxMs: 5000,
    reconnectWindowMs: 30000,
    jitterSeed: 0x5eedn,
    protocolVersion: PROTOCOL_VERSION,
    protocolHash: PROTOCOL_HASH,
    manualAck: false,
};
const DEFAULT_CRYPTO = { challengeMac: defaultChallengeMac, resumeKey: defaultResumeKey };
const U64_MAX = 0xffffffffffffffffn;
/** SplitMix64: tiny, seedable, good enough for jitter (not for secrets). */
class SplitMix64 {
    constructor(state) {
        this.state = state;
    }
    next() {
        this.state = (this.state + 0x9e3779b97f4a7c15n) & U64_MAX;
        let z = this.state;
        z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & U64_MAX;
        z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & U64_MAX;
        return z ^ (z >> 31n);
    }
}
/**
 * Whether a loss for `code` may be followed by a Resume: transport trouble and transient
 * server conditions may; anything saying the session or room is gone may not.
 */
export function isResumable(code) {
    if (code === null || code === undefined)
        return true;
    switch (code) {
        case ErrorCode.Unknown:
        case ErrorCode.BadMessage:
        case ErrorCode.HandshakeTimeout:
        case ErrorCode.IdleTimeout:
        case ErrorCode.SlowConsumer:
        case ErrorCode.ServerBusy:
        case ErrorCode.RateLimited:
        case ErrorCode.Internal:
        case ErrorCode.RoomMoved:
            return true;
        default:
            return false;
    }
}
function earliest(a, b) {
    if (a === undefined)
        return b;
    if (b === undefined)
        return a;
    return Math.min(a, b);
}
/** The sans-IO client state machine; see the module comment for how a driver uses it. */
export class ClientSession {
    /**
     * A fresh session in `connecting`; `ticket` and `joinSecret` (32 bytes) come from the
     * gateway's match result. Nothing is sent until `connected`.
     */
    constructor(config, ticket, joinSecret, now, crypto = DEFAULT_CRYPTO) {
        this._state = 'connecting';
        this.transportUp = false;
        this.resuming = false;
        /** Bumped whenever a transport comes up or goes away: a late MAC for an old connection is dropped. */
        this.generation = 0;
        this._nextSeq = 1n;
        this.inputTick = 0n;
        this.inputs = [];
        this._lastSnapshotTick = 0n;
        this.ackTick = 0n;
        this._lastFrame = 0n;
        this.pings = [];
        /** The room moved (`RoomMoved`): reconnecting waits for `reconnectNow` (the window still bounds it). */
        this.parked = false;
        this.attempt = 0;
        this._reconnects = 0;
        this.outbox = [];
        this.events = [];
        this.pending = new Set();
        if (joinSecret.length !== 32)
            throw new TypeError('the join secret must be 32 bytes');
        this.config = { ...DEFAULT_SESSION_CONFIG, ...config };
        this.ticket = ticket;
        this.joinSecret = joinSecret.slice();
        this.crypto = crypto;
        this.epoch = now;
        this.lastReceived = now;
        this.rng = new SplitMix64(BigInt.asUintN(64, this.config.jitterSeed));
    }
    /**
     * The transport is up: queues Hello on a fresh session, or Resume once a Welcome was seen,
     * and starts the handshake timer. Ignored when closed, in the room, or mid-handshake.
     */
    connected(now) {
        if (this._state === 'closed' || this._state === 'in_room')
            return;
        if ((this._state === 'connecting' || this._state === 'challenged') && this.transportUp)
            return;
        this.transportUp = true;
        this.generation++;
        this._state = 'connecting';
        this.reconnectAt = undefined;
        this.parked = false;
        this.handshakeDeadline = now + this.config.handshakeTimeoutMs;
        this.lastReceived = now;
        this.outbox = [];
        this.closeRequest = undefined;
        const w = this._welcome;
        if (w !== undefined) {
            this.resuming = true;
            this.outbox.push({
                type: 'Resume',
                protocol_version: this.config.protocolVersion,
                protocol_hash: this.config.protocolHash,
                session_id: w.session_id,
                // The server replays from here: frames in lockstep, snapshot ticks in state sync.
                last_frame: w.sync === 'Lockstep' ? this._lastFrame : this._lastSnapshotTick,
            });
        }
        else {
            this.resuming = false;
            this.outbox.push({
                type: 'Hello',
                protocol_version: this.config.protocolVersion,
                protocol_hash: this.config.protocolHash,
                ticket: this.ticket,
            });
        }
    }
    /**
     * The transport dropped (or failed to open). A joined session with a resumable `code` goes
     * to `reconnecting` with full-jitter backoff; a never-joined session, a non-resumable code or
     * an exhausted window closes it. `disconnected` is emitted first whenever a transport was up.
     */
    connectionLost(now, code = null) {
        this.lose(now, code, undefined);
    }
    lose(now, code, error) {
        if (this._state === 'closed')
            return;
        // The moved room's old server closing what is left: still waiting to move.
        if (this.parked && !this.transportUp)
            return;
        const wasUp = this.transportUp;
        this.transportUp = false;
        this.generation++;
        this.resuming = false;
        this.handshakeDeadline = undefined;
        this.nextPing = undefined;
        this.reconnectAt = undefined;
        this.pings = [];
        this.outbox = [];
        if (wasUp)
            this.events.push({ type: 'disconnected', code });
        if (this._welcome === undefined || !isResumable(code)) {
            this.close(code, error ?? (code === null ? new SessionError(ErrorCode.Unknown, 'the connection was lost before the session was joined') : sessionError(code)));
            return;
        }
        if (this.firstLoss === undefined)
            this.firstLoss = now;
        const windowEnd = this.windowDeadline();
        if (windowEnd !== undefined && windowEnd <= now) {
            this.close(ErrorCode.SessionExpired, sessionError(ErrorCode.SessionExpired, 'the reconnect window is over'));
            return;
        }
        this._state = 'reconnecting';
        if (code === ErrorCode.RoomMoved) {
            this.parked = true;
            return;
        }
        this.reconnectAt = now + this.backoffDelay();
    }
    /**
     * The room moved to another server (its owner died, or handed it over; `GET /v1/rooms/{id}`
     * says where): a reconnect waiting for its backoff, or parked after `RoomMoved`, is due now,
     * and the backoff starts over. Does nothing in any other state.
     */
    reconnectNow(now) {
        if (this._state === 'reconnecting' && (this.reconnectAt !== undefined || this.parked)) {
            this.parked = false;
            this.attempt = 0;
            this.reconnectAt = now;
        }
    }
    /** Drops the transport from the session's side: the driver must close it (see `pollClose`). */
    dropTransport(now, code, reason) {
        if (this.transportUp)
            this.closeRequest = { closeCode: 4000 + code, reason };
        this.lose(now, code, undefined);
    }
    /**
     * Feeds one received frame. Bytes that do not decode as a server message (malformed,
     * truncated, oversized) emit `error` with a `DecodeError`, ask the driver to close the
     * transport (`pollClose`, close code 4001) and are handled as a loss (the session resumes
     * when it can). Returns the decoded message, or `undefined` when refused.
     */
    handleBytes(now, bytes) {
        if (this._state === 'closed' || !this.transportUp)
            return undefined;
        let msg;
        try {
            msg = decodeServer(bytes);
        }
        catch (e) {
            this.protocolViolation(now, e instanceof DecodeError ? e : new DecodeError('malformed', String(e)));
            return undefined;
        }
        this.handleMessage(now, msg);
        return msg;
    }
    /**
     * The server broke the protocol on the current transport (bytes that do not decode, a text
     * frame): emits `error`, asks the driver to close the transport with 4001 and handles it as
     * a `BadMessage` loss (resumable).
     */
    protocolViolation(now, error) {
        if (this._state === 'closed' || !this.transportUp)
            return;
        this.events.push({ type: 'error', error });
        this.dropTransport(now, ErrorCode.BadMessage, error.message.slice(0, 100));
    }
    /** Feeds one decoded server message; messages that make no sense now are ignored. */
    handleMessage(now, msg) {
        if (this._state === 'closed' || !this.transportUp)
            return;
        this.lastReceived = Math.max(this.lastReceived, now);
        const inRoom = this._state === 'in_room';
        switch (msg.type) {
            case 'Challenge':
                if (this._state === 'connecting')
                    this.answerChallenge(msg.nonce);
                return;
            case 'Welcome':
                if (this._state === 'connecting' || this._state === 'challenged') {
                    const { type: _type, ...welcome } = msg;
                    this.onWelcome(now, welcome);
                }
                return;
            case 'Error':
                // The server closes the connection after both, so the session cannot go on on it.
                this.close(msg.code, sessionError(msg.code, msg.detail || errorName(msg.code)));
                return;
            case 'Kicked':
                if (msg.code === ErrorCode.RoomMoved) {
                    // The room moved: keep the session and wait to be pointed at its new server.
                    this.lose(now, msg.code, undefined);
                    return;
                }
                this.close(msg.code, sessionError(msg.code, `kicked: ${errorName(msg.code)}`));
                return;
            default:
                break;
        }
        if (!inRoom)
            return;
        switch (msg.type) {
            case 'Snapshot': {
                if (msg.tick > this._lastSnapshotTick)
                    this._lastSnapshotTick = msg.tick;
                if (!this.config.manualAck && msg.tick > this.ackTick)
                    this.ackTick = msg.tick;
                let drop = 0;
                while (drop < this.inputs.length && this.inputs[drop].tick <= msg.ack_seq)
                    drop++;
                if (drop > 0)
                    this.inputs.splice(0, drop);
                this.events.push({ type: 'snapshot', tick: msg.tick, ackSeq: msg.ack_seq, baseline: msg.baseline, payload: msg.payload });
                return;
            }
            case 'Frame':
                if (msg.n > this._lastFrame)
                    this._lastFrame = msg.n;
                this.events.push({ type: 'frame', n: msg.n, inputs: msg.inputs });
                return;
            case 'Desync':
                this.events.push({ type: 'desync', frame: msg.frame });
                return;
            case 'Started':
                this.events.push({ type: 'started', tick: msg.tick, players: msg.players });
                return;
            case 'Pong':
                this.onPong(now, msg.client_time_us);
                return;
            case 'Message':
                this.events.push({ type: 'message', payload: msg.payload });
                return;
            case 'MatchEnded':
                this.events.push({ type: 'matchEnded', result: msg.result });
                return;
            case 'Refused':
                this.events.push({ type: 'refused', seq: msg.seq, code: msg.code });
                return;
        }
    }
    answerChallenge(nonce) {
        const w = this._welcome;
        const resuming = this.resuming && w !== undefined;
        this._state = 'challenged';
        const generation = this.generation;
        const job = (async () => {
            const secret = resuming && w !== undefined
                ? await this.crypto.resumeKey(this.joinSecret, w.session_id, w.resume_counter)
                : this.joinSecret;
            return this.crypto.challengeMac(secret, nonce);
        })().then((mac) => {
            if (generation !== this.generation || this._state !== 'challenged' || !this.transportUp)
                return;
            this.outbox.push({ type: 'ChallengeResponse', mac });
            this.onWake?.();
        }, (e) => {
            if (generation !== this.generation || this._state === 'closed')
                return;
            const error = e instanceof TickroomError ? e : new SessionError(ErrorCode.Internal, `challenge MAC failed: ${String(e)}`);
            this.events.push({ type: 'error', error });
            if (this.transportUp)
                this.closeRequest = { closeCode: 1000, reason: 'crypto unavailable' };
            this.close(ErrorCode.Internal, new SessionError(error.code, error.message));
            this.onWake?.();
        });
        this.pending.add(job);
        void job.finally(() => this.pending.delete(job));
    }
    /** Resolves once no challenge MAC is being computed (for tests and orderly shutdowns). */
    async settled() {
        while (this.pending.size > 0)
            await Promise.all([...this.pending]);
    }
    /** Runs whatever timer is due at `now`; calling it early is harmless. */
    handleTimeout(now) {
        const due = (t) => t !== undefined && t <= now;
        switch (this._state) {
            case 'closed':
                return;
            case 'connecting':
            case 'challenged':
                if (this.transportUp && due(this.handshakeDeadline)) {
                    this.dropTransport(now, ErrorCode.HandshakeTimeout, 'handshake timeout');
                }
                return;
            case 'in_room':
                if (due(this.silenceDeadline())) {
                    this.dropTransport(now, ErrorCode.IdleTimeout, 'server silent');
                }
                else if (due(this.nextPing)) {
                    this.sendPing(now);
                }
                return;
            case 'reconnecting':
                if (due(this.windowDeadline())) {
                    this.close(ErrorCode.SessionExpired, sessionError(ErrorCode.SessionExpired, 'the reconnect window is over'));
                }
                else if (due(this.reconnectAt)) {
                    this.reconnectAt = undefined;
                    this.attempt++;
                    this.events.push({ type: 'reconnect', attempt: this.attempt });
                }
                return;
        }
    }
    /** When `handleTimeout` should run next; `undefined` when no timer runs. */
    pollTimeout() {
        switch (this._state) {
            case 'closed':
                return undefined;
            case 'connecting':
            case 'challenged':
                return this.transportUp ? this.handshakeDeadline : undefined;
            case 'in_room':
                return earliest(this.nextPing, this.silenceDeadline());
            case 'reconnecting':
                return earliest(this.reconnectAt, this.windowDeadline());
        }
    }
    /** The next message to send, oldest first. */
    pollTransmit() {
        return this.outbox.shift();
    }
    /**
     * The next message to send, encoded. A message that cannot be encoded (over 64 KiB) is
     * dropped with an `error` event.
     */
    pollTransmitBytes() {
        for (;;) {
            const msg = this.outbox.shift();
            if (msg === undefined)
                return undefined;
            try {
                return encodeClient(msg);
            }
            catch (e) {
                this.events.push({ type: 'error', error: e instanceof EncodeError ? e : new EncodeError('invalid', String(e)) });
            }
        }
    }
    /** The next event, oldest first. */
    pollEvent() {
        return this.events.shift();
    }
    /** A request to close the transport the session gave up on (once). */
    pollClose() {
        const r = this.closeRequest;
        this.closeRequest = undefined;
        return r;
    }
    /**
     * State sync: records `input` as the next input number (1, 2, 3, ...) and queues an `Input`
     * carrying up to the redundancy's newest unacked inputs, oldest first. Returns the input
     * number, or 0n (input ignored) unless in the room with a transport up.
     */
    sendInput(_now, input) {
        if (!this.canSend())
            return 0n;
        this.inputTick++;
        const tick = this.inputTick;
        this.inputs.push({ tick, bytes: input.slice() });
        if (this.inputs.length > MAX_BUFFERED_INPUTS)
            this.inputs.splice(0, this.inputs.length - MAX_BUFFERED_INPUTS);
        const roomMax = Math.max(1, this._welcome?.input_redundancy ?? MAX_BUFFERED_INPUTS);
        const count = Math.min(MAX_BUFFERED_INPUTS, Math.max(1, Math.min(this.config.inputRedundancy, roomMax)));
        const inputs = this.inputs.slice(Math.max(0, this.inputs.length - count)).map((i) => i.bytes);
        this.outbox.push({ type: 'Input', seq: this.takeSeq(), tick, ack_tick: this.ackTick, inputs });
        return tick;
    }
    /**
     * With `manualAck`: acknowledges the view of `tick` as decoded (the next `Input` carries the
     * newest acknowledged tick). Acknowledgements never move backwards.
     */
    ackSnapshot(tick) {
        if (tick > this.ackTick && tick <= this._lastSnapshotTick)
            this.ackTick = tick;
    }
    /** The snapshot tick the next `Input` acknowledges. */
    get ackedTick() {
        return this.ackTick;
    }
    /** Lockstep: queues `FrameInput` for `frame`. Ignored unless in the room. */
    sendFrameInput(frame, input) {
        if (this.canSend())
            this.outbox.push({ type: 'FrameInput', seq: this.takeSeq(), frame, input: input.slice() });
    }
    /** Lockstep: queues `Checksum` of the state after `frame`. Ignored unless in the room. */
    sendChecksum(frame, hash) {
        if (this.canSend())
            this.outbox.push({ type: 'Checksum', seq: this.takeSeq(), frame, hash });
    }
    /** Queues a custom reliable message; false (dropped) unless in the room. */
    sendMessage(payload) {
        if (!this.canSend())
            return false;
        this.outbox.push({ type: 'Message', seq: this.takeSeq(), payload: payload.slice() });
        return true;
    }
    /** Leaves for good: queues `Leave` (when in the room) and closes with `closed{code: null}`. */
    leave() {
        if (this._state === 'closed')
            return;
        const seq = this.canSend() ? this.takeSeq() : undefined;
        const wasUp = this.transportUp;
        this.close(null, null);
        if (seq !== undefined)
            this.outbox.push({ type: 'Leave', seq });
        if (wasUp)
            this.closeRequest = { closeCode: 1000, reason: 'leave' };
    }
    /** The current state. */
    get state() {
        return this._state;
    }
    /** Smoothed RTT in ms (EWMA with gain 1/8), once a Pong came back. */
    get rttMs() {
        return this.srtt;
    }
    /** The latest Welcome. */
    get welcome() {
        return this._welcome;
    }
    /** The highest lockstep frame received (0n if none). */
    get lastFrame() {
        return this._lastFrame;
    }
    /** The highest snapshot tick received (0n if none). */
    get lastSnapshotTick() {
        return this._lastSnapshotTick;
    }
    /** The seq the next message will carry; it only grows, across reconnects too. */
    get nextSeq() {
        return this._nextSeq;
    }
    /** How many resumes completed. */
    get reconnects() {
        return this._reconnects;
    }
    /** The transport is up (between `connected` and a loss). */
    get isTransportUp() {
        return this.transportUp;
    }
    /** Unacked inputs held for redundancy (for tests and debugging). */
    get bufferedInputs() {
        return this.inputs.length;
    }
    canSend() {
        return this._state === 'in_room' && this.transportUp;
    }
    takeSeq() {
        const seq = this._nextSeq;
        if (this._nextSeq < U64_MAX)
            this._nextSeq++;
        return seq;
    }
    onWelcome(now, w) {
        this._state = 'in_room';
        this.handshakeDeadline = undefined;
        // The server's view wins when it is ahead, ours when it is behind: seqs never repeat.
        if (w.next_seq > this._nextSeq)
            this._nextSeq = w.next_seq;
        this.lastReceived = now;
        this.nextPing = now + this.pingInterval();
        this.pings = [];
        this.firstLoss = undefined;
        this.reconnectAt = undefined;
        this.attempt = 0;
        if (w.tick < this._lastSnapshotTick) {
            // The room went back in time (taken over from its last image): snapshots past its tick
            // are of a lost timeline and may not be acknowledged as delta baselines.
            this._lastSnapshotTick = 0n;
            this.ackTick = 0n;
        }
        const resumed = this.resuming;
        if (resumed)
            this._reconnects++;
        this.resuming = false;
        // Keeps the new resume count: the next resume derives the next key.
        this._welcome = w;
        this.events.push({ type: resumed ? 'reconnected' : 'joined', welcome: w });
    }
    onPong(now, clientTimeUs) {
        // Only pongs for pings we sent (and not yet answered) count.
        const i = this.pings.indexOf(clientTimeUs);
        if (i < 0)
            return;
        this.pings.splice(i, 1);
        const sent = this.epoch + Number(clientTimeUs) / 1000;
        const sample = Math.max(0, now - sent);
        this.srtt = this.srtt === undefined ? sample : (this.srtt * 7 + sample) / 8;
        this.events.push({ type: 'pong', rttMs: sample });
    }
    sendPing(now) {
        const clientTimeUs = BigInt(Math.max(0, Math.round((now - this.epoch) * 1000)));
        this.outbox.push({ type: 'Ping', seq: this.takeSeq(), client_time_us: clientTimeUs });
        this.pings.push(clientTimeUs);
        if (this.pings.length > MAX_OUTSTANDING_PINGS)
            this.pings.splice(0, this.pings.length - MAX_OUTSTANDING_PINGS);
        // From `now`, not from the old deadline: after a long stall one ping is enough.
        this.nextPing = now + this.pingInterval();
    }
    pingInterval() {
        return Math.max(MIN_PING_INTERVAL_MS, this.config.pingIntervalMs);
    }
    silenceDeadline() {
        return this.lastReceived + this.config.serverSilenceTimeoutMs;
    }
    windowDeadline() {
        return this.firstLoss === undefined ? undefined : this.firstLoss + this.config.reconnectWindowMs;
    }
    /** The ceiling of the next backoff: `min(reconnectMax, reconnectBase * 2^attempt)`. */
    backoffCeilingMs(attempt = this.attempt) {
        return Math.min(this.config.reconnectMaxMs, this.config.reconnectBaseMs * 2 ** Math.min(attempt, 1000));
    }
    /** Full jitter: uniform in [0, ceiling] (in whole nanoseconds, as in Rust). */
    backoffDelay() {
        const ceilingNs = BigInt(Math.round(this.backoffCeilingMs() * 1e6));
        const r = this.rng.next();
        return Number(r % (ceilingNs + 1n)) / 1e6;
    }
    close(code, error) {
        this._state = 'closed';
        this.transportUp = false;
        this.generation++;
        this.resuming = false;
        this.handshakeDeadline = undefined;
        this.nextPing = undefined;
        this.reconnectAt = undefined;
        this.outbox = [];
        this.events.push({ type: 'closed', code, error });
    }
}
