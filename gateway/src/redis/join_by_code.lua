-- Seats a player in the private room with a join code (the same player again: the same
-- answer), up to the room's `seats`.
-- ARGV: prefix, code, player, room_ttl_ms
-- Replies: {'not_found'} | {'full'}
--        | {'ok', room_id, server_id, server_json, epoch, mode, created_ms, players, join_by,
--           joined}
local p, code, player = ARGV[1], ARGV[2], ARGV[3]
local ck = p .. 'code:' .. code
local room_id = redis.call('GET', ck)
if not room_id then return { 'not_found' } end
local rk = p .. 'room:' .. room_id
local r = redis.call('HMGET', rk,
  'server_id', 'server', 'epoch', 'mode', 'created_ms', 'players', 'join_by', 'joined', 'seats')
if not r[1] then
  redis.call('DEL', ck)
  return { 'not_found' }
end
local players = {}
local seated = false
for id in string.gmatch(r[6] or '', '[^,]+') do
  players[#players + 1] = id
  if id == player then seated = true end
end
if not seated then
  if #players >= tonumber(r[9] or '0') then return { 'full' } end
  players[#players + 1] = player
  r[6] = table.concat(players, ',')
  redis.call('HSET', rk, 'players', r[6])
  local prk = p .. 'player_rooms:' .. player
  redis.call('SADD', prk, room_id)
  redis.call('PEXPIRE', prk, ARGV[4])
end
return { 'ok', room_id, r[1], r[2], r[3], r[4], r[5], r[6] or '', r[7] or '0', r[8] or '0' }
