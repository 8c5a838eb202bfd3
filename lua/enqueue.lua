-- enqueue: persist one or more new jobs of one queue atomically (hash + ready/delayed set +
-- idempotency key), refusing the whole call when the queue is missing or full.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  meta   KEYS[3] ready   KEYS[4] delayed
-- ARGV[1]  idempotency TTL ms       ARGV[2] max waiting jobs (0 = no limit)
-- ARGV[3]  priority aging ms        ARGV[4] wake channel   ARGV[5] queue name
-- ARGV[6]  "1" when any job has an idempotency key, else "0"
-- ARGV[7]  "1": check only (a batch spanning queues asks every queue before writing to any)
-- ARGV[8..] one record per job (one argument each: packing arguments is the client's cost):
--          "id\ntype\npriority delay_ms run_at_ms|-1 max_retries timeout_ms\nfingerprint\npayload\nidempotency_key"
--          No field but the last can hold a newline (payload is compact JSON), so the key may.
-- Returns  {-4} queue not found, {-5} queue full, {-7} id already taken (nothing written),
--          {-6, i, existing_id} job i's key was used for another body (conflict, nothing written),
--          {0} when checking only and every job would be accepted,
--          else {now_ms, r1, r2, ...}, one r per job: 0 created PENDING, 1 created SCHEDULED,
--          or the id (a string) of the job whose idempotency key it replays.
-- Cost: a flat reply and two pattern matches per job keep the script near 5 us a job.
-- Keys: KEYS[1] only; job and idempotency keys hang off it, so all share the {q} hash tag.
local rcall = redis.call
local p = KEYS[1]
local meta, ready, delayed = KEYS[2], KEYS[3], KEYS[4]
if rcall('EXISTS', meta) == 0 then return {-4} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[3])
local first, last = 8, #ARGV
local RECORD = '^(%d+)\n([^\n]+)\n(%d+) (%d+) (%-?%d+) (%d+) (%d+)\n([^\n]*)\n(.-)\n(.*)$'

-- A key whose job is gone (deleted, or expired with it) no longer replays anything.
local function live(idem)
  local hit = rcall('GET', p .. 'idem:' .. idem)
  if hit and rcall('EXISTS', p .. 'j:' .. string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1)) == 1 then
    return hit
  end
  return false
end

-- Check pass: refuse a conflict or a taken id before anything is written; count new jobs.
local fresh = 0
local seen = {}
for i = first, last do
  local id, fp, idem, _
  if ARGV[6] == '1' then
    id, _, _, _, _, _, _, fp, _, idem = string.match(ARGV[i], RECORD)
  else
    id, idem = string.match(ARGV[i], '^%d+'), ''
  end
  local hit = false
  if idem ~= '' then
    hit = live(idem)
    if hit then
      local sp = string.find(hit, ' ', 1, true)
      if string.sub(hit, sp + 1) ~= fp then return {-6, i - first, string.sub(hit, 1, sp - 1)} end
    elseif seen[idem] and seen[idem] ~= fp then return {-6, i - first, ''}
    elseif seen[idem] then hit = true end
    seen[idem] = fp
  end
  if not hit then
    if rcall('EXISTS', p .. 'j:' .. id) == 1 then return {-7} end
    fresh = fresh + 1
  end
end
local maxd = tonumber(ARGV[2])
if maxd > 0 and rcall('ZCARD', ready) + rcall('ZCARD', delayed) + fresh > maxd then
  return {-5}
end
if ARGV[7] == '1' then return {0} end

local out = {now}
local n = 1
local woke = false
for i = first, last do
  local id, typ, pri, delay, run_at, maxr, tmo, fp, payload, idem = string.match(ARGV[i], RECORD)
  local hit = false
  if idem ~= '' then hit = live(idem) end
  n = n + 1
  if hit then
    out[n] = string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1)
  else
    local jk = p .. 'j:' .. id
    pri = tonumber(pri)
    local run = now + tonumber(delay)
    if run_at ~= '-1' then run = tonumber(run_at) end
    -- att and ua are left out until they change (0 and ca): a waiting job stays small
    local st = 'PENDING'
    if run > now then
      st = 'SCHEDULED'
      rcall('ZADD', delayed, run, id)
      out[n] = 1
    else
      rcall('ZADD', ready, now - pri * aging, id)
      out[n] = 0
    end
    rcall('HSET', jk, 'type', typ, 'payload', payload, 'pri', pri, 'maxr', maxr, 'tmo', tmo, 'ca', now, 'st', st)
    if st == 'SCHEDULED' then rcall('HSET', jk, 'run', run) end
    if idem ~= '' then
      rcall('SET', p .. 'idem:' .. idem, id .. ' ' .. fp, 'PX', ARGV[1])
      rcall('HSET', jk, 'idem', idem, 'fp', fp)
    end
    woke = true
  end
end
if woke then rcall(string.find(ARGV[4], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[4], ARGV[5]) end
return out
