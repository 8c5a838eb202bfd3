-- progress: a running handler reports how far it got; fenced like every write of a worker.
-- KEYS[1]  queue prefix "gtq:{q}:"; the job hash (j:<id>) hangs off it (one slot)
-- ARGV[1]  job id   ARGV[2] lease token   ARGV[3] progress JSON {"percent", "message", "at"}
-- Returns  1 stored; 0 the lease is not held (the report is dropped)
local rcall = redis.call
local jk = KEYS[1] .. 'j:' .. ARGV[1]
local f = rcall('HMGET', jk, 'st', 'lease')
if f[1] ~= 'RUNNING' or f[2] ~= ARGV[2] then return 0 end
rcall('HSET', jk, 'prog', ARGV[3])
return 1
