-- Removes a queued ticket owned by a player and publishes it on `ticket_changes`.
-- ARGV: prefix, ticket, player. Replies: 'cancelled' | 'matched' | 'not_found'
local p, t, player = ARGV[1], ARGV[2], ARGV[3]
local tk = p .. 'ticket:' .. t
local f = redis.call('HMGET', tk, 'player', 'mode', 'room')
if not f[1] or f[1] ~= player then return 'not_found' end
if f[3] then return 'matched' end
redis.call('ZREM', p .. 'queue:' .. f[2], t)
redis.call('ZREM', p .. 'seen:' .. f[2], t)
redis.call('DEL', tk)
local pk = p .. 'player:' .. player
if redis.call('GET', pk) == t then redis.call('DEL', pk) end
redis.call('PUBLISH', p .. 'ticket_changes', t)
return 'cancelled'
