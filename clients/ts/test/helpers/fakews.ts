// A minimal WebSocket server (RFC 6455, enough for tests) on loopback port 0, so the driver
// can be fed exactly the bytes a test wants: malformed, oversized or text frames.

import { createHash } from 'node:crypto';
import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo, Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export class FakeConn {
  readonly received: Uint8Array[] = [];
  closeCode: number | undefined;
  closed = false;
  onMessage: ((data: Uint8Array) => void) | undefined;
  onClose: ((code: number | undefined) => void) | undefined;
  private buf = Buffer.alloc(0);

  constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      if (!this.closed) {
        this.closed = true;
        this.onClose?.(this.closeCode);
      }
    });
    socket.on('error', () => undefined);
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0] as number;
      const b1 = this.buf[1] as number;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskLen = masked ? 4 : 0;
      if (this.buf.length < off + maskLen + len) return;
      const mask = this.buf.subarray(off, off + maskLen);
      const payload = Buffer.from(this.buf.subarray(off + maskLen, off + maskLen + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
      this.buf = this.buf.subarray(off + maskLen + len);
      if (opcode === 0x2) {
        const data = new Uint8Array(payload);
        this.received.push(data);
        this.onMessage?.(data);
      } else if (opcode === 0x8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
        if (!this.closed) {
          this.closed = true;
          this.frame(0x8, payload.subarray(0, 2));
          this.socket.end();
          this.onClose?.(this.closeCode);
        }
        return;
      } else if (opcode === 0x9) {
        this.frame(0xa, payload);
      }
    }
  }

  private frame(opcode: number, payload: Uint8Array): void {
    if (this.socket.destroyed) return;
    let header: Buffer;
    if (payload.length < 126) {
      header = Buffer.from([0x80 | opcode, payload.length]);
    } else if (payload.length < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode;
      header[1] = 126;
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x80 | opcode;
      header[1] = 127;
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    this.socket.write(Buffer.concat([header, payload]));
  }

  /** A binary message. */
  send(bytes: Uint8Array): void {
    this.frame(0x2, bytes);
  }

  /** A text message. */
  sendText(text: string): void {
    this.frame(0x1, Buffer.from(text));
  }

  /** A close frame with `code`, then the end of the socket. */
  close(code: number): void {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    this.frame(0x8, p);
    this.socket.end();
  }
}

export class FakeWsServer {
  readonly conns: FakeConn[] = [];
  onConnection: ((c: FakeConn) => void) | undefined;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor() {
    this.server = createServer((_req, res) => {
      res.statusCode = 426;
      res.end();
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      const key = req.headers['sec-websocket-key'];
      const accept = createHash('sha1').update(`${String(key)}${GUID}`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      const conn = new FakeConn(socket);
      this.conns.push(conn);
      this.onConnection?.(conn);
    });
  }

  static async start(): Promise<FakeWsServer> {
    const s = new FakeWsServer();
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  /** `127.0.0.1:port`. */
  get addr(): string {
    const a = this.server.address() as AddressInfo;
    return `127.0.0.1:${a.port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
