-- release: graceful shutdown hands unfinished jobs back. RUNNING -> PENDING without counting
-- the attempt; the token is bumped so the releasing worker can no longer write.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>) hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  running   KEYS[3] ready
-- ARGV[1]  priority aging ms   ARGV[2] wake channel   ARGV[3] queue name
-- ARGV[4..] pairs of job id, lease token
-- Returns  one integer per pair: 1 released, 0 stale lease (refused)
local rcall = redis.call
local p = KEYS[1]
local running, ready = KEYS[2], KEYS[3]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local aging = tonumber(ARGV[1])
local out = {}
for i = 4, #ARGV, 2 do
  local jk = p .. 'j:' .. ARGV[i]
  local f = rcall('HMGET', jk, 'st', 'lease', 'pri', 'run', 'ca', 'm')  -- pri: a job written before m
  if f[1] == 'RUNNING' and f[2] == ARGV[i + 1] then
    if f[6] then f[3] = string.match(f[6], '\n(%-?%d+) ') end
    rcall('ZREM', running, ARGV[i])
    rcall('HINCRBY', jk, 'att', -1)
    rcall('HINCRBY', jk, 'lease', 1)
    rcall('HSET', jk, 'st', 'PENDING', 'ua', now)
    rcall('ZADD', ready, tonumber(f[4] or f[5]) - tonumber(f[3]) * aging, ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #out > 0 then rcall(string.find(ARGV[2], '{', 1, true) and 'SPUBLISH' or 'PUBLISH', ARGV[2], ARGV[3]) end
return out
