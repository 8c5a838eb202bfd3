-- complete: RUNNING -> DONE for jobs whose lease token is still current; store the result
-- and let the hash expire after COMPLETE_JOB_TTL so memory does not grow with finished work.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key>, stats:<minute> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  running
-- ARGV[1]  done-job TTL ms; ARGV[2..] triples of job id, lease token, result JSON
-- Returns  one integer per triple: 1 done, 0 stale lease (refused, nothing written)
-- Also counts the completions in the per-minute stats hash stats:<minute> (kept 2 hours).
local rcall = redis.call
local p = KEYS[1]
local running = KEYS[2]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl_ms = tonumber(ARGV[1])
local out = {}
local n = 0
local done = {}  -- one ZREM for the batch
for i = 2, #ARGV, 3 do
  local jk = p .. 'j:' .. ARGV[i]
  local f = rcall('HMGET', jk, 'st', 'lease', 'idem')
  if f[1] == 'RUNNING' and f[2] == ARGV[i + 1] then
    rcall('HSET', jk, 'st', 'DONE', 'res', ARGV[i + 2], 'fa', now, 'ua', now)
    local ttl = ttl_ms
    if f[3] then  -- the record outlives its idempotency key, so a retry replays the true outcome
      local left = rcall('PTTL', p .. 'idem:' .. f[3])
      if left > ttl then ttl = left end
    end
    rcall('PEXPIRE', jk, ttl)
    out[#out + 1] = 1
    n = n + 1
    done[n] = ARGV[i]
  else
    out[#out + 1] = 0
  end
end
if n > 0 then
  for i = 1, n, 1000 do  -- unpack has a limit (8000 values)
    rcall('ZREM', running, unpack(done, i, math.min(i + 999, n)))
  end
  local sk = p .. 'stats:' .. math.floor(now / 60000)
  rcall('HINCRBY', sk, 'done', n)
  rcall('PEXPIRE', sk, 7200000)
end
return out
