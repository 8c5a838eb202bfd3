-- recover_expired: jobs whose lease deadline passed (their worker died or stalled) go back to
-- PENDING at their old place in line, or to the DLQ when their attempts are spent. The token
-- is bumped so the old holder, if it wakes up, is refused. Idempotent: run by every worker.
-- KEYS[1]  queue prefix "gtq:{q}:"
-- ARGV[1]  max jobs per call   ARGV[2] priority aging ms   ARGV[3] error text
-- ARGV[4]  wake channel        ARGV[5] queue name
-- Returns  {{requeued ids}, {dead ids}}
local rcall = redis.call
local p = KEYS[1]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[2])
local ids = rcall('ZRANGEBYSCORE', p .. 'running', '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local requeued, dead = {}, {}
for _, id in ipairs(ids) do
  local jk = p .. 'j:' .. id
  rcall('ZREM', p .. 'running', id)
  local f = rcall('HMGET', jk, 'st', 'att', 'maxr', 'pri', 'run', 'ca')
  if f[1] == 'RUNNING' then
    rcall('HINCRBY', jk, 'lease', 1)
    rcall('HSET', jk, 'err', ARGV[3], 'ua', now)
    if tonumber(f[2]) > tonumber(f[3]) then
      rcall('HSET', jk, 'st', 'DEAD', 'fa', now)
      rcall('ZADD', p .. 'dead', now, id)
      dead[#dead + 1] = id
    else
      rcall('HSET', jk, 'st', 'PENDING')
      rcall('ZADD', p .. 'ready', tonumber(f[5] or f[6]) - tonumber(f[4]) * aging, id)
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then rcall('PUBLISH', ARGV[4], ARGV[5]) end
return {requeued, dead}
