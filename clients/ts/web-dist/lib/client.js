// `TickroomClient`: the WebSocket IO driver around the sans-IO `ClientSession`. It opens
// `ws(s)://<ws_addr>/`, sends one message per binary frame, feeds received frames to the
// session, runs its timers, reopens the socket when the session asks (resume with backoff
// within the grace period) and hands out the session's events to listeners.
//
// Works unchanged with the browser's WebSocket and Node's (`--experimental-websocket` on
// Node 20, or any WHATWG-compatible constructor passed as `options.WebSocket`).
import { DecodeError, fromWsCloseCode, TransportError } from './errors.js';
import { joinSecretBytes } from './gateway.js';
import { ClientSession } from './session.js';
const OPEN = 1;
/** The default WebSocket URL of a match: `ws://host:port/` or `wss://host:port/`. */
export function defaultWsUrl(join) {
    return `${join.ws_tls === true ? 'wss' : 'ws'}://${join.ws_addr}/`;
}
/** An event-based WebSocket client for one room session. */
export class TickroomClient {
    constructor(join, options = {}) {
        /** The transport in use. */
        this.transport = 'websocket';
        this.ws = null;
        this.listeners = new Map();
        this.flushing = false;
        this.again = false;
        this.started = false;
        this.finished = false;
        const WS = options.WebSocket ?? globalThis.WebSocket;
        if (WS === undefined) {
            throw new TransportError('no WebSocket available (Node 20 needs --experimental-websocket, or pass options.WebSocket)');
        }
        this.WS = WS;
        this.now = options.now ?? (() => performance.now());
        this.joinInfo = join;
        this.urlOf = options.url ?? defaultWsUrl;
        this.url = this.urlOf(join);
        this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
        this.session = new ClientSession(options.session ?? {}, join.join_ticket, joinSecretBytes(join), this.now(), options.crypto);
        this.session.onWake = () => this.flush();
        this.lastState = this.session.state;
    }
    /** Listens to events of `type`; returns a function that removes the listener. */
    on(type, listener) {
        let set = this.listeners.get(type);
        if (set === undefined) {
            set = new Set();
            this.listeners.set(type, set);
        }
        set.add(listener);
        return () => {
            set?.delete(listener);
        };
    }
    /** Listens to every event. */
    onAny(listener) {
        return this.on('*', listener);
    }
    /** The next event of `type` (rejects after `timeoutMs`, default 10000). */
    next(type, timeoutMs = 10000) {
        return new Promise((resolve, reject) => {
            const off = this.on(type, (ev) => {
                clearTimeout(timer);
                off();
                resolve(ev);
            });
            const timer = setTimeout(() => {
                off();
                reject(new TransportError(`timed out after ${timeoutMs} ms waiting for '${type}'`));
            }, timeoutMs);
        });
    }
    /** Opens the socket and starts the handshake (Hello). Call once. */
    join() {
        if (this.started)
            return;
        this.started = true;
        this.openSocket();
    }
    /** State sync: sends one input (the session adds redundancy); returns its input number, 0n when not in the room. */
    sendInput(input) {
        const tick = this.session.sendInput(this.now(), input);
        this.flush();
        return tick;
    }
    /** Lockstep: the input for `frame`. */
    sendFrameInput(frame, input) {
        this.session.sendFrameInput(frame, input);
        this.flush();
    }
    /** Lockstep: the state hash after `frame`. */
    sendChecksum(frame, hash) {
        this.session.sendChecksum(frame, hash);
        this.flush();
    }
    /** A custom reliable message (the game's encoding); false when not in the room. */
    sendMessage(payload) {
        const ok = this.session.sendMessage(payload);
        this.flush();
        return ok;
    }
    /** Leaves the room for good; `closed` follows. */
    leave() {
        this.session.leave();
        this.flush();
    }
    /**
     * Debug and chaos hook: drops the socket as if the network failed (no Leave); the session
     * resumes by itself within the grace period.
     */
    dropConnection() {
        const ws = this.ws;
        if (ws === null)
            return;
        this.detach(ws);
        try {
            ws.close(4000, 'dropped by the client');
        }
        catch {
            // Already closing.
        }
        this.session.connectionLost(this.now(), null);
        this.flush();
    }
    /**
     * The room moved to another server (`GatewayClient.roomStatus` names it after its owner
     * died, or after the session was told `RoomMoved`): the session resumes there, the same
     * session, at once.
     */
    moveTo(room) {
        this.url = this.urlOf({ ...this.joinInfo, ws_addr: room.ws_addr, ws_tls: room.ws_tls });
        const ws = this.ws;
        const now = this.now();
        if (ws !== null) {
            this.detach(ws);
            try {
                ws.close(4000, 'the room moved');
            }
            catch {
                // Already closing.
            }
            this.session.connectionLost(now, null);
        }
        this.session.reconnectNow(now);
        this.flush();
    }
    /** The session state. */
    get state() {
        return this.session.state;
    }
    /** Smoothed RTT in ms, once a pong came back. */
    get rttMs() {
        return this.session.rttMs;
    }
    /** The latest Welcome. */
    get welcome() {
        return this.session.welcome;
    }
    /** The WebSocket URL in use. */
    get wsUrl() {
        return this.url;
    }
    emit(ev) {
        for (const key of [ev.type, '*']) {
            const set = this.listeners.get(key);
            if (set === undefined)
                continue;
            for (const listener of [...set]) {
                try {
                    listener(ev);
                }
                catch (e) {
                    // A listener's bug must not break the driver: report it out of band.
                    queueMicrotask(() => {
                        throw e;
                    });
                }
            }
        }
    }
    openSocket() {
        if (this.finished)
            return;
        let ws;
        try {
            ws = new this.WS(this.url);
        }
        catch (e) {
            this.emit({ type: 'error', error: new TransportError(`cannot open ${this.url}: ${String(e)}`) });
            this.session.connectionLost(this.now(), null);
            this.flush();
            return;
        }
        ws.binaryType = 'arraybuffer';
        this.ws = ws;
        this.connectTimer = setTimeout(() => {
            if (this.ws !== ws || ws.readyState === OPEN)
                return;
            this.detach(ws);
            try {
                ws.close();
            }
            catch {
                // Never opened.
            }
            this.session.connectionLost(this.now(), null);
            this.flush();
        }, this.connectTimeoutMs);
        ws.onopen = () => {
            if (this.ws !== ws)
                return;
            clearTimeout(this.connectTimer);
            this.session.connected(this.now());
            this.flush();
        };
        ws.onmessage = (ev) => {
            if (this.ws !== ws)
                return;
            const data = ev.data;
            if (data instanceof ArrayBuffer) {
                this.session.handleBytes(this.now(), new Uint8Array(data));
            }
            else if (ArrayBuffer.isView(data)) {
                this.session.handleBytes(this.now(), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
            }
            else {
                // A text frame (or a Blob) is not a tickroom message: a protocol violation.
                this.session.protocolViolation(this.now(), new DecodeError('malformed', `a ${typeof data === 'string' ? 'text' : 'non-binary'} WebSocket message is not a tickroom message`));
            }
            this.flush();
        };
        ws.onclose = (ev) => {
            if (this.ws !== ws)
                return;
            this.detach(ws);
            this.session.connectionLost(this.now(), fromWsCloseCode(ev.code) ?? null);
            this.flush();
        };
        ws.onerror = () => {
            // A close event follows.
        };
    }
    detach(ws) {
        if (this.ws === ws)
            this.ws = null;
        clearTimeout(this.connectTimer);
        ws.onopen = null;
        ws.onmessage = null;
        ws.onclose = null;
        ws.onerror = null;
    }
    closeSocket(code, reason) {
        const ws = this.ws;
        if (ws === null)
            return;
        this.detach(ws);
        try {
            ws.close(code, reason);
        }
        catch {
            try {
                ws.close();
            }
            catch {
                // Already closed.
            }
        }
    }
    /** Sends what the session queued, applies its close requests, hands out its events, re-arms the timer. */
    flush() {
        if (this.flushing) {
            this.again = true;
            return;
        }
        this.flushing = true;
        try {
            do {
                this.again = false;
                for (let bytes = this.session.pollTransmitBytes(); bytes !== undefined; bytes = this.session.pollTransmitBytes()) {
                    const ws = this.ws;
                    if (ws === null || ws.readyState !== OPEN)
                        continue;
                    try {
                        ws.send(bytes);
                    }
                    catch (e) {
                        this.detach(ws);
                        this.emit({ type: 'error', error: new TransportError(`send failed: ${String(e)}`) });
                        this.session.connectionLost(this.now(), null);
                    }
                }
                const close = this.session.pollClose();
                if (close !== undefined)
                    this.closeSocket(close.closeCode, close.reason);
                for (let ev = this.session.pollEvent(); ev !== undefined; ev = this.session.pollEvent()) {
                    if (ev.type === 'reconnect') {
                        this.closeSocket(4000, 'reconnecting');
                        this.openSocket();
                    }
                    else if (ev.type === 'closed') {
                        // A final Leave was sent above; the socket closes after its buffered data.
                        this.closeSocket(1000, 'closed');
                        this.finished = true;
                    }
                    this.emitState();
                    this.emit(ev);
                }
                this.emitState();
            } while (this.again);
        }
        finally {
            this.flushing = false;
        }
        this.arm();
    }
    emitState() {
        const state = this.session.state;
        if (state !== this.lastState) {
            this.lastState = state;
            this.emit({ type: 'state', state });
        }
    }
    arm() {
        const at = this.session.pollTimeout();
        if (at === this.timerAt)
            return;
        clearTimeout(this.timer);
        this.timerAt = at;
        if (at === undefined)
            return;
        this.timer = setTimeout(() => {
            this.timerAt = undefined;
            this.session.handleTimeout(this.now());
            this.flush();
        }, Math.max(0, at - this.now()));
    }
}
