-- One account's rate budget, shared by every process that names it (see shared_budget.py).
-- Runs atomically on Redis's own clock. Times are integer microseconds of Redis's TIME.
--
-- KEYS[1] hash: due (next departure on the even grid), paused (no departure before),
--               rate (the shared AIMD rate, req/s), last (latest slot), cut_at (last halving)
-- KEYS[2] sorted set: recent departures (member: reservation id, score: when it left)
-- KEYS[3] sorted set: processes (member: process id, score: when last heard of)
-- ARGV: mode ('reserve' or 'update'), cap (this caller's rate now: limit x queue factor),
--       limit, margin, member, process, successes (since the caller's last call),
--       pause_until (µs, 0 for none), cut ('1': halve the rate), known ('1': the caller has
--       called before, so a missing hash means Redis lost the state), ttl (ms),
--       slack (seconds kept free over any window of n departures beyond one second: the
--       jitter floor, widened by what the caller measured; see pacer.py)
-- Returns {slot (µs, -1 for 'update'), now (µs), processes, rate (milli-req/s), paused (µs)}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cap = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local margin = tonumber(ARGV[4])
local successes = tonumber(ARGV[7])
local pause_until = tonumber(ARGV[8])
local ttl = tonumber(ARGV[11])
local min_rate = limit / 64

local st = redis.call('HMGET', KEYS[1], 'due', 'paused', 'rate', 'last', 'cut_at')
local due = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
local rate = tonumber(st[3]) or limit
local last = tonumber(st[4]) or 0
local cut_at = tonumber(st[5]) or 0
if st[3] == false and ARGV[10] == '1' then
  -- Redis restarted (or the keys expired under a live process): nobody knows the departures of
  -- the last second any more, so nobody leaves for two window spans
  paused = math.max(paused, now + 2000000)
end
if rate > limit then rate = limit end
if ARGV[9] == '1' and now - cut_at >= 1000000 then
  rate = math.max(min_rate, rate / 2)
  cut_at = now
end
if successes > 0 and rate < limit then rate = math.min(limit, rate + limit * 0.02 * successes) end
if pause_until > paused then paused = pause_until end

redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 5000000)
local processes = redis.call('ZCARD', KEYS[3])

local slot = -1
if ARGV[1] == 'reserve' then
  local r = math.max(min_rate, math.min(rate, cap))
  local n = math.max(1, math.floor(r))
  local second = math.max(1.0, n / r)
  local slack = tonumber(ARGV[12])
  local span = (second + slack) * 1000000
  local even = (second + slack + second * margin / 2) / n * 1000000
  local ready = math.max(now, due, paused, last + 0.5 * even)
  local nth = redis.call('ZREVRANGE', KEYS[2], n - 1, n - 1, 'WITHSCORES')
  if nth[2] then ready = math.max(ready, tonumber(nth[2]) + span) end
  slot = math.ceil(ready)
  -- the even grid: lateness up to 0.1 s is made up for by the next departures; after more
  -- (idle, a pause) the grid starts again at this slot, so no burst follows
  local place = math.max(due, paused)
  if slot - place > 100000 then place = slot end
  due = math.ceil(place + even)
  last = slot
  redis.call('ZADD', KEYS[2], slot, ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 10000000)
  redis.call('PEXPIRE', KEYS[2], ttl)
end

redis.call('HSET', KEYS[1], 'due', due, 'paused', paused, 'rate', rate, 'last', last,
           'cut_at', cut_at)
redis.call('PEXPIRE', KEYS[1], math.max(ttl, math.ceil((paused - now) / 1000) + ttl))
redis.call('PEXPIRE', KEYS[3], ttl)
return {slot, now, processes, math.floor(rate * 1000), paused}
