-- The rooms a server currently owns; prunes ids of rooms closed or moved away.
-- ARGV: prefix, server_id
local p, id = ARGV[1], ARGV[2]
local sk = p .. 'server_rooms:' .. id
local out = {}
for _, room_id in ipairs(redis.call('SMEMBERS', sk)) do
  if redis.call('HGET', p .. 'room:' .. room_id, 'server_id') == id then
    out[#out + 1] = room_id
  else
    redis.call('SREM', sk, room_id)
  end
end
return out
