-- One account's rate budget, shared by every process that names it (see shared_budget.py).
-- Runs atomically on Redis's own clock. Times are integer microseconds of Redis's TIME.
--
-- KEYS[1] hash: due (next departure on the even grid), paused (no departure before),
--               rate (the shared AIMD rate, req/s), last (latest slot), cut_at (last halving),
--               server (run_id of the Redis that wrote it), stamp (last write),
--               recorded (latest departure written)
-- KEYS[2] sorted set: departures (member: reservation id, score: slot, then when it left)
-- KEYS[3] sorted set: processes (member: process id, score: when last heard of)
-- KEYS[4] sorted set: pending departures, granted but not yet written (score: lease end)
-- KEYS[5] hash: each departing process's distance to Ometria (µs round trip, -1 unknown)
-- ARGV: 1 mode ('update', 'reserve', 'depart', 'confirm', 'renew'), 2 cap (this caller's
--       rate now), 3 limit, 4 margin, 5 member, 6 process, 7 successes, 8 pause_until (µs,
--       0 for none), 9 cut ('1': halve the rate), 10 server (the run_id the caller last saw,
--       '' unknown), 11 ttl (ms), 12 slack (s), 13 distance ('' never departed,
--       -1 unknown, µs), 14 depart: '1' counts as leaving now until confirmed; confirm: when
--       it left (µs, 0: now), 15 lost ('1': the caller saw Redis's clock step, or the state
--       written by another Redis than the one answering),
--       16.. renew: the caller's pending members
-- Returns {slot or status, now, processes, rate (milli-req/s), paused, spread (µs),
--          held ('1': the state was lost and is held now), at (µs, 'depart' WAIT),
--          the state's server (before this call; when it is not the caller's, nothing was
--          reserved or granted: the caller compares it with the Redis it reached and calls
--          again)}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local cap, limit, margin = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local member, process, server = ARGV[5], ARGV[6], ARGV[10]
local ttl = tonumber(ARGV[11])
local min_rate = limit / 64
local LIVE, LEASE, KEEP, UNMEASURED = 5000000, 2000000, 10000000, 100000

local st = redis.call('HMGET', KEYS[1], 'due', 'paused', 'rate', 'last', 'cut_at', 'server',
                      'stamp', 'recorded')
local due = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
local rate = tonumber(st[3]) or limit
local last = tonumber(st[4]) or 0
local cut_at = tonumber(st[5]) or 0
local stamp = tonumber(st[7]) or 0
local recorded = tonumber(st[8]) or 0
if rate > limit then rate = limit end

-- Did Redis lose its recent past? No state (a restart, or a fresh account), time going back,
-- a clock step or another server (a promoted replica, a reload from disk) that a caller saw,
-- or the departures gone while the state says some are recent.
local stored = st[6] or ''
local unsure = st[3] ~= false and stored ~= '' and stored ~= server
local held = st[3] == false or stamp > now + 5000 or ARGV[15] == '1'
  or (recorded > now - ttl * 1000 and redis.call('EXISTS', KEYS[2]) == 0)

-- processes and their distances: the spread between the farthest and the nearest departing
-- process widens every window (an unmeasured one among others counts as UNMEASURED away)
redis.call('ZADD', KEYS[3], now, process)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - LIVE)
if #gone > 0 then
  redis.call('ZREM', KEYS[3], unpack(gone))
  redis.call('HDEL', KEYS[5], unpack(gone))
end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[5], process, ARGV[13]) end
local processes = redis.call('ZCARD', KEYS[3])
local lo, hi, unknown, known = nil, nil, false, 0
for _, v in ipairs(redis.call('HVALS', KEYS[5])) do
  v = tonumber(v)
  known = known + 1
  if v < 0 then unknown = true
  else
    lo = math.min(lo or v, v)
    hi = math.max(hi or v, v)
  end
end
local spread = 0
if lo then spread = hi - lo end
if unknown and known > 1 then spread = math.max(spread, UNMEASURED) end

if ARGV[9] == '1' and now - cut_at >= 1000000 then
  rate = math.max(min_rate, rate / 2)
  cut_at = now
end
local successes = tonumber(ARGV[7])
if successes > 0 and rate < limit then rate = math.min(limit, rate + limit * 0.02 * successes) end

local r = math.max(min_rate, math.min(rate, cap))
local n = math.max(1, math.floor(r))
local second = math.max(1.0, n / r)
local wide = second + tonumber(ARGV[12]) + spread / 1000000
local span = wide * 1000000
local even = (wide + second * margin / 2) / n * 1000000

if held then
  -- nobody knows what left lately: nothing leaves until all of it is a full window old; the
  -- old times mean nothing on a clock that stepped, and a lease is renewed by its owner
  if stamp > now + 5000 or ARGV[15] == '1' then paused = 0 end
  paused = math.max(paused, now + math.ceil(span))
  due, last, cut_at, recorded = 0, 0, 0, 0
  redis.call('DEL', KEYS[2])
  local rows = redis.call('ZRANGE', KEYS[4], 0, -1)
  for _, m in ipairs(rows) do redis.call('ZADD', KEYS[4], now + LEASE, m) end
  for _, p in ipairs(redis.call('ZRANGE', KEYS[3], '(' .. now, '+inf', 'BYSCORE')) do
    redis.call('ZADD', KEYS[3], now, p)
  end
end
local pause_until = tonumber(ARGV[8])
if pause_until > paused then paused = pause_until end

-- the n-th most recent departure, no later than `upto`, other than `skip`: a pending one
-- (granted, not yet written) counts as leaving now while its lease lasts
local function nth_recent(upto, skip)
  local top = upto == math.huge and '+inf' or upto
  if redis.call('ZCARD', KEYS[4]) == 0 then
    -- nothing pending: the n-th by score, one further when `skip` is among the first n
    local rows = redis.call('ZREVRANGEBYSCORE', KEYS[2], top, '-inf', 'WITHSCORES', 'LIMIT',
                            n - 1, 2)
    local own = tonumber(redis.call('ZSCORE', KEYS[2], skip))
    if rows[1] and own and own <= upto and (own >= tonumber(rows[2]) or rows[1] == skip) then
      return tonumber(rows[4])
    end
    return tonumber(rows[2])
  end
  local times, seen = {}, {}
  local pending = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
  for i = 1, #pending, 2 do
    local m = pending[i]
    seen[m] = true
    if m ~= skip then
      local at = math.min(now, tonumber(pending[i + 1]))
      local left = tonumber(redis.call('ZSCORE', KEYS[2], m))
      if left and left > at then at = left end
      if at <= upto then table.insert(times, at) end
    end
  end
  local rows = redis.call('ZREVRANGEBYSCORE', KEYS[2], top, '-inf', 'WITHSCORES', 'LIMIT', 0,
                          n + math.floor(#pending / 2) + 1)
  for i = 1, #rows, 2 do
    if not seen[rows[i]] and rows[i] ~= skip then table.insert(times, tonumber(rows[i + 1])) end
  end
  table.sort(times, function(a, b) return a > b end)
  return times[n]
end

local function record(at)
  redis.call('ZADD', KEYS[2], 'GT', at, member)  -- GT alone adds a member that expired
  if at > recorded then recorded = at end
end

local result, at_out = -1, 0
if unsure and not held and (mode == 'reserve' or mode == 'depart') then
  mode = 'unsure'  -- the caller knows another server than the state's: it asks again
end
if mode == 'reserve' then
  local ready = math.max(now, due, paused, last + 0.5 * even)
  local nth = nth_recent(math.huge, member)
  if nth then ready = math.max(ready, nth + span) end
  local slot = math.ceil(ready)
  -- the even grid: lateness up to 0.1 s is made up for by the next departures; after more
  -- (idle, a pause) the grid starts again at this slot, so no burst follows
  local place = math.max(due, paused)
  if slot - place > 100000 then place = slot end
  due = math.ceil(place + even)
  last = slot
  redis.call('ZADD', KEYS[2], slot, member)
  result = slot
elseif mode == 'depart' then
  if paused > now then
    redis.call('ZREM', KEYS[2], member)
    result = 0
  else
    local nth = nth_recent(now, member)
    if nth and nth + span > now then
      result, at_out = 2, math.ceil(nth + span)
    else
      record(now)
      if ARGV[14] == '1' then redis.call('ZADD', KEYS[4], now + LEASE, member) end
      result = 1
    end
  end
elseif mode == 'confirm' then
  local at = tonumber(ARGV[14])
  if at <= 0 or at > now then at = now end
  record(at)
  redis.call('ZREM', KEYS[4], member)
elseif mode == 'renew' then
  for i = 16, #ARGV do redis.call('ZADD', KEYS[4], now + LEASE, ARGV[i]) end
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - KEEP)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - KEEP)
local keep = math.max(ttl, math.ceil(2 * span / 1000))
local hset = {'due', due, 'paused', paused, 'rate', rate, 'last', last, 'cut_at', cut_at,
              'stamp', now, 'recorded', recorded}
if server ~= '' and (held or not unsure or stored == '') then
  table.insert(hset, 'server')
  table.insert(hset, server)
end
redis.call('HSET', KEYS[1], unpack(hset))
redis.call('PEXPIRE', KEYS[1], math.max(keep, math.ceil((paused - now) / 1000) + keep))
redis.call('PEXPIRE', KEYS[2], math.max(keep, math.ceil((last - now) / 1000) + keep))
for i = 3, 5 do redis.call('PEXPIRE', KEYS[i], keep) end
return {result, now, processes, math.floor(rate * 1000), paused, spread, held and 1 or 0,
        at_out, stored}
