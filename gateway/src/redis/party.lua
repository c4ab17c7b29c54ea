-- Parties: players who queue together. Keys: party:<id> (hash: leader, code, members csv,
-- tickets csv of player:ticket while queued or matched), party_code:<code> -> id,
-- player_party:<player> -> id; all live party_ttl_ms after the party's last change.
-- ARGV: prefix, op, party_ttl_ms, then by op:
--   create: party id, code, leader          -> {'in', <party>} | {'in_another', id} | {'not_found'}
--   join:   code, player                    -> {'in', <party>} | {'in_another', id} | {'closed'}
--                                              | {'not_found'}
--   get:    party id                        -> {'in', <party>} | {'not_found'}
--   leave:  party id, player                -> {'left', cancelled tickets csv} | {'not_found'}
-- <party> is: id, code, leader, members csv, tickets csv.
-- A party is closed to joins while one of its tickets is queued, or at max_members (ARGV[4]
-- of join is the cap: join's ARGV are code, player, max_members).
local p, op, ttl = ARGV[1], ARGV[2], ARGV[3]

local function key(id) return p .. 'party:' .. id end

local function read(id)
  local f = redis.call('HMGET', key(id), 'code', 'leader', 'members', 'tickets')
  if not f[1] then return nil end
  return { id, f[1], f[2], f[3] or '', f[4] or '' }
end

local function touch(id, party)
  redis.call('PEXPIRE', key(id), ttl)
  redis.call('PEXPIRE', p .. 'party_code:' .. party[2], ttl)
  for m in string.gmatch(party[4], '[^,]+') do
    if redis.call('GET', p .. 'player_party:' .. m) == id then
      redis.call('PEXPIRE', p .. 'player_party:' .. m, ttl)
    end
  end
end

-- The party the player is in, if it still exists.
local function party_of(player)
  local id = redis.call('GET', p .. 'player_party:' .. player)
  if id and redis.call('EXISTS', key(id)) == 1 then return id end
  return nil
end

-- Whether a ticket of the party is still queued.
local function queued(party)
  for pair in string.gmatch(party[5], '[^,]+') do
    local t = string.match(pair, ':(.+)$')
    local f = redis.call('HMGET', p .. 'ticket:' .. t, 'player', 'room')
    if f[1] and not f[2] then return true end
  end
  return false
end

-- Cancels the party's queued tickets; returns them.
local function cancel(party)
  local out = {}
  for pair in string.gmatch(party[5], '[^,]+') do
    local player, t = string.match(pair, '^([^:]+):(.+)$')
    local tk = p .. 'ticket:' .. t
    local f = redis.call('HMGET', tk, 'player', 'mode', 'room')
    if f[1] and not f[3] then
      redis.call('ZREM', p .. 'queue:' .. f[2], t)
      redis.call('ZREM', p .. 'seen:' .. f[2], t)
      redis.call('DEL', tk)
      if redis.call('GET', p .. 'player:' .. player) == t then
        redis.call('DEL', p .. 'player:' .. player)
      end
      out[#out + 1] = t
    end
  end
  if #out > 0 then redis.call('PUBLISH', p .. 'ticket_changes', table.concat(out, ',')) end
  return out
end

if op == 'create' then
  local id, code, leader = ARGV[4], ARGV[5], ARGV[6]
  local other = party_of(leader)
  if other then return { 'in_another', other } end
  if redis.call('EXISTS', key(id)) == 1 then return { 'not_found' } end
  if not redis.call('SET', p .. 'party_code:' .. code, id, 'NX', 'PX', ttl) then
    return { 'not_found' }
  end
  redis.call('HSET', key(id), 'code', code, 'leader', leader, 'members', leader)
  redis.call('SET', p .. 'player_party:' .. leader, id, 'PX', ttl)
  redis.call('PEXPIRE', key(id), ttl)
  return { 'in', id, code, leader, leader, '' }
elseif op == 'join' then
  local code, player = ARGV[4], ARGV[5]
  local id = redis.call('GET', p .. 'party_code:' .. code)
  local party = id and read(id)
  if not party then return { 'not_found' } end
  for m in string.gmatch(party[4], '[^,]+') do
    if m == player then return { 'in', unpack(party) } end
  end
  local other = party_of(player)
  if other and other ~= id then return { 'in_another', other } end
  local count = 0
  for _ in string.gmatch(party[4], '[^,]+') do count = count + 1 end
  if count >= tonumber(ARGV[6]) or queued(party) then return { 'closed' } end
  party[4] = party[4] .. ',' .. player
  party[5] = ''
  redis.call('HSET', key(id), 'members', party[4], 'tickets', '')
  redis.call('SET', p .. 'player_party:' .. player, id, 'PX', ttl)
  touch(id, party)
  return { 'in', unpack(party) }
elseif op == 'get' then
  local party = read(ARGV[4])
  if not party then return { 'not_found' } end
  return { 'in', unpack(party) }
elseif op == 'leave' then
  local id, player = ARGV[4], ARGV[5]
  local party = read(id)
  if not party then return { 'not_found' } end
  local members = {}
  local found = false
  for m in string.gmatch(party[4], '[^,]+') do
    if m == player then found = true else members[#members + 1] = m end
  end
  if not found then return { 'not_found' } end
  local cancelled = cancel(party)
  if party[3] == player then
    redis.call('DEL', key(id), p .. 'party_code:' .. party[2])
    for m in string.gmatch(party[4], '[^,]+') do
      if redis.call('GET', p .. 'player_party:' .. m) == id then
        redis.call('DEL', p .. 'player_party:' .. m)
      end
    end
  else
    party[4] = table.concat(members, ',')
    redis.call('HSET', key(id), 'members', party[4], 'tickets', '')
    if redis.call('GET', p .. 'player_party:' .. player) == id then
      redis.call('DEL', p .. 'player_party:' .. player)
    end
    touch(id, party)
  end
  return { 'left', table.concat(cancelled, ',') }
end
return redis.error_reply('unknown party op')
