-- Forgets a room only at a given epoch (a fenced close by its owner).
-- ARGV: prefix, room_id, epoch. Replies: 1 closed | 0 gone or epoch moved on
local p, room_id = ARGV[1], ARGV[2]
local rk = p .. 'room:' .. room_id
local r = redis.call('HMGET', rk, 'server_id', 'epoch')
if not r[1] then return 0 end
if r[2] ~= ARGV[3] then return 0 end
redis.call('DEL', rk)
redis.call('SREM', p .. 'server_rooms:' .. r[1], room_id)
redis.call('ZREM', p .. 'rooms', room_id)
return 1
