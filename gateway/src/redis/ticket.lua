-- Reads a ticket; with a touch time also records that its owner is still waiting.
-- ARGV: prefix, ticket, touch_ms ('' to only read), queued_ticket_ttl_ms
-- Replies: nil | {player, mode, enqueued_ms} (queued)
--        | {player, mode, enqueued_ms, room_id, server_json, room_mode, metadata_json or '',
--           grouping_json or ''} (matched)
local p, t = ARGV[1], ARGV[2]
local tk = p .. 'ticket:' .. t
local f = redis.call('HMGET', tk, 'player', 'mode', 'enq', 'room', 'meta')
if not f[1] then return false end
if not f[4] then
  if ARGV[3] ~= '' then
    redis.call('ZADD', p .. 'seen:' .. f[2], 'XX', 'GT', ARGV[3], t)
    redis.call('PEXPIRE', tk, ARGV[4])
    local pk = p .. 'player:' .. f[1]
    if redis.call('GET', pk) == t then redis.call('PEXPIRE', pk, ARGV[4]) end
  end
  return { f[1], f[2], f[3] }
end
local r = redis.call('HMGET', p .. 'room:' .. f[4], 'server', 'mode', 'grouping')
if not r[1] then return false end
return { f[1], f[2], f[3], f[4], r[1], r[2], f[5] or '', r[3] or '' }
