-- renew_node: keep a process's Snowflake node id leased, only while the lease is still its own.
-- KEYS[1]  gtq:node:<n> (a key of its own: no queue involved)
-- ARGV[1]  the holder's token   ARGV[2] lease ms
-- Returns  1 renewed, 0 lost (expired, or taken by another process)
local rcall = redis.call
if rcall('GET', KEYS[1]) == ARGV[1] then
  rcall('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
