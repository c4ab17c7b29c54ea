-- Queues an operator command for a room server (which takes it with LRANGE + LTRIM), unless
-- max_queued already wait. The list expires ttl_ms after the last push.
-- ARGV: prefix, server_id, command_json, max_queued, ttl_ms. Replies: 1 queued | 0 full
local k = ARGV[1] .. 'commands:' .. ARGV[2]
if redis.call('LLEN', k) >= tonumber(ARGV[4]) then return 0 end
redis.call('RPUSH', k, ARGV[3])
redis.call('PEXPIRE', k, ARGV[5])
return 1
