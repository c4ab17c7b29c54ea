// The session's two key operations, through WebCrypto (`globalThis.crypto.subtle`), as in
// protocol/src/token.rs:
//   challenge_mac = HMAC-SHA256(key = secret, data = "tickroom challenge v1" || nonce)
//   resume_key    = HKDF-SHA256(ikm = join secret, salt = "tickroom resume key v1",
//                               info = session_id as u64 LE || resume_counter as u32 LE), 32 bytes
// Browsers expose WebCrypto only in secure contexts (https, or http on localhost).
import { ErrorCode, TransportError } from './errors.js';
const CHALLENGE_LABEL = new TextEncoder().encode('tickroom challenge v1');
const RESUME_SALT = new TextEncoder().encode('tickroom resume key v1');
function subtle() {
    const s = globalThis.crypto?.subtle;
    if (s === undefined) {
        throw new TransportError('WebCrypto (crypto.subtle) is not available: a browser page needs a secure context (https:// or http://localhost)', ErrorCode.Internal);
    }
    return s;
}
function owned(bytes) {
    const out = new Uint8Array(bytes.length);
    out.set(bytes);
    return out;
}
/** HMAC-SHA256 of `data` under `key`. */
export async function hmacSha256(key, data) {
    const s = subtle();
    const k = await s.importKey('raw', owned(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await s.sign('HMAC', k, owned(data)));
}
/** HKDF-SHA256 (RFC 5869) of `ikm` with `salt` and `info`: 32 bytes. */
export async function hkdfSha256(ikm, salt, info) {
    const s = subtle();
    const k = await s.importKey('raw', owned(ikm), 'HKDF', false, ['deriveBits']);
    const bits = await s.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: owned(salt), info: owned(info) }, k, 256);
    return new Uint8Array(bits);
}
/** The challenge response: MAC of the server's nonce under the join secret or a resume key. */
export async function challengeMac(secret, nonce) {
    const data = new Uint8Array(CHALLENGE_LABEL.length + nonce.length);
    data.set(CHALLENGE_LABEL);
    data.set(nonce, CHALLENGE_LABEL.length);
    return hmacSha256(secret, data);
}
/**
 * The key that answers the challenge of the next resume of `sessionId`: `counter` is the
 * `resume_counter` of the latest Welcome (the server also accepts the previous one).
 */
export async function resumeKey(joinSecret, sessionId, counter) {
    const info = new Uint8Array(12);
    const view = new DataView(info.buffer);
    view.setBigUint64(0, BigInt.asUintN(64, sessionId), true);
    view.setUint32(8, counter >>> 0, true);
    return hkdfSha256(joinSecret, RESUME_SALT, info);
}
/** `n` random bytes from the platform's CSPRNG. */
export function randomBytes(n) {
    const c = globalThis.crypto;
    if (c === undefined)
        throw new TransportError('crypto.getRandomValues is not available', ErrorCode.Internal);
    return c.getRandomValues(new Uint8Array(n));
}
/** A fresh device id: 16 random bytes as 32 hex digits (what `POST /v1/auth/device` requires). */
export function newDeviceId() {
    let s = '';
    for (const b of randomBytes(16))
        s += b.toString(16).padStart(2, '0');
    return s;
}
