-- recover_expired: jobs whose lease deadline passed (their worker died or stalled) go back to
-- PENDING at their old place in line, or to the DLQ when their attempts are spent. The token
-- is bumped so the old holder, if it wakes up, is refused. Idempotent: run by every worker.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>) hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  running   KEYS[3] ready   KEYS[4] dead   KEYS[5] completed (DONE jobs by the time
--          their record goes, see complete.lua: those whose time has passed are deleted here
--          too, so they go even when no job completes in the queue any more)
-- KEYS[6]  done: what older versions listed (their records expire by a key TTL): pruned
-- ARGV[1]  max jobs per call   ARGV[2] priority aging ms   ARGV[3] error text
-- ARGV[4]  wake channel        ARGV[5] queue name   ARGV[6] error history kept (entries)
-- Returns  {{requeued ids}, {dead ids}, expired DONE records deleted}
local rcall = redis.call
local p = KEYS[1]
local running, ready, dead = KEYS[2], KEYS[3], KEYS[4]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[2])
local old = rcall('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #old > 0 then
  for j = 1, #old do old[j] = p .. 'j:' .. old[j] end
  rcall('DEL', unpack(old))
  rcall('ZREMRANGEBYRANK', KEYS[5], 0, #old - 1)  -- the lowest scores are exactly those
end
rcall('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
local ids = rcall('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local requeued, died = {}, {}
for _, id in ipairs(ids) do
  local jk = p .. 'j:' .. id
  rcall('ZREM', running, id)
  local f = rcall('HMGET', jk, 'st', 'att', 'maxr', 'pri', 'run', 'ca', 'errs', 'm')  -- maxr, pri: before m
  if f[1] == 'RUNNING' then
    if f[8] then f[4], f[3] = string.match(f[8], '\n(%-?%d+) (%d+)') end
    rcall('HINCRBY', jk, 'lease', 1)
    -- the expiry joins the error history ("at" in epoch ms: Lua has no date formatting)
    local errs = f[7] and cjson.decode(f[7]) or {}
    errs[#errs + 1] = {attempt = tonumber(f[2]), error = ARGV[3], traceback = cjson.null, at = now}
    while #errs > tonumber(ARGV[6]) do table.remove(errs, 1) end
    rcall('HSET', jk, 'err', ARGV[3], 'errs', cjson.encode(errs), 'ua', now)
    if tonumber(f[2]) > tonumber(f[3]) then
      rcall('HSET', jk, 'st', 'DEAD', 'fa', now)
      rcall('ZADD', dead, now, id)
      died[#died + 1] = id
    else
      rcall('HSET', jk, 'st', 'PENDING')
      rcall('ZADD', ready, tonumber(f[5] or f[6]) - tonumber(f[4]) * aging, id)
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then rcall(string.find(ARGV[4], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[4], ARGV[5]) end
return {requeued, died, #old}
