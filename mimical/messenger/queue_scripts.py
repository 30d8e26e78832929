"""The Lua scripts `RedisEventQueue` runs in Redis: each a step on one user's events that
must not interleave with another worker's (enqueue with dedupe, finish, release a drained
user, forget, renew or release a lease).

Keys and arguments are named at each call in `mimical.messenger.event_queue`.
"""

ENQUEUE = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return 0 end
local id = redis.call('XADD', KEYS[1], '*', 'user', ARGV[1])
redis.call('RPUSH', KEYS[3], '{"id":"' .. id .. '",' .. string.sub(ARGV[2], 2))
return 1
"""
FINISH = """
if redis.call('LINDEX', KEYS[2], 0) == ARGV[3] then redis.call('LPOP', KEYS[2]) end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
RELEASE_IF_DRAINED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""
# A user's queued events but the one being answered (`keep_mid`), each acknowledged and
# removed from the stream so its doorbell does not wait forever; their silence, handover
# mark and disclosure.
FORGET = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = nil
for i, raw in ipairs(items) do
  local event = cjson.decode(raw)
  if i == 1 and event.mid == ARGV[2] then
    kept = raw
  else
    redis.call('XACK', KEYS[2], ARGV[1], event.id)
    redis.call('XDEL', KEYS[2], event.id)
  end
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
if kept then
  redis.call('RPUSH', KEYS[1], kept)
  return #items - 1
end
return #items
"""
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
