-- enqueue: persist one or more new jobs of one queue atomically (hash + ready/delayed set +
-- idempotency key), refusing the whole call when the queue is missing or full.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  meta   KEYS[3] ready   KEYS[4] delayed
-- ARGV[1]  idempotency TTL ms       ARGV[2] max waiting jobs (0 = no limit)
-- ARGV[3]  priority aging ms        ARGV[4] wake channel   ARGV[5] queue name
-- ARGV[6]  "1" when any job has an idempotency key, else "0"
-- ARGV[7]  "1": check only (a batch spanning queues asks every queue before writing to any)
-- ARGV[8]  arguments per job, "4" or "3": "3" when every job's options would be "" (below),
--          left out (each argument costs ~800 instructions to parse and hand to Lua)
-- ARGV[9..] per job: id, m, payload, options. m = "type\npriority max_retries
--          timeout_ms" is the job's small immutable fields in one hash field (each field costs
--          Redis time at enqueue and claim), stored as sent, with a tab after it when the job
--          has no delay, run_at or idempotency key: claim reads the run and idem fields only
--          for a job without the tab (each field read costs ~1,500 instructions, present or
--          not; a tab, as int() takes it, leaves m readable by older versions). The payload is
--          a field of its own, so a small job's hash keeps the compact listpack encoding
--          (values up to hash-max-listpack-value, 64 bytes). options is "" for a job with no
--          delay, no run_at, priority 0 and no idempotency key (most jobs: nothing to parse),
--          else "delay_ms run_at_ms|-1 priority idem_len fp_len\n" .. idempotency_key ..
--          fingerprint. Arguments rather than one record a job to split: Lua's pattern
--          matching and the strings it captured were ~4,600 instructions a job (callgrind).
-- Returns  {-4} queue not found, {-5} queue full, {-7} id already taken (nothing written),
--          {-6, i, existing_id} job i's (from 0) key was used for another body (conflict, nothing written),
--          {0} when checking only and every job would be accepted,
--          else {now_ms, r1, r2, ...}, one r per job: 0 created PENDING, 1 created SCHEDULED,
--          or the id (a string) of the job whose idempotency key it replays.
-- Cost: one HSET a job; the id check and the ZADDs take one call for the whole batch.
-- Keys: KEYS[1] only; job and idempotency keys hang off it, so all share the {q} hash tag.
local rcall = redis.call
local p = KEYS[1]
local meta, ready, delayed = KEYS[2], KEYS[3], KEYS[4]
if rcall('EXISTS', meta) == 0 then return {-4} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[3])
local step = tonumber(ARGV[8])
local first, last = 9, #ARGV
local PENDING, SCHEDULED = 'PENDING', 'SCHEDULED'  -- the state a new job starts in
local SKIPLIST = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'  -- 65 > zset-max-listpack-value: see below
local HEAD = '^(%d+) (%-?%d+) (%-?%d+) (%d+) (%d+)\n()'

-- A job's options: delay, run_at, priority, idempotency key ('' = none), fingerprint.
local function options(opts)
  if opts == '' then return '0', '-1', '0', '', '' end
  local delay, run_at, pri, ilen, flen, at = string.match(opts, HEAD)
  ilen, flen = tonumber(ilen), tonumber(flen)
  return delay, run_at, pri, string.sub(opts, at, at + ilen - 1), string.sub(opts, at + ilen, at + ilen + flen - 1)
end

-- A key whose job is gone (deleted, or expired with it) no longer replays anything.
local function live(idem)
  local hit = rcall('GET', p .. 'idem:' .. idem)
  if hit and rcall('EXISTS', p .. 'j:' .. string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1)) == 1 then
    return hit
  end
  return false
end

-- Check pass: refuse a conflict or a taken id before anything is written; count new jobs.
local fresh = {}
local seen = {}
local replays = {}  -- the jobs this pass found to replay a key (by argument index): not written
local pj = p .. 'j:'
if ARGV[6] ~= '1' then  -- no job has a key: every one is fresh
  for i = first, last, step do fresh[#fresh + 1] = pj .. ARGV[i] end
else
  for i = first, last, step do
    local id, idem, fp = ARGV[i], select(4, options(ARGV[i + 3]))  -- keys: step is 4
    local hit = false
    if idem ~= '' then
      hit = live(idem)
      if hit then
        local sp = string.find(hit, ' ', 1, true)
        if string.sub(hit, sp + 1) ~= fp then return {-6, (i - first) / step, string.sub(hit, 1, sp - 1)} end
      elseif seen[idem] and seen[idem] ~= fp then return {-6, (i - first) / step, ''}
      elseif seen[idem] then hit = true end
      seen[idem] = fp
    end
    if hit then replays[i] = true else fresh[#fresh + 1] = pj .. id end
  end
end
for i = 1, #fresh, 1000 do  -- unpack has a limit (8000 values)
  if rcall('EXISTS', unpack(fresh, i, math.min(i + 999, #fresh))) > 0 then return {-7} end
end
local maxd = tonumber(ARGV[2])
if maxd > 0 and rcall('ZCARD', ready) + rcall('ZCARD', delayed) + #fresh > maxd then
  return {-5}
end
if ARGV[7] == '1' then return {0} end

local out = {now}
local n = 1
local now_ready, later = {}, {}  -- score, id pairs: one ZADD per set for the batch
-- Numbers go to redis.call as text made once with '%d' (see claim.lua)
local fmt = string.format
local now_s = fmt('%d', now)
local scores = {}  -- a ready job's score by its priority's text
local function score(pri)
  local v = scores[pri]
  if not v then
    v = fmt('%d', now - tonumber(pri) * aging)
    scores[pri] = v
  end
  return v
end
local made, queued = 0, 0  -- jobs written (their keys are fresh's, in order), ready ones
if step == 3 then  -- no job has options: each is ready now at priority 0, as the general loop would
  -- make it, without its per-job parsing and tests: 30,126 -> 26,880 instructions a job in
  -- calls of 100 (bench_redis_instructions.py), 32,710 -> 29,339 in calls of 30
  local ready_now = score('0')
  for i = first, last, 3 do
    made = made + 1
    queued = queued + 2
    now_ready[queued - 1], now_ready[queued] = ready_now, ARGV[i]
    rcall('HSET', fresh[made], 'm', ARGV[i + 1], 'p', ARGV[i + 2], 'ca', now_s, 'st', PENDING)
    out[made + 1] = 0
  end
else
  for i = first, last, step do
    local id, m, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local delay, run_at, pri, idem, fp = options(ARGV[i + 3])  -- step is 4 here
    n = n + 1
    if replays[i] then  -- the check pass decides, so fresh lines up (a key may name an id written here)
      local hit = live(idem)  -- a repeat within this call finds the first, written by now
      out[n] = hit and string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1) or ''
    else
      made = made + 1
      local jk = fresh[made]
      local run = now + tonumber(delay)
      if run_at ~= '-1' then run = tonumber(run_at) end
      -- the tab says "no run or idem field" to claim: never on a job that has one
      if (run > now or idem ~= '') and string.byte(m, -1) == 9 then m = string.sub(m, 1, -2) end
      -- att and ua are left out until they change (0 and ca): a waiting job stays small
      if run > now then
        run = fmt('%d', run)
        later[#later + 1] = run
        later[#later + 1] = id
        rcall('HSET', jk, 'm', m, 'p', payload, 'ca', now_s, 'st', SCHEDULED, 'run', run)
        out[n] = 1
      else
        queued = queued + 2
        now_ready[queued - 1], now_ready[queued] = score(pri), id
        rcall('HSET', jk, 'm', m, 'p', payload, 'ca', now_s, 'st', PENDING)
        out[n] = 0
      end
      if idem ~= '' then
        rcall('SET', p .. 'idem:' .. idem, id .. ' ' .. fp, 'PX', ARGV[1])
        rcall('HSET', jk, 'idem', idem, 'fp', fp)
      end
    end
  end
end

if #now_ready > 0 then
  -- kept in the skiplist encoding, as claim.lua keeps the running set (see there): in the
  -- listpack one each ZADD of a job, and claim's removal, scans or moves a list of up to 128
  rcall('ZADD', ready, '0', SKIPLIST)
  for i = 1, #now_ready, 2000 do
    rcall('ZADD', ready, unpack(now_ready, i, math.min(i + 1999, #now_ready)))
  end
  rcall('ZREM', ready, SKIPLIST)
end
for i = 1, #later, 2000 do
  rcall('ZADD', delayed, unpack(later, i, math.min(i + 1999, #later)))
end
if #now_ready + #later > 0 then
  rcall(string.find(ARGV[4], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[4], ARGV[5])
end
return out
