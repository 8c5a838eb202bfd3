-- delete_dead: remove DEAD jobs for good (hash, DLQ entry and idempotency key).
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key> hang off it. Every key,
--          and the Cluster wake channel gtq:{q}:wake, carries the {q} hash tag: one slot.
-- KEYS[2]  dead
-- ARGV[1..] job ids
-- Returns  one entry per id: 0 deleted, -1 no such job, or the job's status (not DEAD)
local rcall = redis.call
local p = KEYS[1]
local dead = KEYS[2]
local out = {}
for i = 1, #ARGV do
  local jk = p .. 'j:' .. ARGV[i]
  local f = rcall('HMGET', jk, 'st', 'idem')
  if not f[1] then
    rcall('ZREM', dead, ARGV[i]) -- a dangling id (its hash deleted by hand) must not loop
    out[#out + 1] = -1
  elseif f[1] ~= 'DEAD' then out[#out + 1] = f[1]
  else
    rcall('DEL', jk)
    rcall('ZREM', dead, ARGV[i])
    if f[2] then -- the key may have expired and been taken by a newer job: delete it only if it is ours
      local ik = p .. 'idem:' .. f[2]
      local hit = rcall('GET', ik)
      if hit and string.sub(hit, 1, #ARGV[i] + 1) == ARGV[i] .. ' ' then rcall('DEL', ik) end
    end
    out[#out + 1] = 0
  end
end
return out
