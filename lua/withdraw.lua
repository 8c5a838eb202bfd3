-- withdraw: undo an enqueue. A batch spanning queues writes one queue at a time; when a later
-- queue refuses, the jobs already written to earlier queues are taken back while they still wait.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  ready   KEYS[3] delayed
-- ARGV[1..] job ids
-- Returns  one entry per id: 0 withdrawn, -1 no such job, or the job's status (already claimed)
local rcall = redis.call
local p = KEYS[1]
local ready, delayed = KEYS[2], KEYS[3]
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  local jk = p .. 'j:' .. id
  local f = rcall('HMGET', jk, 'st', 'idem')
  if not f[1] then out[i] = -1
  elseif f[1] ~= 'PENDING' and f[1] ~= 'SCHEDULED' then out[i] = f[1]
  else
    rcall('ZREM', ready, id)
    rcall('ZREM', delayed, id)
    rcall('DEL', jk)
    if f[2] then
      local ik = p .. 'idem:' .. f[2]
      local hit = rcall('GET', ik)
      if hit and string.sub(hit, 1, #id + 1) == id .. ' ' then rcall('DEL', ik) end
    end
    out[i] = 0
  end
end
return out
