-- Removes a queued ticket owned by a player, and with a party ticket every queued ticket of
-- its party; publishes them on `ticket_changes`.
-- ARGV: prefix, ticket, player. Replies: 'cancelled' | 'matched' | 'not_found'
local p, t, player = ARGV[1], ARGV[2], ARGV[3]
local tk = p .. 'ticket:' .. t
local f = redis.call('HMGET', tk, 'player', 'mode', 'room', 'party')
if not f[1] or f[1] ~= player then return 'not_found' end
if f[3] then return 'matched' end
local victims = { { player, t } }
if f[4] then
  local tickets = redis.call('HGET', p .. 'party:' .. f[4], 'tickets') or ''
  for pair in string.gmatch(tickets, '[^,]+') do
    local other, ot = string.match(pair, '^([^:]+):(.+)$')
    if ot ~= t then victims[#victims + 1] = { other, ot } end
  end
end
local left = {}
for _, v in ipairs(victims) do
  local vk = p .. 'ticket:' .. v[2]
  local g = redis.call('HMGET', vk, 'player', 'mode', 'room')
  if g[1] and not g[3] then
    redis.call('ZREM', p .. 'queue:' .. g[2], v[2])
    redis.call('ZREM', p .. 'seen:' .. g[2], v[2])
    redis.call('DEL', vk)
    local pk = p .. 'player:' .. v[1]
    if redis.call('GET', pk) == v[2] then redis.call('DEL', pk) end
    left[#left + 1] = v[2]
  end
end
redis.call('PUBLISH', p .. 'ticket_changes', table.concat(left, ','))
return 'cancelled'
