-- claim: promote due delayed jobs, then lease up to N ready jobs (PENDING -> RUNNING).
-- The job stays in Redis: it moves to the running set with a lease deadline, so a worker that
-- dies mid-job loses nothing. attempts is counted here, so a job that kills every worker
-- still reaches the DLQ.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>) hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  meta   KEYS[3] ready   KEYS[4] delayed   KEYS[5] running
-- ARGV[1]  max jobs to claim   ARGV[2] lease ms   ARGV[3] priority aging ms
-- ARGV[4]  max delayed jobs to promote in this call
-- ARGV[5]  "1": an external worker's claim over HTTP (only from queues with meta ext = 1; the
--          lease length is kept in the job as lms, the default of its heartbeats), else "0"
-- Limits (meta fields conc, rmax, rper): at most conc jobs RUNNING, at most rmax starts in each
-- window of rper ms (counter rl:<window>, expiring after two windows); a job held back by a
-- limit stays PENDING and no attempt is counted.
-- Returns  {-4} queue not found; {-9} an external claim of an in-process queue; {-10} an
--          in-process claim of an external queue; else {next_due_ms|-1, now, idle, limited, job, job, ...} where
--          idle is 1 when the queue holds no ready, delayed or running job after this call,
--          limited is 1 (concurrency) or 2 (rate limit) when ready jobs were held back (next_due
--          is then when to try again), and each job is 7 elements in a row: id, lease, attempts,
--          m, payload, ca, more (m: "type\npriority max_retries timeout_ms", a tab after it for
--          a job enqueued with no delay, run_at or idempotency key, see enqueue.lua). more is nil
--          for such a job claimed for the first time (the common one), else {run, idem, err,
--          errs}. One flat array but for those: Redis turns each nested table into a reply of
--          its own (seven field probes and a deferred length), ~0.5 us a job.
local rcall = redis.call
local p = KEYS[1]
local meta, ready, delayed, running = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local m = rcall('HMGET', meta, 'created', 'paused', 'conc', 'rmax', 'rper', 'ext')
if not m[1] then return {-4} end
local external = ARGV[5] == '1'
if external ~= (m[6] == '1') then return {external and -9 or -10} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Numbers go to redis.call (and into strings) as text made with '%d': Redis formats a Lua number
-- argument with snprintf("%.17g") and tostring uses "%.14g", each ~3,700 instructions of
-- floating-point formatting (callgrind), more than a whole HSET; '%d' takes a tenth of that.
local fmt = string.format
local now_s = fmt('%d', now)
-- The earliest delayed job first: only when it is due does the promotion below run (one call a
-- claim less when nothing is due, the common case).
local nxt = rcall('ZRANGE', delayed, '0', '0', 'WITHSCORES')
if nxt[2] and tonumber(nxt[2]) <= now then
  local aging = tonumber(ARGV[3])
  local due = rcall('ZRANGEBYSCORE', delayed, '-inf', now_s, 'WITHSCORES', 'LIMIT', '0', ARGV[4])
  for i = 1, #due, 2 do
    local id = due[i]
    local jk = p .. 'j:' .. id
    local f = rcall('HMGET', jk, 'm', 'pri')  -- pri: a job written before m
    local pri = tonumber(f[2] or string.match(f[1] or '\n0 ', '\n(%-?%d+) '))
    rcall('ZREM', delayed, id)
    rcall('HSET', jk, 'st', 'PENDING', 'ua', now_s)
    rcall('ZADD', ready, fmt('%d', tonumber(due[i + 1]) - pri * aging), id)
  end
  nxt = rcall('ZRANGE', delayed, '0', '0', 'WITHSCORES')
end
local out = {-1, now, 0, 0}
if nxt[2] then out[1] = tonumber(nxt[2]) end
-- idle: nothing waits or runs, so the worker may stop polling the queue until an enqueue.
local function idle()
  if not nxt[2] and rcall('ZCARD', ready) == 0 and rcall('ZCARD', running) == 0 then out[3] = 1 end
  return out
end
local count = tonumber(ARGV[1])
if count <= 0 or m[2] == '1' then return idle() end
local limited, retry = 0, nil
local conc = tonumber(m[3] or 0)
if conc > 0 and conc - rcall('ZCARD', running) < count then
  count, limited, retry = conc - rcall('ZCARD', running), 1, now + 50  -- a finishing job frees room
end
local rmax, rk, per = tonumber(m[4] or 0), nil, nil
if rmax > 0 then
  per = tonumber(m[5])
  local window = math.floor(now / per)
  rk = p .. 'rl:' .. window
  local room = rmax - tonumber(rcall('GET', rk) or 0)
  if room < count then count, limited, retry = room, 2, (window + 1) * per end
end
local function held_back()
  if limited > 0 and rcall('ZCARD', ready) > 0 then
    out[4] = limited
    if out[1] == -1 or retry < out[1] then out[1] = retry end
  end
  return out
end
if count <= 0 then return held_back() end
-- The ids by rank, then one removal: ZPOPMIN would also answer each score, which Redis 7.0
-- formats with snprintf("%.17g"), ~3,800 instructions a job (callgrind), 7 % of this script.
local popped = rcall('ZRANGE', ready, '0', fmt('%d', count - 1))
if #popped == 0 then return idle() end
rcall('ZREMRANGEBYRANK', ready, '0', fmt('%d', #popped - 1))
if rk then
  rcall('INCRBY', rk, #popped)
  rcall('PEXPIRE', rk, 2 * per)
end
held_back()
-- The numbers a job's calls take, as text made once (see fmt above): most jobs share one lease
-- and one attempt count.
local deadline = fmt('%d', now + tonumber(ARGV[2]))
local small = {}  -- lease and attempts as text, made once per value (most jobs: 1 and 1)
local function text(n)
  local v = small[n]
  if not v then
    v = fmt('%d', n)
    small[n] = v
  end
  return v
end
-- Two calls a job (read, write; a third for the rest of a job that may have more, see m's tab)
-- and one ZADD for the batch: each redis.call costs about a microsecond, each field read or
-- written (present or not, ~1,500 instructions) a few tenths more; this runs for every job.
-- ua is not written: a job's updated time is its latest transition time (sa here).
local leased = {}
local pj = p .. 'j:'
local n = #out
local byte, PLAIN = string.byte, 9  -- 9: the tab that ends m of a job with nothing more to read
local k = 0  -- jobs leased
for i = 1, #popped do
  local id = popped[i]
  local jk = pj .. id
  local f = rcall('HMGET', jk, 'lease', 'att', 'm', 'p', 'ca')
  if not f[3] then  -- written before m: its fields one by one
    local o = rcall('HMGET', jk, 'type', 'payload', 'pri', 'maxr', 'tmo')
    if o[1] then f[3], f[4] = o[1] .. '\n' .. (o[3] or '0') .. ' ' .. o[4] .. ' ' .. o[5], o[2] end
  end
  -- no m and no type: the job's hash is gone (evicted, or deleted by hand), so its id leaves
  -- the line here, and the jobs after it are still leased (an error would strand them)
  if f[3] then
    -- the rest only for a job that may have it: claimed before (errors; run set by a retry,
    -- replay or run-now), or enqueued without the tab (run, idem; or by an older version)
    local more = false
    if f[2] or byte(f[3], -1) ~= PLAIN then more = rcall('HMGET', jk, 'run', 'idem', 'err', 'errs') end
    local lease = tonumber(f[1] or 0) + 1
    local att = tonumber(f[2] or 0) + 1
    rcall('HSET', jk, 'lease', small[lease] or text(lease), 'att', small[att] or text(att), 'st', 'RUNNING', 'sa', now_s)
    if external then rcall('HSET', jk, 'lms', ARGV[2]) end
    k = k + 1
    leased[2 * k - 1] = deadline
    leased[2 * k] = id
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6], out[n + 7] = id, lease, att, f[3], f[4], f[5], more
    n = n + 7
  end
end
-- The running set is kept in the skiplist encoding: in the compact listpack one (a set of up to
-- 128 members) each ZADD of a member scans and moves the whole list, 4 us a job at 50 running
-- (commandstats) against 0.5. A member longer than zset-max-listpack-value (64 bytes) converts
-- the set; ZREM never converts it back, so the one-member ZADD and ZREM cost ~1 us a call.
-- 65 characters, written out: string.rep built it one character at a time, ~5,000 instructions a call
local SKIPLIST = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'
rcall('ZADD', running, '0', SKIPLIST)
for i = 1, #leased, 2000 do  -- unpack has a limit (8000 values): chunks of 1000 jobs
  rcall('ZADD', running, unpack(leased, i, math.min(i + 1999, #leased)))
end
rcall('ZREM', running, SKIPLIST)
return out
