-- complete: RUNNING -> DONE for jobs whose lease token is still current; store the result.
-- The record goes COMPLETE_JOB_TTL later, so memory does not grow with finished work: the
-- completed set holds each DONE job by that time, and this script (or recover_expired.lua, run
-- by every worker's recovery pass) deletes the records whose time has passed, many keys in one
-- DEL, instead of a PEXPIRE call per job.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key>, stats:<hour> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  running   KEYS[3] completed (ids of DONE jobs by when their record goes: also the
--          "completed" listing)
-- ARGV[1]  done-job TTL ms; ARGV[2] arguments per job, "4" or "2"; ARGV[3..] per job: job id,
--          lease token, then (4) result JSON and "0" when the job has no idempotency key ("1" it
--          has one, "?" not known): the worker knows from the claim, and a field not read is
--          ~2,600 instructions less (callgrind; a missing field is the costliest to look up,
--          every field of the hash is compared). "2" stands for result null and "0" for every
--          job of the call (a batch of handlers that return nothing): each argument costs
--          ~800 instructions to parse and hand to Lua.
-- Returns  one integer per job: 1 done, 0 stale lease (refused, nothing written)
-- Also counts the completions in the per-hour stats hash stats:<hour> (field done:<minute>,
-- kept 25 hours), once for the batch.
local rcall = redis.call
local p = KEYS[1]
local running, donez = KEYS[2], KEYS[3]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl_ms = tonumber(ARGV[1])
-- Numbers go to redis.call as text made once with '%d' (see claim.lua)
local fmt = string.format
local now_s, gone_s = fmt('%d', now), fmt('%d', now + ttl_ms)
local PURGE = '500'  -- expired DONE records deleted per call at most
local out = {}
local n = 0
local done, listed = {}, {}  -- one ZREM and one ZADD for the batch
local pj = p .. 'j:'
local step = tonumber(ARGV[2])
local plain = step == 2
local k = 0  -- jobs so far: out's length
for i = 3, #ARGV, step do
  k = k + 1
  local jk = pj .. ARGV[i]
  local f
  if plain or ARGV[i + 3] == '0' then
    f = rcall('HMGET', jk, 'st', 'lease')
  else
    f = rcall('HMGET', jk, 'st', 'lease', 'idem')
  end
  if f[1] == 'RUNNING' and f[2] == ARGV[i + 1] then
    -- ua is not written: a job's updated time is its latest transition time (fa here); a null
    -- result (most handlers return nothing) is no field: one field less to write and keep
    if plain or ARGV[i + 2] == 'null' then
      rcall('HSET', jk, 'st', 'DONE', 'fa', now_s)
    else
      rcall('HSET', jk, 'st', 'DONE', 'res', ARGV[i + 2], 'fa', now_s)
    end
    local gone = gone_s  -- when the record goes: a score of the completed set
    if f[3] then  -- the record outlives its idempotency key, so a retry replays the true outcome
      local ttl = math.max(ttl_ms, rcall('PTTL', p .. 'idem:' .. f[3]))
      rcall('PEXPIRE', jk, fmt('%d', ttl))  -- on its own clock too: it may outlive any worker's pass
      gone = fmt('%d', now + ttl)
    end
    out[k] = 1
    n = n + 1
    done[n] = ARGV[i]
    listed[2 * n - 1] = gone
    listed[2 * n] = ARGV[i]
  else
    out[k] = 0
  end
end
if n > 0 then
  for i = 1, n, 1000 do  -- unpack has a limit (8000 values)
    rcall('ZREM', running, unpack(done, i, math.min(i + 999, n)))
    rcall('ZADD', donez, unpack(listed, 2 * i - 1, math.min(2 * i + 1998, 2 * n)))
  end
  -- DONE records whose time has passed: at most PURGE a call, so a backlog is spread out
  local old = rcall('ZRANGEBYSCORE', donez, '-inf', now_s, 'LIMIT', '0', PURGE)
  if #old > 0 then
    for j = 1, #old do old[j] = p .. 'j:' .. old[j] end
    rcall('DEL', unpack(old))
    rcall('ZREMRANGEBYRANK', donez, '0', fmt('%d', #old - 1))  -- the lowest scores are exactly those
  end
  local minute = math.floor(now / 60000)
  local sk = p .. 'stats:' .. fmt('%d', math.floor(minute / 60))
  -- the hash's TTL is set when a minute's field is new: once a minute, not once a call
  if rcall('HINCRBY', sk, 'done:' .. fmt('%d', minute), fmt('%d', n)) == n then rcall('PEXPIRE', sk, '90000000') end
end
return out
