-- cancel: PENDING or SCHEDULED -> CANCELLED; the hash then expires after COMPLETE_JOB_TTL (a key TTL).
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  ready   KEYS[3] delayed
-- ARGV[1]  job id   ARGV[2] finished-job TTL ms
-- Returns  {0, now} cancelled; {-1} no such job; {-2, status} not cancellable in that state
local rcall = redis.call
local p = KEYS[1]
local ready, delayed = KEYS[2], KEYS[3]
local jk = p .. 'j:' .. ARGV[1]
local st = rcall('HGET', jk, 'st')
if not st then return {-1} end
if st == 'PENDING' then rcall('ZREM', ready, ARGV[1])
elseif st == 'SCHEDULED' then rcall('ZREM', delayed, ARGV[1])
else return {-2, st} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
rcall('HSET', jk, 'st', 'CANCELLED', 'fa', now, 'ua', now)
local ttl = tonumber(ARGV[2])
local idem = rcall('HGET', jk, 'idem')
if idem then  -- the record outlives its idempotency key, so a retry replays the true outcome
  local left = rcall('PTTL', p .. 'idem:' .. idem)
  if left > ttl then ttl = left end
end
rcall('PEXPIRE', jk, ttl)
return {0, now}
