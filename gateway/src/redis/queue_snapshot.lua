-- The oldest tickets of a mode's queue with what the matcher reads (matching.rs); the groups it
-- forms are claimed atomically by form_matches.lua. Ghosts (queue entries whose ticket
-- expired) leave the queue on the way.
-- Also the mode's running rooms with open seats (backfill), pruning rooms that are gone, whose
-- owner died, or that are full again.
-- ARGV: prefix, mode, limit
-- Replies: n, then n × (room_id, open seats), then per ticket: ticket, enqueued_ms, player,
--          properties JSON ('' for none), party id ('' for none)
local p, mode = ARGV[1], ARGV[2]
local qk = p .. 'queue:' .. mode
local out = {}
local ok = p .. 'open_rooms:' .. mode
for _, room_id in ipairs(redis.call('SMEMBERS', ok)) do
  local r = redis.call('HMGET', p .. 'room:' .. room_id, 'server_id', 'open')
  local open = tonumber(r[2] or '0') or 0
  if r[1] and open > 0 and redis.call('EXISTS', p .. 'server:' .. r[1]) == 1 then
    out[#out + 1] = room_id
    out[#out + 1] = tostring(open)
  else
    redis.call('SREM', ok, room_id)
  end
end
table.insert(out, 1, tostring(#out / 2))
local head = redis.call('ZRANGE', qk, 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
for i = 1, #head, 2 do
  local t = head[i]
  local f = redis.call('HMGET', p .. 'ticket:' .. t, 'player', 'props', 'party')
  if f[1] then
    out[#out + 1] = t
    out[#out + 1] = head[i + 1]
    out[#out + 1] = f[1]
    out[#out + 1] = f[2] or ''
    out[#out + 1] = f[3] or ''
  else
    redis.call('ZREM', qk, t)
    redis.call('ZREM', p .. 'seen:' .. mode, t)
  end
end
return out
