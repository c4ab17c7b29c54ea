-- One atomic match-formation step over one mode's queue (key layout: see redis.rs).
-- ARGV: prefix, mode, abandon_before_ms, now_ms, matched_ticket_ttl_ms, room_ttl_ms,
--       sweep_limit, join_window_ms, kind, then per match slot: room_id, r1, r2 (random u32s
--       for the power-of-two-choices draw), and with kind 'groups' also: grouping JSON, n,
--       n tickets (kind 'backfill' the same, r1 and r2 unused); with kind 'private': code, seats.
-- Kind 'groups' claims the groups the gateway's matcher formed from a snapshot of the queue
-- (matching.rs): a group forms only if every one of its tickets is still queued, so two
-- gateways never place one ticket twice; a group that lost a ticket is skipped.
-- Kind 'backfill' puts the tickets into a running room with that many open seats (`open`,
-- set by open_seats.lua), if every one is still queued.
-- Kind 'private' places an empty private room under its join code (`code:<code>`, living
-- join_window_ms like the room until a join is reported), unless the code is taken.
-- A room lives room_ttl_ms, except on a server that reports joins (set `join_reporters`):
-- there it lives join_window_ms until `room_joined.lua` keeps it. The placed tickets are
-- published on `ticket_changes` (comma-separated), once per call. Every room enters the index
-- `rooms` (zset by created_ms) that the admin listing pages through.
-- Replies (all strings): still_queued, then per match formed:
--       room_id, server_id, n, then n times (ticket, player, enqueued_ms).
local p = ARGV[1]
local mode = ARGV[2]
local abandon_before = ARGV[3]
local now_text = ARGV[4]
local now = tonumber(now_text)
local matched_ttl = ARGV[5]
local room_ttl = ARGV[6]
local sweep_limit = ARGV[7]
local join_window = tonumber(ARGV[8])
local backfill = ARGV[9] == 'backfill'
local groups = ARGV[9] == 'groups' or backfill
local private = ARGV[9] == 'private'
local slot_list = {}
local i = 10
while i + 2 <= #ARGV do
  local slot = { room_id = ARGV[i], r1 = tonumber(ARGV[i + 1]), r2 = tonumber(ARGV[i + 2]) }
  i = i + 3
  if groups then
    slot.grouping = ARGV[i]
    local n = tonumber(ARGV[i + 1])
    slot.tickets = {}
    for k = 1, n do slot.tickets[k] = ARGV[i + 1 + k] end
    i = i + 2 + n
  elseif private then
    slot.code = ARGV[i]
    slot.seats = ARGV[i + 1]
    i = i + 2
  end
  slot_list[#slot_list + 1] = slot
end

local qk = p .. 'queue:' .. mode
local sk = p .. 'seen:' .. mode

-- Abandoned tickets (not polled since abandon_before) leave the queue for good.
local stale = redis.call('ZRANGEBYSCORE', sk, '-inf', '(' .. abandon_before, 'LIMIT', 0, sweep_limit)
for _, t in ipairs(stale) do
  local tk = p .. 'ticket:' .. t
  local player = redis.call('HGET', tk, 'player')
  redis.call('ZREM', qk, t)
  redis.call('ZREM', sk, t)
  redis.call('DEL', tk)
  if player and redis.call('GET', p .. 'player:' .. player) == t then
    redis.call('DEL', p .. 'player:' .. player)
  end
end

-- The admin listing's room index forgets rooms older than any record lives.
redis.call('ZREMRANGEBYSCORE', p .. 'rooms', '-inf', '(' .. string.format('%d', now - tonumber(room_ttl)))

-- Live servers (expired registrations are pruned from the set), ordered by id.
local servers = {}
for _, id in ipairs(redis.call('SMEMBERS', p .. 'servers')) do
  local raw = redis.call('GET', p .. 'server:' .. id)
  if raw then
    local info = cjson.decode(raw)
    if not info.draining then
      servers[#servers + 1] = { id = id, info = info }
    end
  else
    redis.call('SREM', p .. 'servers', id)
  end
end
table.sort(servers, function(a, b) return a.id < b.id end)

-- Power of two choices among servers with headroom; the first drawn wins a tie.
local function pick(r1, r2)
  local eligible = {}
  for i, s in ipairs(servers) do
    if s.info.load < s.info.capacity then eligible[#eligible + 1] = i end
  end
  local n = #eligible
  if n == 0 then return nil end
  if n == 1 then return eligible[1] end
  local a = r1 % n
  local b = r2 % (n - 1)
  if b >= a then b = b + 1 end
  local x, y = servers[eligible[a + 1]].info, servers[eligible[b + 1]].info
  if y.load * x.capacity < x.load * y.capacity then return eligible[b + 1] end
  return eligible[a + 1]
end

-- Takes exactly `tickets` if every one is still queued (and removes them from the queue);
-- otherwise changes nothing and returns nil.
local function claim(tickets)
  local got = {}
  for _, t in ipairs(tickets) do
    local score = redis.call('ZSCORE', qk, t)
    if not score then return nil end
    local f = redis.call('HMGET', p .. 'ticket:' .. t, 'player', 'enq', 'room')
    if not f[1] or f[3] then return nil end
    got[#got + 1] = { t, f[1], f[2], score }
  end
  for _, g in ipairs(got) do redis.call('ZREM', qk, g[1]) end
  return got
end

local out = {}
local left = {}

-- Records in the reply that room `room_id` on `server_id` took the tickets `got`, and marks
-- each placed there (matched, its player's room set); returns the players' ids.
local function assign(room_id, server_id, got)
  out[#out + 1] = room_id
  out[#out + 1] = server_id
  out[#out + 1] = tostring(#got)
  local players = {}
  for _, g in ipairs(got) do
    local tk = p .. 'ticket:' .. g[1]
    redis.call('HSET', tk, 'room', room_id)
    redis.call('PEXPIRE', tk, matched_ttl)
    redis.call('ZREM', sk, g[1])
    local pk = p .. 'player:' .. g[2]
    if redis.call('GET', pk) == g[1] then redis.call('DEL', pk) end
    local prk = p .. 'player_rooms:' .. g[2]
    redis.call('SADD', prk, room_id)
    redis.call('PEXPIRE', prk, room_ttl)
    players[#players + 1] = g[2]
    out[#out + 1] = g[1]
    out[#out + 1] = g[2]
    out[#out + 1] = g[3]
    left[#left + 1] = g[1]
  end
  return players
end

-- Records room `room_id` on servers[chosen] with the tickets `got`.
local function place(room_id, chosen, got, grouping)
  local rk = p .. 'room:' .. room_id
  local s = servers[chosen]
  s.info.load = s.info.load + #got
  local raw = cjson.encode(s.info)
  redis.call('SET', p .. 'server:' .. s.id, raw, 'KEEPTTL')
  local players = assign(room_id, s.id, got)
  redis.call('HSET', rk, 'server_id', s.id, 'server', raw, 'epoch', '1', 'mode', mode,
    'created_ms', now_text, 'players', table.concat(players, ','),
    'join_by', string.format('%d', now + join_window), 'joined', '0')
  if grouping and grouping ~= '' then redis.call('HSET', rk, 'grouping', grouping) end
  if redis.call('SISMEMBER', p .. 'join_reporters', s.id) == 1 then
    redis.call('PEXPIRE', rk, join_window)
  else
    redis.call('PEXPIRE', rk, room_ttl)
  end
  redis.call('ZADD', p .. 'rooms', now_text, room_id)
  local ok = p .. 'server_rooms:' .. s.id
  redis.call('SADD', ok, room_id)
  redis.call('PEXPIRE', ok, room_ttl)
end

-- Seats `got` in the running room `room_id` (it has the open seats: checked by the caller).
local function fill(room_id, got)
  local rk = p .. 'room:' .. room_id
  local r = redis.call('HMGET', rk, 'server_id', 'players', 'open')
  local players = r[2] or ''
  for _, player in ipairs(assign(room_id, r[1], got)) do
    if players == '' then players = player else players = players .. ',' .. player end
  end
  local open = tonumber(r[3] or '0') - #got
  redis.call('HSET', rk, 'players', players, 'open', tostring(open))
  if open <= 0 then redis.call('SREM', p .. 'open_rooms:' .. mode, room_id) end
end

for _, slot in ipairs(slot_list) do
  if backfill then
    local rk = p .. 'room:' .. slot.room_id
    local open = tonumber(redis.call('HGET', rk, 'open') or '0')
    if open >= #slot.tickets then
      local got = claim(slot.tickets)
      if got then fill(slot.room_id, got) end
    end
  else
    local chosen = pick(slot.r1, slot.r2)
    if not chosen then break end
    local got = nil
    local rk = p .. 'room:' .. slot.room_id
    if redis.call('EXISTS', rk) == 0 then
      if groups then
        got = claim(slot.tickets)
      elseif private and redis.call('SET', p .. 'code:' .. slot.code, slot.room_id, 'NX', 'PX',
          join_window) then
        got = {}
      end
    end
    if got then
      place(slot.room_id, chosen, got, slot.grouping)
      if private then redis.call('HSET', rk, 'code', slot.code, 'seats', slot.seats) end
    end
  end
end
if #left > 0 then redis.call('PUBLISH', p .. 'ticket_changes', table.concat(left, ',')) end
table.insert(out, 1, tostring(redis.call('ZCARD', qk)))
return out
