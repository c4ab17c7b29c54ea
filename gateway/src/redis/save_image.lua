-- Stores a room's failover image and its session index, fenced: only the room's owner at
-- its current epoch may write.
-- ARGV: prefix, room_id, server_id, epoch, ttl_ms, image, sessions (comma-separated ids)
-- Replies: 1 (written) | 0 (the room moved to another owner or epoch, or is gone)
local p, room_id, server_id, epoch, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local r = redis.call('HMGET', p .. 'room:' .. room_id, 'server_id', 'epoch')
if r[1] ~= server_id or r[2] ~= epoch then return 0 end
redis.call('SET', p .. 'image:' .. room_id, ARGV[6], 'PX', ttl)
for session in string.gmatch(ARGV[7], '[^,]+') do
  redis.call('SET', p .. 'session:' .. session, room_id, 'PX', ttl)
end
return 1
