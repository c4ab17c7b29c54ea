-- A room record and whether its owner's registration is alive.
-- ARGV: prefix, room_id
-- Replies: nil | {server_id, server_json, epoch, mode, created_ms, players, join_by, joined,
--                 alive ('1'/'0'), grouping JSON or '', code or ''}
local p = ARGV[1]
local r = redis.call('HMGET', p .. 'room:' .. ARGV[2],
  'server_id', 'server', 'epoch', 'mode', 'created_ms', 'players', 'join_by', 'joined',
  'grouping', 'code')
if not r[1] then return false end
local grouping, code = r[9] or '', r[10] or ''
r[7] = r[7] or '0'
r[8] = r[8] or '0'
r[9] = tostring(redis.call('EXISTS', p .. 'server:' .. r[1]))
r[10] = grouping
r[11] = code
return r
