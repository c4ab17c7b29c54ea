-- Appends lockstep rooms' newly closed frames to their frame logs, each fenced: only the
-- room's owner at its current epoch may append. A log that does not end right before the
-- appended frames is dropped with the room's image (that room can no longer fail over).
-- ARGV: prefix, server_id, ttl_ms, rooms, then per room: room_id, epoch, first, count and
--       `count` encoded frames
-- Replies: one code per room, in order: 1 (stored) | 0 (fenced) | 2 (gap: log dropped)
local p, server_id, ttl = ARGV[1], ARGV[2], ARGV[3]
local out = {}
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local room_id, epoch, first, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local frames_at = i + 4
  i = frames_at + count
  local r = redis.call('HMGET', p .. 'room:' .. room_id, 'server_id', 'epoch')
  local key = p .. 'frames:' .. room_id
  if r[1] ~= server_id or r[2] ~= epoch then
    out[#out + 1] = 0
  elseif redis.call('LLEN', key) ~= first - 1 then
    redis.call('DEL', key, p .. 'image:' .. room_id)
    out[#out + 1] = 2
  else
    for j = frames_at, frames_at + count - 1 do
      redis.call('RPUSH', key, ARGV[j])
    end
    redis.call('PEXPIRE', key, ttl)
    out[#out + 1] = 1
  end
end
return out
