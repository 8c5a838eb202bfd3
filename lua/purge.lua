-- purge: remove a queue's waiting jobs (PENDING and SCHEDULED), a bounded slice a call.
-- KEYS[1]  queue prefix "gtq:{q}:"; job hashes (j:<id>), idem:<key> hang off it (one slot).
-- KEYS[2]  ready   KEYS[3] delayed
-- ARGV[1]  max jobs this call
-- Returns  how many jobs were removed (0: none waits any more)
local rcall = redis.call
local p = KEYS[1]
local ready, delayed = KEYS[2], KEYS[3]
local n = tonumber(ARGV[1])
local removed = 0
for _, set in ipairs({ready, delayed}) do
  if removed >= n then break end
  for _, id in ipairs(rcall('ZRANGE', set, 0, n - removed - 1)) do
    local jk = p .. 'j:' .. id
    local idem = rcall('HGET', jk, 'idem')
    if idem then -- the key goes only while it still names this job
      local hit = rcall('GET', p .. 'idem:' .. idem)
      if hit and string.sub(hit, 1, #id + 1) == id .. ' ' then rcall('DEL', p .. 'idem:' .. idem) end
    end
    rcall('DEL', jk)
    rcall('ZREM', set, id)
    removed = removed + 1
  end
end
return removed
