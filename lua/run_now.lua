-- run_now: SCHEDULED -> PENDING at once (an operator's "run now"): out of the delayed set, into
-- the ready set as if it had been due now; attempts are unchanged (a retry stays a retry).
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>) hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  delayed   KEYS[3] ready
-- ARGV[1]  job id   ARGV[2] priority aging ms   ARGV[3] wake channel   ARGV[4] queue name
-- Returns  {0, now} moved; {-1} no such job; {-2, status} not SCHEDULED
local rcall = redis.call
local p = KEYS[1]
local delayed, ready = KEYS[2], KEYS[3]
local id = ARGV[1]
local jk = p .. 'j:' .. id
local f = rcall('HMGET', jk, 'st', 'pri', 'm')  -- pri: a job written before m
if not f[1] then return {-1} end
if f[1] ~= 'SCHEDULED' then return {-2, f[1]} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pri = tonumber(f[2] or string.match(f[3], '\n(%-?%d+) '))
rcall('ZREM', delayed, id)
rcall('HSET', jk, 'st', 'PENDING', 'run', now, 'ua', now)
rcall('ZADD', ready, now - pri * tonumber(ARGV[2]), id)
rcall(string.find(ARGV[3], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[3], ARGV[4])
return {0, now}
