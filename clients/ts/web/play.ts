// The arena in a browser: log in with a per-tab device id, queue for a duel, join over
// WebSocket, draw the snapshots on a canvas, and send the stick from the keyboard (arrows/WASD,
// space dashes) or touch (drag). The session resumes by itself when the socket drops.
//
// The gateway is the page's own origin unless `?server=http://host:port` says otherwise;
// `?mode=` picks the mode (default `duel`). `window.__tickroom` exposes the state for tests and
// debugging, with `dropConnection()` to cut the socket.

import {
  ARENA_HALF_SIZE_CM,
  ArenaSnapshot,
  ArenaViewTracker,
  DASH_BUTTON,
  GatewayClient,
  ORB_RADIUS_CM,
  PLAYER_RADIUS_CM,
  TickroomClient,
  TickroomError,
  encodeArenaInput,
  errorName,
  newDeviceId,
} from '../src/index.js';

interface PlayerView {
  slot: number;
  x: number;
  y: number;
  vx: number;
  vy: number;
  score: number;
}

/** What tests and people can read (plain numbers and strings, no bigints). */
interface DebugState {
  phase: string;
  connection: string;
  transport: string;
  server: string;
  mode: string;
  roomId: string | null;
  slot: number | null;
  sessionId: string | null;
  resumeCounter: number | null;
  reconnects: number;
  disconnects: number;
  rttMs: number | null;
  jitterMs: number | null;
  tick: string | null;
  snapshots: number;
  decodeErrors: number;
  players: PlayerView[];
  me: PlayerView | null;
  opponent: PlayerView | null;
  stick: { x: number; y: number; buttons: number };
  nextSeq: string | null;
  lastError: string | null;
  dropConnection: () => void;
  leave: () => void;
}

const params = new URLSearchParams(location.search);
const server = params.get('server') ?? location.origin;
const mode = params.get('mode') ?? 'duel';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>('arena');
const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
const statusLine = $('status');
const again = $<HTMLButtonElement>('again');

let client: TickroomClient | undefined;
let tracker = new ArenaViewTracker();
let view: ArenaSnapshot | undefined;
let lastSnapshotAt: number | undefined;
let inputTimer: ReturnType<typeof setInterval> | undefined;

const debug: DebugState = {
  phase: 'loading',
  connection: 'none',
  transport: 'websocket',
  server,
  mode,
  roomId: null,
  slot: null,
  sessionId: null,
  resumeCounter: null,
  reconnects: 0,
  disconnects: 0,
  rttMs: null,
  jitterMs: null,
  tick: null,
  snapshots: 0,
  decodeErrors: 0,
  players: [],
  me: null,
  opponent: null,
  stick: { x: 0, y: 0, buttons: 0 },
  nextSeq: null,
  lastError: null,
  dropConnection: () => client?.dropConnection(),
  leave: () => client?.leave(),
};
(window as unknown as { __tickroom: DebugState }).__tickroom = debug;

function setPhase(phase: string, message = ''): void {
  debug.phase = phase;
  document.body.dataset.phase = phase;
  statusLine.textContent = message;
  hud();
}

function fmtMs(v: number | null): string {
  return v === null ? '–' : `${v.toFixed(1)} ms`;
}

function hud(): void {
  $('hud-state').textContent = debug.phase === 'in_room' || debug.phase === 'reconnecting' ? debug.connection : debug.phase;
  $('hud-transport').textContent = debug.transport;
  $('hud-rtt').textContent = fmtMs(debug.rttMs);
  $('hud-jitter').textContent = fmtMs(debug.jitterMs);
  $('hud-room').textContent = debug.roomId ?? '–';
  $('hud-slot').textContent = debug.slot === null ? '–' : String(debug.slot);
  $('hud-score').textContent = debug.me === null ? '–' : String(debug.me.score);
  $('hud-resumes').textContent = String(debug.reconnects);
  const b = document.body.dataset;
  b.connection = debug.connection;
  b.reconnects = String(debug.reconnects);
  if (debug.opponent !== null) {
    b.opponentX = String(debug.opponent.x);
    b.opponentY = String(debug.opponent.y);
  }
  if (debug.me !== null) {
    b.meX = String(debug.me.x);
    b.meY = String(debug.me.y);
  }
}

// --- input: keyboard and touch ---

const keys = new Set<string>();
let touchStick: { x: number; y: number } | null = null;
let touchOrigin: { x: number; y: number; id: number } | null = null;

const KEY_DIRS: Record<string, [number, number]> = {
  ArrowLeft: [-1, 0],
  KeyA: [-1, 0],
  ArrowRight: [1, 0],
  KeyD: [1, 0],
  ArrowUp: [0, 1],
  KeyW: [0, 1],
  ArrowDown: [0, -1],
  KeyS: [0, -1],
};

function stick(): { x: number; y: number; buttons: number } {
  let x = 0;
  let y = 0;
  for (const k of keys) {
    const d = KEY_DIRS[k];
    if (d !== undefined) {
      x += d[0];
      y += d[1];
    }
  }
  let sx = Math.sign(x) * 127;
  let sy = Math.sign(y) * 127;
  if (touchStick !== null) {
    sx = touchStick.x;
    sy = touchStick.y;
  }
  return { x: sx, y: sy, buttons: keys.has('Space') ? DASH_BUTTON : 0 };
}

window.addEventListener('keydown', (e) => {
  if (KEY_DIRS[e.code] !== undefined || e.code === 'Space') {
    keys.add(e.code);
    e.preventDefault();
    sendStick();
  }
});
window.addEventListener('keyup', (e) => {
  if (keys.delete(e.code)) {
    e.preventDefault();
    sendStick();
  }
});
window.addEventListener('blur', () => keys.clear());

const TOUCH_RANGE_PX = 60;
canvas.addEventListener('touchstart', (e) => {
  const t = e.changedTouches[0];
  if (t !== undefined && touchOrigin === null) {
    touchOrigin = { x: t.clientX, y: t.clientY, id: t.identifier };
    touchStick = { x: 0, y: 0 };
  }
  e.preventDefault();
}, { passive: false });
canvas.addEventListener('touchmove', (e) => {
  for (const t of Array.from(e.changedTouches)) {
    if (touchOrigin === null || t.identifier !== touchOrigin.id) continue;
    const dx = t.clientX - touchOrigin.x;
    const dy = t.clientY - touchOrigin.y;
    const scale = 127 / TOUCH_RANGE_PX;
    touchStick = { x: Math.max(-127, Math.min(127, Math.round(dx * scale))), y: Math.max(-127, Math.min(127, Math.round(-dy * scale))) };
  }
  e.preventDefault();
  sendStick();
}, { passive: false });
const endTouch = (e: TouchEvent): void => {
  for (const t of Array.from(e.changedTouches)) {
    if (touchOrigin !== null && t.identifier === touchOrigin.id) {
      touchOrigin = null;
      touchStick = null;
    }
  }
  sendStick();
};
canvas.addEventListener('touchend', endTouch);
canvas.addEventListener('touchcancel', endTouch);

function sendStick(): void {
  const s = stick();
  debug.stick = s;
  if (client?.state === 'in_room') client.sendInput(encodeArenaInput(s.x, s.y, s.buttons));
}

// --- drawing ---

function draw(): void {
  const size = Math.min(window.innerWidth - 16, window.innerHeight - 140, 720);
  const px = Math.max(200, Math.floor(size));
  if (canvas.width !== px) {
    canvas.width = px;
    canvas.height = px;
  }
  const scale = px / (2 * ARENA_HALF_SIZE_CM);
  const sx = (x: number): number => (x + ARENA_HALF_SIZE_CM) * scale;
  const sy = (y: number): number => (ARENA_HALF_SIZE_CM - y) * scale; // y points up
  ctx.clearRect(0, 0, px, px);
  ctx.strokeStyle = '#2e3440';
  ctx.lineWidth = 1;
  for (let g = -ARENA_HALF_SIZE_CM; g <= ARENA_HALF_SIZE_CM; g += 1000) {
    ctx.beginPath();
    ctx.moveTo(sx(g), 0);
    ctx.lineTo(sx(g), px);
    ctx.moveTo(0, sy(g));
    ctx.lineTo(px, sy(g));
    ctx.stroke();
  }
  if (view !== undefined) {
    ctx.fillStyle = '#ebcb8b';
    for (const [x, y] of view.orbs) {
      ctx.beginPath();
      ctx.arc(sx(x), sy(y), Math.max(3, ORB_RADIUS_CM * scale), 0, Math.PI * 2);
      ctx.fill();
    }
    for (const p of view.players) {
      const mine = p.slot === debug.slot;
      ctx.fillStyle = mine ? '#88c0d0' : '#bf616a';
      ctx.beginPath();
      ctx.arc(sx(p.pos[0]), sy(p.pos[1]), Math.max(5, PLAYER_RADIUS_CM * scale * 1.5), 0, Math.PI * 2);
      ctx.fill();
      ctx.fillStyle = '#eceff4';
      ctx.font = '12px system-ui, sans-serif';
      ctx.fillText(`${mine ? 'you' : `p${p.slot}`} ${p.score}`, sx(p.pos[0]) + 10, sy(p.pos[1]) - 10);
    }
  }
  if (debug.phase !== 'in_room') {
    ctx.fillStyle = 'rgba(16, 20, 28, 0.6)';
    ctx.fillRect(0, 0, px, px);
    ctx.fillStyle = '#eceff4';
    ctx.font = '20px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText(debug.phase.replace('_', ' '), px / 2, px / 2);
    ctx.textAlign = 'start';
  }
  requestAnimationFrame(draw);
}

// --- the session ---

function playerView(p: { slot: number; pos: [number, number]; vel: [number, number]; score: number }): PlayerView {
  return { slot: p.slot, x: p.pos[0], y: p.pos[1], vx: p.vel[0], vy: p.vel[1], score: p.score };
}

function deviceId(): string {
  // One player per tab: the id lives in sessionStorage (two tabs can play each other).
  try {
    const saved = sessionStorage.getItem('tickroom.device');
    if (saved !== null) return saved;
    const id = newDeviceId();
    sessionStorage.setItem('tickroom.device', id);
    return id;
  } catch {
    return newDeviceId();
  }
}

function describe(e: unknown): string {
  if (e instanceof TickroomError) return `${e.codeName}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

async function play(): Promise<void> {
  again.hidden = true;
  tracker = new ArenaViewTracker();
  view = undefined;
  lastSnapshotAt = undefined;
  debug.snapshots = 0;
  debug.players = [];
  debug.me = null;
  debug.opponent = null;
  const gateway = new GatewayClient(server);
  setPhase('login', `logging in at ${server}…`);
  const login = await gateway.loginDevice(deviceId());
  setPhase('queued', `waiting for an opponent (${mode})…`);
  const ticket = await gateway.queueWhenFree(login.session_token, mode, { timeoutMs: 120000 });
  const match = await gateway.waitMatch(login.session_token, ticket, { timeoutMs: 120000 });
  debug.roomId = String(match.room_id);
  setPhase('connecting', `joining room ${match.room_id}…`);
  const c = new TickroomClient(match, { session: { manualAck: true } });
  client = c;
  c.on('state', ({ state }) => {
    debug.connection = state;
    if (state === 'reconnecting') setPhase('reconnecting', 'connection lost: resuming…');
    hud();
  });
  c.on('joined', ({ welcome }) => {
    debug.slot = welcome.slot;
    debug.sessionId = welcome.session_id.toString();
    debug.resumeCounter = welcome.resume_counter;
    setPhase('in_room', 'waiting for the match to start…');
    const interval = 1000 / Math.max(1, welcome.tick_rate_hz);
    clearInterval(inputTimer);
    inputTimer = setInterval(sendStick, interval);
  });
  c.on('reconnected', ({ welcome }) => {
    debug.reconnects = c.session.reconnects;
    debug.sessionId = welcome.session_id.toString();
    debug.resumeCounter = welcome.resume_counter;
    setPhase('in_room', 'resumed');
  });
  c.on('started', ({ players }) => {
    statusLine.textContent = `started with ${players} players`;
  });
  c.on('disconnected', () => {
    debug.disconnects++;
  });
  c.on('snapshot', (s) => {
    const now = performance.now();
    if (lastSnapshotAt !== undefined) {
      const expected = 1000 / Math.max(1, c.welcome?.tick_rate_hz ?? 30);
      const d = Math.abs(now - lastSnapshotAt - expected);
      debug.jitterMs = debug.jitterMs === null ? d : debug.jitterMs + (d - debug.jitterMs) / 16;
    }
    lastSnapshotAt = now;
    try {
      view = tracker.apply(s.tick, s.baseline, s.payload);
      c.session.ackSnapshot(s.tick);
    } catch (e) {
      debug.decodeErrors++;
      debug.lastError = describe(e);
      return;
    }
    debug.snapshots++;
    debug.tick = s.tick.toString();
    debug.players = view.players.map(playerView);
    debug.me = debug.players.find((p) => p.slot === debug.slot) ?? null;
    debug.opponent = debug.players.find((p) => p.slot !== debug.slot) ?? null;
    debug.nextSeq = c.session.nextSeq.toString();
    hud();
  });
  c.on('pong', () => {
    debug.rttMs = c.rttMs ?? null;
    hud();
  });
  c.on('error', ({ error }) => {
    debug.lastError = describe(error);
  });
  c.on('closed', ({ code, error }) => {
    clearInterval(inputTimer);
    debug.connection = 'closed';
    if (error !== null) debug.lastError = describe(error);
    setPhase('closed', code === null ? 'you left the room' : `the session ended: ${errorName(code)}`);
    again.hidden = false;
  });
  c.join();
}

again.addEventListener('click', () => {
  void start();
});

async function start(): Promise<void> {
  try {
    await play();
  } catch (e) {
    debug.lastError = describe(e);
    setPhase('error', `could not start: ${describe(e)}`);
    again.hidden = false;
  }
}

requestAnimationFrame(draw);
void start();
