// Error codes and typed errors. The numbers are the server's stable `ErrorCode` wire numbers
// (protocol/src/error.rs): never renumber, only append.
/** Every tickroom error code by name, with its stable wire number. */
export const ErrorCode = {
    Unknown: 0,
    BadMessage: 1,
    VersionMismatch: 2,
    TicketInvalid: 3,
    TicketExpired: 4,
    TicketReused: 5,
    WrongServer: 6,
    RoomFull: 7,
    ServerBusy: 8,
    RateLimited: 9,
    Replay: 10,
    Kicked: 11,
    HandshakeTimeout: 12,
    IdleTimeout: 13,
    AuthFailed: 14,
    UnexpectedMessage: 15,
    MessageTooLarge: 16,
    SessionExpired: 17,
    ServerShutdown: 18,
    RoomClosed: 19,
    Desync: 20,
    SlowConsumer: 21,
    UnknownMode: 22,
    Unauthorized: 23,
    NotFound: 24,
    Conflict: 25,
    BadRequest: 26,
    Internal: 27,
    ServerGone: 28,
    JoinRefused: 29,
    SpectatorReadOnly: 30,
    RoomMoved: 31,
};
/** The machine names (the gateway's JSON `error` field), indexed by code. */
export const ERROR_NAMES = [
    'unknown',
    'bad_message',
    'version_mismatch',
    'ticket_invalid',
    'ticket_expired',
    'ticket_reused',
    'wrong_server',
    'room_full',
    'server_busy',
    'rate_limited',
    'replay',
    'kicked',
    'handshake_timeout',
    'idle_timeout',
    'auth_failed',
    'unexpected_message',
    'message_too_large',
    'session_expired',
    'server_shutdown',
    'room_closed',
    'desync',
    'slow_consumer',
    'unknown_mode',
    'unauthorized',
    'not_found',
    'conflict',
    'bad_request',
    'internal',
    'server_gone',
    'join_refused',
    'spectator_read_only',
    'room_moved',
];
/** WebSocket close codes for tickroom reasons start here: close code = base + error code. */
export const WS_CLOSE_CODE_BASE = 4000;
/** The machine name of `code` (`"unknown"` for numbers this build does not know). */
export function errorName(code) {
    return ERROR_NAMES[code] ?? 'unknown';
}
/** The WebSocket close code that carries `code`. */
export function wsCloseCode(code) {
    return WS_CLOSE_CODE_BASE + code;
}
/** The tickroom code a WebSocket close code carries; `undefined` outside 4000–4999. */
export function fromWsCloseCode(closeCode) {
    if (closeCode >= WS_CLOSE_CODE_BASE && closeCode <= 4999) {
        return closeCode - WS_CLOSE_CODE_BASE;
    }
    return undefined;
}
/** Any error carrying a tickroom error code. */
export class TickroomError extends Error {
    constructor(code, message) {
        super(message ?? errorName(code));
        this.name = 'TickroomError';
        this.code = code;
        this.codeName = errorName(code);
    }
}
/** The server refused or closed the session (`Error`, `Kicked`, a close code, or a timeout). */
export class SessionError extends TickroomError {
    constructor(code, message) {
        super(code, message);
        this.name = 'SessionError';
    }
}
/** Client and server speak different protocol versions or schemas (`VersionMismatch`). */
export class VersionMismatchError extends SessionError {
    constructor(message) {
        super(ErrorCode.VersionMismatch, message ?? 'client and server speak different protocol versions');
        this.name = 'VersionMismatchError';
    }
}
/** The session error for `code`: a `VersionMismatchError` for a version mismatch. */
export function sessionError(code, message) {
    return code === ErrorCode.VersionMismatch
        ? new VersionMismatchError(message)
        : new SessionError(code, message);
}
/** Bytes that are not a valid message: `code` is `BadMessage` (`MessageTooLarge` when too large). */
export class DecodeError extends TickroomError {
    constructor(kind, message) {
        super(kind === 'too_large' ? ErrorCode.MessageTooLarge : ErrorCode.BadMessage, message);
        this.name = 'DecodeError';
        this.kind = kind;
    }
}
/** A message could not be encoded (too large for the direction's limit, or a value out of range). */
export class EncodeError extends TickroomError {
    constructor(kind, message) {
        super(kind === 'too_large' ? ErrorCode.MessageTooLarge : ErrorCode.BadMessage, message);
        this.name = 'EncodeError';
        this.kind = kind;
    }
}
/** The gateway answered with an error: HTTP status, the code and message of its JSON body. */
export class GatewayError extends TickroomError {
    constructor(status, code, message, retryAfterMs) {
        super(code, message);
        this.name = 'GatewayError';
        this.status = status;
        this.retryAfterMs = retryAfterMs;
    }
}
/** A transport failure below the protocol (network, WebSocket, HTTP, missing WebCrypto). */
export class TransportError extends TickroomError {
    constructor(message, code = ErrorCode.Unknown) {
        super(code, message);
        this.name = 'TransportError';
    }
}
