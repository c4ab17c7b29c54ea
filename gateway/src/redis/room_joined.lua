-- The owner seated a player: the room is kept until closed (room_ttl_ms at most), and the
-- server joins `join_reporters` (rooms placed on it that nobody joins expire early). A private
-- room's join code lives as long as the room from then on.
-- ARGV: prefix, room_id, server_id, room_ttl_ms. Replies: the room's epoch | nil (gone, or
-- another server owns it)
local p, room_id, id = ARGV[1], ARGV[2], ARGV[3]
local rk = p .. 'room:' .. room_id
local r = redis.call('HMGET', rk, 'server_id', 'epoch', 'code')
if not r[1] or r[1] ~= id then return false end
redis.call('HSET', rk, 'joined', '1')
redis.call('PEXPIRE', rk, ARGV[4])
if r[3] then redis.call('PEXPIRE', p .. 'code:' .. r[3], ARGV[4]) end
redis.call('SADD', p .. 'join_reporters', id)
return r[2]
