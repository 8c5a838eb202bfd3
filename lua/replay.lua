-- replay: DEAD -> PENDING with attempts reset, for each given job of one queue. A job that is
-- no longer DEAD (e.g. a concurrent replay won) is refused, so a job is requeued once.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>) hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  dead   KEYS[3] ready
-- ARGV[1]  priority aging ms   ARGV[2] wake channel   ARGV[3] queue name   ARGV[4..] job ids
-- Returns  one entry per id: 0 replayed, -1 no such job, or the job's status (not DEAD)
local rcall = redis.call
local p = KEYS[1]
local dead, ready = KEYS[2], KEYS[3]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[1])
local out = {}
for i = 4, #ARGV do
  local jk = p .. 'j:' .. ARGV[i]
  local f = rcall('HMGET', jk, 'st', 'pri', 'm')  -- pri: a job written before m
  if not f[1] then
    rcall('ZREM', dead, ARGV[i]) -- a dangling id (its hash deleted by hand) must not loop
    out[#out + 1] = -1
  elseif f[1] ~= 'DEAD' then out[#out + 1] = f[1]
  else
    rcall('ZREM', dead, ARGV[i])
    rcall('HDEL', jk, 'fa')
    rcall('HSET', jk, 'st', 'PENDING', 'att', 0, 'run', now, 'ua', now)
    local pri = tonumber(f[2] or string.match(f[3], '\n(%-?%d+) '))
    rcall('ZADD', ready, now - pri * aging, ARGV[i])
    out[#out + 1] = 0
  end
end
rcall(string.find(ARGV[2], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[2], ARGV[3])
return out
