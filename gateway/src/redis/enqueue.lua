-- Queues a ticket unless its player already waits under another one, was placed in a room
-- whose join window is still open, or is in max_open_rooms open rooms. Rooms whose owner
-- died do not count (their players queue again) and leave the player's room set.
-- ARGV: prefix, ticket, player, mode, enqueued_ms, queued_ticket_ttl_ms, max_queued_per_mode,
--       metadata JSON ('' for none), max_open_rooms, properties JSON ('' for none)
-- Replies: {'queued'} | {'already', ticket} | {'pending', room_id, retry_after_ms}
--        | {'too_many_rooms', open} | {'collision'} | {'full'}
local p, t, player, mode, enq, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local pk = p .. 'player:' .. player
local existing = redis.call('GET', pk)
if existing then
  -- A matched (or expired) ticket does not count here: its room is checked below.
  local f = redis.call('HMGET', p .. 'ticket:' .. existing, 'player', 'room')
  if f[1] and not f[2] then return { 'already', existing } end
end
local now = tonumber(enq)
local prk = p .. 'player_rooms:' .. player
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
if open >= tonumber(ARGV[9]) then return { 'too_many_rooms', tostring(open) } end
local tk = p .. 'ticket:' .. t
if redis.call('EXISTS', tk) == 1 then return { 'collision' } end
local qk = p .. 'queue:' .. mode
if redis.call('ZCARD', qk) >= tonumber(ARGV[7]) then return { 'full' } end
redis.call('HSET', tk, 'player', player, 'mode', mode, 'enq', enq)
if ARGV[8] ~= '' then redis.call('HSET', tk, 'meta', ARGV[8]) end
if ARGV[10] ~= '' then redis.call('HSET', tk, 'props', ARGV[10]) end
redis.call('PEXPIRE', tk, ttl)
redis.call('ZADD', qk, enq, t)
redis.call('ZADD', p .. 'seen:' .. mode, enq, t)
redis.call('SET', pk, t, 'PX', ttl)
return { 'queued' }
