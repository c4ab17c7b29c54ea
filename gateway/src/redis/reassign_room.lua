-- Compare-and-set of a room's owner, fenced by its epoch.
-- ARGV: prefix, room_id, expected_epoch, new_server_id, room_ttl_ms
-- Replies: {'not_found'} | {'stale', epoch} | {'no_server'}
--        | {'ok', server_id, server_json, epoch, mode, created_ms, players, join_by, joined}
local p, room_id, expected, new_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rk = p .. 'room:' .. room_id
local r = redis.call('HMGET', rk, 'server_id', 'epoch')
if not r[1] then return { 'not_found' } end
if r[2] ~= expected then return { 'stale', r[2] } end
local raw = redis.call('GET', p .. 'server:' .. new_id)
if not raw then return { 'no_server' } end
local epoch = string.format('%d', tonumber(r[2]) + 1)
redis.call('HSET', rk, 'server_id', new_id, 'server', raw, 'epoch', epoch)
redis.call('SREM', p .. 'server_rooms:' .. r[1], room_id)
local ok = p .. 'server_rooms:' .. new_id
redis.call('SADD', ok, room_id)
redis.call('PEXPIRE', ok, ARGV[5])
local out = redis.call('HMGET', rk, 'server_id', 'server', 'epoch', 'mode', 'created_ms', 'players',
  'join_by', 'joined')
out[7] = out[7] or '0'
out[8] = out[8] or '0'
table.insert(out, 1, 'ok')
return out
