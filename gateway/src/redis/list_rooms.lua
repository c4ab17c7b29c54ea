-- One page of rooms, newest first, from the index `rooms` (a zset of room ids scored by
-- created_ms: form_matches.lua adds, close_room.lua removes). Index entries whose room record
-- expired are removed on the way, and entries older than oldest_ms first; the index is read at
-- most max_rounds times, so a call costs O(max_rounds * limit) whatever the number of rooms.
-- ARGV: prefix, offset, limit, max_rounds, oldest_ms
-- Replies: {total, then per room: room_id, server_id, server_json, epoch, mode, created_ms,
--           players, join_by, joined}
local p = ARGV[1]
local idx = p .. 'rooms'
local limit = tonumber(ARGV[3])
local rounds = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. ARGV[5])
local out = {}
local found = 0
local pos = tonumber(ARGV[2])
while found < limit and rounds > 0 do
  rounds = rounds - 1
  local ids = redis.call('ZREVRANGE', idx, pos, pos + (limit - found) - 1)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local r = redis.call('HMGET', p .. 'room:' .. id,
      'server_id', 'server', 'epoch', 'mode', 'created_ms', 'players', 'join_by', 'joined')
    if r[1] then
      found = found + 1
      pos = pos + 1
      out[#out + 1] = id
      for i = 1, 6 do out[#out + 1] = r[i] or '' end
      out[#out + 1] = r[7] or '0'
      out[#out + 1] = r[8] or '0'
    else
      redis.call('ZREM', idx, id)
    end
  end
end
table.insert(out, 1, tostring(redis.call('ZCARD', idx)))
return out
