-- Queues a ticket unless its player already waits under another one.
-- ARGV: prefix, ticket, player, mode, enqueued_ms, queued_ticket_ttl_ms, max_queued_per_mode,
--       metadata JSON ('' for none)
-- Replies: {'queued'} | {'already', ticket} | {'collision'} | {'full'}
local p, t, player, mode, enq, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local pk = p .. 'player:' .. player
local existing = redis.call('GET', pk)
if existing then
  -- A matched (or expired) ticket does not count: its player may queue again.
  local f = redis.call('HMGET', p .. 'ticket:' .. existing, 'player', 'room')
  if f[1] and not f[2] then return { 'already', existing } end
end
local tk = p .. 'ticket:' .. t
if redis.call('EXISTS', tk) == 1 then return { 'collision' } end
local qk = p .. 'queue:' .. mode
if redis.call('ZCARD', qk) >= tonumber(ARGV[7]) then return { 'full' } end
redis.call('HSET', tk, 'player', player, 'mode', mode, 'enq', enq)
if ARGV[8] ~= '' then redis.call('HSET', tk, 'meta', ARGV[8]) end
redis.call('PEXPIRE', tk, ttl)
redis.call('ZADD', qk, enq, t)
redis.call('ZADD', p .. 'seen:' .. mode, enq, t)
redis.call('SET', pk, t, 'PX', ttl)
return { 'queued' }
