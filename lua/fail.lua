-- fail: a handler failed. RUNNING -> SCHEDULED (retry after a backoff) while attempts remain,
-- else RUNNING -> DEAD (into the DLQ). Refused when the caller's lease is stale.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), stats:<hour> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  running   KEYS[3] delayed   KEYS[4] dead
-- ARGV[1]  job id   ARGV[2] lease token   ARGV[3] error text   ARGV[4] error history JSON
-- ARGV[5]  retry delay ms   ARGV[6] wake channel   ARGV[7] queue name
-- ARGV[8]  "0": no retry, straight to the DLQ (an external worker's "retry": false)
-- Returns  {-3} stale lease; {0, 'SCHEDULED', run_at_ms, now} or {0, 'DEAD', now, now}
-- Also counts the failure in the per-hour stats hash stats:<hour> (fields failed:<minute> and
-- dead:<minute>, kept 25 hours).
local rcall = redis.call
local p = KEYS[1]
local running, delayed, dead = KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
local jk = p .. 'j:' .. id
local f = rcall('HMGET', jk, 'st', 'lease', 'att', 'maxr', 'm')  -- maxr: a job written before m
if f[1] ~= 'RUNNING' or f[2] ~= ARGV[2] then return {-3} end
local maxr = tonumber(f[4] or string.match(f[5], '\n%-?%d+ (%d+)'))
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
rcall('ZREM', running, id)
rcall('HSET', jk, 'err', ARGV[3], 'errs', ARGV[4], 'ua', now)
local minute = math.floor(now / 60000)
local sk = p .. 'stats:' .. math.floor(minute / 60)
rcall('HINCRBY', sk, 'failed:' .. minute, 1)
rcall('PEXPIRE', sk, 90000000)
if tonumber(f[3]) > maxr or ARGV[8] == '0' then
  rcall('HSET', jk, 'st', 'DEAD', 'fa', now)
  rcall('ZADD', dead, now, id)
  rcall('HINCRBY', sk, 'dead:' .. minute, 1)
  return {0, 'DEAD', now, now}
end
local run = now + tonumber(ARGV[5])
rcall('HSET', jk, 'st', 'SCHEDULED', 'run', run)
rcall('ZADD', delayed, run, id)
rcall(string.find(ARGV[6], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[6], ARGV[7]) -- idle workers re-read the next due time
return {0, 'SCHEDULED', run, now}
