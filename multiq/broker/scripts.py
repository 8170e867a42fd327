"""Lua scripts of the Redis broker. Each touches the keys of one queue only (one hash slot),
but FETCH, which on one server (not a cluster) reads all of a node's queues in one call.

Band streams are always passed as KEYS[1..10], highest priority (band 9) first, so the
stream of band ``b`` is ``KEYS[10 - b]``.
"""

# KEYS: 10 band streams per queue, queue after queue. ARGV: group, consumer, count.
# Reads up to ``count`` new entries: the queues in the order given, highest band first
# within each. Returns {{key index, entries}, ...}. A key it cannot read gives
# {-key index, error} and the others are still read (an aborted script would strand what
# it had read already): a stream without the group (created by a send after a flush),
# or a key that holds another type (garbage some other program wrote there).
FETCH = """
local out = {}
local left = tonumber(ARGV[3])
for i = 1, #KEYS do
  if left <= 0 then break end
  -- an empty band (the usual case for all but one) costs an XLEN, not a group read
  local n = redis.pcall('XLEN', KEYS[i])
  if type(n) == 'table' then
    out[#out + 1] = {-i, n['err']}
  elseif n > 0 then
    local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left,
                          'STREAMS', KEYS[i], '>')
    if type(r) == 'table' and r['err'] then
      out[#out + 1] = {-i, r['err']}
    elseif r and r[1] and #r[1][2] > 0 then
      out[#out + 1] = {i, r[1][2]}
      left = left - #r[1][2]
    end
  end
end
return out
"""

# KEYS: a queue's key, the key to move what it holds to. ARGV: the type multiq keeps
# there, the consumer group of a band stream ('' for none).
# When the key holds another type (garbage written there), renames that value to KEYS[2],
# where it can be looked at; a band stream is made again with its group. Returns the
# type moved, or false when the key is of its type or absent.
SET_ASIDE = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == ARGV[1] or t == 'none' then return false end
redis.call('RENAME', KEYS[1], KEYS[2])
if ARGV[2] ~= '' then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[2], '0', 'MKSTREAM')
end
return t
"""

# KEYS: 10 band streams, delayed zset, delayed bodies hash, dead-letter stream.
# ARGV: now, limit.
# Moves due delayed messages into their streams (each exactly once). A body that is not
# "<band 0..9>,<n>|<envelope>" goes to the dead-letter stream instead, and a member without
# a body is dropped, so neither blocks the members behind it.
# Returns {taken, next due time or false, malformed members, members without a body}.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local bad, bodiless = {}, {}
for _, member in ipairs(due) do
  local v = redis.call('HGET', KEYS[12], member)
  if v then
    local bar = string.find(v, '|', 1, true)
    local band, n
    if bar then band, n = string.match(string.sub(v, 1, bar - 1), '^(%d),(%d+)$') end
    if band then
      redis.call('XADD', KEYS[10 - tonumber(band)], '*', 'm', string.sub(v, bar + 1), 'n', n)
    else
      redis.call('XADD', KEYS[13], 'MAXLEN', '~', 100000, '*',
                 'm', bar and string.sub(v, bar + 1) or v,
                 'reason', 'malformed delayed message (no "<band>,<n>|" head)',
                 'band', 0, 'time', ARGV[1])
      bad[#bad + 1] = member
    end
    redis.call('HDEL', KEYS[12], member)
  else
    bodiless[#bodiless + 1] = member
  end
  redis.call('ZREM', KEYS[11], member)
end
local nxt = redis.call('ZRANGE', KEYS[11], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or false, bad, bodiless}
"""

# KEYS: 10 band streams, started hash, dead-letter stream[, the consumer's liveness key].
# ARGV: group, dead consumer, max deliveries, now.
# Does nothing when the liveness key is given and exists (the node beat after the caller
# found it gone). Otherwise hands the dead consumer's entries back to their streams
# (delivery count + 1), moves entries delivered too often to the dead-letter stream, and
# leaves early-ack entries whose task had started in place: they are returned as
# {band, id, envelope} so the caller can record WorkerLostError before acknowledging them.
# Returns {requeued, dead, lost}.
RECOVER = """
local group, consumer, maxd = ARGV[1], ARGV[2], tonumber(ARGV[3])
local requeued, dead, lost = 0, 0, {}
if KEYS[13] and redis.call('EXISTS', KEYS[13]) == 1 then
  return {requeued, dead, lost}
end
for i = 1, 10 do
  local key = KEYS[i]
  -- a key of another type (garbage written there) holds nothing of the dead consumer's
  local stream = redis.call('TYPE', key)['ok'] == 'stream'
  local pend = {}
  if stream then
    pend = redis.call('XPENDING', key, group, '-', '+', 10000, consumer)
  end
  for _, p in ipairs(pend) do
    local id = p[1]
    local e = redis.call('XRANGE', key, id, id)
    local owner = redis.call('HGET', KEYS[11], id)
    if e[1] == nil then
      redis.call('XACK', key, group, id)
      redis.call('HDEL', KEYS[11], id)
    elseif owner then
      local f = e[1][2]
      local m
      for j = 1, #f, 2 do if f[j] == 'm' then m = f[j + 1] end end
      lost[#lost + 1] = {10 - i, id, m or ''}
    else
      local f = e[1][2]
      local m, n = '', 0
      for j = 1, #f, 2 do
        if f[j] == 'm' then m = f[j + 1] elseif f[j] == 'n' then n = tonumber(f[j + 1]) end
      end
      n = n + 1
      if n >= maxd then
        redis.call('XADD', KEYS[12], 'MAXLEN', '~', 100000, '*', 'm', m, 'reason',
                   'delivered ' .. n .. ' times; its worker died each time',
                   'band', 10 - i, 'time', ARGV[4])
        dead = dead + 1
      else
        redis.call('XADD', key, '*', 'm', m, 'n', n)
        requeued = requeued + 1
      end
      redis.call('XACK', key, group, id)
      redis.call('XDEL', key, id)
    end
  end
  if #pend == 0 and stream then
    redis.call('XGROUP', 'DELCONSUMER', key, group, consumer)
  end
end
return {requeued, dead, lost}
"""

# KEYS: 10 band streams, started hash. ARGV: group, then band, id pairs.
# Gives entries that were fetched but never started back to their streams, unchanged.
HANDBACK = """
local group = ARGV[1]
local n = 0
for i = 2, #ARGV, 2 do
  local key = KEYS[10 - tonumber(ARGV[i])]
  local id = ARGV[i + 1]
  local e = redis.call('XRANGE', key, id, id)
  if e[1] and redis.call('XACK', key, group, id) == 1 then
    local f = e[1][2]
    local m, c = '', '0'
    for j = 1, #f, 2 do
      if f[j] == 'm' then m = f[j + 1] elseif f[j] == 'n' then c = f[j + 1] end
    end
    redis.call('XADD', key, '*', 'm', m, 'n', c)
    n = n + 1
  end
  redis.call('XDEL', key, id)
  redis.call('HDEL', KEYS[11], id)
end
return n
"""

# KEYS: 10 band streams. ARGV: group, consumer.
# Removes a consumer from each stream's group, unless it still holds entries there (a key
# that is not a stream is passed over).
RETIRE = """
for i = 1, #KEYS do
  if redis.call('TYPE', KEYS[i])['ok'] == 'stream' then
    local held = redis.call('XPENDING', KEYS[i], ARGV[1], '-', '+', 1, ARGV[2])
    if #held == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[i], ARGV[1], ARGV[2])
    end
  end
end
return 1
"""
