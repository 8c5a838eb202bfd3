-- drop_queue: the first step of deleting a queue. Refused while a job of it runs; else its meta
-- hash goes, so enqueue and claim answer "no such queue" from now on, and the caller removes
-- the queue's other keys (all under its hash tag) in bounded slices.
-- KEYS[1]  queue prefix "gtq:{q}:" (every key of the queue hangs off it: one slot)
-- KEYS[2]  meta   KEYS[3] running
-- ARGV     none
-- Returns  0 dropped; -4 no such queue; -8 a job of the queue is running
local rcall = redis.call
local meta, running = KEYS[2], KEYS[3]
if rcall('EXISTS', meta) == 0 then return -4 end
if rcall('ZCARD', running) > 0 then return -8 end
rcall('DEL', meta)
return 0
