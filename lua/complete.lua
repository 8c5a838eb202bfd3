-- complete: RUNNING -> DONE for jobs whose lease token is still current; store the result
-- and let the hash expire after COMPLETE_JOB_TTL so memory does not grow with finished work.
-- KEYS[1]  queue prefix "gtq:{q}:"
-- ARGV[1]  done-job TTL ms; ARGV[2..] triples of job id, lease token, result JSON
-- Returns  one integer per triple: 1 done, 0 stale lease (refused, nothing written)
local rcall = redis.call
local p = KEYS[1]
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 2, #ARGV, 3 do
  local jk = p .. 'j:' .. ARGV[i]
  local f = rcall('HMGET', jk, 'st', 'lease')
  if f[1] == 'RUNNING' and f[2] == ARGV[i + 1] then
    rcall('ZREM', p .. 'running', ARGV[i])
    rcall('HSET', jk, 'st', 'DONE', 'res', ARGV[i + 2], 'fa', now, 'ua', now)
    rcall('PEXPIRE', jk, ARGV[1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
