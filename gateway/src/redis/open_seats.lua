-- The owner of a running room of a `backfill` mode reports its open seats; formation fills
-- them (form_matches.lua, kind 'backfill') before it forms new rooms of the mode.
-- ARGV: prefix, room_id, server_id, free. Replies: 1 (recorded) | 0 (no such room of that owner)
local p, room_id = ARGV[1], ARGV[2]
local rk = p .. 'room:' .. room_id
local r = redis.call('HMGET', rk, 'server_id', 'mode')
if not r[1] or r[1] ~= ARGV[3] then return 0 end
redis.call('HSET', rk, 'open', ARGV[4])
if tonumber(ARGV[4]) > 0 then
  redis.call('SADD', p .. 'open_rooms:' .. r[2], room_id)
else
  redis.call('SREM', p .. 'open_rooms:' .. r[2], room_id)
end
return 1
