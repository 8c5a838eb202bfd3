-- extend_lease: heartbeat; push the lease deadline of jobs this worker still holds.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>) hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  running
-- ARGV[1]  lease ms; ARGV[2..] pairs of job id, lease token
-- Returns  one integer per pair: 1 extended, 0 stale (not RUNNING under that token: refused)
local rcall = redis.call
local p = KEYS[1]
local running = KEYS[2]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local f = rcall('HMGET', p .. 'j:' .. ARGV[i], 'st', 'lease')
  if f[1] == 'RUNNING' and f[2] == ARGV[i + 1] then
    rcall('ZADD', running, 'XX', deadline, ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
