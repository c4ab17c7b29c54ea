-- Queues tickets, all or none: one player's, or a whole party's (every member at once, each
-- ticket naming the party). A player is refused who already waits under another ticket, was
-- placed in a room whose join window is still open, or is in max_open_rooms open rooms; rooms
-- whose owner died do not count (their players queue again) and leave the player's room set.
-- The first refusal of any player is the answer and nothing is written.
-- ARGV: prefix, mode, enqueued_ms, queued_ticket_ttl_ms, max_queued_per_mode, max_open_rooms,
--       party id ('' for none), leader ('' for none), party_ttl_ms, n,
--       then n × (ticket, player, metadata JSON or '', properties JSON or '')
-- Replies: {'queued'} | {'already', ticket} | {'pending', room_id, retry_after_ms}
--        | {'too_many_rooms', open} | {'collision'} | {'full'} | {'party_changed'}
local p, mode, enq, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local party, leader = ARGV[7], ARGV[8]
local n = tonumber(ARGV[10])
local now = tonumber(enq)
local entries = {}
for i = 0, n - 1 do
  local b = 11 + i * 4
  entries[#entries + 1] = { t = ARGV[b], player = ARGV[b + 1], meta = ARGV[b + 2], props = ARGV[b + 3] }
end

if party ~= '' then
  local f = redis.call('HMGET', p .. 'party:' .. party, 'leader', 'members')
  local players = {}
  for _, e in ipairs(entries) do players[#players + 1] = e.player end
  if not f[1] or f[1] ~= leader or f[2] ~= table.concat(players, ',') then
    return { 'party_changed' }
  end
end

for _, e in ipairs(entries) do
  local existing = redis.call('GET', p .. 'player:' .. e.player)
  if existing then
    -- A matched (or expired) ticket does not count here: its room is checked below.
    local f = redis.call('HMGET', p .. 'ticket:' .. existing, 'player', 'room')
    if f[1] and not f[2] then return { 'already', existing } end
  end
  local prk = p .. 'player_rooms:' .. e.player
  local open = 0
  for _, room_id in ipairs(redis.call('SMEMBERS', prk)) do
    local r = redis.call('HMGET', p .. 'room:' .. room_id, 'server_id', 'join_by')
    if r[1] and redis.call('EXISTS', p .. 'server:' .. r[1]) == 1 then
      open = open + 1
      local join_by = tonumber(r[2] or '0') or 0
      if join_by > now then
        return { 'pending', room_id, string.format('%d', join_by - now) }
      end
    else
      redis.call('SREM', prk, room_id)
    end
  end
  if open >= tonumber(ARGV[6]) then return { 'too_many_rooms', tostring(open) } end
  if redis.call('EXISTS', p .. 'ticket:' .. e.t) == 1 then return { 'collision' } end
end
local qk = p .. 'queue:' .. mode
if redis.call('ZCARD', qk) + n > tonumber(ARGV[5]) then return { 'full' } end

local pairs_out = {}
for _, e in ipairs(entries) do
  local tk = p .. 'ticket:' .. e.t
  redis.call('HSET', tk, 'player', e.player, 'mode', mode, 'enq', enq)
  if e.meta ~= '' then redis.call('HSET', tk, 'meta', e.meta) end
  if e.props ~= '' then redis.call('HSET', tk, 'props', e.props) end
  if party ~= '' then redis.call('HSET', tk, 'party', party) end
  redis.call('PEXPIRE', tk, ttl)
  redis.call('ZADD', qk, enq, e.t)
  redis.call('ZADD', p .. 'seen:' .. mode, enq, e.t)
  redis.call('SET', p .. 'player:' .. e.player, e.t, 'PX', ttl)
  pairs_out[#pairs_out + 1] = e.player .. ':' .. e.t
end
if party ~= '' then
  local pk = p .. 'party:' .. party
  redis.call('HSET', pk, 'tickets', table.concat(pairs_out, ','))
  redis.call('PEXPIRE', pk, ARGV[9])
end
return { 'queued' }
