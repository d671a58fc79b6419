
local last = redis.call('GET', KEYS[3]) or '0'
local seq = ARGV[4]
if #seq > #last or (#seq == #last and seq > last) then
  return redis.error_reply('AHEAD ' .. last)
end
local expected = tonumber(ARGV[5])
local staged = redis.call('LLEN', KEYS[5])
if expected > 0 and staged ~= expected then
  return redis.error_reply('PARTS ' .. staged .. ' staged, ' .. ARGV[5] .. ' expected')
end
if expected == 0 then
  -- An empty book has no parts; whatever an unfinished save staged goes too.
  redis.call('DEL', KEYS[5], KEYS[6])
else
  redis.call('RENAME', KEYS[5], KEYS[6])
end
redis.call('HSET', KEYS[4], 'seq', seq, 'parts', ARGV[5], 'len', ARGV[6])
redis.call('HDEL', KEYS[4], 'bytes')
