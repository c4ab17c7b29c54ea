-- The JSON of every room server whose registration has not expired; prunes the dead ids.
-- ARGV: prefix
local p = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', p .. 'servers')) do
  local raw = redis.call('GET', p .. 'server:' .. id)
  if raw then
    out[#out + 1] = raw
  else
    redis.call('SREM', p .. 'servers', id)
  end
end
return out
