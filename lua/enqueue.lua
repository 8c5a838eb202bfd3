-- enqueue: persist one or more new jobs of one queue atomically (hash + ready/delayed set +
-- idempotency key), refusing the whole call when the queue is missing or full.
-- KEYS[1]  queue prefix "gtq:{q}:" (meta, ready, delayed, idem:<key>, j:<id> hang off it)
-- ARGV[1]  idempotency TTL ms       ARGV[2] max waiting jobs (0 = no limit)
-- ARGV[3]  priority aging ms        ARGV[4] wake channel   ARGV[5] queue name
-- ARGV[6]  "1" when any job has an idempotency key, else "0" (then one pass suffices)
-- ARGV[7..] one record per job (one argument each: packing arguments is the client's cost):
--          "id\ntype\npriority delay_ms run_at_ms|-1 max_retries timeout_ms\nfingerprint\npayload\nidempotency_key"
--          No field but the last can hold a newline (payload is compact JSON), so the key may.
-- Returns  {-4} queue not found, {-5} queue full, {-7} id already taken,
--          {-6, i, existing_id} job i's key was used for another body (conflict, nothing written),
--          else {now_ms, r1, r2, ...}, one r per job: 0 created PENDING, 1 created SCHEDULED,
--          or the id (a string) of the job whose idempotency key it replays.
-- Cost: a flat reply and one pattern match per job keep the script near 5 us a job.
local rcall = redis.call
local p = KEYS[1]
if rcall('EXISTS', p .. 'meta') == 0 then return {-4} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[3])
local first, last = 7, #ARGV
local RECORD = '^(%d+)\n([^\n]+)\n(%d+) (%d+) (%-?%d+) (%d+) (%d+)\n([^\n]*)\n(.-)\n(.*)$'

-- Idempotency pass: refuse a conflict before anything is written; count jobs that are new.
local fresh = last - first + 1
if ARGV[6] == '1' then
  fresh = 0
  local seen = {}
  for i = first, last do
    local _, _, _, _, _, _, _, fp, _, idem = string.match(ARGV[i], RECORD)
    if idem ~= '' then
      local hit = rcall('GET', p .. 'idem:' .. idem)
      if hit then
        local sp = string.find(hit, ' ', 1, true)
        if string.sub(hit, sp + 1) ~= fp then return {-6, i - first, string.sub(hit, 1, sp - 1)} end
      elseif seen[idem] and seen[idem] ~= fp then return {-6, i - first, ''}
      elseif not seen[idem] then fresh = fresh + 1 end
      seen[idem] = fp
    else fresh = fresh + 1 end
  end
end
local maxd = tonumber(ARGV[2])
if maxd > 0 and rcall('ZCARD', p .. 'ready') + rcall('ZCARD', p .. 'delayed') + fresh > maxd then
  return {-5}
end

local out = {now}
local n = 1
local woke = false
for i = first, last do
  local id, typ, pri, delay, run_at, maxr, tmo, fp, payload, idem = string.match(ARGV[i], RECORD)
  local hit = false
  if idem ~= '' then hit = rcall('GET', p .. 'idem:' .. idem) end
  n = n + 1
  if hit then
    out[n] = string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1)
  else
    local jk = p .. 'j:' .. id
    if rcall('EXISTS', jk) == 1 then return {-7} end
    pri = tonumber(pri)
    local run = now + tonumber(delay)
    if run_at ~= '-1' then run = tonumber(run_at) end
    -- att and ua are left out until they change (0 and ca): a waiting job stays small
    local st = 'PENDING'
    if run > now then
      st = 'SCHEDULED'
      rcall('ZADD', p .. 'delayed', run, id)
      out[n] = 1
    else
      rcall('ZADD', p .. 'ready', now - pri * aging, id)
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
if woke then rcall('PUBLISH', ARGV[4], ARGV[5]) end
return out
