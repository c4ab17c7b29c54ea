// The tickroom status page: the fleet, the rooms and the recent errors from the admin API,
// refreshed every 2 s, with a drain/undrain button per server. The admin token lives only in
// this closure (never in storage or cookies): reloading the page forgets it. Everything the
// server sends is shown as text (textContent), never as HTML.
'use strict';
(() => {
  const REFRESH_MS = 2000;
  const ROOMS_SHOWN = 100;
  let token = null;
  let timer = null;
  // Bumped on every connect/forget, so an answer to an old token's request is dropped.
  let generation = 0;

  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path) {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
      credentials: 'omit',
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.message) || `HTTP ${response.status}`);
    }
    return body;
  }

  function setState(text, kind) {
    const state = $('state');
    state.textContent = text;
    state.className = `state ${kind}`;
  }

  function td(text, cls) {
    const cell = document.createElement('td');
    cell.textContent = text === null || text === undefined ? '–' : String(text);
    if (cls) cell.className = cls;
    return cell;
  }

  function tag(text, cls) {
    const span = document.createElement('span');
    span.className = `tag ${cls || ''}`;
    span.textContent = text;
    return span;
  }

  function age(ms) {
    if (ms === null || ms === undefined) return '–';
    const s = Math.floor(ms / 1000);
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min`;
    return `${Math.floor(s / 3600)} h`;
  }

  function renderServers(servers) {
    $('server-count').textContent = String(servers.length);
    const rows = servers.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.server = s.server_id;
      if (s.draining) tr.className = 'draining';
      tr.append(td(s.server_id, 'mono'), td(s.version), td(`${s.load} / ${s.capacity}`, 'num'), td(s.rooms, 'num'));
      const state = document.createElement('td');
      if (s.drain_requested) state.append(tag('drain requested', 'warn'));
      else if (s.draining) state.append(tag('overloaded', 'bad'));
      else state.append(tag('taking rooms'));
      tr.append(state);
      tr.append(td(`quic ${s.quic_addr} · ws${s.ws_tls ? 's' : ''} ${s.ws_addr}`, 'mono'));
      tr.append(td(s.started_ms ? age(Date.now() - s.started_ms) : null, 'num'));
      const action = document.createElement('td');
      const button = document.createElement('button');
      const undrain = Boolean(s.drain_requested);
      button.type = 'button';
      button.className = undrain ? 'undrain' : 'drain';
      button.dataset.server = s.server_id;
      button.textContent = undrain ? 'Undrain' : 'Drain';
      button.addEventListener('click', () => drain(s.server_id, !undrain, button));
      action.append(button);
      tr.append(action);
      return tr;
    });
    $('servers').replaceChildren(...rows);
  }

  function renderRooms(page) {
    $('room-count').textContent = String(page.total);
    const rows = page.rooms.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.room = String(r.room_id);
      tr.append(
        td(r.room_id, 'mono'),
        td(r.mode),
        td(r.players.length, 'num'),
        td(r.server_id + (r.owner_alive ? '' : ' (gone)'), 'mono'),
        td(r.epoch, 'num'),
        td(age(r.age_ms), 'num'),
        td(r.joined ? 'yes' : 'no'),
      );
      return tr;
    });
    $('rooms').replaceChildren(...rows);
    $('rooms-shown').textContent =
      page.total > page.rooms.length ? `newest ${page.rooms.length} of ${page.total} shown` : '';
  }

  function renderErrors(answer) {
    const errors = answer.errors;
    $('error-count').textContent = String(errors.length);
    const rows = errors.map((e) => {
      const tr = document.createElement('tr');
      const source = e.server_id ? `${e.source} ${e.server_id}` : e.source;
      tr.append(
        td(new Date(e.time_ms).toLocaleTimeString(), 'num'),
        td(source),
        td(e.status ?? null, 'num'),
        td(e.error),
        td(e.what, 'mono'),
        td(e.message),
      );
      return tr;
    });
    $('errors').replaceChildren(...rows);
  }

  async function refresh() {
    clearTimeout(timer);
    timer = null;
    const mine = generation;
    if (token === null) return;
    try {
      const [servers, rooms, errors] = await Promise.all([
        api('GET', '/v1/admin/servers'),
        api('GET', `/v1/admin/rooms?limit=${ROOMS_SHOWN}`),
        api('GET', '/v1/admin/errors'),
      ]);
      if (mine !== generation) return;
      renderServers(servers.servers);
      renderRooms(rooms);
      renderErrors(errors);
      setState('connected', 'ok');
      $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (mine !== generation) return;
      if (e instanceof ApiError && e.status === 401) {
        forget('token refused');
        return;
      }
      setState(`error: ${e.message}`, 'bad');
    }
    if (mine === generation && token !== null) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function drain(serverId, draining, button) {
    button.disabled = true;
    try {
      await api('POST', `/v1/admin/servers/${encodeURIComponent(serverId)}/${draining ? 'drain' : 'undrain'}`);
    } catch (e) {
      setState(`${draining ? 'drain' : 'undrain'} ${serverId} failed: ${e.message}`, 'bad');
    }
    button.disabled = false;
    await refresh();
  }

  function forget(why) {
    generation += 1;
    token = null;
    clearTimeout(timer);
    timer = null;
    $('session').hidden = true;
    $('login').hidden = false;
    for (const id of ['servers', 'rooms', 'errors']) $(id).replaceChildren();
    for (const id of ['server-count', 'room-count', 'error-count']) $(id).textContent = '–';
    $('rooms-shown').textContent = '';
    setState(why, why === 'not connected' ? 'off' : 'bad');
  }

  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('token');
    const value = input.value.trim();
    input.value = '';
    if (value === '') return;
    generation += 1;
    token = value;
    $('login').hidden = true;
    $('session').hidden = false;
    setState('connecting…', 'off');
    refresh();
  });
  $('forget').addEventListener('click', () => forget('not connected'));
})();
