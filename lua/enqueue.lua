-- enqueue: persist one or more new jobs of one queue atomically (hash + ready/delayed set +
-- idempotency key), refusing the whole call when the queue is missing or full.
-- KEYS[1]  queue prefix "gtq:{q}:" (meta, ready, delayed, idem:<key>, j:<id> hang off it)
-- ARGV[1]  idempotency TTL ms       ARGV[2] max waiting jobs (0 = no limit)
-- ARGV[3]  priority aging ms        ARGV[4] wake channel   ARGV[5] queue name
-- ARGV[6..] one record per job (one argument each: packing arguments is the client's cost):
--          "id\ntype\npriority delay_ms run_at_ms|-1 max_retries timeout_ms\nfingerprint\npayload\nidempotency_key"
--          No field but the last can hold a newline (payload is compact JSON), so the key may.
-- Returns  {-4} queue not found, {-5} queue full, {-7} id already taken,
--          {-6, i, existing_id} job i's key was used for another body (conflict, nothing written),
--          else per job {code, id, status, now}: code 0 created, -6 idempotent replay of id.
local rcall = redis.call
local p = KEYS[1]
if rcall('EXISTS', p .. 'meta') == 0 then return {-4} end
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[3])

local jobs = {}
for i = 6, #ARGV do
  local r = ARGV[i]
  local a = string.find(r, '\n', 1, true)
  local b = string.find(r, '\n', a + 1, true)
  local c = string.find(r, '\n', b + 1, true)
  local d = string.find(r, '\n', c + 1, true)
  local e = string.find(r, '\n', d + 1, true)
  jobs[#jobs + 1] = {id = string.sub(r, 1, a - 1), type = string.sub(r, a + 1, b - 1),
    nums = string.sub(r, b + 1, c - 1), fp = string.sub(r, c + 1, d - 1),
    payload = string.sub(r, d + 1, e - 1), idem = string.sub(r, e + 1)}
end

local fresh = 0
local seen = {}
for i, j in ipairs(jobs) do
  if j.idem ~= '' then
    local hit = rcall('GET', p .. 'idem:' .. j.idem)
    if hit then
      local sp = string.find(hit, ' ', 1, true)
      if string.sub(hit, sp + 1) ~= j.fp then return {-6, i - 1, string.sub(hit, 1, sp - 1)} end
    elseif seen[j.idem] and seen[j.idem] ~= j.fp then return {-6, i - 1, ''}
    elseif not seen[j.idem] then fresh = fresh + 1 end
    seen[j.idem] = j.fp
  else fresh = fresh + 1 end
end
local maxd = tonumber(ARGV[2])
if maxd > 0 and rcall('ZCARD', p .. 'ready') + rcall('ZCARD', p .. 'delayed') + fresh > maxd then
  return {-5}
end

local out = {}
local woke = false
for _, j in ipairs(jobs) do
  local hit = false
  if j.idem ~= '' then hit = rcall('GET', p .. 'idem:' .. j.idem) end
  if hit then
    out[#out + 1] = {-6, string.sub(hit, 1, string.find(hit, ' ', 1, true) - 1), '', now}
  else
    local jk = p .. 'j:' .. j.id
    if rcall('EXISTS', jk) == 1 then return {-7} end
    local pri, delay, run_at, maxr, tmo = string.match(j.nums, '^(%d+) (%d+) (%-?%d+) (%d+) (%d+)$')
    pri = tonumber(pri)
    local run = now + tonumber(delay)
    if run_at ~= '-1' then run = tonumber(run_at) end
    -- att and ua are left out until they change (0 and ca): a waiting job stays small
    local f = {'type', j.type, 'payload', j.payload, 'pri', pri, 'maxr', maxr, 'tmo', tmo, 'ca', now}
    local st = 'PENDING'
    if run > now then
      st = 'SCHEDULED'
      f[#f + 1] = 'run'
      f[#f + 1] = run
      rcall('ZADD', p .. 'delayed', run, j.id)
    else
      rcall('ZADD', p .. 'ready', now - pri * aging, j.id)
    end
    f[#f + 1] = 'st'
    f[#f + 1] = st
    if j.idem ~= '' then
      f[#f + 1] = 'idem'
      f[#f + 1] = j.idem
      f[#f + 1] = 'fp'
      f[#f + 1] = j.fp
      rcall('SET', p .. 'idem:' .. j.idem, j.id .. ' ' .. j.fp, 'PX', ARGV[1])
    end
    rcall('HSET', jk, unpack(f))
    woke = true
    out[#out + 1] = {0, j.id, st, now}
  end
end
if woke then rcall('PUBLISH', ARGV[4], ARGV[5]) end
return out
