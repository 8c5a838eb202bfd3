-- advance_schedule: the tick at next_run has been enqueued: move next_run on, once. Every
-- process that runs workers may try the same tick; only the first compare-and-set wins, so a
-- tick is counted once (its job is one job already: it carries the tick's idempotency key).
-- KEYS[1]  gtq:sched:<name> (a key of its own: no queue involved)
-- ARGV[1]  the next_run ms the caller saw   ARGV[2] the new next_run ms
-- ARGV[3]  the tick ms run (last_run)       ARGV[4] the id of the tick's job
-- Returns  1 advanced; 0 someone else did (or the schedule changed or went)
local rcall = redis.call
local f = rcall('HMGET', KEYS[1], 'def', 'next')
if not f[1] or f[2] ~= ARGV[1] then return 0 end
rcall('HSET', KEYS[1], 'next', ARGV[2], 'last', ARGV[3], 'job', ARGV[4])
return 1
