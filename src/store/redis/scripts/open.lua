
local cur = redis.call('GET', KEYS[1])
if cur then
  return redis.error_reply('HELD ' .. cur .. ' ' .. redis.call('PTTL', KEYS[1]))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
