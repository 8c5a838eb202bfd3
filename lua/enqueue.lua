-- enqueue: persist one or more new jobs of one queue atomically (hash + ready/delayed set +
-- idempotency key), refusing the whole call when the queue is missing or full.
-- KEYS[1]  queue prefix "gtq:{q}:" (meta, ready, delayed, idem:<key>, j:<id> hang off it)
-- ARGV[1]  idempotency TTL ms       ARGV[2] max waiting jobs (0 = no limit)
-- ARGV[3]  priority aging ms        ARGV[4] wake channel   ARGV[5] queue name
-- ARGV[6..] 6 fields per job: id, type, payload, "priority delay_ms run_at_ms|-1 max_retries
--           timeout_ms" (one string: fewer arguments to pack per job), idempotency_key|'', fingerprint
-- Returns  {-4} queue not found, {-5} queue full,
--          {-6, i, existing_id} job i's key was used for another body (conflict, nothing written),
--          else per job {code, id, status, now}: code 0 created, -6 idempotent replay of id.
local rcall = redis.call
local p = KEYS[1]
if rcall('EXISTS', p .. 'meta') == 0 then return {-4} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[3])
local n = (#ARGV - 5) / 6
local fresh = 0
local seen = {}
for i = 0, n - 1 do
  local b = 6 + i * 6
  local idem = ARGV[b + 4]
  if idem ~= '' then
    local hit = rcall('GET', p .. 'idem:' .. idem)
    if hit then
      local sp = string.find(hit, ' ', 1, true)
      if string.sub(hit, sp + 1) ~= ARGV[b + 5] then return {-6, i, string.sub(hit, 1, sp - 1)} end
    elseif seen[idem] and seen[idem] ~= ARGV[b + 5] then return {-6, i, ''}
    elseif not seen[idem] then fresh = fresh + 1 end
    seen[idem] = ARGV[b + 5]
  else fresh = fresh + 1 end
end
local maxd = tonumber(ARGV[2])
if maxd > 0 and rcall('ZCARD', p .. 'ready') + rcall('ZCARD', p .. 'delayed') + fresh > maxd then
  return {-5}
end
local out = {}
local woke = false
for i = 0, n - 1 do
  local b = 6 + i * 6
  local id, idem = ARGV[b], ARGV[b + 4]
  local hit = false
  if idem ~= '' then hit = rcall('GET', p .. 'idem:' .. idem) end
  if hit then
    out[#out + 1] = {-6, string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1), '', now}
  else
    local jk = p .. 'j:' .. id
    if rcall('EXISTS', jk) == 1 then return {-7} end
    local pri, delay, run_at, maxr, tmo = string.match(ARGV[b + 3], '^(%d+) (%d+) (%-?%d+) (%d+) (%d+)$')
    pri = tonumber(pri)
    local run = now + tonumber(delay)
    if run_at ~= '-1' then run = tonumber(run_at) end
    local st = 'PENDING'
    -- att and ua are left out until they change (0 and ca): a waiting job stays small
    rcall('HSET', jk, 'type', ARGV[b + 1], 'payload', ARGV[b + 2], 'pri', pri,
      'maxr', maxr, 'tmo', tmo, 'ca', now)
    if run > now then
      st = 'SCHEDULED'
      rcall('HSET', jk, 'st', st, 'run', run)
      rcall('ZADD', p .. 'delayed', run, id)
    else
      rcall('HSET', jk, 'st', st)
      rcall('ZADD', p .. 'ready', now - pri * aging, id)
    end
    if idem ~= '' then
      rcall('HSET', jk, 'idem', idem, 'fp', ARGV[b + 5])
      rcall('SET', p .. 'idem:' .. idem, id .. ' ' .. ARGV[b + 5], 'PX', ARGV[1])
    end
    woke = true
    out[#out + 1] = {0, id, st, now}
  end
end
if woke then rcall('PUBLISH', ARGV[4], ARGV[5]) end
return out
